//! The caches under test, each filled with the whole dataset the same way, and a check that
//! they really hold all of it (a figure measured on misses would be worthless).

use cache_tower::{CacheTower, MemoryAdapter};

use crate::data::{Dataset, ENTRIES, User};

/// The names of the peers as the table shows them.
pub(super) const MOKA: &str = "moka 0.12";
/// See [`MOKA`].
pub(super) const QUICK_CACHE: &str = "quick_cache 0.7";
/// See [`MOKA`].
pub(super) const CACHED: &str = "cached 4";

/// A tower with `memory` as its only layer, holding every user.
pub(super) fn tower(memory: MemoryAdapter, data: &Dataset, notes: &mut Vec<String>) -> cache_tower::Result<CacheTower> {
    let tower = CacheTower::new();
    tower.add_layer(memory);
    for (key, user) in data.keys.iter().zip(&data.users) {
        tower.set(key, user.clone())?;
    }
    check_hits("cache-tower", data, notes, |key| matches!(tower.get::<User>(key), Ok(Some(_))));
    Ok(tower)
}

/// A moka cache holding every user; bounded to `max_capacity` entries when given.
pub(super) fn moka(
    max_capacity: Option<u64>,
    data: &Dataset,
    notes: &mut Vec<String>,
) -> moka::sync::Cache<String, User> {
    let builder = moka::sync::Cache::builder();
    let cache = match max_capacity {
        Some(capacity) => builder.max_capacity(capacity).build(),
        None => builder.build(),
    };
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
