//! [`GetOrSet`]: read a key through the stack; on a miss, compute it once for every concurrent
//! caller (single flight) and store it in every layer.

use super::read::Read;
use super::write::{Write, WriteLayers};
use super::{Context, Faults, Input, Plan, Step, finished, no_reply};
use crate::adapter::{Reply, Request};
use crate::flight::{Flight, Joined, Leader};
use crate::sync_shim::Arc;
use crate::value::{Cacheable, Entry, StoredValue};
use std::time::Duration;

/// Get-or-set of one key.
///
/// 1. [`Read`] the key through the stack; a hit is the answer.
/// 2. Join the key's flight. A follower waits for the leader's value; if the leader abandons
///    (its computation failed, panicked or was cancelled), it joins again, and may lead.
/// 3. The leader looks at the top layer once more (a leader that landed just before it joined
///    has stored the value there), then asks its driver to compute the value, stores it in every
///    layer — but those that failed the read: a hung layer costs the caller one timeout, not two
///    — and lands the flight. Failures to store are counted and logged, not returned.
///
/// Dropping the plan (the computation returned an error, or the caller's future was dropped)
/// drops the leadership, which abandons the flight and releases the followers.
pub(in crate::tower) struct GetOrSet<'s, 'k, T> {
    context: Context<'s>,
    key: &'k str,
    /// The computed value's own TTL (each layer keeps it for the shorter of this and its own).
    ttl: Option<Duration>,
    faults: Faults,
    state: State<'s, 'k, T>,
}

enum State<'s, 'k, T> {
    Reading(Read<'s, 'k, T>),
    Following(Arc<Flight>),
    /// Leading: reading the top layer again.
    Checking(Leader<'s>),
    /// Leading: waiting for the caller's computation.
    Computing(Leader<'s>),
    /// Leading: storing the computed value.
    Storing {
        leader: Leader<'s>,
        value: T,
        stored: StoredValue,
        writes: WriteLayers<'s, 'k>,
    },
    Finished,
}

impl<'s, 'k, T: Cacheable> GetOrSet<'s, 'k, T> {
    /// `top_lacks_key`: the fast lane has just seen the top layer without the key (see
    /// [`Read::below_top`]).
    pub(in crate::tower) fn new(context: Context<'s>, key: &'k str, top_lacks_key: bool) -> Self {
        let read = Read::new(context, key).below_top(top_lacks_key);
        Self { context, key, ttl: None, faults: Faults::default(), state: State::Reading(read) }
    }

    /// The computed value is stored with this TTL of its own (`None`: each layer's TTL).
    pub(in crate::tower) fn with_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Joins the key's flight: follow it, or lead it.
    fn join(&mut self) -> Option<T> {
        self.state = match self.context.flights.join(self.key) {
            Joined::Follower(flight) => State::Following(flight),
            Joined::Leader(leader) if self.faults.contains(0) || self.context.stack.is_empty() => {
                State::Computing(leader)
            }
            Joined::Leader(leader) => State::Checking(leader),
        };
        None
    }

    /// The leader's computed value: store it everywhere, then land.
    fn store(&mut self, leader: Leader<'s>, value: T) -> Option<T> {
        let stored = StoredValue::new(value.clone());
        let write = Write::Set(self.key, Entry::new(stored.clone(), self.ttl));
        let mut writes = WriteLayers::store(self.context, write, self.faults);
        // A store failure is counted and logged by the driver; the value still goes out.
        if writes.take(None).is_some() {
            leader.land(stored);
            return Some(value);
        }
        self.state = State::Storing { leader, value, stored, writes };
        None
    }
}

impl<'s, T: Cacheable> Plan for GetOrSet<'s, '_, T> {
    type Value = T;
    type Output = T;

    fn advance(&mut self, input: Input<T>) -> Option<T> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Reading(mut read) => match read.take(input.into_answer()) {
                Some((Some(value), _)) => Some(value),
                Some((None, faults)) => {
                    self.faults = faults;
                    self.join()
                }
                None => {
                    self.state = State::Reading(read);
                    None
                }
            },
            State::Following(flight) => match input {
                Input::Landed(Some(stored)) => match stored.decode::<T>() {
                    Ok(value) => Some(value),
                    // The leader stored another type under the key: join again.
                    Err(_) => self.join(),
                },
                // Abandoned: join again.
                Input::Landed(None) => self.join(),
                Input::Start => {
                    self.state = State::Following(flight);
                    None
                }
                Input::Reply(_) | Input::Computed(_) => self.join(),
            },
            State::Checking(leader) => {
                // Not counted as a hit or miss: the caller's read was counted already.
                let found = input.into_answer().unwrap_or_else(no_reply).and_then(Reply::into_value);
                if let Ok(Some(stored)) = found {
                    if let Ok(value) = stored.decode::<T>() {
                        leader.land(stored);
                        return Some(value);
                    }
                }
                self.state = State::Computing(leader);
                None
            }
            State::Computing(leader) => match input {
                Input::Computed(value) => self.store(leader, value),
                _ => {
                    self.state = State::Computing(leader);
                    None
                }
            },
            State::Storing { leader, value, stored, mut writes } => match writes.take(input.into_answer()) {
                Some(_) => {
                    leader.land(stored);
                    Some(value)
                }
                None => {
                    self.state = State::Storing { leader, value, stored, writes };
                    None
                }
            },
            State::Finished => finished(),
        }
    }

    fn next(&self) -> Step<'_> {
        match &self.state {
            State::Reading(read) => read.step(),
            State::Following(flight) => Step::Wait(flight),
            State::Checking(_) => self.context.call(0, Request::GetValue(self.key)),
            State::Computing(_) => Step::Compute,
            State::Storing { writes, .. } => writes.next(),
            State::Finished => finished(),
        }
    }
}
