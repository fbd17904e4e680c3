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

use foldhash::fast::FixedState;

use crate::sync_shim::{AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering};

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

/// Whether one change watch is blind (cannot see changes now), kept in step with the log's count
/// of blind watches. A watch starts blind (not yet subscribed); dropping it while blind gives its
/// count back.
#[derive(Debug)]
pub(crate) struct WatchBlindness {
    log: Arc<ChangeLog>,
    blind: AtomicBool,
}

impl WatchBlindness {
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

impl Drop for WatchBlindness {
    fn drop(&mut self) {
        if self.blind.load(Ordering::Acquire) {
            self.log.blind.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(all(test, not(loom)))]
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
        let (a, b) = (WatchBlindness::new(Arc::clone(&log)), WatchBlindness::new(Arc::clone(&log)));
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

/// Model checks (`--cfg loom`, see docs/adr/0008-model-checking.md). The tower's side of the
/// protocol — the change sink and `guarded_write` in `tower/coherence.rs` — is mirrored here in
/// a few lines over a one-key local layer and a one-key shared layer (a lock each: a server runs
/// one command at a time), so the checks cover the log and the order the tower uses it in.
#[cfg(all(test, loom))]
mod model {
    use loom::thread;

    use super::*;
    use crate::sync_shim::model;

    const KEY: &str = "k";

    /// A copy in the local layer: the value, and whether it was written briefly (while blind).
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Copy {
        value: u64,
        brief: bool,
    }

    #[derive(Default)]
    struct World {
        log: Arc<ChangeLog>,
        /// The process-local layer above (memory), holding `KEY` or not.
        local: Mutex<Option<Copy>>,
        /// The shared layer (Redis): the value of `KEY`.
        shared: Mutex<u64>,
    }

    impl World {
        /// A backfill: take the log's number, read the shared layer, write the value into the
        /// local one guarded as `guarded_write` does (`Write::Set`).
        fn backfill(&self) {
            let since = self.log.now();
            let value = *self.shared.lock();
            if self.log.is_blind() {
                *self.local.lock() = Some(Copy { value, brief: true });
                return;
            }
            if self.log.changed_since(since, KEY) {
                return;
            }
            *self.local.lock() = Some(Copy { value, brief: false });
            if self.log.changed_since(since, KEY) {
                *self.local.lock() = None;
            }
        }

        /// Another process writes `KEY` and the watch reports it: the sink records, then evicts.
        fn change_seen(&self, value: u64) {
            *self.shared.lock() = value;
            self.log.record_keys(&[KEY.to_owned()]);
            *self.local.lock() = None;
        }

        fn assert_no_stale_copy(&self) {
            let shared = *self.shared.lock();
            if let Some(copy) = *self.local.lock() {
                assert!(copy.brief || copy.value == shared, "stale copy {copy:?} kept, the shared value is {shared}");
            }
        }
    }

    fn seeing_world() -> (Arc<World>, WatchBlindness) {
        let world = Arc::new(World::default());
        *world.shared.lock() = 1;
        let watch = WatchBlindness::new(Arc::clone(&world.log));
        watch.regained();
        (world, watch)
    }

    /// A backfill racing a change of its key never leaves the old value in the local layer.
    #[test]
    fn a_guarded_write_never_keeps_a_value_changed_meanwhile() {
        model(|| {
            let (world, _watch) = seeing_world();
            let reader = {
                let world = Arc::clone(&world);
                thread::spawn(move || world.backfill())
            };
            world.change_seen(2);
            reader.join().unwrap();
            world.assert_no_stale_copy();
        });
    }

    /// The watch loses sight (the sink marks it blind, records "everything changed", flushes),
    /// then misses a change. A backfill racing all that may keep a copy only briefly, unless the
    /// copy is the current value: a backfill whose number is from after the loss must see the
    /// blindness.
    #[test]
    fn a_write_after_the_watch_went_blind_is_brief() {
        model(|| {
            let (world, watch) = seeing_world();
            let reader = {
                let world = Arc::clone(&world);
                thread::spawn(move || world.backfill())
            };
            watch.lost();
            world.log.record_all();
            *world.local.lock() = None;
            *world.shared.lock() = 2; // unseen: the watch is blind
            reader.join().unwrap();
            world.assert_no_stale_copy();
        });
    }

    /// Watches going blind and seeing again, from several threads at once (one of them the
    /// same watch twice) and dropped: the log is blind exactly while some watch is.
    #[test]
    fn the_blind_count_follows_the_watches() {
        model(|| {
            let log = Arc::new(ChangeLog::default());
            let a = Arc::new(WatchBlindness::new(Arc::clone(&log)));
            let b = WatchBlindness::new(Arc::clone(&log));
            let seeing = {
                let a = Arc::clone(&a);
                thread::spawn(move || {
                    a.regained();
                    a.lost();
                    a.regained();
                })
            };
            let losing = {
                let a = Arc::clone(&a);
                thread::spawn(move || a.lost())
            };
            let dropping = thread::spawn(move || {
                b.regained();
                b.lost();
                drop(b);
            });
            for thread in [seeing, losing, dropping] {
                thread.join().unwrap();
            }
            let a_blind = a.blind.load(Ordering::Acquire);
            assert_eq!(log.blind.load(Ordering::Acquire), usize::from(a_blind), "the count is the blind watches");
            assert_eq!(log.is_blind(), a_blind);
            drop(a);
            assert!(!log.is_blind(), "no watches, none blind");
        });
    }
}
