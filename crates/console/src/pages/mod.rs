//! The console's pages, one module each, with the server functions they call.

pub mod account;
pub mod bills;
pub mod detail;
pub mod operator;
pub mod packs;
pub mod signin;
pub mod usage;

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// The value of query parameter `name` (empty when absent), tracked.
pub fn query_param(name: &'static str) -> Memo<String> {
    let query = use_query_map();
    Memo::new(move |_| query.with(|query| query.get(name).unwrap_or_default()))
}
