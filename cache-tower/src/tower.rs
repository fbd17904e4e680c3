//! [`CacheTower`]: the stack of layers and its public operations.
//!
//! Every operation is a plan (`plan.rs`: what to ask which layer, written once) run by the
//! blocking driver (`blocking.rs`) or, for the `*_async` twins, the async one
//! (`asynchronous.rs`). This file holds construction, the blocking entry points, layer
//! management and then the async entry points; `docs/architecture.md` walks through the whole
//! design.
//!
//! # Read path
//!
//! `get` first tries the fast lane (`fast_lane.rs`): a typed hit in a FIFO memory top layer is
//! cloned straight into the result. Otherwise it runs the [`Read`](plan::Read) plan: layer 0,
//! then layer 1, and so on; the first layer that holds a value *that decodes as the requested
//! type* answers. Every layer above it is then backfilled with that value, for no longer than the
//! entry had left where it was found; layers below are not touched. A layer that fails (I/O,
//! timeout) or holds an undecodable value counts as a miss: the read goes on.
//!
//! # Write path
//!
//! `set`, `mset`, `delete`, `delete_many`, `flush` and `clear` go to every layer, from the bottom (shared, slow) up to
//! layer 0 ([`WriteLayers`](plan::WriteLayers)). Bottom up, a reader that misses the top layer
//! during a write finds the new value below rather than backfilling the old one. A layer that
//! fails is skipped; the others are still written, and the call returns the error of the topmost
//! failing layer.
//!
//! # Around every layer call
//!
//! Each call goes through the layer's circuit breaker and counters (`layer.rs`): a layer that
//! keeps failing is skipped for a while. Writes into in-process layers that sit above a watched
//! shared layer are checked against the changes other processes made meanwhile
//! (`coherence.rs`), so an old value never lands in memory after its invalidation.

#[cfg(feature = "tokio")]
mod asynchronous;
mod blocking;
pub(crate) mod coherence;
mod fast_lane;
mod layer;
mod load;
mod many;
mod plan;

use std::fmt;
#[cfg(feature = "tokio")]
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use indexmap::IndexMap;
use parking_lot::Mutex;

use crate::adapter::{CacheAdapter, IntoAdapter};
use crate::config;
use crate::error::{Error, ErrorKind, Result};
use crate::flight::Flights;
use crate::load_options::LoadOptions;
use crate::stats::LayerStats;
use crate::value::{Cacheable, Entry, StoredValue};
#[cfg(feature = "tokio")]
use asynchronous::{run, run_computing};
use coherence::Coherence;
pub(crate) use fast_lane::return_fast_hit;
pub(crate) use layer::Layer;
pub(crate) use load::RefreshAhead;
use plan::{Context, Exists, GetOrSet, Mget, Read, StoreAs, Write, WriteLayers, mset_entries, own_ttl};

/// A snapshot of a tower's stack, as its reads hold it.
pub(crate) type Stack = arc_swap::Guard<Arc<Vec<Layer>>>;

/// A multilevel cache: an ordered stack of layers, layer 0 (fastest) first.
///
/// Methods take `&self`, layer management included, so a tower can be shared behind an `Arc`
/// and reconfigured while in use; each operation sees one consistent stack.
///
/// Every operation has an async twin (`get_async`, `set_async`, `get_or_set_async`, ...) with
/// the `tokio` feature; the sync operations block on network I/O, so call them outside async
/// code (or in `spawn_blocking`).
///
/// ```
/// use std::time::Duration;
/// use cache_tower::{CacheTower, MemoryAdapter};
///
/// let tower = CacheTower::new();
/// tower.add_layer(MemoryAdapter::builder().maxsize(1024).lru(true).ttl(Duration::from_secs(60)).build());
/// tower.set("greeting", "hello".to_string())?;
/// assert_eq!(tower.get::<String>("greeting"), Some("hello".to_string()));
/// # Ok::<(), cache_tower::Error>(())
/// ```
pub struct CacheTower {
    stack: ArcSwap<Vec<Layer>>,
    /// Serializes layer-management calls, so none of them loses another's change.
    reconfigure: Mutex<()>,
    flights: crate::sync_shim::Arc<Flights>,
    /// Evicts local copies of keys changed in shared layers (cross-process invalidation).
    coherence: Coherence,
    /// What get-or-set does when a call does not say ([`LoadOptions`]).
    load_options: ArcSwap<LoadOptions>,
}

