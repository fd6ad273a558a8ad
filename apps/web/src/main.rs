//! `respack-web`: settings → telemetry → build → serve until SIGTERM or Ctrl-C.

use anyhow::Context;
use respack_config::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("cannot read respack settings")?;
    respack_web::telemetry::init(&settings.log)?;
    let app = respack_web::build(&settings).await?;
    app.run_until_stopped().await
}
