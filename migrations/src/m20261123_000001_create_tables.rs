//! The first schema: accounts, users, keys, catalog, packs and their items, usage, deductions,
//! rollups, ledger, orders, bill lines, outbox, audit log, column settings, tags.
//!
//! Conventions: every tenant table carries `account_id` (the schema can be distributed by
//! account); the catalog is global reference data. Instants are `BIGINT` Unix milliseconds;
//! money is `BIGINT` in 10^-8 units and quantities `BIGINT` in 10^-6 units, so both backends do
//! exact integer arithmetic. `version` columns guard state changes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn id_col<T: IntoIden>(name: T) -> ColumnDef {
    big_integer(name).auto_increment().primary_key().take()
}

fn index(name: &str, table: impl IntoIden, cols: Vec<DynIden>, unique: bool) -> IndexCreateStatement {
    let mut statement = Index::create();
    statement.name(name).table(table.into_iden());
    for col in cols {
        statement.col(col);
    }
    if unique {
        statement.unique();
    }
    statement.to_owned()
}

macro_rules! cols {
    ($($col:expr),* $(,)?) => { vec![$(DynIden::from(SeaRc::new($col))),*] };
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in tables() {
            manager.create_table(table).await?;
        }
        for index in indexes() {
            manager.create_index(index).await?;
        }
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(WriteLock::Table)
                    .columns([WriteLock::Id, WriteLock::N])
                    .values_panic([1.into(), 0.into()])
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in tables().iter().rev() {
            let name = table.get_table_name().expect("every table has a name").clone();
            manager.drop_table(Table::drop().table(name).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}

fn tables() -> Vec<TableCreateStatement> {
    vec![
        Table::create()
            .table(WriteLock::Table)
            .col(integer(WriteLock::Id).primary_key())
            .col(big_integer(WriteLock::N))
            .to_owned(),
        Table::create()
            .table(Accounts::Table)
            .col(id_col(Accounts::Id))
            .col(string_uniq(Accounts::Uin))
            .col(string(Accounts::Name))
            .col(string(Accounts::Kind))
            .col(big_integer_null(Accounts::ParentAccountId))
            .col(big_integer(Accounts::Balance))
            .col(boolean(Accounts::AllowArrears))
            .col(string(Accounts::TimeZone))
            .col(string(Accounts::Language))
            .col(text(Accounts::AlertRecipients))
            .col(text(Accounts::AlertThresholds))
            .col(big_integer(Accounts::Version))
            .col(big_integer(Accounts::CreatedAt))
            .to_owned(),
        Table::create()
            .table(Users::Table)
            .col(id_col(Users::Id))
            .col(big_integer(Users::AccountId))
            .col(string_uniq(Users::Email))
            .col(string(Users::DisplayName))
            .col(string(Users::PasswordHash))
            .col(string(Users::Role))
            .col(boolean(Users::Disabled))
            .col(big_integer(Users::CreatedAt))
            .to_owned(),
        Table::create()
            .table(ApiKeys::Table)
            .col(id_col(ApiKeys::Id))
            .col(big_integer(ApiKeys::AccountId))
            .col(string_uniq(ApiKeys::SecretId))
            .col(text(ApiKeys::SealedSecretKey))
            .col(string(ApiKeys::Note))
            .col(big_integer_null(ApiKeys::CreatedByUserId))
            .col(big_integer(ApiKeys::CreatedAt))
            .col(big_integer_null(ApiKeys::RevokedAt))
            .col(big_integer_null(ApiKeys::LastUsedAt))
            .to_owned(),
        Table::create()
            .table(Products::Table)
            .col(string(Products::Code).primary_key())
            .col(string(Products::Name))
            .col(integer(Products::SortOrder))
            .to_owned(),
        Table::create()
            .table(Subproducts::Table)
            .col(string(Subproducts::Code).primary_key())
            .col(string(Subproducts::ProductCode))
            .col(string(Subproducts::Name))
            .col(string(Subproducts::Unit))
            .col(big_integer(Subproducts::ListPrice))
            .col(integer(Subproducts::SortOrder))
            .to_owned(),
        Table::create()
            .table(Packs::Table)
            .col(string(Packs::Id).primary_key())
            .col(big_integer(Packs::AccountId))
            .col(string(Packs::Name))
            .col(string(Packs::ProductCode))
            .col(string(Packs::SubproductCode))
            .col(string(Packs::Region))
            .col(string(Packs::Zone))
            .col(string(Packs::Lifecycle))
            .col(boolean(Packs::Frozen))
            .col(string(Packs::PaymentMode))
            .col(string_null(Packs::CycleUnit))
            .col(string(Packs::TermUnit))
            .col(integer(Packs::TermCount))
            .col(string(Packs::TimeZone))
            .col(big_integer(Packs::EffectiveAt))
            .col(big_integer(Packs::ExpiresAt))
            .col(big_integer_null(Packs::PackageExpiredAt))
            .col(big_integer(Packs::PurchasedAt))
            .col(string(Packs::RenewalMethod))
            .col(integer_null(Packs::AutoRenewPeriod))
            .col(big_integer(Packs::UnitPrice))
            .col(big_integer(Packs::PricePaid))
            .col(text(Packs::Scope))
            .col(big_integer(Packs::Version))
            .col(big_integer(Packs::UpdatedAt))
            .to_owned(),
        Table::create()
            .table(PackItems::Table)
            .col(id_col(PackItems::Id))
            .col(big_integer(PackItems::AccountId))
            .col(string(PackItems::PackId))
            .col(integer(PackItems::Position))
            .col(string(PackItems::Name))
            .col(string(PackItems::Unit))
            .col(string_null(PackItems::UsageType))
            .col(big_integer_null(PackItems::Capacity))
            .col(big_integer(PackItems::Remaining))
            .col(big_integer(PackItems::CycleIndex))
            .col(big_integer(PackItems::Used))
            .to_owned(),
        Table::create()
            .table(PackTags::Table)
            .col(big_integer(PackTags::AccountId))
            .col(string(PackTags::PackId))
            .col(string(PackTags::Key))
            .col(string(PackTags::Value))
            .primary_key(Index::create().col(PackTags::PackId).col(PackTags::Key))
            .to_owned(),
        Table::create()
            .table(UsageRecords::Table)
            .col(id_col(UsageRecords::Id))
            .col(big_integer(UsageRecords::AccountId))
            .col(string(UsageRecords::IdempotencyKey))
            .col(string(UsageRecords::ProductCode))
            .col(string(UsageRecords::SubproductCode))
            .col(string_null(UsageRecords::UsageType))
            .col(string(UsageRecords::Unit))
            .col(text(UsageRecords::Attributes))
            .col(big_integer(UsageRecords::Quantity))
            .col(big_integer(UsageRecords::Overage))
            .col(big_integer(UsageRecords::OverageCost))
            .col(big_integer(UsageRecords::OccurredAt))
            .col(big_integer(UsageRecords::ReceivedAt))
            .to_owned(),
        Table::create()
            .table(Deductions::Table)
            .col(id_col(Deductions::Id))
            .col(big_integer(Deductions::AccountId))
            .col(big_integer(Deductions::UsageRecordId))
            .col(string(Deductions::PackId))
            .col(integer(Deductions::ItemPosition))
            .col(string_null(Deductions::UsageType))
            .col(big_integer(Deductions::CycleIndex))
            .col(big_integer(Deductions::Amount))
            .col(big_integer_null(Deductions::Before))
            .col(big_integer_null(Deductions::After))
            .col(big_integer(Deductions::DeductedAt))
            .to_owned(),
        Table::create()
            .table(UsageDaily::Table)
            .col(big_integer(UsageDaily::AccountId))
            .col(string(UsageDaily::PackId))
            .col(string(UsageDaily::UsageType))
            .col(string(UsageDaily::Day))
            .col(big_integer(UsageDaily::Amount))
            .col(big_integer(UsageDaily::Records))
            .primary_key(
                Index::create()
                    .col(UsageDaily::AccountId)
                    .col(UsageDaily::PackId)
                    .col(UsageDaily::UsageType)
                    .col(UsageDaily::Day),
            )
            .to_owned(),
        Table::create()
            .table(BalanceLedger::Table)
            .col(id_col(BalanceLedger::Id))
            .col(big_integer(BalanceLedger::AccountId))
            .col(big_integer(BalanceLedger::Amount))
            .col(big_integer(BalanceLedger::BalanceAfter))
            .col(string(BalanceLedger::Kind))
            .col(string_null(BalanceLedger::OrderId))
            .col(string_null(BalanceLedger::PackId))
            .col(string(BalanceLedger::Note))
            .col(big_integer(BalanceLedger::CreatedAt))
            .to_owned(),
        Table::create()
            .table(Orders::Table)
            .col(string(Orders::Id).primary_key())
            .col(big_integer(Orders::AccountId))
            .col(string(Orders::Kind))
            .col(string_null(Orders::ClientToken))
            .col(string_null(Orders::PackId))
            .col(big_integer(Orders::Amount))
            .col(integer_null(Orders::Periods))
            .col(text(Orders::Receipt))
            .col(big_integer(Orders::CreatedAt))
            .to_owned(),
        Table::create()
            .table(BillLines::Table)
            .col(id_col(BillLines::Id))
            .col(big_integer(BillLines::AccountId))
            .col(string(BillLines::BillMonth))
            .col(string(BillLines::ResourceId))
            .col(string(BillLines::ResourceName))
            .col(string_null(BillLines::OrderId))
            .col(string(BillLines::ActionType))
            .col(string(BillLines::PayMode))
            .col(string(BillLines::BusinessCode))
            .col(string(BillLines::ProductCode))
            .col(string(BillLines::Region))
            .col(string(BillLines::Zone))
            .col(string(BillLines::ConfigDesc))
            .col(big_integer(BillLines::TotalCost))
            .col(big_integer(BillLines::CashPayAmount))
            .col(big_integer(BillLines::FeeBeginAt))
            .col(big_integer(BillLines::FeeEndAt))
            .col(big_integer(BillLines::PayTime))
            .col(string_null(BillLines::OperateUserId))
            .col(string_null(BillLines::SettlementKey))
            .col(big_integer(BillLines::CreatedAt))
            .to_owned(),
        Table::create()
            .table(Outbox::Table)
            .col(id_col(Outbox::Id))
            .col(big_integer(Outbox::AccountId))
            .col(string(Outbox::Kind))
            .col(string_uniq(Outbox::DedupeKey))
            .col(text(Outbox::Recipients))
            .col(string(Outbox::Subject))
            .col(text(Outbox::BodyText))
            .col(text(Outbox::BodyHtml))
            .col(string(Outbox::Status))
            .col(integer(Outbox::Attempts))
            .col(big_integer(Outbox::NextAttemptAt))
            .col(text_null(Outbox::LastError))
            .col(big_integer(Outbox::CreatedAt))
            .col(big_integer_null(Outbox::SentAt))
            .to_owned(),
        Table::create()
            .table(AuditLog::Table)
            .col(id_col(AuditLog::Id))
            .col(big_integer(AuditLog::AccountId))
            .col(string(AuditLog::Actor))
            .col(string(AuditLog::Action))
            .col(string(AuditLog::Target))
            .col(text(AuditLog::Detail))
            .col(big_integer(AuditLog::CreatedAt))
            .to_owned(),
        Table::create()
            .table(ColumnSettings::Table)
            .col(big_integer(ColumnSettings::AccountId))
            .col(big_integer(ColumnSettings::UserId))
            .col(string(ColumnSettings::Page))
            .col(text(ColumnSettings::Columns))
            .col(big_integer(ColumnSettings::UpdatedAt))
            .primary_key(Index::create().col(ColumnSettings::UserId).col(ColumnSettings::Page))
            .to_owned(),
    ]
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        index("ix_users_account", Users::Table, cols![Users::AccountId], false),
        index("ix_api_keys_account", ApiKeys::Table, cols![ApiKeys::AccountId], false),
        index("ix_accounts_parent", Accounts::Table, cols![Accounts::ParentAccountId], false),
        index(
            "ix_packs_account_product",
            Packs::Table,
            cols![Packs::AccountId, Packs::ProductCode, Packs::ExpiresAt],
            false,
        ),
        index(
            "ix_packs_account_subproduct",
            Packs::Table,
            cols![Packs::AccountId, Packs::SubproductCode, Packs::Lifecycle],
            false,
        ),
        index("ix_packs_due", Packs::Table, cols![Packs::Lifecycle, Packs::ExpiresAt], false),
        index("ix_packs_activation", Packs::Table, cols![Packs::Lifecycle, Packs::EffectiveAt], false),
        index("ux_pack_items_position", PackItems::Table, cols![PackItems::PackId, PackItems::Position], true),
        index("ix_pack_tags_key", PackTags::Table, cols![PackTags::AccountId, PackTags::Key, PackTags::Value], false),
        index(
            // Key first: a batch looks its keys up with `idempotency_key IN (…)`.
            "ux_usage_idempotency",
            UsageRecords::Table,
            cols![UsageRecords::IdempotencyKey, UsageRecords::AccountId],
            true,
        ),
        index("ix_usage_time", UsageRecords::Table, cols![UsageRecords::AccountId, UsageRecords::OccurredAt], false),
        index(
            "ix_deductions_pack_time",
            Deductions::Table,
            cols![Deductions::AccountId, Deductions::PackId, Deductions::DeductedAt],
            false,
        ),
        index("ix_deductions_time", Deductions::Table, cols![Deductions::AccountId, Deductions::DeductedAt], false),
        index("ix_deductions_record", Deductions::Table, cols![Deductions::UsageRecordId], false),
        index(
            "ix_ledger_account",
            BalanceLedger::Table,
            cols![BalanceLedger::AccountId, BalanceLedger::CreatedAt],
            false,
        ),
        index(
            "ux_orders_client_token",
            Orders::Table,
            cols![Orders::AccountId, Orders::Kind, Orders::ClientToken],
            true,
        ),
        index("ix_orders_pack", Orders::Table, cols![Orders::AccountId, Orders::PackId], false),
        index(
            "ix_bill_lines_month",
            BillLines::Table,
            cols![BillLines::AccountId, BillLines::BillMonth, BillLines::ResourceId],
            false,
        ),
        index("ux_bill_lines_settlement", BillLines::Table, cols![BillLines::SettlementKey], true),
        index("ix_outbox_due", Outbox::Table, cols![Outbox::Status, Outbox::NextAttemptAt], false),
        index("ix_audit_account", AuditLog::Table, cols![AuditLog::AccountId, AuditLog::CreatedAt], false),
    ]
}

#[derive(DeriveIden)]
enum WriteLock {
    Table,
    Id,
    N,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    Uin,
    Name,
    Kind,
    ParentAccountId,
    Balance,
    AllowArrears,
    TimeZone,
    Language,
    AlertRecipients,
    AlertThresholds,
    Version,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    AccountId,
    Email,
    DisplayName,
    PasswordHash,
    Role,
    Disabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    AccountId,
    SecretId,
    SealedSecretKey,
    Note,
    CreatedByUserId,
    CreatedAt,
    RevokedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
pub(crate) enum Products {
    Table,
    Code,
    Name,
    SortOrder,
}

#[derive(DeriveIden)]
pub(crate) enum Subproducts {
    Table,
    Code,
    ProductCode,
    Name,
    Unit,
    ListPrice,
    SortOrder,
}

#[derive(DeriveIden)]
enum Packs {
    Table,
    Id,
    AccountId,
    Name,
    ProductCode,
    SubproductCode,
    Region,
    Zone,
    Lifecycle,
    Frozen,
    PaymentMode,
    CycleUnit,
    TermUnit,
    TermCount,
    TimeZone,
    EffectiveAt,
    ExpiresAt,
    PackageExpiredAt,
    PurchasedAt,
    RenewalMethod,
    AutoRenewPeriod,
    UnitPrice,
    PricePaid,
    Scope,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PackItems {
    Table,
    Id,
    AccountId,
    PackId,
    Position,
    Name,
    Unit,
    UsageType,
    Capacity,
    Remaining,
    CycleIndex,
    Used,
}

#[derive(DeriveIden)]
enum PackTags {
    Table,
    AccountId,
    PackId,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    Id,
    AccountId,
    IdempotencyKey,
    ProductCode,
    SubproductCode,
    UsageType,
    Unit,
    Attributes,
    Quantity,
    Overage,
    OverageCost,
    OccurredAt,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum Deductions {
    Table,
    Id,
    AccountId,
    UsageRecordId,
    PackId,
    ItemPosition,
    UsageType,
    CycleIndex,
    Amount,
    Before,
    After,
    DeductedAt,
}

#[derive(DeriveIden)]
enum UsageDaily {
    Table,
    AccountId,
    PackId,
    UsageType,
    Day,
    Amount,
    Records,
}

#[derive(DeriveIden)]
enum BalanceLedger {
    Table,
    Id,
    AccountId,
    Amount,
    BalanceAfter,
    Kind,
    OrderId,
    PackId,
    Note,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    AccountId,
    Kind,
    ClientToken,
    PackId,
    Amount,
    Periods,
    Receipt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum BillLines {
    Table,
    Id,
    AccountId,
    BillMonth,
    ResourceId,
    ResourceName,
    OrderId,
    ActionType,
    PayMode,
    BusinessCode,
    ProductCode,
    Region,
    Zone,
    ConfigDesc,
    TotalCost,
    CashPayAmount,
    FeeBeginAt,
    FeeEndAt,
    PayTime,
    OperateUserId,
    SettlementKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    AccountId,
    Kind,
    DedupeKey,
    Recipients,
    Subject,
    BodyText,
    BodyHtml,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    CreatedAt,
    SentAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    AccountId,
    Actor,
    Action,
    Target,
    Detail,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ColumnSettings {
    Table,
    AccountId,
    UserId,
    Page,
    Columns,
    UpdatedAt,
}