impl Default for CacheTower {
    fn default() -> Self {
        Self::new()
    }
}

// ===== impl CacheTower: construction =====

impl CacheTower {
    /// An empty tower (the programmatic method): add layers with [`add_layer`](Self::add_layer).
    /// A tower without layers misses every read and ignores writes.
    pub fn new() -> Self {
        Self {
            stack: ArcSwap::from_pointee(Vec::new()),
            reconfigure: Mutex::new(()),
            flights: crate::sync_shim::Arc::new(Flights::default()),
            coherence: Coherence::default(),
            load_options: ArcSwap::from_pointee(LoadOptions::new()),
        }
    }

    /// A tower from the JSON list-of-layers configuration (the dictionary method).
    ///
    /// See [`from_config`](Self::from_config) for the format.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[
    ///     {"adapter": "memory", "namespace": "session:", "ttl": 60, "params": {"maxsize": 1024, "lru": true}}
    /// ]"#)?;
    /// assert_eq!(tower.get_layers().len(), 1);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the text is not JSON or the configuration is wrong; the error
    /// names the layer index and the field.
    pub fn from_json(json: &str) -> Result<Self> {
        Self::from_config(&config::parse_json(json)?)
    }

    /// A tower from an already parsed configuration: a JSON array with one object per layer, top
    /// layer first — or an object holding that array as `layers` and the tower's default
    /// [`LoadOptions`] as `load` (`ttl`, `stale`, `fail_safe` in seconds, `soft_timeout_ms`,
    /// `hard_timeout_ms`, `refresh_ahead`):
    ///
    /// ```
    /// let config = serde_json::json!({
    ///     "layers": [{"adapter": "memory", "ttl": 60, "stale": 3600}],
    ///     "load": {"fail_safe": 30, "soft_timeout_ms": 100, "refresh_ahead": 0.8}
    /// });
    /// let tower = cache_tower::CacheTower::from_config(&config)?;
    /// assert_eq!(tower.load_options().fail_safe, Some(std::time::Duration::from_secs(30)));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// Each layer:
    ///
    /// | field | type | meaning |
    /// |---|---|---|
    /// | `adapter` | string, required | `"memory"` |
    /// | `namespace` | string, default `""` | prefix of every key in this layer |
    /// | `ttl` | whole seconds ≥ 0, default `0` | how long entries live; `0` = never expire |
    /// | `params` | object, default `{}` | adapter settings; memory: `maxsize` (integer ≥ 0, `0` = unbounded), `lru` (bool) |
    ///
    /// ```
    /// let config = serde_json::json!([{"adapter": "memory", "params": {"maxsize": 2}}]);
    /// let tower = cache_tower::CacheTower::from_config(&config)?;
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`], naming the layer index and the field: unknown adapter or field,
    /// wrong type, negative or fractional TTL, and so on.
    pub fn from_config(config: &serde_json::Value) -> Result<Self> {
        let (layers, options) = config::build_tower(config)?;
        let tower = Self::new();
        tower.set_layers(layers);
        tower.set_load_options(options);
        Ok(tower)
    }
}

// ===== impl CacheTower: reads =====

impl CacheTower {
    /// Reads `key`: the value of the first layer that has it, backfilling the layers above.
    ///
    /// An in-process hit is a clone of the stored value; a value from a shared layer is decoded.
    /// A value that does not decode as `T` counts as a miss in its layer.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.set("n", 5u32)?;
    /// assert_eq!(tower.get::<u32>("n"), Some(5));
    /// assert_eq!(tower.get::<u32>("missing"), None);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// A read cannot fail: a layer that fails (down, timing out, answering garbage) is a miss,
    /// counted in [`stats`](Self::stats) and logged, and the read goes on to the layer below
    /// (ADR 10).
    pub fn get<T: Cacheable>(&self, key: &str) -> Option<T> {
        let stack = self.load_stack();
        let top_lacks_key = return_fast_hit!(stack.first(), key, |value: &T| Some(value.clone()));
        if fast_lane::missed_alone::<T>(&stack, top_lacks_key) {
            return None;
        }
        blocking::run(Read::new(self.context(&stack), key).below_top(top_lacks_key)).0
    }

    /// The fast lane as a value, for the async paths (their results are moved into their futures'
    /// output anyway), before they take a counted reference to the stack.
    #[cfg(feature = "tokio")]
    pub(crate) fn fast_hit<T: Cacheable>(&self, key: &str) -> Option<T> {
        let stack = self.load_stack();
        return_fast_hit!(stack.first(), key, |value: &T| Some(value.clone()));
        None
    }

    /// The current stack, for a read's fast lane (`Layer::lookup`).
    #[inline(always)]
    pub(crate) fn load_stack(&self) -> Stack {
        self.stack.load()
    }

    /// What the plans of one operation on `stack` work with.
    fn context<'s>(&'s self, stack: &'s [Layer]) -> Context<'s> {
        Context { stack, log: &self.coherence.log, flights: &self.flights }
    }

    /// Reads many keys. Every requested key is in the result, in the order asked (a key asked
    /// twice appears once, where it was first asked), `None` for a miss. Each layer is asked once
    /// for the keys still missing (one round trip for a batching layer), and each key is
    /// backfilled only into the layers above the one it was found in.
    ///
    /// The result is an [`IndexMap`](indexmap::IndexMap) (crate `indexmap`, version 2: add
    /// `indexmap = "2"` to name the type): indexed by key like a `HashMap`, iterated in request
    /// order. Like [`get`](Self::get), it cannot fail.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.set("a", 0)?; // a falsy value is a hit like any other
    /// let values = tower.mget::<i32, _>(&["b", "a"]);
    /// assert_eq!(values["a"], Some(0));
    /// assert_eq!(values["b"], None);
    /// assert_eq!(values.keys().collect::<Vec<_>>(), ["b", "a"]);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn mget<T: Cacheable, K: AsRef<str>>(&self, keys: &[K]) -> IndexMap<String, Option<T>> {
        let stack = self.stack.load();
        blocking::run(Mget::new(self.context(&stack), keys))
    }

    /// Whether any layer has `key`. Never backfills.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// assert!(!tower.exists("k"));
    /// tower.set("k", true)?;
    /// assert!(tower.exists("k"));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// Like [`get`](Self::get), it cannot fail: a failing layer counts as not having the key.
    pub fn exists(&self, key: &str) -> bool {
        let stack = self.stack.load();
        blocking::run(Exists::new(self.context(&stack), key))
    }
}

// ===== impl CacheTower: writes =====

impl CacheTower {
    /// Writes `key` into every layer, each with its own TTL.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}, {"adapter": "memory"}]"#)?;
    /// tower.set("k", vec!["a".to_string()])?;
    /// assert!(tower.get_layers().iter().all(|layer| layer.exists("k").unwrap()));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// The error of the topmost layer that failed; every other layer was still written.
    pub fn set<T: Cacheable>(&self, key: &str, value: T) -> Result<()> {
        self.write(Write::Set(key, Entry::new(StoredValue::new(value), None)))
    }

    /// [`set`](Self::set) with a TTL of the entry's own: each layer keeps it for the shorter of
    /// `ttl` and the layer's TTL. `Duration::ZERO` means no TTL of its own (as `"ttl": 0` does
    /// for a layer); a TTL over [`MAX_TTL`](crate::adapter::MAX_TTL) is that.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // The layer keeps entries 60 s; this one lives 5 s.
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory", "ttl": 60}]"#)?;
    /// tower.set_with_ttl("session:1", "token".to_string(), Duration::from_secs(5))?;
    /// assert_eq!(tower.get::<String>("session:1").as_deref(), Some("token"));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub fn set_with_ttl<T: Cacheable>(&self, key: &str, value: T, ttl: Duration) -> Result<()> {
        self.write(Write::Set(key, Entry::new(StoredValue::new(value), own_ttl(ttl))))
    }

    /// [`set`](Self::set) with the storing part of `options`: the entry's own TTL
    /// ([`LoadOptions::ttl`]), its stale window in memory layers ([`LoadOptions::stale`]) and its
    /// tags ([`LoadOptions::tags`]), which [`invalidate_tag`](Self::invalidate_tag) acts on. The
    /// other options are about computing a value and do nothing here.
    ///
    /// ```
    /// use cache_tower::LoadOptions;
    ///
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.set_with("order:7", 70, &LoadOptions::new().tags(["customer:3"]))?;
    /// tower.set_with("order:8", 80, &LoadOptions::new().tags(["customer:4"]))?;
    /// tower.invalidate_tag("customer:3")?;
    /// assert_eq!(tower.get::<i32>("order:7"), None);
    /// assert_eq!(tower.get::<i32>("order:8"), Some(80));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub fn set_with<T: Cacheable>(&self, key: &str, value: T, options: &LoadOptions) -> Result<()> {
        self.write(Write::Set(key, StoreAs::of(options).entry(StoredValue::new(value))))
    }

    /// Writes many keys into every layer (one batch per layer).
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.mset([("k1", 1), ("k2", 2)])?;
    /// assert_eq!(tower.get::<i32>("k2"), Some(2));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub fn mset<T, K, I>(&self, items: I) -> Result<()>
    where
        T: Cacheable,
        K: AsRef<str>,
        I: IntoIterator<Item = (K, T)>,
    {
        let entries = mset_entries(items, None);
        self.write(Write::mset(&entries))
    }

    /// [`mset`](Self::mset) with one TTL of the entries' own, as for
    /// [`set_with_ttl`](Self::set_with_ttl).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.mset_with_ttl([("a", 1), ("b", 2)], Duration::from_secs(30))?;
    /// assert_eq!(tower.get::<i32>("b"), Some(2));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub fn mset_with_ttl<T, K, I>(&self, items: I, ttl: Duration) -> Result<()>
    where
        T: Cacheable,
        K: AsRef<str>,
        I: IntoIterator<Item = (K, T)>,
    {
        let entries = mset_entries(items, own_ttl(ttl));
        self.write(Write::mset(&entries))
    }

    /// Removes `key` from every layer.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.set("k", 1)?;
    /// tower.delete("k")?;
    /// assert!(!tower.exists("k"));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub fn delete(&self, key: &str) -> Result<()> {
        self.write(Write::Delete(key))
    }

    /// Removes every key of `keys` from every layer: one batch per layer (one `UNLINK` on
    /// Redis, one per hash slot on a cluster) however many keys.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.mset([("a", 1), ("b", 2), ("c", 3)])?;
    /// tower.delete_many(&["a", "b"])?;
    /// assert!(!tower.exists("a") && !tower.exists("b") && tower.exists("c"));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub fn delete_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<()> {
        self.write(Write::DeleteMany(keys.iter().map(AsRef::as_ref).collect()))
    }

    /// Empties every layer (each layer removes only the keys of its own namespace).
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.set("k", 1)?;
    /// tower.flush()?;
    /// assert!(!tower.exists("k"));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub fn flush(&self) -> Result<()> {
        self.write(Write::Flush)
    }

    /// Makes every entry of every layer a miss, in every instance that shares the layers, at a
    /// cost that does not grow with what they hold: a logical clear, where
    /// [`flush`](Self::flush) removes keys one by one.
    ///
    /// * A memory layer is emptied (its listener hears
    ///   [`RemovalCause::Invalidated`](crate::adapter::RemovalCause::Invalidated)).
    /// * A Redis layer moves its namespace to a new *generation* with one `INCR` of its
    ///   generation record, `<namespace>\0generation`: one round trip, whether the namespace holds
    ///   ten keys or ten million. Keys of generation `N > 0` are `<namespace>\0g<N>\0<key>`
    ///   (generation 0 is the plain `<namespace><key>`); the old ones are unreachable at once,
    ///   and go by their TTL or with the next `flush`.
    /// * Other instances hear of it through their invalidation listener (Redis client
    ///   tracking), move to the new generation and empty their memory layers, within the same
    ///   latency as any other change; an instance without invalidation reads the record again
    ///   at most a second after its last read, so it follows a clear within a second.
    ///
    /// A cleared entry is never served again, not even by get-or-set's fail-safe.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.set("k", 1)?;
    /// tower.clear()?;
    /// assert!(!tower.exists("k"));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`set`](Self::set): a layer that could not be cleared (the others still are).
    pub fn clear(&self) -> Result<()> {
        self.write(Write::Clear)
    }

    /// Makes every entry written with `tag` ([`set_with`](Self::set_with),
    /// [`LoadOptions::tags`], `#[cached_tower(tags = [...])]`) a miss in every layer of every
    /// instance, at a cost that does not grow with the number of entries:
    ///
    /// * a memory layer marks the tag: every entry carrying it misses at once, and the layer
    ///   reclaims them as it is used (it keeps an index from each tag to its keys; see
    ///   [`MemoryAdapter`](crate::MemoryAdapter)'s `invalidate_tag`);
    /// * a Redis layer writes a new random version of the tag into one record,
    ///   `<namespace>\0tag\0<tag>` (one `SET`, one round trip). Each tagged entry is stored with
    ///   the versions its tags had when it was written, and a read that finds a version no longer
    ///   current is a miss; the old entries expire by their TTL. The record lives as long as the
    ///   layer keeps an entry (its TTL plus its stale window; no expiry without a TTL);
    /// * other instances with invalidation on hear the record change (client tracking) and
    ///   mark the tag in their memory layers, within the coherence figures; a lost
    ///   tracking connection empties their memory layers as for any change. Without invalidation,
    ///   every read of a tagged entry from Redis checks its tags' records (one more round trip).
    ///
    /// An invalidated entry is never served again, not even by get-or-set's fail-safe. An
    /// untagged entry costs one check that it has no tags on a memory read, and a first-byte
    /// check on a Redis read.
    ///
    /// ```
    /// use cache_tower::LoadOptions;
    ///
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// let by_tenant = LoadOptions::new().tags(["tenant:acme"]);
    /// tower.set_with("report:1", 1, &by_tenant)?;
    /// tower.set_with("report:2", 2, &by_tenant)?;
    /// tower.set("report:3", 3)?;
    /// tower.invalidate_tag("tenant:acme")?;
    /// assert!(!tower.exists("report:1") && !tower.exists("report:2") && tower.exists("report:3"));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`set`](Self::set): a layer that could not invalidate the tag (the others still
    /// did).
    pub fn invalidate_tag(&self, tag: &str) -> Result<()> {
        self.write(Write::InvalidateTag(tag))
    }

    fn write(&self, write: Write<'_>) -> Result<()> {
        let stack = self.stack.load();
        if let Some(written) = fast_lane::write_alone(&stack, &write) {
            return written;
        }
        blocking::run(WriteLayers::store(self.context(&stack), write, Default::default()))
    }
}

