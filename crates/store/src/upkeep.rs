//! What time does to packs, as respackd's sweep stores it: activate, roll cycles, auto-renew or
//! expire, exhaust, and queue the notices (expiring soon, renewal balance warnings, receipts,
//! renewal failures, expired, exhausted, low capacity).
//!
//! Only due packs are read: `packs.next_sweep_at` holds the next instant anything changes for a
//! pack (NULL once nothing will), so an idle sweep is one index probe. Due packs are handled in
//! batches, one transaction per batch: the batch is read with a few queries (packs, items,
//! accounts, and the balances of the accounts that may pay a renewal, locked), every decision
//! is made in memory with the domain's rules — renewals pack by pack in due order against the
//! balance the earlier ones left — and everything is written with a few multi-row statements
//! per batch, each state change guarded on what was read. On PostgreSQL a batch claims its
//! packs with `FOR UPDATE SKIP LOCKED`, so several daemons split the work and never handle one
//! pack twice. Two batches run side by side (lanes), each over its own half of the accounts,
//! so they never wait for or conflict on each other's balances. SQLite, which writes one
//! transaction at a time, sweeps as one stream instead (`upkeep_stream`): batches are claimed
//! and decided on a reading connection while the ones before them are written, several to a
//! transaction — the guards make a batch decided on data that moved conflict, and the lanes
//! then do what is left, each batch decided inside its transaction. Every notice carries a
//! dedupe key (pack, kind, threshold, cycle or expiry): a rerun, a retry or a second daemon
//! never queues a mail twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use respack_domain::rules::{apply_renewal, charge, quote_auto_renewal};
use respack_domain::upkeep::{crossed_threshold, due_notice_days, next_upkeep_at};
use respack_domain::{BillActionType, Lifecycle, LifecycleEvent, Money, Pack, RenewalMethod, RuleViolation};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};

use crate::accounts::{
    debit_many, hold_balances, load_accounts, write_ledger_rows, Account, BalanceDebit, HeldBalance,
};
use crate::audit::Actor;
use crate::convert::{millis, quantity_units};
use crate::db::{insert_all, or_fail, placeholder, placeholder_row};
use crate::entity::{audit_log, balance_ledger, bill_lines, daemon_cursors, deductions, pack_items, packs};
use crate::error::{StoreError, StoreResult};
use crate::notices::Notice;
use crate::orders::{self, NewOrder, OrderKind};
use crate::outbox::{enqueue, notice_row};
use crate::pack_ops::{pack_charge_rows, transition, PackCharge, RenewalReceipt};
use crate::pack_rows::{
    hydrate, item_row, pack_row, tags_of, to_pack, write_packs, PACK_ITEM_COLUMNS, PACK_ITEM_COLUMN_COUNT, VALUES_CHUNK,
};
use crate::upkeep_stream::StreamEnd;
use crate::{ids, retrying, Store};

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Due packs looked at.
    pub packs: u64,
    pub activated: u64,
    /// Packs moved to a later period or shard (however many cycles they skipped).
    pub cycles_rolled: u64,
    pub renewed: u64,
    pub renewal_failed: u64,
    pub expired: u64,
    pub exhausted: u64,
    /// Emails queued.
    pub mails: u64,
    /// Packs that could not be handled (corrupt data); retried an hour later.
    pub failed: u64,
}

impl std::ops::AddAssign for SweepReport {
    fn add_assign(&mut self, other: SweepReport) {
        self.packs += other.packs;
        self.activated += other.activated;
        self.cycles_rolled += other.cycles_rolled;
        self.renewed += other.renewed;
        self.renewal_failed += other.renewal_failed;
        self.expired += other.expired;
        self.exhausted += other.exhausted;
        self.mails += other.mails;
        self.failed += other.failed;
    }
}

/// Who the daemon's changes are attributed to in the audit log and on bill lines.
fn daemon() -> Actor {
    Actor::system("respackd")
}

/// How long a pack that cannot be handled waits before the next try.
const FAILED_PACK_RETRY: Duration = Duration::hours(1);
/// Cursor of the capacity-alert scan over `deductions`.
const CAPACITY_CURSOR: &str = "capacity_alerts";
/// Deductions one capacity scan transaction reads.
const CAPACITY_SCAN_BATCH: u64 = 5000;

/// Which due packs a claim may take.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Any due pack.
    All,
    /// The due packs of lane `index` of `count`: those whose account ID is `index` modulo
    /// `count`. The lanes of a pass never share an account, so one lane's renewals never wait
    /// for (PostgreSQL's balance lock) or conflict with (SQLite's balance guard) the other's.
    Lane { index: i64, count: i64 },
    /// This one pack, if due (a batch that failed, handled pack by pack).
    Pack(&'a str),
}

