//! `cargo xtask bench sweep`: respackd's pack sweep on SQLite and PostgreSQL. Builds N packs
//! (default 1,000,000) with set-based SQL, 10 % of them due at the sweep instant — 4 % move to a
//! new monthly period, 3 % expire (manual renewal), 3 % auto-renew (and move to their second
//! period) — and measures:
//! - an idle sweep (nothing due) at N packs,
//! - respack's sweep of the due packs as respackd runs it (`Store::sweep_packs_while`, batches of
//!   respackd's default size for the database — 750 on SQLite, 1,000 on PostgreSQL — in one
//!   stream on SQLite, in three lanes side by side on PostgreSQL),
//! - hand-written set-based SQL doing the same writes on the same data in the same run, for the
//!   ratio: in one committed transaction on a second database built the same way (durable
//!   writes cost what they cost: respack's sweep commits too), and, for comparison, in a
//!   transaction rolled back on respack's database before respack runs,
//! - the process's peak RSS.
//!
//! The last line is JSON: `{"bench":"sweep","packs":…,"sqlite_due_s":…,"postgres_due_s":…,
//! "idle_sweep_ms":…,"raw_sql_ratio":…,"peak_rss_mb":…}`.

use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use respack_domain::chrono::{DateTime, Utc};
use respack_store::{SealingKey, Store};
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Statement, TransactionTrait};

use crate::pg_cluster::{Durability, PgCluster, PgInstall};

const ACCOUNTS: usize = 10_000;
/// Packs written per INSERT statement while building.
const BUILD_CHUNK: usize = 100_000;
/// Money and quantity scales of the schema (10⁻⁸ and 10⁻⁶).
const MONEY: i64 = 100_000_000;
const QUANTITY: i64 = 1_000_000;

fn ms(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc).timestamp_millis()).unwrap_or_default()
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

/// The sweep instant; the idle sweep runs an hour before it, when nothing is due.
const DUE_AT: &str = "2026-06-01T00:00:01Z";
const IDLE_AT: &str = "2026-05-31T23:00:00Z";

/// What to measure: `--packs N` (default 1,000,000), `--batch N` (packs per sweep transaction,
/// respackd's default for each database, `Store::default_sweep_batch`, unless given) and
/// `--backend sqlite|postgres` (one of them only; both by default).
struct Options {
    packs: usize,
    batch: Option<u64>,
    sqlite: bool,
    postgres: bool,
}

const USAGE: &str = "usage: cargo xtask bench sweep [--packs N] [--batch N] [--backend sqlite|postgres]";

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options { packs: 1_000_000, batch: None, sqlite: true, postgres: true };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value; {USAGE}"))?;
        if flag == "--backend" {
            (options.sqlite, options.postgres) = match value.as_str() {
                "sqlite" => (true, false),
                "postgres" => (false, true),
                other => bail!("unknown backend {other}: sqlite or postgres"),
            };
            continue;
        }
        let number: u64 = value.replace('_', "").parse().with_context(|| format!("{flag} needs a whole number"))?;
        match flag.as_str() {
            "--packs" => options.packs = usize::try_from(number)?,
            "--batch" => options.batch = Some(number),
            other => bail!("unknown flag {other}; {USAGE}"),
        }
    }
    ensure!(options.packs >= 1000, "--packs must be at least 1000");
    ensure!(
        options.batch.is_none_or(|batch| (1..=5000).contains(&batch)),
        "--batch must be 1 to 5000 (respackd's batch_size range)"
    );
    Ok(options)
}