// ===== impl CacheTower: get_or_set =====

impl CacheTower {
    /// Returns the cached value of `key`, or computes it with `compute`, stores it in every layer
    /// and returns it.
    ///
    /// Single flight: when many threads miss the same key at once, `compute` runs once and they
    /// all get its value. If it panics, the panic goes to its caller and the waiting threads try
    /// again (one of them computing); nobody is left waiting. Failures to store the value are
    /// counted and logged, not returned: the caller gets its value either way.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// let first = tower.get_or_set("answer", || 42);
    /// let second = tower.get_or_set("answer", || unreachable!("cached"));
    /// assert_eq!((first, second), (42, 42));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn get_or_set<T: Cacheable>(&self, key: &str, compute: impl FnOnce() -> T) -> T {
        match self.try_get_or_set(key, || Ok::<T, std::convert::Infallible>(compute())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// [`get_or_set`](Self::get_or_set) for a computation that can fail: an `Err` is returned to
    /// the caller whose computation failed and is not cached; threads waiting on it try again.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// let failed: Result<u32, String> = tower.try_get_or_set("k", || Err("database down".to_string()));
    /// assert!(failed.is_err());
    /// assert_eq!(tower.try_get_or_set("k", || Ok::<_, String>(7)), Ok(7));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// The error `compute` returned (unless the tower's [`LoadOptions`] has a fail-safe and a
    /// stale value was found: see [`try_get_or_set_with`](Self::try_get_or_set_with)).
    pub fn try_get_or_set<T, E, F>(&self, key: &str, compute: F) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Result<T, E>,
    {
        self.try_get_or_set_with(key, &LoadOptions::new(), compute)
    }

    /// [`get_or_set`](Self::get_or_set) with [`LoadOptions`]: the computed value's TTL and
    /// stale window, and the fail-safe (a panic of `compute` is answered with a stale value
    /// when the fail-safe has one; without one it goes to the caller). Unset options take the
    /// tower's ([`set_load_options`](Self::set_load_options)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_tower::{CacheTower, LoadOptions};
    ///
    /// let tower = CacheTower::from_json(r#"[{"adapter": "memory", "ttl": 60, "stale": 3600}]"#)?;
    /// let options = LoadOptions::new().ttl(Duration::from_secs(5)).fail_safe(Duration::from_secs(10));
    /// assert_eq!(tower.get_or_set_with("k", &options, || 1), 1);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn get_or_set_with<T: Cacheable>(&self, key: &str, options: &LoadOptions, compute: impl FnOnce() -> T) -> T {
        match self.try_get_or_set_with(key, options, || Ok::<T, std::convert::Infallible>(compute())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// [`try_get_or_set`](Self::try_get_or_set) with [`LoadOptions`]. With a fail-safe, an `Err`
    /// (or a panic) of `compute` is answered with a stale value of the key when some layer holds
    /// one (see [`LoadOptions`]).
    ///
    /// # Errors
    /// The error `compute` returned, when there was no stale value to fall back on.
    pub fn try_get_or_set_with<T, E, F>(&self, key: &str, options: &LoadOptions, compute: F) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Result<T, E>,
    {
        let stack = self.load_stack();
        let top_lacks_key = return_fast_hit!(stack.first(), key, |value: &T| Ok(value.clone()));
        let options = options.or(&self.load_options.load());
        let plan = GetOrSet::new(self.context(&stack), key, top_lacks_key, &options);
        blocking::run_computing(plan, Some(blocking::Inline(compute)))
    }

    /// The [`LoadOptions`] that get-or-set calls use where they set nothing (default: none of
    /// them set).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_tower::{CacheTower, LoadOptions};
    ///
    /// let tower = CacheTower::new();
    /// tower.set_load_options(LoadOptions::new().fail_safe(Duration::from_secs(30)));
    /// assert_eq!(tower.load_options().fail_safe, Some(Duration::from_secs(30)));
    /// ```
    pub fn set_load_options(&self, options: LoadOptions) {
        self.load_options.store(Arc::new(options));
    }

    /// The tower's default [`LoadOptions`] ([`set_load_options`](Self::set_load_options)).
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions::clone(&self.load_options.load())
    }

    /// Whether a read that misses the top layer may wait on I/O: some layer is not in-process.
    #[cfg(feature = "tokio")]
    pub(crate) fn waits_on_io(&self) -> bool {
        self.load_stack().iter().any(|layer| !layer.adapter.is_process_local())
    }

    /// [`try_get_or_set_with`](Self::try_get_or_set_with) after the fast lane.
    pub(crate) fn get_or_compute<T, E, F>(&self, key: &str, options: &LoadOptions, compute: F) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Result<T, E>,
    {
        let stack = self.load_stack();
        let options = options.or(&self.load_options.load());
        let plan = GetOrSet::new(self.context(&stack), key, false, &options);
        blocking::run_computing(plan, Some(blocking::Inline(compute)))
    }
}

// ===== impl CacheTower: layers and stats =====

impl CacheTower {
    /// Adds a layer at the bottom of the stack: it is asked last on reads.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::new();
    /// tower.add_layer(cache_tower::MemoryAdapter::new());
    /// assert_eq!(tower.get_layers().len(), 1);
    /// ```
    pub fn add_layer(&self, adapter: impl IntoAdapter) {
        let layer = Layer::new(adapter.into_adapter());
        self.modify(|stack| stack.push(layer));
    }

