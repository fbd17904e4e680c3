//! [`Mget`]: many keys through the stack. Each layer is asked once for the keys still missing
//! (one round trip for a batching layer), and each key found is backfilled only into the layers
//! above the one it was found in.

use std::convert::Infallible;

use indexmap::IndexMap;
use indexmap::map::Entry as Slot;

use super::write::{Write, WriteLayers, backfill_entry};
use super::{Context, Faults, Input, Plan, Step, finished, no_reply};
use crate::adapter::{Reply, Request};
use crate::error::{Error, Fault, Result};
use crate::value::{Cacheable, Entry};

/// The state of an mget as it goes down the stack, then back up backfilling.
pub(in crate::tower) struct Mget<'s, 'k, T> {
    context: Context<'s>,
    /// The keys no layer has answered yet, each once.
    pending: Vec<&'k str>,
    /// Every key asked for, once each, in request order; `None` until a layer has it.
    values: IndexMap<String, Option<T>>,
    /// (layer index where found, key, entry to backfill above it)
    found: Vec<(usize, &'k str, Entry)>,
    since: u64,
    /// The layers whose read failed.
    faults: Faults,
    state: State<'s, 'k>,
}

#[expect(
    clippy::large_enum_variant,
    reason = "a plan lives on its caller's stack for one operation; boxing the backfill would cost an allocation each"
)]
enum State<'s, 'k> {
    Starting,
    /// Waiting for the answer of the layer at this index.
    Asking(usize),
    /// Backfilling the layer at this index (then the ones above it).
    Backfilling(usize, WriteLayers<'s, 'k>),
    Finished,
}

impl<'s, 'k, T: Cacheable> Mget<'s, 'k, T> {
    pub(in crate::tower) fn new<K: AsRef<str>>(context: Context<'s>, keys: &'k [K]) -> Self {
        let mut values = IndexMap::with_capacity(keys.len());
        let mut pending = Vec::with_capacity(keys.len());
        for key in keys.iter().map(AsRef::as_ref) {
            if let Slot::Vacant(slot) = values.entry(key.to_owned()) {
                slot.insert(None);
                pending.push(key);
            }
        }
        Self {
            context,
            pending,
            values,
            found: Vec::new(),
            since: 0,
            faults: Faults::default(),
            state: State::Starting,
        }
    }

    /// Takes in one layer's answer for the pending keys.
    fn take_answer(&mut self, index: usize, reply: Result<Reply>) {
        let layer = &self.context.stack[index];
        // The top layer was asked for the values alone, the others for entries with their TTLs.
        let entries = match index {
            0 => reply
                .and_then(Reply::into_values)
                .map(|values| values.into_iter().map(|v| v.map(|v| Entry::new(v, None))).collect()),
            _ => reply.and_then(Reply::into_entries),
        };
        let entries = match entries {
            Ok(entries) if entries.len() == self.pending.len() => entries,
            Ok(entries) => {
                let message = format!("mget returned {} results for {} keys", entries.len(), self.pending.len());
                let _ = layer.record::<()>(index, "mget", Err(Error::layer_fault(Fault::Reply, message)));
                self.faults.note(index);
                return;
            }
            // Failures were counted and logged by the driver.
            Err(_) => {
                self.faults.note(index);
                return;
            }
        };
        let mut still_missing = Vec::new();
        for (key, entry) in self.pending.iter().copied().zip(entries) {
            match layer.count_read::<T>(index, entry) {
                Some((value, entry)) => {
                    if index > 0 {
                        self.found.push((index, key, backfill_entry(&value, entry)));
                    }
                    if let Some(slot) = self.values.get_mut(key) {
                        *slot = Some(value);
                    }
                }
                None => still_missing.push(key),
            }
        }
        self.pending = still_missing;
    }

    /// Starts backfilling the next layer at or above `index` that has anything to take; the
    /// values when none has.
    fn backfill_from(&mut self, mut index: usize) -> Option<IndexMap<String, Option<T>>> {
        while index > 0 {
            index -= 1;
            let items = self.found.iter().filter(|(at, ..)| *at > index).map(|(_, key, entry)| (*key, entry.clone()));
            let Some(write) = Write::backfill(items.collect()) else { continue };
            let mut writes = WriteLayers::backfill(self.context, write, self.since, index, index + 1);
            if writes.take(None).is_none() {
                self.state = State::Backfilling(index, writes);
                return None;
            }
        }
        self.state = State::Finished;
        Some(std::mem::take(&mut self.values))
    }

    /// The keys no layer had (once the plan is over: the keys it returned `None` for).
    pub(super) fn missing(&self) -> &[&'k str] {
        &self.pending
    }

    /// The layers whose read failed, so that a write that follows can leave them out.
    pub(super) fn faults(&self) -> Faults {
        self.faults
    }

    /// The deepest layer any key was found in (0 when none was found below the top).
    fn deepest_hit(&self) -> usize {
        self.found.iter().map(|(at, ..)| *at).max().unwrap_or(0)
    }
}

impl<T: Cacheable> Plan for Mget<'_, '_, T> {
    type Value = Infallible;
    type Output = IndexMap<String, Option<T>>;

    fn advance(&mut self, input: Input<Infallible>) -> Option<Self::Output> {
        let answer = input.into_answer();
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Starting if self.pending.is_empty() || self.context.stack.is_empty() => self.backfill_from(0),
            State::Starting => {
                // Before any read: a key that changes while the layers are read is not backfilled.
                self.since = self.context.log.now();
                self.state = State::Asking(0);
                None
            }
            State::Asking(index) => {
                self.take_answer(index, answer.unwrap_or_else(no_reply));
                if !self.pending.is_empty() && index + 1 < self.context.stack.len() {
                    self.state = State::Asking(index + 1);
                    return None;
                }
                self.backfill_from(self.deepest_hit())
            }
            State::Backfilling(index, mut writes) => match writes.take(answer) {
                Some(_) => self.backfill_from(index),
                None => {
                    self.state = State::Backfilling(index, writes);
                    None
                }
            },
            State::Finished => finished(),
        }
    }

    fn next(&self) -> Step<'_> {
        match &self.state {
            State::Asking(0) => self.context.call(0, Request::MgetValues(&self.pending)),
            State::Asking(index) => self.context.call(*index, Request::Mget(&self.pending)),
            State::Backfilling(_, writes) => writes.next(),
            State::Starting | State::Finished => finished(),
        }
    }
}
