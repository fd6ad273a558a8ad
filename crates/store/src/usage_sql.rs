//! The statements of a usage group: the candidate read, the bulk inserts and guarded updates
//! its plan is written with, and the reads that answer replays. Built by the planner
//! (`usage_write`) and run by the group's transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::NaiveDate;
use respack_domain::{Pack, PackId};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, Set, Statement};

use crate::candidate_cache::Groups;
use crate::convert::{money, quantity};
use crate::db::{or_fail, placeholder_row, WriteTx};
use crate::entity::{deductions, pack_items, packs, usage_daily, usage_records};
use crate::error::{StoreError, StoreResult};
use crate::pack_rows::{item_row, pack_row, to_pack, PACK_ITEM_COLUMNS};
use crate::usage::{CheckedRecord, UsageOutcome};

/// The live packs of exactly the (account, subproduct) pairs in the batch, with their items;
/// the domain's `candidate_item` then applies the time window and scope. On PostgreSQL they
/// are locked pair by pair in the pairs' order and by ID within a pair — one order every
/// group follows — so concurrent groups queue on shared packs and never deadlock on them.
///
/// The pairs drive the lookup, each probing the pack index: a group's pairs are a few
/// percent of all, and a plan that scans every live pack instead costs the whole table per
/// group. PostgreSQL gets them as two array parameters (one statement however many pairs a
/// group has) and looks up each pair's packs and items in a `LATERAL` subquery: a subquery
/// that locks is never merged into the outer query, so the pairs stay the outer loop whatever
/// the statistics say (measured on a freshly loaded database, the merged join scanned and
/// hashed all 100,000 packs for a group of 1,500 pairs: 195 ms against 71 ms). SQLite gets a
/// VALUES list, in chunks below its parameter limit; there `CROSS JOIN` keeps that list the
/// outer loop and `INDEXED BY` pins the pack index: without statistics its planner otherwise
/// scanned every live pack through a status index (since dropped) or built an automatic index
/// on the list for each batch.
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
    Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        format!(
            "SELECT c.* FROM unnest($1::text::bigint[], $2::text::text[]) AS w (account_id, subproduct_code) \
             CROSS JOIN LATERAL (\
               SELECT {PACK_ITEM_COLUMNS} FROM packs p JOIN pack_items i ON i.pack_id = p.id \
               WHERE p.account_id = w.account_id AND p.subproduct_code = w.subproduct_code \
                 AND p.lifecycle IN ('inactive', 'valid') AND p.frozen = false \
               ORDER BY p.id, i.position FOR UPDATE OF p) AS c"
        ),
        pair_arrays(pairs.iter().copied()),
    )
}

/// (account, text) pairs as the two PostgreSQL array literals `unnest($1::text::bigint[],
/// $2::text::text[])` reads back as rows, in order.
fn pair_arrays<'a>(pairs: impl Iterator<Item = (i64, &'a str)> + Clone) -> [sea_orm::Value; 2] {
    let literal = |elements: Vec<String>| format!("{{{}}}", elements.join(","));
    [
        literal(pairs.clone().map(|(account_id, _)| account_id.to_string()).collect()).into(),
        literal(pairs.map(|(_, text)| quoted_element(text)).collect()).into(),
    ]
}

/// `text` as an element of a PostgreSQL array literal: quoted, with `"` and `\` escaped.
fn quoted_element(text: &str) -> String {
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
pub(crate) struct ItemChange {
    pub(crate) pack_id: PackId,
    pub(crate) position: i64,
    pub(crate) seen: [i64; 3],
    pub(crate) new: [i64; 3],
}

/// Every changed item's update, in few statements, each guarded on the values the plan was
/// made from (`remaining`, `cycle_index`, `used`), with the rows it must change: if any item
/// moved under us, the group retries.
pub(crate) fn item_updates(backend: DatabaseBackend, changes: &[ItemChange]) -> Vec<(Statement, u64)> {
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
            "UPDATE{} pack_items SET remaining = v.column6, cycle_index = v.column7, used = v.column8 \
             FROM (VALUES {}) AS v \
             WHERE pack_items.pack_id = v.column1 AND pack_items.position = v.column2 \
             AND pack_items.remaining = v.column3 AND pack_items.cycle_index = v.column4 \
             AND pack_items.used = v.column5",
            or_fail(backend),
            rows.join(", ")
        );
        statements.push((Statement::from_sql_and_values(backend, sql, values), chunk.len() as u64));
    }
    statements
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

const DEDUCTION_COLUMNS: &str = "account_id, usage_record_id, pack_id, item_position, usage_type, cycle_index, \
                                 amount, before, after, deducted_at";
/// Values per deduction row, and where the record's ID goes among them.
pub(crate) const DEDUCTION_VALUES: usize = 10;
pub(crate) const DEDUCTION_RECORD_ID: usize = 1;

