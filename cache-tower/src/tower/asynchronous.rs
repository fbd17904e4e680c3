//! The async twins of the tower's operations (feature `tokio`).
//!
//! Same read and write paths as the sync ones in `tower.rs`, awaiting each layer's
//! [`AsyncCacheAdapter`](crate::AsyncCacheAdapter) when it has one and calling in-process layers
//! inline. The bookkeeping (breaker, counters, backfill) is shared with the sync side in `slot.rs`.

use std::collections::HashMap;
use std::future::Future;

use super::slot::{Faults, LayerSlot, Mget, Write, backfill_entry, borrow_keys, mset_entries};
use super::{CacheTower, read_many, read_one};
use crate::adapter::{CacheAdapter, Request};
use crate::error::Result;
use crate::flight::Joined;
use crate::value::{Cacheable, Entry, StoredValue};

impl CacheTower {
    /// The async twin of [`get`](Self::get).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_tower::Result<()> {
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.set_async("k", 1u8).await?;
    /// assert_eq!(tower.get_async::<u8>("k").await?, Some(1));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// None today, as for [`get`](Self::get).
    pub async fn get_async<T: Cacheable>(&self, key: &str) -> Result<Option<T>> {
        Ok(self.read_through_async(key, &mut Faults::default()).await)
    }

    /// The read path of [`get_async`](Self::get_async), noting in `faults` the layers that failed.
    pub(crate) async fn read_through_async<T: Cacheable>(&self, key: &str, faults: &mut Faults) -> Option<T> {
        if let Some(value) = self.fast_hit(key) {
            return Some(value);
        }
        self.read_layers_async(key, faults).await
    }

    /// [`read_through_async`](Self::read_through_async) after the fast lane: every layer, top
    /// down, backfilling above a hit.
    pub(crate) async fn read_layers_async<T: Cacheable>(&self, key: &str, faults: &mut Faults) -> Option<T> {
        let stack = self.stack.load_full();
        let top = stack.first()?;
        let found = match top.adapter.as_async() {
            None => top.read_top::<T>(key),
            Some(adapter) => guarded(top, 0, "get", async { adapter.call(Request::GetValue(key)).await?.into_value() })
                .await
                .map(|value| top.classify(0, value.map(|v| v.decode::<T>()))),
        };
        match found {
            Ok(Some(value)) => return Some(value),
            Ok(None) => {}
            Err(_) => faults.note(0),
        }
        let since = self.coherence.log.now();
        for (index, layer) in stack.iter().enumerate().skip(1) {
            let read = guarded(layer, index, "get", read_one_async(layer, index, key)).await;
            if read.is_err() {
                faults.note(index);
            }
            if let Some((value, entry)) = layer.accept::<T>(index, read) {
                let items = [(key, backfill_entry(&value, entry))];
                if let Some(write) = Write::backfill(&items) {
                    for (above, upper) in stack[..index].iter().enumerate() {
                        self.backfill_async(above, upper, &write, since).await;
                    }
                }
                return Some(value);
            }
        }
        None
    }

    /// The async twin of [`mget`](Self::mget).
    ///
    /// # Errors
    /// None today, as for [`get`](Self::get).
    pub async fn mget_async<T: Cacheable, K: AsRef<str>>(&self, keys: &[K]) -> Result<HashMap<String, Option<T>>> {
        let stack = self.stack.load_full();
        let since = self.coherence.log.now();
        let mut mget = Mget::<T>::new(keys);
        for (index, layer) in stack.iter().enumerate() {
            if mget.pending().is_empty() {
                break;
            }
            let read = guarded(layer, index, "mget", read_many_async(layer, index, mget.pending())).await;
            mget.absorb(index, layer, read);
        }
        for (index, layer) in stack[..mget.deepest_hit()].iter().enumerate() {
            let items = mget.backfill_for(index);
            if let Some(write) = Write::backfill(&items) {
                self.backfill_async(index, layer, &write, since).await;
            }
        }
        Ok(mget.into_values())
    }

