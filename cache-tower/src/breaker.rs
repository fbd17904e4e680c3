//! The circuit breaker a tower keeps for each layer.
//!
//! After [`FAILURES_TO_OPEN`] failures in a row, the layer is *open*: the tower skips it (a miss
//! for reads, an error for explicit writes) without calling it, so a dead or hung server costs
//! callers nothing instead of a timeout each. Once [`COOL_DOWN`] has passed, one call is let
//! through as a probe; if it succeeds the layer is used again, if it fails the layer stays open
//! for another cool-down. If the probe never reports (its future was dropped), another probe is
//! let through after the next cool-down, so the breaker cannot stick.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::{Clock, saturating_nanos};

/// Consecutive failures that open the breaker.
pub(crate) const FAILURES_TO_OPEN: u32 = 3;
/// How long an open breaker skips its layer before letting a probe through.
pub(crate) const COOL_DOWN: Duration = Duration::from_secs(1);

/// Closed when `open_until` is zero; otherwise open until that time (nanoseconds on the system
/// clock), after which the first caller to move `open_until` forward is the probe.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    failures: AtomicU32,
    open_until: AtomicU64,
}

impl Breaker {
    /// Whether a call may go to the layer now.
    #[inline]
    pub(crate) fn admit(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = Clock::system().now_nanos();
        now >= until
            && self
                .open_until
                .compare_exchange(
                    until,
                    now.saturating_add(saturating_nanos(COOL_DOWN)),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Records a call that worked: the breaker closes.
    #[inline]
    pub(crate) fn success(&self) {
        // Reading first keeps the healthy hot path free of writes to shared memory.
        if self.failures.load(Ordering::Relaxed) != 0 || self.open_until.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            self.open_until.store(0, Ordering::Release);
        }
    }

    /// Records a call that failed; enough of them in a row open the breaker.
    pub(crate) fn failure(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if failures >= FAILURES_TO_OPEN {
            let until = Clock::system().now_nanos().saturating_add(saturating_nanos(COOL_DOWN)).max(1);
            self.open_until.store(until, Ordering::Release);
        }
    }

    /// Whether the breaker is open (the layer is being skipped).
    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_closes_on_success() {
        let breaker = Breaker::default();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            breaker.failure();
            assert!(breaker.admit());
        }
        breaker.failure();
        assert!(breaker.is_open());
        assert!(!breaker.admit(), "open: skipped during the cool-down");
        breaker.success();
        assert!(breaker.admit());
        assert!(!breaker.is_open());
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Breaker::default();
        breaker.failure();
        breaker.failure();
        breaker.success();
        breaker.failure();
        assert!(breaker.admit());
    }

    #[test]
    fn lets_one_probe_through_after_the_cool_down() {
        let breaker = Breaker::default();
        for _ in 0..FAILURES_TO_OPEN {
            breaker.failure();
        }
        // Pretend the cool-down has passed.
        breaker.open_until.store(1, Ordering::Release);
        assert!(breaker.admit(), "the probe");
        assert!(!breaker.admit(), "only one probe per cool-down");
        breaker.failure();
        assert!(!breaker.admit(), "a failed probe keeps it open");
    }
}
