//! [`LoadOptions`]: what get-or-set does when the value must be computed — how long the computed
//! value lives, how long it stays usable once stale, and what to fall back on when the
//! computation fails.

use std::time::Duration;

use crate::value::TagNames;

/// How [`get_or_set_with`](crate::CacheTower::get_or_set_with) and its relatives load a value:
/// the computed value's TTL and stale window, the fail-safe, timeouts and eager refresh.
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
/// * [`soft_timeout`](Self::soft_timeout), [`hard_timeout`](Self::hard_timeout),
///   [`refresh_ahead`](Self::refresh_ahead): a slow computation answered by a stale value while
///   it goes on in the background, a bound on any wait, and refreshing a value before it
///   expires. They need a computation that can outlive its caller: the
///   [`try_get_or_load`](crate::CacheTower::try_get_or_load) calls.
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
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
#[non_exhaustive]
pub struct LoadOptions {
    /// The computed value's own TTL; `None` (or zero): each layer's.
    pub ttl: Option<Duration>,
    /// The computed value's stale window in memory layers; `None`: each layer's.
    pub stale: Option<Duration>,
    /// The fail-safe's throttle period; `None`: no fail-safe.
    pub fail_safe: Option<Duration>,
    /// How long a caller waits for the computation when a stale value could answer instead.
    pub soft_timeout: Option<Duration>,
    /// How long a caller waits for the computation at all.
    pub hard_timeout: Option<Duration>,
    /// The fraction of its TTL after which a hit refreshes the value in the background.
    pub refresh_ahead: Option<f64>,
    /// The distributed lock's timeout; `None`: no lock (single flight within the process only).
    pub lock: Option<Duration>,
    /// The tags the computed value is stored with (see [`tags`](Self::tags)).
    tags: TagNames,
}

impl LoadOptions {
    /// Options with nothing set: the tower's defaults apply.
    pub const fn new() -> Self {
        Self {
            ttl: None,
            stale: None,
            fail_safe: None,
            soft_timeout: None,
            hard_timeout: None,
            refresh_ahead: None,
            lock: None,
            tags: None,
        }
    }

    /// Stores the computed value with these tags:
    /// [`CacheTower::invalidate_tag`](crate::CacheTower::invalidate_tag) of any of them makes it
    /// a miss everywhere. Tags name groups of entries (`"user:42"`, `"tenant:acme"`); they are
    /// per call, so a tower's default options ([`CacheTower::set_load_options`](crate::CacheTower::set_load_options))
    /// give tags only to calls that set none. A hit returns the value whatever tags the call
    /// names: tags are written with a value, not checked against the call.
    ///
    /// ```
    /// use cache_tower::{CacheTower, LoadOptions};
    ///
    /// let tower = CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// let options = LoadOptions::new().tags(["user:42", "tenant:acme"]);
    /// let name = tower.get_or_set_with("user:42:name", &options, || "Ada".to_string());
    /// assert_eq!(name, "Ada");
    /// tower.invalidate_tag("tenant:acme")?;
    /// assert_eq!(tower.get::<String>("user:42:name"), None);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        self.tags = crate::value::tag_names(tags);
        self
    }

    /// The tags set with [`tags`](Self::tags).
    pub fn tag_names(&self) -> &[Box<str>] {
        self.tags.as_deref().unwrap_or(&[])
    }

    /// The tags as the stored value takes them.
    pub(crate) fn tag_names_shared(&self) -> &TagNames {
        &self.tags
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

    /// With a stale value to fall back on, a caller waits at most `timeout` for the computation,
    /// then gets the stale value (counted as `stale_served`) while the computation goes on in the
    /// background and stores its value in every layer when it completes. Callers waiting on the
    /// same key meanwhile share that one computation. Only the `*_get_or_load` calls can leave a
    /// computation running ([`try_get_or_load`](crate::CacheTower::try_get_or_load)); with other
    /// calls the caller that computes waits for its computation, the others time out.
    pub const fn soft_timeout(mut self, timeout: Duration) -> Self {
        self.soft_timeout = Some(timeout);
        self
    }

    /// A caller waits at most `timeout` for the computation: then it gets a stale value if there
    /// is one, else a timeout error ([`ErrorKind::Timeout`](crate::error::ErrorKind), converted
    /// into the call's error type). The computation goes on and stores its value when it
    /// completes. For the `*_get_or_load` calls (see [`soft_timeout`](Self::soft_timeout)).
    pub const fn hard_timeout(mut self, timeout: Duration) -> Self {
        self.hard_timeout = Some(timeout);
        self
    }

    /// Eager refresh: a hit on a value past `fraction` of its TTL (say `0.8`) returns the value
    /// at once and starts one background computation of the key (one per key and process at a
    /// time), which stores the new value in every layer. Only keys that are read get refreshed.
    /// Each copy is refreshed ahead once at most: a refresh that fails (or finds the key being
    /// computed already) leaves the copy serving until its TTL runs out, when the next call
    /// loads the key the normal way (with the fail-safe, if set), so a failing source is not
    /// asked again on every hit.
    /// The TTL is the call's [`ttl`](Self::ttl) or else the top layer's; the top layer's copy is
    /// watched (a memory layer's, through the fast lane). A fraction outside `0 < fraction < 1`
    /// means no eager refresh. For the `*_get_or_load` calls, which own their computation.
    pub const fn refresh_ahead(mut self, fraction: f64) -> Self {
        self.refresh_ahead = Some(fraction);
        self
    }

    /// Distributed stampede protection: on a miss, one caller across every process computes the
    /// key. It takes a lock in the lowest layer that can hold one (Redis: a key holding an owner
    /// token, `SET NX PX timeout`, released by compare-and-delete); the others wait for the value
    /// to appear there — woken by the invalidations the tower already receives, and looking again
    /// every 10 ms — and read it; past `timeout` they compute it themselves. A holder that dies
    /// leaves a lock that expires after `timeout`. It is an efficiency lock, never a correctness
    /// one: with the lock's layer failing, callers fall back to this process's single flight.
    pub const fn lock(mut self, timeout: Duration) -> Self {
        self.lock = Some(timeout);
        self
    }

    /// The settings of `self`, each unset one taken from `defaults`.
    pub fn or(&self, defaults: &LoadOptions) -> Self {
        Self {
            ttl: self.ttl.or(defaults.ttl),
            stale: self.stale.or(defaults.stale),
            fail_safe: self.fail_safe.or(defaults.fail_safe),
            soft_timeout: self.soft_timeout.or(defaults.soft_timeout),
            hard_timeout: self.hard_timeout.or(defaults.hard_timeout),
            refresh_ahead: self.refresh_ahead.or(defaults.refresh_ahead),
            lock: self.lock.or(defaults.lock),
            tags: self.tags.clone().or_else(|| defaults.tags.clone()),
        }
    }
}
