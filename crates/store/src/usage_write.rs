//! Writing usage: how the group writer (see `usage_queue`) plans a group of checked records
//! against their candidate packs and writes it in one transaction.
//!
//! Each record is planned by `respack_domain::plan_deduction` against its candidate packs as
//! the records before it left them, in memory, and every item change is a guarded update on the
//! values the plan was made from, so a concurrent writer makes the group retry instead of
//! overdrawing. Overage is priced at the subproduct's list price into a pay-as-you-go bill line.
//!
//! On SQLite the writer also plans ahead: while one group's rows are written and committed,
//! the batches queued behind it are planned as they arrive, on another core, against the packs
//! the first one leaves (kept in the candidate cache) and a read snapshot of everything else. That plan is used
//! only if the next transaction's write counter proves nobody else wrote in between; else the
//! group is planned again inside its transaction, as on PostgreSQL. The statements themselves
//! are built in `usage_sql`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use respack_domain::rust_decimal::Decimal;
use respack_domain::{apply_plan, plan_deduction, Lifecycle, Money, Pack, PackId};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, TransactionTrait};
use tokio::sync::oneshot;

use crate::bills::Settlement;
use crate::candidate_cache::{Groups, Pair};
use crate::convert::{millis, money_units, quantity_units};
use crate::db::WriteTx;
use crate::error::{StoreError, StoreResult};
use crate::pack_rows::write_packs;
use crate::usage::{CheckedRecord, UsageBatch, UsageOutcome, UsageQueue};
use crate::usage_queue::{Job, WriterSlot, GROUP_RECORDS};
use crate::usage_rows::{write_rows, DailyKey, GroupRows, ItemChange, NewDeduction, NewRecord};
use crate::usage_sql::{read_candidates, replayed, stored_records, Stored};
use crate::{retrying, Store};

/// The local day containing `at`, with its start and end instants.
fn local_day(at: DateTime<Utc>, zone: Tz) -> (NaiveDate, DateTime<Utc>, DateTime<Utc>) {
    let day = at.with_timezone(&zone).date_naive();
    let start_of = |date: NaiveDate| {
        zone.from_local_datetime(&date.and_time(NaiveTime::MIN)).earliest().map_or(at, |t| t.with_timezone(&Utc))
    };
    let next = day.succ_opt().unwrap_or(day);
    (day, start_of(day), start_of(next))
}

/// A group's records planned against their packs: the rows its transaction writes, made while
/// planning (on SQLite that is while the group before it is written).
struct GroupPlan {
    /// The outcome of each written record, in the order of `rows.records`; record IDs are
    /// filled in as the rows are inserted.
    outcomes: Vec<UsageOutcome>,
    /// Its records (each at its position in the group: not stored before, and the first of its
    /// key in the group — a later one is answered as a replay of it) and everything else written.
    rows: GroupRows,
    /// Packs whose lifecycle the group changed (activated, exhausted): as read, and after.
    ended: Vec<(Pack, Pack)>,
    /// The time the rows are stamped with (the latest of the batches' receipt times).
    now: DateTime<Utc>,
}

impl GroupPlan {
    /// Positions in the group of the records it writes.
    fn fresh(&self) -> Vec<usize> {
        self.rows.records.iter().map(|row| row.position).collect()
    }
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

/// The batches of a group, as the queue hands them to the writer.
type QueuedJobs = Vec<Job<UsageBatch, Vec<UsageOutcome>>>;

/// Records of a group planned ahead in parts: the group's records so far, where the new part
/// starts, when it was received, and what the group being written says.
struct Part<'a> {
    records: &'a [&'a CheckedRecord],
    from: usize,
    received: DateTime<Utc>,
    stamp: i64,
    previous: &'a Previous,
}

/// What the group being written tells the planning of the group behind it.
struct Previous {
    /// The write counter of its transaction.
    stamp: i64,
    keys: HashSet<(i64, String)>,
    pairs: BTreeSet<Pair>,
}

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

/// What planning may change in a pack (see `apply_plan`), as it was read: the guarded writes
/// compare with it. Cheaper to keep than the whole pack, which is rebuilt from it only for the
/// few packs whose lifecycle the group changes.
struct PackBefore {
    pair: Pair,
    /// Each item's remaining, cycle and used.
    counters: Vec<(Decimal, i64, Decimal)>,
    lifecycle: Lifecycle,
    package_expired_at: Option<DateTime<Utc>>,
    version: i64,
}

