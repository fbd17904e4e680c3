//! Keeping process-local layers coherent with the shared layers below them.
//!
//! When a tower has process-local layers (memory) above a layer that can report changes
//! (Redis, through client tracking), the tower watches that layer: each change evicts the key
//! from the local layers above, and each write into those local layers is guarded by the
//! [`ChangeLog`] so that an old value read just before a change cannot slip in after it.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::slot::{LayerSlot, Write};
use crate::adapter::{CacheAdapter, Change, ChangeSink, ChangeWatch};
use crate::change_log::{ChangeLog, WatchBlindness};
use crate::error::Result;
use crate::value::Entry;

/// The longest a local copy is kept while a watch cannot see changes (see [`Change::Lost`]).
pub(crate) const BLIND_TTL: Duration = Duration::from_secs(1);

/// A tower's change log and the watches feeding it.
#[derive(Default)]
pub(super) struct Coherence {
    pub(super) log: Arc<ChangeLog>,
    watches: Mutex<Vec<ChangeWatch>>,
}

impl Coherence {
    /// Watches every layer of a new stack that has process-local layers above it and can report
    /// changes, and marks those local layers as guarded. The previous stack's watches stop.
    pub(super) fn rewatch(&self, stack: &mut [LayerSlot]) {
        for slot in stack.iter_mut() {
            slot.guarded = false;
        }
        let mut watches = Vec::new();
        for below in 1..stack.len() {
            if stack[below].adapter.is_process_local() {
                continue;
            }
            let locals: Vec<Arc<dyn CacheAdapter>> = stack[..below]
                .iter()
                .filter(|slot| slot.adapter.is_process_local())
                .map(|slot| Arc::clone(&slot.adapter))
                .collect();
            if locals.is_empty() {
                continue;
            }
            if let Some(watch) = stack[below].adapter.watch_changes(evicting_sink(Arc::clone(&self.log), locals)) {
                watches.push(watch);
                for slot in stack[..below].iter_mut().filter(|slot| slot.adapter.is_process_local()) {
                    slot.guarded = true;
                }
            }
        }
        *self.watches.lock() = watches;
    }
}

/// Records each change, then evicts it from the local layers (in that order: see [`ChangeLog`]).
/// While the watch cannot see changes ([`Change::Lost`], or before its first [`Change::All`]),
/// the log says so and guarded writes keep out of the local layers.
fn evicting_sink(log: Arc<ChangeLog>, locals: Vec<Arc<dyn CacheAdapter>>) -> ChangeSink {
    let sight = WatchBlindness::new(Arc::clone(&log));
    let flush = |locals: &[Arc<dyn CacheAdapter>]| {
        for local in locals {
            let _ = local.flush();
        }
    };
    Arc::new(move |change| match change {
        Change::Keys(keys) => {
            log.record_keys(keys);
            for local in &locals {
                for key in keys {
                    let _ = local.delete(key);
                }
            }
        }
        Change::All => {
            log.record_all();
            flush(&locals);
            sight.regained();
        }
        Change::Lost => {
            sight.lost();
            log.record_all();
            flush(&locals);
        }
    })
}

/// Runs `write` on a guarded local layer: keys that changed since `since` are not written, and
/// a key that changes while being written is removed again.
pub(super) fn guarded_write(log: &ChangeLog, adapter: &dyn CacheAdapter, write: &Write<'_>, since: u64) -> Result<()> {
    if log.is_blind() {
        // A copy put in now could go stale without anyone noticing: keep it only briefly, so
        // memory still shields the source during an outage but never serves anything for long.
        let brief = |entry: &Entry| {
            let ttl = entry.ttl().map_or(BLIND_TTL, |ttl| ttl.min(BLIND_TTL));
            Entry::new(entry.value().clone(), Some(ttl))
        };
        return match write {
            Write::Set(key, entry) => adapter.set(key, &brief(entry)),
            Write::Mset(items) => {
                let items: Vec<(&str, Entry)> = items.iter().map(|(key, entry)| (*key, brief(entry))).collect();
                adapter.mset(&items)
            }
            Write::Delete(_) | Write::Flush => write.run(adapter),
        };
    }
    match write {
        Write::Set(key, entry) => {
            if log.changed_since(since, key) {
                return Ok(());
            }
            adapter.set(key, entry)?;
            if log.changed_since(since, key) {
                adapter.delete(key)?;
            }
            Ok(())
        }
        Write::Mset(items) => {
            let unchanged: Vec<(&str, _)> =
                items.iter().filter(|(key, _)| !log.changed_since(since, key)).cloned().collect();
            if !unchanged.is_empty() {
                adapter.mset(&unchanged)?;
            }
            for (key, _) in &unchanged {
                if log.changed_since(since, key) {
                    adapter.delete(key)?;
                }
            }
            Ok(())
        }
        Write::Delete(_) | Write::Flush => write.run(adapter),
    }
}
