//! The memory layer's tags: marks that make a tag's entries misses at once, and an index from a
//! tag to the keys of the entries carrying it, so that `invalidate_tag` then removes those
//! entries (reclaims them) without walking the whole layer.
//!
//! * **Marks.** Every tagged value carries a stamp, the process-wide count of invalidations when
//!   it got its tags (`value::tag_clock`). `invalidate_tag` counts one more invalidation and marks
//!   the tag with its number; from then on, a read of a value that carries the tag and was
//!   stamped before is a miss ([`TagIndex::is_current`]): all the tag's entries miss in one map
//!   insert, however many there are. An untagged value is current without a look, and a tagged
//!   one stamped after the layer's latest mark too (one atomic load); only older tagged values
//!   look the marks up. A mark is forgotten once no key is noted under its tag any more (the
//!   entries it hid were reclaimed), when the marks outnumber the index's tags by [`SLACK`].
//! * **Reclaiming.** The keys noted under an invalidated tag move to a queue; the layer removes
//!   the entries that are no longer current a batch at a time after each write (and all of them
//!   on `len`, `keys` and `purge_expired`), as it reclaims expired entries: so an invalidation
//!   costs one mark and a move of the key list, whatever the tag covers, and no thread of its
//!   own is needed.
//!
//! * A write of a tagged value adds its key under each of its tags; an untagged write does not
//!   touch the index (one check of an empty list).
//! * Entries leave the layer without the index hearing of it (evictions, expiry, deletes,
//!   overwrites by untagged values): the index may name keys that no longer carry the tag.
//!   `invalidate_tag` checks each key before removing it, and the index is pruned (every name
//!   checked against the layer) when it holds more than twice as many names as the layer holds
//!   entries, plus [`SLACK`]: so it stays within a constant factor of the layer's size, at an
//!   amortised constant cost per tagged write.
//! * Lock order: the index's lock, then a shard's (pruning and invalidating hold the index's
//!   lock while they look into shards); never the other way round.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use foldhash::fast::RandomState;
use parking_lot::{Mutex, RwLock};

use crate::value::{StoredValue, TagSet, tag_clock};

/// Names the index may hold beyond twice the layer's entries before it is pruned.
const SLACK: usize = 1024;

/// See the module docs.
#[derive(Default)]
pub(super) struct TagIndex {
    inner: Mutex<Names>,
    /// Tag → the number of its latest invalidation in this layer.
    marks: RwLock<HashMap<Box<str>, u64, RandomState>>,
    /// The highest number in `marks` (0: none yet).
    latest: AtomicU64,
    /// One past the highest mark forgotten (0: none): a tagged value stamped below it may
    /// predate a mark no longer known, so it is not written any more.
    forgotten_upto: AtomicU64,
    /// Keys whose entries may be invalidated and still held: reclaimed a batch at a time.
    reclaim: Mutex<Vec<Box<str>>>,
    /// How many keys `reclaim` holds (read without its lock after every write).
    to_reclaim: AtomicUsize,
}

#[derive(Default)]
struct Names {
    keys_of: HashMap<Box<str>, HashSet<Box<str>, RandomState>, RandomState>,
    /// The number of (tag, key) names held.
    count: usize,
    /// `count` after the last pruning.
    after_pruning: usize,
}

impl TagIndex {
    /// Notes that `key` is about to hold a value carrying `tags` (before the value is stored, so
    /// that an invalidation from then on queues the key). When the index has outgrown both a
    /// layer of `entries` entries and twice its size after its last pruning, it is pruned first:
    /// `carries(key, tag)` says whether the layer's entry of `key` still carries `tag`. So a
    /// pruning walks the index at most once per doubling: an amortised constant per write,
    /// however many tags an entry has.
    pub(super) fn add(&self, key: &str, tags: &[Box<str>], entries: usize, carries: impl Fn(&str, &str) -> bool) {
        let mut names = self.inner.lock();
        let bound = entries.max(names.after_pruning).saturating_mul(2).saturating_add(SLACK);
        if names.count > bound {
            names.prune(carries);
        }
        for tag in tags {
            // No allocation for a name already noted.
            let added = match names.keys_of.get_mut(&**tag) {
                Some(keys) if keys.contains(key) => false,
                Some(keys) => keys.insert(key.into()),
                None => {
                    names.keys_of.insert(tag.clone(), HashSet::from_iter([key.into()]));
                    true
                }
            };
            if added {
                names.count += 1;
            }
        }
    }

