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
    ///   starts one background computation of the key (none when one is under way).
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
            ttl: options.ttl.filter(|ttl| !ttl.is_zero()),
            stale_window: options.stale,
            lock: None,
            _value: std::marker::PhantomData,
        })
    }
}

/// The fast lane of a get-or-load: a typed hit in a memory top layer, and whether its copy is
/// due for an eager refresh (past `refresh_ahead` of its TTL: the call's, or the layer's).
fn fast_hit<T: Cacheable>(stack: &[Layer], key: &str, options: &LoadOptions) -> Fast<T> {
    let Some(top) = stack.first() else { return Fast::Miss(false) };
    let Some(lookup) = top.memory.as_ref().and_then(|memory| memory.lock_for_lookup(key)) else {
        return Fast::Miss(false);
    };
    let Some((stored, fresh_left)) = lookup.value_and_fresh_left() else { return Fast::Miss(true) };
    let Some(value) = stored.typed::<T>() else { return Fast::Miss(false) };
    top.counters.hit();
    let value = value.clone();
    drop(lookup);
    let ttl = options.ttl.filter(|ttl| !ttl.is_zero()).or_else(|| top.adapter.ttl());
    match (options.refresh_ahead, fresh_left, ttl) {
        (Some(fraction), Some(left), Some(ttl)) if refresh_due(fraction, left, ttl) => Fast::Due(value),
        _ => Fast::Hit(value),
    }
}

/// Whether a copy with `left` of its `ttl` is past `fraction` of it (`0 < fraction < 1`).
fn refresh_due(fraction: f64, left: Duration, ttl: Duration) -> bool {
    if !(fraction > 0.0 && fraction < 1.0) {
        return false;
    }
    left < ttl.mul_f64(1.0 - fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_due_past_the_fraction_of_its_ttl() {
        let ttl = Duration::from_secs(100);
        assert!(!refresh_due(0.8, Duration::from_secs(21), ttl));
        assert!(refresh_due(0.8, Duration::from_secs(19), ttl));
        for nonsense in [0.0, 1.0, -0.5, 2.0, f64::NAN] {
            assert!(!refresh_due(nonsense, Duration::ZERO, ttl), "{nonsense}");
        }
    }
}
