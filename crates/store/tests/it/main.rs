//! The store test suite: every test runs on SQLite and on PostgreSQL (but for `schema`'s,
//! which check what one backend alone has).

mod harness;

mod fixtures;

mod accounts;
mod api_key_use;
mod bill_summary;
mod catalog_and_settings;
mod demo;
mod pack_ops;
mod packs;
mod schema;
mod sessions;
mod settlement;
mod upkeep;
mod usage;
