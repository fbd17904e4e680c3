//! The recent changes a tower has heard of from its shared layers, numbered in order.
//!
//! A write into a process-local layer (a backfill, or the top half of a `set`) races with the
//! news that the key changed elsewhere: a read that fetched the old value from Redis could put
//! it into memory just after the eviction for the new one went by. So every such write takes
//! the log's number when its operation starts, and skips (or undoes) the write when the key
//! changed since. Checking *after* writing closes the race: either the eviction comes after the
//! write and removes it, or the check sees the change and removes it.
//!
//! # The process's own writes
//!
//! The watch also reports the process's own writes (the tracking connection is not the one that
//! wrote). So that a `set` keeps the value it wrote in memory, the log remembers each own write
//! while it is under way, and for a moment after ([`LINGER`]): [`begin_own_write`] /
//! [`end_own_write`]. When a change of such a key is reported, the sink first reads the key's
//! value in the shared layer (after the report, so it is the latest) and records the change with
//! [`record_checked`]: when exactly one own write of the key is under way and it wrote that
//! value, the change is recorded as *that write's* — the write itself keeps its copy, every
//! other operation (a backfill that read the old value, a second write of the same key) still
//! sees a change and skips or undoes its copy. Then the sink keeps a local copy only if it equals
//! the value read. See docs/adr/0013-a-process-keeps-its-own-writes.md.
//!
//! [`begin_own_write`]: ChangeLog::begin_own_write
//! [`end_own_write`]: ChangeLog::end_own_write
//! [`record_checked`]: ChangeLog::record_checked

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::fast::FixedState;

use crate::sync_shim::{AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering};
use crate::value::StoredValue;

/// How many recent changes are remembered; an operation older than that treats every key as
/// changed (it skips its write: a miss later, never a stale value).
const REMEMBERED: usize = 4096;

/// How long a finished own write of a key is remembered, so that the report of it (which may
/// come after the write is over) is checked rather than taken as another's change.
pub(crate) const LINGER: Duration = Duration::from_secs(1);

/// The writer of a change that no own write claims.
const NOBODY: u64 = 0;

/// One own write under way: its number (to recognise its changes) and the log's number when it
/// began (to compare with, as any write does).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnWrite {
    pub(crate) writer: u64,
    pub(crate) since: u64,
}

#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    /// The number of the last change recorded.
    last: AtomicU64,
    /// How many watches cannot see changes right now (not yet subscribed, or lost): while any
    /// cannot, nothing may be written into the local layers.
    blind: AtomicUsize,
    /// (number, key hash or `None` for "everything", the own write it was, or [`NOBODY`]),
    /// oldest first.
    recent: Mutex<VecDeque<(u64, Option<u64>, u64)>>,
    /// The own writes under way or just finished, by key. Locked before `recent` when both are.
    own: Mutex<OwnWrites>,
    /// Notified at every change recorded: what callers waiting for another instance's value
    /// (get-or-set's distributed lock) listen to.
    changed: event_listener::Event,
}

#[derive(Debug, Default)]
struct OwnWrites {
    keys: HashMap<String, OwnKey>,
    /// The number of the last own write begun.
    last: u64,
    /// How many keys may be remembered before finished ones older than [`LINGER`] are dropped.
    prune_at: usize,
}

#[derive(Debug, Default)]
struct OwnKey {
    /// The own writes of the key under way, with the value each writes.
    writing: Vec<(u64, StoredValue)>,
    /// When the last one finished (once none is under way).
    finished: Option<Instant>,
}

impl OwnKey {
    /// Under way, or finished within [`LINGER`] (a write's report may come after it is over;
    /// each of several writes in a row has one).
    fn is_recent(&self) -> bool {
        !self.writing.is_empty() || self.finished.is_some_and(|finished| finished.elapsed() < LINGER)
    }
}

