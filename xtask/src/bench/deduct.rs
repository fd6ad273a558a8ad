//! `cargo xtask bench deduct`: usage records per second through `Store::record_usage_of_accounts`
//! on SQLite and on PostgreSQL, each compared with a hand-written plain-SQL baseline doing the
//! same reads and writes (idempotency check, candidate packs, usage rows, deductions, guarded
//! capacity updates, daily rollups, settlements) on the same database in the same run.
//! Prints progress, then one JSON line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{bail, ensure, Context, Result};
use respack_domain::chrono::Duration;
use respack_domain::money::{from_fixed, to_fixed, QUANTITY_SCALE};
use respack_domain::rust_decimal::Decimal;
use respack_store::{SealingKey, Store, UsageInput, USAGE_GROUP_RECORDS, USAGE_WRITERS_POSTGRES};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Statement, TransactionTrait, Value,
};
use tokio::sync::{oneshot, Mutex, Semaphore};

use super::workload::{self, base_time, insert_rows, marks, Shape};
use crate::pg_cluster::{Durability, PgCluster, PgInstall};

const BATCH: usize = 1000;

struct Options {
    shape: Shape,
    pg_clients: usize,
    sqlite_clients: usize,
    sqlite: bool,
    postgres: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        shape: Shape { accounts: 10_000, packs: 100_000, records: 1_000_000 },
        pg_clients: 16,
        sqlite_clients: 16,
        sqlite: true,
        postgres: true,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        if flag == "--backend" {
            (options.sqlite, options.postgres) = match value.as_str() {
                "sqlite" => (true, false),
                "postgres" => (false, true),
                "both" => (true, true),
                other => bail!("unknown backend {other:?}; use --backend sqlite, postgres or both"),
            };
            continue;
        }
        let value: usize =
            value.replace('_', "").parse().with_context(|| format!("{flag} needs a whole number, not {value:?}"))?;
        match flag.as_str() {
            "--accounts" => options.shape.accounts = value,
            "--packs" => options.shape.packs = value,
            "--records" => options.shape.records = value,
            "--pg-clients" => options.pg_clients = value,
            "--sqlite-clients" => options.sqlite_clients = value,
            other => bail!(
                "unknown option {other}; use --accounts, --packs, --records, --pg-clients, --sqlite-clients, --backend"
            ),
        }
    }
    ensure!(options.shape.accounts > 0 && options.shape.packs >= options.shape.accounts, "need packs >= accounts > 0");
    ensure!(options.pg_clients > 0 && options.sqlite_clients > 0, "need at least one client");
    Ok(options)
}

pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let Shape { accounts, packs, records } = options.shape;
        println!("bench deduct: {accounts} accounts, {packs} packs (all payment modes), {records} usage records, batches of {BATCH}");
        let sqlite = if options.sqlite { Some(measure_sqlite(&options).await?) } else { None };
        let postgres = if options.postgres { Some(measure_postgres(&options).await?) } else { None };
        println!(
            "{}",
            serde_json::json!({
                "bench": "deduct",
                "sqlite_records_per_s": sqlite.map(|(respack, _)| respack.round()),
                "postgres_records_per_s": postgres.map(|(respack, _)| respack.round()),
                "postgres_clients": options.pg_clients,
                "raw_sql_ratio_sqlite": sqlite.map(ratio),
                "raw_sql_ratio_postgres": postgres.map(ratio),
            })
        );
        Ok(())
    })
}

/// respack's records per second over the plain-SQL baseline's, to two decimals.
fn ratio((respack, baseline): (f64, f64)) -> f64 {
    (respack / baseline * 100.0).round() / 100.0
}

