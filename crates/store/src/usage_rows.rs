//! The rows a usage group writes — usage records, deductions, capacity changes, daily rollups,
//! overage settlements — as the planner leaves them, and how they are written: on PostgreSQL as
//! multi-row statements, on SQLite one row at a time through statements prepared on the
//! writer's own connection.
//!
//! SQLite runs in this process, so what costs there is not the number of statements but
//! everything around each one: sqlx hands every statement to the connection's worker thread
//! and waits for its answer, with each value converted into its arguments first. The group's
//! rows are therefore written directly on the handle sqlx lends out (`respack-sqlite-direct`):
//! a statement per table prepared once per group, each run once per row with its values bound
//! in place. A settlement line of the day usually exists already (every group with overage adds
//! to it), so on SQLite its cost is added by key, and only the lines of the day's first overage
//! are inserted, as PostgreSQL inserts them all: an upsert of the whole line (twenty values,
//! several of them text) for each of them cost ~15 µs, most of a group's time once many packs
//! are used up. PostgreSQL is a server a round trip away: there a few large statements are what
//! pays.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use respack_domain::PackId;
use respack_sqlite_direct::Connection;
use sea_orm::{ConnectionTrait, DatabaseBackend, Set, Statement};

use crate::bills::{add_settlements, Settlement};
use crate::convert::money_units;
use crate::db::{placeholder_row, WriteTx};
use crate::entity::usage_daily;
use crate::error::{StoreError, StoreResult};
use crate::usage::CheckedRecord;

/// A usage record to insert: its position among the group's records, and what planning made
/// of it (the rest — account, key, product, … — is the record's own).
pub(crate) struct NewRecord {
    pub(crate) position: usize,
    /// The attributes as JSON.
    pub(crate) attributes: String,
    pub(crate) quantity: i64,
    pub(crate) overage: i64,
    pub(crate) overage_cost: i64,
    pub(crate) occurred_at: i64,
    pub(crate) received_at: i64,
}

/// One deduction row as planned; its record's ID is known once the records are inserted.
pub(crate) struct NewDeduction {
    /// The position of its record among the group's written records.
    pub(crate) record: usize,
    pub(crate) account_id: i64,
    pub(crate) pack_id: String,
    pub(crate) item_position: i32,
    pub(crate) usage_type: Option<String>,
    pub(crate) cycle_index: i64,
    pub(crate) amount: i64,
    pub(crate) before: Option<i64>,
    pub(crate) after: Option<i64>,
    pub(crate) deducted_at: i64,
}

/// One capacity item's change: where it is, what the group read, what it writes.
pub(crate) struct ItemChange {
    pub(crate) pack_id: PackId,
    pub(crate) position: i64,
    pub(crate) seen: [i64; 3],
    pub(crate) new: [i64; 3],
}

/// A daily rollup's key: account, pack, usage type (empty when none), day.
pub(crate) type DailyKey = (i64, String, String, NaiveDate);

/// Everything a group writes but its packs' lifecycle, in the order of the index each lands in
/// (deductions by account and time, items by pack; rollups and settlements come sorted by their
/// keys), so that consecutive rows find their B-tree pages where the row before left off.
#[derive(Default)]
pub(crate) struct GroupRows {
    pub(crate) records: Vec<NewRecord>,
    pub(crate) deductions: Vec<NewDeduction>,
    pub(crate) items: Vec<ItemChange>,
    /// Amount and number of deductions to add to each rollup.
    pub(crate) daily: BTreeMap<DailyKey, (i64, i64)>,
    /// Overage cost to add to each day's pay-as-you-go line.
    pub(crate) settlements: Vec<Settlement>,
}

const RECORD_COLUMNS: &str = "account_id, idempotency_key, product_code, subproduct_code, usage_type, unit, \
                              attributes, quantity, overage, overage_cost, occurred_at, received_at";
const DEDUCTION_COLUMNS: &str = "account_id, usage_record_id, pack_id, item_position, usage_type, cycle_index, \
                                 amount, before, after, deducted_at";
const DAILY_UPSERT: &str = "ON CONFLICT (account_id, pack_id, usage_type, day) DO UPDATE SET \
                            amount = usage_daily.amount + excluded.amount, \
                            records = usage_daily.records + excluded.records";

