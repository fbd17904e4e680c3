//! The caches under test, each filled with the whole dataset the same way, and a check that
//! they really hold all of it (a figure measured on misses would be worthless).

use std::sync::Mutex;

use cache_tower::adapter::EvictionPolicy;
use cache_tower::{CacheTower, MemoryAdapter};
use cached::Cached;

use crate::data::{Dataset, ENTRIES, User};

/// The names of the peers as the table shows them.
pub(super) const MOKA: &str = "moka 0.12";
/// See [`MOKA`].
pub(super) const QUICK_CACHE: &str = "quick_cache 0.7";
/// See [`MOKA`].
pub(super) const CACHED: &str = "cached 4";

/// The eviction policy of each peer, as the table names it. moka's default is TinyLFU (a
/// frequency sketch decides whether a new entry may displace the LRU victim; it can refuse the
/// newcomer); it also offers plain LRU (`EvictionPolicy::lru()`), measured as a second moka.
pub(super) const MOKA_TINY_LFU: &str = "moka 0.12 (TinyLFU, its default)";
/// See [`MOKA_TINY_LFU`].
pub(super) const MOKA_LRU: &str = "moka 0.12 (`EvictionPolicy::lru()`)";
/// quick_cache has one policy: its README calls it S3-FIFO, its shard code a modified CLOCK-PRO
/// (resident hot/cold entries with reference bits, plus a ghost list of recently evicted keys).
pub(super) const QUICK_CACHE_POLICY: &str = "quick_cache 0.7 (S3-FIFO / CLOCK-PRO-like)";
/// cached's bounded store, `LruCache` (called `SizedCache` before cached 4), is an exact LRU;
/// `#[cached(max_size = N)]` (cached 4's name for `size`) keeps it behind a `RwLock` whose write
/// lock every call takes (a hit reorders the list).
pub(super) const CACHED_LRU: &str = "cached 4 (`LruCache`, LRU)";

/// The bound, in entries, of every cache of the memory scenarios that hold the 10,000 users
/// (get, set, get_or_set, insert, miss rows): the 10,000 entries plus 25%. Exactly 10,000 is not
/// enough to keep them all: quick_cache splits its bound between shards, keys do not spread
/// evenly, and the fullest shards evict early. `check_hits` checks every user is still there.
pub(super) const BOUND: usize = ENTRIES * 5 / 4;

/// A bounded memory layer with `policy`.
pub(super) fn memory(maxsize: usize, policy: EvictionPolicy) -> MemoryAdapter {
    MemoryAdapter::builder().maxsize(maxsize).policy(policy).build()
}

/// A tower with `memory` as its only layer, holding every user.
pub(super) fn tower(memory: MemoryAdapter, data: &Dataset, notes: &mut Vec<String>) -> cache_tower::Result<CacheTower> {
    let tower = CacheTower::new();
    tower.add_layer(memory);
    for (key, user) in data.keys.iter().zip(&data.users) {
        tower.set(key, user.clone())?;
    }
    check_hits("cache-tower", data, notes, |key| tower.get::<User>(key).is_some());
    Ok(tower)
}

/// A moka cache of `max_capacity` entries with its default policy (TinyLFU), or plain LRU.
pub(super) fn empty_moka<V: Clone + Send + Sync + 'static>(
    max_capacity: usize,
    lru: bool,
) -> moka::sync::Cache<String, V> {
    let builder = moka::sync::Cache::builder().max_capacity(max_capacity as u64);
    if lru { builder.eviction_policy(moka::policy::EvictionPolicy::lru()).build() } else { builder.build() }
}

/// A moka cache of `max_capacity` entries (TinyLFU, or LRU with `lru`) holding every user.
pub(super) fn moka(
    max_capacity: usize,
    lru: bool,
    data: &Dataset,
    notes: &mut Vec<String>,
) -> moka::sync::Cache<String, User> {
    let cache = empty_moka(max_capacity, lru);
    for (key, user) in data.keys.iter().zip(&data.users) {
        cache.insert(key.clone(), user.clone());
    }
    // moka applies inserts to its eviction policy lazily; settle them before measuring.
    cache.run_pending_tasks();
    check_hits(MOKA, data, notes, |key| cache.get(key).is_some());
    cache
}

/// A quick_cache cache of `capacity` entries holding every user (quick_cache is always bounded).
pub(super) fn quick_cache(
    capacity: usize,
    data: &Dataset,
    notes: &mut Vec<String>,
) -> quick_cache::sync::Cache<String, User> {
    let cache = quick_cache::sync::Cache::new(capacity);
    for (key, user) in data.keys.iter().zip(&data.users) {
        cache.insert(key.clone(), user.clone());
    }
    check_hits(QUICK_CACHE, data, notes, |key| cache.get(key).is_some());
    cache
}

/// cached's `LruCache` of `capacity` entries holding every user, behind a `Mutex`: its reads
/// reorder the LRU list, so they take `&mut` (the `#[cached]` macro puts it behind a `RwLock` and
/// takes the write lock for every call, reads included).
pub(super) fn cached_lru(
    capacity: usize,
    data: &Dataset,
    notes: &mut Vec<String>,
) -> Mutex<cached::LruCache<String, User>> {
    let mut cache = cached::LruCache::new(capacity);
    for (key, user) in data.keys.iter().zip(&data.users) {
        cache.cache_set(key.clone(), user.clone());
    }
    let cache = Mutex::new(cache);
    check_hits(CACHED, data, notes, |key| lock(&cache).cache_get(key).is_some());
    cache
}

/// Locks a mutex (a poisoned lock only means another operation panicked).
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Adds a note (and warns on stderr) when `name` does not hit every key: its figures would be
/// partly misses.
pub(super) fn check_hits(name: &str, data: &Dataset, notes: &mut Vec<String>, hit: impl Fn(&str) -> bool) {
    let misses = data.keys.iter().filter(|key| !hit(key)).count();
    if misses > 0 {
        let note = format!(
            "warning: {name} lost {misses} of {ENTRIES} entries after being filled; its figures include misses"
        );
        eprintln!("  {note}");
        notes.push(note);
    }
}
