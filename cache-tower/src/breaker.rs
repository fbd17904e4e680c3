//! The circuit breaker a tower keeps for each layer.
//!
//! After [`FAILURES_TO_OPEN`] failures in a row, the layer is *open*: the tower skips it (a miss
//! for reads, an error for explicit writes) without calling it, so a dead or hung server costs
//! callers nothing instead of a timeout each. Once [`COOL_DOWN`] has passed, one call is let
//! through as a probe; if it succeeds the layer is used again, if it fails the layer stays open
//! for another cool-down. If the probe never reports (its future was dropped), another probe is
//! let through after the next cool-down, so the breaker cannot stick.

use std::time::Duration;

use crate::clock::{Clock, saturating_nanos};
use crate::sync_shim::{AtomicU64, Ordering};

/// Consecutive failures that open the breaker.
pub(crate) const FAILURES_TO_OPEN: u32 = 3;
/// How long an open breaker skips its layer before letting a probe through.
pub(crate) const COOL_DOWN: Duration = Duration::from_secs(1);

/// The low bits of the state: the failures in a row, counted up to this.
const COUNT: u64 = 0xff;

/// The whole state in one word, so that a success and a failure reported at once take effect
/// in one order or the other, never half of each: the low byte ([`COUNT`]) counts the failures
/// in a row; the rest is zero while closed, otherwise the time the breaker is open until
/// (nanoseconds on the system clock, rounded up to a multiple of 256), after which the first
/// caller to move that time forward is the probe.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    state: AtomicU64,
}

/// The state's "open until" part for `nanos`: rounded up, and never zero (zero is closed).
fn open_until(nanos: u64) -> u64 {
    (nanos.saturating_add(COUNT) & !COUNT).max(COUNT + 1)
}

impl Breaker {
    /// Whether a call may go to the layer now.
    #[inline]
    pub(crate) fn admit(&self) -> bool {
        self.admit_at(|| Clock::system().now_nanos())
    }

    /// [`admit`](Self::admit) at the time `now` gives (asked only when the breaker is open).
    #[inline]
    fn admit_at(&self, now: impl FnOnce() -> u64) -> bool {
        let state = self.state.load(Ordering::Acquire);
        let until = state & !COUNT;
        if until == 0 {
            return true;
        }
        let now = now();
        now >= until
            && self
                .state
                .compare_exchange(
                    state,
                    open_until(now.saturating_add(saturating_nanos(COOL_DOWN))) | (state & COUNT),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Records a call that worked: the breaker closes.
    #[inline]
    pub(crate) fn success(&self) {
        // Reading first keeps the healthy hot path free of writes to shared memory.
        if self.state.load(Ordering::Relaxed) != 0 {
            // A swap, not a store, though either is right: loom leaves a plain store unordered
            // with a racing read-modify-write that it did not see, and reports an outcome the
            // memory model forbids (see docs/adr/0008-model-checking.md). Off the hot path.
            self.state.swap(0, Ordering::Release);
        }
    }

    /// Records a call that failed; enough of them in a row open the breaker.
    pub(crate) fn failure(&self) {
        self.failure_at(|| Clock::system().now_nanos());
    }

    /// [`failure`](Self::failure) at the time `now` gives (asked only when the breaker opens).
    #[inline]
    fn failure_at(&self, now: impl FnOnce() -> u64) {
        let mut now = Some(now);
        let mut reopened = None;
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let failures = ((state & COUNT) + 1).min(COUNT);
            let until = if failures >= u64::from(FAILURES_TO_OPEN) {
                *reopened.get_or_insert_with(|| {
                    let now = now.take().map_or(0, |now| now());
                    open_until(now.saturating_add(saturating_nanos(COOL_DOWN)))
                })
            } else {
                state & !COUNT
            };
            match self.state.compare_exchange(state, until | failures, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(current) => state = current,
            }
        }
    }

    /// Whether the breaker is open (the layer is being skipped).
    pub(crate) fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) & !COUNT != 0
    }
}

#[cfg(all(test, not(loom)))]
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
        let after_cool_down = || Clock::system().now_nanos() + saturating_nanos(COOL_DOWN) + 1_000;
        assert!(breaker.admit_at(after_cool_down), "the probe");
        assert!(!breaker.admit_at(after_cool_down), "only one probe per cool-down");
        breaker.failure();
        assert!(!breaker.admit(), "a failed probe keeps it open");
    }
}

/// Model checks (`--cfg loom`, see docs/adr/0008-model-checking.md): the claims above, under
/// every interleaving and every outcome of the memory orderings.
#[cfg(all(test, loom))]
mod model {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;
    use crate::sync_shim::model;