    /// The adapters of the stack, top (layer 0) first.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}, {"adapter": "memory"}]"#)?;
    /// let layers = tower.get_layers();
    /// assert_eq!(layers.len(), 2);
    /// assert_eq!(layers[0].kind(), "memory");
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn get_layers(&self) -> Vec<Arc<dyn CacheAdapter>> {
        self.stack.load().iter().map(|layer| Arc::clone(&layer.adapter)).collect()
    }

    /// Replaces the whole stack (its counters start again from zero).
    ///
    /// ```
    /// use cache_tower::{CacheTower, MemoryAdapter, adapter::CacheAdapter};
    /// use std::sync::Arc;
    ///
    /// let tower = CacheTower::new();
    /// let layers: Vec<Arc<dyn CacheAdapter>> = vec![Arc::new(MemoryAdapter::new()), Arc::new(MemoryAdapter::new())];
    /// tower.set_layers(layers);
    /// assert_eq!(tower.get_layers().len(), 2);
    /// ```
    pub fn set_layers<I>(&self, adapters: I)
    where
        I: IntoIterator,
        I::Item: IntoAdapter,
    {
        let layers: Vec<Layer> = adapters.into_iter().map(|a| Layer::new(a.into_adapter())).collect();
        self.modify(|stack| *stack = layers);
    }

