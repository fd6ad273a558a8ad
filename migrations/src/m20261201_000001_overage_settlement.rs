//! Overage is paid from the balance once its day has ended (respackd's settlement), no longer
//! counted as paid when it is billed: settlement lines start with nothing paid, and
//! `ix_bill_lines_unsettled` holds the lines still owed, so finding them is one index probe.
//!
//! Lines billed before this version were shown as paid although no balance paid them; they are
//! reset to unpaid, and the first settlement after the upgrade collects them (ledger rows
//! "overage_settlement").

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, TransactionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One connection and one transaction (see m20261124_000002 on SQLite's pool).
        let txn = manager.get_connection().begin().await?;
        txn.execute_unprepared("UPDATE bill_lines SET cash_pay_amount = 0 WHERE settlement_key IS NOT NULL").await?;
        txn.execute_unprepared(
            "CREATE INDEX ix_bill_lines_unsettled ON bill_lines (fee_end_at) \
             WHERE settlement_key IS NOT NULL AND cash_pay_amount < total_cost",
        )
        .await?;
        txn.commit().await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let txn = manager.get_connection().begin().await?;
        txn.execute_unprepared("DROP INDEX IF EXISTS ix_bill_lines_unsettled").await?;
        txn.execute_unprepared("UPDATE bill_lines SET cash_pay_amount = total_cost WHERE settlement_key IS NOT NULL")
            .await?;
        txn.commit().await
    }
}
