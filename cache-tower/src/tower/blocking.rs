//! The blocking driver: carries out a plan's steps on the calling thread (see `plan.rs`).

use std::convert::Infallible;
use std::sync::mpsc;

use event_listener::Listener as _;
use std::time::Instant;

use super::layer::Layer;
use super::plan::{Detached, Failure, Input, Plan, Step};
use crate::adapter::{Reply, Request};
use crate::error::{Error, Result};
use crate::value::{Cacheable, StoredValue};

/// A caller's computation, as the blocking driver runs it.
pub(super) trait Computation<V, E>: Sized {
    /// Runs it on the calling thread; with `catch_panics`, a panic is a [`Failure::Panic`].
    fn run(self, catch_panics: bool) -> Result<V, Failure<E>>;

    /// Whether it can leave its caller (it owns what it needs).
    fn can_detach(&self) -> bool;

    /// Hands it to a thread of its own with `job`, which stores its value and lands the flight:
    /// the receiver gets its outcome. What stays is a shell that only knows
    /// [`timed_out`](Self::timed_out).
    fn detach(&mut self, job: Detached<V>) -> Outcome<V, E>;

    /// The error of a caller whose hard timeout passed: only computations that can be detached
    /// have one.
    fn timed_out(&self) -> Option<E>;
}

/// Where a detached computation's outcome arrives.
pub(super) type Outcome<V, E> = mpsc::Receiver<Result<V, Failure<E>>>;

/// A computation that borrows from its caller, so it runs on the caller's thread.
pub(super) struct Inline<F>(pub(super) F);

impl<V, E, F: FnOnce() -> Result<V, E>> Computation<V, E> for Inline<F> {
    fn run(self, catch_panics: bool) -> Result<V, Failure<E>> {
        Failure::catch(catch_panics, self.0)
    }

    fn can_detach(&self) -> bool {
        false
    }

    /// Never asked (see [`can_detach`](Computation::can_detach)): the job is dropped, which
    /// abandons its flight, and the outcome never comes (a timeout).
    fn detach(&mut self, job: Detached<V>) -> Outcome<V, E> {
        drop(job);
        mpsc::channel().1
    }

    fn timed_out(&self) -> Option<E> {
        None
    }
}

/// A computation that owns what it needs, so it can go on when its caller stops waiting
/// (`try_get_or_load`); `None` once handed over.
pub(super) struct Detachable<F>(pub(super) Option<F>);

impl<V, E, F> Computation<V, E> for Detachable<F>
where
    V: Cacheable,
    E: From<Error> + Send + 'static,
    F: FnOnce() -> Result<V, E> + Send + 'static,
{
    fn run(mut self, catch_panics: bool) -> Result<V, Failure<E>> {
        match self.0.take() {
            Some(compute) => Failure::catch(catch_panics, compute),
            None => Err(Failure::Error(E::from(handed_over()))),
        }
    }

    fn can_detach(&self) -> bool {
        self.0.is_some()
    }

    fn detach(&mut self, job: Detached<V>) -> Outcome<V, E> {
        let (outcome, receiver) = mpsc::channel();
        let Some(compute) = self.0.take() else { return receiver };
        let spawned = std::thread::Builder::new().name("cache-tower-load".into()).spawn(move || {
            // The caller may have stopped waiting: then nobody hears the outcome, but the
            // value is stored all the same.
            let _ = outcome.send(load_in_background(job, compute));
        });
        // No thread to be had: the job went with the closure, which dropped the leadership
        // (abandoning the flight), and the receiver says the sender is gone: a timeout.
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cannot start a thread for a background load");
        }
        receiver
    }

    fn timed_out(&self) -> Option<E> {
        Some(E::from(Error::load_timeout("the computation did not finish within the hard timeout")))
    }
}

#[cold]
fn handed_over() -> Error {
    Error::load_timeout("the computation was handed over already")
}

/// Runs a detached computation: computes, stores the value in every layer and lands the flight;
/// on failure, drops the leadership (abandoning the flight).
pub(super) fn load_in_background<V: Cacheable, E>(
    job: Detached<V>,
    compute: impl FnOnce() -> Result<V, E>,
) -> Result<V, Failure<E>> {
    let value = Failure::catch(true, compute)?;
    let stored = StoredValue::new(value.clone());
    // A store failure is counted and logged by the driver; the value still lands.
    let _ = run(job.store(&stored));
    if let Some((layer, index, unlock)) = job.unlock() {
        // A release that fails leaves a lock that expires.
        let _ = call(layer, index, unlock);
    }
    job.land(stored);
    Ok(value)
}

/// Runs `plan` to its end; `compute` answers its [`Step::Compute`] (get-or-set). When it fails,
/// the plan decides: fall back on a stale value, or [`Step::Fail`], which ends the run with the
/// computation's error (dropping the plan, which abandons its flight).
pub(super) fn run_computing<P: Plan, E>(
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
            Step::Call { index, layer, request } => Input::Reply(call(layer, index, request)),
            Step::Wait { flight, until: None } => Input::Landed(flight.wait()),
            Step::Wait { flight, until: Some(deadline) } => match flight.wait_until(deadline) {
                Some(landed) => Input::Landed(landed),
                None => Input::TimedOut,
            },
            Step::Compute { catch_panics, detach, until } => {
                if detach && detached.is_none() && compute.as_ref().is_some_and(Computation::can_detach) {
                    if let (Some(computation), Some(job)) = (compute.as_mut(), plan.detach()) {
                        detached = Some(computation.detach(job));
                    }
                }
                let outcome = match &detached {
                    Some(outcome) => awaited(outcome, until),
                    // Only get-or-set plans compute, once, and they are always run with one.
                    None => match compute.take() {
                        Some(computation) => Some(computation.run(catch_panics)),
                        // A second ask would loop for ever, holding the flight: fail loudly.
                        None => unreachable!("a plan asked to compute twice, or without a computation"),
                    },
                };
                Input::of_outcome(outcome, &mut failure)
            }
            Step::Nap { log, until } => {
                // A change wakes it early; a change just before it listened is found at `until`.
                let _ = log.listen().wait_deadline(until);
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

/// Waits for a detached computation's outcome, until `until` at the latest (`None`: timed out,
/// or the background thread is gone without an outcome).
fn awaited<V, E>(outcome: &Outcome<V, E>, until: Option<Instant>) -> Option<Result<V, Failure<E>>> {
    match until {
        Some(deadline) => outcome.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok(),
        None => outcome.recv().ok(),
    }
}

/// Runs a plan that never computes.
pub(super) fn run<P: Plan<Value = Infallible>>(plan: P) -> P::Output {
    match run_computing(plan, None::<Inline<fn() -> Result<Infallible, Infallible>>>) {
        Ok(output) => output,
        Err(never) => match never {},
    }
}

/// One blocking call to a layer, through its breaker.
pub(super) fn call(layer: &Layer, index: usize, request: Request<'_>) -> Result<Reply> {
    layer.admit(index)?;
    layer.record(index, request.name(), request.run(&*layer.adapter))
}