    /// Replaces the layer at `position`, or appends when `position` is the length of the stack.
    ///
    /// ```
    /// use cache_tower::{CacheTower, MemoryAdapter, error::ErrorKind};
    ///
    /// let tower = CacheTower::new();
    /// tower.set_layer(MemoryAdapter::new(), 0)?;     // appends
    /// tower.set_layer(MemoryAdapter::new(), 0)?;     // replaces
    /// assert_eq!(tower.get_layers().len(), 1);
    /// assert_eq!(tower.set_layer(MemoryAdapter::new(), 5).unwrap_err().kind(), ErrorKind::Position);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Position`] when `position` is past the end of the stack.
    pub fn set_layer(&self, adapter: impl IntoAdapter, position: usize) -> Result<()> {
        let layer = Layer::new(adapter.into_adapter());
        let mut outcome = Ok(());
        self.modify(|stack| match position {
            p if p < stack.len() => stack[p] = layer,
            p if p == stack.len() => stack.push(layer),
            p => {
                let layers = match stack.len() {
                    1 => "1 layer".to_owned(),
                    n => format!("{n} layers"),
                };
                outcome = Err(Error::new(
                    ErrorKind::Position,
                    format!(
                        "there is no layer position {p} in a tower of {layers}: give a position from 0 to {} \
                         (the last one adds a layer at the bottom)",
                        stack.len()
                    ),
                ));
            }
        });
        outcome
    }

