//! respack-web: the HTTP server. It serves the web console (the Leptos app of
//! `respack-console`, rendered here and hydrated in the browser), the metering endpoint
//! (`POST /v1/usage`) and a liveness check; the Tencent-Cloud-compatible API is routed here too. `main.rs` only wires settings and telemetry to [`build`]; tests start the same
//! [`router`] on port 0 against a throwaway store.

pub mod cli;
mod console;
mod metering;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use respack_store::Store;
use tokio::net::TcpListener;

pub use respack_clock::Clock;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Clock,
}

/// Every route of the app over `state`.
pub fn router(state: AppState) -> Router {
    let tc_api = tc_api(&state);
    Router::new()
        .route("/healthz", get(healthz))
        .merge(metering::routes())
        .merge(respack_tc_api::router(tc_api.clone()))
        .merge(console::routes(&state))
        // The SDKs' GET mode calls `GET /?…` with X-TC-Action: answered by the API, while every
        // other GET of `/` is the console's page.
        .layer(axum::middleware::from_fn_with_state(tc_api, respack_tc_api::intercept_signed_gets))
        .layer(axum::middleware::from_fn(telemetry::trace_request))
        .with_state(state)
}

/// The Tencent Cloud API 3.0 endpoint (`POST /`, `/api/v3`) over the app's store and clock.
fn tc_api(state: &AppState) -> respack_tc_api::TcApi {
    let clock = state.clock.clone();
    // `build` has checked the variables already; tests run with the defaults.
    let config = respack_tc_api::ApiConfig::from_env().unwrap_or_default();
    respack_tc_api::TcApi::new(state.store.clone(), move || clock.now(), config)
}

/// Liveness only: the process is up and serving.
async fn healthz() -> &'static str {
    "ok"
}

/// The app, bound to its address and ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
}

/// Opens the store the settings name (running pending migrations) and binds `settings.addr`
/// (port 0 picks a free port; see [`Application::port`]).
pub async fn build(settings: &respack_config::Settings) -> anyhow::Result<Application> {
    respack_tc_api::ApiConfig::from_env().map_err(anyhow::Error::msg)?;
    let store = Store::open(settings).await.context("cannot open the respack database")?;
    let listener =
        TcpListener::bind(&settings.addr).await.with_context(|| format!("cannot listen on {}", settings.addr))?;
    let address = listener.local_addr().context("the listening socket has no local address")?;
    Ok(Application { listener, address, state: AppState { store, clock: Clock::system() } })
}

impl Application {
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until SIGTERM or Ctrl-C, then finishes the requests in flight and closes the
    /// database.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then shuts down gracefully.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        tracing::info!(address = %self.address, "respack-web is listening");
        let store = self.state.store.clone();
        // Pages are streamed in several writes: without TCP_NODELAY the last one waits for the
        // client's delayed ACK (40 ms on Linux), which was most of a page view's latency.
        let listener = self.listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
            }
        });
        // The client address feeds the console's sign-in throttle.
        axum::serve(listener, router(self.state).into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(stop)
            .await
            .context("the server failed")?;
        store.close().await.context("cannot close the database cleanly")?;
        tracing::info!("respack-web stopped");
        Ok(())
    }
}

/// Completes on Ctrl-C, or on SIGTERM (how systemd and container runtimes stop a service).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
