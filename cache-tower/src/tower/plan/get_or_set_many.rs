//! [`GetOrSetMany`]: get-or-set of many keys in one pass: one read per layer for all of them,
//! one computation for the keys still missing, one write per layer, single flight per key.

use std::collections::HashMap;
use std::sync::OnceLock;

use indexmap::IndexMap;

use super::mget::Mget;
use super::write::{Write, WriteLayers};
use super::{Context, Faults, Input, Plan, Step, finished, no_reply};
use crate::adapter::{Reply, Request};
use crate::flight::{Flight, Flights, Joined, Leader};
use crate::sync_shim::Arc;
use crate::value::{Cacheable, Entry, StoredValue};

/// One pass of a batch get-or-set.
///
/// 1. [`Mget`] the keys through the stack: each layer asked once for the keys still missing,
///    hits backfilled above where they were found.
/// 2. Join the flight of every key still missing. The keys this caller leads are *its* keys;
///    the others are computed by someone else (a single-key get-or-set, or another batch).
/// 3. When the top layer is a memory layer, look there once more for its keys (one local call):
///    a leader that landed between the read and the join has stored its value there.
/// 4. Hand its keys to the caller's loader (`asked`, then [`Step::Compute`]): one call for all
///    of them. Keys the loader returns no value for are not cached; their flights are abandoned,
///    so callers waiting on them try again themselves.
/// 5. Store the loaded values in every layer with one write per layer — but those whose read
///    failed: a hung layer costs the caller one timeout, not two — then land each flight.
/// 6. Only then wait for the flights it follows, one after another. Landing before waiting is
///    what keeps two batches that lead each other's keys from waiting on each other.
///
/// The output is the value of every key (request order, a key asked twice once), `None` for
/// those nobody had, and the keys whose leader abandoned its flight: the caller runs another
/// pass for those (`tower/many.rs`), so the loader is called again only when another caller's
/// computation failed.
///
/// A failed loader ([`Input::Failed`]) ends the pass with its error: dropping the plan drops the
/// leaderships, which abandons their flights. LoadOptions (fail-safe, timeouts, the distributed
/// lock) do not apply to batches.
pub(in crate::tower) struct GetOrSetMany<'s, 'k, 'a, T> {
    context: Context<'s>,
    /// Where the keys to load are put for the loader, just before it is asked to run.
    asked: &'a OnceLock<Vec<&'k str>>,
    values: IndexMap<String, Option<T>>,
    /// The keys this caller leads, and their leaderships, index for index.
    led: Vec<&'k str>,
    leaders: Vec<Leader>,
    /// The flights it follows.
    followed: Vec<(&'k str, Arc<Flight>)>,
    /// The keys whose flight was abandoned while this caller waited on it.
    retry: Vec<&'k str>,
    /// The layers whose read failed: left out of the store, so a hung layer costs the caller
    /// one timeout, not two.
    faults: Faults,
    state: State<'s, 'k, T>,
}

/// What a pass returns: every key's value (`None`: nobody had one) and the keys to try again.
pub(in crate::tower) type Pass<'k, T> = (IndexMap<String, Option<T>>, Vec<&'k str>);

enum State<'s, 'k, T> {
    Reading(Mget<'s, 'k, T>),
    /// Looking at the top (memory) layer once more for the led keys.
    Checking,
    Computing,
    /// The loader failed: the driver ends the pass with its error.
    Failing,
    /// Writing the loaded values; then landing each leader with its value.
    Storing {
        writes: WriteLayers<'s, 'k>,
        landing: Vec<(Leader, StoredValue)>,
    },
    /// Waiting for the followed flight at this index.
    Following(usize),
    Finished,
}

impl<'s, 'k, 'a, T: Cacheable> GetOrSetMany<'s, 'k, 'a, T> {
    pub(in crate::tower) fn new<K: AsRef<str>>(
        context: Context<'s>,
        keys: &'k [K],
        asked: &'a OnceLock<Vec<&'k str>>,
    ) -> Self {
        Self {
            context,
            asked,
            values: IndexMap::new(),
            led: Vec::new(),
            leaders: Vec::new(),
            followed: Vec::new(),
            retry: Vec::new(),
            faults: Faults::default(),
            state: State::Reading(Mget::new(context, keys)),
        }
    }

    /// After the read: joins the flight of each missing key, then goes on with the led ones.
    fn join(&mut self, missing: &[&'k str]) -> Option<Pass<'k, T>> {
        for &key in missing {
            match Flights::join(self.context.flights, key) {
                Joined::Leader(leader) => {
                    self.led.push(key);
                    self.leaders.push(leader);
                }
                Joined::Follower(flight) => self.followed.push((key, flight)),
            }
        }
        let top_is_memory =
            self.context.stack.first().is_some_and(|top| top.memory.is_some()) && !self.faults.contains(0);
        if !self.led.is_empty() && top_is_memory {
            self.state = State::Checking;
            return None;
        }
        self.compute()
    }

    /// The top layer's second look: a key found there lands its flight with that value.
    fn checked(&mut self, reply: crate::error::Result<Reply>) -> Option<Pass<'k, T>> {
        // A failed look leaves every key to load (the driver counted and logged the failure).
        if let Ok(found) = reply.and_then(Reply::into_values) {
            if found.len() == self.led.len() {
                let (led, leaders) = (std::mem::take(&mut self.led), std::mem::take(&mut self.leaders));
                for ((key, leader), stored) in led.into_iter().zip(leaders).zip(found) {
                    // Decoded without counting: the read counted this key's miss already.
                    match stored.map(|stored| (stored.decode::<T>(), stored)) {
                        Some((Ok(value), stored)) => {
                            self.set(key, value);
                            leader.land(stored);
                        }
                        _ => {
                            self.led.push(key);
                            self.leaders.push(leader);
                        }
                    }
                }
            }
        }
        self.compute()
    }

    /// Asks for the led keys to be loaded, or goes on to the followed ones when there are none.
    fn compute(&mut self) -> Option<Pass<'k, T>> {
        if self.led.is_empty() {
            return self.follow(0);
        }
        // A plan is run once, so this is the only set.
        let _ = self.asked.set(self.led.clone());
        self.state = State::Computing;
        None
    }

