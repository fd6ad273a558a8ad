//! `cargo xtask dev`: builds the console's WASM and respack-web, migrates and seeds the
//! embedded SQLite database on first start, then runs respack-web on `RESPACK_ADDR`
//! (default 127.0.0.1:3000) and prints the URL and the demo logins. Ctrl-C stops it.

use anyhow::{bail, Result};
use respack_config::Settings;
use xshell::Shell;

use crate::serve::{build_web, print_logins, seed, Server};
use crate::site::{self, default_site_root, workspace_root, WasmProfile};

pub fn run(args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask dev` takes no arguments (got `{extra}`); configure it with RESPACK_* variables");
    }
    let sh = Shell::new()?;
    sh.change_dir(workspace_root());
    let site_root = default_site_root();
    site::build(&sh, &site_root, WasmProfile::from_env())?;
    let binary = build_web(&sh, false)?;
    let settings = Settings::load()?;
    if settings.is_sqlite() {
        seed(&settings)?;
    } else {
        println!("xtask: RESPACK_DATABASE_URL names PostgreSQL; not seeding it (run `cargo xtask seed` if you want the demo there)");
    }
    let server = Server::start(&binary, &settings.data_dir, &settings.addr, &site_root, &settings.log, false)?;
    print_logins(&server.url);
    println!("(respack-web pid {}; Ctrl-C stops it)", server.pid());
    server.wait()
}
