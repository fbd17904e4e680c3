//! [`CacheTower`]: the stack of layers, its read path (top down, backfilling upward) and its
//! write path (every layer, bottom up).
//!
//! # Read path
//!
//! `get` asks layer 0, then layer 1, and so on. The first layer that holds a value *that decodes
//! as the requested type* answers. Every layer above it is then backfilled with that value, for
//! no longer than the entry had left where it was found; layers below are not touched. A layer
//! that fails (I/O, timeout) or holds an undecodable value counts as a miss: the read goes on.
//!
//! # Write path
//!
//! `set`, `mset`, `delete` and `flush` go to every layer, from the bottom (shared, slow) up to
//! layer 0. Bottom up, a reader that misses the top layer during a write finds the new value
//! below rather than backfilling the old one. A layer that fails is skipped; the others are still
//! written, and the call returns the error of the topmost failing layer.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::adapter::{CacheAdapter, IntoAdapter};
use crate::clock::Clock;
use crate::config;
use crate::error::{Error, ErrorKind, Result};
use crate::memoize::{Flights, Joined};
use crate::stats::{LayerCounters, LayerStats};
use crate::value::{Cacheable, Entry, StoredValue};

/// A multilevel cache: an ordered stack of layers, layer 0 (fastest) first.
///
/// Methods take `&self`, layer management included, so a tower can be shared behind an `Arc`
/// and reconfigured while in use; each operation sees one consistent stack.
///
/// ```
/// use std::time::Duration;
/// use cache_tower::{CacheTower, MemoryAdapter};
///
/// let tower = CacheTower::new();
/// tower.add_layer(MemoryAdapter::builder().maxsize(1024).lru(true).ttl(Duration::from_secs(60)).build());
/// tower.set("greeting", "hello".to_string())?;
/// assert_eq!(tower.get::<String>("greeting")?, Some("hello".to_string()));
/// # Ok::<(), cache_tower::Error>(())
/// ```
pub struct CacheTower {
    stack: ArcSwap<Vec<LayerSlot>>,
    /// Serializes layer-management calls, so none of them loses another's change.
    reconfigure: Mutex<()>,
    flights: Flights,
}

/// One position in the stack: the adapter and the tower's counters for it.
#[derive(Clone)]
struct LayerSlot {
    adapter: Arc<dyn CacheAdapter>,
    counters: Arc<LayerCounters>,
}

impl LayerSlot {
    fn new(adapter: Arc<dyn CacheAdapter>) -> Self {
        Self { adapter, counters: Arc::default() }
    }

    /// Counts and logs a failed operation of this layer.
    fn fault(&self, index: usize, operation: &str, err: &Error) {
        self.counters.error();
        let now_secs = Clock::system().now_nanos() / 1_000_000_000;
        if self.counters.may_warn(now_secs) {
            tracing::warn!(layer = index, kind = self.adapter.kind(), operation, error = %err,
                "cache layer failed; reads treat it as a miss (further warnings for this layer are held for 1s)");
        }
    }

    /// Counts and logs a value that did not decode as the type asked for.
    fn decode_failure(&self, index: usize, err: &Error) {
        self.counters.decode_failure();
        tracing::debug!(layer = index, kind = self.adapter.kind(), error = %err, "cached value did not decode; treated as a miss");
    }
}

impl Default for CacheTower {
    fn default() -> Self {
        Self::new()
    }
}

// ===== impl CacheTower: construction and layers =====

impl CacheTower {
    /// An empty tower (the programmatic method): add layers with [`add_layer`](Self::add_layer).
    /// A tower without layers misses every read and ignores writes.
    pub fn new() -> Self {
        Self { stack: ArcSwap::from_pointee(Vec::new()), reconfigure: Mutex::new(()), flights: Flights::default() }
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
    /// layer first.
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
        let tower = Self::new();
        tower.set_layers(config::build_layers(config)?);
        Ok(tower)
    }

