//! Usage: recording metered usage against packs (exactly once per idempotency key), and the
//! usage-details queries (deductions by pack and time, daily totals per usage type).
//!
//! A batch is one transaction. Each record is planned by `respack_domain::plan_deduction`
//! against its candidate packs as stored, and every item change is a guarded update on the
//! values the plan was made from, so a concurrent writer makes the batch retry instead of
//! overdrawing. Overage is priced at the subproduct's list price into a pay-as-you-go bill line.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use respack_domain::rust_decimal::Decimal;
use respack_domain::{apply_plan, plan_deduction, BillActionType, LifecycleEvent, Money, Pack, UsageRecord};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};

use crate::accounts::load_account;
use crate::bills::{write_bill_line, NewBillLine};
use crate::catalog::CatalogSubproduct;
use crate::convert::{instant, millis, money, money_units, quantity, quantity_units};
use crate::entity::{deductions, pack_items, packs, usage_daily, usage_records};
use crate::error::{StoreError, StoreResult};
use crate::pack_rows::{hydrate, update_pack};
use crate::packs::{Page, MAX_PAGE};
use crate::{retrying, Store};

/// Most records one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// One usage record as a metering system sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageInput {
    /// Unique per account; a repeat returns the first outcome and changes nothing.
    pub idempotency_key: String,
    /// Product code, e.g. `p_mps`.
    pub product: String,
    /// Subproduct code, e.g. `sp_mps_general_transcoding`.
    pub subproduct: String,
    pub usage_type: Option<String>,
    /// Capacity unit; defaults to the subproduct's.
    pub unit: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub quantity: Decimal,
    pub occurred_at: DateTime<Utc>,
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageOutcome {
    pub idempotency_key: String,
    pub usage_record_id: i64,
    pub deducted: Decimal,
    pub overage: Decimal,
    pub overage_cost: Money,
    /// True when the key was seen before and this is the first outcome, replayed.
    pub replayed: bool,
}

/// One deduction as the usage-details page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeductionRow {
    pub id: i64,
    pub account_id: i64,
    pub usage_record_id: i64,
    pub pack_id: String,
    pub item_position: i32,
    pub usage_type: Option<String>,
    pub cycle_index: i64,
    pub amount: Decimal,
    /// Remaining before and after; `None` for unlimited packs.
    pub before: Option<Decimal>,
    pub after: Option<Decimal>,
    pub deducted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct DeductionFilter {
    pub account_ids: Vec<i64>,
    pub pack_id: Option<String>,
    pub usage_type: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub offset: u64,
    pub limit: u64,
}

/// Usage of one type from one pack on one day (in the account's time zone).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyUsage {
    pub day: NaiveDate,
    pub pack_id: String,
    /// Empty when the records named no usage type.
    pub usage_type: String,
    pub amount: Decimal,
    pub records: i64,
}

struct CheckedRecord<'a> {
    input: &'a UsageInput,
    record: UsageRecord,
    subproduct: CatalogSubproduct,
}

fn to_deduction_row(row: deductions::Model) -> StoreResult<DeductionRow> {
    Ok(DeductionRow {
        id: row.id,
        account_id: row.account_id,
        usage_record_id: row.usage_record_id,
        pack_id: row.pack_id,
        item_position: row.item_position,
        usage_type: row.usage_type,
        cycle_index: row.cycle_index,
        amount: quantity(row.amount),
        before: row.before.map(quantity),
        after: row.after.map(quantity),
        deducted_at: instant(row.deducted_at)?,
    })
}

async fn candidates(conn: &impl ConnectionTrait, record: &UsageRecord) -> StoreResult<Vec<Pack>> {
    let at = millis(record.occurred_at);
    let rows = packs::Entity::find()
        .filter(packs::Column::AccountId.eq(record.account_id))
        .filter(packs::Column::SubproductCode.eq(record.subproduct.as_str()))
        .filter(packs::Column::Lifecycle.is_in(["inactive", "valid"]))
        .filter(packs::Column::Frozen.eq(false))
        .filter(packs::Column::EffectiveAt.lte(at))
        .filter(packs::Column::ExpiresAt.gt(at))
        // On PostgreSQL, concurrent batches queue on the packs they share instead of
        // conflicting (SQLite has one writer anyway).
        .order_by_asc(packs::Column::Id)
        .lock_exclusive()
        .all(conn)
        .await?;
    hydrate(conn, rows).await
}

