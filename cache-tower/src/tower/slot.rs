//! One position in a tower's stack, and the bookkeeping the sync and async paths share: the
//! circuit breaker around every call, the counting of hits and misses, what to backfill.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::adapter::CacheAdapter;
use crate::adapter::memory::{Lookup, MemoryAdapter};
use crate::adapter::sealed::Token;
use crate::breaker::{Breaker, COOL_DOWN, FAILURES_TO_OPEN};
use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Fault, Result};
use crate::stats::{LayerCounters, LayerStats};
use crate::value::{Cacheable, Entry, StoredValue};

/// A layer of the stack: its adapter, the tower's counters for it and its circuit breaker.
#[derive(Clone)]
pub(crate) struct LayerSlot {
    pub(super) adapter: Arc<dyn CacheAdapter>,
    /// The adapter again when it is a [`MemoryAdapter`], for the top layer's typed fast lane.
    memory: Option<MemoryAdapter>,
    pub(super) counters: Arc<LayerCounters>,
    breaker: Arc<Breaker>,
    /// A process-local layer above a watched shared layer: writes into it are guarded (see
    /// `coherence.rs`).
    pub(super) guarded: bool,
}

impl LayerSlot {
    pub(super) fn new(adapter: Arc<dyn CacheAdapter>) -> Self {
        let memory = adapter.as_memory(Token(())).cloned();
        Self { adapter, memory, counters: Arc::default(), breaker: Arc::default(), guarded: false }
    }

    pub(super) fn snapshot(&self, index: usize) -> LayerStats {
        self.counters.snapshot(index, self.adapter.kind(), self.adapter.stats(), self.breaker.is_open())
    }

    /// `Ok` when the layer may be called now; an error when its breaker is open.
    #[inline]
    pub(super) fn admit(&self, index: usize) -> Result<()> {
        if self.breaker.admit() { Ok(()) } else { Err(self.skip(index)) }
    }

    #[cold]
    fn skip(&self, index: usize) -> Error {
        self.counters.skipped();
        Error::layer_fault(
            Fault::Skipped,
            format!(
                "layer skipped: it failed {FAILURES_TO_OPEN} times in a row and is retried every {}s",
                COOL_DOWN.as_secs()
            ),
        )
        .at_layer(index)
    }

    /// Makes one blocking call to the layer through its breaker: skipped (an `Err`) while the
    /// breaker is open, and its outcome recorded. The async paths' twin is `guarded`.
    #[inline]
    pub(super) fn call<R>(&self, index: usize, operation: &str, call: impl FnOnce() -> Result<R>) -> Result<R> {
        self.admit(index)?;
        self.settle(index, operation, call())
    }

    /// Records the outcome of a call in the breaker and, for a failure, the counters and the log.
    #[inline]
    pub(super) fn settle<R>(&self, index: usize, operation: &str, result: Result<R>) -> Result<R> {
        match result {
            Ok(value) => {
                self.breaker.success();
                Ok(value)
            }
            Err(err) => Err(self.fail(index, operation, err)),
        }
    }

    #[cold]
    fn fail(&self, index: usize, operation: &str, err: Error) -> Error {
        self.breaker.failure();
        self.counters.error();
        let now_secs = Clock::system().now_nanos() / 1_000_000_000;
        if self.counters.may_warn(now_secs) {
            tracing::warn!(layer = index, kind = self.adapter.kind(), operation, error = %err,
                "cache layer failed; reads treat it as a miss (further warnings for this layer are held for 1s)");
        }
        err.at_layer(index)
    }

    /// Starts the fast lane of a read from the top layer: this layer's memory adapter, locked for
    /// a plain lookup of `key` ([`MemoryAdapter::lock_for_lookup`]). `None` when the layer is
    /// not a memory layer or the lookup needs more (LRU, something expired): the caller then
    /// reads the normal way, which handles every case.
    #[inline(always)]
    pub(crate) fn lookup<'a>(&'a self, key: &'a str) -> Option<TopLookup<'a>> {
        let lookup = self.memory.as_ref()?.lock_for_lookup(key)?;
        Some(TopLookup { lookup, counters: &self.counters })
    }

    /// Reads `key` from this layer as the top of the stack: no TTL needed (nothing is backfilled
    /// above it). A typed hit in a FIFO memory layer never gets here (the fast lane answers it).
    /// An `Err` means the layer failed (counted and logged already).
    pub(super) fn read_top<T: Cacheable>(&self, key: &str) -> Result<Option<T>> {
        let value = self.call(0, "get", || self.adapter.get_value(key))?;
        Ok(self.classify(0, value.map(|value| value.decode::<T>())))
    }

