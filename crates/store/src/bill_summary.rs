//! The monthly bill summary behind `DescribeBillResourceSummary`: bill lines grouped by
//! account, month, resource and ActionType into `bill_summaries`, numbered densely per account
//! and month (`position`), so an unfiltered page at any offset is an index range. A month is
//! grouped twice: by pay time (`bill_month` of the lines) and by use (`used_month`, the month
//! their fee period begins in), the API's two `PeriodType`s.
//!
//! A month is built by [`Store::build_bill_summary`] in two steps: a short transaction sets the
//! month's marker to `building` (so readers can tell a first build is under way), then one
//! transaction replaces the month's rows and marks it `ready`. Readers keep seeing the previous
//! summary until that commits. A builder that died leaves `building` behind; after
//! [`ABANDONED_AFTER`] another builder takes over. Building twice gives the same rows.

use chrono::{DateTime, Duration, Utc};
use respack_domain::{BillActionType, Money, PayMode};
use sea_orm::{ConnectionTrait, DatabaseBackend, QueryResult, Statement, Value};

use crate::convert::{instant, millis, money, parse_stored};
use crate::error::{StoreError, StoreResult};
use crate::{retrying, Store};

/// A `building` marker older than this belongs to a builder that died; the next build takes
/// over.
pub const ABANDONED_AFTER: Duration = Duration::minutes(15);

/// Most rows one summary page may hold (the API's `Limit` maximum).
pub const MAX_SUMMARY_PAGE: u64 = 1000;

/// Where a month's summary stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryState {
    /// No build has been started for this month.
    NotBuilt,
    /// A first build is under way (or died and will be taken over); nothing to show yet.
    Building,
    /// Built at `built_at`; `rebuilding` when a newer build is under way (the rows of the
    /// last build are shown until it commits).
    Ready { built_at: DateTime<Utc>, rebuilding: bool },
}

/// What one call of [`Store::build_bill_summary`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryBuild {
    pub month: String,
    /// `false` when another builder was already at work on the month (nothing was done).
    pub built: bool,
    /// Summary rows and bill lines of the month by pay time (the rows by use are built too).
    pub summaries: u64,
    pub lines: u64,
}

/// How bill lines are assigned to months (the API's `PeriodType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeriodType {
    /// By the month of the pay time (deduction time), the default.
    #[default]
    ByPayTime,
    /// By the month the fee period begins in (when the resource was used).
    ByUsedTime,
}

impl PeriodType {
    pub const ALL: [PeriodType; 2] = [PeriodType::ByPayTime, PeriodType::ByUsedTime];

    pub fn as_str(self) -> &'static str {
        match self {
            PeriodType::ByPayTime => "byPayTime",
            PeriodType::ByUsedTime => "byUsedTime",
        }
    }

    pub fn parse(text: &str) -> Option<PeriodType> {
        PeriodType::ALL.into_iter().find(|period| period.as_str() == text)
    }

    /// The bill lines' month column this period type groups by.
    fn month_column(self) -> &'static str {
        match self {
            PeriodType::ByPayTime => "bill_month",
            PeriodType::ByUsedTime => "used_month",
        }
    }
}

/// One row of the summary: the bill lines of one resource and ActionType in one month.
#[derive(Debug, Clone, PartialEq)]
pub struct BillSummaryRow {
    pub account_id: i64,
    pub owner_uin: String,
    pub bill_month: String,
    pub position: i64,
    pub resource_id: String,
    pub resource_name: String,
    pub action_type: BillActionType,
    pub pay_mode: PayMode,
    pub business_code: String,
    pub product_code: String,
    pub region: String,
    pub zone: String,
    pub config_desc: String,
    /// The order, when every line of the row came from one order.
    pub order_id: Option<String>,
    pub total_cost: Money,
    pub cash_pay_amount: Money,
    pub fee_begin_at: DateTime<Utc>,
    pub fee_end_at: DateTime<Utc>,
    pub pay_time: DateTime<Utc>,
    pub operator: Option<String>,
    pub line_count: i64,
    /// The resource's cost allocation tags (as they are now), sorted by key.
    pub tags: Vec<(String, String)>,
}