pub fn run(args: &[String]) -> Result<()> {
    let Options { packs, batch, sqlite, postgres } = parse(args)?;
    // The store runs here as in respackd, allocator settings included.
    respack_allocator::return_freed_memory_promptly();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        println!(
            "bench sweep: {packs} packs over {ACCOUNTS} accounts, 10% due (4% cycle rolls, 3% expiries, 3% auto-renewals), \
             {} packs per sweep transaction",
            batch.map_or_else(|| "respackd's default number of".to_owned(), |batch| batch.to_string())
        );
        let sqlite = if sqlite { Some(measure_sqlite(packs, batch).await?) } else { None };
        let postgres = if postgres { Some(measure_postgres(packs, batch).await?) } else { None };
        let measured: Vec<&Measured> = sqlite.iter().chain(&postgres).collect();
        let ratio_line = |backend: &str, m: &Option<Measured>| {
            m.as_ref().map(|m| {
                format!(
                    "{backend} {:.2} (to plain SQL rolled back {:.2}), idle sweep {:.2} ms",
                    m.due_s / m.raw_s,
                    m.due_s / m.raw_rolled_back_s,
                    m.idle_ms
                )
            })
        };
        let lines: Vec<String> =
            [ratio_line("sqlite", &sqlite), ratio_line("postgres", &postgres)].into_iter().flatten().collect();
        println!("ratios respack/plain SQL committed: {}", lines.join("; "));
        let max = |value: fn(&Measured) -> f64| measured.iter().map(|m| value(m)).fold(0.0, f64::max);
        println!(
            "{}",
            serde_json::json!({
                "bench": "sweep",
                "packs": packs,
                "sqlite_due_s": sqlite.as_ref().map(|m| round(m.due_s)),
                "postgres_due_s": postgres.as_ref().map(|m| round(m.due_s)),
                "idle_sweep_ms": round(max(|m| m.idle_ms)),
                "raw_sql_ratio": round(max(|m| m.due_s / m.raw_s)),
                "peak_rss_mb": round(max(|m| m.sweep_rss_mb)),
            })
        );
        Ok(())
    })
}

