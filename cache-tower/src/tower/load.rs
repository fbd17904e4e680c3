//! The get-or-load entry points: get-or-set for a computation that owns what it needs, so that
//! it can go on when its caller stops waiting. That is what soft and hard timeouts and eager
//! refresh take ([`LoadOptions`]): the computation runs on a thread (blocking) or a tokio task
//! (async) of its own, holding the key's flight, and stores its value in every layer when it
//! completes; callers wait for it until their timeout. Everything else is the `GetOrSet` plan.

#[cfg(feature = "tokio")]
use std::future::Future;
use std::time::Duration;

use super::plan::{Background, Detached, GetOrSet};
use super::{CacheTower, Layer, blocking};
use crate::error::Error;
use crate::flight::Flights;
use crate::load_options::LoadOptions;
use crate::value::Cacheable;

/// What the fast lane made of a get-or-load.
enum Fast<T> {
    /// A fresh hit.
    Hit(T),
    /// A fresh hit past the refresh-ahead fraction of its TTL: refresh it in the background.
    Due(T),
    /// No hit; `true` when the top layer was seen without the key.
    Miss(bool),
}

impl CacheTower {
    /// [`try_get_or_set_with`](Self::try_get_or_set_with) for a computation that owns what it
    /// needs (`Send + 'static`), so that it can outlive the call: this is the call that honours
    /// [`LoadOptions`]'s soft and hard timeouts and eager refresh, besides everything
    /// `try_get_or_set_with` does.
    ///
    /// * With timeouts, the computation runs on a thread of its own, holding the key's flight
    ///   (callers of the same key meanwhile wait for it, each until its own timeouts), and stores
    ///   its value in every layer when it completes, whether or not anyone still waits.
    /// * `refresh_ahead`: a hit on a copy past that fraction of its TTL returns at once and
    ///   starts one background computation of the key (none when one is under way), once per
    ///   copy: after a failed refresh the copy serves until its TTL runs out.
    ///
    /// The error type takes a cache-tower [`Error`] (`From<Error>`): the hard timeout's, of
    /// [`ErrorKind::Timeout`](crate::error::ErrorKind::Timeout), when no stale value could answer.
    /// `String` and `Box<dyn std::error::Error + Send + Sync>` do.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_tower::{CacheTower, LoadOptions};
    ///
    /// let tower = CacheTower::from_json(r#"[{"adapter": "memory", "ttl": 60, "stale": 3600}]"#)?;
    /// let options = LoadOptions::new().hard_timeout(Duration::from_millis(50));
    /// let slow = || {
    ///     std::thread::sleep(Duration::from_millis(500));
    ///     Ok::<u32, String>(7)
    /// };
    /// // Nothing stale to answer with: the hard timeout's error.
    /// assert!(tower.try_get_or_load("k", &options, slow).is_err());
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    ///
    /// # Errors
    /// The computation's error, or the hard timeout's, when no stale value could answer.
    pub fn try_get_or_load<T, E, F>(&self, key: &str, options: &LoadOptions, load: F) -> Result<T, E>
    where
        T: Cacheable,
        E: From<Error> + Send + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        // A guard for the fast lane; an owned snapshot only for what may outlive the call.
        let stack = self.stack.load();
        let options = options.or(&self.load_options.load());
        let top_lacks_key = match fast_hit(&stack, key, &options) {
            Fast::Hit(value) => return Ok(value),
            Fast::Due(value) => {
                let stack = arc_swap::Guard::into_inner(stack);
                if let Some(job) = self.refresh_job(&stack, key, &options) {
                    let mut load = blocking::Detachable(Some(load));
                    // The outcome goes nowhere: the job stores the value itself.
                    drop(blocking::Computation::detach(&mut load, job));
                }
                return Ok(value);
            }
            Fast::Miss(top_lacks_key) => top_lacks_key,
        };
        let stack = arc_swap::Guard::into_inner(stack);
        let plan =
            GetOrSet::new(self.context(&stack), key, top_lacks_key, &options).with_background(self.background(&stack));
        blocking::run_computing(plan, Some(blocking::Detachable(Some(load))))
    }

    /// The async twin of [`try_get_or_load`](Self::try_get_or_load): the computation is a
    /// future that owns what it needs, spawned on the current tokio runtime when it must outlive
    /// the call (outside a tokio runtime it is awaited in place, and timeouts apply to waiting
    /// callers only).
    ///
    /// # Errors
    /// As [`try_get_or_load`](Self::try_get_or_load).
    #[cfg(feature = "tokio")]
    pub async fn try_get_or_load_async<T, E, F, Fut>(&self, key: &str, options: &LoadOptions, load: F) -> Result<T, E>
    where
        T: Cacheable,
        E: From<Error> + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        use super::asynchronous::{self, Computation as _};

        // A guard for the fast lane; an owned snapshot only for what may outlive the call.
        let stack = self.stack.load();
        let options = options.or(&self.load_options.load());
        let top_lacks_key = match fast_hit(&stack, key, &options) {
            Fast::Hit(value) => return Ok(value),
            Fast::Due(value) => {
                let stack = arc_swap::Guard::into_inner(stack);
                let mut load = asynchronous::Detachable(Some(load));
                if load.can_detach() {
                    if let Some(job) = self.refresh_job(&stack, key, &options) {
                        drop(load.detach(job));
                    }
                }
                return Ok(value);
            }
            Fast::Miss(top_lacks_key) => top_lacks_key,
        };
        let stack = arc_swap::Guard::into_inner(stack);
        let plan =
            GetOrSet::new(self.context(&stack), key, top_lacks_key, &options).with_background(self.background(&stack));
        asynchronous::run_computing(plan, Some(asynchronous::Detachable(Some(load)))).await
    }

    /// Owned handles on what plans of `stack` borrow, for a background load.
    fn background(&self, stack: &std::sync::Arc<Vec<Layer>>) -> Background {
        Background {
            stack: std::sync::Arc::clone(stack),
            log: std::sync::Arc::clone(&self.coherence.log),
            flights: crate::sync_shim::Arc::clone(&self.flights),
        }
    }

    /// The background job of an eager refresh of `key`, leading its flight; `None` when a
    /// computation of the key is under way already.
    fn refresh_job<T: Cacheable>(
        &self,
        stack: &std::sync::Arc<Vec<Layer>>,
        key: &str,
        options: &LoadOptions,
    ) -> Option<Detached<T>> {
        let leader = Flights::try_lead(&self.flights, key)?;
        Some(Detached {
            background: self.background(stack),
            key: key.to_owned(),
            leader,
            store_as: super::plan::StoreAs::of(options),
            lock: None,
            _value: std::marker::PhantomData,
        })
    }
}

