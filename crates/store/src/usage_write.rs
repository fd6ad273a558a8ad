//! Writing usage: how the group writer (see `usage_queue`) plans a group of checked records
//! against their candidate packs and writes it in one transaction.
//!
//! Each record is planned by `respack_domain::plan_deduction` against its candidate packs as
//! the records before it left them, in memory, and every item change is a guarded update on the
//! values the plan was made from, so a concurrent writer makes the group retry instead of
//! overdrawing. Overage is priced at the subproduct's list price into a pay-as-you-go bill line.
//!
//! On SQLite the writer also plans ahead: while one group's rows are written and committed,
//! the group queued behind it is planned against the packs the first one leaves (kept in the
//! candidate cache) and a read snapshot of everything else, on another core. That plan is used
//! only if the next transaction's write counter proves nobody else wrote in between; else the
//! group is planned again inside its transaction, as on PostgreSQL.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use respack_domain::rust_decimal::Decimal;
use respack_domain::{apply_plan, plan_deduction, Money, Pack, PackId};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryTrait, Set, Statement,
    TransactionTrait,
};

use crate::bills::{add_settlements, Settlement};
use crate::candidate_cache::{Groups, Pair};
use crate::convert::{millis, money, money_units, quantity, quantity_units};
use crate::db::{placeholder_row, WriteTx};
use crate::entity::{deductions, pack_items, packs, usage_daily, usage_records};
use crate::error::{StoreError, StoreResult};
use crate::pack_rows::{item_row, pack_row, to_pack, write_packs, PACK_ITEM_COLUMNS};
use crate::usage::{CheckedRecord, UsageBatch, UsageOutcome};
use crate::usage_queue::{Job, WriterSlot};
use crate::{retrying, Store};
use tokio::sync::oneshot;

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
struct ItemChange {
    pack_id: PackId,
    position: i64,
    seen: [i64; 3],
    new: [i64; 3],
}

/// Every changed item's update, in few statements, each guarded on the values the plan was
/// made from (`remaining`, `cycle_index`, `used`), with the rows it must change: if any item
/// moved under us, the group retries.
fn item_updates(backend: DatabaseBackend, changes: &[ItemChange]) -> Vec<(Statement, u64)> {
    let mut statements = Vec::new();
    for chunk in changes.chunks(400) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 8);
        let mut rows = Vec::with_capacity(chunk.len());
        for change in chunk {
            let start = values.len();
            values.push(change.pack_id.as_str().into());
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
        statements.push((Statement::from_sql_and_values(backend, sql, values), chunk.len() as u64));
    }
    statements
}

/// One deduction row as planned; its record's ID is known once the records are inserted.
struct NewDeduction {
    /// The position of its record among the group's written records.
    record: usize,
    account_id: i64,
    pack_id: String,
    item_position: i32,
    usage_type: Option<String>,
    cycle_index: i64,
    amount: i64,
    before: Option<i64>,
    after: Option<i64>,
    deducted_at: i64,
}

const DEDUCTION_COLUMNS: &str = "account_id, usage_record_id, pack_id, item_position, usage_type, cycle_index, \
                                 amount, before, after, deducted_at";
/// Values per deduction row, and where the record's ID goes among them.
const DEDUCTION_VALUES: usize = 10;
const DEDUCTION_RECORD_ID: usize = 1;

/// The deductions' INSERTs, 500 rows each, with the record of every row (the record IDs are 0
/// until [`fill_ids`] sets them).
fn deduction_inserts(backend: DatabaseBackend, rows: &[NewDeduction]) -> Vec<(Statement, Vec<usize>)> {
    let mut statements = Vec::new();
    for chunk in rows.chunks(500) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * DEDUCTION_VALUES);
        let mut tuples = Vec::with_capacity(chunk.len());
        for row in chunk {
            let start = values.len();
            values.extend([
                row.account_id.into(),
                0_i64.into(),
                row.pack_id.as_str().into(),
                row.item_position.into(),
                row.usage_type.clone().into(),
                row.cycle_index.into(),
                row.amount.into(),
                row.before.into(),
                row.after.into(),
                row.deducted_at.into(),
            ]);
            tuples.push(placeholder_row(backend, start, DEDUCTION_VALUES));
        }
        let sql = format!("INSERT INTO deductions ({DEDUCTION_COLUMNS}) VALUES {}", tuples.join(", "));
        statements
            .push((Statement::from_sql_and_values(backend, sql, values), chunk.iter().map(|row| row.record).collect()));
    }
    statements
}

