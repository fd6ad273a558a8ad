//! Overage settlement: what no pack covered is billed pay-as-you-go onto one "Daily
//! settlement" bill line per account, subproduct and day (the usage writer adds to it), and
//! paid from the balance once that day has ended in the account's time zone.
//!
//! A line is outstanding while its cash paid is below its total (`ix_bill_lines_unsettled`
//! holds exactly those, so an idle pass is one index probe). Settlement pays each outstanding
//! line, oldest day first, with [`settle_owed`]: all of it on an account that allows arrears,
//! else what the balance covers; the rest stays owed, and a later pass collects it once the
//! balance is topped up. Usage that arrives late for a settled day raises the line's total,
//! which makes it outstanding again for the difference. Every payment is a debit of the
//! balance, a ledger row and a raise of the line's cash paid, in one transaction per batch,
//! each guarded on what was read: a rerun, a crash or a second daemon never pays twice.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use respack_domain::rules::settle_owed;
use respack_domain::Money;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use crate::accounts::{debit_many, hold_balances, ledger_row, write_ledger_rows, BalanceDebit};
use crate::convert::{instant, millis, money, money_units};
use crate::db::placeholder_row;
use crate::error::{StoreError, StoreResult};
use crate::{retrying, Store};

/// The ledger kind of an overage payment.
pub const SETTLEMENT_LEDGER_KIND: &str = "overage_settlement";

/// What one settlement pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettlementReport {
    /// Bill lines paid from, in full or in part.
    pub lines: u64,
    /// Taken from balances.
    pub charged: Money,
    /// Lines a balance could not pay in full; they stay owed.
    pub short: u64,
}

impl std::ops::AddAssign for SettlementReport {
    fn add_assign(&mut self, other: SettlementReport) {
        self.lines += other.lines;
        self.charged = self.charged + other.charged;
        self.short += other.short;
    }
}

/// An outstanding settlement line, as read (and on PostgreSQL locked) by a batch.
struct OwedLine {
    id: i64,
    account_id: i64,
    allow_arrears: bool,
    resource_name: String,
    total: Money,
    paid: Money,
    day_start: DateTime<Utc>,
}

/// The outstanding lines of days ended by `now` whose account can pay something (arrears
/// allowed or a positive balance), oldest day first. PostgreSQL skips lines another daemon
/// holds.
async fn claim_owed(conn: &impl ConnectionTrait, now: DateTime<Utc>, limit: u64) -> StoreResult<Vec<OwedLine>> {
    let backend = conn.get_database_backend();
    let (marks, lock) = match backend {
        DatabaseBackend::Postgres => (["$1", "$2"], " FOR UPDATE OF b SKIP LOCKED"),
        _ => (["?", "?"], ""),
    };
    let sql = format!(
        "SELECT b.id, b.account_id, a.allow_arrears, b.resource_name, b.total_cost, b.cash_pay_amount, b.fee_begin_at \
         FROM bill_lines b JOIN accounts a ON a.id = b.account_id \
         WHERE b.settlement_key IS NOT NULL AND b.cash_pay_amount < b.total_cost AND b.fee_end_at <= {} \
         AND (a.allow_arrears OR a.balance > 0) \
         ORDER BY b.fee_end_at, b.id LIMIT {}{lock}",
        marks[0], marks[1]
    );
    let values: Vec<sea_orm::Value> = vec![millis(now).into(), i64::try_from(limit).unwrap_or(i64::MAX).into()];
    conn.query_all(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .iter()
        .map(|row| {
            Ok(OwedLine {
                id: row.try_get_by_index(0)?,
                account_id: row.try_get_by_index(1)?,
                allow_arrears: row.try_get_by_index(2)?,
                resource_name: row.try_get_by_index(3)?,
                total: money(row.try_get_by_index(4)?),
                paid: money(row.try_get_by_index(5)?),
                day_start: instant(row.try_get_by_index(6)?)?,
            })
        })
        .collect()
}

/// Raises each line's cash paid by what was paid, guarded on the cash paid that was read.
async fn add_payments(conn: &impl ConnectionTrait, payments: &[(&OwedLine, Money)]) -> StoreResult<()> {
    let backend = conn.get_database_backend();
    for chunk in payments.chunks(500) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 3);
        let mut rows = Vec::with_capacity(chunk.len());
        for (line, pay) in chunk {
            let start = values.len();
            values.push(line.id.into());
            values.push(money_units(line.paid)?.into());
            values.push(money_units(*pay)?.into());
            rows.push(placeholder_row(backend, start, 3));
        }
        let sql = format!(
            "UPDATE{} bill_lines SET cash_pay_amount = bill_lines.cash_pay_amount + v.column3 \
             FROM (VALUES {}) AS v WHERE bill_lines.id = v.column1 AND bill_lines.cash_pay_amount = v.column2",
            crate::db::or_fail(backend),
            rows.join(", ")
        );
        let updated = conn.execute(Statement::from_sql_and_values(backend, sql, values)).await?;
        if updated.rows_affected() != chunk.len() as u64 {
            return Err(StoreError::conflict("a settlement line paid meanwhile"));
        }
    }
    Ok(())
}

