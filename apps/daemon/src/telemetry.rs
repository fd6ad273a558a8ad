//! The one `tracing` subscriber: structured lines on stdout, which journald stores under
//! systemd (no colours; journald adds its own timestamps, but lines keep theirs for files).

use tracing_subscriber::EnvFilter;

pub fn init(filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|error| anyhow::anyhow!("log filter {filter:?} is not valid (RESPACK_LOG / log): {error}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .try_init()
        .map_err(|error| anyhow::anyhow!("cannot install the tracing subscriber: {error}"))
}