/// The query of `DescribeBillResourceSummary`: one account's month, filters, a page.
#[derive(Debug, Clone, Default)]
pub struct BillSummaryFilter {
    pub account_id: i64,
    /// `yyyy-mm`.
    pub month: String,
    /// Whether `month` is the month of the pay time or of use.
    pub period_type: PeriodType,
    pub action_type: Option<BillActionType>,
    pub resource_id: Option<String>,
    pub pay_mode: Option<PayMode>,
    /// Product code.
    pub business_code: Option<String>,
    /// With `tag_value`: only resources carrying this tag. Alone: only resources with no value
    /// set under this key (the seed's TagKey/TagValue; months from 2021-01).
    pub tag_key: Option<String>,
    pub tag_value: Option<String>,
    pub offset: u64,
    pub limit: u64,
    /// Count every matching row too (costs a scan when filters are set).
    pub with_total: bool,
}

/// The sums of one account's summary of a month, as last built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BillSummaryTotals {
    /// Rows of the summary (one per resource and ActionType).
    pub rows: u64,
    pub total_cost: Money,
    pub cash_pay_amount: Money,
}

/// A page of the summary; `total` only when asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct BillSummaryPage {
    pub rows: Vec<BillSummaryRow>,
    pub total: Option<u64>,
}

/// `?` placeholders for SQLite, `$n` for PostgreSQL (the SQL here has no `?` elsewhere).
fn statement(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DatabaseBackend::Postgres => {
            let mut numbered = String::with_capacity(sql.len() + 16);
            let mut n = 0;
            for ch in sql.chars() {
                if ch == '?' {
                    n += 1;
                    numbered.push_str(&format!("${n}"));
                } else {
                    numbered.push(ch);
                }
            }
            numbered
        }
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Checks `yyyy-mm` (month 01–12, year 1970–9999).
pub fn check_month(month: &str) -> StoreResult<()> {
    let bytes = month.as_bytes();
    let well_formed = bytes.len() == 7
        && bytes[4] == b'-'
        && bytes.iter().enumerate().all(|(i, b)| i == 4 || b.is_ascii_digit())
        && month[..4].parse::<u32>().is_ok_and(|year| (1970..=9999).contains(&year))
        && month[5..].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m));
    if well_formed {
        Ok(())
    } else {
        Err(StoreError::invalid(format!("{month:?} is not a month; write it as yyyy-mm, e.g. 2026-11")))
    }
}

/// The statement that groups one month's bill lines into summary rows for `period`.
/// The first month tags filter (seed: "This parameter can be used for querying bills after
/// January 2021").
const FIRST_TAGGED_MONTH: &str = "2021-01";

fn check_filter(filter: &BillSummaryFilter) -> StoreResult<()> {
    check_month(&filter.month)?;
    if filter.tag_key.is_some() && filter.month.as_str() < FIRST_TAGGED_MONTH {
        return Err(StoreError::invalid(format!(
            "tags filter bills from {FIRST_TAGGED_MONTH} on, not {}; leave TagKey out for earlier months",
            filter.month
        )));
    }
    Ok(())
}