async fn measure_sqlite(packs: usize, batch: Option<u64>) -> Result<Measured> {
    let dir = std::env::temp_dir().join(format!("respack-bench-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("sweep.db").display());
    let raw_url = format!("sqlite://{}?mode=rwc", dir.join("sweep-raw.db").display());
    let measured = measure("sqlite", &url, &raw_url, packs, batch).await;
    let _ = std::fs::remove_dir_all(&dir);
    measured
}

async fn measure_postgres(packs: usize, batch: Option<u64>) -> Result<Measured> {
    let install = PgInstall::find().context("PostgreSQL server binaries are needed (apt-get install postgresql)")?;
    let cluster = PgCluster::start(&install, Durability::Durable)?;
    let admin = Database::connect(cluster.url()).await?;
    admin.execute_unprepared("CREATE DATABASE bench_sweep").await?;
    admin.execute_unprepared("CREATE DATABASE bench_sweep_raw").await?;
    let server = cluster.url().rsplit_once('/').map(|(server, _)| server.to_owned()).unwrap_or_default();
    let measured =
        measure("postgres", &format!("{server}/bench_sweep"), &format!("{server}/bench_sweep_raw"), packs, batch)
            .await?;
    admin.close().await?;
    drop(cluster);
    Ok(measured)
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Starts this process's peak RSS (VmHWM) afresh at its current RSS, so the peak read after a
/// sweep is the sweep's (building a million packs in-process peaks higher, and a daemon never
/// does that).
fn reset_peak_rss() -> Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("cannot reset the peak RSS (/proc/self/clear_refs)")
}

/// VmHWM of this process, in MiB: since the last [`reset_peak_rss`], the sweep's peak.
fn peak_rss_mb() -> f64 {
    rss_mb("VmHWM:")
}

/// A memory figure of this process from /proc/self/status (`VmRSS:` now, `VmHWM:` peak), in MiB.
fn rss_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(field).and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Measured {
    due_s: f64,
    /// The plain-SQL baseline, committed (what the ratio uses).
    raw_s: f64,
    /// The plain-SQL baseline rolled back, as earlier versions of this bench measured it.
    raw_rolled_back_s: f64,
    idle_ms: f64,
    /// Peak RSS while sweeping the due packs.
    sweep_rss_mb: f64,
}

/// The plain-SQL baseline on its own database at `raw_url`, built like respack's and
/// committed, as a sweep has to: its durable writes are part of the work.
async fn measure_plain_sql(backend: &str, raw_url: &str, packs: usize) -> Result<f64> {
    // Connecting a store applies the migrations: the same schema and indexes as respack's.
    Store::connect(raw_url, SealingKey::from_bytes([9; 32])).await?.close().await?;
    let db = Database::connect(raw_url).await?;
    let started = Instant::now();
    build(&db, packs, backend).await?;
    println!("{backend}: built {packs} packs for the plain-SQL baseline in {:.1}s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    plain_sql(&db, Finish::Commit).await?;
    let raw_s = started.elapsed().as_secs_f64();
    println!("{backend}: plain set-based SQL, same writes, committed: {raw_s:.2}s");
    db.close().await?;
    Ok(raw_s)
}

async fn measure(backend: &str, url: &str, raw_url: &str, packs: usize, batch: Option<u64>) -> Result<Measured> {
    let raw_s = measure_plain_sql(backend, raw_url, packs).await?;
    if let Some(path) = raw_url.strip_prefix("sqlite://").and_then(|rest| rest.split('?').next()) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
    let store = Store::connect(url, SealingKey::from_bytes([9; 32])).await?;
    let batch = batch.unwrap_or_else(|| store.default_sweep_batch());
    let db = Database::connect(url).await?;
    let started = Instant::now();
    build(&db, packs, backend).await?;
    println!("{backend}: built {packs} packs in {:.1}s", started.elapsed().as_secs_f64());

    // Idle: nothing due. The first call warms caches; the median of the rest is reported.
    let mut idle = Vec::new();
    for _ in 0..11 {
        let started = Instant::now();
        let report = store.sweep_packs(instant(IDLE_AT), batch).await?;
        ensure!(report.packs == 0, "the idle sweep found {} due packs", report.packs);
        store.scan_capacity_alerts(instant(IDLE_AT), 0).await?;
        store.settle_overage(instant(IDLE_AT), batch).await?;
        store.claim_outbox(instant(IDLE_AT), 20, respack_domain::chrono::Duration::minutes(5)).await?;
        idle.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    idle.remove(0);
    idle.sort_by(f64::total_cmp);
    let idle_ms = idle[idle.len() / 2];
    println!(
        "{backend}: idle sweep (pack sweep + capacity scan + overage settlement + outbox claim) {idle_ms:.2} ms \
         (median of 10)"
    );

    let started = Instant::now();
    plain_sql(&db, Finish::Rollback).await?;
    let raw_rolled_back_s = started.elapsed().as_secs_f64();
    println!("{backend}: plain set-based SQL, same writes, rolled back: {raw_rolled_back_s:.2}s");
    // Its dead rows and WAL gone, respack sweeps a database in the state the committed baseline
    // started from.
    settle(&db).await?;

    // The connection that built the packs is the bench's, not the daemon's: its page cache is
    // not part of the sweep's memory.
    db.close().await?;
    reset_peak_rss()?;
    println!("{backend}: RSS before sweeping {:.1} MB", rss_mb("VmRSS:"));
    let started = Instant::now();
    let how = if store.is_sqlite() {
        format!("one stream of {batch}-pack batches")
    } else {
        format!("{} lanes, {batch} packs per transaction", store.sweep_lanes())
    };
    let label = backend.to_owned();
    let printed = std::sync::atomic::AtomicU64::new(0);
    // respackd's pass: batches of `batch` packs until nothing is due.
    let total = store
        .sweep_packs_while(instant(DUE_AT), batch, move |total| {
            let tens = total.packs / 10_000;
            if printed.fetch_max(tens, std::sync::atomic::Ordering::Relaxed) < tens {
                println!("{label}: respack swept {} packs ({:.1}s)", total.packs, started.elapsed().as_secs_f64());
            }
            true
        })
        .await?;
    let due_s = started.elapsed().as_secs_f64();
    let sweep_rss_mb = peak_rss_mb();
    println!(
        "{backend}: respack sweep {due_s:.2}s ({how}): {} packs, {} cycle rolls, {} expired, {} renewed, {} mails; \
         peak RSS while sweeping {sweep_rss_mb:.1} MB",
        total.packs, total.cycles_rolled, total.expired, total.renewed, total.mails
    );
    let tenth = |percent: usize| (packs / 100 * percent) as u64;
    // The renewed packs move to their second period too.
    ensure!(total.cycles_rolled == tenth(7), "expected {} cycle rolls, got {}", tenth(7), total.cycles_rolled);
    ensure!(total.expired == tenth(3), "expected {} expiries, got {}", tenth(3), total.expired);
    ensure!(total.renewed == tenth(3), "expected {} renewals, got {}", tenth(3), total.renewed);
    ensure!(store.due_pack_count(instant(DUE_AT)).await? == 0, "packs left due after the sweep");
    store.close().await?;
    Ok(Measured { due_s, raw_s, raw_rolled_back_s, idle_ms, sweep_rss_mb })
}

/// The numbers `0..count` offset by `start` as a row source `n(i)`.
fn numbers(backend: DatabaseBackend, start: usize, count: usize) -> (String, String) {
    let last = start + count - 1;
    match backend {
        DatabaseBackend::Postgres => (String::new(), format!("generate_series({start}, {last}) AS n(i)")),
        _ => (
            format!("WITH RECURSIVE n(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) "),
            "n".to_owned(),
        ),
    }
}

fn pack_id_sql(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => "'rp-' || lpad(to_hex(i), 16, '0')",
        _ => "'rp-' || printf('%016x', i)",
    }
}

async fn build(db: &DatabaseConnection, packs: usize, backend_name: &str) -> Result<()> {
    let backend = db.get_database_backend();
    let (with, from) = numbers(backend, 1, ACCOUNTS);
    db.execute_unprepared(&format!(
        "{with}INSERT INTO accounts (id, uin, name, kind, parent_account_id, balance, allow_arrears, time_zone, language, \
         alert_recipients, alert_thresholds, version, created_at) \
         SELECT i, CAST(100000000000 + i AS TEXT), 'Bench account', 'customer', NULL, {balance}, false, 'UTC', 'en', \
         '[\"ops@example.com\"]', '[20,10]', 0, {created} FROM {from}",
        balance = 1_000_000 * MONEY,
        created = ms("2026-01-01T00:00:00Z"),
    ))
    .await?;
    if backend == DatabaseBackend::Postgres {
        db.execute_unprepared("SELECT setval('accounts_id_seq', (SELECT max(id) FROM accounts))").await?;
    }
    // Category by i % 100: 0-3 roll (12 months from Jan 1, in May), 4-6 expire (1 month from
    // May 1, manual), 7-9 auto-renew (1 month from May 1), 10-99 not due (12 months from Jan 15).
    let category = "CASE WHEN i % 100 < 4 THEN 0 WHEN i % 100 < 7 THEN 1 WHEN i % 100 < 10 THEN 2 ELSE 3 END";
    let pick = |values: [String; 4]| {
        format!(
            "CASE {category} WHEN 0 THEN {} WHEN 1 THEN {} WHEN 2 THEN {} ELSE {} END",
            values[0], values[1], values[2], values[3]
        )
    };
    let effective = pick([
        ms("2026-01-01T00:00:00Z").to_string(),
        ms("2026-05-01T00:00:00Z").to_string(),
        ms("2026-05-01T00:00:00Z").to_string(),
        ms("2026-01-15T00:00:00Z").to_string(),
    ]);
    let expires = pick([
        ms("2027-01-01T00:00:00Z").to_string(),
        ms("2026-06-01T00:00:00Z").to_string(),
        ms("2026-06-01T00:00:00Z").to_string(),
        ms("2027-01-15T00:00:00Z").to_string(),
    ]);
    let next_sweep = pick([
        ms("2026-06-01T00:00:00Z").to_string(),
        ms("2026-06-01T00:00:00Z").to_string(),
        ms("2026-06-01T00:00:00Z").to_string(),
        ms("2026-06-15T00:00:00Z").to_string(),
    ]);
    let count = pick(["12".into(), "1".into(), "1".into(), "12".into()]);
    let renewal = pick([
        "'NOTIFY_AND_MANUAL_RENEW'".into(),
        "'NOTIFY_AND_MANUAL_RENEW'".into(),
        "'NOTIFY_AND_AUTO_RENEW'".into(),
        "'NOTIFY_AND_MANUAL_RENEW'".into(),
    ]);
    let auto_period = pick(["NULL".into(), "NULL".into(), "1".into(), "NULL".into()]);
    let remaining = pick([
        (40 * QUANTITY).to_string(),
        (100 * QUANTITY).to_string(),
        (100 * QUANTITY).to_string(),
        (100 * QUANTITY).to_string(),
    ]);
    let cycle = pick(["4".into(), "0".into(), "0".into(), "4".into()]);
    let id = pack_id_sql(backend);
    let mut start = 0;
    while start < packs {
        let chunk = BUILD_CHUNK.min(packs - start);
        let (with, from) = numbers(backend, start, chunk);
        db.execute_unprepared(&format!(
            "{with}INSERT INTO packs (id, account_id, name, product_code, subproduct_code, region, zone, lifecycle, frozen, \
             payment_mode, cycle_unit, term_unit, term_count, time_zone, effective_at, expires_at, package_expired_at, \
             purchased_at, renewal_method, auto_renew_period, unit_price, price_paid, scope, version, updated_at, next_sweep_at) \
             SELECT {id}, i % {ACCOUNTS} + 1, 'Bench pack', 'p_mps', 'sp_mps_general_transcoding', 'ap-guangzhou', '', \
             'valid', false, 'period_decrement', 'month', 'month', {count}, 'UTC', {effective}, {expires}, NULL, \
             {effective}, {renewal}, {auto_period}, CAST({price} AS BIGINT), CAST({price} AS BIGINT) * ({count}), '{{}}', 0, {effective}, {next_sweep} FROM {from}",
            price = 10 * MONEY,
        ))
        .await?;
        db.execute_unprepared(&format!(
            "{with}INSERT INTO pack_items (account_id, pack_id, position, name, unit, usage_type, capacity, remaining, \
             cycle_index, used) \
             SELECT i % {ACCOUNTS} + 1, {id}, 0, 'General transcoding', 'minutes', NULL, {capacity}, {remaining}, {cycle}, 0 \
             FROM {from}",
            capacity = 100 * QUANTITY,
        ))
        .await?;
        start += chunk;
        println!("{backend_name}: {start} packs written");
    }
    settle(db).await
}

/// Brings a database to the state both sides are measured from: statistics current, on
/// PostgreSQL vacuumed (no dead rows, hint bits set: else the first side to read a freshly
/// written row pays to mark it), and what was written in the database file, not in the WAL (a
/// PostgreSQL checkpoint of the build's WAL had landed in either side's time: the same sweep
/// took 7.0 to 9.4 s).
async fn settle(db: &DatabaseConnection) -> Result<()> {
    let statements: &[&str] = match db.get_database_backend() {
        DatabaseBackend::Postgres => &["VACUUM ANALYZE", "CHECKPOINT"],
        _ => &["ANALYZE", "PRAGMA wal_checkpoint(TRUNCATE)"],
    };
    for statement in statements {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}

/// How the baseline's transaction ends.
#[derive(Clone, Copy)]
enum Finish {
    /// Durably, as a sweep must (on a database of its own).
    Commit,
    /// Rolled back, so respack then finds the same data in the same database.
    Rollback,
}

// What respack writes for the bench's packs, as the baseline writes it too: audit details, the
// order's receipt, the ledger note and the mails (as `crates/store/src/notices.rs` renders
// them in English), with the bench's fixed instants and amounts. `@name@`, `@id@` and
// `@order@` stand for the pack's name and ID and the baseline's order ID.
const ROLL_DETAIL: &str = r#"{"cycle_end":"2026-07-01T00:00:00Z","cycle_start":"2026-06-01T00:00:00Z","from_cycle":4,"missed_cycles":0,"periods":[7,12],"to_cycle":5}"#;
const RENEWAL_ROLL_DETAIL: &str = r#"{"cycle_end":"2026-07-01T00:00:00Z","cycle_start":"2026-06-01T00:00:00Z","from_cycle":0,"missed_cycles":0,"periods":[1,2],"to_cycle":1}"#;
const RENEWAL_DETAIL: &str = r#"{"expires_at":"2026-07-01T00:00:00Z","expires_at_before":"2026-06-01T00:00:00Z","order_id":"@order@","periods":1,"price":"10"}"#;
const EXPIRE_DETAIL: &str = r#"{"expires_at":"2026-06-01T00:00:00Z"}"#;
const ORDER_RECEIPT: &str = r#"{"receipt":{"balance_after":"999990","expires_at":"2026-07-01T00:00:00Z","order_id":"@order@","pack_id":"@id@","periods":1,"price":"10"},"request":{"auto_renewal":"@id@","expires_at":"2026-06-01T00:00:00Z"}}"#;
const EXPIRED_SUBJECT: &str = "Resource pack @name@ (@id@) has expired";
const EXPIRED_LINES: [&str; 2] = [
    "Your resource pack @name@ (@id@) expired at 2026-06-01 00:00 UTC.",
    "Unused capacity is forfeited. Buy a new pack to continue.",
];
const RECEIPT_SUBJECT: &str = "Receipt: resource pack @name@ (@id@) renewed";
const RECEIPT_LINES: [&str; 3] = [
    "Your resource pack @name@ (@id@) was renewed automatically for 1 month.",
    "Order @order@: 10.00 was charged to the account balance; the balance is now 999990.00.",
    "The pack is now valid until 2026-07-01 00:00 UTC.",
];
const MAIL_FOOTER: &str = "This email was sent by respack. Change who receives it in the console's alert settings.";

/// A mail's plain text as respack renders it: its paragraphs, then the footer.
fn mail_text(lines: &[&str]) -> String {
    format!("{}\n\n-- \n{MAIL_FOOTER}\n", lines.join("\n\n"))
}

/// A mail's HTML as respack renders it.
fn mail_html(subject: &str, lines: &[&str]) -> String {
    let paragraphs: String = lines.iter().map(|line| format!("<p>{line}</p>\n")).collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{subject}</title></head>\n<body>\n\
         {paragraphs}<hr>\n<p style=\"color:#666;font-size:smaller\">{}</p>\n</body></html>\n",
        MAIL_FOOTER.replace('\'', "&#39;")
    )
}

/// `template` as a SQL expression of the pack row it is selected with: a quoted literal with
/// the placeholders concatenated in.
fn concatenated(template: &str) -> String {
    let literal = template
        .replace('\'', "''")
        .replace("@name@", "' || name || '")
        .replace("@id@", "' || id || '")
        .replace("@order@", "bench' || id || '");
    format!("'{literal}'")
}

/// The same writes as respack's sweep of the due packs, as a handful of set-based statements
/// in one transaction.
async fn plain_sql(db: &DatabaseConnection, finish: Finish) -> Result<()> {
    let backend = db.get_database_backend();
    let now = ms(DUE_AT);
    let due = format!("next_sweep_at <= {now}");
    let renew = format!("{due} AND expires_at <= {now} AND renewal_method = 'NOTIFY_AND_AUTO_RENEW'");
    let expire = format!("{due} AND expires_at <= {now} AND renewal_method <> 'NOTIFY_AND_AUTO_RENEW'");
    let roll = format!("{due} AND expires_at > {now} AND lifecycle = 'valid'");
    let statements = [
        // Cycle rolls.
        format!(
            "UPDATE pack_items SET remaining = capacity, cycle_index = 5 WHERE pack_id IN (SELECT id FROM packs WHERE {roll})"
        ),
        format!(
            "INSERT INTO audit_log (account_id, actor, action, target, detail, created_at) \
             SELECT account_id, 'system:respackd', 'pack.roll_cycles', id, {detail}, {now} FROM packs WHERE {roll}",
            detail = concatenated(ROLL_DETAIL)
        ),
        format!("UPDATE packs SET next_sweep_at = {} WHERE {roll}", ms("2026-07-01T00:00:00Z")),
        // Auto-renewals: balance, order, ledger, bill line, receipt, audit, pack.
        format!(
            "UPDATE pack_items SET remaining = capacity, cycle_index = 1 WHERE pack_id IN (SELECT id FROM packs WHERE {renew})"
        ),
        format!(
            "INSERT INTO audit_log (account_id, actor, action, target, detail, created_at) \
             SELECT account_id, 'system:respackd', 'pack.roll_cycles', id, {detail}, {now} FROM packs WHERE {renew}",
            detail = concatenated(RENEWAL_ROLL_DETAIL)
        ),
        format!(
            "UPDATE accounts SET balance = accounts.balance - s.total, version = accounts.version + 1 \
             FROM (SELECT account_id, SUM(unit_price) AS total FROM packs WHERE {renew} GROUP BY account_id) AS s \
             WHERE accounts.id = s.account_id"
        ),
        format!(
            "INSERT INTO orders (id, account_id, kind, client_token, pack_id, amount, periods, receipt, created_at) \
             SELECT 'bench' || id, account_id, 'renewal', NULL, id, unit_price, 1, {receipt}, {now} FROM packs WHERE {renew}",
            receipt = concatenated(ORDER_RECEIPT)
        ),
        format!(
            "INSERT INTO balance_ledger (account_id, amount, balance_after, kind, order_id, pack_id, note, created_at) \
             SELECT p.account_id, -p.unit_price, a.balance, 'renewal', 'bench' || p.id, p.id, \
             'Automatic renewal of ' || p.name || ' for 1 month', {now} \
             FROM packs p JOIN accounts a ON a.id = p.account_id WHERE {renew}"
        ),
        format!(
            "INSERT INTO bill_lines (account_id, bill_month, resource_id, resource_name, order_id, action_type, pay_mode, \
             business_code, product_code, region, zone, config_desc, total_cost, cash_pay_amount, fee_begin_at, fee_end_at, \
             pay_time, operate_user_id, settlement_key, created_at) \
             SELECT account_id, '2026-06', id, name, 'bench' || id, 'Yearly/monthly subscription renewal', 'prePay', \
             product_code, subproduct_code, region, zone, 'Period decrement: 100 minutes per month × 2 month', \
             unit_price, unit_price, expires_at, {july}, \
             {now}, 'system:respackd', NULL, {now} FROM packs WHERE {renew}",
            july = ms("2026-07-01T00:00:00Z")
        ),
        format!(
            "INSERT INTO outbox (account_id, kind, dedupe_key, recipients, subject, body_text, body_html, status, attempts, \
             next_attempt_at, last_error, created_at, sent_at) \
             SELECT account_id, 'renewal_receipt', 'renewal_receipt:bench' || id, '[\"ops@example.com\"]', \
             {subject}, {text}, {html}, 'queued', 0, {now}, NULL, {now}, NULL FROM packs WHERE {renew}",
            subject = concatenated(RECEIPT_SUBJECT),
            text = concatenated(&mail_text(&RECEIPT_LINES)),
            html = concatenated(&mail_html(RECEIPT_SUBJECT, &RECEIPT_LINES))
        ),
        format!(
            "INSERT INTO audit_log (account_id, actor, action, target, detail, created_at) \
             SELECT account_id, 'system:respackd', 'pack.auto_renew', id, {detail}, {now} FROM packs WHERE {renew}",
            detail = concatenated(RENEWAL_DETAIL)
        ),
        format!(
            "UPDATE packs SET term_count = term_count + 1, expires_at = {july}, price_paid = price_paid + unit_price, \
             version = version + 1, updated_at = {now}, next_sweep_at = {june24} WHERE {renew}",
            july = ms("2026-07-01T00:00:00Z"),
            june24 = ms("2026-06-24T00:00:00Z")
        ),
        // Expiries: mail, audit, pack.
        format!(
            "INSERT INTO outbox (account_id, kind, dedupe_key, recipients, subject, body_text, body_html, status, attempts, \
             next_attempt_at, last_error, created_at, sent_at) \
             SELECT account_id, 'expired', 'expired:' || id, '[\"ops@example.com\"]', \
             {subject}, {text}, {html}, 'queued', 0, {now}, NULL, {now}, NULL FROM packs WHERE {expire}",
            subject = concatenated(EXPIRED_SUBJECT),
            text = concatenated(&mail_text(&EXPIRED_LINES)),
            html = concatenated(&mail_html(EXPIRED_SUBJECT, &EXPIRED_LINES))
        ),
        format!(
            "INSERT INTO audit_log (account_id, actor, action, target, detail, created_at) \
             SELECT account_id, 'system:respackd', 'pack.expire', id, {detail}, {now} FROM packs WHERE {expire}",
            detail = concatenated(EXPIRE_DETAIL)
        ),
        format!(
            "UPDATE packs SET lifecycle = 'expired', package_expired_at = expires_at, version = version + 1, \
             updated_at = {now}, next_sweep_at = NULL WHERE {expire}"
        ),
    ];
    let tx = db.begin().await?;
    for sql in statements {
        tx.execute(Statement::from_string(backend, sql)).await.context("plain-SQL baseline statement")?;
    }
    match finish {
        Finish::Commit => tx.commit().await?,
        Finish::Rollback => tx.rollback().await?,
    }
    Ok(())
}
