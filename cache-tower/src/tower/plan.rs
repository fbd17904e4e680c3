//! The tower's operations as sans-IO plans: state machines that say which layer to ask what, take
//! in each answer, and say what to do next, without doing any I/O themselves. The blocking driver
//! (`blocking.rs`) and the async driver (`asynchronous.rs`) carry the steps out, each in a loop of
//! a few lines, so the logic of every operation — read top down, backfill above a hit, write
//! bottom up, single flight — is written once, here.
//!
//! A driver runs a plan like this:
//!
//! ```text
//! input = Start
//! loop {
//!     if let Some(output) = plan.advance(input) { return output }
//!     input = match plan.next() {
//!         Call { layer, request, .. } => Reply(layer's answer),   // through its breaker
//!         Wait(flight)                => Landed(the flight's value, or None if abandoned),
//!         Compute { .. }              => Computed(the caller's value),   // get-or-set only
//!                                        or Failed (the error kept aside)
//!         Fail                        => return the computation's error
//!     }
//! }
//! ```
//!
//! The plans: [`Read`] (get), [`Exists`], [`Mget`], [`WriteLayers`] (set, mset, delete, flush
//! and every backfill), [`GetOrSet`] and [`GetOrSetMany`].

mod get_or_set;
mod get_or_set_many;
mod mget;
mod read;
mod write;

pub(super) use get_or_set::GetOrSet;
pub(super) use get_or_set_many::{GetOrSetMany, Pass};
pub(super) use mget::Mget;
pub(super) use read::{Exists, Read};
pub(super) use write::{Write, WriteLayers, mset_entries, own_ttl};

use super::layer::Layer;
use crate::adapter::{Reply, Request};
use crate::change_log::ChangeLog;
use crate::error::{Error, Fault, Result};
use crate::flight::{Flight, Flights};
use crate::sync_shim::Arc;
use crate::value::StoredValue;
use std::time::Instant;

