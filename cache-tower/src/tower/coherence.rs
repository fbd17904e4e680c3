//! Keeping process-local layers coherent with the shared layers below them.
//!
//! When a tower has process-local layers (memory) above a layer that can report changes
//! (Redis, through client tracking), the tower watches that layer: each change evicts the key
//! from the local layers above, and each write into those local layers is guarded by the
//! [`ChangeLog`] so that an old value read just before a change cannot slip in after it (the
//! write plan, `plan/write.rs`, does the checking: see `WriteLayers`).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::layer::Layer;
use crate::adapter::{CacheAdapter, Change, ChangeSink, ChangeWatch, RemovalCause, sealed::Token};
use crate::change_log::{ChangeLog, WatchBlindness};

/// The longest a local copy is kept while a watch cannot see changes (see [`Change::Lost`]).
pub(crate) const BLIND_TTL: Duration = Duration::from_secs(1);

/// A tower's change log and the watches feeding it.
#[derive(Default)]
pub(crate) struct Coherence {
    pub(super) log: Arc<ChangeLog>,
    watches: Mutex<Vec<ChangeWatch>>,
}

impl Coherence {
    /// Watches every layer of a new stack that has process-local layers above it and can report
    /// changes, and marks those local layers as following changes. The previous stack's watches
    /// stop.
    pub(super) fn rewatch(&self, stack: &mut [Layer]) {
        for layer in stack.iter_mut() {
            layer.follows_changes = false;
        }
        let mut watches = Vec::new();
        for below in 1..stack.len() {
            if stack[below].adapter.is_process_local() {
                continue;
            }
            let locals: Vec<Arc<dyn CacheAdapter>> = stack[..below]
                .iter()
                .filter(|layer| layer.adapter.is_process_local())
                .map(|layer| Arc::clone(&layer.adapter))
                .collect();
            if locals.is_empty() {
                continue;
            }
            let shared = Arc::clone(&stack[below].adapter);
            if let Some(watch) = shared.watch_changes(evicting_sink(Arc::clone(&self.log), locals, Arc::clone(&shared)))
            {
                watches.push(watch);
                for layer in stack[..below].iter_mut().filter(|layer| layer.adapter.is_process_local()) {
                    layer.follows_changes = true;
                }
            }
        }
        *self.watches.lock() = watches;
    }
}

/// Records each change, then evicts it from the local layers (in that order: see [`ChangeLog`]).
/// While the watch cannot see changes ([`Change::Lost`], or before its first [`Change::All`]),
/// the log says so, and writes into the layers that follow changes keep their copies for
/// [`BLIND_TTL`] at most.
///
/// A change of a key this process wrote itself lately is checked first (`change_log.rs`): its
/// value is read from `shared` (one read for all such keys of a report), the change recorded as
/// the own write's when it wrote that value, and a memory copy kept when it equals that value.
fn evicting_sink(log: Arc<ChangeLog>, locals: Vec<Arc<dyn CacheAdapter>>, shared: Arc<dyn CacheAdapter>) -> ChangeSink {
    let sight = WatchBlindness::new(Arc::clone(&log));
    // A memory layer is told why (its listener hears `Invalidated`); another local adapter is
    // asked to delete.
    let flush = |locals: &[Arc<dyn CacheAdapter>]| {
        for local in locals {
            match local.as_memory(Token(())) {
                Some(memory) => memory.remove_all(RemovalCause::Invalidated),
                None => {
                    let _ = local.flush();
                }
            }
        }
    };
    Arc::new(move |change| match change {
        Change::Keys(keys) => {
            let (ours, theirs): (Vec<&str>, Vec<&str>) =
                keys.iter().map(String::as_str).partition(|key| log.written_here(key));
            log.record_keys(&theirs);
            for key in theirs {
                evict_unless(&locals, key, None);
            }
            if ours.is_empty() {
                return;
            }
            // A failed read leaves every value unknown: each key then counts as changed by another.
            let current = shared.mget_values(&ours).unwrap_or_else(|_| vec![None; ours.len()]);
            for (key, value) in ours.into_iter().zip(current) {
                let json = value.as_ref().and_then(|value| value.json().ok());
                log.record_checked(key, json);
                evict_unless(&locals, key, json);
            }
        }
        Change::Tags(tags) => {
            // Every key may carry one of the tags: a write under way must not put back a copy
            // read before the invalidation (as after `All`); then each local layer drops what
            // carries them (the memory layer: by its index of tags, the rest of it kept).
            log.record_all();
            for local in &locals {
                for tag in tags {
                    if local.invalidate_tag(tag).is_err() {
                        let _ = local.flush();
                    }
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
            // A memory layer with a stale window keeps its copies as stale values, for the
            // fail-safe while the shared layer is out of reach; `Change::All` drops them.
            for local in &locals {
                match local.as_memory(Token(())) {
                    Some(memory) if !memory.stale().is_zero() => memory.demote(),
                    _ => flush(std::slice::from_ref(local)),
                }
            }
        }
    })
}

/// Evicts `key` from the local layers, but from a memory layer whose copy's JSON is `current`
/// (the shared layer's value, read after the change was reported).
fn evict_unless(locals: &[Arc<dyn CacheAdapter>], key: &str, current: Option<&[u8]>) {
    for local in locals {
        match local.as_memory(Token(())) {
            Some(memory) => memory.remove_unless(key, RemovalCause::Invalidated, |copy| {
                current.is_some_and(|current| copy.json().is_ok_and(|json| json == current))
            }),
            None => {
                let _ = local.delete(key);
            }
        }
    }
}