/// The WHERE conditions (on `bill_summaries s`) and their values of a summary query: its
/// account, period type and month first (in that order), then each filter that is set.
fn summary_conditions(filter: &BillSummaryFilter) -> (Vec<String>, Vec<Value>) {
    let mut conditions =
        vec!["s.account_id = ?".to_owned(), "s.period_type = ?".to_owned(), "s.bill_month = ?".to_owned()];
    let mut values: Vec<Value> =
        vec![filter.account_id.into(), filter.period_type.as_str().into(), filter.month.clone().into()];
    if let Some(action) = filter.action_type {
        conditions.push("s.action_type = ?".into());
        values.push(action.as_str().into());
    }
    if let Some(resource) = &filter.resource_id {
        conditions.push("s.resource_id = ?".into());
        values.push(resource.clone().into());
    }
    if let Some(mode) = filter.pay_mode {
        conditions.push("s.pay_mode = ?".into());
        values.push(mode.as_str().into());
    }
    if let Some(code) = &filter.business_code {
        conditions.push("s.business_code = ?".into());
        values.push(code.clone().into());
    }
    if let Some(key) = &filter.tag_key {
        // A key and value: the resources tagged so. A key alone: those with no value set under
        // that key (seed: "If it is left empty, there are no records with tag values set under
        // this tag key") — cost allocation's unallocated part of the key.
        let tagged = "EXISTS (SELECT 1 FROM pack_tags t WHERE t.account_id = s.account_id \
                      AND t.pack_id = s.resource_id AND t.key = ?";
        values.push(key.clone().into());
        match &filter.tag_value {
            Some(value) => {
                conditions.push(format!("{tagged} AND t.value = ?)"));
                values.push(value.clone().into());
            }
            None => conditions.push(format!("NOT {tagged} AND t.value <> '')")),
        }
    }
    (conditions, values)
}

fn build_sql(period: PeriodType) -> String {
    let (period, month) = (period.as_str(), period.month_column());
    format!(
        "INSERT INTO bill_summaries (account_id, period_type, bill_month, position, resource_id, resource_name, \
         action_type, pay_mode, business_code, product_code, region, zone, config_desc, order_id, total_cost, \
         cash_pay_amount, fee_begin_at, fee_end_at, pay_time, operate_user_id, line_count) \
         SELECT account_id, '{period}', month, \
         ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY resource_id, action_type) - 1, \
         resource_id, resource_name, action_type, pay_mode, business_code, product_code, region, zone, config_desc, \
         order_id, total_cost, cash_pay_amount, fee_begin_at, fee_end_at, pay_time, operate_user_id, line_count \
         FROM (SELECT account_id, {month} AS month, resource_id, action_type, MAX(resource_name) AS resource_name, \
         MAX(pay_mode) AS pay_mode, MAX(business_code) AS business_code, MAX(product_code) AS product_code, \
         MAX(region) AS region, MAX(zone) AS zone, MAX(config_desc) AS config_desc, \
         CASE WHEN COUNT(DISTINCT order_id) = 1 THEN MAX(order_id) ELSE NULL END AS order_id, \
         SUM(total_cost) AS total_cost, SUM(cash_pay_amount) AS cash_pay_amount, MIN(fee_begin_at) AS fee_begin_at, \
         MAX(fee_end_at) AS fee_end_at, MAX(pay_time) AS pay_time, MAX(operate_user_id) AS operate_user_id, \
         COUNT(*) AS line_count \
         FROM bill_lines WHERE {month} = ? GROUP BY account_id, {month}, resource_id, action_type) grouped"
    )
}

const COLUMNS: &str = "s.account_id, a.uin, s.bill_month, s.position, s.resource_id, s.resource_name, \
s.action_type, s.pay_mode, s.business_code, s.product_code, s.region, s.zone, s.config_desc, s.order_id, \
s.total_cost, s.cash_pay_amount, s.fee_begin_at, s.fee_end_at, s.pay_time, s.operate_user_id, s.line_count";

