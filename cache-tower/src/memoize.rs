//! What `#[cached_tower]` expands to: ordinary, tested functions the generated code calls through
//! `cache_tower::__private`, so the expansion stays a few lines.
//!
//! A memoized call looks its tower up by name in the [registry](crate::registry), reads the key
//! through the tower, and on a miss runs the function body once for all concurrent callers
//! (single flight, sync or async) and writes the result to every layer. A cache fault never
//! becomes the function's error: at worst the body runs. With no tower of that name registered,
//! the body runs uncached and a warning is logged once per call site.

#[cfg(feature = "tokio")]
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::registry;
use crate::tower::{CacheTower, Faults};
use crate::value::Cacheable;

/// One memoized function: the tower it uses and its name, for messages.
#[derive(Debug)]
pub struct CallSite {
    tower: &'static str,
    function: &'static str,
    warned: AtomicBool,
}

impl CallSite {
    /// A call site of `function` caching in the tower registered as `tower`.
    pub const fn new(tower: &'static str, function: &'static str) -> Self {
        Self { tower, function, warned: AtomicBool::new(false) }
    }

    /// Logs `message` the first time this call site has something to say, and never again.
    fn warn_once(&self, message: impl FnOnce() -> String) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(function = self.function, tower = self.tower, "{}", message());
        }
    }

    /// The tower, if registered; warns (once) when it is not.
    fn tower(&self) -> Option<Arc<CacheTower>> {
        let tower = registry::get(self.tower);
        if tower.is_none() {
            self.warn_no_tower();
        }
        tower
    }

    fn warn_no_tower(&self) {
        self.warn_once(|| {
            format!(
                "no cache tower named `{}` is registered, so `{}` runs uncached; register one with \
                 cache_tower::registry::register or register_json",
                self.tower, self.function
            )
        });
    }

    fn warn_no_key(&self) {
        self.warn_once(|| {
            format!(
                "the arguments of `{}` could not be written as JSON to make its cache key, so it runs \
                 uncached; give #[cached_tower] a `key` template",
                self.function
            )
        });
    }
}

/// Compile-time check that a memoized function's result can be cached; the macro calls it with
/// the span of the return type, so the error points there.
pub fn assert_cacheable<T: Cacheable>() {}

/// Compile-time check that an argument can be part of a default key (serialized as JSON).
pub fn assert_key_argument<T: Serialize + ?Sized>(_: &T) {}

/// The default key: the function's path and its arguments as a JSON array, such as
/// `my_crate::users::get_user:[7,"eu"]`. It is the same in every process and build as long as
/// the function's path and its arguments' JSON are. `None` when an argument cannot be written as
/// JSON.
pub fn default_key<A: Serialize>(function: &str, arguments: &A) -> Option<String> {
    let json = serde_json::to_string(arguments).ok()?;
    Some(format!("{function}:{json}"))
}

/// A value placed in a template key. Method resolution picks [`KeyStr`] for string-like values
/// (copied as they are) and [`KeyDisplay`] for the rest (written with `Display`), so
/// `(&KeyPart(&value)).push_key(&mut key)` adds exactly what `format!("{}", value)` would.
#[derive(Debug)]
pub struct KeyPart<'a, T: ?Sized>(pub &'a T);

/// Adds a string-like key part as it is.
pub trait KeyStr {
    /// Appends the part to `key`.
    fn push_key(&self, key: &mut String);
}

impl<T: AsRef<str> + ?Sized> KeyStr for KeyPart<'_, T> {
    fn push_key(&self, key: &mut String) {
        key.push_str(self.0.as_ref());
    }
}

/// Adds any other key part with its `Display`.
pub trait KeyDisplay {
    /// Appends the part to `key`.
    fn push_key(&self, key: &mut String);
}

impl<T: std::fmt::Display + ?Sized> KeyDisplay for &KeyPart<'_, T> {
    fn push_key(&self, key: &mut String) {
        use std::fmt::Write;
        // Writing into a String cannot fail.
        let _ = write!(key, "{}", self.0);
    }
}

/// Why a computed value is not cached (an `Err` or a `None` result).
#[derive(Debug)]
enum NotCached<E> {
    Err(E),
    None,
}

