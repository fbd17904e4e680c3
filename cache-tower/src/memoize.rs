//! What `#[cached_tower]` expands to: ordinary, tested functions the generated code calls through
//! `cache_tower::__private`, so the expansion stays a few lines.
//!
//! A memoized call looks its tower up by name in the [registry](crate::registry), reads the key
//! through the tower, and on a miss runs the function body once for all concurrent callers
//! (single flight, sync or async) and writes the result to every layer. A cache fault never
//! becomes the function's error: at worst the body runs. The tower named `"default"` is the
//! built-in one until the user registers their own under that name ([`registry::DEFAULT_TOWER`]). With no tower of the
//! function's name registered, the body runs uncached and a warning is given once per call site.
//!
//! Each memoize function takes the call's key (`None`: the body runs uncached) and its tags,
//! rendered from the attribute's `tags` templates (empty: none). The tags go with the value the
//! body computes, in the call's [`LoadOptions`]; a hit returns the cached value whatever tags
//! the call names.
//!
//! Warnings go to `tracing` when a subscriber is installed, and to standard error otherwise
//! (most newcomers have no subscriber, and a cache that silently does nothing is the worst kind).

use std::borrow::Cow;
use std::convert::Infallible;
#[cfg(feature = "tokio")]
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

mod checks;
mod key;
mod many;

pub use checks::{CachedValue, DefaultKey, DisplayKind, KeyArgument, KeyValue, StrKind, assert_cached};
pub use key::{KeyDisplay, KeyPart, KeyStr, MemoKey};
pub use many::{elements, invalidate_many, memoize_many, memoize_many_result};
#[cfg(feature = "tokio")]
pub use many::{invalidate_many_async, memoize_many_async, memoize_many_result_async};

use crate::LoadOptions;
use crate::registry::{self, Binding};
use crate::tower::{CacheTower, RefreshAhead, Stack, return_fast_hit};
use crate::value::Cacheable;

/// One memoized function: the tower it uses and its name, for messages.
#[derive(Debug)]
pub struct CallSite {
    tower: &'static str,
    function: &'static str,
    /// How the function's results are loaded and stored (`ttl = "…"`, `stale = "…"`,
    /// `fail_safe = "…"`); unset ones are the tower's.
    options: LoadOptions,
    /// The [`Warning`]s this call site has given, one bit each.
    warned: AtomicU8,
    /// The registry's binding for `tower`, found on the first call: later calls skip the lookup
    /// by name and see a tower registered, replaced or removed at any time all the same.
    binding: OnceLock<Arc<Binding>>,
}

impl CallSite {
    /// A call site of `function` caching in the tower registered as `tower`, its results
    /// loaded with `options`.
    pub const fn new(tower: &'static str, function: &'static str, options: LoadOptions) -> Self {
        Self { tower, function, options, warned: AtomicU8::new(0), binding: OnceLock::new() }
    }