    /// Counts a read of one key by what it found: a hit, a miss, or a value that did not decode.
    pub(super) fn classify<T>(&self, index: usize, decoded: Option<Result<T>>) -> Option<T> {
        match decoded {
            Some(Ok(value)) => {
                self.counters.hit();
                Some(value)
            }
            None => {
                self.counters.misses(1);
                None
            }
            Some(Err(err)) => {
                self.undecodable(index, &err);
                None
            }
        }
    }

    #[cold]
    fn undecodable(&self, index: usize, err: &Error) {
        self.counters.decode_failure();
        tracing::debug!(layer = index, kind = self.adapter.kind(), error = %err,
            "cached value did not decode; treated as a miss");
    }

    /// Makes sense of this layer's answer to a read of one key: the value, when it holds a `T`.
    /// Failures were counted by [`admit`](Self::admit) and [`settle`](Self::settle).
    pub(super) fn accept<T: Cacheable>(&self, index: usize, read: Result<Option<Entry>>) -> Option<(T, Entry)> {
        // Failures were counted by `admit` and `settle`.
        let entry = read.ok()?;
        let decoded = entry.as_ref().map(|entry| entry.value().decode::<T>());
        let value = self.classify(index, decoded)?;
        entry.map(|entry| (value, entry))
    }
}

/// The top layer's shard, locked for one key: see [`LayerSlot::lookup`] and [`return_fast_hit!`].
/// Drop it (releasing the lock) before reading the normal way.
pub(crate) struct TopLookup<'a> {
    lookup: Lookup<'a>,
    counters: &'a LayerCounters,
}

impl TopLookup<'_> {
    /// The typed `T` stored under the key, counted as a hit; `None` for a miss or a value in
    /// another form (the normal read path counts and decodes those).
    #[inline(always)]
    pub(crate) fn hit<T: Cacheable>(&self) -> Option<&T> {
        let value = self.lookup.value()?.typed::<T>()?;
        self.counters.hit();
        Some(value)
    }
}

/// The fast lane of a read (ADR 6). When `$top` (the top layer, an `Option<&LayerSlot>`) is a
/// memory layer holding a typed `$T` under `$key`, counts the hit and returns `$result` — an
/// expression of the hit `$value: &$T` that clones it — from the enclosing function, the shard's
/// read lock held until the clone is made. Otherwise it does nothing, the lock released, and the
/// enclosing function goes on with its normal read path.
///
/// A macro, not a function, because the clone must be the enclosing function's own return value:
/// only then is it written straight into the caller's result instead of moved there.
macro_rules! return_fast_hit {
    ($top:expr, $key:expr, |$value:ident: &$T:ty| $result:expr) => {{
        let top: Option<&$crate::tower::LayerSlot> = $top;
        let lookup = top.and_then(|top| top.lookup($key));
        if let Some($value) = lookup.as_ref().and_then(|lookup| lookup.hit::<$T>()) {
            return $result;
        }
    }};
}
pub(crate) use return_fast_hit;

/// The layers that failed during one call, so that the call does not wait on them a second time
/// (a `get_or_set` whose read timed out skips that layer when it stores the computed value).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Faults(u64);

impl Faults {
    pub(super) fn note(&mut self, index: usize) {
        if index < 64 {
            self.0 |= 1 << index;
        }
    }

    pub(super) fn contains(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }
}

/// A write, applied to one layer at a time by the sync or the async path.
pub(super) enum Write<'a> {
    Set(&'a str, &'a Entry),
    Mset(&'a [(&'a str, Entry)]),
    Delete(&'a str),
    Flush,
}