    /// Adds a layer at the bottom of the stack: it is asked last on reads.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::new();
    /// tower.add_layer(cache_tower::MemoryAdapter::new());
    /// assert_eq!(tower.get_layers().len(), 1);
    /// ```
    pub fn add_layer(&self, adapter: impl IntoAdapter) {
        let slot = LayerSlot::new(adapter.into_adapter());
        self.modify(|stack| stack.push(slot));
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
        self.stack.load().iter().map(|slot| Arc::clone(&slot.adapter)).collect()
    }

    /// Replaces the whole stack (its counters start again from zero).
    ///
    /// ```
    /// use cache_tower::{CacheAdapter, CacheTower, MemoryAdapter};
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
        let slots: Vec<LayerSlot> = adapters.into_iter().map(|a| LayerSlot::new(a.into_adapter())).collect();
        self.modify(|stack| *stack = slots);
    }

    /// Replaces the layer at `position`, or appends when `position` is the length of the stack.
    ///
    /// ```
    /// use cache_tower::{CacheTower, ErrorKind, MemoryAdapter};
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
        let slot = LayerSlot::new(adapter.into_adapter());
        let mut outcome = Ok(());
        self.modify(|stack| match position {
            p if p < stack.len() => stack[p] = slot,
            p if p == stack.len() => stack.push(slot),
            p => {
                outcome = Err(Error::new(
                    ErrorKind::Position,
                    format!(
                        "layer position {p} is past the end of a stack of {} layers (valid: 0..={})",
                        stack.len(),
                        stack.len()
                    ),
                ));
            }
        });
        outcome
    }

    fn modify(&self, change: impl FnOnce(&mut Vec<LayerSlot>)) {
        let _guard = self.reconfigure.lock();
        let mut stack = Vec::clone(&self.stack.load());
        change(&mut stack);
        self.stack.store(Arc::new(stack));
    }

    /// Per-layer counters, top layer first.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.get::<u8>("absent")?;
    /// assert_eq!(tower.stats()[0].misses, 1);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn stats(&self) -> Vec<LayerStats> {
        self.stack
            .load()
            .iter()
            .enumerate()
            .map(|(index, slot)| slot.counters.snapshot(index, slot.adapter.kind(), slot.adapter.stats()))
            .collect()
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
    /// assert_eq!(tower.get::<u32>("n")?, Some(5));
    /// assert_eq!(tower.get::<u32>("missing")?, None);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// None today: a failing layer is a miss (counted in [`stats`](Self::stats) and logged). The
    /// `Result` leaves room for errors that are the caller's own, not a layer's.
    pub fn get<T: Cacheable>(&self, key: &str) -> Result<Option<T>> {
        let stack = self.stack.load();
        for (index, layer) in stack.iter().enumerate() {
            let entry = match layer.adapter.get(key) {
                Ok(Some(entry)) => entry,
                Ok(None) => {
                    layer.counters.misses(1);
                    continue;
                }
                Err(err) => {
                    layer.fault(index, "get", &err);
                    continue;
                }
            };
            match entry.value().decode::<T>() {
                Ok(value) => {
                    layer.counters.hit();
                    if index > 0 {
                        let items = [(key, backfill_entry(&value, entry))];
                        for (above, upper) in stack[..index].iter().enumerate() {
                            backfill(above, upper, &items);
                        }
                    }
                    return Ok(Some(value));
                }
                Err(err) => layer.decode_failure(index, &err),
            }
        }
        Ok(None)
    }

    /// Reads many keys. Every requested key is in the result, `None` for a miss. Each layer is
    /// asked once for the keys still missing (one round trip for a batching layer), and each key
    /// is backfilled only into the layers above the one it was found in.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.set("a", 0)?; // a falsy value is a hit like any other
    /// let values = tower.mget::<i32, _>(&["a", "b"])?;
    /// assert_eq!(values["a"], Some(0));
    /// assert_eq!(values["b"], None);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// None today, as for [`get`](Self::get).
    pub fn mget<T: Cacheable, K: AsRef<str>>(&self, keys: &[K]) -> Result<HashMap<String, Option<T>>> {
        let stack = self.stack.load();
        let mut seen = HashSet::with_capacity(keys.len());
        let mut pending: Vec<&str> = keys.iter().map(AsRef::as_ref).filter(|key| seen.insert(*key)).collect();
        let mut values = HashMap::with_capacity(pending.len());
        // (layer index where found, key, entry to backfill above it)
        let mut found: Vec<(usize, &str, Entry)> = Vec::new();

        for (index, layer) in stack.iter().enumerate() {
            if pending.is_empty() {
                break;
            }
            let entries = match layer.adapter.mget(&pending) {
                Ok(entries) if entries.len() == pending.len() => entries,
                Ok(entries) => {
                    let err = Error::new(
                        ErrorKind::Layer,
                        format!("mget returned {} results for {} keys", entries.len(), pending.len()),
                    );
                    layer.fault(index, "mget", &err);
                    continue;
                }
                Err(err) => {
                    layer.fault(index, "mget", &err);
                    continue;
                }
            };
            let mut still_missing = Vec::new();
            for (key, entry) in pending.iter().copied().zip(entries) {
                let Some(entry) = entry else {
                    layer.counters.misses(1);
                    still_missing.push(key);
                    continue;
                };
                match entry.value().decode::<T>() {
                    Ok(value) => {
                        layer.counters.hit();
                        if index > 0 {
                            found.push((index, key, backfill_entry(&value, entry)));
                        }
                        values.insert(key.to_owned(), Some(value));
                    }
                    Err(err) => {
                        layer.decode_failure(index, &err);
                        still_missing.push(key);
                    }
                }
            }
            pending = still_missing;
        }
        for key in pending {
            values.insert(key.to_owned(), None);
        }

        // Layer j receives the keys found below it, in one batch.
        for (j, upper) in stack.iter().enumerate() {
            let items: Vec<(&str, Entry)> =
                found.iter().filter(|(at, ..)| *at > j).map(|(_, key, entry)| (*key, entry.clone())).collect();
            if items.is_empty() {
                break; // fewer keys were found below each deeper layer
            }
            backfill(j, upper, &items);
        }
        Ok(values)
    }

    /// Whether any layer has `key`. Never backfills.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// assert!(!tower.exists("k")?);
    /// tower.set("k", true)?;
    /// assert!(tower.exists("k")?);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// None today: a failing layer counts as not having the key.
    pub fn exists(&self, key: &str) -> Result<bool> {
        let stack = self.stack.load();
        for (index, layer) in stack.iter().enumerate() {
            match layer.adapter.exists(key) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(err) => layer.fault(index, "exists", &err),
            }
        }
        Ok(false)
    }
}

