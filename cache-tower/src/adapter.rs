//! For authors of layer kinds, and for tests: what a layer is and what a tower says to it.
//!
//! * [`CacheAdapter`]: the trait a layer kind implements (and [`AsyncCacheAdapter`], for one
//!   whose I/O can be awaited). cache-tower ships [`MemoryAdapter`](crate::MemoryAdapter) and
//!   [`RedisAdapter`](crate::RedisAdapter); implement the trait to add a kind of your own (a
//!   file cache, memcached, a database table). A tower calls an adapter through
//!   `Arc<dyn CacheAdapter>`, so the trait is object safe.
//! * [`Request`] and [`Reply`]: one call to a layer, as data.
//! * [`Entry`] and [`StoredValue`]: a value as layers store it, typed or as JSON.
//! * [`Change`], [`ChangeSink`], [`ChangeWatch`]: how a shared layer reports changes made by
//!   other processes, so that memory layers above it drop stale copies.
//! * [`MemoryAdapterBuilder`] and `RedisAdapterBuilder`: the adapters' settings; [`MAX_TTL`],
//!   the longest TTL a layer takes.

pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
mod request;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;

pub use crate::adapter::memory::{ENTRY_OVERHEAD, EvictionPolicy, MemoryAdapterBuilder, RemovalCause};
#[cfg(feature = "redis")]
pub use crate::adapter::redis::RedisAdapterBuilder;
pub use crate::config::MAX_TTL;
pub use crate::value::{Entry, StoredValue};
pub use request::{Reply, Request};

