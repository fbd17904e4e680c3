//! The batch get-or-set entry points: many keys in one call, blocking and async, each a loop of
//! a few lines over the `GetOrSetMany` plan (one pass per loop; a second pass only for keys
//! whose flight another caller abandoned).

#[cfg(feature = "tokio")]
use std::future::Future;
use std::sync::OnceLock;

use indexmap::IndexMap;

#[cfg(feature = "tokio")]
use super::asynchronous;
use super::plan::{GetOrSetMany, Pass};
use super::{CacheTower, blocking};
use crate::value::Cacheable;

impl CacheTower {
    /// Gets many keys, loading the missing ones with one call of `load`: each layer is read once
    /// for all the keys (one round trip for a batching layer such as Redis), `load` is called
    /// once with the keys no layer had, and what it returns is written to each layer once (one
    /// `mset`).
    ///
    /// Returns the value of every key that a layer or `load` had, in the order asked (a key
    /// asked twice appears once); a key `load` returns nothing for is left out and not cached.
    /// Keys `load` returns that were not asked for are ignored.
    ///
    /// Single flight per key, shared with [`get_or_set`](Self::get_or_set) and other batches: a
    /// key that another caller is computing right now is not loaded again but waited for (after
    /// this call has stored and handed out its own keys, so that batches never wait on each
    /// other). `load` is called again, for those keys only, when such a caller's computation
    /// failed. [`LoadOptions`](crate::LoadOptions) (fail-safe, timeouts, the distributed lock)
    /// do not apply to batches; each layer keeps the values for its own TTL.
    ///
    /// ```
    /// use std::collections::HashMap;
    ///
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// tower.set("user:1", "ada".to_string())?;
    /// let users = tower.get_or_set_many(&["user:1", "user:2", "user:3"], |missing| {
    ///     assert_eq!(missing, ["user:2", "user:3"]); // one call, for the keys no layer had
    ///     missing.iter().map(|key| (key.to_string(), key.replace("user:", "name "))).collect::<HashMap<_, _>>()
    /// });
    /// assert_eq!(users["user:1"], "ada");
    /// assert_eq!(users["user:3"], "name 3");
    /// // Now cached: the loader is not called.
    /// let again = tower.get_or_set_many(&["user:2"], |_| -> Vec<(String, String)> { unreachable!() });
    /// assert_eq!(again["user:2"], "name 2");
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn get_or_set_many<T, K, F, I, L>(&self, keys: &[K], mut load: F) -> IndexMap<String, T>
    where
        T: Cacheable,
        K: AsRef<str>,
        F: FnMut(&[&str]) -> I,
        I: IntoIterator<Item = (L, T)>,
        L: Into<String>,
    {
        match self.try_get_or_set_many(keys, |missing| Ok::<I, std::convert::Infallible>(load(missing))) {
            Ok(values) => values,
            Err(never) => match never {},
        }
    }

    /// [`get_or_set_many`](Self::get_or_set_many) with a loader that can fail: its `Err` is
    /// returned and nothing it was asked for is cached; callers waiting on those keys try again.
    ///
    /// ```
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// let failed = tower.try_get_or_set_many(&["a", "b"], |_| Err::<Vec<(String, u32)>, _>("database down"));
    /// assert_eq!(failed, Err("database down"));
    /// let loaded = tower.try_get_or_set_many(&["a", "b"], |missing| {
    ///     Ok::<_, String>(missing.iter().map(|key| (key.to_string(), key.len() as u32)).collect::<Vec<_>>())
    /// });
    /// assert_eq!(loaded.map(|values| values.len()), Ok(2));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// The error `load` returned.
    pub fn try_get_or_set_many<T, K, F, I, L, E>(&self, keys: &[K], mut load: F) -> Result<IndexMap<String, T>, E>
    where
        T: Cacheable,
        K: AsRef<str>,
        F: FnMut(&[&str]) -> Result<I, E>,
        I: IntoIterator<Item = (L, T)>,
        L: Into<String>,
    {
        let stack = self.load_stack();
        let mut pass = |keys: &[&str]| {
            let asked = OnceLock::new();
            let plan = GetOrSetMany::new(self.context(&stack), keys, &asked);
            let compute = || load(asked.get().map_or(&[][..], Vec::as_slice)).map(owned_pairs);
            blocking::run_computing(plan, Some(blocking::Inline(compute))).map(owned_retry)
        };
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let (mut values, mut retry) = pass(&keys)?;
        while !retry.is_empty() {
            let keys: Vec<&str> = retry.iter().map(String::as_str).collect();
            let (again, still) = pass(&keys)?;
            merge(&mut values, again);
            retry = still;
        }
        Ok(present(values))
    }