    /// This site's options for one call: with the call's `tags` (rendered from the `tags`
    /// templates), when it has any, for the value it computes. Built on a miss only: a hit
    /// returns the cached value whatever its tags.
    fn options_for(&self, tags: &[MemoKey]) -> Cow<'_, LoadOptions> {
        if tags.is_empty() {
            Cow::Borrowed(&self.options)
        } else {
            Cow::Owned(self.options.clone().tags(tags.iter().map(MemoKey::as_str)))
        }
    }

    /// This site's options for one call ([`options_for`](Self::options_for)) with the tower's
    /// defaults, the hard timeout taken out (`without_hard_timeout`) for a function with no
    /// error to give.
    fn load_options(&self, tower: &CacheTower, tags: &[MemoKey], without_hard_timeout: bool) -> LoadOptions {
        let mut options = self.options_for(tags).or(&tower.load_options());
        if without_hard_timeout {
            options.hard_timeout = None;
        }
        options
    }

    /// The tower and key a memoized call caches with: `None` (and the body runs alone) without
    /// a key (warned about once) or a registered tower. A `blocking` call checks that it does not
    /// block a tokio runtime thread on network I/O.
    fn cache_for<'k>(&self, key: Option<&'k str>, blocking: bool) -> Option<(Arc<CacheTower>, &'k str)> {
        let Some(key) = key else {
            self.warn_no_key();
            return None;
        };
        let tower = self.tower()?;
        #[cfg(feature = "tokio")]
        if blocking {
            self.check_not_blocking_a_runtime(&tower);
        }
        #[cfg(not(feature = "tokio"))]
        let _ = blocking;
        Some((tower, key))
    }

    /// The stack of this site's tower, when one is registered: where a memoized call starts its
    /// fast lane. Each memoize function clones a hit from it right into its return value (the one
    /// copy a hit makes), then falls back to [`memoize_with`] for everything else.
    #[inline(always)]
    fn stack(&self) -> Option<Stack> {
        Some(self.binding().tower().as_ref()?.load_stack())
    }

    /// The fast lane of a memoized load ([`memoize_load`] and co.): the stack of this site's
    /// tower, when one is registered, and the eager refresh that this site's options (else the
    /// tower's) ask of its top layer's copies. A copy due for one that nobody started is no fast
    /// hit: [`CacheTower::try_get_or_load`] starts it.
    #[inline(always)]
    fn load_lane(&self) -> Option<(Stack, Option<RefreshAhead>)> {
        let tower = self.binding().tower();
        let tower = tower.as_ref()?;
        let stack = tower.load_stack();
        let refresh = {
            let top = stack.first()?;
            if self.options.refresh_ahead.is_some() && self.options.ttl.is_some() {
                // Nothing of the tower's defaults could change what this site asks.
                RefreshAhead::of(&self.options, top)
            } else {
                RefreshAhead::of(&self.options.or(&tower.load_options()), top)
            }
        };
        Some((stack, refresh))
    }

    /// A hit by [`load_lane`](Self::load_lane), for the async memoized loads.
    #[cfg(feature = "tokio")]
    fn load_fast_hit<T: Cacheable>(&self, key: &str) -> Option<T> {
        let (stack, refresh) = self.load_lane()?;
        return_fast_hit!(stack.first(), key, refresh = refresh, |value: &T| Some(value.clone()));
        None
    }

    /// A hit by the fast lane, for the async memoize functions (whose results are moved into
    /// their futures' output anyway): without cloning the tower's `Arc`, a shared reference count
    /// that tasks on every worker thread would write.
    #[cfg(feature = "tokio")]
    fn fast_hit<T: Cacheable>(&self, key: &str) -> Option<T> {
        self.binding().tower().as_ref()?.fast_hit(key)
    }

    /// The registry's binding for this site's tower.
    #[inline]
    fn binding(&self) -> &Binding {
        self.binding.get_or_init(|| registry::binding(self.tower))
    }

    /// Gives `warning` the first time this call site meets it, and never again: to `tracing` when
    /// a subscriber is installed, else to standard error.
    fn warn_once(&self, warning: Warning, message: impl FnOnce() -> String) {
        // A plain load first: a call site that has warned pays no read-modify-write after that.
        if self.has_warned(warning) || self.warned.fetch_or(warning.bit(), Ordering::Relaxed) & warning.bit() != 0 {
            return;
        }
        let message = message();
        let unobserved =
            tracing::dispatcher::get_default(|dispatch| dispatch.is::<tracing::subscriber::NoSubscriber>());
        if unobserved {
            eprintln!("cache-tower warning: {message}");
        } else {
            tracing::warn!(function = self.function, tower = self.tower, "{message}");
        }
    }

    /// The tower, if registered; warns (once) when it is not.
    fn tower(&self) -> Option<Arc<CacheTower>> {
        let tower = Option::clone(&self.binding().tower());
        if tower.is_none() {
            self.warn_no_tower();
        }
        tower
    }

    fn warn_no_tower(&self) {
        self.warn_once(Warning::NoTower, || {
            format!(
                "no cache tower named `{}` is registered, so `{}` runs uncached; register one with \
                 cache_tower::registry::register or register_json (registry::require checks the \
                 names at start-up)",
                self.tower, self.function
            )
        });
    }

    /// Whether this call site has given `warning` already.
    fn has_warned(&self, warning: Warning) -> bool {
        self.warned.load(Ordering::Relaxed) & warning.bit() != 0
    }

    /// Warns when a blocking memoized call is about to wait on a layer's I/O on a thread that
    /// runs a tokio runtime: it blocks one of the runtime's workers for the round trip.
    ///
    /// tokio does not tell a worker thread from one of its blocking threads (`spawn_blocking`,
    /// `block_in_place` enter the runtime too), so a call there warns as well, once: the message
    /// says so.
    #[cfg(feature = "tokio")]
    fn check_not_blocking_a_runtime(&self, tower: &CacheTower) {
        if self.has_warned(Warning::BlockingInRuntime)
            || !tower.waits_on_io()
            || tokio::runtime::Handle::try_current().is_err()
        {
            return;
        }
        self.warn_once(Warning::BlockingInRuntime, || {
            format!(
                "`{}` is a blocking memoized function called inside a tokio runtime, and its tower `{}` \
                 reads over the network: each miss blocks a worker thread of the runtime. Make it an \
                 `async fn` (the macro then awaits the tower), or call it in \
                 tokio::task::spawn_blocking (where blocking is fine; this warning, given once, cannot \
                 tell that thread from a worker)",
                self.function, self.tower
            )
        });
    }

    fn warn_no_key(&self) {
        self.warn_once(Warning::NoKey, || {
            format!(
                "the arguments of `{}` could not be written as JSON to make its cache key, so it runs \
                 uncached; give #[cached_tower] a `key` template",
                self.function
            )
        });
    }
}

