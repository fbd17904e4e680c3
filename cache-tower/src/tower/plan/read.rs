//! [`Read`]: the read path of `get` — top down, the first layer holding a value that decodes as
//! the requested type answers, and every layer above it is backfilled — and [`Exists`].

use std::convert::Infallible;
use std::time::Duration;

use super::write::{Write, WriteLayers, backfill_entry};
use super::{Context, Faults, Input, Plan, Step, finished, no_reply};
use crate::adapter::{Reply, Request};
use crate::error::Result;
use crate::value::{Cacheable, Entry, StoredValue};

/// Reads one key through the stack.
///
/// The top layer is asked for the value alone (nothing is backfilled above it); the layers
/// below for the value and the time it has left, so that a backfilled copy lives no longer than
/// the entry it copies. A layer that fails, or holds a value that does not decode as `T`, is a
/// miss: the read goes on below. The output is the value, if any layer had it, and the layers
/// that failed.
///
/// A read [`with_stale`](Self::with_stale) asks every layer for stale entries too
/// (`GetStale`): a stale entry is a miss that goes on below, but the topmost one that decodes is
/// kept ([`take_stale`](Self::take_stale)) for get-or-set's fail-safe.
pub(in crate::tower) struct Read<'s, 'k, T> {
    context: Context<'s>,
    key: &'k str,
    faults: Faults,
    /// The change number before the layers below the top were read (see `WriteLayers`); in a
    /// read with stale entries, before any layer was.
    since: u64,
    stale_too: bool,
    stale: Option<Stale<T>>,
    state: State<'s, 'k, T>,
}

/// A stale value a read found: the fallback of get-or-set's fail-safe.
pub(in crate::tower) struct Stale<T> {
    pub(super) value: T,
    /// The stored value it was decoded from, as the layer holds it.
    pub(super) stored: StoredValue,
    /// The layer it was found in.
    pub(super) index: usize,
    /// How much longer it may be served as a stale value.
    pub(super) left: Duration,
}

#[expect(
    clippy::large_enum_variant,
    reason = "a plan lives on its caller's stack for one operation; boxing the backfill would cost an allocation each"
)]
enum State<'s, 'k, T> {
    Starting,
    /// Starting, the top layer known not to hold the key (the fast lane looked).
    StartingBelowTop,
    /// Waiting for the answer of the layer at this index.
    Asking(usize),
    /// Found below the top: copying it into the layers above.
    Backfilling(T, WriteLayers<'s, 'k>),
    Finished,
}

impl<'s, 'k, T: Cacheable> Read<'s, 'k, T> {
    pub(in crate::tower) fn new(context: Context<'s>, key: &'k str) -> Self {
        Self {
            context,
            key,
            faults: Faults::default(),
            since: 0,
            stale_too: false,
            stale: None,
            state: State::Starting,
        }
    }

    /// The same read, asking for stale entries too (see the type's docs).
    pub(in crate::tower) fn with_stale(mut self) -> Self {
        self.stale_too = true;
        self.since = self.context.log.now();
        self
    }

    /// The stale value the read found, if it found one and no fresh one.
    pub(super) fn take_stale(&mut self) -> Option<Stale<T>> {
        self.stale.take()
    }

    /// The change number before the read (see the `since` field).
    pub(super) fn since(&self) -> u64 {
        self.since
    }

    /// The same read, when the fast lane has just seen that the top layer does not hold the key:
    /// the plan counts that miss and starts below the top, instead of looking a second time.
    pub(in crate::tower) fn below_top(mut self, top_lacks_key: bool) -> Self {
        if top_lacks_key && !self.context.stack.is_empty() {
            self.state = State::StartingBelowTop;
        }
        self
    }

