//! `respack-web`: settings → telemetry → a subcommand (`keys create`, see `cli`) or build → serve
//! until SIGTERM or Ctrl-C.

use anyhow::Context;
use respack_config::Settings;

/// mimalloc serves Rust's allocations and, through its `override` feature, those of the C code
/// linked in (the bundled SQLite): with glibc's malloc, allocation was about a quarter of the CPU
/// time of a sweep batch or a usage group (`cargo xtask bench sweep|deduct`, README Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("cannot read respack settings")?;
    respack_web::telemetry::init(&settings.log)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(outcome) = respack_web::cli::run(&args, &settings).await {
        return outcome;
    }
    let app = respack_web::build(&settings).await?;
    app.run_until_stopped().await
}
