//! SQLite's sweep as one stream: a planner task claims and decides batch after batch on a
//! reading connection while the writer writes the batches decided before it, several to a
//! transaction.
//!
//! SQLite writes one transaction at a time, so the lanes of [`Store::sweep_packs_while`] only
//! take turns at its writer; and since neighbouring packs belong to different lanes' accounts,
//! each lane's batch dirtied table pages the other lane's batch dirtied too, and every page of
//! `packs` and `pack_items` went to the WAL twice. One stream claims the due packs in the
//! order of their index, so a page is written once, and several batches to a transaction
//! write the index pages they share and sync the WAL once.
//!
//! The planner claims past the last pack it claimed, in the order of the due index, and
//! decides each batch against the balances the earlier ones leave ([`PendingBalances`]).
//! Every write stays guarded on what was read: when anything moved meanwhile (usage, a top-up,
//! another process), the transaction fails, nothing of it stays, the stream stops, and the
//! lanes sweep what is left as they would without it.

use chrono::{DateTime, Utc};
use respack_domain::Pack;
use tokio::sync::{mpsc, watch};

use crate::convert::millis;
use crate::error::{StoreError, StoreResult};
use crate::upkeep::{plan_batch, read_claimed, write_batch, PendingBalances, PlannedBatch, SweepKey, SweepReport};
use crate::Store;

/// Packs written per transaction of the stream (whole batches: a transaction is committed once
/// it holds at least this many — eight of respackd's default 750). Fewer, larger transactions
/// write each index page they share to the WAL fewer times. Measured with `cargo xtask bench
/// sweep` (1,000,000 packs, 100,000 due, 2026-12-02, alternately): 1,500 packs 5.09, 4.35,
/// 4.15 s; 6,000 packs 4.08, 3.57, 3.28 s; 12,000 or all in one no faster. The process's
/// memory did grow with the transaction while the stream claimed with a `NOT IN` list of the
/// packs in flight and read through the whole pool (3,000 packs: 102–105 MB, over respackd's
/// 100 MB budget); claiming past a key through one connection, 6,000 packs peak at 88–90 MB.
const COMMIT_PACKS: u64 = 6000;

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// Every pack due when it claimed was swept (the planner's last claim was short).
    Done,
    /// The caller's `keep_going` said no after a batch (the transaction holding it was
    /// committed).
    Stopped,
    /// A batch could not be claimed, decided or written as planned (data moved, an error):
    /// what the stream committed stays, the rest is left to the lanes.
    Interrupted,
}

impl Store {
    /// Sweeps due packs as one stream (SQLite), adding what it committed to `total` and
    /// asking `keep_going` after each batch.
    pub(crate) async fn sweep_stream<F>(
        &self,
        now: DateTime<Utc>,
        batch_size: u64,
        keep_going: &F,
        total: &mut SweepReport,
    ) -> StreamEnd
    where
        F: Fn(&SweepReport) -> bool,
    {
        // One batch waits while one is decided and one written: memory stays a few batches.
        let (plans, mut planned) = mpsc::channel(1);
        let (committed, committed_seen) = watch::channel(0);
        let planner = tokio::spawn(plan_stream(self.clone(), now, batch_size, plans, committed_seen));
        let written = self.write_stream(now, &mut planned, &committed, keep_going, total).await;
        // Whatever the writer's end, the planner stops at its next hand-over.
        drop(planned);
        let planner = planner
            .await
            .unwrap_or_else(|error| Err(StoreError::Corrupt(format!("the sweep planner stopped: {error}"))));
        match (written, planner) {
            // Told to stop: whatever the planner ran into, no lane starts.
            (Ok(StreamEnd::Stopped), _) => StreamEnd::Stopped,
            (Err(error), _) | (Ok(_), Err(error)) => {
                tracing::debug!(%error, "the sweep stream stopped; the lanes sweep the rest");
                StreamEnd::Interrupted
            }
            (Ok(end), Ok(())) => end,
        }
    }

    /// The stream's writer: the planned batches in order, committed every [`COMMIT_PACKS`]
    /// packs, at the end, and when `keep_going` (asked after each batch with the running
    /// total) says no; after each commit the planner learns the last batch committed.
    async fn write_stream<F>(
        &self,
        now: DateTime<Utc>,
        planned: &mut mpsc::Receiver<(u64, PlannedBatch)>,
        committed: &watch::Sender<u64>,
        keep_going: &F,
        total: &mut SweepReport,
    ) -> StoreResult<StreamEnd>
    where
        F: Fn(&SweepReport) -> bool,
    {
        let mut end = StreamEnd::Done;
        while end == StreamEnd::Done {
            let mut tx = None;
            let mut written = SweepReport::default();
            let mut last = None;
            while written.packs < COMMIT_PACKS {
                let Some((seq, batch)) = planned.recv().await else { break };
                let open = match tx {
                    Some(ref open) => open,
                    None => tx.insert(self.write().await?),
                };
                written += write_batch(&**open, batch, now).await?;
                last = Some(seq);
                let mut running = *total;
                running += written;
                if !keep_going(&running) {
                    end = StreamEnd::Stopped;
                    break;
                }
            }
            let (Some(tx), Some(last)) = (tx, last) else {
                return Ok(end);
            };
            tx.commit().await?;
            // The planner may stop excluding these packs and counting on these balances: a
            // read now shows them.
            committed.send_replace(last);
            *total += written;
        }
        Ok(end)
    }
}