/// Writes one item's new remaining if it still holds what the plan saw.
async fn write_item(conn: &impl ConnectionTrait, seen: &Pack, now_pack: &Pack, position: usize) -> StoreResult<()> {
    let old = &seen.items[position];
    let new = &now_pack.items[position];
    let mut update = pack_items::Entity::update_many()
        .col_expr(pack_items::Column::Remaining, Expr::value(quantity_units(new.remaining)?))
        .col_expr(pack_items::Column::CycleIndex, Expr::value(new.cycle_index))
        .col_expr(pack_items::Column::Used, Expr::value(quantity_units(new.used)?))
        .filter(pack_items::Column::PackId.eq(seen.id.as_str()))
        .filter(pack_items::Column::Position.eq(i32::try_from(position).unwrap_or(i32::MAX)))
        .filter(pack_items::Column::Used.eq(quantity_units(old.used)?));
    if old.capacity.is_some() {
        update = update
            .filter(pack_items::Column::Remaining.eq(quantity_units(old.remaining)?))
            .filter(pack_items::Column::CycleIndex.eq(old.cycle_index));
    }
    if update.exec(conn).await?.rows_affected != 1 {
        return Err(StoreError::conflict(format!("capacity of resource pack {}", seen.id)));
    }
    Ok(())
}

async fn replayed(conn: &impl ConnectionTrait, row: usage_records::Model) -> StoreResult<UsageOutcome> {
    let deducted: i64 = deductions::Entity::find()
        .filter(deductions::Column::UsageRecordId.eq(row.id))
        .all(conn)
        .await?
        .iter()
        .map(|d| d.amount)
        .sum();
    Ok(UsageOutcome {
        idempotency_key: row.idempotency_key,
        usage_record_id: row.id,
        deducted: quantity(deducted),
        overage: quantity(row.overage),
        overage_cost: money(row.overage_cost),
        replayed: true,
    })
}

impl Store {
    /// Deducts a batch of usage records of one account, all or nothing.
    pub async fn record_usage(
        &self,
        account_id: i64,
        inputs: &[UsageInput],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<UsageOutcome>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        if inputs.len() > MAX_BATCH {
            return Err(StoreError::invalid(format!(
                "a batch holds at most {MAX_BATCH} records (got {}); split it",
                inputs.len()
            )));
        }
        let checked = self.check_usage(account_id, inputs, now).await?;
        retrying(|| self.record_checked_usage(account_id, &checked, now)).await
    }

    async fn check_usage<'a>(
        &self,
        account_id: i64,
        inputs: &'a [UsageInput],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<CheckedRecord<'a>>> {
        self.account(account_id).await?;
        let mut keys = HashSet::new();
        let mut checked = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.iter().enumerate() {
            let at =
                |message: String| StoreError::invalid(format!("record {index} ({}): {message}", input.idempotency_key));
            if input.idempotency_key.is_empty() || input.idempotency_key.len() > 128 {
                return Err(at("the idempotency key must be 1 to 128 characters".into()));
            }
            if !keys.insert(input.idempotency_key.as_str()) {
                return Err(at("the idempotency key appears twice in this batch".into()));
            }
            let subproduct = self.subproduct(&input.subproduct).await.map_err(|_| {
                at(format!("unknown subproduct {:?}; see the catalog for valid codes", input.subproduct))
            })?;
            if subproduct.product_code != input.product {
                return Err(at(format!(
                    "subproduct {} belongs to product {}",
                    subproduct.code, subproduct.product_code
                )));
            }
            let record = UsageRecord {
                account_id,
                product: input.product.clone(),
                subproduct: input.subproduct.clone(),
                usage_type: input.usage_type.clone().filter(|t| !t.is_empty()),
                unit: input.unit.clone().unwrap_or_else(|| subproduct.unit.clone()),
                attributes: input.attributes.clone(),
                quantity: input.quantity,
                occurred_at: input.occurred_at,
            };
            record.validate(now).map_err(|error| at(error.to_string()))?;
            quantity_units(record.quantity).map_err(|error| at(error.to_string()))?;
            checked.push(CheckedRecord { input, record, subproduct });
        }
        Ok(checked)
    }