    /// Whether a value stamped `stamp` may still be written: not when a mark it could predate
    /// was forgotten (a value that old is refused rather than risked).
    #[inline]
    pub(super) fn may_write(&self, stamp: u64) -> bool {
        stamp >= self.forgotten_upto.load(Ordering::Acquire)
    }

    /// Whether `value` is current here: untagged, or none of its tags was invalidated in this
    /// layer after it got them.
    #[inline]
    pub(super) fn is_current(&self, value: &StoredValue) -> bool {
        match value.tag_set() {
            None => true,
            Some(tags) => tags.stamp() >= self.latest.load(Ordering::Acquire) || self.unmarked(tags),
        }
    }

    /// Whether no tag of `tags` was marked after they were given.
    #[cold]
    fn unmarked(&self, tags: &TagSet) -> bool {
        let marks = self.marks.read();
        tags.names().iter().all(|tag| marks.get(tag).is_none_or(|&mark| mark <= tags.stamp()))
    }

    /// Invalidates `tag`: marks it, so that every value carrying it misses from now on, and
    /// queues the keys noted under it for reclaiming ([`take_to_reclaim`](Self::take_to_reclaim)).
    pub(super) fn invalidate(&self, tag: &str) {
        let mut names = self.inner.lock();
        let number = tag_clock::advance();
        let mut marks = self.marks.write();
        marks.insert(tag.into(), number);
        self.latest.fetch_max(number, Ordering::AcqRel);
        let keys = names.keys_of.remove(tag).unwrap_or_default();
        names.count -= keys.len();
        // A mark is needed while an entry it hides may be held: its tag still has keys noted,
        // or keys wait to be (or are being) reclaimed. So older marks are forgotten only with
        // nothing to reclaim, never the one just made; a value stamped before a forgotten mark
        // is refused by later writes (`may_write`).
        if marks.len() > names.keys_of.len().saturating_add(SLACK) && !self.has_to_reclaim() {
            let mut forgotten = 0;
            marks.retain(|marked, &mut mark| {
                let keep = mark == number || names.keys_of.contains_key(marked);
                if !keep {
                    forgotten = forgotten.max(mark);
                }
                keep
            });
            self.forgotten_upto.fetch_max(forgotten.saturating_add(1), Ordering::AcqRel);
        }
        if !keys.is_empty() {
            self.to_reclaim.fetch_add(keys.len(), Ordering::AcqRel);
            self.reclaim.lock().extend(keys);
        }
    }

    /// Whether keys wait to be reclaimed.
    #[inline]
    pub(super) fn has_to_reclaim(&self) -> bool {
        self.to_reclaim.load(Ordering::Acquire) > 0
    }

    /// Takes out up to `most` keys to reclaim: the layer removes their entries that are no
    /// longer current, then calls [`reclaimed`](Self::reclaimed) with their number.
    pub(super) fn take_to_reclaim(&self, most: usize) -> Vec<Box<str>> {
        let mut queue = self.reclaim.lock();
        let keep = queue.len().saturating_sub(most);
        queue.split_off(keep)
    }

    /// `count` keys taken out were reclaimed.
    pub(super) fn reclaimed(&self, count: usize) {
        let _ =
            self.to_reclaim.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| Some(left.saturating_sub(count)));
    }

    /// Forgets every name (the layer was emptied). The marks stay: a write racing the emptying
    /// may still hold a value tagged before one.
    pub(super) fn clear(&self) {
        let mut names = self.inner.lock();
        names.keys_of.clear();
        names.count = 0;
        let mut queue = self.reclaim.lock();
        self.reclaimed(queue.len());
        queue.clear();
    }

    /// How many marks are kept.
    #[cfg(test)]
    pub(super) fn marks(&self) -> usize {
        self.marks.read().len()
    }

    /// How many (tag, key) names the index holds.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.inner.lock().count
    }
}

impl Names {
    /// Drops every name whose key no longer carries its tag.
    fn prune(&mut self, carries: impl Fn(&str, &str) -> bool) {
        self.keys_of.retain(|tag, keys| {
            keys.retain(|key| carries(key, tag));
            !keys.is_empty()
        });
        self.count = self.keys_of.values().map(HashSet::len).sum();
        self.after_pruning = self.count;
    }
}