/// One layer kind of a [`CacheTower`](crate::CacheTower).
///
/// Keys arrive as the tower's keys; the adapter applies its namespace. Each adapter has one TTL
/// for the whole layer ([`ttl`](Self::ttl)); an entry is written with a TTL of its own as well
/// ([`Entry::ttl`]), and the adapter keeps it for the shorter of the two. An entry past its TTL
/// must be absent for every operation.
///
/// Errors mean "this layer could not do it" (I/O, timeout). The tower treats a failed read as a
/// miss and goes on with the other layers, so an adapter should return `Err` rather than retry
/// for long. A stored value that turns out to be unreadable is not the adapter's concern: return
/// it, and the tower counts it as a decode failure.
///
/// `mget` and `mset` have default implementations that loop over `get` and `set`; an adapter
/// that can batch (one network round trip for many keys) should override them.
///
/// # Example: a complete adapter
///
/// A layer that keeps each entry's JSON in a `BTreeMap`, with no TTL:
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use cache_tower::{CacheTower, Error, MemoryAdapter, Result, adapter::{CacheAdapter, Entry, StoredValue}, error::ErrorKind};
///
/// #[derive(Debug, Clone, Default)]
/// struct JsonMapAdapter {
///     map: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
/// }
///
/// impl JsonMapAdapter {
///     fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>>> {
///         self.map.lock().map_err(|_| Error::new(ErrorKind::Layer, "map lock poisoned"))
///     }
/// }
///
/// impl CacheAdapter for JsonMapAdapter {
///     fn kind(&self) -> &'static str { "json-map" }
///     fn namespace(&self) -> &str { "" }
///     fn ttl(&self) -> Option<Duration> { None }
///
///     fn get(&self, key: &str) -> Result<Option<Entry>> {
///         let map = self.lock()?;
///         Ok(map.get(key).map(|json| Entry::new(StoredValue::from_json(json.clone()), None)))
///     }
///     fn set(&self, key: &str, entry: &Entry) -> Result<()> {
///         let json = entry.value().json()?.to_vec();
///         self.lock()?.insert(key.to_owned(), json);
///         Ok(())
///     }
///     fn delete(&self, key: &str) -> Result<()> {
///         self.lock()?.remove(key);
///         Ok(())
///     }
///     fn exists(&self, key: &str) -> Result<bool> {
///         Ok(self.lock()?.contains_key(key))
///     }
///     fn flush(&self) -> Result<()> {
///         self.lock()?.clear();
///         Ok(())
///     }
/// }
///
/// # fn main() -> cache_tower::Result<()> {
/// let slow = JsonMapAdapter::default();
/// let tower = CacheTower::new();
/// tower.add_layer(MemoryAdapter::new());
/// tower.add_layer(slow.clone());
///
/// slow.set("answer", &Entry::new(StoredValue::new(42u32), None))?;
/// assert_eq!(tower.get::<u32>("answer"), Some(42)); // found in layer 1, backfilled into layer 0
/// assert!(tower.get_layers()[0].exists("answer")?);
/// # Ok(())
/// # }
/// ```
pub trait CacheAdapter: fmt::Debug + Send + Sync + 'static {
    /// A short name of the layer kind for stats and logs, such as `"memory"` or `"redis"`.
    fn kind(&self) -> &'static str;

    /// The prefix this layer puts before every key.
    fn namespace(&self) -> &str;

    /// The layer's TTL: how long an entry lives at most; `None` means entries never expire.
    fn ttl(&self) -> Option<Duration>;

    /// The layer's stale window: how long an entry is kept past its TTL as a stale value, which
    /// plain reads never return and get-or-set's fail-safe may fall back on
    /// ([`get_stale`](Self::get_stale)). Zero (the default) for layers that keep no stale values.
    fn stale(&self) -> Duration {
        Duration::ZERO
    }

    /// Reads one key. `Ok(None)` is a miss. The entry's TTL is the time it has left. A stale
    /// entry (past its TTL, within the layer's [`stale`](Self::stale) window) is a miss here.
    fn get(&self, key: &str) -> Result<Option<Entry>>;

    /// Reads one key, stale or fresh: a fresh entry as [`get`](Self::get) returns it, or a stale
    /// one ([`Entry::stale`], [`Entry::is_stale`]) when its TTL has run out and its stale window
    /// has not. The default is [`get`](Self::get): a layer that keeps no stale values.
    fn get_stale(&self, key: &str) -> Result<Option<Entry>> {
        self.get(key)
    }

    /// Reads many keys: one result per key, in the order given (`None` for a miss).
    fn mget(&self, keys: &[&str]) -> Result<Vec<Option<Entry>>> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// Reads one key when its remaining TTL is not needed (nothing will be backfilled from this
    /// read: the tower asks its top layer this way). Override it when learning the TTL costs
    /// extra work, as it does for Redis; the default calls [`get`](Self::get).
    fn get_value(&self, key: &str) -> Result<Option<StoredValue>> {
        Ok(self.get(key)?.map(|entry| entry.into_parts().0))
    }

    /// [`mget`](Self::mget) without the TTLs, as [`get_value`](Self::get_value) is to `get`.
    fn mget_values(&self, keys: &[&str]) -> Result<Vec<Option<StoredValue>>> {
        Ok(self.mget(keys)?.into_iter().map(|entry| entry.map(|e| e.into_parts().0)).collect())
    }

    /// Writes one key, replacing any value it had. It lives for the shorter of the layer's TTL
    /// and the entry's; an entry whose TTL is zero is not stored (and any older value goes).
    fn set(&self, key: &str, entry: &Entry) -> Result<()>;

    /// Writes many keys, each as [`set`](Self::set) would.
    fn mset(&self, items: &[(&str, Entry)]) -> Result<()> {
        items.iter().try_for_each(|(key, entry)| self.set(key, entry))
    }

    /// Removes one key; removing an absent key is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    /// Removes many keys, each as [`delete`](Self::delete) would. The default loops over
    /// `delete`; Redis removes them all with one `UNLINK` (one per hash slot on a cluster).
    fn delete_many(&self, keys: &[&str]) -> Result<()> {
        keys.iter().try_for_each(|key| self.delete(key))
    }

    /// Whether this layer can hold the distributed lock of get-or-set
    /// ([`LoadOptions::lock`](crate::LoadOptions::lock)): [`lock`](Self::lock) and
    /// [`unlock`](Self::unlock). `false` by default; Redis says `true`.
    fn can_lock(&self) -> bool {
        false
    }

    /// Takes the lock of `key` for `ttl` with the owner token `token`, if nobody holds it: `true`
    /// when taken. A holder that dies leaves a lock that expires after `ttl`. The default (a layer
    /// that cannot lock) is an error.
    fn lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let _ = (key, token, ttl);
        Err(crate::Error::layer_fault(crate::error::Fault::Other, "this layer cannot hold locks"))
    }

    /// Releases the lock of `key` if `token` still holds it (a lock that expired and was taken
    /// by another is left alone).
    fn unlock(&self, key: &str, token: &str) -> Result<()> {
        let _ = (key, token);
        Ok(())
    }

    /// Whether the key is present and fresh (not expired, not stale). Never changes what is stored.
    fn exists(&self, key: &str) -> Result<bool>;

    /// Removes every key of this layer's namespace, and only those.
    fn flush(&self) -> Result<()>;

    /// Makes every key of this layer's namespace a miss, for every instance sharing the layer,
    /// at a cost that does not grow with what the layer holds: a *logical* clear, where
    /// [`flush`](Self::flush) removes keys one by one. The default is `flush`: right for a layer
    /// that holds little or lives in this process. Redis moves its namespace to a new
    /// generation in one round trip (the old keys are unreachable at once and expire by their
    /// TTL); see [`CacheTower::clear`](crate::CacheTower::clear).
    fn clear(&self) -> Result<()> {
        self.flush()
    }

    /// Makes every entry whose value carries `tag` ([`StoredValue::tags`]) a miss, for every
    /// instance sharing the layer, at a cost that does not grow with how many carry it. The
    /// default is [`flush`](Self::flush), which is always right (it removes more than asked):
    /// a layer that keeps tags overrides it. The memory layer marks the tag (its entries miss
    /// at once, and are reclaimed as it is used); Redis writes a new version of the tag, which
    /// every entry written under the old one no longer matches; see
    /// [`CacheTower::invalidate_tag`](crate::CacheTower::invalidate_tag).
    fn invalidate_tag(&self, tag: &str) -> Result<()> {
        let _ = tag;
        self.flush()
    }

    /// What the adapter counts itself (evictions, expirations); zeros by default.
    fn stats(&self) -> AdapterStats {
        AdapterStats::default()
    }

    /// Whether this layer lives inside this process, so that its copies go stale when another
    /// process changes a shared layer below it. The tower evicts such layers' copies when a
    /// layer below reports a change ([`watch_changes`](Self::watch_changes)). `false` by
    /// default; [`MemoryAdapter`](crate::MemoryAdapter) says `true`.
    fn is_process_local(&self) -> bool {
        false
    }

    /// Starts reporting changes to this layer's keys made by anyone — other processes, other
    /// programs, this process — to `sink`, until the returned [`ChangeWatch`] is dropped. The
    /// tower calls it for a shared layer with process-local layers above it, and evicts their
    /// stale copies. `None` (the default) means the layer cannot report changes.
    fn watch_changes(&self, sink: ChangeSink) -> Option<ChangeWatch> {
        let _ = sink;
        None
    }

    /// The [`MemoryAdapter`](crate::MemoryAdapter) this adapter is, if it is one: the tower then
    /// reads it without calls through this trait when it is the top layer (the hottest path of all).
    ///
    /// Sealed: its argument is a type other crates cannot name, so only `MemoryAdapter` answers
    /// `Some`. (An adapter wrapping a memory adapter must not hand it out here: the tower would
    /// read the inner adapter directly, bypassing the wrapper.)
    #[doc(hidden)]
    fn as_memory(&self, _: sealed::Token) -> Option<&crate::MemoryAdapter> {
        None
    }

    /// The adapter's non-blocking operations, for the tower's `*_async` calls.
    ///
    /// `None` (the default) means the adapter never waits on I/O, so the async calls run its
    /// sync methods inline; that is right for in-process layers. An adapter that does network or
    /// disk I/O should implement [`AsyncCacheAdapter`] and return `Some(self)`, so it never
    /// blocks the executor.
    #[cfg(feature = "tokio")]
    fn as_async(&self) -> Option<&dyn AsyncCacheAdapter> {
        None
    }
}

