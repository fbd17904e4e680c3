//! The async driver (feature `tokio`): carries out a plan's steps awaiting each layer's
//! [`AsyncCacheAdapter`](crate::adapter::AsyncCacheAdapter) when it has one, and calling in-process
//! layers inline (see `plan.rs`). The tower's `*_async` operations, a few lines each over it,
//! are in `tower.rs`, after the blocking ones.

use std::convert::Infallible;
use std::future::Future;

use super::layer::Layer;
use super::plan::{Detached, Failure, Input, Plan, Step};
use crate::adapter::{Reply, Request};
use crate::error::{Error, Result};
use crate::value::{Cacheable, StoredValue};

/// A caller's computation, as the async driver runs it (the twin of `blocking::Computation`).
pub(super) trait Computation<V, E>: Sized {
    /// Awaits it in the caller's task; with `catch_panics`, a panic is a [`Failure::Panic`].
    fn run(self, catch_panics: bool) -> impl Future<Output = Result<V, Failure<E>>>;

    /// Whether it can leave its caller: it owns what it needs, and a tokio runtime is there to
    /// spawn it on.
    fn can_detach(&self) -> bool;

    /// Spawns it as a task of its own with `job`, which stores its value and lands the flight;
    /// the receiver gets its outcome.
    fn detach(&mut self, job: Detached<V>) -> Outcome<V, E>;

    /// The error of a caller whose hard timeout passed (see `blocking::Computation`).
    fn timed_out(&self) -> Option<E>;
}

/// Where a detached computation's outcome arrives.
pub(super) type Outcome<V, E> = tokio::sync::oneshot::Receiver<Result<V, Failure<E>>>;

/// A computation that borrows from its caller, so its caller's task awaits it.
pub(super) struct Inline<F>(pub(super) F);

impl<V, E, F, Fut> Computation<V, E> for Inline<F>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<V, E>>,
{
    fn run(self, catch_panics: bool) -> impl Future<Output = Result<V, Failure<E>>> {
        computed(catch_panics, self.0)
    }

    fn can_detach(&self) -> bool {
        false
    }

    /// Never asked: the job is dropped (abandoning its flight), and the outcome never comes.
    fn detach(&mut self, job: Detached<V>) -> Outcome<V, E> {
        drop(job);
        tokio::sync::oneshot::channel().1
    }

    fn timed_out(&self) -> Option<E> {
        None
    }
}

/// A computation that owns what it needs (`try_get_or_load_async`); `None` once handed over.
pub(super) struct Detachable<F>(pub(super) Option<F>);

impl<V, E, F, Fut> Computation<V, E> for Detachable<F>
where
    V: Cacheable,
    E: From<Error> + Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<V, E>> + Send + 'static,
{
    async fn run(mut self, catch_panics: bool) -> Result<V, Failure<E>> {
        match self.0.take() {
            Some(compute) => computed(catch_panics, compute).await,
            None => Err(Failure::Error(E::from(Error::load_timeout("the computation was handed over already")))),
        }
    }

    fn can_detach(&self) -> bool {
        self.0.is_some() && tokio::runtime::Handle::try_current().is_ok()
    }

    fn detach(&mut self, job: Detached<V>) -> Outcome<V, E> {
        let (outcome, receiver) = tokio::sync::oneshot::channel();
        if let Some(compute) = self.0.take() {
            tokio::spawn(async move {
                // Nobody may be waiting any more: the value is stored all the same.
                let _ = outcome.send(load_in_background(job, compute).await);
            });
        }
        receiver
    }

    fn timed_out(&self) -> Option<E> {
        Some(E::from(Error::load_timeout("the computation did not finish within the hard timeout")))
    }
}

/// The async twin of `blocking::load_in_background`.
pub(super) async fn load_in_background<V: Cacheable, E, Fut: Future<Output = Result<V, E>>>(
    job: Detached<V>,
    compute: impl FnOnce() -> Fut,
) -> Result<V, Failure<E>> {
    let value = computed(true, compute).await?;
    let stored = StoredValue::new(value.clone());
    // A store failure is counted and logged by the driver; the value still lands.
    let _ = run(job.store(&stored)).await;
    if let Some((layer, index, unlock)) = job.unlock() {
        // A release that fails leaves a lock that expires.
        let _ = call(layer, index, unlock).await;
    }
    job.land(stored);
    Ok(value)
}

