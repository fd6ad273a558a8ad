//! `cargo xtask dist`: what a server needs, in `target/dist/`: release binaries in `bin/`,
//! the console's site (size-optimized WASM) in `site/`, and the systemd units in `systemd/`
//! (respack-web's and respackd's).

use std::path::Path;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::site::{self, cargo, target_dir, workspace_root, WasmProfile};

pub fn run(args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask dist` takes no arguments (got `{extra}`)");
    }
    let sh = Shell::new()?;
    let root = workspace_root();
    sh.change_dir(&root);
    let dist = target_dir().join("dist");
    if dist.exists() {
        std::fs::remove_dir_all(&dist).with_context(|| format!("cannot clear {}", dist.display()))?;
    }
    for dir in ["bin", "site", "systemd"] {
        std::fs::create_dir_all(dist.join(dir))?;
    }
    if site::build(&sh, &dist.join("site"), WasmProfile::Release)?.is_none() {
        bail!("a release needs the console's WASM; install the wasm32-unknown-unknown target");
    }
    println!("xtask: building release binaries");
    sh.cmd(cargo())
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "respack-web",
            "--bin",
            "respack-web",
            "-p",
            "respackd",
            "--bin",
            "respackd",
        ])
        .run()?;
    for binary in ["respack-web", "respackd"] {
        copy(&target_dir().join("release").join(binary), &dist.join("bin").join(binary))?;
    }
    copy(&root.join("apps/web/respack-web.service"), &dist.join("systemd").join("respack-web.service"))?;
    copy(&root.join("apps/daemon/systemd/respackd.service"), &dist.join("systemd").join("respackd.service"))?;
    println!("xtask: {} holds:", dist.display());
    for dir in ["bin", "site/pkg", "systemd"] {
        for entry in std::fs::read_dir(dist.join(dir))? {
            let entry = entry?;
            println!("  {dir}/{} ({} KB)", entry.file_name().to_string_lossy(), entry.metadata()?.len() / 1024);
        }
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}