/// What a plan asks its driver to do next.
pub(super) enum Step<'p> {
    /// Make one call to the layer at `index`, through its breaker; answer with [`Input::Reply`].
    Call { index: usize, layer: &'p Layer, request: Request<'p> },
    /// Wait until another caller computing the same key lands or abandons its flight, or
    /// until `until` has passed; answer with [`Input::Landed`] (or [`Input::TimedOut`]).
    Wait { flight: &'p Flight, until: Option<Instant> },
    /// Run the caller's computation; answer with [`Input::Computed`], or with [`Input::Failed`]
    /// when it failed (its error kept by the driver). With `catch_panics`, a panic of the
    /// computation is a failure too (the plan has a stale value to fall back on).
    ///
    /// With `detach`, a computation that can outlive its caller is handed to the background
    /// with the plan's [`detach`](Plan::detach)ed leadership (it stores its value and lands the
    /// flight itself), and the driver waits for its outcome until `until` at the latest
    /// ([`Input::TimedOut`]). One that cannot runs inline.
    Compute { catch_panics: bool, detach: bool, until: Option<Instant> },
    /// The computation failed and the plan has nothing to fall back on: the driver ends the run
    /// with the computation's error (or resumes its panic).
    Fail,
    /// The caller's hard timeout passed with nothing to fall back on: the driver ends the run
    /// with a timeout error (only plans of computations that can outlive their caller ask).
    GiveUp,
    /// Wait until the change log records a change or `until` passes, whichever is first; answer
    /// with [`Input::Woke`] (another instance holds the key's lock: its value may have come).
    Nap { log: &'p ChangeLog, until: Instant },
}

/// What a driver hands a plan: nothing yet, or the outcome of the last [`Step`].
pub(super) enum Input<V> {
    Start,
    Reply(Result<Reply>),
    Landed(Option<StoredValue>),
    Computed(V),
    /// The computation returned an error or panicked (the driver keeps which).
    Failed,
    /// The deadline of a [`Step::Wait`] or detached [`Step::Compute`] passed first.
    TimedOut,
    /// A [`Step::Nap`] is over.
    Woke,
}

impl<V> Input<V> {
    /// The input for a computation's outcome: its value, or [`Input::Failed`] with the failure
    /// kept in `failure` for the driver; no outcome (a detached computation that timed out, or
    /// whose thread or task is gone) is [`Input::TimedOut`].
    pub(super) fn of_outcome<E>(outcome: Option<Result<V, Failure<E>>>, failure: &mut Option<Failure<E>>) -> Self {
        match outcome {
            Some(Ok(value)) => Input::Computed(value),
            Some(Err(failed)) => {
                *failure = Some(failed);
                Input::Failed
            }
            None => Input::TimedOut,
        }
    }

    /// The answer to a [`Step::Call`]: `None` at the start, else the layer's reply. Any other
    /// input would be a driver's mistake: it comes out as a failed call (see [`no_reply`]).
    fn into_answer(self) -> Option<Result<Reply>> {
        match self {
            Input::Start => None,
            Input::Reply(reply) => Some(reply),
            Input::Landed(_) | Input::Computed(_) | Input::Failed | Input::TimedOut | Input::Woke => Some(no_reply()),
        }
    }
}

/// What a plan that called a layer makes of getting no reply: a failed call, never a panic.
fn no_reply() -> Result<Reply> {
    Err(Error::layer_fault(Fault::Other, "internal: a plan that called a layer got no reply"))
}

/// How a computation failed, as a driver keeps it while the plan decides what to do
/// ([`Input::Failed`]): its error, or the payload of its panic.
pub(super) enum Failure<E> {
    Error(E),
    Panic(Box<dyn std::any::Any + Send>),
}

impl<E> Failure<E> {
    /// Runs `compute`; with `catch_panics`, its panic becomes a [`Failure::Panic`] instead of
    /// unwinding through the driver.
    pub(super) fn catch<V>(catch_panics: bool, compute: impl FnOnce() -> Result<V, E>) -> Result<V, Self> {
        if !catch_panics {
            return compute().map_err(Failure::Error);
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(compute)) {
            Ok(result) => result.map_err(Failure::Error),
            Err(panic) => Err(Failure::Panic(panic)),
        }
    }

    /// What the caller gets when the plan had nothing to fall back on: the error, or the panic
    /// resumed.
    pub(super) fn resume<T>(failure: Option<Self>) -> Result<T, E> {
        match failure {
            Some(Failure::Error(err)) => Err(err),
            Some(Failure::Panic(panic)) => std::panic::resume_unwind(panic),
            // A plan asks to fail only after Input::Failed, which the driver sends with a failure.
            None => unreachable!("a plan asked to fail when no computation had failed"),
        }
    }
}

/// One operation, as a state machine (see the module docs for how a driver runs it).
pub(super) trait Plan {
    /// What [`Step::Compute`] produces (the caller's value, for get-or-set).
    type Value;
    /// What the operation returns.
    type Output;

    /// Takes in the outcome of the last step ([`Input::Start`] the first time) and moves on:
    /// `Some` with the result when the operation is over, `None` when [`next`](Self::next) has a
    /// step to make.
    fn advance(&mut self, input: Input<Self::Value>) -> Option<Self::Output>;

    /// The step to make now. Only called after [`advance`](Self::advance) returned `None`.
    fn next(&self) -> Step<'_>;

    /// After a [`Step::Compute`] with `detach`: the leadership and what the background needs to
    /// store the value. `None` (every plan but get-or-set's) means the computation runs inline.
    fn detach(&mut self) -> Option<Detached<Self::Value>> {
        None
    }
}

/// Owned handles on what a tower's plans borrow, for work that outlives the call that started
/// it (a background load).
#[derive(Clone)]
pub(super) struct Background {
    pub(super) stack: std::sync::Arc<Vec<Layer>>,
    pub(super) log: std::sync::Arc<ChangeLog>,
    pub(super) flights: Arc<Flights>,
}

impl Background {
    pub(super) fn context(&self) -> Context<'_> {
        Context { stack: &self.stack, log: &self.log, flights: &self.flights }
    }
}