    /// [`Plan::advance`] with the answer to the last call, for [`GetOrSet`](super::GetOrSet).
    pub(super) fn take(&mut self, answer: Option<Result<Reply>>) -> Option<(Option<T>, Faults)> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Starting if self.context.stack.is_empty() => self.finish(None),
            State::Starting => {
                self.state = State::Asking(0);
                None
            }
            State::StartingBelowTop => {
                self.context.stack[0].count_read::<T>(0, None);
                self.missed(0)
            }
            State::Asking(index) => self.answered(index, answer.unwrap_or_else(no_reply)),
            State::Backfilling(value, mut writes) => match writes.take(answer) {
                Some(_) => self.finish(Some(value)),
                None => {
                    self.state = State::Backfilling(value, writes);
                    None
                }
            },
            State::Finished => finished(),
        }
    }

    fn answered(&mut self, index: usize, reply: Result<Reply>) -> Option<(Option<T>, Faults)> {
        let layer = &self.context.stack[index];
        // The top layer was asked for the value alone, the others for the entry with its TTL.
        let entry = match index {
            0 if !self.stale_too => {
                reply.and_then(Reply::into_value).map(|value| value.map(|value| Entry::new(value, None)))
            }
            _ => reply.and_then(Reply::into_entry),
        };
        match entry {
            // Failures were counted and logged by the driver.
            Err(_) => self.faults.note(index),
            Ok(Some(entry)) if entry.is_stale() => {
                // A miss for this read; the topmost stale value that decodes is kept.
                layer.count_read::<T>(index, None);
                if self.stale.is_none() {
                    if let Ok(value) = entry.value().decode::<T>() {
                        let left = entry.stale_left().unwrap_or_default();
                        self.stale = Some(Stale { value, stored: entry.into_parts().0, index, left });
                    }
                }
            }
            Ok(entry) => {
                if let Some((value, entry)) = layer.count_read::<T>(index, entry) {
                    if index == 0 {
                        return self.finish(Some(value));
                    }
                    let write = Write::backfill(vec![(self.key, backfill_entry(&value, entry))]);
                    let Some(write) = write else { return self.finish(Some(value)) };
                    let mut writes = WriteLayers::backfill(self.context, write, self.since, 0, index);
                    if writes.take(None).is_some() {
                        return self.finish(Some(value));
                    }
                    self.state = State::Backfilling(value, writes);
                    return None;
                }
            }
        }
        self.missed(index)
    }

    /// Goes on below layer `index`, which did not answer with a value.
    fn missed(&mut self, index: usize) -> Option<(Option<T>, Faults)> {
        if index == 0 && !self.stale_too {
            self.since = self.context.log.now();
        }
        if index + 1 < self.context.stack.len() {
            self.state = State::Asking(index + 1);
            return None;
        }
        self.finish(None)
    }

    fn finish(&mut self, value: Option<T>) -> Option<(Option<T>, Faults)> {
        self.state = State::Finished;
        Some((value, self.faults))
    }

    /// [`Plan::next`].
    pub(super) fn step(&self) -> Step<'_> {
        match &self.state {
            State::Asking(index) if self.stale_too => self.context.call(*index, Request::GetStale(self.key)),
            State::Asking(0) => self.context.call(0, Request::GetValue(self.key)),
            State::Asking(index) => self.context.call(*index, Request::Get(self.key)),
            State::Backfilling(_, writes) => writes.next(),
            State::Starting | State::StartingBelowTop | State::Finished => finished(),
        }
    }
}

impl<T: Cacheable> Plan for Read<'_, '_, T> {
    type Value = Infallible;
    type Output = (Option<T>, Faults);

    fn advance(&mut self, input: Input<Infallible>) -> Option<Self::Output> {
        self.take(input.into_answer())
    }

    fn next(&self) -> Step<'_> {
        self.step()
    }
}

/// Whether any layer has a key, top down; never backfills. A layer that fails counts as not
/// having it.
pub(in crate::tower) struct Exists<'s, 'k> {
    context: Context<'s>,
    key: &'k str,
    /// The layer asked last (`None` before the first).
    asked: Option<usize>,
}

impl<'s, 'k> Exists<'s, 'k> {
    pub(in crate::tower) fn new(context: Context<'s>, key: &'k str) -> Self {
        Self { context, key, asked: None }
    }
}

impl Plan for Exists<'_, '_> {
    type Value = Infallible;
    type Output = bool;

    fn advance(&mut self, input: Input<Infallible>) -> Option<bool> {
        if let Some(reply) = input.into_answer() {
            if let Ok(true) = reply.and_then(Reply::into_exists) {
                return Some(true);
            }
        }
        let next = self.asked.map_or(0, |index| index + 1);
        if next == self.context.stack.len() {
            return Some(false);
        }
        self.asked = Some(next);
        None
    }

    fn next(&self) -> Step<'_> {
        match self.asked {
            Some(index) => self.context.call(index, Request::Exists(self.key)),
            None => finished(),
        }
    }
}