impl PackBefore {
    /// `pack`, a candidate of `pair`, as read.
    fn of(pair: Pair, pack: &Pack) -> PackBefore {
        PackBefore {
            pair,
            counters: pack.items.iter().map(|item| (item.remaining, item.cycle_index, item.used)).collect(),
            lifecycle: pack.lifecycle,
            package_expired_at: pack.package_expired_at,
            version: pack.version,
        }
    }

    /// `now` (the pack as planned) as it was read.
    fn restore(&self, now: &Pack) -> Pack {
        let mut pack = now.clone();
        for (item, &(remaining, cycle_index, used)) in pack.items.iter_mut().zip(&self.counters) {
            (item.remaining, item.cycle_index, item.used) = (remaining, cycle_index, used);
        }
        pack.lifecycle = self.lifecycle;
        pack.package_expired_at = self.package_expired_at;
        pack.version = self.version;
        pack
    }
}

/// Plans records, in order, into a group's rows against `groups` (the candidate packs of their
/// pairs), which end up as the plan leaves them. A group may be planned in parts, as its
/// batches arrive while the group before it is written.
#[derive(Default)]
struct Planner {
    /// Each touched pack as it was read, for the guarded writes.
    before_by_id: HashMap<PackId, PackBefore>,
    records: Vec<NewRecord>,
    deductions: Vec<NewDeduction>,
    daily: BTreeMap<DailyKey, (i64, i64)>,
    settlements: BTreeMap<String, Settlement>,
    /// In the order of `records`.
    outcomes: Vec<UsageOutcome>,
    /// The latest receipt time of the records planned.
    now: DateTime<Utc>,
}

impl Planner {
    /// Plans the records at `fresh` (positions in the group's records: not stored, the first
    /// of their key), received at `received`.
    fn add(
        &mut self,
        records: &[&CheckedRecord],
        fresh: &[usize],
        groups: &mut Groups,
        received: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.now = self.now.max(received);
        for &index in fresh {
            let CheckedRecord { key, record, subproduct, account } = records[index];
            let pair = (record.account_id, record.subproduct.clone());
            let group = groups.entry(pair.clone()).or_default();
            let plan = plan_deduction(record, group);
            for line in &plan.deductions {
                if !self.before_by_id.contains_key(&line.pack_id) {
                    if let Some(pack) = group.iter().find(|pack| pack.id == line.pack_id) {
                        self.before_by_id.insert(pack.id.clone(), PackBefore::of(pair.clone(), pack));
                    }
                }
            }
            apply_plan(&plan, group, record.occurred_at);
            let overage_cost = subproduct.list_price.times(plan.overage);
            let (day, day_start, day_end) = local_day(record.occurred_at, account.time_zone);
            let position = self.records.len();
            self.records.push(NewRecord {
                position: index,
                attributes: serde_json::to_string(&record.attributes).unwrap_or_else(|_| "{}".into()),
                quantity: quantity_units(record.quantity)?,
                overage: quantity_units(plan.overage)?,
                overage_cost: money_units(overage_cost)?,
                occurred_at: millis(record.occurred_at),
                received_at: millis(received),
            });
            for line in &plan.deductions {
                let amount = quantity_units(line.amount)?;
                self.deductions.push(NewDeduction {
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
                let key =
                    (record.account_id, line.pack_id.to_string(), record.usage_type.clone().unwrap_or_default(), day);
                let total = self.daily.entry(key).or_default();
                total.0 += amount;
                total.1 += 1;
            }
            if plan.overage > Decimal::ZERO {
                let key = format!("daily:{}:{}:{day}", record.account_id, subproduct.code);
                let settlement = self.settlements.entry(key.clone()).or_insert_with(|| Settlement {
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
            self.outcomes.push(UsageOutcome {
                idempotency_key: key.clone(),
                usage_record_id: 0,
                deducted: plan.deducted(),
                overage: plan.overage,
                overage_cost,
                replayed: false,
            });
        }
        Ok(())
    }

    /// The group's plan: its rows, in the order of the index they land in (see [`GroupRows`];
    /// packs by ID, settlements by key).
    fn finish(mut self, groups: &mut Groups) -> StoreResult<GroupPlan> {
        let mut item_changes = Vec::new();
        let mut ended = Vec::new();
        for (id, before) in &self.before_by_id {
            let Some(pack) =
                groups.get_mut(&before.pair).and_then(|group| group.iter_mut().find(|pack| &pack.id == id))
            else {
                continue;
            };
            for (position, (&(remaining, cycle_index, used), new)) in
                before.counters.iter().zip(&pack.items).enumerate()
            {
                if (remaining, cycle_index, used) != (new.remaining, new.cycle_index, new.used) {
                    item_changes.push(ItemChange {
                        pack_id: pack.id.clone(),
                        position: position as i64,
                        seen: [quantity_units(remaining)?, cycle_index, quantity_units(used)?],
                        new: [quantity_units(new.remaining)?, new.cycle_index, quantity_units(new.used)?],
                    });
                }
            }
            // Packs the group activated or exhausted; respackd looks at them on its next sweep
            // (the "exhausted" email).
            if before.lifecycle != pack.lifecycle {
                pack.version = before.version + 1;
                ended.push((before.restore(pack), pack.clone()));
            }
        }
        // Stable: a record's deductions keep their order (their IDs follow it).
        self.deductions.sort_by_key(|row| (row.account_id, row.deducted_at));
        item_changes.sort_unstable_by(|a, b| (&a.pack_id, a.position).cmp(&(&b.pack_id, b.position)));
        ended.sort_unstable_by(|(a, _), (b, _)| a.id.cmp(&b.id));
        Ok(GroupPlan {
            outcomes: self.outcomes,
            rows: GroupRows {
                records: self.records,
                deductions: self.deductions,
                items: item_changes,
                daily: self.daily,
                settlements: self.settlements.into_values().collect(),
            },
            ended,
            now: self.now,
        })
    }
}

/// Plans a whole group at once (see [`Planner`]).
fn plan_group(
    records: &[&CheckedRecord],
    fresh: &[usize],
    groups: &mut Groups,
    now: DateTime<Utc>,
) -> StoreResult<GroupPlan> {
    let mut planner = Planner::default();
    planner.add(records, fresh, groups, now)?;
    planner.finish(groups)
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
                            pairs: pairs_of(&records, &plan.fresh())
                                .into_iter()
                                .map(|(a, s)| (a, s.to_owned()))
                                .collect(),
                        };
                        let (store, queue) = (self.clone(), slot.queue().clone());
                        following =
                            Some(tokio::spawn(async move { store.plan_ahead(&queue, written_signal, previous).await }));
                    }
                    self.commit_usage(tx, &records, stored, plan, Some(written)).await
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
        self.commit_usage(tx, records, stored, plan, None).await
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
    ) -> StoreResult<(WriteTx, Stored, GroupPlan)> {
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
                let plan = plan_group(records, &fresh, &mut groups, now)?;
                (stored, plan, groups)
            }
        };
        if let Some((cache, stamp)) = self.candidate_cache.as_deref().zip(tx.stamp) {
            cache.put(stamp, groups);
        }
        Ok((tx, stored, plan))
    }

