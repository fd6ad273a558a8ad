//! Usage: recording metered usage against packs (exactly once per idempotency key), and the
//! usage-details queries (deductions by pack and time, daily totals per usage type).
//!
//! A batch is one transaction. Each record is planned by `respack_domain::plan_deduction`
//! against its candidate packs as stored, and every item change is a guarded update on the
//! values the plan was made from, so a concurrent writer makes the batch retry instead of
//! overdrawing. Overage is priced at the subproduct's list price into a pay-as-you-go bill line.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use respack_domain::rust_decimal::Decimal;
use respack_domain::{apply_plan, plan_deduction, Money, Pack, PackId, UsageRecord};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Set, Statement,
};
use tokio::sync::oneshot;

use crate::accounts::{load_accounts, Account};
use crate::bills::{add_settlements, Settlement};
use crate::catalog::CatalogSubproduct;
use crate::convert::{instant, millis, money, money_units, quantity, quantity_units};
use crate::db::placeholder_row;
use crate::entity::{deductions, pack_items, packs, usage_daily, usage_records};
use crate::error::{StoreError, StoreResult};
use crate::pack_rows::{item_row, pack_row, to_pack, write_packs, PACK_ITEM_COLUMNS};
use crate::packs::{Page, MAX_PAGE};
use crate::usage_queue::{GroupQueue, Job, WriterSlot};
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

/// A record that passed every check, with what writing it needs.
pub(crate) struct CheckedRecord {
    key: String,
    record: UsageRecord,
    subproduct: Arc<CatalogSubproduct>,
    account: Arc<Account>,
}