/// A usage record's values, in [`RECORD_COLUMNS`] order.
type RecordValues = [sea_orm::Value; RECORD_VALUES];
const RECORD_VALUES: usize = 12;

const RECORD_COLUMNS: &str = "account_id, idempotency_key, product_code, subproduct_code, usage_type, unit, \
                              attributes, quantity, overage, overage_cost, occurred_at, received_at";

/// The usage records' INSERTs, 500 rows each, with the rows each holds. On SQLite the IDs are
/// given — the first value of each row, filled in by [`fill_ids`] once the transaction knows
/// the next free one — so nothing need come back; on PostgreSQL the sequence assigns them and
/// each statement returns `(account, idempotency key, id)` of its rows.
fn record_inserts(backend: DatabaseBackend, rows: Vec<RecordValues>) -> Vec<(Statement, usize)> {
    let given_ids = backend == DatabaseBackend::Sqlite;
    let per_row = RECORD_VALUES + usize::from(given_ids);
    let mut statements = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(500 * per_row);
        let mut tuples = Vec::with_capacity(500);
        for row in rows.by_ref().take(500) {
            let start = values.len();
            if given_ids {
                values.push(0_i64.into());
            }
            values.extend(row);
            tuples.push(placeholder_row(backend, start, per_row));
        }
        let sql = if given_ids {
            format!("INSERT INTO usage_records (id, {RECORD_COLUMNS}) VALUES {}", tuples.join(", "))
        } else {
            format!(
                "INSERT INTO usage_records ({RECORD_COLUMNS}) VALUES {} RETURNING account_id, idempotency_key, id",
                tuples.join(", ")
            )
        };
        let count = tuples.len();
        statements.push((Statement::from_sql_and_values(backend, sql, values), count));
    }
    statements
}

/// Sets an ID in each row of a multi-row statement: the value at `offset` of every run of
/// `per_row` values gets the next of `ids`.
fn fill_ids(statement: &mut Statement, per_row: usize, offset: usize, ids: impl IntoIterator<Item = i64>) {
    if let Some(values) = statement.values.as_mut() {
        for (row, id) in ids.into_iter().enumerate() {
            values.0[row * per_row + offset] = id.into();
        }
    }
}

/// SQLite: the first ID no usage record has had (the table is `AUTOINCREMENT`, so
/// `sqlite_sequence` remembers IDs of rows that are gone too).
async fn next_record_id(conn: &impl ConnectionTrait) -> StoreResult<i64> {
    let row = conn
        .query_one(Statement::from_string(
            DatabaseBackend::Sqlite,
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'usage_records'), 0), \
                        COALESCE((SELECT MAX(id) FROM usage_records), 0)) + 1",
        ))
        .await?
        .ok_or_else(|| StoreError::Corrupt("no next usage record ID".into()))?;
    Ok(row.try_get_by_index(0)?)
}

/// The daily rollups' upserts: each adds to the row of its (account, pack, usage type, day).
fn daily_upserts(
    backend: DatabaseBackend,
    daily: BTreeMap<(i64, String, String, NaiveDate), (i64, i64)>,
) -> Vec<Statement> {
    let rows: Vec<usage_daily::ActiveModel> = daily
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
    rows.chunks(500)
        .map(|chunk| {
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
                .build(backend)
        })
        .collect()
}

