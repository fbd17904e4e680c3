//! [`WriteLayers`]: one write (set, mset, delete, flush, or a backfill) applied to a range of
//! layers, bottom up, with process-local layers kept coherent through the change log.

use super::{Context, Faults, Input, Plan, Step, finished, no_reply};
use crate::adapter::{Reply, Request};
use crate::error::{Error, Result};
use crate::tower::coherence::BLIND_TTL;
use crate::value::{Cacheable, Entry, StoredValue};
use std::time::Duration;

/// A write, as every layer it goes to receives it.
pub(in crate::tower) enum Write<'k> {
    Set(&'k str, Entry),
    Mset(Vec<(&'k str, Entry)>),
    Delete(&'k str),
    DeleteMany(Vec<&'k str>),
    Flush,
    /// The logical clear: each layer's [`clear`](crate::adapter::CacheAdapter::clear).
    Clear,
    /// Each layer's [`invalidate_tag`](crate::adapter::CacheAdapter::invalidate_tag) of a tag.
    InvalidateTag(&'k str),
}

impl<'k> Write<'k> {
    /// The write of an mset, from the entries of [`mset_entries`] (keys borrowed from them).
    pub(in crate::tower) fn mset<K: AsRef<str>>(entries: &'k [(K, Entry)]) -> Self {
        Write::Mset(entries.iter().map(|(key, entry)| (key.as_ref(), entry.clone())).collect())
    }

    /// The write that backfills `items`: one `Set` for a single item (layers often have a
    /// cheaper command for it), entries with no time left dropped. `None` when nothing is left.
    pub(super) fn backfill(mut items: Vec<(&'k str, Entry)>) -> Option<Self> {
        items.retain(|(_, entry)| entry.ttl().is_none_or(|ttl| !ttl.is_zero()));
        match items.len() {
            0 => None,
            1 => items.pop().map(|(key, entry)| Write::Set(key, entry)),
            _ => Some(Write::Mset(items)),
        }
    }

    /// The request each layer is sent.
    pub(in crate::tower) fn request(&self) -> Request<'_> {
        match self {
            Write::Set(key, entry) => Request::Set(key, entry),
            Write::Mset(items) => Request::Mset(items),
            Write::Delete(key) => Request::Delete(key),
            Write::DeleteMany(keys) => Request::DeleteMany(keys),
            Write::Flush => Request::Flush,
            Write::Clear => Request::Clear,
            Write::InvalidateTag(tag) => Request::InvalidateTag(tag),
        }
    }

    /// How many keys it writes (for the backfill counter).
    fn len(&self) -> u64 {
        match self {
            Write::Mset(items) => items.len() as u64,
            _ => 1,
        }
    }

    fn keys(&self) -> Vec<&'k str> {
        match self {
            Write::Set(key, _) => vec![*key],
            Write::Mset(items) => items.iter().map(|(key, _)| *key).collect(),
            Write::Delete(_) | Write::DeleteMany(_) | Write::Flush | Write::Clear | Write::InvalidateTag(_) => {
                Vec::new()
            }
        }
    }
}

/// Why the layers are written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The caller's own write: the error of the topmost layer that failed is returned.
    Store,
    /// A copy into the layers above a hit: counted as backfills; a failure is only counted and
    /// logged (by the driver), never returned.
    Backfill,
}

/// Applies one [`Write`] to the layers `low..high`, bottom up, but those in `skip`.
///
/// Bottom up: a reader that misses the top layer while a write is under way finds the new value
/// below, rather than backfilling the old one. A layer that fails is skipped; the others are
/// still written.
///
/// A layer that follows changes (a process-local layer above a watched shared layer) takes
/// only keys that did not change in the shared layers since change number `since`, and gives
/// back any key that changes while it is being written; while the watch is blind it keeps copies
/// for [`BLIND_TTL`] at most (see `coherence.rs`).
pub(in crate::tower) struct WriteLayers<'s, 'k> {
    context: Context<'s>,
    write: Write<'k>,
    since: u64,
    purpose: Purpose,
    low: usize,
    /// The layers left to write are `low..remaining`, minus `skip`.
    remaining: usize,
    skip: Faults,
    /// The layer being written, and how far along.
    current: Option<(usize, Phase<'k>)>,
    topmost_error: Option<Error>,
    /// The number of this write in the change log's own writes, when it is one (a `set` or
    /// `mset` into a stack with layers that follow changes), else 0: see `change_log.rs`.
    writer: u64,
    /// Whether a `set` has read its key back once already ([`Phase::Confirming`]).
    confirmed: bool,
}

enum Phase<'k> {
    /// Sending the write: the plan's own (`None`), or what is left of it for this layer.
    Writing { only: Option<Write<'k>>, recheck: bool },
    /// Written; removing again, one by one, the keys that changed meanwhile.
    Undoing { keys: Vec<&'k str>, at: usize, written: u64 },
    /// A `set` whose key changed meanwhile (often the report of the caller's own previous write
    /// of it): reading the key back from the shared layer `from`, the log's number taken first.
    /// If it still holds this write's value, the layer is written, checked from that number on,
    /// as a backfill of that read would be.
    Confirming { from: usize, since: u64 },
}

impl<'s, 'k> WriteLayers<'s, 'k> {
    /// The caller's write, to every layer but those in `skip`.
    /// When some layer follows changes, a `set` or `mset` is registered as an own write, so that
    /// the report of it does not evict the copies it writes (`change_log.rs`).
    pub(in crate::tower) fn store(context: Context<'s>, write: Write<'k>, skip: Faults) -> Self {
        let high = context.stack.len();
        let log = context.log;
        let own = match &write {
            _ if !context.stack.iter().any(|layer| layer.follows_changes) => None,
            Write::Set(key, entry) => Some(log.begin_own_write([(*key, entry.value())])),
            Write::Mset(items) => Some(log.begin_own_write(items.iter().map(|(key, entry)| (*key, entry.value())))),
            Write::Delete(_) | Write::DeleteMany(_) | Write::Flush | Write::Clear | Write::InvalidateTag(_) => None,
        };
        let since = own.map_or_else(|| log.now(), |own| own.since);
        let mut plan = Self::new(context, write, since, Purpose::Store, 0, high, skip);
        plan.writer = own.map_or(0, |own| own.writer);
        plan
    }

    /// A backfill of the layers `low..high`, checked against changes since `since` (taken before
    /// the read that found the value).
    pub(super) fn backfill(context: Context<'s>, write: Write<'k>, since: u64, low: usize, high: usize) -> Self {
        Self::new(context, write, since, Purpose::Backfill, low, high, Faults::default())
    }

    /// The same write, leaving out the layers in `skip` too.
    pub(super) fn skipping(mut self, skip: Faults) -> Self {
        self.skip.0 |= skip.0;
        self
    }

    fn new(
        context: Context<'s>,
        write: Write<'k>,
        since: u64,
        purpose: Purpose,
        low: usize,
        high: usize,
        skip: Faults,
    ) -> Self {
        Self {
            context,
            write,
            since,
            purpose,
            low,
            remaining: high,
            skip,
            current: None,
            topmost_error: None,
            writer: 0,
            confirmed: false,
        }
    }

    /// The next layer to write, going up.
    fn next_layer(&mut self) -> Option<usize> {
        while self.remaining > self.low {
            self.remaining -= 1;
            if !self.skip.contains(self.remaining) {
                return Some(self.remaining);
            }
        }
        None
    }

    /// What layer `index` should be sent: `None` when nothing (every key changed meanwhile).
    fn prepare(&mut self, index: usize) -> Option<Phase<'k>> {
        let plain = Phase::Writing { only: None, recheck: false };
        if matches!(&self.write, Write::Mset(items) if items.is_empty()) {
            return None;
        }
        if !self.context.stack[index].follows_changes {
            return Some(plain);
        }
        let log = self.context.log;
        if matches!(self.write, Write::Clear | Write::InvalidateTag(_)) {
            // Every key changed (or may carry the tag): a backfill that read a layer below
            // before it was cleared (an older generation in Redis) or before the tag's new
            // version is refused, even if it lands after this layer is emptied.
            log.record_all();
            return Some(plain);
        }
        if log.is_blind() {
            // A copy put in now could go stale without anyone noticing: keep it only briefly, so
            // memory still shields the source during an outage but never serves anything for long.
            let brief = |entry: &Entry| {
                let ttl = entry.ttl().map_or(BLIND_TTL, |ttl| ttl.min(BLIND_TTL));
                Entry::new(entry.value().clone(), Some(ttl))
            };
            let only = match &self.write {
                Write::Set(key, entry) => Write::Set(key, brief(entry)),
                Write::Mset(items) => Write::Mset(items.iter().map(|(key, entry)| (*key, brief(entry))).collect()),
                Write::Delete(_) | Write::DeleteMany(_) | Write::Flush | Write::Clear | Write::InvalidateTag(_) => {
                    return Some(plain);
                }
            };
            return Some(Phase::Writing { only: Some(only), recheck: false });
        }
        let unchanged = |key: &str| !log.changed_since(self.since, key, self.writer);
        match &self.write {
            Write::Set(key, _) if unchanged(key) => Some(Phase::Writing { only: None, recheck: true }),
            Write::Set(..) => self.confirming(index),
            Write::Mset(items) => {
                let left: Vec<(&str, Entry)> = items.iter().filter(|(key, _)| unchanged(key)).cloned().collect();
                match left.len() {
                    0 => None,
                    n if n == items.len() => Some(Phase::Writing { only: None, recheck: true }),
                    _ => Some(Phase::Writing { only: Some(Write::Mset(left)), recheck: true }),
                }
            }
            Write::Delete(_) | Write::DeleteMany(_) | Write::Flush | Write::Clear | Write::InvalidateTag(_) => {
                Some(plain)
            }
        }
    }

    /// The phase that reads a `set`'s key back before writing layer `index` again, once per
    /// operation (see [`Phase::Confirming`]); `None` for other writes, or with no shared layer
    /// below to read.
    fn confirming(&mut self, index: usize) -> Option<Phase<'k>> {
        if self.confirmed || self.purpose != Purpose::Store || !matches!(self.write, Write::Set(..)) {
            return None;
        }
        let stack = self.context.stack;
        let from = (index + 1..stack.len())
            .find(|&below| !stack[below].adapter.is_process_local() && !self.skip.contains(below))?;
        self.confirmed = true;
        Some(Phase::Confirming { from, since: self.context.log.now() })
    }

    /// Takes in the answer of layer `index` in `phase`; the phase to go on with, if any.
    fn answered(&mut self, index: usize, phase: Phase<'k>, reply: Result<Reply>) -> Option<Phase<'k>> {
        if let Phase::Confirming { since, .. } = phase {
            // A failed read, or another value: the layer is not written (the change evicted it).
            let Write::Set(_, entry) = &self.write else { return None };
            let read = reply.and_then(Reply::into_value).ok().flatten()?;
            let ours = entry.value().json().ok()?;
            if read.json().ok()? != ours {
                return None;
            }
            self.since = since;
            return Some(Phase::Writing { only: None, recheck: true });
        }
        if let Err(err) = reply.and_then(Reply::into_done) {
            // Not asked again in this write (a `set` reads its key back from a layer below only
            // if that layer took the write): a layer that just timed out would cost its timeout
            // a second time.
            self.skip.note(index);
            if self.purpose == Purpose::Store {
                // Going up, so the last error kept is the topmost layer's.
                self.topmost_error = Some(err);
            }
            return None;
        }
        let written = match phase {
            Phase::Writing { only, recheck } => {
                let sent = only.as_ref().unwrap_or(&self.write);
                let written = sent.len();
                if recheck {
                    // Checking *after* writing closes the race with an eviction (`change_log.rs`).
                    let log = self.context.log;
                    let keys: Vec<&str> =
                        sent.keys().into_iter().filter(|key| log.changed_since(self.since, key, self.writer)).collect();
                    if !keys.is_empty() {
                        return Some(Phase::Undoing { keys, at: 0, written });
                    }
                }
                written
            }
            Phase::Undoing { keys, at, written } if at + 1 < keys.len() => {
                return Some(Phase::Undoing { keys, at: at + 1, written });
            }
            // Undone: a `set` may still find its value current and write it again.
            Phase::Undoing { written, .. } => return self.confirming(index).or_else(|| self.counted(index, written)),
            Phase::Confirming { .. } => return None,
        };
        self.counted(index, written)
    }

    /// Counts `written` keys into layer `index` as backfills when they are; then nothing more.
    fn counted(&self, index: usize, written: u64) -> Option<Phase<'k>> {
        if self.purpose == Purpose::Backfill {
            self.context.stack[index].counters.backfills(written);
        }
        None
    }
}

impl WriteLayers<'_, '_> {
    /// [`Plan::advance`] with the answer to the last call (`None` at the start), for plans that
    /// write as part of their work.
    pub(super) fn take(&mut self, answer: Option<Result<Reply>>) -> Option<Result<()>> {
        if let Some((index, phase)) = self.current.take() {
            let reply = answer.unwrap_or_else(no_reply);
            if let Some(phase) = self.answered(index, phase, reply) {
                self.current = Some((index, phase));
                return None;
            }
        }
        while let Some(index) = self.next_layer() {
            if let Some(phase) = self.prepare(index) {
                self.current = Some((index, phase));
                return None;
            }
        }
        Some(self.topmost_error.take().map_or(Ok(()), Err))
    }
}

impl Drop for WriteLayers<'_, '_> {
    /// Ends the own write, whether it finished or its caller gave up on it (a dropped future).
    fn drop(&mut self) {
        if self.writer != 0 {
            self.context.log.end_own_write(self.writer, self.write.keys());
        }
    }
}

impl Plan for WriteLayers<'_, '_> {
    type Value = std::convert::Infallible;
    type Output = Result<()>;

    fn advance(&mut self, input: Input<Self::Value>) -> Option<Result<()>> {
        self.take(input.into_answer())
    }

    fn next(&self) -> Step<'_> {
        match &self.current {
            Some((index, Phase::Writing { only, .. })) => {
                self.context.call(*index, only.as_ref().unwrap_or(&self.write).request())
            }
            Some((index, Phase::Undoing { keys, at, .. })) => self.context.call(*index, Request::Delete(keys[*at])),
            Some((_, Phase::Confirming { from, .. })) => match &self.write {
                Write::Set(key, _) => self.context.call(*from, Request::GetValue(key)),
                _ => finished(),
            },
            None => finished(),
        }
    }
}

/// The entries of an mset: each value moved into one entry, which every layer shares, with the
/// TTL of its own (`None`: each layer's TTL).
pub(in crate::tower) fn mset_entries<K, T: Cacheable>(
    items: impl IntoIterator<Item = (K, T)>,
    ttl: Option<Duration>,
) -> Vec<(K, Entry)> {
    items.into_iter().map(|(key, value)| (key, Entry::new(StoredValue::new(value), ttl))).collect()
}

/// A TTL given to `set_with_ttl` and the like, as the entry's own: `Duration::ZERO` means none
/// (as a layer's `ttl: 0` does), and a TTL over [`MAX_TTL`](crate::adapter::MAX_TTL) is that.
pub(in crate::tower) fn own_ttl(ttl: Duration) -> Option<Duration> {
    (!ttl.is_zero()).then(|| ttl.min(crate::adapter::MAX_TTL))
}

/// The entry to backfill with, once its value has been decoded as `T`: upper layers get the
/// typed value (so an in-process layer never parses it again) and, when known, its JSON.
pub(super) fn backfill_entry<T: Cacheable>(value: &T, found: Entry) -> Entry {
    let (stored, ttl) = found.into_parts();
    if stored.is::<T>() {
        return Entry::new(stored, ttl);
    }
    Entry::new(stored.with_typed(value.clone()), ttl)
}