    /// Plans the batches queued behind the group being written, as they arrive, until that
    /// group's rows are written (this plan is then finished while its commit runs) or a
    /// group's worth is taken, and gives them back with the plan — none when it cannot be made
    /// safely (see [`Store::plan_more`]). `None` when nothing came.
    async fn plan_ahead(
        &self,
        queue: &UsageQueue,
        mut written: oneshot::Receiver<()>,
        previous: Previous,
    ) -> Option<(QueuedJobs, StoreResult<Option<AheadPlan>>)> {
        let stamp = previous.stamp + 1;
        let mut jobs: QueuedJobs = Vec::new();
        let mut taken_records = 0;
        // The plan so far, with the packs it leaves and the keys it holds; `None` once it
        // cannot be used.
        let mut planning = Some((Planner::default(), Groups::new(), HashSet::new()));
        loop {
            let arrived = queue.arrived();
            let taken = queue.take_queued(GROUP_RECORDS - taken_records);
            if !taken.is_empty() {
                let from = taken_records;
                let received = group_now(&taken);
                taken_records += taken.iter().map(|job| job.records).sum::<usize>();
                jobs.extend(taken);
                if let Some((planner, groups, keys)) = planning.as_mut() {
                    let records: Vec<&CheckedRecord> = jobs.iter().flat_map(|job| &job.batch.records).collect();
                    let part = Part { records: &records, from, received, stamp, previous: &previous };
                    match self.plan_more(part, planner, groups, keys).await {
                        Ok(true) => {}
                        Ok(false) => planning = None,
                        Err(error) => return Some((jobs, Err(error))),
                    }
                }
            }
            if taken_records >= GROUP_RECORDS {
                break;
            }
            tokio::select! {
                () = arrived => {}
                // What comes after waits for the next group: the writer goes on at once.
                _ = &mut written => break,
            }
        }
        if jobs.is_empty() {
            return None;
        }
        let plan = match planning {
            Some((planner, mut groups, _)) => {
                planner.finish(&mut groups).map(|plan| Some(AheadPlan { stamp, plan, groups }))
            }
            None => Ok(None),
        };
        Some((jobs, plan))
    }