/// The async twin of `blocking::run_computing`: the same loop, awaiting each step.
pub(super) async fn run_computing<P: Plan, E>(
    mut plan: P,
    mut compute: Option<impl Computation<P::Value, E>>,
) -> Result<P::Output, E> {
    let mut input = Input::Start;
    let mut failure = None;
    let mut detached: Option<Outcome<P::Value, E>> = None;
    loop {
        if let Some(output) = plan.advance(input) {
            return Ok(output);
        }
        input = match plan.next() {
            Step::Call { index, layer, request } => Input::Reply(call(layer, index, request).await),
            Step::Wait { flight, until: None } => Input::Landed(flight.wait_async().await),
            Step::Wait { flight, until: Some(deadline) } => {
                match tokio::time::timeout_at(deadline.into(), flight.wait_async()).await {
                    Ok(landed) => Input::Landed(landed),
                    Err(_) => Input::TimedOut,
                }
            }
            Step::Compute { catch_panics, detach, until } => {
                if detach && detached.is_none() && compute.as_ref().is_some_and(Computation::can_detach) {
                    if let (Some(computation), Some(job)) = (compute.as_mut(), plan.detach()) {
                        detached = Some(computation.detach(job));
                    }
                }
                let outcome = match detached.as_mut() {
                    Some(outcome) => awaited(outcome, until).await,
                    // Only get-or-set plans compute, once, and they are always run with one.
                    None => match compute.take() {
                        Some(computation) => Some(computation.run(catch_panics).await),
                        // A second ask would loop for ever, holding the flight: fail loudly.
                        None => unreachable!("a plan asked to compute twice, or without a computation"),
                    },
                };
                Input::of_outcome(outcome, &mut failure)
            }
            Step::Nap { log, until } => {
                // A change wakes it early; a change just before it listened is found at `until`.
                let _ = tokio::time::timeout_at(until.into(), log.listen()).await;
                Input::Woke
            }
            Step::Fail => return Failure::resume(failure.take()),
            Step::GiveUp => match compute.as_ref().and_then(Computation::timed_out) {
                Some(err) => return Err(err),
                // A plan gives up only when run with a computation that can be detached.
                None => unreachable!("a plan gave up without a computation that can time out"),
            },
        };
    }
}

/// Awaits a detached computation's outcome, until `until` at the latest (`None`: timed out, or
/// the background task is gone without an outcome).
async fn awaited<V, E>(
    outcome: &mut Outcome<V, E>,
    until: Option<std::time::Instant>,
) -> Option<Result<V, Failure<E>>> {
    match until {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), outcome).await.ok().and_then(Result::ok),
        None => outcome.await.ok(),
    }
}

/// Runs the computation; with `catch_panics`, a panic while making or polling its future is a
/// [`Failure::Panic`] (as `Failure::catch` is for the blocking driver).
async fn computed<V, E, Fut: Future<Output = Result<V, E>>>(
    catch_panics: bool,
    compute: impl FnOnce() -> Fut,
) -> Result<V, Failure<E>> {
    if !catch_panics {
        return compute().await.map_err(Failure::Error);
    }
    let future = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(compute)) {
        Ok(future) => future,
        Err(panic) => return Err(Failure::Panic(panic)),
    };
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(result)) => std::task::Poll::Ready(result.map_err(Failure::Error)),
            Err(panic) => std::task::Poll::Ready(Err(Failure::Panic(panic))),
        }
    })
    .await
}

/// Runs a plan that never computes.
pub(super) async fn run<P: Plan<Value = Infallible>>(plan: P) -> P::Output {
    let no_computation = None::<Inline<fn() -> std::future::Ready<Result<Infallible, Infallible>>>>;
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