/// Memoizes a function returning a plain `T`.
pub fn memoize<T: Cacheable>(site: &CallSite, key: Option<String>, body: impl FnOnce() -> T) -> T {
    match memoize_with(site, key, || Ok::<T, NotCached<std::convert::Infallible>>(body())) {
        Ok(value) => value,
        Err(NotCached::Err(never)) => match never {},
        // `body` never says "do not cache"; unreachable in practice, but a value is still owed.
        Err(NotCached::None) => unreachable!("a plain result is always cached"),
    }
}

/// Memoizes a function returning `Result<T, E>`: only `Ok` values are cached.
///
/// # Errors
/// The body's error, uncached.
pub fn memoize_result<T: Cacheable, E>(
    site: &CallSite,
    key: Option<String>,
    body: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    match memoize_with(site, key, || body().map_err(NotCached::Err)) {
        Ok(value) => Ok(value),
        Err(NotCached::Err(err)) => Err(err),
        Err(NotCached::None) => unreachable!("only `None` results are not cached as None"),
    }
}

/// Memoizes a function returning `Option<T>`: only `Some` values are cached.
pub fn memoize_option<T: Cacheable>(
    site: &CallSite,
    key: Option<String>,
    body: impl FnOnce() -> Option<T>,
) -> Option<T> {
    memoize_with(site, key, || body().ok_or(NotCached::<std::convert::Infallible>::None)).ok()
}

fn memoize_with<T: Cacheable, E>(
    site: &CallSite,
    key: Option<String>,
    body: impl FnOnce() -> Result<T, NotCached<E>>,
) -> Result<T, NotCached<E>> {
    let Some(key) = key else {
        site.warn_no_key();
        return body();
    };
    // The hit path reads the registry without cloning the tower's Arc, so threads never write
    // to a shared reference count.
    let mut faults = Faults::default();
    let tower = {
        let towers = registry::snapshot();
        let Some(tower) = towers.get(site.tower) else {
            drop(towers);
            site.warn_no_tower();
            return body();
        };
        if let Some(value) = tower.read_through::<T>(&key, &mut faults) {
            return Ok(value);
        }
        Arc::clone(tower)
    };
    tower.compute_and_set(&key, body, faults)
}

/// The async twin of [`memoize`].
#[cfg(feature = "tokio")]
pub async fn memoize_async<T, Fut>(site: &CallSite, key: Option<String>, body: impl FnOnce() -> Fut) -> T
where
    T: Cacheable,
    Fut: Future<Output = T>,
{
    let body = || async { Ok::<T, NotCached<std::convert::Infallible>>(body().await) };
    match memoize_with_async(site, key, body).await {
        Ok(value) => value,
        Err(NotCached::Err(never)) => match never {},
        Err(NotCached::None) => unreachable!("a plain result is always cached"),
    }
}

/// The async twin of [`memoize_result`].
///
/// # Errors
/// The body's error, uncached.
#[cfg(feature = "tokio")]
pub async fn memoize_result_async<T, E, Fut>(
    site: &CallSite,
    key: Option<String>,
    body: impl FnOnce() -> Fut,
) -> Result<T, E>
where
    T: Cacheable,
    Fut: Future<Output = Result<T, E>>,
{
    match memoize_with_async(site, key, || async { body().await.map_err(NotCached::Err) }).await {
        Ok(value) => Ok(value),
        Err(NotCached::Err(err)) => Err(err),
        Err(NotCached::None) => unreachable!("only `None` results are not cached as None"),
    }
}

/// The async twin of [`memoize_option`].
#[cfg(feature = "tokio")]
pub async fn memoize_option_async<T, Fut>(site: &CallSite, key: Option<String>, body: impl FnOnce() -> Fut) -> Option<T>
where
    T: Cacheable,
    Fut: Future<Output = Option<T>>,
{
    let body = || async { body().await.ok_or(NotCached::<std::convert::Infallible>::None) };
    memoize_with_async(site, key, body).await.ok()
}

#[cfg(feature = "tokio")]
async fn memoize_with_async<T, E, Fut>(
    site: &CallSite,
    key: Option<String>,
    body: impl FnOnce() -> Fut,
) -> Result<T, NotCached<E>>
where
    T: Cacheable,
    Fut: Future<Output = Result<T, NotCached<E>>>,
{
    let Some(key) = key else {
        site.warn_no_key();
        return body().await;
    };
    let Some(tower) = site.tower() else { return body().await };
    let mut faults = Faults::default();
    if let Some(value) = tower.read_through_async::<T>(&key, &mut faults).await {
        return Ok(value);
    }
    tower.compute_and_set_async(&key, body, faults).await
}

