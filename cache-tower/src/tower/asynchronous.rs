//! The async driver (feature `tokio`): carries out a plan's steps awaiting each layer's
//! [`AsyncCacheAdapter`](crate::adapter::AsyncCacheAdapter) when it has one, and calling in-process
//! layers inline (see `plan.rs`). The tower's `*_async` operations, a few lines each over it,
//! are in `tower.rs`, after the blocking ones.

use std::convert::Infallible;
use std::future::Future;

use super::layer::Layer;
use super::plan::{Input, Plan, Step};
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
