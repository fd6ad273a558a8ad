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
//! The planner claims past the packs of the batches it handed over and has not yet seen
//! committed (`Scope::Except`), and decides each batch against the balances the earlier ones
//! leave ([`PendingBalances`]). Every write stays guarded on what was read: when anything moved
//! meanwhile (usage, a top-up, another process), the transaction fails, nothing of it stays,
//! the stream stops, and the lanes sweep what is left as they would without it.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

use crate::error::{StoreError, StoreResult};
use crate::upkeep::{claim_due, plan_batch, write_batch, PendingBalances, PlannedBatch, Scope, SweepReport};
use crate::Store;

/// Packs written per transaction of the stream (whole batches: a transaction is committed once
/// it holds at least this many — two of respackd's default 750). Measured with `cargo xtask
/// bench sweep` (1,000,000 packs, 100,000 due, 2026-12-02, a machine that slowed while it
/// ran: the lanes took 8.5, 8.8 and then 12.2 s): one batch per transaction 10.9 s, 1,500 packs
/// 7.1, 7.4 and 9.2 s at a peak RSS of 91–95 MB, 3,000 packs 7.0 s but at 102–105 MB (the
/// process's memory grows with the transaction), over respackd's 100 MB budget.
const COMMIT_PACKS: u64 = 1500;

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

/// The stream's planner: claims the due packs past those of batches not yet committed, decides
/// each batch against the balances the earlier ones leave, and hands it to the writer, until a
/// claim comes back short or the writer stops taking batches.
async fn plan_stream(
    store: Store,
    now: DateTime<Utc>,
    batch_size: u64,
    plans: mpsc::Sender<(u64, PlannedBatch)>,
    committed: watch::Receiver<u64>,
) -> StoreResult<()> {
    let mut pending = PendingBalances::default();
    let mut in_flight: VecDeque<(u64, Vec<String>)> = VecDeque::new();
    for seq in 1.. {
        let done = *committed.borrow();
        pending.committed(done);
        while in_flight.front().is_some_and(|(batch, _)| *batch <= done) {
            in_flight.pop_front();
        }
        let except: Vec<String> = in_flight.iter().flat_map(|(_, ids)| ids.iter().cloned()).collect();
        let packs = claim_due(store.read(), now, batch_size, Scope::Except(&except)).await?;
        if packs.is_empty() {
            break;
        }
        let short = (packs.len() as u64) < batch_size;
        let ids = packs.iter().map(|pack| pack.id.to_string()).collect();
        let batch = plan_batch(store.read(), packs, now, &pending).await?;
        pending.add(seq, &batch);
        in_flight.push_back((seq, ids));
        if plans.send((seq, batch)).await.is_err() || short {
            break;
        }
    }
    Ok(())
}
