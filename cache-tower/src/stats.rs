//! Per-layer counters: hits, misses, backfills, errors, decode failures.
//!
//! Every read touches these, from many threads at once, so a single shared atomic per counter
//! would make the cores fight over one cache line. Each counter is striped instead: a thread adds
//! to its own stripe, and a snapshot sums the stripes.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::adapter::AdapterStats;

/// A snapshot of one layer's counters, from [`CacheTower::stats`](crate::CacheTower::stats).
///
/// `hits`, `misses`, `backfills`, `errors` and `decode_failures` are counted by the tower, per
/// position in the stack; `evictions`, `expirations`, `replacements`, `invalidations` and
/// `removals` come from the adapter itself (shared by every tower the adapter sits in; see
/// [`RemovalCause`](crate::adapter::RemovalCause)).
///
/// ```
/// use cache_tower::{CacheTower, MemoryAdapter};
///
/// let tower = CacheTower::new();
/// tower.add_layer(MemoryAdapter::new());
/// tower.add_layer(MemoryAdapter::new());
/// tower.get_layers()[1].set("k", &cache_tower::adapter::Entry::new(cache_tower::adapter::StoredValue::new(1), None))?;
/// assert_eq!(tower.get::<i32>("k"), Some(1));
/// let stats = tower.stats();
/// assert_eq!((stats[0].misses, stats[0].backfills), (1, 1));
/// assert_eq!(stats[1].hits, 1);
/// # Ok::<(), cache_tower::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerStats {
    /// Position of the layer in the stack (0 = top).
    pub layer: usize,
    /// The adapter's kind, such as `"memory"`.
    pub kind: &'static str,
    /// Reads this layer answered.
    pub hits: u64,
    /// Reads this layer could not answer (absent or expired).
    pub misses: u64,
    /// Entries written into this layer because a layer below it answered a read.
    pub backfills: u64,
    /// Operations that failed in this layer (I/O, timeouts, encode failures).
    pub errors: u64,
    /// Operations not sent to this layer because its circuit breaker was open (it had failed
    /// repeatedly); a skipped read is a miss, a skipped write an error returned to the caller.
    pub skipped: u64,
    /// Values present in this layer that did not decode as the requested type (counted as misses
    /// too).
    pub decode_failures: u64,
    /// Stale values from this layer that get-or-set returned because the computation failed
    /// (its fail-safe, [`LoadOptions::fail_safe`](crate::LoadOptions::fail_safe)).
    pub stale_served: u64,
    /// Entries evicted to make room, as the adapter reports.
    pub evictions: u64,
    /// Entries that expired, as the adapter reports.
    pub expirations: u64,
    /// Values a write replaced, as the adapter reports.
    pub replacements: u64,
    /// Entries removed because the value changed in a layer below, as the adapter reports.
    pub invalidations: u64,
    /// Entries removed on request (`delete`, `flush`), as the adapter reports.
    pub removals: u64,
    /// Whether the layer's circuit breaker is open right now (the layer is being skipped).
    pub circuit_open: bool,
}

const STRIPES: usize = 16;

/// The counters of one stripe, padded to their own cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    hits: AtomicU64,
    misses: AtomicU64,
    backfills: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
    decode_failures: AtomicU64,
    stale_served: AtomicU64,
}

/// The tower's counters for one layer.
#[derive(Debug)]
pub(crate) struct LayerCounters {
    stripes: Box<[Stripe; STRIPES]>,
    /// Seconds (on the process clock) of the last fault warning logged, for rate limiting.
    last_warning: AtomicU64,
}

impl Default for LayerCounters {
    fn default() -> Self {
        Self { stripes: Box::new(std::array::from_fn(|_| Stripe::default())), last_warning: AtomicU64::new(u64::MAX) }
    }
}

/// The stripe the calling thread adds to: threads take stripes round robin on first use.
#[inline]
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        let mut i = index.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
            index.set(i);
        }
        i
    })
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl LayerCounters {
    fn stripe(&self) -> &Stripe {
        &self.stripes[stripe_index()]
    }

    #[inline]
    pub(crate) fn hit(&self) {
        bump(&self.stripe().hits, 1);
    }

    pub(crate) fn misses(&self, n: u64) {
        bump(&self.stripe().misses, n);
    }

    pub(crate) fn backfills(&self, n: u64) {
        bump(&self.stripe().backfills, n);
    }

    pub(crate) fn error(&self) {
        bump(&self.stripe().errors, 1);
    }

    pub(crate) fn skipped(&self) {
        bump(&self.stripe().skipped, 1);
    }

    pub(crate) fn stale_served(&self) {
        bump(&self.stripe().stale_served, 1);
    }

    pub(crate) fn decode_failure(&self) {
        let stripe = self.stripe();
        bump(&stripe.decode_failures, 1);
        bump(&stripe.misses, 1);
    }

    /// Whether a fault warning may be logged now: at most one per layer per second, so a dead
    /// server does not flood the logs.
    pub(crate) fn may_warn(&self, now_secs: u64) -> bool {
        let last = self.last_warning.load(Ordering::Relaxed);
        (last == u64::MAX || now_secs > last)
            && self.last_warning.compare_exchange(last, now_secs, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    pub(crate) fn snapshot(
        &self,
        layer: usize,
        kind: &'static str,
        adapter: AdapterStats,
        circuit_open: bool,
    ) -> LayerStats {
        let sum = |field: fn(&Stripe) -> &AtomicU64| -> u64 {
            self.stripes.iter().map(|s| field(s).load(Ordering::Relaxed)).sum()
        };
        LayerStats {
            layer,
            kind,
            hits: sum(|s| &s.hits),
            misses: sum(|s| &s.misses),
            backfills: sum(|s| &s.backfills),
            errors: sum(|s| &s.errors),
            skipped: sum(|s| &s.skipped),
            decode_failures: sum(|s| &s.decode_failures),
            stale_served: sum(|s| &s.stale_served),
            evictions: adapter.evictions,
            expirations: adapter.expirations,
            replacements: adapter.replacements,
            invalidations: adapter.invalidations,
            removals: adapter.removals,
            circuit_open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let counters = LayerCounters::default();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        counters.hit();
                    }
                    counters.misses(2);
                    counters.decode_failure();
                });
            }
        });
        let stats = counters.snapshot(0, "memory", AdapterStats::default(), false);
        assert_eq!(stats.hits, 8000);
        assert_eq!(stats.misses, 8 * 3);
        assert_eq!(stats.decode_failures, 8);
    }

    #[test]
    fn warnings_are_rate_limited_per_second() {
        let counters = LayerCounters::default();
        assert!(counters.may_warn(10));
        assert!(!counters.may_warn(10));
        assert!(counters.may_warn(11));
    }
}
