//! Drops `ix_packs_due` (lifecycle, expiry) and `ix_packs_activation` (lifecycle, effective
//! time). They served the first sweep, which looked for due packs by status and time; respackd
//! has found them through `ix_packs_next_sweep` since, and every other pack query is scoped to
//! accounts (`ix_packs_account_product`, `ix_packs_account_subproduct`) or reads one pack by ID.
//! Unused, they still cost every pack write: on PostgreSQL each sweep update of a pack (never
//! HOT: `next_sweep_at` is indexed) added an entry to both, on SQLite every change of status
//! or term moved entries in them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["ix_packs_due", "ix_packs_activation"] {
            manager.drop_index(Index::drop().name(name).table(Packs::Table).if_exists().to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, time) in [("ix_packs_due", Packs::ExpiresAt), ("ix_packs_activation", Packs::EffectiveAt)] {
            manager
                .create_index(Index::create().name(name).table(Packs::Table).col(Packs::Lifecycle).col(time).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Packs {
    Table,
    Lifecycle,
    ExpiresAt,
    EffectiveAt,
}

#[cfg(test)]
mod tests {
    use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
    use sea_orm_migration::{MigrationName, MigratorTrait};

    use super::Migration;
    use crate::Migrator;

    async fn pack_indexes(db: &DatabaseConnection) -> Vec<String> {
        let rows = db
            .query_all(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'packs' AND sql IS NOT NULL \
                 ORDER BY name",
            ))
            .await
            .unwrap();
        rows.iter().map(|row| row.try_get_by_index(0).unwrap()).collect()
    }

    #[tokio::test]
    async fn drops_the_status_indexes_and_puts_them_back() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(
            pack_indexes(&db).await,
            ["ix_packs_account_product", "ix_packs_account_subproduct", "ix_packs_next_sweep"],
            "what every pack query uses, and nothing else"
        );

        // Back to before this migration (and the ones after it).
        let this = Migrator::migrations().iter().position(|m| m.name() == Migration.name()).unwrap();
        Migrator::down(&db, Some((Migrator::migrations().len() - this) as u32)).await.unwrap();
        let restored = pack_indexes(&db).await;
        assert!(restored.contains(&"ix_packs_due".to_owned()) && restored.contains(&"ix_packs_activation".to_owned()));
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(pack_indexes(&db).await.len(), 3);
    }
}
