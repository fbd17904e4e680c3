//! Time as adapters see it: the system's monotonic clock, or a manual clock a test moves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The clock a [`MemoryAdapter`](crate::MemoryAdapter) measures TTLs with.
///
/// The default is the system's monotonic clock. A [`ManualClock`] gives a test full control.
///
/// ```
/// use cache_tower::clock::Clock;
///
/// let clock = Clock::system();
/// # let _ = clock;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Nanoseconds since this clock's origin (process start-up, or zero for a manual clock).
    pub(crate) fn now_nanos(&self) -> u64 {
        match &self.manual {
            None => {
                static ORIGIN: OnceLock<Instant> = OnceLock::new();
                let origin = *ORIGIN.get_or_init(Instant::now);
                saturating_nanos(origin.elapsed())
            }
            Some(nanos) => nanos.load(Ordering::Acquire),
        }
    }
}

/// A clock that moves only when told to, for tests of TTL behaviour.
///
/// ```
/// use std::time::Duration;
/// use cache_tower::{CacheTower, MemoryAdapter, clock::ManualClock};
///
/// let clock = ManualClock::new();
/// let tower = CacheTower::new();
/// tower.add_layer(MemoryAdapter::builder().ttl(Duration::from_secs(60)).clock(&clock).build());
/// tower.set("k", 1)?;
/// clock.advance(Duration::from_secs(59));
/// assert_eq!(tower.get::<i32>("k"), Some(1));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(tower.get::<i32>("k"), None);
/// # Ok::<(), cache_tower::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(saturating_nanos(by), Ordering::AcqRel);
    }

    /// The time elapsed since this clock was made.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

impl From<ManualClock> for Clock {
    fn from(clock: ManualClock) -> Self {
        Self { manual: Some(clock.nanos) }
    }
}

impl From<&ManualClock> for Clock {
    fn from(clock: &ManualClock) -> Self {
        clock.clone().into()
    }
}

/// A duration in nanoseconds, capped at `u64::MAX` (584 years).
pub(crate) fn saturating_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let manual = ManualClock::new();
        let clock = Clock::from(&manual);
        assert_eq!(clock.now_nanos(), 0);
        manual.advance(Duration::from_millis(3));
        assert_eq!(clock.now_nanos(), 3_000_000);
        assert_eq!(manual.elapsed(), Duration::from_millis(3));
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = Clock::system();
        let a = clock.now_nanos();
        let b = clock.now_nanos();
        assert!(b >= a);
    }
}