/// What a call site may warn about, once each.
#[derive(Clone, Copy)]
enum Warning {
    NoTower,
    NoKey,
    #[cfg(feature = "tokio")]
    BlockingInRuntime,
}

impl Warning {
    /// This warning's bit in [`CallSite`]'s `warned`.
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Memoizes a function returning a plain `T`.
pub fn memoize<T: Cacheable>(site: &CallSite, key: Option<&str>, tags: &[MemoKey], body: impl FnOnce() -> T) -> T {
    if let Some(key) = key {
        let stack = site.stack();
        return_fast_hit!(stack.as_ref().and_then(|stack| stack.first()), key, |value: &T| value.clone());
    }
    match memoize_with(site, key, tags, || Ok::<T, Infallible>(body())) {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

/// Memoizes a function returning `Result<T, E>`: only `Ok` values are cached.
///
/// # Errors
/// The body's error, uncached.
pub fn memoize_result<T: Cacheable, E>(
    site: &CallSite,
    key: Option<&str>,
    tags: &[MemoKey],
    body: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    if let Some(key) = key {
        let stack = site.stack();
        return_fast_hit!(stack.as_ref().and_then(|stack| stack.first()), key, |value: &T| Ok(value.clone()));
    }
    memoize_with(site, key, tags, body)
}

/// Memoizes a function returning `Option<T>`: only `Some` values are cached.
pub fn memoize_option<T: Cacheable>(
    site: &CallSite,
    key: Option<&str>,
    tags: &[MemoKey],
    body: impl FnOnce() -> Option<T>,
) -> Option<T> {
    if let Some(key) = key {
        let stack = site.stack();
        return_fast_hit!(stack.as_ref().and_then(|stack| stack.first()), key, |value: &T| Some(value.clone()));
    }
    // `None` is not cached: it travels as an error, and comes back as `None`.
    memoize_with(site, key, tags, || body().ok_or(())).ok()
}

/// The memoized call after the fast lane: the cached value (read through every layer), or else
/// the body's value, computed once for all concurrent callers and stored when `Ok`.
fn memoize_with<T: Cacheable, E>(
    site: &CallSite,
    key: Option<&str>,
    tags: &[MemoKey],
    body: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let Some((tower, key)) = site.cache_for(key, true) else { return body() };
    tower.get_or_compute(key, &site.options_for(tags), body)
}

/// The async twin of [`memoize`].
#[cfg(feature = "tokio")]
pub async fn memoize_async<T, Fut>(
    site: &CallSite,
    key: Option<&str>,
    tags: &[MemoKey],
    body: impl FnOnce() -> Fut,
) -> T
where
    T: Cacheable,
    Fut: Future<Output = T>,
{
    let body = || async { Ok::<T, Infallible>(body().await) };
    match memoize_with_async(site, key, tags, body).await {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

/// The async twin of [`memoize_result`].
///
/// # Errors
/// The body's error, uncached.
#[cfg(feature = "tokio")]
pub async fn memoize_result_async<T, E, Fut>(
    site: &CallSite,
    key: Option<&str>,
    tags: &[MemoKey],
    body: impl FnOnce() -> Fut,
) -> Result<T, E>
where
    T: Cacheable,
    Fut: Future<Output = Result<T, E>>,
{
    memoize_with_async(site, key, tags, body).await
}

/// The async twin of [`memoize_option`].
#[cfg(feature = "tokio")]
pub async fn memoize_option_async<T, Fut>(
    site: &CallSite,
    key: Option<&str>,
    tags: &[MemoKey],
    body: impl FnOnce() -> Fut,
) -> Option<T>
where
    T: Cacheable,
    Fut: Future<Output = Option<T>>,
{
    // `None` is not cached: it travels as an error, and comes back as `None`.
    memoize_with_async(site, key, tags, || async { body().await.ok_or(()) }).await.ok()
}

#[cfg(feature = "tokio")]
async fn memoize_with_async<T, E, Fut>(
    site: &CallSite,
    key: Option<&str>,
    tags: &[MemoKey],
    body: impl FnOnce() -> Fut,
) -> Result<T, E>
where
    T: Cacheable,
    Fut: Future<Output = Result<T, E>>,
{
    // The hit first, before `cache_for` clones the tower's `Arc`.
    if let Some(value) = key.and_then(|key| site.fast_hit::<T>(key)) {
        return Ok(value);
    }
    let Some((tower, key)) = site.cache_for(key, false) else { return body().await };
    tower.get_or_compute_async(key, &site.options_for(tags), body).await
}

/// A memoized function whose body may be handed to the background (`soft_timeout`,
/// `hard_timeout`, `refresh_ahead`): [`CacheTower::try_get_or_load`] with the body, which owns
/// its arguments (the macro checks that). A plain function has no error to give, so a hard
/// timeout (also one set on its tower) does not apply to it: its callers wait for the body.
pub fn memoize_load<T: Cacheable>(
    site: &CallSite,
    key: Option<&str>,
    tags: &[MemoKey],
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    if let Some(key) = key {
        if let Some((stack, refresh)) = site.load_lane() {
            return_fast_hit!(stack.first(), key, refresh = refresh, |value: &T| value.clone());
        }
    }
    // Without a hard timeout a load gives up on nothing, and the body cannot fail.
    match load_with(site, key, tags, true, move || Ok::<T, crate::Error>(body())) {
        Ok(value) => value,
        Err(err) => unreachable!("a memoized function without a hard timeout timed out: {err}"),
    }
}

/// [`memoize_load`] for a function returning `Result<T, E>`: an `Err` is not cached; a hard
/// timeout with nothing stale to answer is an `Err` made from a cache-tower error.
///
/// # Errors
/// The body's error, or the hard timeout's.
pub fn memoize_load_result<T, E>(
    site: &CallSite,
    key: Option<&str>,
    tags: &[MemoKey],
    body: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Cacheable,
    E: From<crate::Error> + Send + 'static,
{
    if let Some(key) = key {
        if let Some((stack, refresh)) = site.load_lane() {
            return_fast_hit!(stack.first(), key, refresh = refresh, |value: &T| Ok(value.clone()));
        }
    }
    load_with(site, key, tags, false, body)
}

/// The memoized load: the body alone without a key or a tower, else the tower's get-or-load,
/// `without_hard_timeout` for a function that has no error to give.
fn load_with<T, E>(
    site: &CallSite,
    key: Option<&str>,
    tags: &[MemoKey],
    without_hard_timeout: bool,
    body: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Cacheable,
    E: From<crate::Error> + Send + 'static,
{
    let Some((tower, key)) = site.cache_for(key, true) else { return body() };
    tower.try_get_or_load(key, &site.load_options(&tower, tags, without_hard_timeout), body)
}

/// The async twin of [`memoize_load`].
#[cfg(feature = "tokio")]
pub async fn memoize_load_async<T, Fut>(
    site: &CallSite,
    key: Option<&str>,
    tags: &[MemoKey],
    body: impl FnOnce() -> Fut + Send + 'static,
) -> T
where
    T: Cacheable,
    Fut: Future<Output = T> + Send + 'static,
{
    let body = move || async move { Ok::<T, crate::Error>(body().await) };
    match load_with_async(site, key, tags, true, body).await {
        Ok(value) => value,
        Err(err) => unreachable!("a memoized function without a hard timeout timed out: {err}"),
    }
}

/// The async twin of [`memoize_load_result`].
///
/// # Errors
/// As [`memoize_load_result`].
#[cfg(feature = "tokio")]
pub async fn memoize_load_result_async<T, E, Fut>(
    site: &CallSite,
    key: Option<&str>,
    tags: &[MemoKey],
    body: impl FnOnce() -> Fut + Send + 'static,
) -> Result<T, E>
where
    T: Cacheable,
    E: From<crate::Error> + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    load_with_async(site, key, tags, false, body).await
}

/// The async twin of [`load_with`].
#[cfg(feature = "tokio")]
async fn load_with_async<T, E, Fut>(
    site: &CallSite,
    key: Option<&str>,
    tags: &[MemoKey],
    without_hard_timeout: bool,
    body: impl FnOnce() -> Fut + Send + 'static,
) -> Result<T, E>
where
    T: Cacheable,
    E: From<crate::Error> + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    // The hit first, before `cache_for` clones the tower's `Arc`.
    if let Some(value) = key.and_then(|key| site.load_fast_hit::<T>(key)) {
        return Ok(value);
    }
    let Some((tower, key)) = site.cache_for(key, false) else { return body().await };
    tower.try_get_or_load_async(key, &site.load_options(&tower, tags, without_hard_timeout), body).await
}

/// Removes the cached entry of one call (the `<fn>_invalidate` companion).
///
/// # Errors
/// The error of the topmost layer that failed to delete (see
/// [`CacheTower::delete`](crate::CacheTower::delete)); `Ok` when no tower is registered.
pub fn invalidate(site: &CallSite, key: Option<&str>) -> crate::Result<()> {
    match (key, site.tower()) {
        (Some(key), Some(tower)) => tower.delete(key),
        _ => Ok(()),
    }
}

/// The async twin of [`invalidate`].
///
/// # Errors
/// As [`invalidate`].
#[cfg(feature = "tokio")]
pub async fn invalidate_async(site: &CallSite, key: Option<&str>) -> crate::Result<()> {
    match (key, site.tower()) {
        (Some(key), Some(tower)) => tower.delete_async(key).await,
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn site(tower: &'static str) -> CallSite {
        CallSite::new(tower, "unit::f", LoadOptions::new())
    }

    fn register_memory(name: &str) -> Arc<CacheTower> {
        let tower = Arc::new(CacheTower::from_json(r#"[{"adapter": "memory"}]"#).unwrap());
        registry::register(name, Arc::clone(&tower));
        tower
    }

    #[test]
    fn memoize_runs_the_body_once_per_key() {
        register_memory("unit_memoize_once");
        let site = site("unit_memoize_once");
        let runs = AtomicUsize::new(0);
        let call = |n: u32| {
            memoize(&site, Some(&format!("k{n}")), &[], || {
                runs.fetch_add(1, Ordering::SeqCst);
                n * 2
            })
        };
        assert_eq!((call(1), call(1), call(2)), (2, 2, 4));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn results_and_options_cache_only_success() {
        let tower = register_memory("unit_memoize_kinds");
        let site = site("unit_memoize_kinds");
        assert_eq!(memoize_result::<u8, &str>(&site, Some("r"), &[], || Err("no")), Err("no"));
        assert!(!tower.exists("r"));
        assert_eq!(memoize_result::<u8, &str>(&site, Some("r"), &[], || Ok(1)), Ok(1));
        assert_eq!(memoize_result::<u8, &str>(&site, Some("r"), &[], || Err("cached")), Ok(1));
        assert_eq!(memoize_option::<u8>(&site, Some("o"), &[], || None), None);
        assert!(!tower.exists("o"));
        assert_eq!(memoize_option(&site, Some("o"), &[], || Some(5u8)), Some(5));
        assert_eq!(memoize_option::<u8>(&site, Some("o"), &[], || None), Some(5));
    }

    #[test]
    fn without_a_tower_or_key_the_body_runs_every_time() {
        let site = site("unit_memoize_never_registered");
        let runs = AtomicUsize::new(0);
        for _ in 0..3 {
            memoize(&site, Some("k"), &[], || runs.fetch_add(1, Ordering::SeqCst));
        }
        register_memory("unit_memoize_no_key");
        let keyless = CallSite::new("unit_memoize_no_key", "unit::g", LoadOptions::new());
        for _ in 0..3 {
            memoize(&keyless, None, &[], || runs.fetch_add(1, Ordering::SeqCst));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 6);
        assert!(site.has_warned(Warning::NoTower) && !site.has_warned(Warning::NoKey));
        assert!(keyless.has_warned(Warning::NoKey) && !keyless.has_warned(Warning::NoTower));
    }

    #[test]
    fn invalidate_removes_the_entry() {
        let tower = register_memory("unit_memoize_invalidate");
        let site = site("unit_memoize_invalidate");
        memoize(&site, Some("k"), &[], || 1u8);
        invalidate(&site, Some("k")).unwrap();
        assert!(!tower.exists("k"));
        assert!(invalidate(&CallSite::new("unit_nowhere", "f", LoadOptions::new()), Some("k")).is_ok());
    }

    #[test]
    fn a_computed_value_carries_the_calls_tags_and_a_hit_ignores_them() {
        let tower = register_memory("unit_memoize_tags");
        let site = site("unit_memoize_tags");
        let tags = [MemoKey::from("user:1".to_owned()), MemoKey::from("tenant:a".to_owned())];
        assert_eq!(memoize(&site, Some("a"), &tags, || 1u8), 1);
        assert_eq!(memoize(&site, Some("a"), &[], || 2u8), 1, "a hit, whatever the call's tags");
        assert_eq!(memoize_load(&site, Some("b"), &tags[1..], || 3u8), 3);
        tower.invalidate_tag("user:1").unwrap();
        assert!(!tower.exists("a") && tower.exists("b"));
        tower.invalidate_tag("tenant:a").unwrap();
        assert!(!tower.exists("b"), "memoize_load stores the tags too");
        assert_eq!(site.options_for(&[]).tag_names(), &[] as &[Box<str>], "the site's own options are untouched");
    }

    #[test]
    fn hits_are_counted_in_the_top_layer() {
        let tower = register_memory("unit_memoize_stats");
        let site = site("unit_memoize_stats");
        assert_eq!(memoize(&site, Some("p"), &[], || 1u8), 1);
        assert_eq!(memoize(&site, Some("p"), &[], || 2u8), 1);
        assert_eq!(memoize_result::<u8, ()>(&site, Some("p"), &[], || Ok(3)), Ok(1));
        assert_eq!(memoize_option(&site, Some("p"), &[], || Some(4u8)), Some(1));
        let stats = tower.stats();
        assert_eq!((stats[0].hits, stats[0].misses), (3, 1));
    }

    #[test]
    fn a_call_site_follows_its_tower_being_registered_replaced_and_removed() {
        let site = site("unit_memoize_lifecycle");
        let runs = AtomicUsize::new(0);
        let call = || {
            memoize(&site, Some("k"), &[], || {
                runs.fetch_add(1, Ordering::SeqCst);
                7u8
            })
        };
        call(); // no tower yet: runs uncached
        let first = register_memory("unit_memoize_lifecycle");
        call();
        call();
        assert!(first.exists("k"));
        let second = register_memory("unit_memoize_lifecycle");
        call();
        assert!(second.exists("k"), "the replacement is used");
        registry::remove("unit_memoize_lifecycle");
        call();
        assert_eq!(runs.load(Ordering::SeqCst), 4, "uncached, cold in the first tower, cold in the second, uncached");
    }
}
