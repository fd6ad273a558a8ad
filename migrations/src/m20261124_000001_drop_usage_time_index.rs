//! Drops `ix_usage_time` (usage records by account and time): no query reads usage records by
//! time — the usage details come from `deductions` and `usage_daily` — and every recorded
//! usage paid for the index with a B-tree insert at a random place.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("ix_usage_time").table(UsageRecords::Table).if_exists().to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_usage_time")
                    .table(UsageRecords::Table)
                    .col(UsageRecords::AccountId)
                    .col(UsageRecords::OccurredAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    AccountId,
    OccurredAt,
}