    fn modify(&self, change: impl FnOnce(&mut Vec<Layer>)) {
        let _guard = self.reconfigure.lock();
        let mut stack = Vec::clone(&self.stack.load());
        change(&mut stack);
        self.coherence.rewatch(&mut stack);
        self.stack.store(Arc::new(stack));
    }

    /// Per-layer counters, top layer first.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.get::<u8>("absent");
    /// assert_eq!(tower.stats()[0].misses, 1);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn stats(&self) -> Vec<LayerStats> {
        self.stack.load().iter().enumerate().map(|(index, layer)| layer.snapshot(index)).collect()
    }
}

// ===== impl CacheTower: the async twins (feature `tokio`) =====

#[cfg(feature = "tokio")]
impl CacheTower {
    /// The async twin of [`get`](Self::get).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_tower::Result<()> {
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.set_async("k", 1u8).await?;
    /// assert_eq!(tower.get_async::<u8>("k").await, Some(1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_async<T: Cacheable>(&self, key: &str) -> Option<T> {
        if let Some(value) = self.fast_hit(key) {
            return Some(value);
        }
        let stack = self.stack.load_full();
        run(Read::new(self.context(&stack), key)).await.0
    }

    /// The async twin of [`mget`](Self::mget): the keys in request order.
    pub async fn mget_async<T: Cacheable, K: AsRef<str>>(&self, keys: &[K]) -> IndexMap<String, Option<T>> {
        let stack = self.stack.load_full();
        run(Mget::new(self.context(&stack), keys)).await
    }

    /// The async twin of [`exists`](Self::exists).
    pub async fn exists_async(&self, key: &str) -> bool {
        let stack = self.stack.load_full();
        run(Exists::new(self.context(&stack), key)).await
    }

    /// The async twin of [`set`](Self::set).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn set_async<T: Cacheable>(&self, key: &str, value: T) -> Result<()> {
        self.write_async(Write::Set(key, Entry::new(StoredValue::new(value), None))).await
    }

    /// The async twin of [`set_with_ttl`](Self::set_with_ttl).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn set_with_ttl_async<T: Cacheable>(&self, key: &str, value: T, ttl: Duration) -> Result<()> {
        self.write_async(Write::Set(key, Entry::new(StoredValue::new(value), own_ttl(ttl)))).await
    }

    /// The async twin of [`set_with`](Self::set_with).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn set_with_async<T: Cacheable>(&self, key: &str, value: T, options: &LoadOptions) -> Result<()> {
        self.write_async(Write::Set(key, StoreAs::of(options).entry(StoredValue::new(value)))).await
    }

    /// The async twin of [`mset`](Self::mset).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn mset_async<T, K, I>(&self, items: I) -> Result<()>
    where
        T: Cacheable,
        K: AsRef<str>,
        I: IntoIterator<Item = (K, T)>,
    {
        let entries = mset_entries(items, None);
        self.write_async(Write::mset(&entries)).await
    }

    /// The async twin of [`mset_with_ttl`](Self::mset_with_ttl).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn mset_with_ttl_async<T, K, I>(&self, items: I, ttl: Duration) -> Result<()>
    where
        T: Cacheable,
        K: AsRef<str>,
        I: IntoIterator<Item = (K, T)>,
    {
        let entries = mset_entries(items, own_ttl(ttl));
        self.write_async(Write::mset(&entries)).await
    }

    /// The async twin of [`delete`](Self::delete).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn delete_async(&self, key: &str) -> Result<()> {
        self.write_async(Write::Delete(key)).await
    }

    /// The async twin of [`delete_many`](Self::delete_many).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn delete_many_async<K: AsRef<str>>(&self, keys: &[K]) -> Result<()> {
        self.write_async(Write::DeleteMany(keys.iter().map(AsRef::as_ref).collect())).await
    }

    /// The async twin of [`flush`](Self::flush).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn flush_async(&self) -> Result<()> {
        self.write_async(Write::Flush).await
    }

    /// The async twin of [`clear`](Self::clear).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn clear_async(&self) -> Result<()> {
        self.write_async(Write::Clear).await
    }

    /// The async twin of [`invalidate_tag`](Self::invalidate_tag).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn invalidate_tag_async(&self, tag: &str) -> Result<()> {
        self.write_async(Write::InvalidateTag(tag)).await
    }

    async fn write_async(&self, write: Write<'_>) -> Result<()> {
        let stack = self.stack.load_full();
        if let Some(written) = fast_lane::write_alone(&stack, &write) {
            return written;
        }
        run(WriteLayers::store(self.context(&stack), write, Default::default())).await
    }

    /// The async twin of [`get_or_set`](Self::get_or_set): concurrent tasks (and threads) asking
    /// for the same missing key share one computation. Dropping the computing task's future
    /// (cancellation) releases the waiting ones, one of which computes instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_tower::Result<()> {
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// let value = tower.get_or_set_async("k", || async { 42u32 }).await;
    /// assert_eq!(value, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_set_async<T, F, Fut>(&self, key: &str, compute: F) -> T
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let fallible = || async { Ok::<T, std::convert::Infallible>(compute().await) };
        match self.try_get_or_set_async(key, fallible).await {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// The async twin of [`try_get_or_set`](Self::try_get_or_set).
    ///
    /// # Errors
    /// The error `compute` returned.
    pub async fn try_get_or_set_async<T, E, F, Fut>(&self, key: &str, compute: F) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.try_get_or_set_with_async(key, &LoadOptions::new(), compute).await
    }

    /// The async twin of [`get_or_set_with`](Self::get_or_set_with).
    pub async fn get_or_set_with_async<T, F, Fut>(&self, key: &str, options: &LoadOptions, compute: F) -> T
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let fallible = || async { Ok::<T, std::convert::Infallible>(compute().await) };
        match self.try_get_or_set_with_async(key, options, fallible).await {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// The async twin of [`try_get_or_set_with`](Self::try_get_or_set_with).
    ///
    /// # Errors
    /// The error `compute` returned, when there was no stale value to fall back on.
    pub async fn try_get_or_set_with_async<T, E, F, Fut>(
        &self,
        key: &str,
        options: &LoadOptions,
        compute: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(value) = self.fast_hit(key) {
            return Ok(value);
        }
        self.get_or_compute_async(key, options, compute).await
    }

    /// [`try_get_or_set_with_async`](Self::try_get_or_set_with_async) after the fast lane, as
    /// [`get_or_compute`](Self::get_or_compute).
    pub(crate) async fn get_or_compute_async<T, E, F, Fut>(
        &self,
        key: &str,
        options: &LoadOptions,
        compute: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let stack = self.stack.load_full();
        let options = options.or(&self.load_options.load());
        let plan = GetOrSet::new(self.context(&stack), key, false, &options);
        run_computing(plan, Some(asynchronous::Inline(compute))).await
    }
}

impl fmt::Debug for CacheTower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stack = self.stack.load();
        f.debug_struct("CacheTower")
            .field("layers", &stack.iter().map(|layer| &layer.adapter).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
