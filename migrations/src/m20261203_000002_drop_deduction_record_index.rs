//! Drops `ix_deductions_record` (deductions by usage record). Its one reader was the answer to
//! a replayed idempotency key, which summed the record's deductions; that sum is the record's
//! quantity less its overage (every record's quantity is deducted or billed as overage, never
//! both, never neither), both stored on the record itself. Meanwhile every deduction paid an
//! insert into it, and every usage group the pages of those inserts.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("ix_deductions_record").table(Deductions::Table).if_exists().to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_deductions_record")
                    .table(Deductions::Table)
                    .col(Deductions::UsageRecordId)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Deductions {
    Table,
    UsageRecordId,
}

#[cfg(test)]
mod tests {
    use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
    use sea_orm_migration::{MigrationName, MigratorTrait};

    use super::Migration;
    use crate::Migrator;

    async fn deduction_indexes(db: &DatabaseConnection) -> Vec<String> {
        let rows = db
            .query_all(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'deductions' AND sql IS NOT NULL \
                 ORDER BY name",
            ))
            .await
            .unwrap();
        rows.iter().map(|row| row.try_get_by_index(0).unwrap()).collect()
    }

    #[tokio::test]
    async fn drops_the_record_index_and_puts_it_back() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(deduction_indexes(&db).await, ["ix_deductions_time"], "the usage details' index only");

        // Back to before this migration (and the ones after it).
        let this = Migrator::migrations().iter().position(|m| m.name() == Migration.name()).unwrap();
        Migrator::down(&db, Some((Migrator::migrations().len() - this) as u32)).await.unwrap();
        assert_eq!(deduction_indexes(&db).await, ["ix_deductions_record", "ix_deductions_time"]);
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(deduction_indexes(&db).await, ["ix_deductions_time"]);
    }
}
