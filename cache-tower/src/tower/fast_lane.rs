//! The fast lanes (ADR 6): a typed hit in a memory top layer, cloned straight into the caller's
//! result without going through a plan, the adapter trait or a decode; and a write into a tower
//! whose one layer is a memory layer, made without building the write plan.

use super::blocking;
use super::layer::Layer;
use super::load::RefreshAhead;
use super::plan::Write;
use crate::adapter::Reply;
use crate::adapter::memory::Lookup;
use crate::error::Result;
use crate::stats::LayerCounters;
use crate::value::Cacheable;

/// A write into `stack` when it is a single memory layer: one call through the layer's breaker
/// and counters, which is all the write plan (`plan/write.rs`) would do with one layer (there is
/// no order to keep, nothing below to keep coherent with), without its bookkeeping (about 500
/// of the 3,560 instructions of an evicting `set`: ADR 6). `None` for any other stack: the plan
/// writes it. Memory layers answer inline, so the async writes take this lane too.
pub(super) fn write_alone(stack: &[Layer], write: &Write<'_>) -> Option<Result<()>> {
    let [layer] = stack else { return None };
    layer.memory.as_ref()?;
    Some(blocking::call(layer, 0, write.request()).and_then(Reply::into_done))
}

/// Whether a read that the fast lane saw miss the top layer is over: the stack is that one
/// layer, so nothing is below to read or backfill. Counts the miss, as the read plan would.
#[inline(always)]
pub(super) fn missed_alone<T: Cacheable>(stack: &[Layer], top_lacks_key: bool) -> bool {
    let [layer] = stack else { return false };
    if top_lacks_key {
        layer.count_read::<T>(0, None);
    }
    top_lacks_key
}

impl Layer {
    /// This layer's memory adapter, locked for a plain lookup of `key`
    /// ([`MemoryAdapter::lock_for_lookup`](crate::MemoryAdapter)). `None` when the layer is not a
    /// memory layer or the lookup needs more (LRU, something expired): the caller then reads the
    /// normal way, which handles every case.
    #[inline(always)]
    pub(crate) fn lookup<'a>(&'a self, key: &'a str) -> Option<TopLookup<'a>> {
        let lookup = self.memory.as_ref()?.lock_for_lookup(key)?;
        Some(TopLookup { lookup, counters: &self.counters })
    }
}

/// The top layer's shard, locked for one key: see [`Layer::lookup`] and [`return_fast_hit!`].
/// Drop it (releasing the lock) before reading the normal way.
pub(crate) struct TopLookup<'a> {
    lookup: Lookup<'a>,
    counters: &'a LayerCounters,
}

impl TopLookup<'_> {
    /// The typed `T` stored under the key, fresh, counted as a hit; `None` for a miss or a value
    /// in another form (the normal read path counts and decodes those) — and, with `refresh`,
    /// uncounted, for a copy due for an eager refresh that nobody started: the get-or-load, which
    /// the caller goes on with, starts it ([`hit_starting_refresh`](Self::hit_starting_refresh)).
    /// Reads the copy's refresh mark, writes nothing.
    #[inline(always)]
    pub(crate) fn hit_unless_refresh_due<T: Cacheable>(&self, refresh: Option<RefreshAhead>) -> Option<&T> {
        let copy = self.lookup.fresh_copy()?;
        if refresh.is_some_and(|refresh| !copy.refresh_started() && refresh.due(copy.fresh_left())) {
            return None;
        }
        let value = copy.value().typed::<T>()?;
        self.counters.hit();
        Some(value)
    }

    /// The typed hit, counted, and whether this caller is the one to start the copy's eager
    /// refresh: the copy is due (`refresh`) and no one started its refresh before.
    pub(crate) fn hit_starting_refresh<T: Cacheable>(&self, refresh: Option<RefreshAhead>) -> Option<(&T, bool)> {
        let copy = self.lookup.fresh_copy()?;
        let value = copy.value().typed::<T>()?;
        self.counters.hit();
        let start = refresh.is_some_and(|refresh| refresh.due(copy.fresh_left())) && copy.start_refresh();
        Some((value, start))
    }

    /// Whether the layer holds nothing live under the key (rather than a value in another form).
    #[inline(always)]
    pub(crate) fn lacks_key(&self) -> bool {
        self.lookup.value().is_none()
    }
}

/// When `$top` (the top layer, an `Option<&Layer>`) is a memory layer holding a typed `$T` under
/// `$key`, counts the hit and returns `$result` — an expression of the hit `$value: &$T` that
/// clones it — from the enclosing function, the shard's read lock held until the clone is made.
/// Otherwise it evaluates to whether it saw the top layer without the key (so that the normal
/// read path, which the enclosing function goes on with, need not look again), the lock released.
/// With `refresh = $refresh` (an `Option<RefreshAhead>`), a copy due for an eager refresh that
/// nobody started is no fast hit either ([`TopLookup::hit_unless_refresh_due`]).
///
/// A macro, not a function, because the clone must be the enclosing function's own return value:
/// only then is it written straight into the caller's result instead of moved there.
macro_rules! return_fast_hit {
    ($top:expr, $key:expr, |$value:ident: &$T:ty| $result:expr) => {
        $crate::tower::return_fast_hit!($top, $key, refresh = None, |$value: &$T| $result)
    };
    ($top:expr, $key:expr, refresh = $refresh:expr, |$value:ident: &$T:ty| $result:expr) => {{
        let top: Option<&$crate::tower::Layer> = $top;
        let lookup = top.and_then(|top| top.lookup($key));
        if let Some($value) = lookup.as_ref().and_then(|lookup| lookup.hit_unless_refresh_due::<$T>($refresh)) {
            return $result;
        }
        // A plain `bool`, not a `#[must_use]` call, since most callers have no use for it.
        match &lookup {
            Some(lookup) => lookup.lacks_key(),
            None => false,
        }
    }};
}
pub(crate) use return_fast_hit;