impl OwnWrites {
    /// Drops the keys whose last own write finished more than [`LINGER`] ago, once there are
    /// many (their reports are long gone, or will be taken as another's change: safe).
    fn prune(&mut self) {
        if self.keys.len() <= self.prune_at.max(1024) {
            return;
        }
        self.keys.retain(|_, key| key.is_recent());
        self.prune_at = 2 * self.keys.len();
    }
}

fn hash(key: &str) -> u64 {
    FixedState::default().hash_one(key)
}

impl ChangeLog {
    /// The number to compare with later ([`changed_since`](Self::changed_since)).
    pub(crate) fn now(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }

    pub(crate) fn record_keys<K: AsRef<str>>(&self, keys: &[K]) {
        let mut recent = self.recent.lock();
        for key in keys {
            self.push(&mut recent, Some(hash(key.as_ref())), NOBODY);
        }
    }

    pub(crate) fn record_all(&self) {
        let mut recent = self.recent.lock();
        self.push(&mut recent, None, NOBODY);
    }

    fn push(&self, recent: &mut VecDeque<(u64, Option<u64>, u64)>, key: Option<u64>, writer: u64) {
        let number = self.last.load(Ordering::Relaxed) + 1;
        if recent.len() == REMEMBERED {
            recent.pop_front();
        }
        recent.push_back((number, key, writer));
        self.last.store(number, Ordering::Release);
        self.changed.notify(usize::MAX);
    }

    /// A listener notified at the next change recorded (listen, then look, then wait).
    pub(crate) fn listen(&self) -> event_listener::EventListener {
        self.changed.listen()
    }

