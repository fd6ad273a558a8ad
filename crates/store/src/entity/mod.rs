//! sea-orm entities, one module per table. They never leave this crate.

pub mod accounts;
pub mod api_keys;
pub mod audit_log;
pub mod balance_ledger;
pub mod bill_lines;
pub mod column_settings;
pub mod daemon_cursors;
pub mod deductions;
pub mod login_throttle;
pub mod orders;
pub mod outbox;
pub mod pack_items;
pub mod pack_tags;
pub mod packs;
pub mod products;
pub mod subproducts;
pub mod usage_daily;
pub mod usage_records;
pub mod users;
pub mod web_sessions;