/// A caller's checked batch as the group writer takes it.
pub(crate) struct UsageBatch {
    records: Vec<CheckedRecord>,
    now: DateTime<Utc>,
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
        let at =
            |message: String| StoreError::invalid(format!("record {index} ({}): {message}", input.idempotency_key));
        if input.idempotency_key.is_empty() || input.idempotency_key.len() > 128 {
            return Err(at("the idempotency key must be 1 to 128 characters".into()));
        }
        if !keys.insert((*account_id, input.idempotency_key.as_str())) {
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

/// The live packs of exactly the (account, subproduct) pairs in the batch, with their items;
/// the domain's `candidate_item` then applies the time window and scope. On PostgreSQL they
/// are locked in ID order, so concurrent batches queue on shared packs and never deadlock on
/// them.
///
/// The pairs drive the join. PostgreSQL gets them as two array parameters (one statement and
/// one lock order however many pairs a group has). SQLite gets a VALUES list, in chunks below
/// its parameter limit; there `CROSS JOIN` keeps that list the outer loop and `INDEXED BY`
/// pins the pack index: without statistics its planner otherwise scans every live pack
/// through `ix_packs_activation`, or builds an automatic index on the list for each batch.
async fn candidates(conn: &impl ConnectionTrait, pairs: &BTreeSet<(i64, &str)>) -> StoreResult<Vec<Pack>> {
    let pairs: Vec<(i64, &str)> = pairs.iter().copied().collect();
    let mut packs: Vec<Pack> = Vec::new();
    let statements = match conn.get_database_backend() {
        DatabaseBackend::Postgres if !pairs.is_empty() => vec![postgres_candidates(&pairs)],
        DatabaseBackend::Postgres => Vec::new(),
        _ => pairs.chunks(5000).map(sqlite_candidates).collect(),
    };
    for statement in statements {
        let mut current: Option<(packs::Model, Vec<pack_items::Model>)> = None;
        for row in conn.query_all(statement).await? {
            let (pack, item) = (pack_row(&row)?, item_row(&row)?);
            match &mut current {
                Some((open, items)) if open.id == pack.id => items.push(item),
                _ => {
                    if let Some((done, items)) = current.replace((pack, vec![item])) {
                        packs.push(to_pack(done, &items, &[])?);
                    }
                }
            }
        }
        if let Some((done, items)) = current {
            packs.push(to_pack(done, &items, &[])?);
        }
    }
    Ok(packs)
}

fn postgres_candidates(pairs: &[(i64, &str)]) -> Statement {
    let accounts: Vec<String> = pairs.iter().map(|(account_id, _)| account_id.to_string()).collect();
    let subproducts: Vec<String> = pairs.iter().map(|(_, code)| array_element(code)).collect();
    Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        format!(
            "SELECT {PACK_ITEM_COLUMNS} FROM packs p \
             JOIN unnest($1::text::bigint[], $2::text::text[]) AS w (account_id, subproduct_code) \
               ON p.account_id = w.account_id AND p.subproduct_code = w.subproduct_code \
             JOIN pack_items i ON i.pack_id = p.id \
             WHERE p.lifecycle IN ('inactive', 'valid') AND p.frozen = false \
             ORDER BY p.id, i.position FOR UPDATE OF p"
        ),
        [format!("{{{}}}", accounts.join(",")).into(), format!("{{{}}}", subproducts.join(",")).into()],
    )
}

/// `text` as an element of a PostgreSQL array literal: quoted, with `"` and `\` escaped.
fn array_element(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn sqlite_candidates(pairs: &[(i64, &str)]) -> Statement {
    let values: Vec<sea_orm::Value> =
        pairs.iter().flat_map(|(account_id, code)| [(*account_id).into(), (*code).into()]).collect();
    Statement::from_sql_and_values(
        DatabaseBackend::Sqlite,
        format!(
            "WITH w (account_id, subproduct_code) AS (VALUES {}) \
             SELECT {PACK_ITEM_COLUMNS} FROM w \
             CROSS JOIN packs p INDEXED BY ix_packs_account_subproduct \
             JOIN pack_items i ON i.pack_id = p.id \
             WHERE p.account_id = w.account_id AND p.subproduct_code = w.subproduct_code \
               AND p.lifecycle IN ('inactive', 'valid') AND p.frozen = 0 \
             ORDER BY p.id, i.position",
            vec!["(?, ?)"; pairs.len()].join(", ")
        ),
        values,
    )
}

/// One capacity item's change: where it is, what the batch read, what it writes.
struct ItemChange<'a> {
    pack_id: &'a str,
    position: i64,
    seen: [i64; 3],
    new: [i64; 3],
}

/// Writes every changed item in few statements, each guarded on the values the batch read
/// (`remaining`, `cycle_index`, `used`): if any item moved under us, the batch retries.
async fn write_items(conn: &impl ConnectionTrait, changes: &[ItemChange<'_>]) -> StoreResult<()> {
    let backend = conn.get_database_backend();
    for chunk in changes.chunks(400) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 8);
        let mut rows = Vec::with_capacity(chunk.len());
        for change in chunk {
            let start = values.len();
            values.push(change.pack_id.into());
            values.push(change.position.into());
            values.extend(change.seen.iter().chain(change.new.iter()).map(|v| sea_orm::Value::from(*v)));
            rows.push(placeholder_row(backend, start, values.len() - start));
        }
        // VALUES columns are named column1… on both PostgreSQL and SQLite.
        let sql = format!(
            "UPDATE pack_items SET remaining = v.column6, cycle_index = v.column7, used = v.column8 \
             FROM (VALUES {}) AS v \
             WHERE pack_items.pack_id = v.column1 AND pack_items.position = v.column2 \
             AND pack_items.remaining = v.column3 AND pack_items.cycle_index = v.column4 \
             AND pack_items.used = v.column5",
            rows.join(", ")
        );
        let updated = conn.execute(Statement::from_sql_and_values(backend, sql, values)).await?;
        if updated.rows_affected() != chunk.len() as u64 {
            return Err(StoreError::conflict("the capacity of a resource pack in this batch"));
        }
    }
    Ok(())
}

/// Inserts usage records and returns `(account, idempotency key, id)` of each (`RETURNING`,
/// on both backends), so the deductions can point at them without reading the rows back.
async fn insert_records(
    conn: &impl ConnectionTrait,
    rows: &[usage_records::ActiveModel],
) -> StoreResult<Vec<(i64, String, i64)>> {
    let mut insert = usage_records::Entity::insert_many(rows.to_vec());
    QueryTrait::query(&mut insert).returning(Query::returning().columns([
        usage_records::Column::AccountId,
        usage_records::Column::IdempotencyKey,
        usage_records::Column::Id,
    ]));
    let statement = insert.build(conn.get_database_backend());
    let mut inserted = Vec::with_capacity(rows.len());
    let returned = conn.query_all(statement).await.map_err(|error| {
        // Another transaction wrote one of these keys after this one looked (two batches with a
        // key in common, written side by side on PostgreSQL): retry, and find it stored.
        if matches!(error.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) {
            StoreError::conflict("a usage record with one of these idempotency keys")
        } else {
            error.into()
        }
    })?;
    for row in returned {
        inserted.push((row.try_get_by_index(0)?, row.try_get_by_index(1)?, row.try_get_by_index(2)?));
    }
    if inserted.len() != rows.len() {
        return Err(StoreError::Corrupt(format!(
            "inserted {} usage records but the database returned {}",
            rows.len(),
            inserted.len()
        )));
    }
    Ok(inserted)
}

