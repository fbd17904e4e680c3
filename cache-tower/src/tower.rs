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
//!
//! # Around every layer call
//!
//! Each call goes through the layer's circuit breaker and counters (`slot.rs`): a layer that
//! keeps failing is skipped for a while. Writes into in-process layers that sit above a watched
//! shared layer are checked against the changes other processes made meanwhile
//! (`coherence.rs`), so an old value never lands in memory after its invalidation. The async
//! twins of everything here are in `asynchronous.rs`, the same paths awaiting I/O.

#[cfg(feature = "tokio")]
mod asynchronous;
mod coherence;
mod slot;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::adapter::{CacheAdapter, IntoAdapter};
use crate::config;
use crate::error::{Error, ErrorKind, Result};
use crate::flight::{Flights, Joined};
use crate::stats::LayerStats;
use crate::value::{Cacheable, Entry, StoredValue};
use coherence::{Coherence, guarded_write};
pub(crate) use slot::Faults;
/// A snapshot of a tower's stack, as its reads hold it.
pub(crate) type Stack = arc_swap::Guard<Arc<Vec<LayerSlot>>>;
pub(crate) use slot::{LayerSlot, return_fast_hit};
use slot::{Mget, Write, backfill_entry, borrow_keys, mset_entries};

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
/// assert_eq!(tower.get::<String>("greeting")?, Some("hello".to_string()));
/// # Ok::<(), cache_tower::Error>(())
/// ```
pub struct CacheTower {
    stack: ArcSwap<Vec<LayerSlot>>,
    /// Serializes layer-management calls, so none of them loses another's change.
    reconfigure: Mutex<()>,
    flights: Flights,
    /// Evicts local copies of keys changed in shared layers (cross-process invalidation).
    coherence: Coherence,
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
        Self {
            stack: ArcSwap::from_pointee(Vec::new()),
            reconfigure: Mutex::new(()),
            flights: Flights::default(),
            coherence: Coherence::default(),
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
        self.coherence.rewatch(&mut stack);
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
        self.stack.load().iter().enumerate().map(|(index, slot)| slot.snapshot(index)).collect()
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
        let stack = self.load_stack();
        return_fast_hit!(stack.first(), key, |value: &T| Ok(Some(value.clone())));
        Ok(self.read_stack(&stack, key, &mut Faults::default()))
    }

    /// The fast lane as a value, for the async paths (their results are moved into their futures'
    /// output anyway), before they take a counted reference to the stack.
    #[cfg(feature = "tokio")]
    pub(crate) fn fast_hit<T: Cacheable>(&self, key: &str) -> Option<T> {
        let stack = self.load_stack();
        return_fast_hit!(stack.first(), key, |value: &T| Some(value.clone()));
        None
    }

    /// The current stack, for a read's fast lane (`LayerSlot::lookup`).
    #[inline(always)]
    pub(crate) fn load_stack(&self) -> Stack {
        self.stack.load()
    }

    /// The read path of [`get`](Self::get) after the fast lane, noting in `faults` the layers
    /// that failed.
    pub(crate) fn read_through<T: Cacheable>(&self, key: &str, faults: &mut Faults) -> Option<T> {
        self.read_stack(&self.load_stack(), key, faults)
    }