/// A column value as both writers bind it: SQLite's prepared statements (text borrowed) and
/// PostgreSQL's multi-row ones (where a NULL carries its column's type).
trait ColumnValue<'a> {
    fn integer(value: i64) -> Self;
    fn text(value: &'a str) -> Self;
    fn optional_integer(value: Option<i64>) -> Self;
    fn optional_text(value: Option<&'a str>) -> Self;
}

impl<'a> ColumnValue<'a> for respack_sqlite_direct::Value<'a> {
    fn integer(value: i64) -> Self {
        value.into()
    }
    fn text(value: &'a str) -> Self {
        value.into()
    }
    fn optional_integer(value: Option<i64>) -> Self {
        value.into()
    }
    fn optional_text(value: Option<&'a str>) -> Self {
        value.into()
    }
}

impl<'a> ColumnValue<'a> for sea_orm::Value {
    fn integer(value: i64) -> Self {
        value.into()
    }
    fn text(value: &'a str) -> Self {
        value.into()
    }
    fn optional_integer(value: Option<i64>) -> Self {
        value.into()
    }
    fn optional_text(value: Option<&'a str>) -> Self {
        value.map(str::to_owned).into()
    }
}

/// A usage record's values, in [`RECORD_COLUMNS`] order.
fn record_values<'a, V: ColumnValue<'a>>(checked: &'a CheckedRecord, row: &'a NewRecord) -> [V; 12] {
    let record = &checked.record;
    [
        V::integer(record.account_id),
        V::text(&checked.key),
        V::text(&record.product),
        V::text(&record.subproduct),
        V::optional_text(record.usage_type.as_deref()),
        V::text(&record.unit),
        V::text(&row.attributes),
        V::integer(row.quantity),
        V::integer(row.overage),
        V::integer(row.overage_cost),
        V::integer(row.occurred_at),
        V::integer(row.received_at),
    ]
}

/// A deduction's values, in [`DEDUCTION_COLUMNS`] order, with its record's ID.
fn deduction_values<'a, V: ColumnValue<'a>>(row: &'a NewDeduction, record_id: i64) -> [V; 10] {
    [
        V::integer(row.account_id),
        V::integer(record_id),
        V::text(&row.pack_id),
        V::integer(row.item_position.into()),
        V::optional_text(row.usage_type.as_deref()),
        V::integer(row.cycle_index),
        V::integer(row.amount),
        V::optional_integer(row.before),
        V::optional_integer(row.after),
        V::integer(row.deducted_at),
    ]
}

/// Another transaction wrote one of these keys after this one looked (two batches with a key
/// in common, written side by side on PostgreSQL, or by another process): the group retries and
/// finds it stored.
fn key_taken() -> StoreError {
    StoreError::conflict("a usage record with one of these idempotency keys")
}

/// A guarded capacity update found the item changed since the group read it.
fn capacity_moved() -> StoreError {
    StoreError::conflict("the capacity of a resource pack in this batch")
}