    /// When the breaker opens in these tests.
    const T0: u64 = 1_000;
    /// A little after that opening's cool-down is over.
    const AFTER_COOL_DOWN: u64 = T0 + COOL_DOWN.as_nanos() as u64 + 1_000;

    fn opened() -> Breaker {
        let breaker = Breaker::default();
        for _ in 0..FAILURES_TO_OPEN {
            breaker.failure_at(|| T0);
        }
        breaker
    }

    /// Failures reported at once from as many threads as it takes all count: the breaker opens.
    #[test]
    fn concurrent_failures_open_it() {
        model(|| {
            let breaker = Arc::new(Breaker::default());
            let threads: Vec<_> = (0..FAILURES_TO_OPEN)
                .map(|_| {
                    let breaker = Arc::clone(&breaker);
                    thread::spawn(move || breaker.failure_at(|| T0))
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            assert!(breaker.is_open());
            assert!(!breaker.admit_at(|| T0), "skipped during the cool-down");
        });
    }

    /// After the cool-down, callers arriving together let exactly one probe through.
    #[test]
    fn one_probe_at_a_time() {
        model(|| {
            let breaker = Arc::new(opened());
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let breaker = Arc::clone(&breaker);
                    thread::spawn(move || breaker.admit_at(|| AFTER_COOL_DOWN))
                })
                .collect();
            let probes = threads.into_iter().map(|t| t.join().unwrap()).filter(|&p| p).count();
            assert_eq!(probes, 1, "one probe per cool-down");
            assert!(breaker.is_open(), "still open until the probe reports");
        });
    }

    /// A probe that never reports (its future was dropped) does not stick the breaker: one more
    /// probe goes through after the next cool-down, whoever took the first.
    #[test]
    fn a_lost_probe_is_replaced_after_the_next_cool_down() {
        model(|| {
            let breaker = Arc::new(opened());
            let asking = {
                let breaker = Arc::clone(&breaker);
                thread::spawn(move || breaker.admit_at(|| AFTER_COOL_DOWN))
            };
            let first = breaker.admit_at(|| AFTER_COOL_DOWN);
            let other = asking.join().unwrap();
            assert!(first ^ other, "one probe");
            let next = AFTER_COOL_DOWN + saturating_nanos(COOL_DOWN) + 1_000;
            assert!(!breaker.admit_at(|| next - 2_000), "not before the next cool-down is over");
            assert!(breaker.admit_at(|| next), "the next probe");
            assert!(breaker.is_open());
        });
    }

    /// A probe that succeeds closes the breaker for everyone, whatever else is asking meanwhile.
    #[test]
    fn a_successful_probe_closes_it() {
        model(|| {
            let breaker = Arc::new(opened());
            let prober = {
                let breaker = Arc::clone(&breaker);
                thread::spawn(move || {
                    if breaker.admit_at(|| AFTER_COOL_DOWN) {
                        breaker.success();
                    }
                })
            };
            let other = breaker.admit_at(|| AFTER_COOL_DOWN);
            prober.join().unwrap();
            if other {
                // This caller won the probe instead, and it works as well.
                breaker.success();
            }
            assert!(!breaker.is_open());
            assert!(breaker.admit_at(|| AFTER_COOL_DOWN));
        });
    }

    /// A success and the failure that would open the breaker, reported at once: the result is one
    /// the two give in some order. Either order leaves it closed (success last: reset; failure
    /// last: one failure since the success), so no interleaving may leave it open.
    #[test]
    fn a_success_racing_the_opening_failure_is_not_lost() {
        model(|| {
            let breaker = Arc::new(Breaker::default());
            for _ in 0..FAILURES_TO_OPEN - 1 {
                breaker.failure_at(|| T0);
            }
            let failing = {
                let breaker = Arc::clone(&breaker);
                thread::spawn(move || breaker.failure_at(|| T0))
            };
            breaker.success();
            failing.join().unwrap();
            assert!(!breaker.is_open(), "the success was lost: open with the count reset");
        });
    }

    /// A success racing a failure of an open breaker's probe: closed (success last) or open
    /// (failure last), and when open, a later success still closes it.
    #[test]
    fn a_success_and_a_failure_of_an_open_breaker_settle() {
        model(|| {
            let breaker = Arc::new(opened());
            let failing = {
                let breaker = Arc::clone(&breaker);
                thread::spawn(move || breaker.failure_at(|| AFTER_COOL_DOWN))
            };
            breaker.success();
            failing.join().unwrap();
            breaker.success();
            assert!(!breaker.is_open());
            for _ in 0..FAILURES_TO_OPEN - 1 {
                breaker.failure_at(|| AFTER_COOL_DOWN);
            }
            assert!(!breaker.is_open(), "the count started again from the success");
        });
    }
}