    /// [`read_through`](Self::read_through) of a stack the caller has loaded already.
    fn read_stack<T: Cacheable>(&self, stack: &[LayerSlot], key: &str, faults: &mut Faults) -> Option<T> {
        let top = stack.first()?;
        match top.read_top::<T>(key) {
            Ok(Some(value)) => return Some(value),
            Ok(None) => {}
            Err(_) => faults.note(0),
        }
        let since = self.coherence.log.now();
        for (index, layer) in stack.iter().enumerate().skip(1) {
            let read = layer.call(index, "get", || layer.adapter.get(key));
            if read.is_err() {
                faults.note(index);
            }
            if let Some((value, entry)) = layer.accept::<T>(index, read) {
                let items = [(key, backfill_entry(&value, entry))];
                if let Some(write) = Write::backfill(&items) {
                    for (above, upper) in stack[..index].iter().enumerate() {
                        self.backfill(above, upper, &write, since);
                    }
                }
                return Some(value);
            }
        }
        None
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
        let since = self.coherence.log.now();
        let mut mget = Mget::<T>::new(keys);
        for (index, layer) in stack.iter().enumerate() {
            if mget.pending().is_empty() {
                break;
            }
            let read = layer.call(index, "mget", || read_many(layer, index, mget.pending()));
            mget.absorb(index, layer, read);
        }
        for (index, layer) in stack[..mget.deepest_hit()].iter().enumerate() {
            let items = mget.backfill_for(index);
            if let Some(write) = Write::backfill(&items) {
                self.backfill(index, layer, &write, since);
            }
        }
        Ok(mget.into_values())
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
            if let Ok(true) = layer.call(index, "exists", || layer.adapter.exists(key)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Reads one key from one layer: without its TTL from the top layer (nothing is backfilled
/// above it), with it from the others.
fn read_one(layer: &LayerSlot, index: usize, key: &str) -> Result<Option<Entry>> {
    if index == 0 {
        Ok(layer.adapter.get_value(key)?.map(|value| Entry::new(value, None)))
    } else {
        layer.adapter.get(key)
    }
}

/// [`read_one`] for many keys.
fn read_many(layer: &LayerSlot, index: usize, keys: &[&str]) -> Result<Vec<Option<Entry>>> {
    if index == 0 {
        let values = layer.adapter.mget_values(keys)?;
        Ok(values.into_iter().map(|value| value.map(|v| Entry::new(v, None))).collect())
    } else {
        layer.adapter.mget(keys)
    }
}

impl CacheTower {
    /// Runs `write` on layer `index` behind its breaker. A guarded local layer only takes keys
    /// that did not change in a shared layer since change number `since`.
    fn write_layer(&self, index: usize, layer: &LayerSlot, write: &Write<'_>, since: u64) -> Result<()> {
        layer.call(index, write.name(), || {
            if layer.guarded {
                guarded_write(&self.coherence.log, &*layer.adapter, write, since)
            } else {
                write.run(&*layer.adapter)
            }
        })
    }

    /// Backfills layer `index`; a failure is counted and logged, never returned.
    fn backfill(&self, index: usize, layer: &LayerSlot, write: &Write<'_>, since: u64) {
        if self.write_layer(index, layer, write, since).is_ok() {
            layer.counters.backfills(write.len());
        }
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
        self.write_each(&Write::Set(key, &entry), Faults::default())
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
        let owned = mset_entries(items);
        let items = borrow_keys(&owned);
        if items.is_empty() {
            return Ok(());
        }
        self.write_each(&Write::Mset(&items), Faults::default())
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
        self.write_each(&Write::Delete(key), Faults::default())
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
        self.write_each(&Write::Flush, Faults::default())
    }

    /// Runs `write` on every layer but those in `skip`, bottom up; returns the topmost failing
    /// layer's error.
    fn write_each(&self, write: &Write<'_>, skip: Faults) -> Result<()> {
        let stack = self.stack.load();
        let since = self.coherence.log.now();
        let mut topmost_error = None;
        for (index, layer) in stack.iter().enumerate().rev().filter(|(index, _)| !skip.contains(*index)) {
            if let Err(err) = self.write_layer(index, layer, write, since) {
                topmost_error = Some(err);
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
        let stack = self.load_stack();
        return_fast_hit!(stack.first(), key, |value: &T| Ok(value.clone()));
        let mut faults = Faults::default();
        if let Some(value) = self.read_stack::<T>(&stack, key, &mut faults) {
            return Ok(value);
        }
        self.compute_and_set(key, compute, faults)
    }

    /// The miss half of [`try_get_or_set`](Self::try_get_or_set): join or lead the key's flight.
    /// Layers in `faults` failed the caller's read: they are not asked again in this call, so a
    /// hung layer costs the caller one timeout, not two.
    pub(crate) fn compute_and_set<T, E, F>(&self, key: &str, compute: F, faults: Faults) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Result<T, E>,
    {
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
                    if !faults.contains(0) {
                        if let Some((value, stored)) = self.get_top::<T>(key) {
                            leader.land(stored);
                            return Ok(value);
                        }
                    }
                    let value = compute()?;
                    let stored = StoredValue::new(value.clone());
                    let entry = Entry::new(stored.clone(), None);
                    // A store failure is counted and logged by write_each; the value still goes out.
                    let _ = self.write_each(&Write::Set(key, &entry), faults);
                    leader.land(stored);
                    return Ok(value);
                }
            }
        }
    }

    /// The top layer's value of `key`, if it has one of type `T`.
    fn get_top<T: Cacheable>(&self, key: &str) -> Option<(T, StoredValue)> {
        let stack = self.stack.load();
        let top = stack.first()?;
        // Not counted as a hit or miss: the caller's own read was counted already.
        let entry = top.call(0, "get", || read_one(top, 0, key)).ok()??;
        let value = entry.value().decode::<T>().ok()?;
        Some((value, entry.into_parts().0))
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
