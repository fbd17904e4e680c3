//! [`LoadOptions`]: what get-or-set does when the value must be computed — how long the computed
//! value lives, how long it stays usable once stale, and what to fall back on when the
//! computation fails.

use std::time::Duration;

/// How [`get_or_set_with`](crate::CacheTower::get_or_set_with) and its relatives load a value:
/// the computed value's TTL and stale window, and the fail-safe.
///
/// Every setting is optional; an unset one takes the tower's default
/// ([`CacheTower::set_load_options`](crate::CacheTower::set_load_options)), and without one the
/// behaviour of plain [`get_or_set`](crate::CacheTower::get_or_set).
///
/// * [`ttl`](Self::ttl): the computed value's own TTL (each layer keeps it for the shorter of
///   this and its own TTL).
/// * [`stale`](Self::stale): how long the computed value stays in memory layers past its TTL as
///   a *stale* value (instead of the layers' own `stale` window). Redis layers keep stale values
///   for their own window: they tell fresh from stale by the time a key has left.
/// * [`fail_safe`](Self::fail_safe): when the computation fails (returns `Err`, or panics) and a
///   stale value of the key exists in some layer, return that value instead of the failure, and
///   keep it fresh in the memory layers for the throttle period, so that the failing source is
///   asked again only once that has passed. Each use is counted
///   ([`LayerStats::stale_served`](crate::LayerStats::stale_served), on the layer the value came
///   from) and logged as a warning. Without a stale value the caller gets the failure, as without
///   fail-safe. A stale value is never returned by plain reads (`get`, `mget`, `exists`), and
///   never after the key was deleted, flushed or changed anywhere.
///
/// ```
/// use std::time::Duration;
/// use cache_tower::{CacheTower, LoadOptions, MemoryAdapter};
/// use cache_tower::clock::ManualClock;
///
/// let clock = ManualClock::new();
/// let tower = CacheTower::new();
/// tower.add_layer(
///     MemoryAdapter::builder()
///         .ttl(Duration::from_secs(60))
///         .stale(Duration::from_secs(3600))
///         .clock(clock.clone())
///         .build(),
/// );
/// let options = LoadOptions::new().fail_safe(Duration::from_secs(30));
/// let price: Result<u32, String> = tower.try_get_or_set_with("price", &options, || Ok(10));
/// assert_eq!(price, Ok(10));
///
/// clock.advance(Duration::from_secs(61)); // stale now: plain reads miss it
/// assert_eq!(tower.get::<u32>("price"), None);
/// let price = tower.try_get_or_set_with("price", &options, || Err("source down".to_string()));
/// assert_eq!(price, Ok(10), "the stale value, not the error");
/// // Kept fresh for the throttle period: the source is not asked again meanwhile.
/// assert_eq!(tower.get::<u32>("price"), Some(10));
/// # Ok::<(), cache_tower::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[must_use]
#[non_exhaustive]
pub struct LoadOptions {
    /// The computed value's own TTL; `None` (or zero): each layer's.
    pub ttl: Option<Duration>,
    /// The computed value's stale window in memory layers; `None`: each layer's.
    pub stale: Option<Duration>,
    /// The fail-safe's throttle period; `None`: no fail-safe.
    pub fail_safe: Option<Duration>,
}

impl LoadOptions {
    /// Options with nothing set: the tower's defaults apply.
    pub const fn new() -> Self {
        Self { ttl: None, stale: None, fail_safe: None }
    }

    /// The computed value's own TTL (`Duration::ZERO`: none of its own, each layer's applies).
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// How long the computed value stays usable past its TTL in memory layers (see the type's
    /// docs); `Duration::ZERO` means not at all.
    pub const fn stale(mut self, window: Duration) -> Self {
        self.stale = Some(window);
        self
    }

    /// Turns the fail-safe on: a failing computation is answered with a stale value when one
    /// exists, which is then kept fresh for `throttle` before the source is asked again.
    pub const fn fail_safe(mut self, throttle: Duration) -> Self {
        self.fail_safe = Some(throttle);
        self
    }

    /// The settings of `self`, each unset one taken from `defaults`.
    pub fn or(self, defaults: &LoadOptions) -> Self {
        Self {
            ttl: self.ttl.or(defaults.ttl),
            stale: self.stale.or(defaults.stale),
            fail_safe: self.fail_safe.or(defaults.fail_safe),
        }
    }
}
