//! The memory layer's index from a tag to the keys of the entries carrying it, so that
//! `invalidate_tag` removes those entries (reclaims them) without walking the whole layer.
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

use foldhash::fast::RandomState;
use parking_lot::Mutex;

/// Names the index may hold beyond twice the layer's entries before it is pruned.
const SLACK: usize = 1024;

/// See the module docs.
#[derive(Default)]
pub(super) struct TagIndex {
    inner: Mutex<Names>,
}

#[derive(Default)]
struct Names {
    keys_of: HashMap<Box<str>, HashSet<Box<str>, RandomState>, RandomState>,
    /// The number of (tag, key) names held.
    count: usize,
}

impl TagIndex {
    /// Notes that `key` holds a value carrying `tags`. When the index has outgrown a layer of
    /// `entries` entries, it is pruned first: `carries(key, tag)` says whether the layer's entry
    /// of `key` still carries `tag`.
    pub(super) fn add(&self, key: &str, tags: &[Box<str>], entries: usize, carries: impl Fn(&str, &str) -> bool) {
        let mut names = self.inner.lock();
        if names.count > entries.saturating_mul(2).saturating_add(SLACK) {
            names.prune(carries);
        }
        for tag in tags {
            let keys = names.keys_of.entry(tag.clone()).or_default();
            if keys.insert(key.into()) {
                names.count += 1;
            }
        }
    }

    /// Takes out the keys noted under `tag` (some may no longer carry it) and hands them to
    /// `remove`, under the index's lock: a second invalidation of the tag (the listener hearing
    /// of this one, say) waits until the first is done, rather than finding nothing to do and
    /// returning while entries are still being removed.
    pub(super) fn invalidate(&self, tag: &str, remove: impl FnOnce(&HashSet<Box<str>, RandomState>)) {
        let mut names = self.inner.lock();
        let keys = names.keys_of.remove(tag).unwrap_or_default();
        names.count -= keys.len();
        remove(&keys);
        // Freed after the lock is released.
        drop(names);
        drop(keys);
    }

    /// Forgets every name (the layer was emptied).
    pub(super) fn clear(&self) {
        let mut names = self.inner.lock();
        names.keys_of.clear();
        names.count = 0;
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
    }
}
