//! Settings of the schema that only one backend has.

use respack_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

use crate::harness;

/// The storage options PostgreSQL keeps for `table` (`fillfactor=80`, …), if any.
async fn storage_options(db: &DatabaseConnection, table: &str) -> Vec<String> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT coalesce(reloptions, '{}')::text[] FROM pg_class WHERE relname = $1 AND relkind = 'r'",
            [table.into()],
        ))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no table {table}"));
    row.try_get_by_index(0).unwrap()
}

/// The rows usage updates in place keep room on their pages for the new versions (HOT
/// updates); the migration's `down` gives the tables PostgreSQL's default back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leaves_room_for_the_rows_usage_updates() {
    let Some(db) = harness::postgres().await else { return };
    let connection = Database::connect(db.url()).await.unwrap();
    for table in ["pack_items", "usage_daily"] {
        assert_eq!(storage_options(&connection, table).await, ["fillfactor=80"], "{table}");
    }
    assert!(storage_options(&connection, "packs").await.is_empty(), "packs are locked by usage, not updated");

    // Back to before the fill-factor migration (and any after it).
    let migrations = Migrator::migrations();
    let fill = migrations.iter().position(|m| m.name() == "m20261203_000001_usage_fill_factor").unwrap();
    Migrator::down(&connection, Some((migrations.len() - fill) as u32)).await.unwrap();
    for table in ["pack_items", "usage_daily"] {
        assert!(storage_options(&connection, table).await.is_empty(), "{table} after down");
    }
    Migrator::up(&connection, None).await.unwrap();
    assert_eq!(storage_options(&connection, "pack_items").await, ["fillfactor=80"]);
    connection.close().await.unwrap();
    db.finish().await;
}