/// The stream's planner: claims the due packs past those it claimed before, decides each batch
/// against the balances the earlier ones leave, and hands it to the writer, until a claim
/// comes back short or the writer stops taking batches.
///
/// It claims in the order of `ix_packs_next_sweep` — whose entries are (next sweep instant,
/// rowid) — past the last pack claimed, so the packs of batches handed over and not yet
/// committed, which a reading connection still sees due, are never claimed twice, and a claim
/// costs the same however many are in flight ([`claim_past`]: two index seeks). A pack that falls due again behind that point
/// while the stream runs (another writer moved it) is left to the lanes that sweep after it.
async fn plan_stream(
    store: Store,
    now: DateTime<Utc>,
    batch_size: u64,
    plans: mpsc::Sender<(u64, PlannedBatch)>,
    committed: watch::Receiver<u64>,
) -> StoreResult<()> {
    let mut pending = PendingBalances::default();
    let mut past = None;
    for seq in 1.. {
        pending.committed(*committed.borrow());
        let (packs, last) = claim_past(store.sweep_read(), now, batch_size, past).await?;
        if packs.is_empty() {
            break;
        }
        past = last;
        let short = (packs.len() as u64) < batch_size;
        let batch = plan_batch(store.sweep_read(), packs, now, &pending).await?;
        pending.add(seq, &batch);
        if plans.send((seq, batch)).await.is_err() || short {
            break;
        }
    }
    Ok(())
}

/// Up to `limit` packs due at `now` past `past` in the order of `ix_packs_next_sweep`, and the
/// key of the last of them. Two index seeks — the packs due at `past`'s instant after its
/// rowid, then those due later — since SQLite does not seek an index on a row value that
/// ends with the rowid (it scans every entry of the instant).
async fn claim_past(
    conn: &impl sea_orm::ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
    past: Option<SweepKey>,
) -> StoreResult<(Vec<Pack>, Option<SweepKey>)> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let (claimed, values): (&str, Vec<sea_orm::Value>) = match past {
        None => (
            "SELECT *, rowid AS sweep_rowid FROM packs WHERE next_sweep_at <= ?1 \
             ORDER BY next_sweep_at, rowid LIMIT ?2",
            vec![millis(now).into(), limit.into()],
        ),
        Some(past) => (
            "SELECT * FROM (SELECT *, rowid AS sweep_rowid FROM packs WHERE next_sweep_at = ?2 AND rowid > ?3 \
             ORDER BY rowid LIMIT ?4) \
             UNION ALL SELECT * FROM (SELECT *, rowid AS sweep_rowid FROM packs \
             WHERE next_sweep_at > ?2 AND next_sweep_at <= ?1 ORDER BY next_sweep_at, rowid LIMIT ?4) LIMIT ?4",
            vec![millis(now).into(), past.next_sweep_at.into(), past.rowid.into(), limit.into()],
        ),
    };
    read_claimed(conn, claimed, values, true).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::Duration;
    use chrono_tz::Tz;
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

    use super::*;
    use crate::test_support::monthly_mps_spec;
    use crate::{Actor, Charge, NewAccount, SealingKey};

    fn instant(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc)).unwrap()
    }

    /// Seven packs due at one instant, two at a later one, one not due: claims of three, each
    /// past the last, take the packs in index order (instant, then rowid — the order they were
    /// issued in), each once, and the last claim comes back short.
    #[tokio::test]
    async fn claims_past_the_last_pack_take_each_due_pack_once_in_index_order() {
        let dir = std::env::temp_dir().join(format!("respack-claim-past-{}", std::process::id()));
        let url = format!("sqlite://{}?mode=rwc", dir.join("store.db").display());
        let store = Store::connect(&url, SealingKey::from_bytes([1; 32])).await.unwrap();
        let issued_at = instant("2026-02-10T08:00:00Z");
        let actor = Actor::system("test");
        let account = store.create_account(NewAccount::customer("Acme", Tz::UTC), &actor, issued_at).await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..10 {
            let spec = monthly_mps_spec("Transcoding pack", 12, "10", issued_at);
            let issued = store.issue_pack(account.id, spec, Charge::Settled, None, &actor, issued_at).await;
            ids.push(issued.unwrap().pack_id);
        }
        let now = instant("2026-03-10T08:00:00Z");
        let due_at = |n: usize| match n {
            0..7 => now - Duration::hours(2),
            7 | 8 => now - Duration::hours(1),
            _ => now + Duration::hours(1),
        };
        let tx = store.write().await.unwrap();
        for (n, id) in ids.iter().enumerate() {
            let moved = Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "UPDATE packs SET next_sweep_at = ? WHERE id = ?",
                [millis(due_at(n)).into(), id.as_str().into()],
            );
            tx.execute(moved).await.unwrap();
        }
        tx.commit().await.unwrap();

        let mut claims: Vec<BTreeSet<String>> = Vec::new();
        let mut past = None;
        loop {
            let (packs, last) = claim_past(store.read(), now, 3, past).await.unwrap();
            claims.push(packs.iter().map(|pack| pack.id.to_string()).collect());
            if packs.len() < 3 {
                break;
            }
            assert!(last > past, "the key moves forward: {last:?} after {past:?}");
            past = last;
        }
        let expected: Vec<BTreeSet<String>> =
            [&ids[0..3], &ids[3..6], &ids[6..9], &[]].iter().map(|chunk| chunk.iter().cloned().collect()).collect();
        assert_eq!(claims, expected);
        store.close().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