/// The `WHERE` condition selecting `scope`'s packs due at `now`, its values appended to
/// `values` (numbered after those already there).
fn due_condition(
    backend: DatabaseBackend,
    now: DateTime<Utc>,
    scope: Scope<'_>,
    values: &mut Vec<sea_orm::Value>,
) -> String {
    values.push(millis(now).into());
    let mut due = format!("next_sweep_at <= {}", placeholder(backend, values.len()));
    match scope {
        Scope::All => {}
        Scope::Lane { index, count } => {
            // A CASE, not `account_id % count = index`: PostgreSQL keeps no statistics on the
            // modulo and guesses that an equality on it matches 0.5 % of the rows, so it planned
            // each lane's claim as a bitmap scan and sort of every due pack (27 ms of a
            // 1,000-pack batch at 100,000 due, growing with the due packs). A boolean it cannot
            // look into it guesses matches half the rows — a lane of two — and so walks
            // `ix_packs_next_sweep` in order and stops at the batch's limit (15 ms, flat).
            // Literals (two integers of ours), so it guesses on the expression itself.
            due.push_str(&format!(" AND CASE WHEN account_id % {count} = {index} THEN true ELSE false END"));
        }
        Scope::Pack(id) => {
            values.push(id.into());
            due.push_str(&format!(" AND id = {}", placeholder(backend, values.len())));
        }
    }
    due
}

/// The due packs of a batch with their items and tags, oldest due first (then by ID), locked
/// for this transaction on PostgreSQL — `FOR UPDATE SKIP LOCKED`, so packs another daemon holds
/// are left to it.
pub(crate) async fn claim_due(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
    scope: Scope<'_>,
) -> StoreResult<Vec<Pack>> {
    let backend = conn.get_database_backend();
    let mut values: Vec<sea_orm::Value> = Vec::new();
    let due = due_condition(backend, now, scope, &mut values);
    values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    let limit = placeholder(backend, values.len());
    let lock = if backend == DatabaseBackend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let claimed = format!("SELECT * FROM packs WHERE {due} ORDER BY next_sweep_at LIMIT {limit}{lock}");
    let (packs, _) = read_claimed(conn, &claimed, values, false).await?;
    Ok(packs)
}

/// Where a pack stands in `ix_packs_next_sweep` on SQLite, whose entries end with the rowid:
/// SQLite's sweep stream claims past the last pack it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SweepKey {
    pub(crate) next_sweep_at: i64,
    pub(crate) rowid: i64,
}

