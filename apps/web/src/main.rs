//! `respack-web`: settings → telemetry → a subcommand (`keys create`, see `cli`) or build → serve
//! until SIGTERM or Ctrl-C.

use anyhow::Context;
use respack_config::Settings;
// The process allocator (mimalloc).
use respack_allocator as _;

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
