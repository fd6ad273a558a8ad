//! The deduction benchmark's data: accounts, packs of every payment mode, and usage records,
//! generated deterministically and bulk-loaded with plain SQL (setup is not what is measured).

use std::collections::BTreeMap;

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use respack_domain::chrono::{DateTime, Duration, Utc};
use respack_domain::chrono_tz::Tz;
use respack_domain::money::{to_fixed, QUANTITY_SCALE};
use respack_domain::rust_decimal::Decimal;
use respack_domain::{Anchor, TimeUnit};
use respack_store::UsageInput;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, Value};

/// The subproducts usage goes to: (product, subproduct, unit).
pub const SUBPRODUCTS: [(&str, &str, &str); 3] = [
    ("p_mps", "sp_mps_general_transcoding", "minutes"),
    ("p_mps", "sp_mps_tsc_transcoding", "minutes"),
    ("p_adp", "sp_adp_deepseek_v3_tokens", "tokens"),
];

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub accounts: usize,
    pub packs: usize,
    pub records: usize,
}

/// Where time starts: packs are effective a day before, records fall in the hour after.
pub fn base_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

/// `?` for SQLite, `$n` for PostgreSQL: placeholders for `count` values after `start` of them.
pub fn marks(backend: DatabaseBackend, start: usize, count: usize) -> String {
    let marks: Vec<String> = (start..start + count)
        .map(|n| if backend == DatabaseBackend::Postgres { format!("${}", n + 1) } else { "?".to_owned() })
        .collect();
    format!("({})", marks.join(", "))
}

/// A multi-row INSERT of `rows` (each the same width) into `table (columns)`.
pub async fn insert_rows(
    db: &impl ConnectionTrait,
    table: &str,
    columns: &str,
    rows: Vec<Vec<Value>>,
    suffix: &str,
) -> Result<()> {
    let backend = db.get_database_backend();
    for chunk in rows.chunks(400) {
        let mut values = Vec::new();
        let mut tuples = Vec::new();
        for row in chunk {
            tuples.push(marks(backend, values.len(), row.len()));
            values.extend(row.iter().cloned());
        }
        let sql = format!("INSERT INTO {table} ({columns}) VALUES {} {suffix}", tuples.join(", "));
        db.execute(Statement::from_sql_and_values(backend, sql, values)).await?;
    }
    Ok(())
}

fn units(value: Decimal) -> i64 {
    to_fixed(value, QUANTITY_SCALE).unwrap_or(i64::MAX)
}

