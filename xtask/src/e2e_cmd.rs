//! `cargo xtask e2e`: the browser test. Builds the site and respack-web, seeds a fresh SQLite
//! database under `target/e2e/`, starts respack-web on a free loopback port and runs
//! `e2e/console.spec.mjs` (playwright-core driving Debian's headless Chromium; no browser is
//! downloaded). Screenshots of each page land in `target/e2e/`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::serve::{build_web, free_port, seed, settings_for, Server};
use crate::site::{self, default_site_root, target_dir, workspace_root, WasmProfile};

/// The Chromium to drive: `RESPACK_CHROMIUM`, else Debian's.
pub fn chromium() -> PathBuf {
    std::env::var_os("RESPACK_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Whether the browser test can run here (Chromium and node present).
pub fn available() -> bool {
    chromium().exists() && which("node")
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

pub fn run(args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask e2e` takes no arguments (got `{extra}`)");
    }
    if !chromium().exists() {
        bail!(
            "no Chromium at {}: install Debian's (`apt-get install chromium`) or set RESPACK_CHROMIUM",
            chromium().display()
        );
    }
    if !which("node") || !which("npm") {
        bail!("the browser test needs node and npm (`apt-get install nodejs npm`)");
    }
    let sh = Shell::new()?;
    let root = workspace_root();
    sh.change_dir(&root);
    let site_root = default_site_root();
    if let Err(error) = std::fs::remove_dir_all(site_root.join("pkg")) {
        if error.kind() != std::io::ErrorKind::NotFound {
            return Err(error).context("cannot remove the old bundle");
        }
    }
    let bundle = site::build(&sh, &site_root, WasmProfile::from_env())?;
    let binary = build_web(&sh, false)?;
    install_playwright(&sh, &root.join("e2e"))?;

    let out = target_dir().join("e2e");
    let data_dir = out.join("data");
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir).with_context(|| format!("cannot clear {}", data_dir.display()))?;
    }
    std::fs::create_dir_all(&data_dir)?;
    seed(&settings_for(&data_dir)?)?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let server = Server::start(&binary, &data_dir, &addr, &site_root, "warn", true)?;
    println!("xtask: respack-web at {}; running the browser test", server.url);
    let outcome = sh
        .cmd("node")
        .arg(root.join("e2e").join("console.spec.mjs"))
        .env("BASE_URL", &server.url)
        .env("SCREENSHOT_DIR", &out)
        .env("CHROMIUM", chromium())
        // Without the bundle the test checks the server-rendered pages and plain forms only.
        .env("EXPECT_HYDRATION", if bundle.is_some() { "1" } else { "0" })
        .run()
        .context("the browser test failed (its output is above; screenshots in target/e2e/)");
    drop(server);
    outcome
}

/// `npm ci` from the committed lock file, once.
fn install_playwright(sh: &Shell, e2e: &Path) -> Result<()> {
    if e2e.join("node_modules").join("playwright-core").is_dir() {
        return Ok(());
    }
    println!("xtask: installing playwright-core (npm ci, no browser download)");
    let _dir = sh.push_dir(e2e);
    sh.cmd("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .run()
        .context("npm ci in e2e/ failed")?;
    Ok(())
}
