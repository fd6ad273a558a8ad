//! The monthly bill summary behind `DescribeBillResourceSummary`: one row per account, month,
//! resource and ActionType, numbered densely per account and month so a page at any offset is
//! an index range, plus one build marker per month (`building` / `ready`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BillSummaries::Table)
                    .col(big_integer(BillSummaries::AccountId))
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
                    .col(big_integer(BillSummaries::LineCount))
                    .primary_key(
                        Index::create()
                            .col(BillSummaries::AccountId)
                            .col(BillSummaries::BillMonth)
                            .col(BillSummaries::Position),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_bill_summaries_resource")
                    .table(BillSummaries::Table)
                    .col(BillSummaries::AccountId)
                    .col(BillSummaries::BillMonth)
                    .col(BillSummaries::ResourceId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_bill_summaries_action")
                    .table(BillSummaries::Table)
                    .col(BillSummaries::AccountId)
                    .col(BillSummaries::BillMonth)
                    .col(BillSummaries::ActionType)
                    .col(BillSummaries::Position)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BillSummaryBuilds::Table)
                    .col(string(BillSummaryBuilds::BillMonth).primary_key())
                    .col(string(BillSummaryBuilds::Status))
                    .col(big_integer(BillSummaryBuilds::StartedAt))
                    .col(big_integer_null(BillSummaryBuilds::ReadyAt))
                    .col(big_integer(BillSummaryBuilds::Summaries))
                    .col(big_integer(BillSummaryBuilds::Lines))
                    .col(big_integer(BillSummaryBuilds::Version))
                    .to_owned(),
            )
            .await?;
        // Building a month reads its bill lines by month across accounts.
        manager
            .create_index(
                Index::create()
                    .name("ix_bill_lines_by_month")
                    .table(BillLines::Table)
                    .col(BillLines::BillMonth)
                    .col(BillLines::AccountId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("ix_bill_lines_by_month").table(BillLines::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(BillSummaryBuilds::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(BillSummaries::Table).to_owned()).await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum BillSummaries {
    Table,
    AccountId,
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
enum BillSummaryBuilds {
    Table,
    BillMonth,
    Status,
    StartedAt,
    ReadyAt,
    Summaries,
    Lines,
    Version,
}

#[derive(DeriveIden)]
enum BillLines {
    Table,
    AccountId,
    BillMonth,
}