    /// The async twin of [`exists`](Self::exists).
    ///
    /// # Errors
    /// None today, as for [`exists`](Self::exists).
    pub async fn exists_async(&self, key: &str) -> Result<bool> {
        let stack = self.stack.load_full();
        for (index, layer) in stack.iter().enumerate() {
            let probe = async {
                match layer.adapter.as_async() {
                    Some(adapter) => adapter.call(Request::Exists(key)).await?.into_exists(),
                    None => layer.adapter.exists(key),
                }
            };
            if let Ok(true) = guarded(layer, index, "exists", probe).await {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The async twin of [`set`](Self::set).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn set_async<T: Cacheable>(&self, key: &str, value: T) -> Result<()> {
        let entry = Entry::new(StoredValue::new(value), None);
        self.write_each_async(&Write::Set(key, &entry), Faults::default()).await
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
        let owned = mset_entries(items);
        let items = borrow_keys(&owned);
        if items.is_empty() {
            return Ok(());
        }
        self.write_each_async(&Write::Mset(&items), Faults::default()).await
    }

    /// The async twin of [`delete`](Self::delete).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn delete_async(&self, key: &str) -> Result<()> {
        self.write_each_async(&Write::Delete(key), Faults::default()).await
    }

    /// The async twin of [`flush`](Self::flush).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn flush_async(&self) -> Result<()> {
        self.write_each_async(&Write::Flush, Faults::default()).await
    }

    async fn write_each_async(&self, write: &Write<'_>, skip: Faults) -> Result<()> {
        let stack = self.stack.load_full();
        let since = self.coherence.log.now();
        let mut topmost_error = None;
        for (index, layer) in stack.iter().enumerate().rev().filter(|(index, _)| !skip.contains(*index)) {
            if let Err(err) = self.write_layer_async(index, layer, write, since).await {
                topmost_error = Some(err);
            }
        }
        topmost_error.map_or(Ok(()), Err)
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
        let mut faults = Faults::default();
        if let Some(value) = self.read_through_async::<T>(key, &mut faults).await {
            return Ok(value);
        }
        self.compute_and_set_async(key, compute, faults).await
    }

    /// The miss half of [`try_get_or_set_async`](Self::try_get_or_set_async).
    pub(crate) async fn compute_and_set_async<T, E, F, Fut>(
        &self,
        key: &str,
        compute: F,
        faults: Faults,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        loop {
            match self.flights.join(key) {
                Joined::Follower(flight) => {
                    if let Some(value) = flight.wait_async().await.and_then(|stored| stored.decode::<T>().ok()) {
                        return Ok(value);
                    }
                }
                Joined::Leader(leader) => {
                    if !faults.contains(0) {
                        if let Some((value, stored)) = self.get_top_async::<T>(key).await {
                            leader.land(stored);
                            return Ok(value);
                        }
                    }
                    let value = compute().await?;
                    let stored = StoredValue::new(value.clone());
                    let entry = Entry::new(stored.clone(), None);
                    let _ = self.write_each_async(&Write::Set(key, &entry), faults).await;
                    leader.land(stored);
                    return Ok(value);
                }
            }
        }
    }

    async fn get_top_async<T: Cacheable>(&self, key: &str) -> Option<(T, StoredValue)> {
        let stack = self.stack.load_full();
        let top = stack.first()?;
        let entry = guarded(top, 0, "get", read_one_async(top, 0, key)).await.ok()??;
        let value = entry.value().decode::<T>().ok()?;
        Some((value, entry.into_parts().0))
    }
}

/// Runs one layer call behind the layer's circuit breaker, recording its outcome.
async fn guarded<R>(
    layer: &LayerSlot,
    index: usize,
    operation: &str,
    call: impl Future<Output = Result<R>>,
) -> Result<R> {
    layer.admit(index)?;
    layer.settle(index, operation, call.await)
}

async fn read_one_async(layer: &LayerSlot, index: usize, key: &str) -> Result<Option<Entry>> {
    match layer.adapter.as_async() {
        None => read_one(layer, index, key),
        Some(adapter) if index == 0 => adapter.call(Request::GetValue(key)).await?.into_entry(),
        Some(adapter) => adapter.call(Request::Get(key)).await?.into_entry(),
    }
}

async fn read_many_async(layer: &LayerSlot, index: usize, keys: &[&str]) -> Result<Vec<Option<Entry>>> {
    match layer.adapter.as_async() {
        None => read_many(layer, index, keys),
        Some(adapter) if index == 0 => adapter.call(Request::MgetValues(keys)).await?.into_entries(),
        Some(adapter) => adapter.call(Request::Mget(keys)).await?.into_entries(),
    }
}

impl CacheTower {
    /// The async twin of `write_layer`: guarded local layers are written inline (they do no I/O).
    async fn write_layer_async(&self, index: usize, layer: &LayerSlot, write: &Write<'_>, since: u64) -> Result<()> {
        if layer.guarded {
            return self.write_layer(index, layer, write, since);
        }
        guarded(layer, index, write.name(), write.run_async(&*layer.adapter)).await
    }

    async fn backfill_async(&self, index: usize, layer: &LayerSlot, write: &Write<'_>, since: u64) {
        if self.write_layer_async(index, layer, write, since).await.is_ok() {
            layer.counters.backfills(write.len());
        }
    }
}

impl Write<'_> {
    async fn run_async(&self, adapter: &dyn CacheAdapter) -> Result<()> {
        let Some(adapter_async) = adapter.as_async() else { return self.run(adapter) };
        let request = match self {
            Write::Set(key, entry) => Request::Set(key, entry),
            Write::Mset(items) => Request::Mset(items),
            Write::Delete(key) => Request::Delete(key),
            Write::Flush => Request::Flush,
        };
        adapter_async.call(request).await?.into_done()
    }
}
