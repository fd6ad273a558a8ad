//! `DescribeBillResourceSummary` by usage month (`PeriodType=byUsedTime`) as well as by pay
//! month: each bill line also records the month its fee period begins in (`used_month`, in the
//! account's time zone, as `bill_month` is for the pay time), and summary rows carry the period
//! type they were grouped by. The summaries are derived data: the table is recreated with the
//! period type in its key and every month is marked unbuilt, so the next read or respackd's
//! next run builds it again from the bill lines.

use respack_domain::chrono::{DateTime, Utc};
use respack_domain::chrono_tz::Tz;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend, Statement, TransactionTrait, Value};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Bill lines back-filled per statement.
const BACKFILL_CHUNK: usize = 2000;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One connection and one transaction: on SQLite the migrator runs statements on any
        // pooled connection, and one still reading the old schema would see the dropped
        // table's indexes as existing.
        let txn = manager.get_connection().begin().await?;
        let manager = SchemaManager::new(&txn);
        manager
            .alter_table(
                Table::alter().table(BillLines::Table).add_column(string(BillLines::UsedMonth).default("")).to_owned(),
            )
            .await?;
        backfill_used_months(&txn).await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_bill_lines_by_used_month")
                    .table(BillLines::Table)
                    .col(BillLines::UsedMonth)
                    .col(BillLines::AccountId)
                    .to_owned(),
            )
            .await?;
        manager.drop_table(Table::drop().table(BillSummaries::Table).to_owned()).await?;
        create_summaries(&manager, true).await?;
        txn.execute_unprepared("DELETE FROM bill_summary_builds").await?;
        txn.commit().await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let txn = manager.get_connection().begin().await?;
        let manager = SchemaManager::new(&txn);
        manager.drop_table(Table::drop().table(BillSummaries::Table).to_owned()).await?;
        create_summaries(&manager, false).await?;
        txn.execute_unprepared("DELETE FROM bill_summary_builds").await?;
        manager
            .drop_index(Index::drop().name("ix_bill_lines_by_used_month").table(BillLines::Table).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(BillLines::Table).drop_column(BillLines::UsedMonth).to_owned())
            .await?;
        txn.commit().await
    }
}

/// Sets `used_month` of every existing bill line from its fee period's start in its account's
/// time zone.
async fn backfill_used_months(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let mut after: i64 = 0;
    loop {
        let rows = db
            .query_all(Statement::from_sql_and_values(
                backend,
                match backend {
                    DatabaseBackend::Postgres => {
                        "SELECT l.id, l.fee_begin_at, a.time_zone FROM bill_lines l JOIN accounts a ON a.id = l.account_id \
                         WHERE l.id > $1 ORDER BY l.id LIMIT $2"
                    }
                    _ => {
                        "SELECT l.id, l.fee_begin_at, a.time_zone FROM bill_lines l JOIN accounts a ON a.id = l.account_id \
                         WHERE l.id > ? ORDER BY l.id LIMIT ?"
                    }
                },
                [after.into(), (BACKFILL_CHUNK as i64).into()],
            ))
            .await?;
        let Some(last) = rows.last() else { return Ok(()) };
        after = last.try_get_by_index(0)?;
        let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 2);
        let mut tuples = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get_by_index(0)?;
            let fee_begin_at: i64 = row.try_get_by_index(1)?;
            let zone: String = row.try_get_by_index(2)?;
            let zone: Tz = zone.parse().unwrap_or(Tz::UTC);
            let begin = DateTime::<Utc>::from_timestamp_millis(fee_begin_at).unwrap_or_default();
            values.push(id.into());
            values.push(begin.with_timezone(&zone).format("%Y-%m").to_string().into());
            tuples.push(match backend {
                DatabaseBackend::Postgres => format!("(${}::bigint, ${})", values.len() - 1, values.len()),
                _ => "(?, ?)".to_owned(),
            });
        }
        db.execute(Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE bill_lines SET used_month = v.column2 FROM (VALUES {}) AS v WHERE bill_lines.id = v.column1",
                tuples.join(", ")
            ),
            values,
        ))
        .await?;
    }
}

/// The summary table, keyed by account, period type (when `by_period`), month and position.
async fn create_summaries(manager: &SchemaManager<'_>, by_period: bool) -> Result<(), DbErr> {
    let mut table = Table::create();
    table.table(BillSummaries::Table).col(big_integer(BillSummaries::AccountId));
    if by_period {
        table.col(string(BillSummaries::PeriodType));
    }
    table
        .col(string(BillSummaries::BillMonth))
        .col(big_integer(BillSummaries::Position))
        .col(string(BillSummaries::ResourceId))
        .col(string(BillSummaries::ResourceName))
        .col(string(BillSummaries::ActionType))
        .col(string(BillSummaries::PayMode))
        .col(string(BillSummaries::BusinessCode))
        .col(string(BillSummaries::ProductCode))
        .col(string(BillSummaries::Region))
        .col(string(BillSummaries::Zone))
        .col(string(BillSummaries::ConfigDesc))
        .col(string_null(BillSummaries::OrderId))
        .col(big_integer(BillSummaries::TotalCost))
        .col(big_integer(BillSummaries::CashPayAmount))
        .col(big_integer(BillSummaries::FeeBeginAt))
        .col(big_integer(BillSummaries::FeeEndAt))
        .col(big_integer(BillSummaries::PayTime))
        .col(string_null(BillSummaries::OperateUserId))
        .col(big_integer(BillSummaries::LineCount));
    let key = |extra: &[BillSummaries]| {
        let mut index = Index::create();
        index.col(BillSummaries::AccountId);
        if by_period {
            index.col(BillSummaries::PeriodType);
        }
        index.col(BillSummaries::BillMonth);
        for col in extra {
            index.col(col.clone());
        }
        index
    };
    table.primary_key(&mut key(&[BillSummaries::Position]));
    manager.create_table(table.to_owned()).await?;
    for (name, extra) in [
        ("ix_bill_summaries_resource", vec![BillSummaries::ResourceId]),
        ("ix_bill_summaries_action", vec![BillSummaries::ActionType, BillSummaries::Position]),
    ] {
        manager.create_index(key(&extra).name(name).table(BillSummaries::Table).to_owned()).await?;
    }
    Ok(())
}

#[derive(DeriveIden, Clone)]
enum BillSummaries {
    Table,
    AccountId,
    PeriodType,
    BillMonth,
    Position,
    ResourceId,
    ResourceName,
    ActionType,
    PayMode,
    BusinessCode,
    ProductCode,
    Region,
    Zone,
    ConfigDesc,
    OrderId,
    TotalCost,
    CashPayAmount,
    FeeBeginAt,
    FeeEndAt,
    PayTime,
    OperateUserId,
    LineCount,
}

#[derive(DeriveIden)]
enum BillLines {
    Table,
    AccountId,
    UsedMonth,
}