impl Write<'_> {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Write::Set(..) => "set",
            Write::Mset(..) => "mset",
            Write::Delete(..) => "delete",
            Write::Flush => "flush",
        }
    }

    /// How many keys it writes (for the backfill counter).
    pub(super) fn len(&self) -> u64 {
        match self {
            Write::Mset(items) => items.len() as u64,
            _ => 1,
        }
    }

    pub(super) fn run(&self, adapter: &dyn CacheAdapter) -> Result<()> {
        match self {
            Write::Set(key, entry) => adapter.set(key, entry),
            Write::Mset(items) => adapter.mset(items),
            Write::Delete(key) => adapter.delete(key),
            Write::Flush => adapter.flush(),
        }
    }

    /// The write to backfill `items` into a layer: `None` when nothing is worth copying (an
    /// entry found with no time left).
    pub(super) fn backfill<'a>(items: &'a [(&'a str, Entry)]) -> Option<Write<'a>> {
        let live = |(_, entry): &(&str, Entry)| entry.ttl().is_none_or(|ttl| !ttl.is_zero());
        match items {
            [] => None,
            [one] if live(one) => Some(Write::Set(one.0, &one.1)),
            [_] => None,
            many => Some(Write::Mset(many)),
        }
    }
}

/// The entries an `mset` writes, each value wrapped once for every layer.
pub(super) fn mset_entries<T: Cacheable, K>(items: impl IntoIterator<Item = (K, T)>) -> Vec<(K, Entry)> {
    items.into_iter().map(|(key, value)| (key, Entry::new(StoredValue::new(value), None))).collect()
}

/// The same entries keyed by `&str`, as [`Write::Mset`] takes them.
pub(super) fn borrow_keys<K: AsRef<str>>(owned: &[(K, Entry)]) -> Vec<(&str, Entry)> {
    owned.iter().map(|(key, entry)| (key.as_ref(), entry.clone())).collect()
}

/// The entry to backfill with, once its value has been decoded as `T`: upper layers get the
/// typed value (so an in-process layer never parses it again) and, when known, its JSON.
pub(super) fn backfill_entry<T: Cacheable>(value: &T, found: Entry) -> Entry {
    let (stored, ttl) = found.into_parts();
    if stored.is::<T>() {
        return Entry::new(stored, ttl);
    }
    let stored = match stored.json() {
        Ok(json) => StoredValue::with_json(value.clone(), json),
        Err(_) => StoredValue::new(value.clone()),
    };
    Entry::new(stored, ttl)
}

/// The state of an `mget` as it goes down the stack: which keys are still missing, which were
/// found, and where (to backfill each only above its own layer).
pub(super) struct Mget<'k, T> {
    pending: Vec<&'k str>,
    values: HashMap<String, Option<T>>,
    /// (layer index where found, key, entry to backfill above it)
    found: Vec<(usize, &'k str, Entry)>,
}

impl<'k, T: Cacheable> Mget<'k, T> {
    pub(super) fn new<K: AsRef<str>>(keys: &'k [K]) -> Self {
        let mut seen = HashSet::with_capacity_and_hasher(keys.len(), foldhash::fast::RandomState::default());
        let pending: Vec<&str> = keys.iter().map(AsRef::as_ref).filter(|key| seen.insert(*key)).collect();
        Self { values: HashMap::with_capacity(pending.len()), pending, found: Vec::new() }
    }

    /// The keys no layer has answered yet.
    pub(super) fn pending(&self) -> &[&'k str] {
        &self.pending
    }

    /// Takes in one layer's answer for the pending keys.
    pub(super) fn absorb(&mut self, index: usize, layer: &LayerSlot, read: Result<Vec<Option<Entry>>>) {
        let entries = match read {
            Ok(entries) if entries.len() == self.pending.len() => entries,
            Ok(entries) => {
                let err = Error::new(
                    ErrorKind::Layer,
                    format!("mget returned {} results for {} keys", entries.len(), self.pending.len()),
                );
                let _ = layer.settle::<()>(index, "mget", Err(err));
                return;
            }
            Err(_) => return,
        };
        let mut still_missing = Vec::new();
        for (key, entry) in self.pending.iter().copied().zip(entries) {
            match layer.accept::<T>(index, Ok(entry)) {
                Some((value, entry)) => {
                    if index > 0 {
                        self.found.push((index, key, backfill_entry(&value, entry)));
                    }
                    self.values.insert(key.to_owned(), Some(value));
                }
                None => still_missing.push(key),
            }
        }
        self.pending = still_missing;
    }

    /// What layer `index` must be backfilled with: every key found below it.
    pub(super) fn backfill_for(&self, index: usize) -> Vec<(&'k str, Entry)> {
        self.found.iter().filter(|(at, ..)| *at > index).map(|(_, key, entry)| (*key, entry.clone())).collect()
    }

    /// The deepest layer any key was found in (0 when none was found below the top).
    pub(super) fn deepest_hit(&self) -> usize {
        self.found.iter().map(|(at, ..)| *at).max().unwrap_or(0)
    }

    /// Every requested key, `None` for those no layer had.
    pub(super) fn into_values(mut self) -> HashMap<String, Option<T>> {
        for key in self.pending {
            self.values.insert(key.to_owned(), None);
        }
        self.values
    }
}