    /// The loader's values: kept for the caller, stored in every layer, then landed.
    fn store(&mut self, loaded: Vec<(String, T)>) -> Option<Pass<'k, T>> {
        let mut loaded: HashMap<String, T> = loaded.into_iter().collect();
        let mut items = Vec::with_capacity(self.led.len());
        let mut landing = Vec::with_capacity(self.led.len());
        let led = std::mem::take(&mut self.led);
        for (key, leader) in led.into_iter().zip(std::mem::take(&mut self.leaders)) {
            // A key the loader has no value for: not cached, its flight abandoned (dropped).
            let Some(value) = loaded.remove(key) else { continue };
            let stored = StoredValue::new(value.clone());
            items.push((key, Entry::new(stored.clone(), None)));
            landing.push((leader, stored));
            self.set(key, value);
        }
        let mut writes = WriteLayers::store(self.context, Write::Mset(items), self.faults);
        match writes.take(None) {
            Some(_) => self.land(landing),
            None => {
                self.state = State::Storing { writes, landing };
                None
            }
        }
    }

    /// Hands each stored value to its flight's followers, then waits for the followed flights.
    /// Failures to store were counted and logged by the driver; the values land all the same.
    fn land(&mut self, landing: Vec<(Leader, StoredValue)>) -> Option<Pass<'k, T>> {
        for (leader, stored) in landing {
            leader.land(stored);
        }
        self.follow(0)
    }

    /// Waits for the followed flight at `index`, or ends the pass when there is none left.
    fn follow(&mut self, index: usize) -> Option<Pass<'k, T>> {
        if index < self.followed.len() {
            self.state = State::Following(index);
            return None;
        }
        self.state = State::Finished;
        Some((std::mem::take(&mut self.values), std::mem::take(&mut self.retry)))
    }

    fn set(&mut self, key: &str, value: T) {
        if let Some(slot) = self.values.get_mut(key) {
            *slot = Some(value);
        }
    }
}

impl<'k, T: Cacheable> Plan for GetOrSetMany<'_, 'k, '_, T> {
    type Value = Vec<(String, T)>;
    type Output = Pass<'k, T>;

    fn advance(&mut self, input: Input<Self::Value>) -> Option<Self::Output> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Reading(mut read) => {
                let answer = match input {
                    Input::Computed(_) | Input::Failed => Some(no_reply()),
                    other => other.into_answer(),
                };
                let input = answer.map_or(Input::Start, Input::Reply);
                match read.advance(input) {
                    Some(values) => {
                        self.values = values;
                        self.faults = read.faults();
                        let missing = read.missing().to_vec();
                        self.join(&missing)
                    }
                    None => {
                        self.state = State::Reading(read);
                        None
                    }
                }
            }
            State::Checking => {
                let answer = match input {
                    Input::Reply(reply) => reply,
                    _ => no_reply(),
                };
                self.checked(answer)
            }
            State::Computing => match input {
                Input::Computed(loaded) => self.store(loaded),
                // The loader failed: end with its error (dropping the plan abandons the flights).
                _ => {
                    self.state = State::Failing;
                    None
                }
            },
            State::Failing => finished(),
            State::Storing { mut writes, landing } => {
                let answer = match input {
                    Input::Reply(reply) => Some(reply),
                    _ => Some(no_reply()),
                };
                match writes.take(answer) {
                    Some(_) => self.land(landing),
                    None => {
                        self.state = State::Storing { writes, landing };
                        None
                    }
                }
            }
            State::Following(index) => {
                let (key, _) = self.followed[index];
                match input {
                    Input::Landed(Some(stored)) => match stored.decode::<T>() {
                        Ok(value) => self.set(key, value),
                        // The leader stored another type under the key: try it again.
                        Err(_) => self.retry.push(key),
                    },
                    // Abandoned (or any other input, a driver's mistake): try it again.
                    _ => self.retry.push(key),
                }
                self.follow(index + 1)
            }
            State::Finished => finished(),
        }
    }

    fn next(&self) -> Step<'_> {
        match &self.state {
            State::Reading(read) => read.next(),
            State::Checking => self.context.call(0, Request::MgetValues(&self.led)),
            State::Computing => Step::Compute { catch_panics: false, detach: false, until: None },
            State::Failing => Step::Fail,
            State::Storing { writes, .. } => writes.next(),
            State::Following(index) => Step::Wait { flight: &self.followed[*index].1, until: None },
            State::Finished => finished(),
        }
    }
}
