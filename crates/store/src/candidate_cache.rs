//! SQLite only: the live packs recent usage batches read, kept for the next batch.
//!
//! On SQLite one process writes at a time, and every write transaction of every process
//! (respack-web, respackd, xtask) adds one to the `write_lock` counter. A usage batch that
//! finds the counter exactly one past the value its predecessor committed knows that nobody
//! else wrote in between, so the packs that batch left behind are still exactly what the
//! database holds and need not be read again. Any other counter value empties the cache.
//!
//! Entries are taken out while a group plans and put back, as the plan leaves them, before its
//! rows are written, so that the group queued behind it can be planned meanwhile (see
//! `usage_write`); the writer empties the cache if the transaction then fails, so a failed
//! group leaves no guess behind: its pairs are simply read again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use respack_domain::{Lifecycle, Pack};

/// At most this many packs are kept (about a kilobyte each); a cache that would grow past it
/// starts over.
pub(crate) const MAX_CACHED_PACKS: usize = 150_000;

/// An (account, subproduct) pair: the unit in which candidates are read and cached.
pub(crate) type Pair = (i64, String);
/// The same pairs, borrowed from a batch.
pub(crate) type PairRefs<'a> = BTreeSet<(i64, &'a str)>;
/// The packs of each pair.
pub(crate) type Groups = HashMap<Pair, Vec<Pack>>;

#[derive(Debug, Default)]
pub(crate) struct CandidateCache {
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// The write counter of the transaction that last put packs here; `None` when empty.
    stamp: Option<i64>,
    /// The live (inactive or valid), unfrozen packs of each pair, possibly none.
    groups: Groups,
    packs: usize,
}

impl CandidateCache {
    /// Takes the cached packs of `pairs` out for a transaction whose write counter is
    /// `stamp`; returns them and the pairs that must be read from the database. Everything
    /// cached is dropped when another writer came in between.
    pub(crate) fn take<'a>(&self, stamp: i64, pairs: &PairRefs<'a>) -> (Groups, PairRefs<'a>) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.stamp.is_none_or(|last| last.checked_add(1) != Some(stamp)) {
            state.clear();
        }
        let mut found = HashMap::new();
        let mut missing = BTreeSet::new();
        for &(account_id, subproduct) in pairs {
            let key = (account_id, subproduct.to_owned());
            match state.groups.remove(&key) {
                Some(packs) => {
                    state.packs -= packs.len();
                    found.insert(key, packs);
                }
                None => {
                    missing.insert((account_id, subproduct));
                }
            }
        }
        (found, missing)
    }

    /// Puts back the packs of a transaction whose write counter is `stamp`, as it leaves them:
    /// what the database holds once it commits (if it does not, the writer calls
    /// [`CandidateCache::forget`]). Packs that stopped being live are left out, as a read
    /// would leave them out.
    pub(crate) fn put(&self, stamp: i64, groups: Groups) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.stamp.is_some_and(|last| last.checked_add(1) != Some(stamp)) {
            state.clear();
        }
        let incoming: usize = groups.values().map(Vec::len).sum();
        if state.packs + incoming > MAX_CACHED_PACKS {
            state.clear();
            if incoming > MAX_CACHED_PACKS {
                return;
            }
        }
        for (pair, mut packs) in groups {
            packs.retain(|pack| matches!(pack.lifecycle, Lifecycle::Inactive | Lifecycle::Valid) && !pack.frozen);
            state.packs += packs.len();
            if let Some(replaced) = state.groups.insert(pair, packs) {
                state.packs -= replaced.len();
            }
        }
        state.stamp = Some(stamp);
    }

    /// Drops everything (a transaction failed after it may have committed).
    pub(crate) fn forget(&self) {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }
}

impl CacheState {
    fn clear(&mut self) {
        self.stamp = None;
        self.groups.clear();
        self.packs = 0;
    }
}