impl Store {
    /// Pays the outstanding overage of every day ended by `now`, in transactions of up to
    /// `batch_size` lines, until nothing more can be paid. Safe to run again at once, after a
    /// crash, and from several processes at the same time.
    pub async fn settle_overage(&self, now: DateTime<Utc>, batch_size: u64) -> StoreResult<SettlementReport> {
        let batch_size = batch_size.clamp(1, 5000);
        let mut total = SettlementReport::default();
        loop {
            let (report, claimed) = retrying(|| self.settle_batch(now, batch_size)).await?;
            total += report;
            if claimed < batch_size {
                return Ok(total);
            }
        }
    }

    /// One transaction of [`Store::settle_overage`]; also returns how many lines it claimed.
    /// Every claimed line is paid in full or leaves its account's balance at zero, so the next
    /// batch claims other lines and the passes end.
    async fn settle_batch(&self, now: DateTime<Utc>, limit: u64) -> StoreResult<(SettlementReport, u64)> {
        let tx = self.write().await?;
        let owed = claim_owed(&*tx, now, limit).await?;
        let claimed = owed.len() as u64;
        if owed.is_empty() {
            return Ok((SettlementReport::default(), 0));
        }
        let ids: BTreeSet<i64> = owed.iter().map(|line| line.account_id).collect();
        let held = hold_balances(&*tx, &ids).await?;
        let mut balances: HashMap<i64, Money> = held.iter().map(|(id, seen)| (*id, seen.balance)).collect();

        let mut report = SettlementReport::default();
        let mut payments = Vec::with_capacity(owed.len());
        let mut ledger = Vec::with_capacity(owed.len());
        for line in &owed {
            let Some(balance) = balances.get_mut(&line.account_id) else {
                return Err(StoreError::Corrupt(format!(
                    "bill line {} belongs to account {}, which does not exist",
                    line.id, line.account_id
                )));
            };
            let outstanding = line.total - line.paid;
            let pay = settle_owed(*balance, outstanding, line.allow_arrears);
            if pay < outstanding {
                report.short += 1;
            }
            if pay == Money::ZERO {
                continue;
            }
            *balance = *balance - pay;
            report.lines += 1;
            report.charged = report.charged + pay;
            ledger.push(ledger_row(
                crate::accounts::LedgerRow {
                    account_id: line.account_id,
                    amount: -pay,
                    balance_after: *balance,
                    kind: SETTLEMENT_LEDGER_KIND,
                    order_id: None,
                    pack_id: None,
                    note: format!(
                        "Daily settlement: {} ({})",
                        line.resource_name,
                        line.day_start.format("%Y-%m-%d %H:%M UTC")
                    ),
                },
                now,
            )?);
            payments.push((line, pay));
        }
        let debits: Vec<BalanceDebit> = held
            .iter()
            .filter_map(|(id, seen)| {
                let total = seen.balance - balances[id];
                (total != Money::ZERO).then_some(BalanceDebit { account_id: *id, seen: *seen, total })
            })
            .collect();
        debit_many(&*tx, &debits).await?;
        write_ledger_rows(&*tx, ledger).await?;
        add_payments(&*tx, &payments).await?;
        tx.commit().await?;
        Ok((report, claimed))
    }

    /// What an account owes for overage of days that have ended by `now` and that its balance
    /// has not paid yet (the API's `OweAmount` adds it to a negative balance).
    pub async fn owed_overage(&self, account_id: i64, now: DateTime<Utc>) -> StoreResult<Money> {
        let backend = self.read().get_database_backend();
        let marks = match backend {
            DatabaseBackend::Postgres => ["$1", "$2"],
            _ => ["?", "?"],
        };
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(total_cost - cash_pay_amount), 0) AS BIGINT) FROM bill_lines \
             WHERE settlement_key IS NOT NULL AND cash_pay_amount < total_cost AND fee_end_at <= {} \
             AND account_id = {}",
            marks[0], marks[1]
        );
        let row = self
            .read()
            .query_one(Statement::from_sql_and_values(backend, sql, [millis(now).into(), account_id.into()]))
            .await?
            .ok_or_else(|| StoreError::Corrupt("a SUM returned no row".into()))?;
        Ok(money(row.try_get_by_index(0)?))
    }
}
