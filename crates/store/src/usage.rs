//! Usage: recording metered usage against packs (exactly once per idempotency key), and the
//! usage-details queries (deductions by pack and time, daily totals per usage type).
//!
//! A caller's batch is checked here, then queued for the group writer (`usage_write`), which
//! plans and writes it together with the batches queued beside it in one transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use respack_domain::rust_decimal::Decimal;
use respack_domain::{Money, UsageRecord};
use sea_orm::sea_query::{Query, SelectStatement};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::sync::oneshot;

use crate::accounts::{load_accounts, Account};
use crate::catalog::CatalogSubproduct;
use crate::convert::{instant, millis, money_units, quantity, quantity_units};
use crate::entity::{deductions, packs, usage_daily};
use crate::error::{StoreError, StoreResult};
use crate::packs::{Page, MAX_PAGE};
use crate::usage_queue::{GroupQueue, Job};
use crate::Store;

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
    /// Only deductions from packs of this subproduct (the pack's type, e.g. TSC transcoding).
    pub subproduct: Option<String>,
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

/// A record that passed every check, with what writing it needs.
pub(crate) struct CheckedRecord {
    pub(crate) key: String,
    pub(crate) record: UsageRecord,
    pub(crate) subproduct: Arc<CatalogSubproduct>,
    pub(crate) account: Arc<Account>,
}

/// A caller's checked batch as the group writer takes it.
pub(crate) struct UsageBatch {
    pub(crate) records: Vec<CheckedRecord>,
    pub(crate) now: DateTime<Utc>,
}

/// The queue of usage batches waiting for the group writer.
pub(crate) type UsageQueue = GroupQueue<UsageBatch, Vec<UsageOutcome>>;