/// The deductions' INSERTs, 500 rows each, with the record of every row (the record IDs are 0
/// until [`fill_ids`] sets them).
pub(crate) fn deduction_inserts(backend: DatabaseBackend, rows: &[NewDeduction]) -> Vec<(Statement, Vec<usize>)> {
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
        let sql =
            format!("INSERT{} INTO deductions ({DEDUCTION_COLUMNS}) VALUES {}", or_fail(backend), tuples.join(", "));
        statements
            .push((Statement::from_sql_and_values(backend, sql, values), chunk.iter().map(|row| row.record).collect()));
    }
    statements
}

/// A usage record's values, in [`RECORD_COLUMNS`] order.
pub(crate) type RecordValues = [sea_orm::Value; RECORD_VALUES];
const RECORD_VALUES: usize = 12;

const RECORD_COLUMNS: &str = "account_id, idempotency_key, product_code, subproduct_code, usage_type, unit, \
                              attributes, quantity, overage, overage_cost, occurred_at, received_at";

/// The usage records' INSERTs, 500 rows each, with the rows each holds. On SQLite the IDs are
/// given — the first value of each row, filled in by [`fill_ids`] once the transaction knows
/// the next free one — so nothing need come back; on PostgreSQL the sequence assigns them and
/// each statement returns `(account, idempotency key, id)` of its rows.
pub(crate) fn record_inserts(backend: DatabaseBackend, rows: Vec<RecordValues>) -> Vec<(Statement, usize)> {
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
            format!("INSERT{} INTO usage_records (id, {RECORD_COLUMNS}) VALUES {}", or_fail(backend), tuples.join(", "))
        } else {
            format!(
                "INSERT{} INTO usage_records ({RECORD_COLUMNS}) VALUES {} RETURNING account_id, idempotency_key, id",
                or_fail(backend),
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
pub(crate) fn fill_ids(statement: &mut Statement, per_row: usize, offset: usize, ids: impl IntoIterator<Item = i64>) {
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
pub(crate) fn daily_upserts(
    backend: DatabaseBackend,
    daily: BTreeMap<(i64, String, String, NaiveDate), (i64, i64)>,
) -> StoreResult<Vec<Statement>> {
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
    Ok(crate::db::insert_statements(
        backend,
        rows,
        "ON CONFLICT (account_id, pack_id, usage_type, day) DO UPDATE SET \
         amount = usage_daily.amount + excluded.amount, records = usage_daily.records + excluded.records",
    )?)
}

/// Inserts the records and returns their IDs in order: given on SQLite, returned by
/// PostgreSQL.
pub(crate) async fn insert_records(
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

/// Usage records already stored and the outcomes they answer with, by (account, key).
pub(crate) type Stored = HashMap<(i64, String), usage_records::Model>;

/// Usage records already stored under the batch's keys, by (account, key).
///
/// Each key is a probe of the unique index on (key, account). On PostgreSQL the keys go as two
/// arrays into one `LATERAL` lookup: an `IN` list there is planned on the table's statistics,
/// and with none yet (a table that grew since autovacuum last looked) it guessed that 500 keys
/// match a quarter of the rows and scanned them all — for every chunk of every group, so the
/// cost grew with the table.
pub(crate) async fn stored_records(conn: &impl ConnectionTrait, checked: &[&CheckedRecord]) -> StoreResult<Stored> {
    match conn.get_database_backend() {
        DatabaseBackend::Postgres => postgres_stored_records(conn, checked).await,
        _ => sqlite_stored_records(conn, checked).await,
    }
}

async fn postgres_stored_records(conn: &impl ConnectionTrait, checked: &[&CheckedRecord]) -> StoreResult<Stored> {
    let mut found = HashMap::new();
    if checked.is_empty() {
        return Ok(found);
    }
    let statement = Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT r.* FROM unnest($1::text::bigint[], $2::text::text[]) AS k (account_id, idempotency_key) \
         CROSS JOIN LATERAL (SELECT * FROM usage_records u \
           WHERE u.idempotency_key = k.idempotency_key AND u.account_id = k.account_id OFFSET 0) AS r",
        pair_arrays(checked.iter().map(|c| (c.record.account_id, c.key.as_str()))),
    );
    for row in usage_records::Entity::find().from_raw_sql(statement).all(conn).await? {
        found.insert((row.account_id, row.idempotency_key.clone()), row);
    }
    Ok(found)
}

async fn sqlite_stored_records(conn: &impl ConnectionTrait, checked: &[&CheckedRecord]) -> StoreResult<Stored> {
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

pub(crate) async fn replayed(conn: &impl ConnectionTrait, row: &usage_records::Model) -> StoreResult<UsageOutcome> {
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

/// Reads the candidate packs of `pairs` into `groups` (every pair gets an entry, maybe empty).
pub(crate) async fn read_candidates(
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
