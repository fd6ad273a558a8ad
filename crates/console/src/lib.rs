//! respack's web console: the Leptos app customers and operators use. Built twice, never with
//! both features: `ssr` (linked into respack-web, renders pages and runs the server functions
//! against the store) and `hydrate` (the WASM the browser loads to make those pages live).
//!
//! Every server function is a public endpoint: it reads the session from the request's cookie,
//! checks the role, scopes every query to the caller's account(s) and, when it changes
//! something, checks the session's CSRF token (see `server`).

pub mod app;
pub mod dto;
pub mod i18n;
mod pages;
#[cfg(feature = "ssr")]
pub mod server;

/// The browser's entry point: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    leptos::mount::hydrate_body(app::App);
}