/// The seal of [`CacheAdapter::as_memory`].
pub(crate) mod sealed {
    /// Nameable and constructible only inside this crate.
    #[derive(Debug, Clone, Copy)]
    pub struct Token(pub(crate) ());
}

/// A boxed future, as the methods of [`AsyncCacheAdapter`] return.
#[cfg(feature = "tokio")]
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The non-blocking face of a [`CacheAdapter`] that does I/O: one method, [`call`](Self::call),
/// that carries out any [`Request`] with the same meaning as the blocking method it names.
///
/// Implement it for an adapter that waits on the network or a disk, and return it from
/// [`CacheAdapter::as_async`]; the tower's `*_async` methods then await it instead of calling
/// the blocking methods.
///
/// ```
/// use cache_tower::{MemoryAdapter, adapter::{AsyncCacheAdapter, CacheAdapter}};
///
/// // The memory layer has no async face: it never waits on I/O.
/// assert!(MemoryAdapter::new().as_async().is_none());
/// ```
#[cfg(feature = "tokio")]
pub trait AsyncCacheAdapter: Send + Sync {
    /// Carries out `request` without blocking the executor; the reply is the one
    /// [`Request::run`] would give.
    fn call<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a, Result<Reply>>;
}

/// A change to a shared layer, as [`CacheAdapter::watch_changes`] reports it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Change<'a> {
    /// These keys (tower keys, namespace removed) were written, deleted or expired.
    Keys(&'a [String]),
    /// Anything may have changed (the store was flushed, or the watch has just started or
    /// restarted); from now on changes are reported.
    All,
    /// Every entry carrying one of these tags was invalidated (by
    /// [`CacheAdapter::invalidate_tag`], here or in another instance).
    Tags(&'a [String]),
    /// The watch lost sight of the store (its connection broke): anything may have changed, and
    /// changes go unreported until the next [`Change::All`]. Meanwhile the tower keeps copies in
    /// the process-local layers above for one second at most, since it could not tell when one
    /// goes stale (the same holds before a watch's first `All`).
    Lost,
}

/// Where an adapter reports [`Change`]s.
pub type ChangeSink = Arc<dyn Fn(Change<'_>) + Send + Sync>;

/// A running change watch; dropping it stops the watch.
///
/// ```
/// use cache_tower::adapter::ChangeWatch;
///
/// struct StopOnDrop; // an adapter's handle on its watcher: its Drop stops it
/// let watch = ChangeWatch::new(StopOnDrop);
/// drop(watch);
/// ```
pub struct ChangeWatch {
    _guard: Box<dyn Send + Sync>,
}

impl ChangeWatch {
    /// A watch that lasts as long as `guard`: dropping the watch drops the guard.
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self { _guard: Box::new(guard) }
    }
}

impl fmt::Debug for ChangeWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeWatch").finish_non_exhaustive()
    }
}

