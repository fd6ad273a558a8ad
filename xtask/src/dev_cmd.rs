//! `cargo xtask dev`: builds the console's WASM, respack-web and respackd, migrates and seeds
//! the embedded SQLite database on first start, then runs respack-web on `RESPACK_ADDR`
//! (default 127.0.0.1:3000) with respackd beside it, and prints the URL and the demo logins.
//! Ctrl-C, or SIGTERM to this process, stops both.

use std::process::Command;

use anyhow::{bail, Context, Result};
use respack_config::{MailTransport, Settings};
use xshell::Shell;

use crate::serve::{build_web, print_api_key, print_logins, seed, Server, Stopped};
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
    println!("xtask: building respackd");
    sh.cmd(crate::site::cargo()).args(["build", "--quiet", "-p", "respackd", "--bin", "respackd"]).run()?;
    let settings = Settings::load()?;
    let api_key = if settings.is_sqlite() {
        seed(&settings)?
    } else {
        println!("xtask: RESPACK_DATABASE_URL names PostgreSQL; not seeding it (run `cargo xtask seed` if you want the demo there)");
        None
    };
    let server = Server::start(&binary, &settings.data_dir, &settings.addr, &site_root, &settings.log, false)?;
    // respackd reads the same settings from the environment; mail goes where `[mail]` says
    // (by default .eml files in the data directory: nothing to set up).
    let daemon = Command::new(crate::site::target_dir().join("debug").join("respackd"))
        .current_dir(workspace_root())
        .arg("run")
        .spawn()
        .context("cannot start respackd")?;
    let daemon = Stopped::new(daemon);
    print_logins(&server.url);
    print_api_key(api_key.as_ref());
    match &settings.mail.transport {
        MailTransport::File { dir } => println!("respackd is running; its mail is written to {}", dir.display()),
        MailTransport::Smtp(smtp) => println!("respackd is running; its mail goes to {}:{}", smtp.host, smtp.port),
    }
    println!("(respack-web pid {}; Ctrl-C stops respack-web and respackd)", server.pid());
    let result = server.wait();
    drop(daemon);
    result
}
