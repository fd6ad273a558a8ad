//! Telemetry: the one `tracing` subscriber set-up, and a span plus a log line per request.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

/// Installs the process-wide subscriber: human-readable lines on stderr, filtered by `filter`
/// (the `log` setting, e.g. `info` or `respack_web=debug,info`).
pub fn init(filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|error| anyhow::anyhow!("log filter {filter:?} is not valid (RESPACK_LOG / log): {error}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|error| anyhow::anyhow!("cannot install the tracing subscriber: {error}"))
}

/// Runs each request in a span naming its method and path (never headers or bodies: they
/// carry credentials) and logs its status and duration.
pub async fn trace_request(request: Request, next: Next) -> Response {
    let span = tracing::info_span!("request", method = %request.method(), path = %request.uri().path());
    async move {
        let started = Instant::now();
        let response = next.run(request).await;
        let status = response.status();
        let elapsed_ms = started.elapsed().as_millis();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), elapsed_ms, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), elapsed_ms, "request finished");
        }
        response
    }
    .instrument(span)
    .await
}
