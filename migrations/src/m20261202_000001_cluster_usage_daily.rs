//! On SQLite, stores `usage_daily` in its primary key's B-tree (`WITHOUT ROWID`). Every usage
//! group adds to thousands of daily rows: in a rowid table each upsert probed the primary key's
//! index and then updated the row in the table, two B-trees; clustered, the key leads straight to
//! the row. Measured (2026-12-02): 7,000 upserts into 100,000 daily rows took 26 ms instead of
//! 50 (Python's sqlite3, in memory); in `cargo xtask bench deduct` (SQLite, the first 40 groups
//! of 400,000 records) the rollup statements took 1.4–1.6 s of the writer's time instead of 1.9
//! s — end to end within that machine's noise (±6 %). PostgreSQL keeps its table: a heap with
//! the primary key's index is what it has.
//!
//! SQLite cannot change a table to `WITHOUT ROWID`: the rows move to a new table, which takes
//! the old one's name, all in one transaction (SQLite's DDL is transactional), so a crash
//! leaves either table whole. A statement that fails ends the process's start with the
//! transaction still open on its connection; closing that connection rolls it back.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Rebuilds `usage_daily` as `table_options` says (`WITHOUT ROWID` or nothing), in one
/// transaction.
async fn rebuild(manager: &SchemaManager<'_>, table_options: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DatabaseBackend::Sqlite {
        return Ok(());
    }
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "BEGIN IMMEDIATE; \
             CREATE TABLE usage_daily_rebuilt ( \
               account_id bigint NOT NULL, pack_id varchar NOT NULL, usage_type varchar NOT NULL, \
               day varchar NOT NULL, amount bigint NOT NULL, records bigint NOT NULL, \
               PRIMARY KEY (account_id, pack_id, usage_type, day)){table_options}; \
             INSERT INTO usage_daily_rebuilt (account_id, pack_id, usage_type, day, amount, records) \
               SELECT account_id, pack_id, usage_type, day, amount, records FROM usage_daily; \
             DROP TABLE usage_daily; \
             ALTER TABLE usage_daily_rebuilt RENAME TO usage_daily; \
             COMMIT;"
        ))
        .await
        .map(|_| ())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, " WITHOUT ROWID").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, "").await
    }
}

#[cfg(test)]
mod tests {
    use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
    use sea_orm_migration::{MigrationName, MigratorTrait};

    use super::Migration;
    use crate::Migrator;

    async fn daily_rows(db: &DatabaseConnection) -> Vec<(i64, String, i64, i64)> {
        let rows = db
            .query_all(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT account_id, pack_id, amount, records FROM usage_daily ORDER BY account_id",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                (
                    row.try_get_by_index(0).unwrap(),
                    row.try_get_by_index(1).unwrap(),
                    row.try_get_by_index(2).unwrap(),
                    row.try_get_by_index(3).unwrap(),
                )
            })
            .collect()
    }

    async fn clustered(db: &DatabaseConnection) -> bool {
        let row = db
            .query_one(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'usage_daily'",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<String>(0).unwrap().contains("WITHOUT ROWID")
    }

    #[tokio::test]
    async fn the_rebuild_keeps_every_daily_row_both_ways() {
        let dir = std::env::temp_dir().join(format!("respack-migration-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Database::connect(format!("sqlite://{}?mode=rwc", dir.join("daily.db").display())).await.unwrap();
        let this = Migrator::migrations().iter().position(|m| m.name() == Migration.name()).unwrap();
        Migrator::up(&db, Some(this as u32)).await.unwrap();
        db.execute_unprepared(
            "INSERT INTO usage_daily (account_id, pack_id, usage_type, day, amount, records) VALUES \
             (7, 'rp-a', '', '2026-12-01', 5000000, 2), (8, 'rp-b', 'HD', '2026-12-01', 1, 1)",
        )
        .await
        .unwrap();
        let before = daily_rows(&db).await;
        assert!(!clustered(&db).await);

        Migrator::up(&db, Some(1)).await.unwrap();
        assert!(clustered(&db).await, "usage_daily is stored in its primary key's B-tree");
        assert_eq!(daily_rows(&db).await, before);
        let duplicate = db
            .execute_unprepared(
                "INSERT INTO usage_daily (account_id, pack_id, usage_type, day, amount, records) \
                 VALUES (7, 'rp-a', '', '2026-12-01', 1, 1)",
            )
            .await;
        assert!(duplicate.is_err(), "the primary key still refuses a second row for the same day");

        Migrator::down(&db, Some(1)).await.unwrap();
        assert!(!clustered(&db).await);
        assert_eq!(daily_rows(&db).await, before);
        db.close().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