/// Usage records already stored under the batch's keys, by (account, key).
async fn stored_records(
    conn: &impl ConnectionTrait,
    checked: &[&CheckedRecord],
) -> StoreResult<HashMap<(i64, String), usage_records::Model>> {
    let mut found = HashMap::new();
    for chunk in checked.chunks(500) {
        // By key only (the unique index leads with it), then by account here: two IN lists
        // would make the database probe their cross product.
        let wanted: HashSet<(i64, &str)> = chunk.iter().map(|c| (c.record.account_id, c.key.as_str())).collect();
        let keys: BTreeSet<&str> = wanted.iter().map(|(_, key)| *key).collect();
        let rows =
            usage_records::Entity::find().filter(usage_records::Column::IdempotencyKey.is_in(keys)).all(conn).await?;
        for row in rows {
            if wanted.contains(&(row.account_id, row.idempotency_key.as_str())) {
                found.insert((row.account_id, row.idempotency_key.clone()), row);
            }
        }
    }
    Ok(found)
}

async fn replayed(conn: &impl ConnectionTrait, row: &usage_records::Model) -> StoreResult<UsageOutcome> {
    let deducted: i64 = deductions::Entity::find()
        .filter(deductions::Column::AccountId.eq(row.account_id))
        .filter(deductions::Column::UsageRecordId.eq(row.id))
        .all(conn)
        .await?
        .iter()
        .map(|d| d.amount)
        .sum();
    Ok(UsageOutcome {
        idempotency_key: row.idempotency_key.clone(),
        usage_record_id: row.id,
        deducted: quantity(deducted),
        overage: quantity(row.overage),
        overage_cost: money(row.overage_cost),
        replayed: true,
    })
}

/// The local day containing `at`, with its start and end instants.
fn local_day(at: DateTime<Utc>, zone: Tz) -> (NaiveDate, DateTime<Utc>, DateTime<Utc>) {
    let day = at.with_timezone(&zone).date_naive();
    let start_of = |date: NaiveDate| {
        zone.from_local_datetime(&date.and_time(NaiveTime::MIN)).earliest().map_or(at, |t| t.with_timezone(&Utc))
    };
    let next = day.succ_opt().unwrap_or(day);
    (day, start_of(day), start_of(next))
}

/// What planning a batch produced, before it is written.
#[derive(Default)]
struct BatchWrites {
    records: Vec<usage_records::ActiveModel>,
    /// Deductions with the position of their record in `records`.
    deductions: Vec<(usize, deductions::ActiveModel)>,
    daily: BTreeMap<(i64, String, String, NaiveDate), (i64, i64)>,
    settlements: BTreeMap<String, Settlement>,
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

    /// The group writer: writes queued batches, a group at a time, until the queue is empty.
    async fn write_queued_usage(&self, mut slot: WriterSlot<UsageBatch, Vec<UsageOutcome>>) {
        while let Some(jobs) = slot.next_group() {
            let records: Vec<&CheckedRecord> = jobs.iter().flat_map(|job| &job.batch.records).collect();
            let now = jobs.iter().map(|job| job.batch.now).max().unwrap_or_default();
            match retrying(|| self.write_usage(&records, now)).await {
                Ok(outcomes) => {
                    let mut outcomes = outcomes.into_iter();
                    for job in jobs {
                        let _ = job.reply.send(Ok(outcomes.by_ref().take(job.records).collect()));
                    }
                }
                Err(error) if jobs.len() == 1 => {
                    let _ = jobs.into_iter().next().map(|job| job.reply.send(Err(error)));
                }
                Err(error) => {
                    // One batch's trouble must not become everyone's: write each alone.
                    tracing::warn!(%error, batches = jobs.len(), "a usage group failed; writing its batches one by one");
                    for job in jobs {
                        let records: Vec<&CheckedRecord> = job.batch.records.iter().collect();
                        let _ = job.reply.send(retrying(|| self.write_usage(&records, job.batch.now)).await);
                    }
                }
            }
        }
    }