/// The fast lane of a get-or-load: a typed hit in a memory top layer, and whether this caller
/// is to start its eager refresh (the copy is due and nobody started one: [`RefreshAhead`]).
fn fast_hit<T: Cacheable>(stack: &[Layer], key: &str, options: &LoadOptions) -> Fast<T> {
    let Some(top) = stack.first() else { return Fast::Miss(false) };
    let Some(lookup) = top.lookup(key) else { return Fast::Miss(false) };
    match lookup.hit_starting_refresh::<T>(RefreshAhead::of(options, top)) {
        Some((value, true)) => Fast::Due(value.clone()),
        Some((value, false)) => Fast::Hit(value.clone()),
        None => Fast::Miss(lookup.lacks_key()),
    }
}

/// When a copy in the top layer is due for an eager refresh (`LoadOptions::refresh_ahead`): once
/// less than `1 − refresh_ahead` of its TTL is left. Each copy is refreshed ahead once at most
/// (the memory layer marks it when the refresh starts): a refresh that fails or finds the key's
/// computation under way leaves the copy to serve until its TTL runs out, when the next call
/// loads it the normal way (with the fail-safe), so a failing source is not asked on every hit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefreshAhead {
    /// Due when the copy has less than this left.
    due_below: Duration,
}

impl RefreshAhead {
    /// What `options` ask of copies in `top`: nothing without a `refresh_ahead` strictly between
    /// 0 and 1, or without a TTL to take that fraction of (the options', else the layer's).
    pub(crate) fn of(options: &LoadOptions, top: &Layer) -> Option<Self> {
        let fraction = options.refresh_ahead.filter(|fraction| *fraction > 0.0 && *fraction < 1.0)?;
        let ttl = options.ttl.filter(|ttl| !ttl.is_zero()).or_else(|| top.adapter.ttl())?;
        Some(Self { due_below: ttl.mul_f64(1.0 - fraction) })
    }

    /// Whether a copy with `fresh_left` (`None`: no TTL, never due) is due.
    #[inline]
    pub(crate) fn due(self, fresh_left: Option<Duration>) -> bool {
        fresh_left.is_some_and(|left| left < self.due_below)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_due_past_the_fraction_of_its_ttl() {
        let top =
            Layer::new(std::sync::Arc::new(crate::MemoryAdapter::builder().ttl(Duration::from_secs(100)).build()));
        let refresh = |fraction| RefreshAhead::of(&LoadOptions::new().refresh_ahead(fraction), &top);
        let due = refresh(0.8).unwrap();
        assert!(!due.due(Some(Duration::from_secs(21))));
        assert!(due.due(Some(Duration::from_secs(19))));
        assert!(!due.due(None), "a copy without a TTL");
        for nonsense in [0.0, 1.0, -0.5, 2.0, f64::NAN] {
            assert!(refresh(nonsense).is_none(), "{nonsense}");
        }
        let untimed = Layer::new(std::sync::Arc::new(crate::MemoryAdapter::new()));
        assert!(RefreshAhead::of(&LoadOptions::new().refresh_ahead(0.8), &untimed).is_none(), "no TTL");
        let own_ttl = LoadOptions::new().refresh_ahead(0.5).ttl(Duration::from_secs(10));
        assert!(RefreshAhead::of(&own_ttl, &untimed).unwrap().due(Some(Duration::from_secs(4))));
    }
}