/// Inserts the records and returns their IDs in order: given on SQLite, returned by
/// PostgreSQL.
async fn insert_records(
    tx: &WriteTx<'_>,
    records: &[&CheckedRecord],
    fresh: &[usize],
    statements: Vec<(Statement, usize)>,
) -> StoreResult<Vec<i64>> {
    // Another transaction wrote one of these keys after this one looked (two batches with a
    // key in common, written side by side on PostgreSQL): retry, and find it stored.
    let key_taken = |error: sea_orm::DbErr| {
        if matches!(error.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) {
            StoreError::conflict("a usage record with one of these idempotency keys")
        } else {
            StoreError::from(error)
        }
    };
    if tx.get_database_backend() == DatabaseBackend::Sqlite {
        let first = next_record_id(&**tx).await?;
        let ids: Vec<i64> = (first..).take(fresh.len()).collect();
        let mut done = 0;
        for (mut statement, rows) in statements {
            // The ID comes first in each row, before its RECORD_VALUES.
            fill_ids(&mut statement, RECORD_VALUES + 1, 0, ids[done..done + rows].iter().copied());
            done += rows;
            tx.execute(statement).await.map_err(key_taken)?;
        }
        return Ok(ids);
    }
    let mut by_key: HashMap<(i64, String), i64> = HashMap::with_capacity(fresh.len());
    for (statement, _) in statements {
        for row in tx.query_all(statement).await.map_err(key_taken)? {
            by_key.insert((row.try_get_by_index(0)?, row.try_get_by_index(1)?), row.try_get_by_index(2)?);
        }
    }
    fresh
        .iter()
        .map(|&i| {
            let key = (records[i].record.account_id, records[i].key.clone());
            by_key
                .remove(&key)
                .ok_or_else(|| StoreError::Corrupt(format!("the database returned no ID for usage record {:?}", key.1)))
        })
        .collect()
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

/// A group's records planned against their packs: the statements its transaction runs, built
/// while planning (on SQLite that is while the group before it is written), so that writing
/// only runs them.
struct GroupPlan {
    /// Positions in the group of the records written: not stored before, and the first of
    /// their key in the group (a later one is answered as a replay of it).
    fresh: Vec<usize>,
    /// The outcome of each written record, by (account, key); record IDs are filled in as the
    /// rows are inserted.
    outcomes: HashMap<(i64, String), UsageOutcome>,
    record_inserts: Vec<(Statement, usize)>,
    deduction_inserts: Vec<(Statement, Vec<usize>)>,
    item_updates: Vec<(Statement, u64)>,
    /// Packs whose lifecycle the group changed (activated, exhausted): as read, and after.
    ended: Vec<(Pack, Pack)>,
    daily_upserts: Vec<Statement>,
    settlements: Vec<Settlement>,
    /// The time the rows are stamped with (the latest of the batches' receipt times).
    now: DateTime<Utc>,
}

/// A group planned while the group before it was written (SQLite). Valid only in a
/// transaction whose write counter is `stamp`: the group before committed and nobody wrote
/// since.
struct AheadPlan {
    stamp: i64,
    plan: GroupPlan,
    /// The candidate packs as the plan leaves them.
    groups: Groups,
}

/// What the group being written tells the planning of the group behind it.
struct Previous {
    /// The write counter of its transaction.
    stamp: i64,
    keys: HashSet<(i64, String)>,
    pairs: BTreeSet<Pair>,
}

/// Usage records already stored and the outcomes they answer with, by (account, key).
type Stored = HashMap<(i64, String), usage_records::Model>;

/// The group's records to write, by position: not in `stored`, and the first of their key.
fn fresh_records(records: &[&CheckedRecord], stored: &Stored) -> Vec<usize> {
    let mut keys_seen: HashSet<(i64, &str)> = HashSet::new();
    (0..records.len())
        .filter(|&i| {
            let c = records[i];
            !stored.contains_key(&(c.record.account_id, c.key.clone()))
                && keys_seen.insert((c.record.account_id, c.key.as_str()))
        })
        .collect()
}

/// The (account, subproduct) pairs of the given records.
fn pairs_of<'a>(records: &[&'a CheckedRecord], fresh: &[usize]) -> BTreeSet<(i64, &'a str)> {
    fresh.iter().map(|&i| (records[i].record.account_id, records[i].record.subproduct.as_str())).collect()
}