    async fn record_checked_usage(
        &self,
        account_id: i64,
        checked: &[CheckedRecord<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<UsageOutcome>> {
        let tx = self.write().await?;
        let account = load_account(&*tx, account_id).await?;
        let mut outcomes = Vec::with_capacity(checked.len());
        for CheckedRecord { input, record, subproduct } in checked {
            let existing = usage_records::Entity::find()
                .filter(usage_records::Column::AccountId.eq(account_id))
                .filter(usage_records::Column::IdempotencyKey.eq(input.idempotency_key.as_str()))
                .one(&*tx)
                .await?;
            if let Some(row) = existing {
                outcomes.push(replayed(&*tx, row).await?);
                continue;
            }
            let seen = candidates(&*tx, record).await?;
            let plan = plan_deduction(record, &seen);
            let mut after = seen.clone();
            let changes = apply_plan(&plan, &mut after, record.occurred_at);
            let overage_cost = subproduct.list_price.times(plan.overage);
            let row = usage_records::ActiveModel {
                account_id: Set(account_id),
                idempotency_key: Set(input.idempotency_key.clone()),
                product_code: Set(record.product.clone()),
                subproduct_code: Set(record.subproduct.clone()),
                usage_type: Set(record.usage_type.clone()),
                unit: Set(record.unit.clone()),
                attributes: Set(serde_json::to_string(&record.attributes).unwrap_or_else(|_| "{}".into())),
                quantity: Set(quantity_units(record.quantity)?),
                overage: Set(quantity_units(plan.overage)?),
                overage_cost: Set(money_units(overage_cost)?),
                occurred_at: Set(millis(record.occurred_at)),
                received_at: Set(millis(now)),
                ..Default::default()
            }
            .insert(&*tx)
            .await?;
            let day = record.occurred_at.with_timezone(&account.time_zone).date_naive().to_string();
            for line in &plan.deductions {
                let index = seen.iter().position(|pack| pack.id == line.pack_id).expect("planned from these packs");
                write_item(&*tx, &seen[index], &after[index], line.item).await?;
                deductions::ActiveModel {
                    account_id: Set(account_id),
                    usage_record_id: Set(row.id),
                    pack_id: Set(line.pack_id.to_string()),
                    item_position: Set(i32::try_from(line.item).unwrap_or(i32::MAX)),
                    usage_type: Set(record.usage_type.clone()),
                    cycle_index: Set(line.cycle_index),
                    amount: Set(quantity_units(line.amount)?),
                    before: Set(line.before.map(quantity_units).transpose()?),
                    after: Set(line.after.map(quantity_units).transpose()?),
                    deducted_at: Set(millis(record.occurred_at)),
                    ..Default::default()
                }
                .insert(&*tx)
                .await?;
                usage_daily::Entity::insert(usage_daily::ActiveModel {
                    account_id: Set(account_id),
                    pack_id: Set(line.pack_id.to_string()),
                    usage_type: Set(record.usage_type.clone().unwrap_or_default()),
                    day: Set(day.clone()),
                    amount: Set(quantity_units(line.amount)?),
                    records: Set(1),
                })
                .on_conflict(
                    OnConflict::columns([
                        usage_daily::Column::AccountId,
                        usage_daily::Column::PackId,
                        usage_daily::Column::UsageType,
                        usage_daily::Column::Day,
                    ])
                    .value(usage_daily::Column::Amount, Expr::cust("usage_daily.amount + excluded.amount"))
                    .value(usage_daily::Column::Records, Expr::cust("usage_daily.records + excluded.records"))
                    .to_owned(),
                )
                .exec(&*tx)
                .await?;
            }
            for change in changes.iter().filter(|change| change.exhausted) {
                let index = seen.iter().position(|pack| pack.id == change.pack_id).expect("planned from these packs");
                let mut exhausted = seen[index].clone();
                if exhausted.lifecycle == respack_domain::Lifecycle::Inactive {
                    exhausted.lifecycle = exhausted.lifecycle.apply(LifecycleEvent::Activate)?;
                }
                exhausted.lifecycle = exhausted.lifecycle.apply(LifecycleEvent::Exhaust)?;
                exhausted.package_expired_at = Some(record.occurred_at);
                update_pack(&*tx, &seen[index], &exhausted, now).await?;
            }
            if plan.overage > Decimal::ZERO {
                write_bill_line(
                    &*tx,
                    NewBillLine {
                        account_id,
                        zone_of_account: account.time_zone,
                        resource_id: &format!("{}-{}", account.uin, subproduct.code),
                        resource_name: &subproduct.name,
                        order_id: None,
                        action_type: BillActionType::DailySettlement,
                        business_code: &record.product,
                        product_code: &record.subproduct,
                        region: record.attributes.get("region").map_or("-", String::as_str),
                        zone: record.attributes.get("zone").map_or("-", String::as_str),
                        config_desc: format!(
                            "{}: {} {} at {} per {}",
                            subproduct.name,
                            plan.overage.normalize(),
                            record.unit,
                            subproduct.list_price,
                            subproduct.unit
                        ),
                        total_cost: overage_cost,
                        cash_pay_amount: overage_cost,
                        fee_begin_at: record.occurred_at,
                        fee_end_at: record.occurred_at,
                        pay_time: now,
                        operator: None,
                    },
                    now,
                )
                .await?;
            }
            outcomes.push(UsageOutcome {
                idempotency_key: input.idempotency_key.clone(),
                usage_record_id: row.id,
                deducted: plan.deducted(),
                overage: plan.overage,
                overage_cost,
                replayed: false,
            });
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Deductions, newest first, by pack, usage type and deduction-time range.
    pub async fn list_deductions(&self, filter: &DeductionFilter) -> StoreResult<Page<DeductionRow>> {
        if filter.account_ids.is_empty() {
            return Err(StoreError::invalid("a deduction query needs the accounts it may see"));
        }
        let mut query =
            deductions::Entity::find().filter(deductions::Column::AccountId.is_in(filter.account_ids.clone()));
        if let Some(pack_id) = filter.pack_id.as_deref().filter(|p| !p.is_empty()) {
            query = query.filter(deductions::Column::PackId.eq(pack_id));
        }
        if let Some(usage_type) = filter.usage_type.as_deref().filter(|t| !t.is_empty()) {
            query = query.filter(deductions::Column::UsageType.eq(usage_type));
        }
        if let Some(from) = filter.from {
            query = query.filter(deductions::Column::DeductedAt.gte(millis(from)));
        }
        if let Some(to) = filter.to {
            query = query.filter(deductions::Column::DeductedAt.lt(millis(to)));
        }
        let total = query.clone().count(self.read()).await?;
        let limit = if filter.limit == 0 { 20 } else { filter.limit.min(MAX_PAGE) };
        let rows = query
            .order_by_desc(deductions::Column::DeductedAt)
            .order_by_desc(deductions::Column::Id)
            .offset(filter.offset)
            .limit(limit)
            .all(self.read())
            .await?;
        Ok(Page { items: rows.into_iter().map(to_deduction_row).collect::<StoreResult<_>>()?, total })
    }

    /// Daily totals per pack and usage type between two days (inclusive), oldest first.
    pub async fn daily_usage(
        &self,
        account_ids: &[i64],
        pack_id: Option<&str>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<DailyUsage>> {
        let mut query = usage_daily::Entity::find()
            .filter(usage_daily::Column::AccountId.is_in(account_ids.to_vec()))
            .filter(usage_daily::Column::Day.gte(from.to_string()))
            .filter(usage_daily::Column::Day.lte(to.to_string()));
        if let Some(pack_id) = pack_id.filter(|p| !p.is_empty()) {
            query = query.filter(usage_daily::Column::PackId.eq(pack_id));
        }
        query
            .order_by_asc(usage_daily::Column::Day)
            .order_by_asc(usage_daily::Column::PackId)
            .order_by_asc(usage_daily::Column::UsageType)
            .all(self.read())
            .await?
            .into_iter()
            .map(|row| {
                Ok(DailyUsage {
                    day: row.day.parse().map_err(|_| StoreError::Corrupt(format!("day {:?}", row.day)))?,
                    pack_id: row.pack_id,
                    usage_type: row.usage_type,
                    amount: quantity(row.amount),
                    records: row.records,
                })
            })
            .collect()
    }
}