/// How a computed value is stored: its own TTL, stale window and tags, from the call's
/// [`LoadOptions`](crate::LoadOptions).
#[derive(Clone)]
pub(super) struct StoreAs {
    /// The computed value's own TTL (each layer keeps it for the shorter of this and its own).
    ttl: Option<std::time::Duration>,
    /// The computed value's own stale window (memory layers), when the call gives one.
    stale_window: Option<std::time::Duration>,
    tags: crate::value::TagNames,
}

impl StoreAs {
    pub(super) fn of(options: &crate::LoadOptions) -> Self {
        Self {
            ttl: options.ttl.filter(|ttl| !ttl.is_zero()),
            stale_window: options.stale,
            tags: options.tag_names_shared().clone(),
        }
    }

    /// The entry that stores `stored` (tagged now, in place when nothing else holds it yet).
    pub(super) fn entry(&self, mut stored: crate::value::StoredValue) -> crate::value::Entry {
        if self.tags.is_some() {
            stored.set_tag_names(self.tags.clone());
        }
        let entry = crate::value::Entry::new(stored, self.ttl);
        match self.stale_window {
            Some(window) => entry.with_stale_window(window),
            None => entry,
        }
    }
}

/// A computation handed to the background: the leadership of its key's flight, and how to
/// store its value (see `GetOrSet`). The driver that runs it stores the value with
/// [`store`](Self::store) and then [`land`](Self::land)s.
pub(super) struct Detached<T> {
    pub(super) background: Background,
    pub(super) key: String,
    pub(super) leader: crate::flight::Leader,
    pub(super) store_as: StoreAs,
    /// The distributed lock the computation holds (the layer and the token), released after the
    /// store.
    pub(super) lock: Option<(usize, String)>,
    pub(super) _value: std::marker::PhantomData<fn() -> T>,
}

impl<T: crate::Cacheable> Detached<T> {
    /// The write that stores `stored` (the computed value) in every layer.
    pub(super) fn store<'d>(&'d self, stored: &StoredValue) -> WriteLayers<'d, 'd> {
        let entry = self.store_as.entry(stored.clone());
        WriteLayers::store(self.background.context(), Write::Set(&self.key, entry), Faults::default())
    }

    /// The layer and request that release the distributed lock it holds, if it holds one.
    pub(super) fn unlock(&self) -> Option<(&Layer, usize, Request<'_>)> {
        let (index, token) = self.lock.as_ref()?;
        let layer = self.background.stack.get(*index)?;
        Some((layer, *index, Request::Unlock { key: &self.key, token }))
    }

    /// Hands the stored value to the flight's followers.
    pub(super) fn land(self, stored: StoredValue) {
        self.leader.land(stored);
    }
}

/// What every plan of one tower works with: a consistent snapshot of the stack, the change log
/// that keeps process-local layers coherent, and the flights in progress.
#[derive(Clone, Copy)]
pub(super) struct Context<'s> {
    pub(super) stack: &'s [Layer],
    pub(super) log: &'s ChangeLog,
    pub(super) flights: &'s Arc<Flights>,
}

impl<'s> Context<'s> {
    /// The step that calls layer `index` with `request`.
    fn call<'p>(&self, index: usize, request: Request<'p>) -> Step<'p>
    where
        's: 'p,
    {
        Step::Call { index, layer: &self.stack[index], request }
    }
}

/// The layers that failed during one operation, so that it does not wait on them a second time
/// (a get-or-set whose read timed out skips that layer when it stores the computed value).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Faults(u64);

impl Faults {
    fn note(&mut self, index: usize) {
        if index < 64 {
            self.0 |= 1 << index;
        }
    }

    fn contains(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }

    /// Whether a layer below `index` failed.
    fn any_below(self, index: usize) -> bool {
        index < 63 && self.0 >> (index + 1) != 0
    }
}

/// Says a plan's [`next`](Plan::next) was called when it had nothing left to do: a driver
/// calls `next` only after `advance` returned `None`, and every plan has a step in every state
/// that returns `None`.
#[cold]
fn finished() -> ! {
    unreachable!("a plan was asked for a step after it finished")
}