    /// Plans the records of a group from `part.from` on, which arrived while the group before
    /// it is written: `false` when that cannot be done safely (a key is stored or being written,
    /// someone else wrote, the cache lost packs the group before it is changing).
    async fn plan_more(
        &self,
        part: Part<'_>,
        planner: &mut Planner,
        groups: &mut Groups,
        keys: &mut HashSet<(i64, String)>,
    ) -> StoreResult<bool> {
        let Part { records, from, received, stamp, previous } = part;
        let Some(cache) = self.candidate_cache.as_deref() else { return Ok(false) };
        let new = &records[from..];
        if new.iter().any(|c| previous.keys.contains(&(c.record.account_id, c.key.clone()))) {
            return Ok(false);
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
            return Ok(false);
        }
        if !stored_records(&snapshot, new).await?.is_empty() {
            return Ok(false);
        }
        // A key already in the group is a replay of its first record.
        let fresh: Vec<usize> = (from..records.len())
            .filter(|&i| keys.insert((records[i].record.account_id, records[i].key.clone())))
            .collect();
        let pairs: BTreeSet<(i64, &str)> = pairs_of(records, &fresh)
            .into_iter()
            .filter(|&(account_id, code)| !groups.contains_key(&(account_id, code.to_owned())))
            .collect();
        let (cached, missing) = cache.take(stamp, &pairs);
        groups.extend(cached);
        // Pairs the group before is writing must come from the cache: the snapshot may predate it.
        if missing.iter().any(|&(account_id, code)| previous.pairs.contains(&(account_id, code.to_owned()))) {
            return Ok(false);
        }
        read_candidates(&snapshot, &missing, groups).await?;
        snapshot.commit().await?;
        planner.add(records, &fresh, groups, received)?;
        Ok(true)
    }

    /// Writes a planned group's rows and commits, answering each record in order. `written`
    /// is dropped once the rows are written, before the commit: the group behind this one then
    /// stops taking batches and finishes its plan while the commit runs. On any failure the
    /// candidate cache (which already holds what this group would leave) is emptied before the
    /// writer lock is let go.
    async fn commit_usage(
        &self,
        tx: WriteTx,
        records: &[&CheckedRecord],
        stored: Stored,
        plan: GroupPlan,
        written: Option<oneshot::Sender<()>>,
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
        drop(written);
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

/// Writes a plan's rows: records and their IDs, deductions, capacity, lifecycle, rollups,
/// settlements; returns each record's outcome in order.
async fn write_plan(
    tx: &WriteTx,
    records: &[&CheckedRecord],
    stored: &Stored,
    plan: GroupPlan,
) -> StoreResult<Vec<UsageOutcome>> {
    let fresh = plan.fresh();
    let GroupPlan { mut outcomes, rows, ended, now } = plan;
    let record_ids = write_rows(tx, records, rows, now).await?;
    for (outcome, &id) in outcomes.iter_mut().zip(&record_ids) {
        outcome.usage_record_id = id;
    }
    let ended: Vec<_> = ended.iter().map(|(before, after)| (before, after, Some(now))).collect();
    write_packs(&**tx, &ended, now).await?;

    // Each record is answered with its own outcome if it was written; else it is a replay,
    // of a stored record or of the group's first record with its key.
    let mut written: Vec<Option<usize>> = vec![None; records.len()];
    for (n, &i) in fresh.iter().enumerate() {
        written[i] = Some(n);
    }
    let mut first_of_key: Option<HashMap<(i64, &str), usize>> = None;
    let mut answers = Vec::with_capacity(records.len());
    for (i, c) in records.iter().enumerate() {
        if let Some(n) = written[i] {
            answers.push(outcomes[n].clone());
        } else if let Some(row) = stored.get(&(c.record.account_id, c.key.clone())) {
            answers.push(replayed(row));
        } else {
            let first = first_of_key.get_or_insert_with(|| {
                fresh
                    .iter()
                    .enumerate()
                    .map(|(n, &i)| ((records[i].record.account_id, records[i].key.as_str()), n))
                    .collect()
            });
            let n = *first.get(&(c.record.account_id, c.key.as_str())).ok_or_else(|| {
                StoreError::Corrupt(format!("usage record {:?} was neither written nor stored", c.key))
            })?;
            answers.push(UsageOutcome { replayed: true, ..outcomes[n].clone() });
        }
    }
    Ok(answers)
}