    /// Writes checked records in one transaction. A key may come twice (two batches of one
    /// group, e.g. a client's retry racing its first attempt): the first is written, the
    /// second answered as a replay of it.
    async fn write_usage(&self, checked: &[&CheckedRecord], now: DateTime<Utc>) -> StoreResult<Vec<UsageOutcome>> {
        let tx = self.write().await?;
        let stored = stored_records(&*tx, checked).await?;
        let mut keys_seen: HashSet<(i64, &str)> = HashSet::new();
        let fresh: Vec<&CheckedRecord> = checked
            .iter()
            .copied()
            .filter(|c| !stored.contains_key(&(c.record.account_id, c.key.clone())))
            .filter(|c| keys_seen.insert((c.record.account_id, c.key.as_str())))
            .collect();

        // The candidate packs of every (account, subproduct) pair in the batch: from the
        // cache where this process's last batch left them untouched by anyone else (SQLite),
        // else read (and on PostgreSQL locked).
        let pairs: BTreeSet<(i64, &str)> =
            fresh.iter().map(|c| (c.record.account_id, c.record.subproduct.as_str())).collect();
        let cache = self.candidate_cache.as_deref().zip(tx.stamp);
        let (mut groups, missing) = match cache {
            Some((cache, stamp)) => cache.take(stamp, &pairs),
            None => (HashMap::new(), pairs.clone()),
        };
        for &(account_id, subproduct) in &missing {
            groups.insert((account_id, subproduct.to_owned()), Vec::new());
        }
        for pack in candidates(&*tx, &missing).await? {
            groups.entry((pack.account_id, pack.subproduct.clone())).or_default().push(pack);
        }

        // Plan every fresh record, in order, against the packs as the records before it left
        // them, in memory; keep each touched pack as it was read, for the guarded writes.
        let mut before_by_id: HashMap<PackId, Pack> = HashMap::new();
        let mut writes = BatchWrites::default();
        let mut planned: HashMap<(i64, String), UsageOutcome> = HashMap::new();
        for CheckedRecord { key, record, subproduct, account } in fresh.iter().copied() {
            let group = groups.entry((record.account_id, record.subproduct.clone())).or_default();
            let plan = plan_deduction(record, group);
            for line in &plan.deductions {
                if !before_by_id.contains_key(&line.pack_id) {
                    if let Some(pack) = group.iter().find(|pack| pack.id == line.pack_id) {
                        before_by_id.insert(pack.id.clone(), pack.clone());
                    }
                }
            }
            apply_plan(&plan, group, record.occurred_at);
            let overage_cost = subproduct.list_price.times(plan.overage);
            let (day, day_start, day_end) = local_day(record.occurred_at, account.time_zone);
            let position = writes.records.len();
            writes.records.push(usage_records::ActiveModel {
                account_id: Set(record.account_id),
                idempotency_key: Set(key.clone()),
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
            });
            for line in &plan.deductions {
                let amount = quantity_units(line.amount)?;
                writes.deductions.push((
                    position,
                    deductions::ActiveModel {
                        account_id: Set(record.account_id),
                        usage_record_id: Set(0),
                        pack_id: Set(line.pack_id.to_string()),
                        item_position: Set(i32::try_from(line.item).unwrap_or(i32::MAX)),
                        usage_type: Set(record.usage_type.clone()),
                        cycle_index: Set(line.cycle_index),
                        amount: Set(amount),
                        before: Set(line.before.map(quantity_units).transpose()?),
                        after: Set(line.after.map(quantity_units).transpose()?),
                        deducted_at: Set(millis(record.occurred_at)),
                        ..Default::default()
                    },
                ));
                let key =
                    (record.account_id, line.pack_id.to_string(), record.usage_type.clone().unwrap_or_default(), day);
                let total = writes.daily.entry(key).or_default();
                total.0 += amount;
                total.1 += 1;
            }
            if plan.overage > Decimal::ZERO {
                let key = format!("daily:{}:{}:{day}", record.account_id, subproduct.code);
                let settlement = writes.settlements.entry(key.clone()).or_insert_with(|| Settlement {
                    key,
                    account_id: record.account_id,
                    zone_of_account: account.time_zone,
                    resource_id: format!("{}-{}", account.uin, subproduct.code),
                    resource_name: subproduct.name.clone(),
                    business_code: record.product.clone(),
                    product_code: subproduct.code.clone(),
                    config_desc: format!("{}: {} per {}", subproduct.name, subproduct.list_price, subproduct.unit),
                    cost: Money::ZERO,
                    day_start,
                    day_end,
                });
                settlement.cost = settlement.cost + overage_cost;
            }
            planned.insert(
                (record.account_id, key.clone()),
                UsageOutcome {
                    idempotency_key: key.clone(),
                    usage_record_id: 0,
                    deducted: plan.deducted(),
                    overage: plan.overage,
                    overage_cost,
                    replayed: false,
                },
            );
        }

        // Write: records and their IDs, deductions, capacity, lifecycle, rollups, settlements.
        for chunk in writes.records.chunks(500) {
            for (account_id, key, id) in insert_records(&*tx, chunk).await? {
                if let Some(outcome) = planned.get_mut(&(account_id, key)) {
                    outcome.usage_record_id = id;
                }
            }
        }
        let record_ids: Vec<i64> =
            fresh.iter().map(|c| planned[&(c.record.account_id, c.key.clone())].usage_record_id).collect();
        let deduction_rows: Vec<deductions::ActiveModel> = writes
            .deductions
            .into_iter()
            .map(|(position, mut row)| {
                row.usage_record_id = Set(record_ids[position]);
                row
            })
            .collect();
        for chunk in deduction_rows.chunks(500) {
            deductions::Entity::insert_many(chunk.to_vec()).exec_without_returning(&*tx).await?;
        }
        let mut item_changes = Vec::new();
        for pack in groups.values().flatten() {
            let Some(before) = before_by_id.get(&pack.id) else { continue };
            for (position, (old, new)) in before.items.iter().zip(&pack.items).enumerate() {
                if old != new {
                    item_changes.push(ItemChange {
                        pack_id: pack.id.as_str(),
                        position: position as i64,
                        seen: [quantity_units(old.remaining)?, old.cycle_index, quantity_units(old.used)?],
                        new: [quantity_units(new.remaining)?, new.cycle_index, quantity_units(new.used)?],
                    });
                }
            }
        }
        write_items(&*tx, &item_changes).await?;
        // Packs the group activated or exhausted; respackd looks at them on its next sweep (the
        // "exhausted" email).
        let mut ended = Vec::new();
        for pack in groups.values_mut().flatten() {
            if let Some(before) = before_by_id.get(&pack.id).filter(|before| before.lifecycle != pack.lifecycle) {
                pack.version = before.version + 1;
                ended.push((before, &*pack, Some(now)));
            }
        }
        write_packs(&*tx, &ended, now).await?;
        let daily: Vec<usage_daily::ActiveModel> = writes
            .daily
            .into_iter()
            .map(|((account_id, pack_id, usage_type, day), (amount, records))| usage_daily::ActiveModel {
                account_id: Set(account_id),
                pack_id: Set(pack_id),
                usage_type: Set(usage_type),
                day: Set(day.to_string()),
                amount: Set(amount),
                records: Set(records),
            })
            .collect();
        for chunk in daily.chunks(500) {
            usage_daily::Entity::insert_many(chunk.to_vec())
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
                .exec_without_returning(&*tx)
                .await?;
        }
        add_settlements(&*tx, writes.settlements.into_values().collect(), now).await?;

        let mut outcomes = Vec::with_capacity(checked.len());
        let mut answered: HashSet<(i64, &str)> = HashSet::new();
        for c in checked {
            let first = answered.insert((c.record.account_id, c.key.as_str()));
            match stored.get(&(c.record.account_id, c.key.clone())) {
                Some(row) => outcomes.push(replayed(&*tx, row).await?),
                None => {
                    let outcome = &planned[&(c.record.account_id, c.key.clone())];
                    outcomes.push(UsageOutcome { replayed: !first, ..outcome.clone() });
                }
            }
        }
        let stamp = tx.stamp;
        // The cache is brought up to date before the writer lock is let go: the next batch
        // must find it as this commit left it.
        let (committed, _writer) = tx.commit_keeping_writer().await;
        if let Err(error) = committed {
            // The commit may have happened all the same; nothing cached can be trusted.
            if let Some(cache) = &self.candidate_cache {
                cache.forget();
            }
            return Err(error);
        }
        if let Some((cache, stamp)) = self.candidate_cache.as_deref().zip(stamp) {
            cache.put(stamp, groups);
        }
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
