//! `cargo xtask bench <name>`: benchmarks that print figures and ratios (never pass/fail).

mod api;
mod deduct;
mod sweep;
mod web;
mod workload;

use anyhow::{bail, Result};

pub fn run(args: &[String]) -> Result<()> {
    if cfg!(debug_assertions) {
        // Measure optimized code: run this command again from a release build.
        println!("xtask: building a release xtask for benchmarking (the first time takes a few minutes)");
        let sh = xshell::Shell::new()?;
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        sh.cmd(cargo).args(["run", "--release", "--quiet", "--package", "xtask", "--", "bench"]).args(args).run()?;
        return Ok(());
    }
    match args.first().map(String::as_str) {
        Some("deduct") => deduct::run(&args[1..]),
        Some("sweep") => sweep::run(&args[1..]),
        Some("api") => api::run(&args[1..]),
        Some("web") => web::run(&args[1..]),
        Some(other) => bail!("unknown benchmark `{other}`; available: deduct, sweep, api, web"),
        None => bail!("name a benchmark: `cargo xtask bench deduct|sweep|api|web` (see `cargo xtask help`)"),
    }
}
