//! The async driver (feature `tokio`): carries out a plan's steps awaiting each layer's
//! [`AsyncCacheAdapter`](crate::AsyncCacheAdapter) when it has one, and calling in-process
//! layers inline (see `plan.rs`); and the tower's `*_async` operations, each a few lines over it.

use indexmap::IndexMap;
use std::convert::Infallible;
use std::future::Future;

use super::CacheTower;
use super::layer::Layer;
use super::plan::{Exists, GetOrSet, Input, Mget, Plan, Read, Step, Write, WriteLayers, mset_entries};
use crate::adapter::{Reply, Request};
use crate::error::Result;
use crate::value::{Cacheable, Entry, StoredValue};

/// The async twin of `blocking::run_computing`: the same loop, awaiting each step.
pub(super) async fn run_computing<P, E, F, Fut>(mut plan: P, mut compute: Option<F>) -> Result<P::Output, E>
where
    P: Plan,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<P::Value, E>>,
{
    let mut input = Input::Start;
    loop {
        if let Some(output) = plan.advance(input) {
            return Ok(output);
        }
        input = match plan.next() {
            Step::Call { index, layer, request } => Input::Reply(call(layer, index, request).await),
            Step::Wait(flight) => Input::Landed(flight.wait_async().await),
            // Only get-or-set plans compute, once, and they are always run with a computation.
            Step::Compute => match compute.take() {
                Some(compute) => Input::Computed(compute().await?),
                // A second ask would loop for ever, holding the flight: fail loudly instead.
                None => unreachable!("a plan asked to compute twice, or without a computation"),
            },
        };
    }
}

/// Runs a plan that never computes.
pub(super) async fn run<P: Plan<Value = Infallible>>(plan: P) -> P::Output {
    let no_computation = None::<fn() -> std::future::Ready<Result<Infallible, Infallible>>>;
    match run_computing(plan, no_computation).await {
        Ok(output) => output,
        Err(never) => match never {},
    }
}

/// One call to a layer through its breaker, awaited when the layer does I/O.
async fn call(layer: &Layer, index: usize, request: Request<'_>) -> Result<Reply> {
    layer.admit(index)?;
    let reply = match layer.adapter.as_async() {
        Some(adapter) => adapter.call(request).await,
        None => request.run(&*layer.adapter),
    };
    layer.record(index, request.name(), reply)
}

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
        let entries = mset_entries(items);
        self.write_async(Write::mset(&entries)).await
    }

    /// The async twin of [`delete`](Self::delete).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn delete_async(&self, key: &str) -> Result<()> {
        self.write_async(Write::Delete(key)).await
    }

    /// The async twin of [`flush`](Self::flush).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn flush_async(&self) -> Result<()> {
        self.write_async(Write::Flush).await
    }

    async fn write_async(&self, write: Write<'_>) -> Result<()> {
        let stack = self.stack.load_full();
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
        let fallible = || async { Ok::<T, Infallible>(compute().await) };
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
        if let Some(value) = self.fast_hit(key) {
            return Ok(value);
        }
        self.get_or_compute_async(key, compute).await
    }

    /// [`try_get_or_set_async`](Self::try_get_or_set_async) after the fast lane.
    pub(crate) async fn get_or_compute_async<T, E, F, Fut>(&self, key: &str, compute: F) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let stack = self.stack.load_full();
        run_computing(GetOrSet::new(self.context(&stack), key, false), Some(compute)).await
    }
}
