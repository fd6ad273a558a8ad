//! Wires the web console (`respack-console`, built with `ssr`) into the app: its pages, server
//! functions, sign-in forms, CSV downloads and the hydrate bundle under `/pkg`.
//!
//! The bundle is read from `$RESPACK_SITE_ROOT/pkg` (default `target/site/pkg`, which
//! `cargo xtask build-site` and `cargo xtask dev` write).

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use respack_console::server::ConsoleState;

use crate::AppState;

/// Where the site's static files are, from `RESPACK_SITE_ROOT`.
pub fn site_root() -> PathBuf {
    std::env::var_os("RESPACK_SITE_ROOT").map_or_else(|| PathBuf::from("target/site"), PathBuf::from)
}

pub fn routes(state: &AppState) -> Router<AppState> {
    let clock = state.clock.clone();
    let console = ConsoleState { store: state.store.clone(), clock: Arc::new(move || clock.now()) };
    respack_console::server::routes(console, &site_root())
}
