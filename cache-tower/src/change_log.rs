//! The recent changes a tower has heard of from its shared layers, numbered in order.
//!
//! A write into a process-local layer (a backfill, or the top half of a `set`) races with the
//! news that the key changed elsewhere: a read that fetched the old value from Redis could put
//! it into memory just after the eviction for the new one went by. So every such write takes
//! the log's number when its operation starts, and skips (or undoes) the write when the key
//! changed since. Checking *after* writing closes the race: either the eviction comes after the
//! write and removes it, or the check sees the change and removes it.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use foldhash::fast::FixedState;
use parking_lot::Mutex;

/// How many recent changes are remembered; an operation older than that treats every key as
/// changed (it skips its write: a miss later, never a stale value).
const REMEMBERED: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    /// The number of the last change recorded.
    last: AtomicU64,
    /// How many watches cannot see changes right now (not yet subscribed, or lost): while any
    /// cannot, nothing may be written into the local layers.
    blind: AtomicUsize,
    /// (number, key hash or `None` for "everything"), oldest first.
    recent: Mutex<VecDeque<(u64, Option<u64>)>>,
}

fn hash(key: &str) -> u64 {
    FixedState::default().hash_one(key)
}

impl ChangeLog {
    /// The number to compare with later ([`changed_since`](Self::changed_since)).
    pub(crate) fn now(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }

    pub(crate) fn record_keys(&self, keys: &[String]) {
        let mut recent = self.recent.lock();
        for key in keys {
            self.push(&mut recent, Some(hash(key)));
        }
    }

    pub(crate) fn record_all(&self) {
        let mut recent = self.recent.lock();
        self.push(&mut recent, None);
    }

    fn push(&self, recent: &mut VecDeque<(u64, Option<u64>)>, key: Option<u64>) {
        let number = self.last.load(Ordering::Relaxed) + 1;
        if recent.len() == REMEMBERED {
            recent.pop_front();
        }
        recent.push_back((number, key));
        self.last.store(number, Ordering::Release);
    }

    /// Whether some watch cannot see changes now, so local copies could go stale unnoticed.
    pub(crate) fn is_blind(&self) -> bool {
        self.blind.load(Ordering::Acquire) > 0
    }

    /// Whether `key` (or everything) changed after change number `since`.
    pub(crate) fn changed_since(&self, since: u64, key: &str) -> bool {
        if self.last.load(Ordering::Acquire) == since {
            return false;
        }
        let recent = self.recent.lock();
        if recent.front().is_none_or(|(oldest, _)| *oldest > since + 1) {
            return true; // forgotten: assume the worst
        }
        let key = hash(key);
        recent
            .iter()
            .rev()
            .take_while(|(number, _)| *number > since)
            .any(|(_, changed)| changed.is_none_or(|h| h == key))
    }
}

/// Whether one watch can see changes, kept in step with the log's count of blind watches. A
/// watch starts blind (not yet subscribed); dropping it while blind gives its count back.
#[derive(Debug)]
pub(crate) struct Sight {
    log: Arc<ChangeLog>,
    blind: AtomicBool,
}

impl Sight {
    pub(crate) fn new(log: Arc<ChangeLog>) -> Self {
        log.blind.fetch_add(1, Ordering::AcqRel);
        Self { log, blind: AtomicBool::new(true) }
    }

    /// The watch sees changes again (set *after* recording the change that ends the blindness).
    pub(crate) fn regained(&self) {
        if self.blind.swap(false, Ordering::AcqRel) {
            self.log.blind.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The watch lost sight (set *before* recording and evicting, so a racing write is refused).
    pub(crate) fn lost(&self) {
        if !self.blind.swap(true, Ordering::AcqRel) {
            self.log.blind.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Sight {
    fn drop(&mut self) {
        if self.blind.load(Ordering::Acquire) {
            self.log.blind.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_changes_after_a_point() {
        let log = ChangeLog::default();
        let start = log.now();
        assert!(!log.changed_since(start, "a"));
        log.record_keys(&["a".to_owned()]);
        assert!(log.changed_since(start, "a"));
        assert!(!log.changed_since(start, "b"));
        let later = log.now();
        assert!(!log.changed_since(later, "a"));
        log.record_all();
        assert!(log.changed_since(later, "b"));
    }

    #[test]
    fn blind_while_any_watch_is_blind() {
        let log = Arc::new(ChangeLog::default());
        let (a, b) = (Sight::new(Arc::clone(&log)), Sight::new(Arc::clone(&log)));
        assert!(log.is_blind(), "watches start blind");
        a.regained();
        assert!(log.is_blind());
        b.regained();
        assert!(!log.is_blind());
        b.lost();
        b.lost();
        assert!(log.is_blind());
        drop(b);
        assert!(!log.is_blind(), "a dropped blind watch gives its count back");
        drop(a);
        assert!(!log.is_blind());
    }

    #[test]
    fn forgotten_changes_count_as_changes() {
        let log = ChangeLog::default();
        let start = log.now();
        let keys: Vec<String> = (0..REMEMBERED + 10).map(|i| format!("k{i}")).collect();
        log.record_keys(&keys);
        assert!(log.changed_since(start, "never written"));
        assert!(!log.changed_since(log.now(), "k1"));
    }
}