async fn count(conn: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> StoreResult<u64> {
    let row = conn.query_one(statement(conn.get_database_backend(), sql, values)).await?;
    let n: i64 = match row {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

fn to_row(row: &QueryResult) -> StoreResult<BillSummaryRow> {
    Ok(BillSummaryRow {
        account_id: row.try_get_by_index(0)?,
        owner_uin: row.try_get_by_index(1)?,
        bill_month: row.try_get_by_index(2)?,
        position: row.try_get_by_index(3)?,
        resource_id: row.try_get_by_index(4)?,
        resource_name: row.try_get_by_index(5)?,
        action_type: parse_stored(&row.try_get_by_index::<String>(6)?, "action type", BillActionType::parse)?,
        pay_mode: parse_stored(&row.try_get_by_index::<String>(7)?, "pay mode", PayMode::parse)?,
        business_code: row.try_get_by_index(8)?,
        product_code: row.try_get_by_index(9)?,
        region: row.try_get_by_index(10)?,
        zone: row.try_get_by_index(11)?,
        config_desc: row.try_get_by_index(12)?,
        order_id: row.try_get_by_index(13)?,
        total_cost: money(row.try_get_by_index(14)?),
        cash_pay_amount: money(row.try_get_by_index(15)?),
        fee_begin_at: instant(row.try_get_by_index(16)?)?,
        fee_end_at: instant(row.try_get_by_index(17)?)?,
        pay_time: instant(row.try_get_by_index(18)?)?,
        operator: row.try_get_by_index(19)?,
        line_count: row.try_get_by_index(20)?,
        tags: Vec::new(),
    })
}

impl Store {
    /// Builds (or rebuilds) the summary of `month` (`yyyy-mm`) for every account from its bill
    /// lines. Safe to run again and concurrently: a second builder finds the month `building`
    /// and returns with `built: false`. Schedule it for the current month every few minutes
    /// and once more after a month ends; `DescribeBillResourceSummary` also starts it for a
    /// month that was never built.
    pub async fn build_bill_summary(&self, month: &str, now: DateTime<Utc>) -> StoreResult<SummaryBuild> {
        check_month(month)?;
        let Some(version) = retrying(|| self.claim_summary_build(month, now)).await? else {
            return Ok(SummaryBuild { month: month.to_owned(), built: false, summaries: 0, lines: 0 });
        };
        match self.write_summary(month, version, now).await {
            Ok(build) => Ok(build),
            Err(error) => {
                // Let the next builder start at once instead of waiting for the marker to age.
                let release = async {
                    let tx = self.write().await?;
                    let backend = tx.get_database_backend();
                    tx.execute(statement(
                        backend,
                        "UPDATE bill_summary_builds SET status = 'idle' WHERE bill_month = ? AND version = ?",
                        vec![month.into(), version.into()],
                    ))
                    .await?;
                    tx.commit().await
                };
                if let Err(release_error) = release.await {
                    tracing::warn!(%release_error, month, "cannot release the bill summary marker");
                }
                Err(error)
            }
        }
    }

    /// Marks `month` as being built; `None` when a live builder already holds it.
    async fn claim_summary_build(&self, month: &str, now: DateTime<Utc>) -> StoreResult<Option<i64>> {
        let tx = self.write().await?;
        let backend = tx.get_database_backend();
        let marker = tx
            .query_one(statement(
                backend,
                "SELECT status, started_at, version FROM bill_summary_builds WHERE bill_month = ?",
                vec![month.into()],
            ))
            .await?;
        let version = match marker {
            None => {
                let inserted = tx
                    .execute(statement(
                        backend,
                        "INSERT INTO bill_summary_builds (bill_month, status, started_at, ready_at, summaries, lines, version) \
                         VALUES (?, 'building', ?, NULL, 0, 0, 1)",
                        vec![month.into(), millis(now).into()],
                    ))
                    .await;
                match inserted {
                    Ok(_) => 1,
                    Err(error) if matches!(error.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
                        return Err(StoreError::conflict("the bill summary marker"));
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Some(row) => {
                let status: String = row.try_get_by_index(0)?;
                let started_at: i64 = row.try_get_by_index(1)?;
                let version: i64 = row.try_get_by_index(2)?;
                if status == "building" && started_at > millis(now - ABANDONED_AFTER) {
                    return Ok(None);
                }
                let updated = tx
                    .execute(statement(
                        backend,
                        "UPDATE bill_summary_builds SET status = 'building', started_at = ?, version = version + 1 \
                         WHERE bill_month = ? AND version = ?",
                        vec![millis(now).into(), month.into(), version.into()],
                    ))
                    .await?;
                if updated.rows_affected() != 1 {
                    return Err(StoreError::conflict("the bill summary marker"));
                }
                version + 1
            }
        };
        tx.commit().await?;
        Ok(Some(version))
    }

    /// Replaces the month's rows and marks it ready, in one transaction.
    async fn write_summary(&self, month: &str, version: i64, now: DateTime<Utc>) -> StoreResult<SummaryBuild> {
        let tx = self.write().await?;
        let backend = tx.get_database_backend();
        tx.execute(statement(backend, "DELETE FROM bill_summaries WHERE bill_month = ?", vec![month.into()])).await?;
        for period in PeriodType::ALL {
            tx.execute(statement(backend, &build_sql(period), vec![month.into()])).await?;
        }
        let lines = count(&*tx, "SELECT COUNT(*) FROM bill_lines WHERE bill_month = ?", vec![month.into()]).await?;
        let summaries = count(
            &*tx,
            "SELECT COUNT(*) FROM bill_summaries WHERE period_type = 'byPayTime' AND bill_month = ?",
            vec![month.into()],
        )
        .await?;
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let updated = tx
            .execute(statement(
                backend,
                "UPDATE bill_summary_builds SET status = 'ready', ready_at = ?, summaries = ?, lines = ?, \
                 version = version + 1 WHERE bill_month = ? AND version = ?",
                vec![millis(now).into(), to_i64(summaries).into(), to_i64(lines).into(), month.into(), version.into()],
            ))
            .await?;
        if updated.rows_affected() != 1 {
            // Another builder took the month over (ours looked abandoned); its result stands.
            return Err(StoreError::conflict("the bill summary of this month (another builder took over)"));
        }
        tx.commit().await?;
        tracing::info!(month, summaries, lines, "bill summary built");
        Ok(SummaryBuild { month: month.to_owned(), built: true, summaries, lines })
    }

    /// Where the summary of `month` stands.
    pub async fn bill_summary_state(&self, month: &str) -> StoreResult<SummaryState> {
        check_month(month)?;
        let conn = self.read();
        let row = conn
            .query_one(statement(
                conn.get_database_backend(),
                "SELECT status, ready_at FROM bill_summary_builds WHERE bill_month = ?",
                vec![month.into()],
            ))
            .await?;
        let Some(row) = row else {
            return Ok(SummaryState::NotBuilt);
        };
        let status: String = row.try_get_by_index(0)?;
        let ready_at: Option<i64> = row.try_get_by_index(1)?;
        Ok(match (ready_at, status.as_str()) {
            (Some(at), status) => SummaryState::Ready { built_at: instant(at)?, rebuilding: status == "building" },
            (None, "building") => SummaryState::Building,
            (None, _) => SummaryState::NotBuilt,
        })
    }

    /// A page of one account's summary of a month as last built (empty when never built:
    /// check [`Store::bill_summary_state`] first).
    pub async fn bill_summaries(&self, filter: &BillSummaryFilter) -> StoreResult<BillSummaryPage> {
        check_filter(filter)?;
        let conn = self.read();
        let backend = conn.get_database_backend();
        let limit = filter.limit.clamp(1, MAX_SUMMARY_PAGE);
        let offset = i64::try_from(filter.offset).map_err(|_| StoreError::invalid("the offset is too large"))?;
        let (conditions, mut values) = summary_conditions(filter);
        let key = values[..3].to_vec();
        let filtered = conditions.len() > 3;
        let total = match (filter.with_total, filtered) {
            (false, _) => None,
            // Positions are dense from 0, so the count is the highest position + 1.
            (true, false) => Some(
                count(
                    conn,
                    "SELECT COALESCE(MAX(position) + 1, 0) FROM bill_summaries \
                     WHERE account_id = ? AND period_type = ? AND bill_month = ?",
                    key,
                )
                .await?,
            ),
            (true, true) => Some(
                count(
                    conn,
                    &format!("SELECT COUNT(*) FROM bill_summaries s WHERE {}", conditions.join(" AND ")),
                    values.clone(),
                )
                .await?,
            ),
        };
        let limit = i64::try_from(limit).unwrap_or(1000);
        let sql = if filtered {
            values.push(limit.into());
            values.push(offset.into());
            format!(
                "SELECT {COLUMNS} FROM bill_summaries s JOIN accounts a ON a.id = s.account_id WHERE {} \
                 ORDER BY s.position LIMIT ? OFFSET ?",
                conditions.join(" AND ")
            )
        } else {
            // Deep pages stay an index range: no rows are skipped one by one.
            values.push(offset.into());
            values.push(limit.into());
            format!(
                "SELECT {COLUMNS} FROM bill_summaries s JOIN accounts a ON a.id = s.account_id WHERE {} \
                 AND s.position >= ? ORDER BY s.position LIMIT ?",
                conditions.join(" AND ")
            )
        };
        let found = conn.query_all(statement(backend, &sql, values)).await?;
        let mut rows = found.iter().map(to_row).collect::<StoreResult<Vec<_>>>()?;
        self.attach_tags(filter.account_id, &mut rows).await?;
        Ok(BillSummaryPage { rows, total })
    }

    /// The sums of the rows of one account's summary that `filter` selects (its month, period
    /// type and filters; not its page) as last built: the figures of every page of
    /// [`Store::bill_summaries`] added up (zero when never built).
    pub async fn bill_summary_totals(&self, filter: &BillSummaryFilter) -> StoreResult<BillSummaryTotals> {
        check_filter(filter)?;
        let conn = self.read();
        let (conditions, values) = summary_conditions(filter);
        // SUM of a BIGINT is NUMERIC on PostgreSQL: cast back so both backends answer an integer.
        let row = conn
            .query_one(statement(
                conn.get_database_backend(),
                &format!(
                    "SELECT COUNT(*), CAST(COALESCE(SUM(s.total_cost), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(s.cash_pay_amount), 0) AS BIGINT) FROM bill_summaries s WHERE {}",
                    conditions.join(" AND ")
                ),
                values,
            ))
            .await?;
        let Some(row) = row else {
            return Ok(BillSummaryTotals::default());
        };
        let rows: i64 = row.try_get_by_index(0)?;
        Ok(BillSummaryTotals {
            rows: u64::try_from(rows).unwrap_or(0),
            total_cost: money(row.try_get_by_index(1)?),
            cash_pay_amount: money(row.try_get_by_index(2)?),
        })
    }

    /// The summary of `month` for a reader who cannot wait for the daemon: a month that was
    /// never built is built now (what `DescribeBillResourceSummary` starts in the background),
    /// then its state is returned. `Building` means another builder's first build of the month
    /// is under way: ask again shortly.
    pub async fn readable_bill_summary(&self, month: &str, now: DateTime<Utc>) -> StoreResult<SummaryState> {
        match self.bill_summary_state(month).await? {
            SummaryState::NotBuilt => {
                self.build_bill_summary(month, now).await?;
                self.bill_summary_state(month).await
            }
            state => Ok(state),
        }
    }

    async fn attach_tags(&self, account_id: i64, rows: &mut [BillSummaryRow]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<&str> = rows.iter().map(|row| row.resource_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let conn = self.read();
        let marks = vec!["?"; ids.len()].join(", ");
        let mut values: Vec<Value> = vec![account_id.into()];
        values.extend(ids.iter().map(|id| Value::from(*id)));
        let sql = format!(
            "SELECT pack_id, key, value FROM pack_tags WHERE account_id = ? AND pack_id IN ({marks}) ORDER BY pack_id, key"
        );
        let tags = conn.query_all(statement(conn.get_database_backend(), &sql, values)).await?;
        let mut by_pack: std::collections::HashMap<String, Vec<(String, String)>> = std::collections::HashMap::new();
        for tag in tags {
            let pack: String = tag.try_get_by_index(0)?;
            by_pack.entry(pack).or_default().push((tag.try_get_by_index(1)?, tag.try_get_by_index(2)?));
        }
        for row in rows {
            if let Some(tags) = by_pack.get(&row.resource_id) {
                row.tags.clone_from(tags);
            }
        }
        Ok(())
    }
}