/// Creates the accounts and packs; returns the account IDs.
pub async fn load(db: &DatabaseConnection, shape: Shape) -> Result<Vec<i64>> {
    let base = base_time();
    let now = base.timestamp_millis();
    let accounts: Vec<Vec<Value>> = (0..shape.accounts)
        .map(|n| {
            vec![
                format!("{}", 300_000_000_000_u64 + n as u64).into(),
                format!("bench-{n}").into(),
                "customer".into(),
                0_i64.into(),
                false.into(),
                "UTC".into(),
                "en".into(),
                "[]".into(),
                "[20,10]".into(),
                0_i64.into(),
                now.into(),
            ]
        })
        .collect();
    insert_rows(
        db,
        "accounts",
        "uin, name, kind, balance, allow_arrears, time_zone, language, alert_recipients, alert_thresholds, version, created_at",
        accounts,
        "",
    )
    .await?;
    let backend = db.get_database_backend();
    let ids: Vec<i64> = db
        .query_all(Statement::from_string(backend, "SELECT id FROM accounts WHERE name LIKE 'bench-%' ORDER BY id"))
        .await?
        .iter()
        .map(|row| row.try_get::<i64>("", "id"))
        .collect::<Result<_, _>>()?;

    let effective = base - Duration::days(1);
    let anchor = Anchor::new(effective, Tz::UTC);
    let mut packs = Vec::with_capacity(shape.packs);
    let mut items = Vec::with_capacity(shape.packs);
    for n in 0..shape.packs {
        let account = ids[n % ids.len()];
        let (product, subproduct, unit) = SUBPRODUCTS[(n / ids.len()) % SUBPRODUCTS.len()];
        // Every payment mode: (mode, cycle, term unit, term count, capacity per cycle or term)
        // TSC has no unlimited packs, so its usage can overflow into pay-as-you-go.
        let mode = if subproduct == "sp_mps_tsc_transcoding" && n % 4 == 3 { 0 } else { n % 4 };
        let (mode, cycle, term_unit, count, capacity): (&str, Option<&str>, TimeUnit, u32, Option<i64>) = match mode {
            0 => ("total_decrement", None, TimeUnit::Month, 12, Some(100)),
            1 => ("period_decrement", Some("day"), TimeUnit::Day, 400, Some(60)),
            2 => ("shard_decrement", Some("hour"), TimeUnit::Month, 12, Some(40)),
            _ => ("unlimited", None, TimeUnit::Month, 12, None),
        };
        let expires = anchor.boundary(term_unit, i64::from(count)).timestamp_millis();
        let id = format!("rp-bench{n:010}");
        packs.push(vec![
            id.clone().into(),
            account.into(),
            format!("bench pack {n}").into(),
            product.into(),
            subproduct.into(),
            "ap-guangzhou".into(),
            "ap-guangzhou-3".into(),
            "valid".into(),
            false.into(),
            mode.into(),
            cycle.map(str::to_owned).into(),
            term_unit.as_str().into(),
            (count as i32).into(),
            "UTC".into(),
            effective.timestamp_millis().into(),
            expires.into(),
            (effective.timestamp_millis() - n as i64).into(),
            "NOTIFY_AND_MANUAL_RENEW".into(),
            0_i64.into(),
            0_i64.into(),
            "{}".into(),
            0_i64.into(),
            now.into(),
        ]);
        let capacity = capacity.map(|c| units(Decimal::from(c)));
        items.push(vec![
            account.into(),
            id.into(),
            0_i32.into(),
            "capacity".into(),
            unit.into(),
            capacity.into(),
            capacity.unwrap_or(0).into(),
            0_i64.into(),
            0_i64.into(),
        ]);
    }
    insert_rows(
        db,
        "packs",
        "id, account_id, name, product_code, subproduct_code, region, zone, lifecycle, frozen, payment_mode, \
         cycle_unit, term_unit, term_count, time_zone, effective_at, expires_at, purchased_at, renewal_method, \
         unit_price, price_paid, scope, version, updated_at",
        packs,
        "",
    )
    .await?;
    insert_rows(
        db,
        "pack_items",
        "account_id, pack_id, position, name, unit, capacity, remaining, cycle_index, used",
        items,
        "",
    )
    .await?;
    if backend == DatabaseBackend::Postgres {
        // A database in service has statistics (autovacuum gathers them); one loaded a moment
        // ago has none, and PostgreSQL's guesses without them plan the packs' lookups as scans.
        db.execute_unprepared("ANALYZE").await?;
    }
    Ok(ids)
}

/// The usage records of client `client` of `clients`: its own accounts (a metering shard),
/// random subproducts and quantities, times within the first hour.
pub fn records(shape: Shape, ids: &[i64], client: usize, clients: usize) -> Vec<(i64, UsageInput)> {
    let mut rng = StdRng::seed_from_u64(7 + client as u64);
    let mine: Vec<i64> = ids.iter().copied().skip(client).step_by(clients).collect();
    let base = base_time();
    (client..shape.records)
        .step_by(clients)
        .map(|n| {
            let (product, subproduct, _) = SUBPRODUCTS[rng.gen_range(0..SUBPRODUCTS.len())];
            let account = mine[rng.gen_range(0..mine.len())];
            let input = UsageInput {
                idempotency_key: format!("r{n}"),
                product: product.into(),
                subproduct: subproduct.into(),
                usage_type: None,
                unit: None,
                attributes: BTreeMap::from([("region".to_owned(), "ap-guangzhou".to_owned())]),
                quantity: Decimal::new(rng.gen_range(50..2000), 2),
                occurred_at: base + Duration::milliseconds((n % 3_600_000) as i64),
            };
            (account, input)
        })
        .collect()
}
