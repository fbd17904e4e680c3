//! The blocking driver: carries out a plan's steps on the calling thread (see `plan.rs`).

use std::convert::Infallible;

use super::layer::Layer;
use super::plan::{Failure, Input, Plan, Step};
use crate::adapter::{Reply, Request};
use crate::error::Result;

/// Runs `plan` to its end; `compute` answers its [`Step::Compute`] (get-or-set). When it fails,
/// the plan decides: fall back on a stale value, or [`Step::Fail`], which ends the run with the
/// computation's error (dropping the plan, which abandons its flight).
pub(super) fn run_computing<P: Plan, E>(
    mut plan: P,
    mut compute: Option<impl FnOnce() -> Result<P::Value, E>>,
) -> Result<P::Output, E> {
    let mut input = Input::Start;
    let mut failure = None;
    loop {
        if let Some(output) = plan.advance(input) {
            return Ok(output);
        }
        input = match plan.next() {
            Step::Call { index, layer, request } => Input::Reply(call(layer, index, request)),
            Step::Wait(flight) => Input::Landed(flight.wait()),
            // Only get-or-set plans compute, once, and they are always run with a computation.
            Step::Compute { catch_panics } => match compute.take() {
                Some(compute) => match Failure::catch(catch_panics, compute) {
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

/// Runs a plan that never computes.
pub(super) fn run<P: Plan<Value = Infallible>>(plan: P) -> P::Output {
    match run_computing(plan, None::<fn() -> Result<Infallible, Infallible>>) {
        Ok(output) => output,
        Err(never) => match never {},
    }
}

/// One blocking call to a layer, through its breaker.
pub(super) fn call(layer: &Layer, index: usize, request: Request<'_>) -> Result<Reply> {
    layer.admit(index)?;
    layer.record(index, request.name(), request.run(&*layer.adapter))
}
