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
use std::sync::atomic::{AtomicU64, Ordering};

use foldhash::fast::FixedState;
use parking_lot::Mutex;

/// How many recent changes are remembered; an operation older than that treats every key as
/// changed (it skips its write: a miss later, never a stale value).
const REMEMBERED: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    /// The number of the last change recorded.
    last: AtomicU64,
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
    fn forgotten_changes_count_as_changes() {
        let log = ChangeLog::default();
        let start = log.now();
        let keys: Vec<String> = (0..REMEMBERED + 10).map(|i| format!("k{i}")).collect();
        log.record_keys(&keys);
        assert!(log.changed_since(start, "never written"));
        assert!(!log.changed_since(log.now(), "k1"));
    }
}