/// Counters an adapter keeps about its own storage, reported by
/// [`CacheTower::stats`](crate::CacheTower::stats).
///
/// ```
/// use cache_tower::{MemoryAdapter, adapter::CacheAdapter};
///
/// let memory = MemoryAdapter::builder().maxsize(1).build();
/// let tower = cache_tower::CacheTower::new();
/// tower.add_layer(memory.clone());
/// tower.set("a", 1)?;
/// tower.set("b", 2)?;
/// assert_eq!(memory.stats().evictions, 1);
/// # Ok::<(), cache_tower::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdapterStats {
    /// Entries removed to make room (maxsize reached): [`RemovalCause::Evicted`].
    pub evictions: u64,
    /// Entries removed because their TTL ran out: [`RemovalCause::Expired`].
    pub expirations: u64,
    /// Values a write replaced: [`RemovalCause::Replaced`].
    pub replacements: u64,
    /// Entries the tower removed because the value changed below: [`RemovalCause::Invalidated`].
    pub invalidations: u64,
    /// Entries removed on request (`delete`, `flush`): [`RemovalCause::Removed`].
    pub removals: u64,
}

impl AdapterStats {
    /// Counters with the given evictions and expirations, the others zero (for adapters outside
    /// this crate; set the other fields on the value it returns).
    pub fn new(evictions: u64, expirations: u64) -> Self {
        Self { evictions, expirations, ..Self::default() }
    }
}

/// Anything that can sit in a tower as a layer: an adapter, or an `Arc<dyn CacheAdapter>` such as
/// [`CacheTower::get_layers`](crate::CacheTower::get_layers) returns.
///
/// ```
/// use cache_tower::{CacheTower, MemoryAdapter};
///
/// let tower = CacheTower::new();
/// tower.add_layer(MemoryAdapter::new());            // an adapter
/// let layers = tower.get_layers();
/// let other = CacheTower::new();
/// other.set_layers(layers);                          // shared handles from another tower
/// assert_eq!(other.get_layers().len(), 1);
/// ```
pub trait IntoAdapter {
    /// The adapter as the shared handle a tower keeps.
    fn into_adapter(self) -> Arc<dyn CacheAdapter>;
}

impl<A: CacheAdapter> IntoAdapter for A {
    fn into_adapter(self) -> Arc<dyn CacheAdapter> {
        Arc::new(self)
    }
}

impl IntoAdapter for Arc<dyn CacheAdapter> {
    fn into_adapter(self) -> Arc<dyn CacheAdapter> {
        self
    }
}