    /// The async twin of [`get_or_set_many`](Self::get_or_set_many). The loader gets the
    /// missing keys as owned strings, so that the future it returns may keep them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_tower::Result<()> {
    /// let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    /// let values = tower
    ///     .get_or_set_many_async(&["a", "bb"], |missing| async move {
    ///         missing.into_iter().map(|key| { let n = key.len(); (key, n) }).collect::<Vec<_>>()
    ///     })
    ///     .await;
    /// assert_eq!(values["bb"], 2);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn get_or_set_many_async<T, K, F, Fut, I, L>(&self, keys: &[K], mut load: F) -> IndexMap<String, T>
    where
        T: Cacheable,
        K: AsRef<str>,
        F: FnMut(Vec<String>) -> Fut,
        Fut: Future<Output = I>,
        I: IntoIterator<Item = (L, T)>,
        L: Into<String>,
    {
        let fallible = |missing| {
            let loading = load(missing);
            async move { Ok::<I, std::convert::Infallible>(loading.await) }
        };
        match self.try_get_or_set_many_async(keys, fallible).await {
            Ok(values) => values,
            Err(never) => match never {},
        }
    }

    /// The async twin of [`try_get_or_set_many`](Self::try_get_or_set_many).
    ///
    /// # Errors
    /// The error `load` returned.
    #[cfg(feature = "tokio")]
    pub async fn try_get_or_set_many_async<T, K, F, Fut, I, L, E>(
        &self,
        keys: &[K],
        mut load: F,
    ) -> Result<IndexMap<String, T>, E>
    where
        T: Cacheable,
        K: AsRef<str>,
        F: FnMut(Vec<String>) -> Fut,
        Fut: Future<Output = Result<I, E>>,
        I: IntoIterator<Item = (L, T)>,
        L: Into<String>,
    {
        let stack = self.load_stack();
        let pass = async |keys: &[&str], load: &mut F| {
            let asked = OnceLock::new();
            let plan = GetOrSetMany::new(self.context(&stack), keys, &asked);
            let compute = || {
                let missing =
                    asked.get().map_or_else(Vec::new, |keys| keys.iter().map(|&key| key.to_owned()).collect());
                let loading = load(missing);
                async move { loading.await.map(owned_pairs) }
            };
            asynchronous::run_computing(plan, Some(asynchronous::Inline(compute))).await.map(owned_retry)
        };
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let (mut values, mut retry) = pass(&keys, &mut load).await?;
        while !retry.is_empty() {
            let keys: Vec<&str> = retry.iter().map(String::as_str).collect();
            let (again, still) = pass(&keys, &mut load).await?;
            merge(&mut values, again);
            retry = still;
        }
        Ok(present(values))
    }
}

/// The loader's pairs with owned keys.
fn owned_pairs<T, L: Into<String>>(pairs: impl IntoIterator<Item = (L, T)>) -> Vec<(String, T)> {
    pairs.into_iter().map(|(key, value)| (key.into(), value)).collect()
}

/// A pass's output with the keys to try again owned, so the next pass may borrow them.
fn owned_retry<T>((values, retry): Pass<'_, T>) -> (IndexMap<String, Option<T>>, Vec<String>) {
    (values, retry.into_iter().map(str::to_owned).collect())
}

/// Puts a later pass's values in the first pass's map (which holds every key, in request order).
fn merge<T>(values: &mut IndexMap<String, Option<T>>, again: IndexMap<String, Option<T>>) {
    for (key, value) in again {
        if let (Some(slot), Some(value)) = (values.get_mut(&key), value) {
            *slot = Some(value);
        }
    }
}

/// The keys that have a value, in request order.
fn present<T>(values: IndexMap<String, Option<T>>) -> IndexMap<String, T> {
    values.into_iter().filter_map(|(key, value)| Some((key, value?))).collect()
}