/// Plans the fresh records, in order, against `groups` (the candidate packs of their pairs),
/// which end up as the plan leaves them.
fn plan_group(
    backend: DatabaseBackend,
    records: &[&CheckedRecord],
    fresh: Vec<usize>,
    groups: &mut Groups,
    now: DateTime<Utc>,
) -> StoreResult<GroupPlan> {
    // Each touched pack as it was read, for the guarded writes.
    let mut before_by_id: HashMap<PackId, Pack> = HashMap::new();
    let mut record_rows = Vec::with_capacity(fresh.len());
    let mut deductions = Vec::with_capacity(fresh.len());
    let mut daily: BTreeMap<(i64, String, String, NaiveDate), (i64, i64)> = BTreeMap::new();
    let mut settlements: BTreeMap<String, Settlement> = BTreeMap::new();
    let mut outcomes: HashMap<(i64, String), UsageOutcome> = HashMap::new();
    for &index in &fresh {
        let CheckedRecord { key, record, subproduct, account } = records[index];
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
        let position = record_rows.len();
        record_rows.push([
            record.account_id.into(),
            key.as_str().into(),
            record.product.as_str().into(),
            record.subproduct.as_str().into(),
            record.usage_type.clone().into(),
            record.unit.as_str().into(),
            serde_json::to_string(&record.attributes).unwrap_or_else(|_| "{}".into()).into(),
            quantity_units(record.quantity)?.into(),
            quantity_units(plan.overage)?.into(),
            money_units(overage_cost)?.into(),
            millis(record.occurred_at).into(),
            millis(now).into(),
        ]);
        for line in &plan.deductions {
            let amount = quantity_units(line.amount)?;
            deductions.push(NewDeduction {
                record: position,
                account_id: record.account_id,
                pack_id: line.pack_id.to_string(),
                item_position: i32::try_from(line.item).unwrap_or(i32::MAX),
                usage_type: record.usage_type.clone(),
                cycle_index: line.cycle_index,
                amount,
                before: line.before.map(quantity_units).transpose()?,
                after: line.after.map(quantity_units).transpose()?,
                deducted_at: millis(record.occurred_at),
            });
            let key = (record.account_id, line.pack_id.to_string(), record.usage_type.clone().unwrap_or_default(), day);
            let total = daily.entry(key).or_default();
            total.0 += amount;
            total.1 += 1;
        }
        if plan.overage > Decimal::ZERO {
            let key = format!("daily:{}:{}:{day}", record.account_id, subproduct.code);
            let settlement = settlements.entry(key.clone()).or_insert_with(|| Settlement {
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
        outcomes.insert(
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

    let mut item_changes = Vec::new();
    let mut ended = Vec::new();
    for pack in groups.values_mut().flatten() {
        let Some(before) = before_by_id.get(&pack.id) else { continue };
        for (position, (old, new)) in before.items.iter().zip(&pack.items).enumerate() {
            if old != new {
                item_changes.push(ItemChange {
                    pack_id: pack.id.clone(),
                    position: position as i64,
                    seen: [quantity_units(old.remaining)?, old.cycle_index, quantity_units(old.used)?],
                    new: [quantity_units(new.remaining)?, new.cycle_index, quantity_units(new.used)?],
                });
            }
        }
        // Packs the group activated or exhausted; respackd looks at them on its next sweep
        // (the "exhausted" email).
        if before.lifecycle != pack.lifecycle {
            pack.version = before.version + 1;
            ended.push((before.clone(), pack.clone()));
        }
    }
    Ok(GroupPlan {
        fresh,
        outcomes,
        record_inserts: record_inserts(backend, record_rows),
        deduction_inserts: deduction_inserts(backend, &deductions),
        item_updates: item_updates(backend, &item_changes),
        ended,
        daily_upserts: daily_upserts(backend, daily),
        settlements: settlements.into_values().collect(),
        now,
    })
}

impl Store {
    /// The group writer: writes queued batches, a group at a time, until the queue is empty.
    /// On SQLite, while a group is written, the next one is planned (see the module's note).
    pub(crate) async fn write_queued_usage(&self, mut slot: WriterSlot<UsageBatch, Vec<UsageOutcome>>) {
        let mut next = slot.next_group();
        let mut ahead: Option<AheadPlan> = None;
        while let Some(jobs) = next.take() {
            let records: Vec<&CheckedRecord> = jobs.iter().flat_map(|job| &job.batch.records).collect();
            let now = group_now(&jobs);
            let mut following = None;
            let first = match self.plan_usage(&records, now, ahead.take()).await {
                Ok((tx, stored, plan)) => {
                    let (written, written_signal) = oneshot::channel();
                    if let Some(stamp) = tx.stamp.filter(|_| self.candidate_cache.is_some()) {
                        let previous = Previous {
                            stamp,
                            keys: records.iter().map(|c| (c.record.account_id, c.key.clone())).collect(),
                            pairs: pairs_of(&records, &plan.fresh)
                                .into_iter()
                                .map(|(a, s)| (a, s.to_owned()))
                                .collect(),
                        };
                        let (store, queue) = (self.clone(), slot.queue().clone());
                        following = Some(tokio::spawn(async move {
                            let queued = queue.group_behind(written_signal).await?;
                            let plan = store.plan_ahead(&queued, previous).await;
                            Some((queued, plan))
                        }));
                    }
                    let committed = self.commit_usage(tx, &records, stored, plan).await;
                    drop(written);
                    committed
                }
                Err(error) => Err(error),
            };
            let first_committed = first.is_ok();
            let result = match first {
                Err(error) if error.is_transient() => retrying(|| self.write_usage(&records, now)).await,
                other => other,
            };
            match result {
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
            next = match following {
                Some(task) => match task.await {
                    Ok(None) => slot.next_group(),
                    Ok(Some((queued, plan))) => {
                        match plan {
                            Ok(plan) => ahead = plan.filter(|_| first_committed),
                            Err(error) => {
                                tracing::debug!(%error, "planning a usage group ahead failed; it is planned in its transaction")
                            }
                        }
                        Some(queued)
                    }
                    Err(error) => {
                        // Its batches' callers are told the writer stopped; nothing was written.
                        tracing::error!(%error, "planning a usage group ahead panicked");
                        slot.next_group()
                    }
                },
                None => slot.next_group(),
            };
        }
    }

    /// Writes checked records in one transaction, planned inside it.
    async fn write_usage(&self, records: &[&CheckedRecord], now: DateTime<Utc>) -> StoreResult<Vec<UsageOutcome>> {
        let (tx, stored, plan) = self.plan_usage(records, now, None).await?;
        self.commit_usage(tx, records, stored, plan).await
    }

    /// Opens the group's transaction and plans it: with the plan made ahead if its stamp
    /// holds, else against the keys stored and the packs as this transaction sees them (from
    /// the cache where it is current, SQLite; read, and on PostgreSQL locked, otherwise). A key
    /// may come twice (two batches of one group, e.g. a client's retry racing its first
    /// attempt): the first is written, the second answered as a replay of it. On SQLite the
    /// packs as the plan leaves them go into the cache now, for the group behind this one;
    /// [`Store::commit_usage`] empties it if the transaction fails.
    async fn plan_usage(
        &self,
        records: &[&CheckedRecord],
        now: DateTime<Utc>,
        ahead: Option<AheadPlan>,
    ) -> StoreResult<(WriteTx<'_>, Stored, GroupPlan)> {
        let tx = self.write().await?;
        let (stored, plan, groups) = match ahead.filter(|ahead| Some(ahead.stamp) == tx.stamp) {
            Some(AheadPlan { plan, groups, .. }) => (Stored::new(), plan, groups),
            None => {
                let stored = stored_records(&*tx, records).await?;
                let fresh = fresh_records(records, &stored);
                let pairs = pairs_of(records, &fresh);
                let cache = self.candidate_cache.as_deref().zip(tx.stamp);
                let (mut groups, missing) = match cache {
                    Some((cache, stamp)) => cache.take(stamp, &pairs),
                    None => (HashMap::new(), pairs),
                };
                read_candidates(&*tx, &missing, &mut groups).await?;
                let plan = plan_group(tx.get_database_backend(), records, fresh, &mut groups, now)?;
                (stored, plan, groups)
            }
        };
        if let Some((cache, stamp)) = self.candidate_cache.as_deref().zip(tx.stamp) {
            cache.put(stamp, groups);
        }
        Ok((tx, stored, plan))
    }

    /// Plans a queued group while the group before it is written: `None` when that cannot be
    /// done safely (a key of the group was stored or is being written, someone else wrote, the
    /// cache lost the packs the group before it is changing).
    async fn plan_ahead(
        &self,
        jobs: &[Job<UsageBatch, Vec<UsageOutcome>>],
        previous: Previous,
    ) -> StoreResult<Option<AheadPlan>> {
        let Some(cache) = self.candidate_cache.as_deref() else { return Ok(None) };
        let records: Vec<&CheckedRecord> = jobs.iter().flat_map(|job| &job.batch.records).collect();
        if records.iter().any(|c| previous.keys.contains(&(c.record.account_id, c.key.clone()))) {
            return Ok(None);
        }
        // One read snapshot: from before the group being written commits, or after, and after
        // everything before it (it began before this snapshot was taken).
        let snapshot = self.read().begin().await?;
        let seen: i64 = snapshot
            .query_one(Statement::from_string(DatabaseBackend::Sqlite, "SELECT n FROM write_lock WHERE id = 1"))
            .await?
            .ok_or_else(|| StoreError::Corrupt("the write_lock row is missing; run the migrations again".into()))?
            .try_get_by_index(0)?;
        if seen != previous.stamp && seen + 1 != previous.stamp {
            return Ok(None);
        }
        if !stored_records(&snapshot, &records).await?.is_empty() {
            return Ok(None);
        }
        let fresh = fresh_records(&records, &Stored::new());
        let pairs = pairs_of(&records, &fresh);
        let stamp = previous.stamp + 1;
        let (mut groups, missing) = cache.take(stamp, &pairs);
        // Pairs the group before is writing must come from the cache: the snapshot may predate it.
        if missing.iter().any(|&(account_id, code)| previous.pairs.contains(&(account_id, code.to_owned()))) {
            return Ok(None);
        }
        read_candidates(&snapshot, &missing, &mut groups).await?;
        snapshot.commit().await?;
        let plan = plan_group(self.read().get_database_backend(), &records, fresh, &mut groups, group_now(jobs))?;
        Ok(Some(AheadPlan { stamp, plan, groups }))
    }

    /// Writes a planned group's rows and commits, answering each record in order. On any
    /// failure the candidate cache (which already holds what this group would leave) is
    /// emptied before the writer lock is let go.
    async fn commit_usage(
        &self,
        tx: WriteTx<'_>,
        records: &[&CheckedRecord],
        stored: Stored,
        plan: GroupPlan,
    ) -> StoreResult<Vec<UsageOutcome>> {
        let forget = || {
            if let Some(cache) = &self.candidate_cache {
                cache.forget();
            }
        };
        let outcomes = match write_plan(&tx, records, &stored, plan).await {
            Ok(outcomes) => outcomes,
            Err(error) => {
                forget();
                return Err(error);
            }
        };
        let (committed, _writer) = tx.commit_keeping_writer().await;
        if let Err(error) = committed {
            // The commit may have happened all the same; nothing cached can be trusted.
            forget();
            return Err(error);
        }
        Ok(outcomes)
    }
}

/// The latest `now` of a group's batches.
fn group_now(jobs: &[Job<UsageBatch, Vec<UsageOutcome>>]) -> DateTime<Utc> {
    jobs.iter().map(|job| job.batch.now).max().unwrap_or_default()
}

/// Reads the candidate packs of `pairs` into `groups` (every pair gets an entry, maybe empty).
async fn read_candidates(
    conn: &impl ConnectionTrait,
    pairs: &BTreeSet<(i64, &str)>,
    groups: &mut Groups,
) -> StoreResult<()> {
    for &(account_id, subproduct) in pairs {
        groups.insert((account_id, subproduct.to_owned()), Vec::new());
    }
    for pack in candidates(conn, pairs).await? {
        groups.entry((pack.account_id, pack.subproduct.clone())).or_default().push(pack);
    }
    Ok(())
}

/// Writes a plan's rows: records and their IDs, deductions, capacity, lifecycle, rollups,
/// settlements; returns each record's outcome in order.
async fn write_plan(
    tx: &WriteTx<'_>,
    records: &[&CheckedRecord],
    stored: &Stored,
    plan: GroupPlan,
) -> StoreResult<Vec<UsageOutcome>> {
    let GroupPlan {
        fresh,
        mut outcomes,
        record_inserts,
        deduction_inserts,
        item_updates,
        ended,
        daily_upserts,
        settlements,
        now,
    } = plan;
    let record_ids = insert_records(tx, records, &fresh, record_inserts).await?;
    for (&i, &id) in fresh.iter().zip(&record_ids) {
        if let Some(outcome) = outcomes.get_mut(&(records[i].record.account_id, records[i].key.clone())) {
            outcome.usage_record_id = id;
        }
    }
    for (mut statement, rows) in deduction_inserts {
        fill_ids(&mut statement, DEDUCTION_VALUES, DEDUCTION_RECORD_ID, rows.iter().map(|&record| record_ids[record]));
        tx.execute(statement).await?;
    }
    for (statement, rows) in item_updates {
        if tx.execute(statement).await?.rows_affected() != rows {
            return Err(StoreError::conflict("the capacity of a resource pack in this batch"));
        }
    }
    let ended: Vec<_> = ended.iter().map(|(before, after)| (before, after, Some(now))).collect();
    write_packs(&**tx, &ended, now).await?;
    for statement in daily_upserts {
        tx.execute(statement).await?;
    }
    add_settlements(&**tx, settlements, now).await?;

    let mut answers = Vec::with_capacity(records.len());
    let mut answered: HashSet<(i64, &str)> = HashSet::new();
    for c in records {
        let first = answered.insert((c.record.account_id, c.key.as_str()));
        match stored.get(&(c.record.account_id, c.key.clone())) {
            Some(row) => answers.push(replayed(&**tx, row).await?),
            None => {
                let outcome = &outcomes[&(c.record.account_id, c.key.clone())];
                answers.push(UsageOutcome { replayed: !first, ..outcome.clone() });
            }
        }
    }
    Ok(answers)
}