/// The entry to backfill with, once its value has been decoded as `T`: upper layers get the
/// typed value (so an in-process layer never parses it again) and, when known, its JSON.
fn backfill_entry<T: Cacheable>(value: &T, found: Entry) -> Entry {
    let (stored, ttl) = found.into_parts();
    if stored.is::<T>() {
        return Entry::new(stored, ttl);
    }
    let stored = match stored.json() {
        Ok(json) => StoredValue::with_json(value.clone(), json),
        Err(_) => StoredValue::new(value.clone()),
    };
    Entry::new(stored, ttl)
}

/// Writes `items`, found below layer `index`, into that layer.
fn backfill(index: usize, layer: &LayerSlot, items: &[(&str, Entry)]) {
    // An entry found with no time left is not worth copying upward.
    let live: Vec<(&str, Entry)> =
        items.iter().filter(|(_, e)| e.ttl().is_none_or(|t| !t.is_zero())).cloned().collect();
    let outcome = match live.as_slice() {
        [] => return,
        [(key, entry)] => layer.adapter.set(key, entry),
        many => layer.adapter.mset(many),
    };
    match outcome {
        Ok(()) => layer.counters.backfills(live.len() as u64),
        Err(err) => layer.fault(index, "backfill", &err),
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
        let entry = Entry::new(StoredValue::new(value), None);
        self.write_each("set", |adapter| adapter.set(key, &entry))
    }

    /// Writes many keys into every layer (one batch per layer).
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.mset([("k1", 1), ("k2", 2)])?;
    /// assert_eq!(tower.get::<i32>("k2")?, Some(2));
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
        let owned: Vec<(K, Entry)> =
            items.into_iter().map(|(key, value)| (key, Entry::new(StoredValue::new(value), None))).collect();
        let items: Vec<(&str, Entry)> = owned.iter().map(|(key, entry)| (key.as_ref(), entry.clone())).collect();
        if items.is_empty() {
            return Ok(());
        }
        self.write_each("mset", |adapter| adapter.mset(&items))
    }

    /// Removes `key` from every layer.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.set("k", 1)?;
    /// tower.delete("k")?;
    /// assert!(!tower.exists("k")?);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub fn delete(&self, key: &str) -> Result<()> {
        self.write_each("delete", |adapter| adapter.delete(key))
    }

    /// Empties every layer (each layer removes only the keys of its own namespace).
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.set("k", 1)?;
    /// tower.flush()?;
    /// assert!(!tower.exists("k")?);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub fn flush(&self) -> Result<()> {
        self.write_each("flush", |adapter| adapter.flush())
    }

    /// Runs `write` on every layer, bottom up; returns the topmost layer's error, if any.
    fn write_each(&self, operation: &str, write: impl Fn(&dyn CacheAdapter) -> Result<()>) -> Result<()> {
        let stack = self.stack.load();
        let mut topmost_error = None;
        for (index, layer) in stack.iter().enumerate().rev() {
            if let Err(err) = write(&*layer.adapter) {
                layer.fault(index, operation, &err);
                topmost_error = Some(err.at_layer(index));
            }
        }
        topmost_error.map_or(Ok(()), Err)
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
    /// The error `compute` returned.
    pub fn try_get_or_set<T, E, F>(&self, key: &str, compute: F) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Result<T, E>,
    {
        // `get` reports layer faults as misses, so its `Err` never happens; a miss computes.
        if let Ok(Some(value)) = self.get::<T>(key) {
            return Ok(value);
        }
        loop {
            match self.flights.join(key) {
                Joined::Follower(flight) => {
                    if let Some(value) = flight.wait().and_then(|stored| stored.decode::<T>().ok()) {
                        return Ok(value);
                    }
                    // The leader failed (or stored another type): join again.
                }
                Joined::Leader(leader) => {
                    // A leader that landed just before we joined has stored the value already.
                    if let Some((value, stored)) = self.get_top::<T>(key) {
                        leader.land(stored);
                        return Ok(value);
                    }
                    let value = compute()?;
                    let stored = StoredValue::new(value.clone());
                    let entry = Entry::new(stored.clone(), None);
                    // A store failure is counted and logged by write_each; the value still goes out.
                    let _ = self.write_each("set", |adapter| adapter.set(key, &entry));
                    leader.land(stored);
                    return Ok(value);
                }
            }
        }
    }

    /// The top layer's value of `key`, if it has one of type `T`.
    fn get_top<T: Cacheable>(&self, key: &str) -> Option<(T, StoredValue)> {
        let stack = self.stack.load();
        let entry = stack.first()?.adapter.get(key).ok()??;
        let value = entry.value().decode::<T>().ok()?;
        Some((value, entry.value().clone()))
    }
}

impl fmt::Debug for CacheTower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stack = self.stack.load();
        f.debug_struct("CacheTower")
            .field("layers", &stack.iter().map(|slot| &slot.adapter).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