/// Writes the rows (new settlement lines stamped `now`); returns the IDs of the inserted
/// records, in order.
pub(crate) async fn write_rows(
    tx: &WriteTx,
    records: &[&CheckedRecord],
    mut rows: GroupRows,
    now: DateTime<Utc>,
) -> StoreResult<Vec<i64>> {
    let (ids, new_lines) = match tx.get_database_backend() {
        DatabaseBackend::Postgres => {
            let ids = write_postgres(tx, records, &rows).await?;
            (ids, std::mem::take(&mut rows.settlements))
        }
        _ => {
            let first = next_record_id(&**tx).await?;
            let (ids, unmatched) =
                tx.sqlite_direct(|connection| write_sqlite(connection, records, &rows, first)).await??;
            // Both in order: keep the settlements at the unmatched positions.
            let mut unmatched = unmatched.into_iter().peekable();
            let settlements = std::mem::take(&mut rows.settlements).into_iter().enumerate();
            let new_lines = settlements.filter(|(index, _)| unmatched.next_if_eq(index).is_some());
            (ids, new_lines.map(|(_, settlement)| settlement).collect())
        }
    };
    add_settlements(&**tx, new_lines, now).await?;
    Ok(ids)
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

/// SQLite: every row through a statement prepared for its table, the records with the IDs
/// from `first` on (SQLite takes them as given, so nothing need come back). Returns the IDs, and
/// the settlements (by position) whose line does not exist yet: they are inserted after.
fn write_sqlite(
    connection: &Connection<'_>,
    records: &[&CheckedRecord],
    rows: &GroupRows,
    first: i64,
) -> StoreResult<(Vec<i64>, Vec<usize>)> {
    let failed = |error: respack_sqlite_direct::Error| StoreError::Database(sea_orm::DbErr::Custom(error.to_string()));
    // `OR FAIL`: a failing row leaves the statement's earlier work in place rather than undoing
    // it from a statement journal — the whole transaction is dropped on any error anyway.
    let mut insert_record = connection
        .prepare(&format!(
            "INSERT OR FAIL INTO usage_records (id, {RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .map_err(failed)?;
    let ids: Vec<i64> = (first..).take(rows.records.len()).collect();
    for (row, &id) in rows.records.iter().zip(&ids) {
        insert_record
            .execute(std::iter::once(id.into()).chain(record_values(records[row.position], row)))
            .map_err(|error| if error.is_unique_violation() { key_taken() } else { failed(error) })?;
    }
    let mut insert_deduction = connection
        .prepare(&format!("INSERT OR FAIL INTO deductions ({DEDUCTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
        .map_err(failed)?;
    for row in &rows.deductions {
        insert_deduction.execute(deduction_values(row, ids[row.record])).map_err(failed)?;
    }
    let mut update_item = connection
        .prepare(
            "UPDATE OR FAIL pack_items SET remaining = ?, cycle_index = ?, used = ? \
             WHERE pack_id = ? AND position = ? AND remaining = ? AND cycle_index = ? AND used = ?",
        )
        .map_err(failed)?;
    for change in &rows.items {
        let [remaining, cycle_index, used] = change.new;
        let [seen_remaining, seen_cycle, seen_used] = change.seen;
        let changed = update_item
            .execute([
                remaining.into(),
                cycle_index.into(),
                used.into(),
                change.pack_id.as_str().into(),
                change.position.into(),
                seen_remaining.into(),
                seen_cycle.into(),
                seen_used.into(),
            ])
            .map_err(failed)?;
        if changed != 1 {
            return Err(capacity_moved());
        }
    }
    let mut upsert_daily = connection
        .prepare(&format!(
            "INSERT OR FAIL INTO usage_daily (account_id, pack_id, usage_type, day, amount, records) \
             VALUES (?, ?, ?, ?, ?, ?) {DAILY_UPSERT}"
        ))
        .map_err(failed)?;
    let mut day_text = String::new();
    for ((account_id, pack_id, usage_type, day), &(amount, count)) in &rows.daily {
        use std::fmt::Write;
        day_text.clear();
        let _ = write!(day_text, "{day}");
        upsert_daily
            .execute([
                (*account_id).into(),
                pack_id.as_str().into(),
                usage_type.as_str().into(),
                day_text.as_str().into(),
                amount.into(),
                count.into(),
            ])
            .map_err(failed)?;
    }
    let mut add_cost = connection
        .prepare("UPDATE OR FAIL bill_lines SET total_cost = total_cost + ? WHERE settlement_key = ?")
        .map_err(failed)?;
    let mut unmatched = Vec::new();
    for (index, settlement) in rows.settlements.iter().enumerate() {
        let cost = money_units(settlement.cost)?;
        if add_cost.execute([cost.into(), settlement.key.as_str().into()]).map_err(failed)? == 0 {
            unmatched.push(index);
        }
    }
    Ok((ids, unmatched))
}

/// PostgreSQL: multi-row statements, the records' IDs returned by the sequence.
async fn write_postgres(tx: &WriteTx, records: &[&CheckedRecord], rows: &GroupRows) -> StoreResult<Vec<i64>> {
    let backend = DatabaseBackend::Postgres;
    let ids = insert_postgres_records(tx, records, &rows.records).await?;
    for statement in deduction_inserts(&rows.deductions, &ids) {
        tx.execute(statement).await?;
    }
    if !rows.items.is_empty() {
        // Each update joins its VALUES list to the items through their unique index. Without
        // current statistics PostgreSQL priced that above scanning and hashing all items — a
        // whole table per 400 rows (25–65 ms each at 100,000 packs against ~4 ms): joins in
        // this transaction are nested loops over the index, as every statement here intends.
        tx.execute_unprepared("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off").await?;
    }
    for (statement, rows) in item_updates(&rows.items) {
        if tx.execute(statement).await?.rows_affected() != rows {
            return Err(capacity_moved());
        }
    }
    for statement in daily_upserts(backend, &rows.daily)? {
        tx.execute(statement).await?;
    }
    Ok(ids)
}

/// Inserts the records, 500 a statement, and returns their IDs in order, as each statement
/// returns `(account, idempotency key, id)` of its rows.
async fn insert_postgres_records(
    tx: &WriteTx,
    records: &[&CheckedRecord],
    rows: &[NewRecord],
) -> StoreResult<Vec<i64>> {
    let backend = DatabaseBackend::Postgres;
    let mut by_key: HashMap<(i64, String), i64> = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(500) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 12);
        let mut tuples = Vec::with_capacity(chunk.len());
        for row in chunk {
            let start = values.len();
            values.extend(record_values::<sea_orm::Value>(records[row.position], row));
            tuples.push(placeholder_row(backend, start, values.len() - start));
        }
        let sql = format!(
            "INSERT INTO usage_records ({RECORD_COLUMNS}) VALUES {} RETURNING account_id, idempotency_key, id",
            tuples.join(", ")
        );
        let returned = tx.query_all(Statement::from_sql_and_values(backend, sql, values)).await.map_err(|error| {
            if matches!(error.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) {
                key_taken()
            } else {
                StoreError::from(error)
            }
        })?;
        for row in returned {
            by_key.insert((row.try_get_by_index(0)?, row.try_get_by_index(1)?), row.try_get_by_index(2)?);
        }
    }
    rows.iter()
        .map(|row| {
            let checked = records[row.position];
            by_key.remove(&(checked.record.account_id, checked.key.clone())).ok_or_else(|| {
                StoreError::Corrupt(format!("the database returned no ID for usage record {:?}", checked.key))
            })
        })
        .collect()
}

/// The deductions' INSERTs, 500 rows each, with their records' IDs.
fn deduction_inserts(rows: &[NewDeduction], record_ids: &[i64]) -> Vec<Statement> {
    let backend = DatabaseBackend::Postgres;
    let mut statements = Vec::new();
    for chunk in rows.chunks(500) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 10);
        let mut tuples = Vec::with_capacity(chunk.len());
        for row in chunk {
            let start = values.len();
            values.extend(deduction_values::<sea_orm::Value>(row, record_ids[row.record]));
            tuples.push(placeholder_row(backend, start, values.len() - start));
        }
        let sql = format!("INSERT INTO deductions ({DEDUCTION_COLUMNS}) VALUES {}", tuples.join(", "));
        statements.push(Statement::from_sql_and_values(backend, sql, values));
    }
    statements
}

/// Every changed item's update, 400 a statement, each guarded on the values the plan was made
/// from (`remaining`, `cycle_index`, `used`), with the rows it must change: if any item moved
/// under us, the group retries.
fn item_updates(changes: &[ItemChange]) -> Vec<(Statement, u64)> {
    let backend = DatabaseBackend::Postgres;
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
        // VALUES columns are named column1… in PostgreSQL.
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

/// The daily rollups' upserts: each adds to the row of its (account, pack, usage type, day).
fn daily_upserts(backend: DatabaseBackend, daily: &BTreeMap<DailyKey, (i64, i64)>) -> StoreResult<Vec<Statement>> {
    let rows: Vec<usage_daily::ActiveModel> = daily
        .iter()
        .map(|((account_id, pack_id, usage_type, day), &(amount, records))| usage_daily::ActiveModel {
            account_id: Set(*account_id),
            pack_id: Set(pack_id.clone()),
            usage_type: Set(usage_type.clone()),
            day: Set(day.to_string()),
            amount: Set(amount),
            records: Set(records),
        })
        .collect();
    Ok(crate::db::insert_statements(backend, rows, DAILY_UPSERT)?)
}
