//! What a usage group reads: its candidate packs, the records already stored under its keys,
//! and what answers a replay. What it writes is in `usage_rows`.

use std::collections::{BTreeSet, HashMap, HashSet};

use respack_domain::Pack;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, Statement};

use crate::candidate_cache::Groups;
use crate::convert::{money, quantity};
use crate::entity::{pack_items, packs, usage_records};
use crate::error::StoreResult;
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

/// The first outcome of a stored record, to answer its key again. What was deducted is what
/// was not overage: every record's quantity is one or the other.
pub(crate) fn replayed(row: &usage_records::Model) -> UsageOutcome {
    UsageOutcome {
        idempotency_key: row.idempotency_key.clone(),
        usage_record_id: row.id,
        deducted: quantity(row.quantity - row.overage),
        overage: quantity(row.overage),
        overage_cost: money(row.overage_cost),
        replayed: true,
    }
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
