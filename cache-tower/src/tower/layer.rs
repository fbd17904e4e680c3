//! [`Layer`]: one position in a tower's stack — its adapter, the tower's counters for it and its
//! circuit breaker — and the verbs every call to it goes through, whichever driver makes it.

use std::sync::Arc;

use crate::adapter::CacheAdapter;
use crate::adapter::memory::MemoryAdapter;
use crate::adapter::sealed::Token;
use crate::breaker::{Breaker, COOL_DOWN, FAILURES_TO_OPEN};
use crate::clock::Clock;
use crate::error::{Error, Fault, Result};
use crate::stats::{LayerCounters, LayerStats};
use crate::value::{Cacheable, Entry};

/// A layer of the stack.
#[derive(Clone)]
pub(crate) struct Layer {
    pub(super) adapter: Arc<dyn CacheAdapter>,
    /// The adapter again when it is a [`MemoryAdapter`], for the top layer's fast lane.
    pub(super) memory: Option<MemoryAdapter>,
    pub(super) counters: Arc<LayerCounters>,
    breaker: Arc<Breaker>,
    /// A process-local layer above a shared layer whose changes the tower watches: writes into
    /// it are checked against the change log (`coherence.rs`), so that a value another process
    /// has replaced never lands in it.
    pub(super) follows_changes: bool,
}

impl Layer {
    pub(super) fn new(adapter: Arc<dyn CacheAdapter>) -> Self {
        let memory = adapter.as_memory(Token(())).cloned();
        Self { adapter, memory, counters: Arc::default(), breaker: Arc::default(), follows_changes: false }
    }

    pub(super) fn snapshot(&self, index: usize) -> LayerStats {
        self.counters.snapshot(index, self.adapter.kind(), self.adapter.stats(), self.breaker.is_open())
    }

    /// `Ok` when the layer may be called now; a [`Fault::Skipped`] error while its breaker is
    /// open. Each driver calls this before a call, and [`record`](Self::record) after it.
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
                "layer skipped: it failed {FAILURES_TO_OPEN} times in a row, and is tried again once {} has passed",
                match COOL_DOWN.as_secs() {
                    1 => "a second".to_owned(),
                    seconds => format!("{seconds} seconds"),
                }
            ),
        )
        .at_layer(index)
    }

    /// Records the outcome of a call in the breaker and, for a failure, in the counters and the
    /// log (rate-limited).
    #[inline]
    pub(super) fn record<R>(&self, index: usize, operation: &str, result: Result<R>) -> Result<R> {
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
            tracing::warn!(layer = index, kind = self.adapter.kind(), operation, error = %err.report(),
                "cache layer failed; reads treat it as a miss (further warnings for this layer are held for 1s)");
        }
        err.at_layer(index)
    }

    /// Counts a read of one key by what it found (a hit, a miss, or a value that did not decode
    /// as `T`) and returns the value of a hit, with the entry it came in.
    pub(super) fn count_read<T: Cacheable>(&self, index: usize, entry: Option<Entry>) -> Option<(T, Entry)> {
        let Some(entry) = entry else {
            self.counters.misses(1);
            return None;
        };
        match entry.value().decode::<T>() {
            Ok(value) => {
                self.counters.hit();
                Some((value, entry))
            }
            Err(err) => {
                self.undecodable(index, &err);
                None
            }
        }
    }

    #[cold]
    fn undecodable(&self, index: usize, err: &Error) {
        self.counters.decode_failure();
        tracing::debug!(layer = index, kind = self.adapter.kind(), error = %err.report(),
            "cached value did not decode; treated as a miss");
    }
}