    /// An own write of `items` is about to go to the layers: remembered until
    /// [`end_own_write`](Self::end_own_write), and its number and starting point returned (taken
    /// under one lock with the registration, so a change checked before it is older than it).
    pub(crate) fn begin_own_write<'a>(&self, items: impl IntoIterator<Item = (&'a str, &'a StoredValue)>) -> OwnWrite {
        let mut own = self.own.lock();
        own.last += 1;
        let writer = own.last;
        for (key, value) in items {
            let entry = own.keys.entry(key.to_owned()).or_default();
            entry.writing.push((writer, value.clone()));
        }
        own.prune();
        OwnWrite { writer, since: self.now() }
    }

    /// The own write `writer` of `keys` is over (written, skipped or failed).
    pub(crate) fn end_own_write<'a>(&self, writer: u64, keys: impl IntoIterator<Item = &'a str>) {
        let mut own = self.own.lock();
        let now = Instant::now();
        for key in keys {
            if let Some(entry) = own.keys.get_mut(key) {
                entry.writing.retain(|(number, _)| *number != writer);
                if entry.writing.is_empty() {
                    entry.finished = Some(now);
                }
            }
        }
    }

    /// Whether this process wrote `key` itself, under way or within [`LINGER`]: then a report
    /// of its change is worth checking with [`record_checked`](Self::record_checked).
    pub(crate) fn written_here(&self, key: &str) -> bool {
        self.own.lock().keys.get(key).is_some_and(OwnKey::is_recent)
    }

    /// Records a reported change of `key`, whose value in the shared layer, read after the
    /// report, is `current` (`None`: absent, or the read failed). When exactly one own write of
    /// the key is under way and it wrote `current`, the change is recorded as that write's (see
    /// the module docs); else as anyone's.
    pub(crate) fn record_checked(&self, key: &str, current: Option<&[u8]>) {
        let own = self.own.lock();
        let mut writer = NOBODY;
        if let Some(entry) = own.keys.get(key) {
            if let [(number, value)] = entry.writing.as_slice()
                && current.is_some_and(|current| value.json().is_ok_and(|json| json == current))
            {
                writer = *number;
            }
        }
        let mut recent = self.recent.lock();
        self.push(&mut recent, Some(hash(key)), writer);
    }

    /// Whether some watch cannot see changes now, so local copies could go stale unnoticed.
    pub(crate) fn is_blind(&self) -> bool {
        self.blind.load(Ordering::Acquire) > 0
    }

    /// Whether `key` (or everything) changed after change number `since`, by anyone but the
    /// own write `writer` ([`NOBODY`], 0, for an operation that is not one).
    pub(crate) fn changed_since(&self, since: u64, key: &str, writer: u64) -> bool {
        if self.last.load(Ordering::Acquire) == since {
            return false;
        }
        let recent = self.recent.lock();
        if recent.front().is_none_or(|(oldest, ..)| *oldest > since + 1) {
            return true; // forgotten: assume the worst
        }
        let key = hash(key);
        recent
            .iter()
            .rev()
            .take_while(|(number, ..)| *number > since)
            .any(|(_, changed, by)| (writer == NOBODY || *by != writer) && changed.is_none_or(|h| h == key))
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
        assert!(!log.changed_since(start, "a", NOBODY));
        log.record_keys(&["a".to_owned()]);
        assert!(log.changed_since(start, "a", NOBODY));
        assert!(!log.changed_since(start, "b", NOBODY));
        let later = log.now();
        assert!(!log.changed_since(later, "a", NOBODY));
        log.record_all();
        assert!(log.changed_since(later, "b", NOBODY));
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
        assert!(log.changed_since(start, "never written", NOBODY));
        assert!(!log.changed_since(log.now(), "k1", NOBODY));
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
        /// Whether the report of this process's own write has gone out.
        own_reported: AtomicBool,
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
            if self.log.changed_since(since, KEY, NOBODY) {
                return;
            }
            *self.local.lock() = Some(Copy { value, brief: false });
            if self.log.changed_since(since, KEY, NOBODY) {
                *self.local.lock() = None;
            }
        }

        /// Another process writes `KEY` and the watch reports it: the sink records, then evicts.
        fn change_seen(&self, value: u64) {
            *self.shared.lock() = value;
            self.log.record_keys(&[KEY.to_owned()]);
            *self.local.lock() = None;
        }

        /// This process writes `KEY` as a `set` does (registered as an own write, the shared
        /// layer first, then the local one, guarded), and its report goes out.
        fn own_write(&self, value: u64) {
            let stored = StoredValue::new(value);
            let own = self.log.begin_own_write([(KEY, &stored)]);
            *self.shared.lock() = value;
            self.own_reported.store(true, Ordering::Release);
            if !self.log.changed_since(own.since, KEY, own.writer) {
                *self.local.lock() = Some(Copy { value, brief: false });
                if self.log.changed_since(own.since, KEY, own.writer) {
                    *self.local.lock() = None;
                }
            }
            self.log.end_own_write(own.writer, [KEY]);
        }

        /// The sink takes a report of `KEY` as `tower/coherence.rs` does: a key written here is
        /// read back, the change recorded with what was read, and the copy kept only if equal.
        fn report_seen(&self) {
            if !self.log.written_here(KEY) {
                self.log.record_keys(&[KEY]);
                *self.local.lock() = None;
                return;
            }
            let current = *self.shared.lock();
            let json = serde_json::to_vec(&current).unwrap();
            self.log.record_checked(KEY, Some(&json));
            let mut local = self.local.lock();
            if local.is_some_and(|copy| copy.value != current) {
                *local = None;
            }
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

    /// This process writes the key while another process writes it too, each write's report
    /// checked by the sink as it comes: once both are taken in, the local layer holds the
    /// shared value or nothing, whatever the order.
    #[test]
    fn an_own_write_keeps_only_a_current_copy() {
        model(|| {
            let (world, _watch) = seeing_world();
            let writer = {
                let world = Arc::clone(&world);
                thread::spawn(move || world.own_write(2))
            };
            let other = {
                let world = Arc::clone(&world);
                thread::spawn(move || {
                    *world.shared.lock() = 3;
                    world.report_seen();
                })
            };
            while !world.own_reported.load(Ordering::Acquire) {
                thread::yield_now();
            }
            world.report_seen();
            writer.join().unwrap();
            other.join().unwrap();
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