/// The packs `claimed` selects (whole `packs` rows — and, when `keyed`, each one's rowid as
/// `sweep_rowid`) with their items and tags, oldest due first (then by ID), and when `keyed`
/// the [`SweepKey`] of the last of them in index order. The claimed rows are the packs read,
/// not IDs looked up again; packs and items come in one joined query decoded by position,
/// since at hundreds of packs per batch reading them costs more than deciding what to do with
/// them. LEFT JOIN: a pack without items (which the domain never makes) is still swept, never
/// left due for ever taking a place in every batch.
pub(crate) async fn read_claimed(
    conn: &impl ConnectionTrait,
    claimed: &str,
    values: Vec<sea_orm::Value>,
    keyed: bool,
) -> StoreResult<(Vec<Pack>, Option<SweepKey>)> {
    let backend = conn.get_database_backend();
    let key_column = if keyed { ", p.sweep_rowid" } else { "" };
    let sql = format!(
        "WITH p AS ({claimed}) SELECT {PACK_ITEM_COLUMNS}{key_column} FROM p LEFT JOIN pack_items i ON i.pack_id = p.id \
         ORDER BY p.next_sweep_at, p.id, i.position"
    );
    let mut claimed: Vec<(packs::Model, Vec<pack_items::Model>)> = Vec::new();
    let mut last = None;
    for row in conn.query_all(Statement::from_sql_and_values(backend, sql, values)).await? {
        let pack = pack_row(&row)?;
        if keyed {
            let key = SweepKey {
                next_sweep_at: pack.next_sweep_at.unwrap_or_default(),
                rowid: row.try_get_by_index(PACK_ITEM_COLUMN_COUNT)?,
            };
            last = last.max(Some(key));
        }
        let item = match row.try_get_by_index::<Option<i64>>(25)? {
            Some(_) => Some(item_row(&row)?),
            None => None,
        };
        match claimed.last_mut() {
            Some((open, items)) if open.id == pack.id => items.extend(item),
            _ => claimed.push((pack, item.into_iter().collect())),
        }
    }
    let ids: Vec<String> = claimed.iter().map(|(pack, _)| pack.id.clone()).collect();
    let mut tags = tags_of(conn, &ids).await?;
    let packs = claimed
        .into_iter()
        .map(|(pack, items)| {
            let tags = tags.remove(&pack.id).unwrap_or_default();
            to_pack(pack, &items, &tags)
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((packs, last))
}

/// One capacity item moved to a later cycle.
struct ItemRoll {
    position: i32,
    seen_remaining: i64,
    seen_cycle: i64,
    remaining: i64,
    cycle: i64,
}

/// The decisions for one pack, worked out in memory.
struct PackUpkeep {
    after: Pack,
    rolls: Vec<ItemRoll>,
    audits: Vec<(&'static str, serde_json::Value)>,
    notices: Vec<(Notice, String)>,
}

/// The money side of a batch's automatic renewals, decided in memory and written together:
/// each renewal's order, ledger row and bill line, and each account's total.
#[derive(Default)]
struct BatchCharges {
    orders: Vec<crate::entity::orders::ActiveModel>,
    ledger: Vec<balance_ledger::ActiveModel>,
    bill_lines: Vec<bill_lines::ActiveModel>,
    /// Per account: what the batch takes off its balance.
    totals: BTreeMap<i64, Money>,
}

/// Renews `work.after` term after term while the balance (in memory, as this batch has left
/// it) covers the next term; returns the failure notice when it stops for want of money or
/// because the pack is frozen.
fn renew_automatically(
    account: &mut Account,
    work: &mut PackUpkeep,
    charges: &mut BatchCharges,
    now: DateTime<Utc>,
    report: &mut SweepReport,
) -> StoreResult<Option<Notice>> {
    let pack = &mut work.after;
    // After downtime a pack may be several terms behind: renew term after term, each a charge
    // of its own, until it is valid at `now` or the balance runs out.
    while pack.expires_at <= now {
        let quote = match quote_auto_renewal(pack) {
            Ok(quote) => quote,
            Err(RuleViolation::Frozen) => {
                let price = pack.unit_price * pack.auto_renew_period.unwrap_or(1);
                return Ok(Some(Notice::RenewalFailed { balance: account.balance, price, frozen: true }));
            }
            // Not renewable at all (e.g. total decrement): it simply expires.
            Err(_) => return Ok(None),
        };
        // Packs are decided in due order against the balance the earlier ones left, so an
        // account that cannot pay for all its due renewals pays for the earliest it can.
        let Ok(balance_after) = charge(account.balance, quote.price, account.allow_arrears) else {
            return Ok(Some(Notice::RenewalFailed { balance: account.balance, price: quote.price, frozen: false }));
        };
        account.balance = balance_after;
        let total = charges.totals.entry(account.id).or_insert(Money::ZERO);
        *total = *total + quote.price;
        let order_id = ids::order_id(now);
        let old_expires_at = pack.expires_at;
        apply_renewal(pack, &quote);
        transition(pack, LifecycleEvent::Renew)?;
        let pack_id = pack.id.to_string();
        let receipt = RenewalReceipt {
            order_id: order_id.clone(),
            pack_id: pack_id.clone(),
            periods: quote.periods,
            price: quote.price,
            balance_after,
            expires_at: pack.expires_at,
        };
        let request = serde_json::json!({"auto_renewal": pack_id, "expires_at": old_expires_at});
        charges.orders.push(orders::order_row(
            NewOrder {
                id: &order_id,
                account_id: account.id,
                kind: OrderKind::Renewal,
                client_token: None,
                pack_id: Some(&pack_id),
                amount: quote.price,
                periods: Some(quote.periods),
                request: &request,
                receipt: &receipt,
            },
            now,
        )?);
        let charge = PackCharge {
            pack,
            zone_of_account: account.time_zone,
            order_id: &order_id,
            action_type: BillActionType::SubscriptionRenewal,
            ledger_kind: "renewal",
            paid: quote.price,
            balance_after: Some(balance_after),
            fee_begin_at: old_expires_at,
            fee_end_at: pack.expires_at,
            note: format!("Automatic renewal of {} for {} {}", pack.name, quote.periods, quote.unit.as_str()),
        };
        let rows = pack_charge_rows(charge, &daemon(), now)?;
        charges.ledger.extend(rows.ledger);
        charges.bill_lines.push(rows.bill_line);
        work.audits.push((
            "pack.auto_renew",
            serde_json::json!({"order_id": order_id, "periods": quote.periods, "price": quote.price,
                "expires_at_before": old_expires_at, "expires_at": pack.expires_at}),
        ));
        work.notices.push((
            Notice::Renewed {
                order_id: order_id.clone(),
                periods: quote.periods,
                unit: quote.unit,
                price: quote.price,
                balance_after,
            },
            format!("renewal_receipt:{order_id}"),
        ));
        report.renewed += 1;
    }
    Ok(None)
}

/// Works out what time has done to one pack up to `now`, in memory: the pack as it should be
/// stored, its item rolls, audit rows and notices, and (into `charges`) its renewals.
fn upkeep_pack(
    account: &mut Account,
    before: &Pack,
    charges: &mut BatchCharges,
    now: DateTime<Utc>,
    report: &mut SweepReport,
) -> StoreResult<PackUpkeep> {
    let mut work = PackUpkeep { after: before.clone(), rolls: Vec::new(), audits: Vec::new(), notices: Vec::new() };
    let id = before.id.to_string();

    if !work.after.lifecycle.is_final() && work.after.expires_at <= now {
        let failure = if work.after.renewal == RenewalMethod::Auto {
            renew_automatically(account, &mut work, charges, now, report)?
        } else {
            None
        };
        if work.after.expires_at <= now {
            let expires_at = work.after.expires_at;
            transition(&mut work.after, LifecycleEvent::Expire)?;
            work.after.package_expired_at = Some(expires_at);
            work.audits.push(("pack.expire", serde_json::json!({"expires_at": expires_at})));
            report.expired += 1;
            match failure {
                Some(notice) => {
                    report.renewal_failed += 1;
                    work.notices.push((notice, format!("renewal_failed:{id}:{}", millis(expires_at))));
                }
                None => work.notices.push((Notice::Expired, format!("expired:{id}"))),
            }
        }
    }

    // After the renewal decision: a pack whose first term passed while nobody looked may have
    // been renewed into a window that contains `now`.
    if work.after.lifecycle == Lifecycle::Inactive && work.after.effective_at <= now && now < work.after.expires_at {
        transition(&mut work.after, LifecycleEvent::Activate)?;
        work.audits.push(("pack.activate", serde_json::json!({"effective_at": work.after.effective_at})));
        report.activated += 1;
    }

    if work.after.lifecycle == Lifecycle::Valid {
        if let Some(cycle) = work.after.cycle_at(now) {
            let mut from = None;
            for (position, item) in work.after.items.iter_mut().enumerate() {
                let Some(capacity) = item.capacity else { continue };
                if item.cycle_index >= cycle.index {
                    continue;
                }
                from = Some(from.map_or(item.cycle_index, |f: i64| f.min(item.cycle_index)));
                work.rolls.push(ItemRoll {
                    position: i32::try_from(position).unwrap_or(i32::MAX),
                    seen_remaining: quantity_units(item.remaining)?,
                    seen_cycle: item.cycle_index,
                    remaining: quantity_units(capacity)?,
                    cycle: cycle.index,
                });
                item.remaining = capacity;
                item.cycle_index = cycle.index;
            }
            if let Some(from) = from {
                // One audit row for the whole jump: cycles missed while nobody looked are
                // recorded once, never replayed.
                work.audits.push((
                    "pack.roll_cycles",
                    serde_json::json!({"from_cycle": from, "to_cycle": cycle.index,
                        "missed_cycles": (cycle.index - from - 1).max(0),
                        "cycle_start": cycle.start, "cycle_end": cycle.end,
                        "periods": work.after.periods_at(now)}),
                ));
                report.cycles_rolled += 1;
            }
        }
        if work.after.is_exhausted() {
            transition(&mut work.after, LifecycleEvent::Exhaust)?;
            work.after.package_expired_at = Some(now);
            work.audits.push(("pack.exhaust", serde_json::json!({})));
            report.exhausted += 1;
        }
    }

    if work.after.lifecycle == Lifecycle::Exhausted {
        work.notices.push((Notice::Exhausted, format!("exhausted:{id}")));
    }

    if let Some(days) = due_notice_days(&work.after, now) {
        let expires = millis(work.after.expires_at);
        match work.after.renewal {
            RenewalMethod::Auto => {
                let price = work.after.unit_price * work.after.auto_renew_period.unwrap_or(1);
                if !account.allow_arrears && account.balance < price {
                    work.notices.push((
                        Notice::RenewalBalanceLow { days, balance: account.balance, price },
                        format!("renewal_warning:{id}:{days}:{expires}"),
                    ));
                }
            }
            RenewalMethod::Manual | RenewalMethod::NotRenew => {
                work.notices.push((Notice::ExpiringSoon { days }, format!("expiring_soon:{id}:{days}:{expires}")));
            }
        }
    }
    Ok(work)
}

/// Moves items to their current cycle in few statements, each guarded on the values read.
async fn write_rolls(conn: &impl ConnectionTrait, rolls: &[(&Pack, &ItemRoll)]) -> StoreResult<()> {
    let backend = conn.get_database_backend();
    for chunk in rolls.chunks(VALUES_CHUNK) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 7);
        let mut rows = Vec::with_capacity(chunk.len());
        for (pack, roll) in chunk {
            let start = values.len();
            values.push(pack.id.as_str().into());
            values.push(pack.account_id.into());
            values.push(i64::from(roll.position).into());
            values.push(roll.seen_remaining.into());
            values.push(roll.seen_cycle.into());
            values.push(roll.remaining.into());
            values.push(roll.cycle.into());
            rows.push(placeholder_row(backend, start, values.len() - start));
        }
        let sql = format!(
            "UPDATE{} pack_items SET remaining = v.column6, cycle_index = v.column7 FROM (VALUES {}) AS v \
             WHERE pack_items.pack_id = v.column1 AND pack_items.account_id = v.column2 \
             AND pack_items.position = v.column3 AND pack_items.remaining = v.column4 \
             AND pack_items.cycle_index = v.column5",
            or_fail(backend),
            rows.join(", ")
        );
        let updated = conn.execute(Statement::from_sql_and_values(backend, sql, values)).await?;
        if updated.rows_affected() != chunk.len() as u64 {
            return Err(StoreError::conflict("the capacity of a resource pack of this sweep batch"));
        }
    }
    Ok(())
}

fn audit_row(pack: &Pack, action: &str, detail: serde_json::Value, now: DateTime<Utc>) -> audit_log::ActiveModel {
    audit_log::ActiveModel {
        account_id: Set(pack.account_id),
        actor: Set(daemon().as_str().to_owned()),
        action: Set(action.to_owned()),
        target: Set(pack.id.to_string()),
        detail: Set(detail.to_string()),
        created_at: Set(millis(now)),
        ..Default::default()
    }
}

/// A batch decided in memory: each pack's upkeep and next sweep instant, the renewals' money
/// rows and debits, audit rows and mails.
pub(crate) struct PlannedBatch {
    packs: Vec<Pack>,
    /// Parallel to `packs`.
    works: Vec<(PackUpkeep, Option<DateTime<Utc>>)>,
    charges: BatchCharges,
    debits: Vec<BalanceDebit>,
    audits: Vec<audit_log::ActiveModel>,
    mails: Vec<crate::entity::outbox::ActiveModel>,
    report: SweepReport,
}

/// The balances that batches decided but not yet committed leave, by account, each with the
/// sequence number of the batch that leaves it: SQLite's sweep stream decides a batch while
/// the ones before it are written, and a balance read then would not show their debits yet.
/// Empty on every other path.
#[derive(Default)]
pub(crate) struct PendingBalances(HashMap<i64, (u64, HeldBalance)>);

impl PendingBalances {
    /// What `planned` (batch `seq`) will leave of the balances it debits.
    pub(crate) fn add(&mut self, seq: u64, planned: &PlannedBatch) {
        for debit in &planned.debits {
            let balance = HeldBalance { balance: debit.seen.balance - debit.total, version: debit.seen.version + 1 };
            self.0.insert(debit.account_id, (seq, balance));
        }
    }

    /// Forgets what batches up to `seq` leave: they are committed, so a read shows it.
    pub(crate) fn committed(&mut self, seq: u64) {
        self.0.retain(|_, (batch, _)| *batch > seq);
    }

    /// The newer of the balance read and the one an uncommitted batch leaves. A balance read
    /// with a higher version moved after that batch was decided (a top-up): that batch's guard
    /// fails, and so does any decided on top of it.
    fn newest(&self, account_id: i64, read: HeldBalance) -> HeldBalance {
        match self.0.get(&account_id) {
            Some((_, pending)) if pending.version > read.version => *pending,
            _ => read,
        }
    }
}

/// Reads what a batch's decisions need (accounts; the balances of those that may pay a
/// renewal, locked on PostgreSQL) and decides everything in memory, pack by pack in due order
/// (each renewal against the balance the earlier ones left, `pending` included).
pub(crate) async fn plan_batch(
    conn: &impl ConnectionTrait,
    packs: Vec<Pack>,
    now: DateTime<Utc>,
    pending: &PendingBalances,
) -> StoreResult<PlannedBatch> {
    let account_ids: BTreeSet<i64> = packs.iter().map(|pack| pack.account_id).collect();
    let mut accounts: HashMap<i64, Account> =
        load_accounts(conn, &account_ids).await?.into_iter().map(|account| (account.id, account)).collect();
    // The accounts that may pay for a renewal in this batch: their balances are read again
    // (locked on PostgreSQL); the debits below are guarded on the versions read. Those an
    // uncommitted batch debits are read with their versions too, so that the renewal warnings
    // below see the balance that batch leaves.
    let held_ids: BTreeSet<i64> = packs
        .iter()
        .filter(|pack| {
            (pack.renewal == RenewalMethod::Auto && !pack.lifecycle.is_final() && pack.expires_at <= now)
                || pending.0.contains_key(&pack.account_id)
        })
        .map(|pack| pack.account_id)
        .collect();
    let mut held = hold_balances(conn, &held_ids).await?;
    for (id, seen) in held.iter_mut() {
        *seen = pending.newest(*id, *seen);
    }
    for (id, seen) in &held {
        if let Some(account) = accounts.get_mut(id) {
            account.balance = seen.balance;
        }
    }

    let mut report = SweepReport { packs: packs.len() as u64, ..SweepReport::default() };
    let mut charges = BatchCharges::default();
    let mut works = Vec::with_capacity(packs.len());
    let mut audits = Vec::new();
    let mut mails = Vec::new();
    for before in &packs {
        let account = accounts
            .get_mut(&before.account_id)
            .ok_or_else(|| StoreError::Corrupt(format!("pack {} has no account", before.id)))?;
        let work = upkeep_pack(account, before, &mut charges, now, &mut report)?;
        for (action, detail) in &work.audits {
            audits.push(audit_row(before, action, detail.clone(), now));
        }
        for (notice, key) in &work.notices {
            mails.push(notice_row(account, &work.after, notice, key, now));
        }
        let next = next_upkeep_at(&work.after, now);
        works.push((work, next));
    }
    let debits = charges
        .totals
        .iter()
        .map(|(&account_id, &total)| {
            let seen = held.get(&account_id).copied().ok_or_else(|| {
                StoreError::Corrupt(format!("account {account_id} was charged without its balance held"))
            })?;
            Ok(BalanceDebit { account_id, seen, total })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(PlannedBatch { packs, works, charges, debits, audits, mails, report })
}

/// Writes a decided batch with a few multi-row statements, each state change guarded on what
/// the decisions were made from.
pub(crate) async fn write_batch(
    conn: &impl ConnectionTrait,
    planned: PlannedBatch,
    now: DateTime<Utc>,
) -> StoreResult<SweepReport> {
    let PlannedBatch { packs, works, charges, debits, audits, mails, mut report } = planned;
    debit_many(conn, &debits).await?;
    orders::insert_many(conn, charges.orders).await?;
    write_ledger_rows(conn, charges.ledger).await?;
    insert_all(conn, charges.bill_lines, "").await?;
    let swept: Vec<(&Pack, &Pack, Option<DateTime<Utc>>)> =
        packs.iter().zip(&works).map(|(before, (work, next))| (before, &work.after, *next)).collect();
    write_packs(conn, &swept, now).await?;
    let rolls: Vec<(&Pack, &ItemRoll)> =
        works.iter().flat_map(|(work, _)| work.rolls.iter().map(move |roll| (&work.after, roll))).collect();
    write_rolls(conn, &rolls).await?;
    insert_all(conn, audits, "").await?;
    report.mails += enqueue(conn, mails).await?;
    Ok(report)
}

impl Store {
    /// One pass of the pack jobs at `now`: every due pack, in transactions of up to
    /// `batch_size` packs, until none is due. Safe to run again at once (it finds nothing),
    /// after a crash (a batch is all or nothing), and from several processes at the same time.
    pub async fn sweep_packs(&self, now: DateTime<Utc>, batch_size: u64) -> StoreResult<SweepReport> {
        self.sweep_packs_while(now, batch_size, |_| true).await
    }

    /// Packs per sweep batch unless respackd's `batch_size` says otherwise: 750 on
    /// SQLite, 1,000 on PostgreSQL. Measured with `cargo xtask bench sweep` (1,000,000 packs,
    /// 100,000 due, 2 cores, 2026-12-01): on SQLite 750 swept in 7.3 s against 8.3 s for 500
    /// (fewer commits rewrite fewer of the same index pages), peak RSS 85–87 MB against 77
    /// (1,000: 6.8 s but 105 MB, over respackd's 100 MB budget); on PostgreSQL 1,000 swept in
    /// 8.5–9.2 s against 11.2–11.8 s for 500 (2,000: no faster, more memory).
    pub fn default_sweep_batch(&self) -> u64 {
        if self.is_sqlite() {
            750
        } else {
            1000
        }
    }

    /// How many sweep batches run side by side, so one batch's statements run in the database
    /// while another's are read and decided here: three on PostgreSQL, two on SQLite. Each lane
    /// sweeps the packs of its own accounts (see `Scope::Lane`), so the lanes never wait for
    /// each other's balance locks or conflict on each other's packs. On SQLite, which writes one
    /// transaction at a time, the lanes only sweep what the stream (`upkeep_stream`) left, and a
    /// lane reads and decides its batch before it takes the writer.
    ///
    /// PostgreSQL, measured with `cargo xtask bench sweep` (1,000,000 packs, 100,000 due, 2
    /// cores, 2026-12-02, alternately): two lanes 10.55, 9.20, 9.59 s, three 9.73, 7.61, 9.21 s
    /// (peak RSS 60 against 71–74 MB), four 8.91 s once but 85.5 MB.
    pub fn sweep_lanes(&self) -> usize {
        if self.is_sqlite() {
            2
        } else {
            3
        }
    }

    /// [`Store::sweep_packs`] for callers that must stop promptly (respackd on SIGTERM) or show
    /// progress: after each batch `keep_going` gets the pass's running total, and once it says
    /// no, no further batch starts (those in flight finish, and are committed). Batches run in
    /// one stream on SQLite, then in [`Store::sweep_lanes`] lanes; the first error of a lane
    /// stops the pass and is returned.
    pub async fn sweep_packs_while<F>(
        &self,
        now: DateTime<Utc>,
        batch_size: u64,
        keep_going: F,
    ) -> StoreResult<SweepReport>
    where
        F: Fn(&SweepReport) -> bool + Send + Sync + 'static,
    {
        let batch_size = batch_size.clamp(1, 5000);
        // The first batch alone, over all accounts: an idle sweep (nothing due) stays one
        // claim, and the lanes start only when there is more to do than one batch.
        let mut first = self.sweep_pack_batch(now, batch_size, Scope::All).await?;
        if first.packs < batch_size || !keep_going(&first) {
            return Ok(first);
        }
        // SQLite: one stream of batches (see `upkeep_stream`); the lanes below then find what
        // it left, if anything (nothing, unless data moved under it).
        if self.is_sqlite() && self.sweep_stream(now, batch_size, &keep_going, &mut first).await == StreamEnd::Stopped {
            return Ok(first);
        }
        let total = Arc::new(std::sync::Mutex::new(first));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let keep_going = Arc::new(keep_going);
        let count = i64::try_from(self.sweep_lanes()).unwrap_or(1);
        let mut lanes = tokio::task::JoinSet::new();
        for index in 0..count {
            let (store, total, stop, keep_going) = (self.clone(), total.clone(), stop.clone(), keep_going.clone());
            lanes.spawn(async move {
                use std::sync::atomic::Ordering;
                while !stop.load(Ordering::SeqCst) {
                    let report = match store.sweep_pack_batch(now, batch_size, Scope::Lane { index, count }).await {
                        Ok(report) => report,
                        Err(error) => {
                            stop.store(true, Ordering::SeqCst);
                            return Err(error);
                        }
                    };
                    let running = {
                        let mut total = total.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        *total += report;
                        *total
                    };
                    if !keep_going(&running) {
                        stop.store(true, Ordering::SeqCst);
                    }
                    // A short batch: nothing more of this lane's accounts was due when it
                    // claimed. The other lane goes on with its own.
                    if report.packs < batch_size {
                        break;
                    }
                }
                Ok(())
            });
        }
        let mut failure = None;
        while let Some(joined) = lanes.join_next().await {
            let result = joined.map_err(|error| StoreError::Corrupt(format!("a sweep lane stopped: {error}")))?;
            if let Err(error) = result {
                failure.get_or_insert(error);
            }
        }
        if let Some(error) = failure {
            return Err(error);
        }
        let total = *total.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(total)
    }

    /// One transaction of [`Store::sweep_packs_while`]: up to `batch_size` of `scope`'s due
    /// packs (fewer means nothing more is due), or, when the batch fails for good, the same
    /// packs one by one.
    async fn sweep_pack_batch(
        &self,
        now: DateTime<Utc>,
        batch_size: u64,
        scope: Scope<'_>,
    ) -> StoreResult<SweepReport> {
        match self.sweep_batch(now, batch_size, scope).await {
            Err(error) if !error.is_transient() => {
                // One bad pack must not stop the upkeep of all others: handle this batch's
                // packs one by one and set the failing ones aside.
                tracing::warn!(%error, "a sweep batch failed; sweeping its packs one by one");
                self.sweep_one_by_one(now, batch_size, scope).await
            }
            result => result,
        }
    }

    async fn sweep_one_by_one(
        &self,
        now: DateTime<Utc>,
        batch_size: u64,
        scope: Scope<'_>,
    ) -> StoreResult<SweepReport> {
        let backend = self.read().get_database_backend();
        let mut values = Vec::new();
        let due = due_condition(backend, now, scope, &mut values);
        values.push(i64::try_from(batch_size).unwrap_or(i64::MAX).into());
        let sql = format!(
            "SELECT id FROM packs WHERE {due} ORDER BY next_sweep_at LIMIT {}",
            placeholder(backend, values.len())
        );
        let mut ids = Vec::new();
        for row in self.read().query_all(Statement::from_sql_and_values(backend, sql, values)).await? {
            ids.push(row.try_get_by_index::<String>(0)?);
        }
        let mut total = SweepReport::default();
        for id in ids {
            match self.sweep_batch(now, 1, Scope::Pack(&id)).await {
                Ok(report) => total += report,
                Err(error) => {
                    tracing::error!(%error, pack_id = %id, "cannot sweep this pack; trying again in an hour");
                    let tx = self.write().await?;
                    packs::Entity::update_many()
                        .col_expr(packs::Column::NextSweepAt, Expr::value(millis(now + FAILED_PACK_RETRY)))
                        .filter(packs::Column::Id.eq(id.as_str()))
                        .exec(&*tx)
                        .await?;
                    tx.commit().await?;
                    total.packs += 1;
                    total.failed += 1;
                }
            }
        }
        Ok(total)
    }

    /// One sweep batch. On SQLite its first attempt claims and decides on a reading connection
    /// before it takes the writer, so that one lane decides its batch while the other writes;
    /// every write is guarded on what was read, so a batch decided on data that moved
    /// meanwhile (usage, a second sweeping process) conflicts and is tried again, claimed
    /// inside the write transaction. On PostgreSQL the batch is claimed in its transaction,
    /// `FOR UPDATE SKIP LOCKED`.
    async fn sweep_batch(&self, now: DateTime<Utc>, limit: u64, scope: Scope<'_>) -> StoreResult<SweepReport> {
        let attempts = std::sync::atomic::AtomicU32::new(0);
        retrying(|| async {
            let first = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0;
            let decide_first = self.is_sqlite() && first && !matches!(scope, Scope::Pack(_));
            let (tx, planned) = if decide_first {
                let packs = claim_due(self.read(), now, limit, scope).await?;
                if packs.is_empty() {
                    return Ok(SweepReport::default());
                }
                let planned = plan_batch(self.read(), packs, now, &PendingBalances::default()).await?;
                (self.write().await?, planned)
            } else {
                let tx = self.write().await?;
                let packs = claim_due(&*tx, now, limit, scope).await?;
                if packs.is_empty() {
                    return Ok(SweepReport::default());
                }
                let planned = plan_batch(&*tx, packs, now, &PendingBalances::default()).await?;
                (tx, planned)
            };
            let report = write_batch(&*tx, planned, now).await?;
            tx.commit().await?;
            Ok(report)
        })
        .await
    }

    /// Queues low-capacity alerts for total-decrement packs that usage has drawn below one of
    /// their account's thresholds. Follows `deductions` from a stored cursor, so an idle scan
    /// reads nothing; `lookback` re-reads that many deductions before the cursor (a periodic
    /// safety net for deductions committed after later ones were scanned: alerts are deduped,
    /// so re-reading never repeats a mail). Returns the number of emails queued.
    pub async fn scan_capacity_alerts(&self, now: DateTime<Utc>, lookback: i64) -> StoreResult<u64> {
        let mut mails = 0;
        let mut lookback = lookback.max(0);
        loop {
            let (read, queued) = self.scan_capacity_batch(now, lookback).await?;
            mails += queued;
            lookback = 0;
            if read < CAPACITY_SCAN_BATCH {
                return Ok(mails);
            }
        }
    }

    async fn scan_capacity_batch(&self, now: DateTime<Utc>, lookback: i64) -> StoreResult<(u64, u64)> {
        retrying(|| async {
            let tx = self.write().await?;
            daemon_cursors::Entity::insert(daemon_cursors::ActiveModel {
                name: Set(CAPACITY_CURSOR.to_owned()),
                position: Set(0),
                updated_at: Set(millis(now)),
            })
            .on_conflict(OnConflict::column(daemon_cursors::Column::Name).do_nothing().to_owned())
            .exec_without_returning(&*tx)
            .await?;
            let mut cursor_query = daemon_cursors::Entity::find_by_id(CAPACITY_CURSOR.to_owned());
            if tx.get_database_backend() == DatabaseBackend::Postgres {
                // Two daemons scan one after the other, never the same rows at once.
                cursor_query = cursor_query.lock_exclusive();
            }
            let cursor = cursor_query.one(&*tx).await?.map_or(0, |row| row.position);
            let rows: Vec<(i64, String)> = deductions::Entity::find()
                .select_only()
                .column(deductions::Column::Id)
                .column(deductions::Column::PackId)
                .filter(deductions::Column::Id.gt((cursor - lookback).max(0)))
                .order_by_asc(deductions::Column::Id)
                .limit(CAPACITY_SCAN_BATCH)
                .into_tuple()
                .all(&*tx)
                .await?;
            let Some(last) = rows.last().map(|(id, _)| *id) else {
                return Ok((0, 0));
            };
            let pack_ids: BTreeSet<String> = rows.iter().map(|(_, pack)| pack.clone()).collect();
            let mut pack_rows = Vec::new();
            let pack_ids: Vec<String> = pack_ids.into_iter().collect();
            for chunk in pack_ids.chunks(1000) {
                pack_rows.extend(
                    packs::Entity::find()
                        .filter(packs::Column::Id.is_in(chunk.to_vec()))
                        .filter(packs::Column::PaymentMode.eq("total_decrement"))
                        .filter(packs::Column::Lifecycle.eq("valid"))
                        .all(&*tx)
                        .await?,
                );
            }
            let packs = hydrate(&*tx, pack_rows).await?;
            let account_ids: BTreeSet<i64> = packs.iter().map(|pack| pack.account_id).collect();
            let accounts: HashMap<i64, Account> =
                load_accounts(&*tx, &account_ids).await?.into_iter().map(|account| (account.id, account)).collect();
            let mut mails = Vec::new();
            for pack in &packs {
                let Some(account) = accounts.get(&pack.account_id) else { continue };
                for (position, item) in pack.items.iter().enumerate() {
                    let Some(threshold) = crossed_threshold(item, &account.alert_thresholds) else { continue };
                    let (Some(capacity), remaining) = (item.capacity, item.remaining) else { continue };
                    let notice = Notice::CapacityLow {
                        item: item.name.clone(),
                        unit: item.unit.clone(),
                        threshold,
                        remaining,
                        capacity,
                    };
                    let key = format!("capacity_low:{}:{position}:{threshold}:{}", pack.id, item.cycle_index);
                    mails.push(notice_row(account, pack, &notice, &key, now));
                }
            }
            let queued = enqueue(&*tx, mails).await?;
            if last > cursor {
                daemon_cursors::Entity::update_many()
                    .col_expr(daemon_cursors::Column::Position, Expr::value(last))
                    .col_expr(daemon_cursors::Column::UpdatedAt, Expr::value(millis(now)))
                    .filter(daemon_cursors::Column::Name.eq(CAPACITY_CURSOR))
                    .exec(&*tx)
                    .await?;
            }
            tx.commit().await?;
            Ok((rows.len() as u64, queued))
        })
        .await
    }

    /// How many packs are due at `now` (for metrics and `respackd sweep` output).
    pub async fn due_pack_count(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        use sea_orm::PaginatorTrait;
        Ok(packs::Entity::find().filter(packs::Column::NextSweepAt.lte(millis(now))).count(self.read()).await?)
    }
}
