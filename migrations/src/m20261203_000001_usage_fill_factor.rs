//! On PostgreSQL, leaves a fifth of every page of `pack_items` and `usage_daily` free
//! (`fillfactor = 80`). Every usage group rewrites thousands of their rows — an item's
//! remaining, cycle and used; a pack's daily rollup — and PostgreSQL writes each update as a
//! new row version. On a page with room for it, and with no indexed column changed, that version
//! stays on the page (a HOT update) and no index learns of it; on a full page it goes elsewhere
//! and every index of the table gets an entry for it (`pack_items` two, `usage_daily` one).
//! Packs are loaded into full pages, so at 100 % the first update of each item left its page.
//! Measured (2026-12-03, `cargo xtask bench deduct` on PostgreSQL, 400,000 records, four
//! alternating pairs): respack 17,122 records/s on average (15,573–18,363) against 16,356
//! (15,338–17,343), the plain-SQL baseline on the same tables 11,309 against 10,740; of the
//! updates, HOT were 88 % instead of 77 % (`pack_items`) and 79 % instead of 68 %
//! (`usage_daily`). Not all: a page's dead versions are pruned only once no transaction can
//! still see them.
//!
//! A new fill factor applies to pages as they are filled from then on: an existing database is
//! not rewritten (that would lock the tables); its rows move to roomier pages as they are
//! updated. SQLite has no such setting: it rewrites a row in place.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables whose rows usage updates in place.
const UPDATED_BY_USAGE: [&str; 2] = ["pack_items", "usage_daily"];

async fn set_fill(manager: &SchemaManager<'_>, setting: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    for table in UPDATED_BY_USAGE {
        manager.get_connection().execute_unprepared(&format!("ALTER TABLE {table} {setting}")).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_fill(manager, "SET (fillfactor = 80)").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_fill(manager, "RESET (fillfactor)").await
    }
}
