//! The async driver (feature `tokio`): carries out a plan's steps awaiting each layer's
//! [`AsyncCacheAdapter`](crate::adapter::AsyncCacheAdapter) when it has one, and calling in-process
//! layers inline (see `plan.rs`). The tower's `*_async` operations, a few lines each over it,
//! are in `tower.rs`, after the blocking ones.

use std::convert::Infallible;
use std::future::Future;

use super::layer::Layer;
use super::plan::{Failure, Input, Plan, Step};
use crate::adapter::{Reply, Request};
use crate::error::Result;

/// The async twin of `blocking::run_computing`: the same loop, awaiting each step.
pub(super) async fn run_computing<P, E, F, Fut>(mut plan: P, mut compute: Option<F>) -> Result<P::Output, E>
where
    P: Plan,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<P::Value, E>>,
{
    let mut input = Input::Start;
    let mut failure = None;
    loop {
        if let Some(output) = plan.advance(input) {
            return Ok(output);
        }
        input = match plan.next() {
            Step::Call { index, layer, request } => Input::Reply(call(layer, index, request).await),
            Step::Wait(flight) => Input::Landed(flight.wait_async().await),
            // Only get-or-set plans compute, once, and they are always run with a computation.
            Step::Compute { catch_panics } => match compute.take() {
                Some(compute) => match computed(catch_panics, compute).await {
                    Ok(value) => Input::Computed(value),
                    Err(failed) => {
                        failure = Some(failed);
                        Input::Failed
                    }
                },
                // A second ask would loop for ever, holding the flight: fail loudly instead.
                None => unreachable!("a plan asked to compute twice, or without a computation"),
            },
            Step::Fail => return Failure::resume(failure.take()),
        };
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