/// respack and the baseline on SQLite, each in a file of its own in a temporary dir.
async fn measure_sqlite(options: &Options) -> Result<(f64, f64)> {
    let dir = std::env::temp_dir().join(format!("respack-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = |name: &str| format!("sqlite://{}?mode=rwc", dir.join(format!("{name}.db")).display());
    let measured = measure_pair("sqlite", &url("respack"), &url("raw"), options, options.sqlite_clients).await;
    let _ = std::fs::remove_dir_all(&dir);
    measured
}

/// respack and the baseline on a throwaway PostgreSQL cluster, each in a database of its own.
async fn measure_postgres(options: &Options) -> Result<(f64, f64)> {
    let install = PgInstall::find().context("PostgreSQL server binaries are needed (apt-get install postgresql)")?;
    let cluster = PgCluster::start(&install, Durability::Durable)?;
    let admin = Database::connect(cluster.url()).await?;
    for name in ["bench_respack", "bench_raw"] {
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
    }
    let server = cluster.url().rsplit_once('/').map(|(server, _)| server.to_owned()).unwrap_or_default();
    let measured = measure_pair(
        "postgres",
        &format!("{server}/bench_respack"),
        &format!("{server}/bench_raw"),
        options,
        options.pg_clients,
    )
    .await?;
    admin.close().await?;
    drop(cluster);
    Ok(measured)
}

/// respack's and the baseline's records per second on one backend.
async fn measure_pair(
    backend: &str,
    respack_url: &str,
    raw_url: &str,
    options: &Options,
    clients: usize,
) -> Result<(f64, f64)> {
    let store = Store::connect(respack_url, SealingKey::from_bytes([9; 32])).await?;
    let setup = connect(respack_url).await?;
    let ids =
        timed(&format!("{backend}: loading accounts and packs for respack"), workload::load(&setup, options.shape))
            .await?;
    let work = generate(options.shape, &ids, clients);
    let sender = store.clone();
    let respack = drive(&format!("{backend} respack"), work, move |batch| {
        let store = sender.clone();
        async move {
            let refs: Vec<(i64, &UsageInput)> = batch.iter().map(|(account, input)| (*account, input)).collect();
            store.record_usage_of_accounts(&refs, base_time() + Duration::hours(2)).await?;
            Ok(())
        }
    })
    .await?;
    verify(backend, "respack", &setup, options.shape.records).await?;
    store.close().await?;
    setup.close().await?;

    let raw = connect(raw_url).await?;
    // The baseline needs the schema: let the store create it, then close it.
    Store::connect(raw_url, SealingKey::from_bytes([9; 32])).await?.close().await?;
    let ids = timed(
        &format!("{backend}: loading accounts and packs for the plain-SQL baseline"),
        workload::load(&raw, options.shape),
    )
    .await?;
    let work = generate(options.shape, &ids, clients);
    let writers = if raw.get_database_backend() == DatabaseBackend::Sqlite { 1 } else { USAGE_WRITERS_POSTGRES };
    let groups = Arc::new(BaselineGroups { pending: Mutex::new(Vec::new()), writers: Semaphore::new(writers) });
    let sender = raw.clone();
    let baseline = drive(&format!("{backend} plain SQL"), work, move |batch| {
        let (raw, groups) = (sender.clone(), groups.clone());
        async move { groups.write(&raw, batch).await }
    })
    .await?;
    verify(backend, "plain SQL", &raw, options.shape.records).await?;
    raw.close().await?;
    println!(
        "{backend}: respack {:.0} records/s, plain SQL {:.0} records/s, ratio {:.2} ({clients} clients)",
        respack,
        baseline,
        respack / baseline
    );
    Ok((respack, baseline))
}

async fn connect(url: &str) -> Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(32).sqlx_logging(false).map_sqlx_sqlite_opts(|sqlite| {
        sqlite
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(StdDuration::from_secs(30))
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory")
            // As respack's own connections (crates/store/src/db.rs): fewer thread hand-overs
            // when a read returns many rows.
            .row_buffer_size(1000)
    });
    Ok(Database::connect(options).await?)
}

async fn timed<T>(what: &str, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let result = work.await?;
    println!("{what}: {:.1}s", started.elapsed().as_secs_f64());
    Ok(result)
}

type Batch = Vec<(i64, UsageInput)>;

/// Each client's records in batches.
fn generate(shape: Shape, ids: &[i64], clients: usize) -> Vec<Vec<Batch>> {
    (0..clients)
        .map(|client| {
            let mut records = workload::records(shape, ids, client, clients).into_iter().peekable();
            let mut batches = Vec::new();
            while records.peek().is_some() {
                batches.push(records.by_ref().take(BATCH).collect());
            }
            batches
        })
        .collect()
}

/// Runs every client's batches concurrently; returns records per second.
async fn drive<F, Fut>(label: &str, work: Vec<Vec<Batch>>, send: F) -> Result<f64>
where
    F: Fn(Batch) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let total: usize = work.iter().flatten().map(Vec::len).sum();
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let reporter = {
        let (done, label) = (done.clone(), label.to_owned());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(StdDuration::from_secs(5)).await;
                let count = done.load(Ordering::Relaxed);
                let rate = count as f64 / started.elapsed().as_secs_f64();
                println!("{label}: {count}/{total} records ({rate:.0}/s)");
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for batches in work {
        let (send, done) = (send.clone(), done.clone());
        tasks.spawn(async move {
            for batch in batches {
                let size = batch.len();
                send(batch).await?;
                done.fetch_add(size, Ordering::Relaxed);
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    reporter.abort();
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!("{label}: {total} records in {:.1}s = {rate:.0} records/s", started.elapsed().as_secs_f64());
    Ok(rate)
}

/// Deductions plus overage equal the usage, no remaining is negative, nothing was lost.
async fn verify(backend: &str, label: &str, db: &DatabaseConnection, records: usize) -> Result<()> {
    let one = |sql: &str| {
        let sql = sql.to_owned();
        async move {
            let row = db.query_one(Statement::from_string(db.get_database_backend(), sql)).await?.context("no row")?;
            Ok::<i64, anyhow::Error>(row.try_get_by_index::<i64>(0)?)
        }
    };
    let count = one("SELECT COUNT(*) FROM usage_records").await?;
    let quantity = one("SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM usage_records").await?;
    let overage = one("SELECT CAST(COALESCE(SUM(overage), 0) AS BIGINT) FROM usage_records").await?;
    let deducted = one("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM deductions").await?;
    let lowest = one("SELECT CAST(COALESCE(MIN(remaining), 0) AS BIGINT) FROM pack_items").await?;
    ensure!(count as usize == records, "{backend} {label}: {count} usage records stored, {records} sent");
    ensure!(
        deducted + overage == quantity,
        "{backend} {label}: deducted {deducted} + overage {overage} != usage {quantity}"
    );
    ensure!(lowest >= 0, "{backend} {label}: a remaining went negative ({lowest})");
    println!(
        "{backend} {label}: checked {count} records; deducted {} + overage {} = usage {}; lowest remaining {}",
        from_fixed(deducted, QUANTITY_SCALE),
        from_fixed(overage, QUANTITY_SCALE),
        from_fixed(quantity, QUANTITY_SCALE),
        from_fixed(lowest, QUANTITY_SCALE)
    );
    Ok(())
}

/// A candidate capacity item as the baseline reads it.
struct Item {
    pack_id: String,
    capacity: Option<i64>,
    remaining: i64,
    used: i64,
    cycle_index: i64,
    seen: (i64, i64, i64),
}

/// The baseline's group commit, as respack does it: the batches queued when a writer gets its
/// turn are written in one transaction (one writer at a time on SQLite, as many as respack runs
/// on PostgreSQL), up to respack's group size.
struct BaselineGroups {
    pending: Mutex<Vec<(Batch, oneshot::Sender<()>)>>,
    writers: Semaphore,
}

impl BaselineGroups {
    async fn write(&self, db: &DatabaseConnection, batch: Batch) -> Result<()> {
        let (done, written) = oneshot::channel();
        self.pending.lock().await.push((batch, done));
        // Whoever gets a writer's turn writes what is queued; a batch an earlier writer took
        // is answered by that writer.
        let _turn = self.writers.acquire().await?;
        loop {
            let group: Vec<(Batch, oneshot::Sender<()>)> = {
                let mut pending = self.pending.lock().await;
                let mut records = 0;
                let take = pending
                    .iter()
                    .take_while(|(batch, _)| {
                        records += batch.len();
                        records <= USAGE_GROUP_RECORDS
                    })
                    .count()
                    .max(1)
                    .min(pending.len());
                pending.drain(..take).collect()
            };
            if group.is_empty() {
                break;
            }
            let records: Batch = group.iter().flat_map(|(batch, _)| batch.iter().cloned()).collect();
            plain_sql_batch(db, &records).await?;
            for (_, done) in group {
                let _ = done.send(());
            }
        }
        written.await.context("the baseline writer that took this batch failed")
    }
}

/// The baseline: the same statements respack issues for a batch, written by hand, with a
/// greedy plan (earliest expiry first) and no ORM.
async fn plain_sql_batch(db: &DatabaseConnection, batch: &Batch) -> Result<()> {
    let backend = db.get_database_backend();
    let tx = db.begin().await?;
    if backend == DatabaseBackend::Sqlite {
        tx.execute_unprepared("UPDATE write_lock SET n = n + 1 WHERE id = 1").await?;
    }
    let accounts: Vec<i64> = batch.iter().map(|(a, _)| *a).collect::<HashSet<_>>().into_iter().collect();
    let keys: Vec<String> = batch.iter().map(|(_, r)| r.idempotency_key.clone()).collect();
    let subproducts: Vec<&str> = workload::SUBPRODUCTS.iter().map(|(_, s, _)| *s).collect();

    // Idempotency check.
    let values: Vec<Value> = keys.iter().map(|k| Value::from(k.clone())).collect();
    let sql = format!(
        "SELECT account_id, idempotency_key FROM usage_records WHERE idempotency_key IN {}",
        marks(backend, 0, keys.len())
    );
    let seen: HashSet<(i64, String)> = tx
        .query_all(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .iter()
        .map(|row| Ok((row.try_get_by_index::<i64>(0)?, row.try_get_by_index::<String>(1)?)))
        .collect::<Result<_>>()?;

    // Candidates, locked.
    let mut values: Vec<Value> = accounts.iter().map(|a| Value::from(*a)).collect();
    values.extend(subproducts.iter().map(|s| Value::from(*s)));
    let lock = if backend == DatabaseBackend::Postgres { "ORDER BY p.id FOR UPDATE OF p" } else { "" };
    let sql = format!(
        "SELECT p.id, p.account_id, p.subproduct_code, i.capacity, i.remaining, i.used, i.cycle_index \
         FROM packs p JOIN pack_items i ON i.pack_id = p.id \
         WHERE p.account_id IN {} AND p.subproduct_code IN {} AND p.lifecycle IN ('inactive', 'valid') \
         AND p.frozen = false {lock}",
        marks(backend, 0, accounts.len()),
        marks(backend, accounts.len(), subproducts.len())
    );
    let mut groups: HashMap<(i64, String), Vec<Item>> = HashMap::new();
    for row in tx.query_all(Statement::from_sql_and_values(backend, sql, values)).await? {
        let remaining: i64 = row.try_get_by_index(4)?;
        let used: i64 = row.try_get_by_index(5)?;
        let cycle_index: i64 = row.try_get_by_index(6)?;
        groups.entry((row.try_get_by_index(1)?, row.try_get_by_index(2)?)).or_default().push(Item {
            pack_id: row.try_get_by_index(0)?,
            capacity: row.try_get_by_index(3)?,
            remaining,
            used,
            cycle_index,
            seen: (remaining, cycle_index, used),
        });
    }

    // Plan greedily and collect the writes.
    let now = (base_time() + Duration::hours(2)).timestamp_millis();
    let mut records = Vec::new();
    let mut deductions: Vec<(String, Vec<Value>)> = Vec::new();
    let mut daily: BTreeMap<(i64, String), (i64, i64)> = BTreeMap::new();
    let mut settlements: BTreeMap<String, i64> = BTreeMap::new();
    for (account, record) in batch.iter().filter(|(a, r)| !seen.contains(&(*a, r.idempotency_key.clone()))) {
        let mut left = to_fixed(record.quantity, QUANTITY_SCALE)?;
        let quantity = left;
        let at = record.occurred_at.timestamp_millis();
        for item in groups.get_mut(&(*account, record.subproduct.clone())).into_iter().flatten() {
            if left == 0 {
                break;
            }
            let (amount, before, after) = match item.capacity {
                None => (left, None, None),
                Some(_) if item.remaining == 0 => continue,
                Some(_) => {
                    let amount = left.min(item.remaining);
                    (amount, Some(item.remaining), Some(item.remaining - amount))
                }
            };
            left -= amount;
            item.used += amount;
            if let Some(after) = after {
                item.remaining = after;
            }
            deductions.push((
                record.idempotency_key.clone(),
                vec![
                    (*account).into(),
                    item.pack_id.clone().into(),
                    0_i32.into(),
                    Option::<String>::None.into(),
                    item.cycle_index.into(),
                    amount.into(),
                    before.into(),
                    after.into(),
                    at.into(),
                ],
            ));
            let entry = daily.entry((*account, item.pack_id.clone())).or_default();
            entry.0 += amount;
            entry.1 += 1;
        }
        if left > 0 {
            *settlements.entry(format!("daily:{account}:{}:2026-06-01", record.subproduct)).or_default() += left;
        }
        records.push(vec![
            (*account).into(),
            record.idempotency_key.clone().into(),
            record.product.clone().into(),
            record.subproduct.clone().into(),
            Option::<String>::None.into(),
            "minutes".into(),
            serde_json::to_string(&record.attributes)?.into(),
            quantity.into(),
            left.into(),
            0_i64.into(),
            at.into(),
            now.into(),
        ]);
    }
    insert_rows(
        &tx,
        "usage_records",
        "account_id, idempotency_key, product_code, subproduct_code, usage_type, unit, attributes, quantity, overage, \
         overage_cost, occurred_at, received_at",
        records,
        "",
    )
    .await?;
    let values: Vec<Value> = keys.iter().map(|k| Value::from(k.clone())).collect();
    let sql = format!(
        "SELECT idempotency_key, id FROM usage_records WHERE idempotency_key IN {}",
        marks(backend, 0, keys.len())
    );
    let record_ids: HashMap<String, i64> = tx
        .query_all(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .iter()
        .map(|row| Ok((row.try_get_by_index::<String>(0)?, row.try_get_by_index::<i64>(1)?)))
        .collect::<Result<_>>()?;
    let rows = deductions
        .into_iter()
        .map(|(key, mut row)| {
            row.insert(1, record_ids.get(&key).copied().unwrap_or_default().into());
            row
        })
        .collect();
    insert_rows(
        &tx,
        "deductions",
        "account_id, usage_record_id, pack_id, item_position, usage_type, cycle_index, amount, before, after, deducted_at",
        rows,
        "",
    )
    .await?;

    // Guarded capacity updates, one statement per 400 items.
    let changed: Vec<&Item> =
        groups.values().flatten().filter(|i| (i.remaining, i.cycle_index, i.used) != i.seen).collect();
    for chunk in changed.chunks(400) {
        let mut values = Vec::new();
        let mut tuples = Vec::new();
        for item in chunk {
            tuples.push(marks(backend, values.len(), 8));
            values.extend([
                Value::from(item.pack_id.clone()),
                0_i64.into(),
                item.seen.0.into(),
                item.seen.1.into(),
                item.seen.2.into(),
                item.remaining.into(),
                item.cycle_index.into(),
                item.used.into(),
            ]);
        }
        let sql = format!(
            "UPDATE pack_items SET remaining = v.column6, cycle_index = v.column7, used = v.column8 \
             FROM (VALUES {}) AS v WHERE pack_items.pack_id = v.column1 AND pack_items.position = v.column2 \
             AND pack_items.remaining = v.column3 AND pack_items.cycle_index = v.column4 AND pack_items.used = v.column5",
            tuples.join(", ")
        );
        let result = tx.execute(Statement::from_sql_and_values(backend, sql, values)).await?;
        ensure!(result.rows_affected() == chunk.len() as u64, "baseline: capacity changed under the batch");
    }
    let rows = daily
        .into_iter()
        .map(|((account, pack), (amount, count))| {
            vec![account.into(), pack.into(), "".into(), "2026-06-01".into(), amount.into(), count.into()]
        })
        .collect();
    insert_rows(
        &tx,
        "usage_daily",
        "account_id, pack_id, usage_type, day, amount, records",
        rows,
        "ON CONFLICT (account_id, pack_id, usage_type, day) DO UPDATE SET amount = usage_daily.amount + excluded.amount, \
         records = usage_daily.records + excluded.records",
    )
    .await?;
    let rows = settlements
        .into_iter()
        .map(|(key, overage)| {
            let cost = Decimal::new(75, 4) * from_fixed(overage, QUANTITY_SCALE);
            let cost = to_fixed(cost.round_dp(8), 8).unwrap_or_default();
            vec![
                0_i64.into(),
                "2026-06".into(),
                key.clone().into(),
                "overage".into(),
                "Daily settlement".into(),
                "postPay".into(),
                "p_mps".into(),
                "sp".into(),
                "-".into(),
                "-".into(),
                "".into(),
                cost.into(),
                0_i64.into(),
                now.into(),
                now.into(),
                now.into(),
                key.into(),
                now.into(),
            ]
        })
        .collect();
    insert_rows(
        &tx,
        "bill_lines",
        "account_id, bill_month, resource_id, resource_name, action_type, pay_mode, business_code, product_code, region, \
         zone, config_desc, total_cost, cash_pay_amount, fee_begin_at, fee_end_at, pay_time, settlement_key, created_at",
        rows,
        "ON CONFLICT (settlement_key) DO UPDATE SET total_cost = bill_lines.total_cost + excluded.total_cost",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