/// Removes the cached entry of one call (the `<fn>_invalidate` companion).
///
/// # Errors
/// The error of the topmost layer that failed to delete (see
/// [`CacheTower::delete`](crate::CacheTower::delete)); `Ok` when no tower is registered.
pub fn invalidate(site: &CallSite, key: Option<String>) -> crate::Result<()> {
    match (key, site.tower()) {
        (Some(key), Some(tower)) => tower.delete(&key),
        _ => Ok(()),
    }
}

/// The async twin of [`invalidate`].
///
/// # Errors
/// As [`invalidate`].
#[cfg(feature = "tokio")]
pub async fn invalidate_async(site: &CallSite, key: Option<String>) -> crate::Result<()> {
    match (key, site.tower()) {
        (Some(key), Some(tower)) => tower.delete_async(&key).await,
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn site(tower: &'static str) -> CallSite {
        CallSite::new(tower, "unit::f")
    }

    fn register_memory(name: &str) -> Arc<CacheTower> {
        let tower = Arc::new(CacheTower::from_json(r#"[{"adapter": "memory"}]"#).unwrap());
        registry::register(name, Arc::clone(&tower));
        tower
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the form #[cached_tower] expands to
    fn key_parts_write_what_format_would() {
        #[allow(unused_imports)]
        use super::{KeyDisplay as _, KeyStr as _};
        let mut key = String::new();
        let owned = String::from("eu");
        (&KeyPart(&"a:")).push_key(&mut key);
        (&KeyPart(&owned)).push_key(&mut key);
        (&KeyPart(&42u64)).push_key(&mut key);
        (&KeyPart(&-1.5f64)).push_key(&mut key);
        assert_eq!(key, format!("{}{}{}{}", "a:", owned, 42u64, -1.5f64));
    }

    #[test]
    fn default_key_is_path_and_json_arguments() {
        assert_eq!(default_key("a::f", &(7u32, "eu")).as_deref(), Some(r#"a::f:[7,"eu"]"#));
        assert_eq!(default_key("a::g", &[(); 0]).as_deref(), Some("a::g:[]"));
        let unserializable: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        assert_eq!(default_key("a::h", &(unserializable,)), None);
    }

    #[test]
    fn memoize_runs_the_body_once_per_key() {
        register_memory("unit_memoize_once");
        let site = site("unit_memoize_once");
        let runs = AtomicUsize::new(0);
        let call = |n: u32| {
            memoize(&site, Some(format!("k{n}")), || {
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
        assert_eq!(memoize_result::<u8, &str>(&site, Some("r".into()), || Err("no")), Err("no"));
        assert!(!tower.exists("r").unwrap());
        assert_eq!(memoize_result::<u8, &str>(&site, Some("r".into()), || Ok(1)), Ok(1));
        assert_eq!(memoize_result::<u8, &str>(&site, Some("r".into()), || Err("cached")), Ok(1));
        assert_eq!(memoize_option::<u8>(&site, Some("o".into()), || None), None);
        assert!(!tower.exists("o").unwrap());
        assert_eq!(memoize_option(&site, Some("o".into()), || Some(5u8)), Some(5));
        assert_eq!(memoize_option::<u8>(&site, Some("o".into()), || None), Some(5));
    }

    #[test]
    fn without_a_tower_or_key_the_body_runs_every_time() {
        let site = site("unit_memoize_never_registered");
        let runs = AtomicUsize::new(0);
        for _ in 0..3 {
            memoize(&site, Some("k".into()), || runs.fetch_add(1, Ordering::SeqCst));
        }
        register_memory("unit_memoize_no_key");
        let keyless = CallSite::new("unit_memoize_no_key", "unit::g");
        for _ in 0..3 {
            memoize(&keyless, None, || runs.fetch_add(1, Ordering::SeqCst));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 6);
        assert!(site.warned.load(Ordering::Relaxed) && keyless.warned.load(Ordering::Relaxed));
    }

    #[test]
    fn invalidate_removes_the_entry() {
        let tower = register_memory("unit_memoize_invalidate");
        let site = site("unit_memoize_invalidate");
        memoize(&site, Some("k".into()), || 1u8);
        invalidate(&site, Some("k".into())).unwrap();
        assert!(!tower.exists("k").unwrap());
        assert!(invalidate(&CallSite::new("unit_nowhere", "f"), Some("k".into())).is_ok());
    }
}