/// Everything checking a batch needs that does not change while it is written.
struct BatchContext {
    accounts: HashMap<i64, Arc<Account>>,
    subproducts: HashMap<String, Arc<CatalogSubproduct>>,
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

/// Checks a whole batch before anything is written: known accounts and subproducts, valid
/// quantities and times, keys unique within the batch.
fn check_usage(
    context: &BatchContext,
    records: &[(i64, &UsageInput)],
    now: DateTime<Utc>,
) -> StoreResult<Vec<CheckedRecord>> {
    let mut keys = HashSet::new();
    let mut checked = Vec::with_capacity(records.len());
    for (index, (account_id, input)) in records.iter().enumerate() {
        let key = &input.idempotency_key;
        let at = |message: String| StoreError::invalid(format!("record {index} ({}): {message}", key.escape_debug()));
        if key.is_empty() || key.chars().count() > 128 {
            return Err(at("the idempotency key must be 1 to 128 characters".into()));
        }
        // PostgreSQL cannot store NUL, and no other control character belongs in a key that
        // operators read in logs and consoles.
        if key.chars().any(char::is_control) {
            return Err(at("the idempotency key must not contain control characters".into()));
        }
        if !keys.insert((*account_id, key.as_str())) {
            return Err(at("the idempotency key appears twice in this batch".into()));
        }
        let subproduct = context
            .subproducts
            .get(&input.subproduct)
            .ok_or_else(|| at(format!("unknown subproduct {:?}; see the catalog for valid codes", input.subproduct)))?;
        if subproduct.product_code != input.product {
            return Err(at(format!("subproduct {} belongs to product {}", subproduct.code, subproduct.product_code)));
        }
        let record = UsageRecord {
            account_id: *account_id,
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
        // Whatever no pack covers is billed at the list price: that bill must be storable too.
        money_units(subproduct.list_price.times(record.quantity)).map_err(|_| {
            at(format!(
                "its cost at the list price ({} per {}) is too large to bill; split the quantity",
                subproduct.list_price, subproduct.unit
            ))
        })?;
        checked.push(CheckedRecord {
            key: input.idempotency_key.clone(),
            record,
            subproduct: subproduct.clone(),
            account: context.accounts[account_id].clone(),
        });
    }
    Ok(checked)
}

impl Store {
    /// Deducts a batch of usage records of one account, all or nothing.
    pub async fn record_usage(
        &self,
        account_id: i64,
        inputs: &[UsageInput],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<UsageOutcome>> {
        let records: Vec<(i64, &UsageInput)> = inputs.iter().map(|input| (account_id, input)).collect();
        self.record_usage_of_accounts(&records, now).await
    }

    /// Deducts a batch of usage records of any accounts (a provider's metering system sends
    /// them mixed), all or nothing: one transaction, a handful of statements per batch.
    pub async fn record_usage_of_accounts(
        &self,
        records: &[(i64, &UsageInput)],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<UsageOutcome>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if records.len() > MAX_BATCH {
            return Err(StoreError::invalid(format!(
                "a batch holds at most {MAX_BATCH} records (got {}); split it",
                records.len()
            )));
        }
        let context = self.batch_context(records).await?;
        let records = check_usage(&context, records, now)?;
        let (reply, answer) = oneshot::channel();
        let job = Job { records: records.len(), batch: UsageBatch { records, now }, reply };
        if let Some(slot) = self.usage_queue.push(job) {
            let store = self.clone();
            tokio::spawn(async move { store.write_queued_usage(slot).await });
        }
        answer.await.map_err(|_| {
            StoreError::Corrupt("the usage writer stopped before answering; send the batch again".into())
        })?
    }

    async fn batch_context(&self, records: &[(i64, &UsageInput)]) -> StoreResult<BatchContext> {
        let ids: BTreeSet<i64> = records.iter().map(|(account_id, _)| *account_id).collect();
        let accounts: HashMap<i64, Arc<Account>> = load_accounts(self.read(), &ids)
            .await?
            .into_iter()
            .map(|account| (account.id, Arc::new(account)))
            .collect();
        if let Some(missing) = ids.iter().find(|id| !accounts.contains_key(id)) {
            return Err(StoreError::not_found("account", missing));
        }
        let subproducts = self
            .catalog()
            .await?
            .into_iter()
            .flat_map(|p| p.subproducts)
            .map(|s| (s.code.clone(), Arc::new(s)))
            .collect();
        Ok(BatchContext { accounts, subproducts })
    }

    /// Deductions, newest first, by pack, usage type and deduction-time range. Read through
    /// the (account, time) index: a pack's deductions are its account's in the range, filtered
    /// (a second index by pack cost every recorded usage a random B-tree insert).
    pub async fn list_deductions(&self, filter: &DeductionFilter) -> StoreResult<Page<DeductionRow>> {
        if filter.account_ids.is_empty() {
            return Err(StoreError::invalid("a deduction query needs the accounts it may see"));
        }
        let mut query =
            deductions::Entity::find().filter(deductions::Column::AccountId.is_in(filter.account_ids.clone()));
        if let Some(pack_id) = filter.pack_id.as_deref().filter(|p| !p.is_empty()) {
            query = query.filter(deductions::Column::PackId.eq(pack_id));
        }
        if let Some(subproduct) = filter.subproduct.as_deref().filter(|s| !s.is_empty()) {
            query =
                query.filter(deductions::Column::PackId.in_subquery(packs_of_type(&filter.account_ids, subproduct)));
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

    /// Daily totals per pack and usage type between two days (inclusive), oldest first; of
    /// one pack, or of the packs of one subproduct (type), when given.
    pub async fn daily_usage(
        &self,
        account_ids: &[i64],
        pack_id: Option<&str>,
        subproduct: Option<&str>,
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
        if let Some(subproduct) = subproduct.filter(|s| !s.is_empty()) {
            query = query.filter(usage_daily::Column::PackId.in_subquery(packs_of_type(account_ids, subproduct)));
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

/// The IDs of these accounts' packs of one subproduct (through `ix_packs_account_subproduct`).
fn packs_of_type(account_ids: &[i64], subproduct: &str) -> SelectStatement {
    Query::select()
        .column(packs::Column::Id)
        .from(packs::Entity)
        .and_where(packs::Column::AccountId.is_in(account_ids.to_vec()))
        .and_where(packs::Column::SubproductCode.eq(subproduct))
        .to_owned()
}
