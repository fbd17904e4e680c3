//! [`GetOrSet`]: read a key through the stack; on a miss, compute it once for every concurrent
//! caller (single flight) and store it in every layer.

use super::read::{Read, Stale};
use super::write::{Write, WriteLayers};
use super::{Background, Context, Detached, Faults, Input, Plan, Step, StoreAs, finished, no_reply};
use crate::LoadOptions;
use crate::adapter::{Reply, Request};
use crate::flight::{Flight, Flights, Joined, Leader};
use crate::sync_shim::Arc;
use crate::value::{Cacheable, Entry, StoredValue};
use std::time::{Duration, Instant};

/// Get-or-set of one key.
///
/// 1. Join the key's flight (the caller's fast lane has looked at the top layer already). A
///    follower waits for the leader's value; if the leader abandons (its computation failed,
///    panicked or was cancelled), it joins again, and may lead.
/// 2. The leader [`Read`]s the key through the stack (the top layer again: a leader that landed
///    just before it joined has stored the value there); a hit is the answer, and lands the
///    flight with it. So a burst of callers of a cold key reads the shared layers once per
///    process, not once per caller (ADR 15).
/// 3. On a miss the leader asks its driver to compute the value, stores it in every layer — but
///    those that failed the read: a hung layer costs the caller one timeout, not two — and lands
///    the flight. Failures to store are counted and logged, not returned.
///
/// When a stale value may answer a caller (the fail-safe, timeouts), every caller reads first,
/// for a stale value of its own to answer with at its deadline, then joins; its leader then
/// looks at the top layer once more (`Checking`) before computing.
///
/// When the computation fails, the leader gives up: the plan asks its driver to [`Step::Fail`]
/// with the computation's error, and dropping the plan (as also when the caller's future is
/// dropped) drops the leadership, which abandons the flight and releases the followers.
///
/// **Fail-safe** ([`LoadOptions::fail_safe`]): the read asks for stale entries too and keeps the
/// topmost. When the computation fails (an error or a panic, which the driver then catches) and
/// the read found a stale value, the leader returns that value instead, keeps it fresh for the
/// throttle period in the memory layers — in place where a layer still holds that very value,
/// else as a backfill checked against the change log, only into layers that follow changes (so
/// a key deleted or changed meanwhile is never given back its old value) — and lands the flight
/// with it, so the followers get it too.
///
/// **Timeouts** ([`LoadOptions::soft_timeout`], [`LoadOptions::hard_timeout`]): callers waiting
/// on the flight, and a leader whose computation went to the background
/// ([`with_background`](Self::with_background): `Step::Compute { detach }`, then `Awaiting`), wait
/// until their deadline, then answer with the stale value or give up (`Step::GiveUp`).
///
/// **The distributed lock** ([`LoadOptions::lock`]): before computing, the leader takes the key's
/// lock in the lowest layer that can hold one (`Locking`); without it, it naps until a change or
/// a moment passes (`Napping`), reads again (`LeaderReading`) and tries again, computing itself
/// past the lock's timeout. Having taken it, it reads once more (another instance may have stored
/// the value and released the lock since this caller's miss), then computes, and releases the
/// lock after the store or the failure (`Unlocking`).
pub(in crate::tower) struct GetOrSet<'s, 'k, T> {
    context: Context<'s>,
    key: &'k str,
    /// How the computed value is stored.
    store_as: StoreAs,
    /// The fail-safe's throttle period, when the fail-safe is on.
    fail_safe: Option<Duration>,
    faults: Faults,
    /// What the read found stale, and the change number before it.
    stale: Option<Stale<T>>,
    since: u64,
    /// When a caller with a stale value stops waiting for the computation (soft timeout), and
    /// when any caller does (hard timeout: only with `background`, since giving up is only for
    /// a computation that can go on without its caller).
    soft: Option<Instant>,
    hard: Option<Instant>,
    /// Handles for a computation handed to the background (`try_get_or_load`).
    background: Option<Background>,
    /// The distributed lock ([`LoadOptions::lock`]): its timeout (`None` once given up on), the
    /// owner token of this caller, whether it holds the lock, and how long it waits for another
    /// instance's value.
    lock: Option<Duration>,
    token: String,
    locked: bool,
    lock_deadline: Option<Instant>,
    state: State<'s, 'k, T>,
}

/// How often a caller waiting for another instance's value looks for it, when no invalidation
/// wakes it first.
const LOCK_POLL: Duration = Duration::from_millis(10);

/// What a leader that holds the distributed lock does once it has released it.
enum AfterUnlock<T> {
    /// Land the flight with the stored value and return the value.
    Land(T, StoredValue),
    /// The computation failed: fall back, or fail.
    Failed,
}

enum State<'s, 'k, T> {
    /// Joining the flight before reading; `true` when the fast lane saw the top layer without
    /// the key (a follower counts that miss).
    Joining(bool),
    /// Reading before joining (a stale value wanted).
    Reading(Read<'s, 'k, T>),
    Following(Arc<Flight>),
    /// Leading: reading the top layer again.
    Checking(Leader),
    /// Leading: waiting for the caller's computation.
    Computing(Leader),
    /// Leading: storing the computed value.
    Storing {
        leader: Leader,
        value: T,
        stored: StoredValue,
        writes: WriteLayers<'s, 'k>,
    },
    /// Leading, the computation handed to the background: waiting for its outcome (it stores
    /// the value and lands the flight itself, or abandons it when it fails).
    Awaiting,
    /// The computation failed: keeping the stale value in the memory layers (then landing the
    /// flight with it, when still leading).
    Keeping {
        leader: Option<Leader>,
        stale: Stale<T>,
        writes: WriteLayers<'s, 'k>,
    },
    /// The computation failed and there is nothing to fall back on.
    Failing,
    /// The hard timeout passed and there is nothing to fall back on.
    GivingUp,
    /// Leading: taking the distributed lock of the key.
    Locking(Leader),
    /// Leading, another instance holds the lock: waiting for its value (or a change) a while.
    Napping(Leader),
    /// Leading: reading the key through the stack, after joining the flight or, while another
    /// instance holds the lock, after a nap.
    LeaderReading(Leader, Read<'s, 'k, T>),
    /// Releasing the distributed lock, then going on as `after` says.
    Unlocking {
        leader: Option<Leader>,
        after: AfterUnlock<T>,
    },
    Finished,
}

impl<'s, 'k, T: Cacheable> GetOrSet<'s, 'k, T> {
    /// `top_lacks_key`: the fast lane has just seen the top layer without a fresh value of the
    /// key (see [`Read::below_top`]); a fail-safe read looks again, for a stale one.
    pub(in crate::tower) fn new(
        context: Context<'s>,
        key: &'k str,
        top_lacks_key: bool,
        options: &LoadOptions,
    ) -> Self {
        // A stale value is wanted when there is something to use it for.
        let timeouts = options.soft_timeout.is_some() || options.hard_timeout.is_some();
        let state = match options.fail_safe.is_some() || timeouts {
            true => State::Reading(Read::new(context, key).with_stale()),
            false => State::Joining(top_lacks_key),
        };
        let now = timeouts.then(Instant::now);
        let after = |timeout: Option<Duration>| Some(now?.checked_add(timeout?).unwrap_or_else(far_future));
        Self {
            context,
            key,
            store_as: StoreAs::of(options),
            fail_safe: options.fail_safe,
            faults: Faults::default(),
            stale: None,
            since: 0,
            soft: after(options.soft_timeout),
            hard: after(options.hard_timeout),
            background: None,
            lock: options.lock,
            token: String::new(),
            locked: false,
            lock_deadline: None,
            state,
        }
    }

    /// The layer that holds distributed locks: the lowest that can, when the lock is on and that
    /// layer did not fail this call.
    fn lock_layer(&self) -> Option<usize> {
        self.lock?;
        let index = self.context.stack.iter().rposition(|layer| layer.adapter.can_lock())?;
        (!self.faults.contains(index)).then_some(index)
    }

    /// A leader that must compute: first takes the distributed lock, when there is one to take.
    fn compute_or_lock(&mut self, leader: Leader) -> Option<T> {
        if self.locked || self.lock_layer().is_none() {
            self.state = State::Computing(leader);
            return None;
        }
        if self.token.is_empty() {
            self.token = lock_token();
        }
        if self.lock_deadline.is_none() {
            let timeout = self.lock.unwrap_or_default();
            self.lock_deadline = Some(Instant::now().checked_add(timeout).unwrap_or_else(far_future));
        }
        self.state = State::Locking(leader);
        None
    }

    /// The answer to a lock request.
    fn lock_answered(&mut self, leader: Leader, answer: Option<crate::error::Result<Reply>>) -> Option<T> {
        match answer.unwrap_or_else(no_reply).and_then(Reply::into_locked) {
            // Read once more before computing: another instance may have stored the value and
            // released the lock between this caller's miss and its taking the lock.
            Ok(true) => {
                self.locked = true;
                return self.lead_read(leader);
            }
            Ok(false) => self.state = State::Napping(leader),
            // The lock's layer fails: this process's single flight is all there is (the layer's
            // driver counted and logged the failure).
            Err(_) => {
                self.lock = None;
                self.state = State::Computing(leader);
            }
        }
        None
    }

    /// Woken while another instance holds the lock: read the key again, or, past the wait,
    /// compute it here.
    fn reread(&mut self, leader: Leader) -> Option<T> {
        if self.lock_deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            self.lock = None;
            self.state = State::Computing(leader);
            return None;
        }
        self.lead_read(leader)
    }

    /// The leader reads the key through the stack.
    fn lead_read(&mut self, leader: Leader) -> Option<T> {
        let mut read = Read::new(self.context, self.key);
        match read.take(None) {
            // A stack with nothing to read: nobody else can have stored it here.
            Some(_) => self.compute_or_lock(leader),
            None => {
                self.state = State::LeaderReading(leader, read);
                None
            }
        }
    }

    /// Joins the key's flight before reading: follow it (counting the top layer's miss the fast
    /// lane saw), or lead it and read.
    fn join_first(&mut self, top_lacks_key: bool) -> Option<T> {
        match Flights::join(self.context.flights, self.key) {
            Joined::Follower(flight) => {
                if let (true, Some(top)) = (top_lacks_key, self.context.stack.first()) {
                    top.count_read::<T>(0, None);
                }
                self.state = State::Following(flight);
                None
            }
            Joined::Leader(leader) => self.lead_read(leader),
        }
    }

    /// Releases the lock (when held), then goes on as `after` says.
    fn unlock_then(&mut self, leader: Option<Leader>, after: AfterUnlock<T>) -> Option<T> {
        if self.locked {
            self.state = State::Unlocking { leader, after };
            return None;
        }
        match after {
            AfterUnlock::Land(value, stored) => {
                if let Some(leader) = leader {
                    leader.land(stored);
                }
                Some(value)
            }
            AfterUnlock::Failed => self.failed(leader),
        }
    }

    /// The same get-or-set, its computation able to outlive the caller: handed to the
    /// background ([`Step::Compute`] with `detach`) with these handles, and the hard timeout
    /// honoured.
    pub(in crate::tower) fn with_background(mut self, background: Background) -> Self {
        self.background = Some(background);
        self
    }

    /// How long this caller waits for the computation: until the soft timeout when it has a
    /// stale value to answer with, at most until the hard one.
    fn deadline(&self) -> Option<Instant> {
        let hard = self.hard.filter(|_| self.background.is_some());
        match (self.stale.is_some(), self.soft, hard) {
            (true, Some(soft), hard) => Some(hard.map_or(soft, |hard| hard.min(soft))),
            (_, _, hard) => hard,
        }
    }

    /// The wait for the computation timed out: the stale value if there is one, else (the hard
    /// timeout) give up.
    fn timed_out(&mut self) -> Option<T> {
        match self.stale.take() {
            Some(stale) => {
                self.served_stale(stale.index, "computation too slow; serving a stale value (timeout)");
                Some(stale.value)
            }
            None => {
                self.state = State::GivingUp;
                None
            }
        }
    }

    /// Joins the key's flight: follow it, or lead it.
    fn join(&mut self) -> Option<T> {
        self.state = match Flights::join(self.context.flights, self.key) {
            Joined::Follower(flight) => State::Following(flight),
            Joined::Leader(leader) if self.faults.contains(0) || self.context.stack.is_empty() => {
                return self.compute_or_lock(leader);
            }
            Joined::Leader(leader) => State::Checking(leader),
        };
        None
    }

    /// The leader's computed value: store it everywhere, then land.
    fn store(&mut self, leader: Leader, value: T) -> Option<T> {
        let entry = self.store_as.entry(StoredValue::new(value.clone()));
        let stored = entry.value().clone();
        let write = Write::Set(self.key, entry);
        let mut writes = WriteLayers::store(self.context, write, self.faults);
        // A store failure is counted and logged by the driver; the value still goes out.
        if writes.take(None).is_some() {
            return self.unlock_then(Some(leader), AfterUnlock::Land(value, stored));
        }
        self.state = State::Storing { leader, value, stored, writes };
        None
    }

    /// The stale value, when the shared layers are out of reach: a layer below it failed this
    /// read while the tower cannot see their changes (a lost tracking connection). Then the
    /// source is not asked — the copy answers, as stale, until the watch is back (which drops
    /// it) — and nothing is written.
    fn serve_blind(&mut self) -> Option<T> {
        let stale = self.stale.as_ref()?;
        if self.fail_safe.is_none() || !self.faults.any_below(stale.index) || !self.context.log.is_blind() {
            return None;
        }
        let stale = self.stale.take()?;
        self.served_stale(stale.index, "a shared layer is out of reach; serving a stale value (fail-safe)");
        Some(stale.value)
    }

    /// Counts a stale value served from layer `index`, and says why (at most once a second per
    /// layer).
    fn served_stale(&self, index: usize, why: &'static str) {
        let counters = &self.context.stack[index].counters;
        counters.stale_served();
        let now_secs = crate::clock::Clock::system().now_nanos() / 1_000_000_000;
        if counters.may_warn(now_secs) {
            tracing::warn!(layer = index, "{why}");
        }
    }

    /// The computation failed: fall back on the stale value when the fail-safe is on and the
    /// read found one, else fail (dropping the leadership abandons the flight). `leader` is
    /// `None` when the computation ran in the background, which abandoned the flight already.
    fn failed(&mut self, leader: Option<Leader>) -> Option<T> {
        if self.locked {
            return self.unlock_then(leader, AfterUnlock::Failed);
        }
        let (Some(throttle), Some(stale)) = (self.fail_safe, self.stale.take()) else {
            self.state = State::Failing;
            return None;
        };
        let stack = self.context.stack;
        self.served_stale(
            stale.index,
            "computation failed; serving a stale value (fail-safe), kept fresh for the throttle period",
        );
        // Where a memory layer still holds this very value, keep it in place; else backfill it
        // into the memory layers above where it was found that follow changes (the change log
        // then refuses it if the key changed since the read).
        let window = stale.left.saturating_sub(throttle);
        let mut skip = Faults::default();
        for (index, layer) in stack.iter().enumerate() {
            let kept =
                layer.memory.as_ref().is_some_and(|memory| memory.keep(self.key, &stale.stored, throttle, window));
            if kept || layer.memory.is_none() || !layer.follows_changes || index >= stale.index {
                skip.note(index);
            }
        }
        let entry = Entry::new(stale.stored.clone(), Some(throttle)).with_stale_window(window);
        let mut writes =
            WriteLayers::backfill(self.context, Write::Set(self.key, entry), self.since, 0, stale.index).skipping(skip);
        if writes.take(None).is_some() {
            if let Some(leader) = leader {
                leader.land(stale.stored);
            }
            return Some(stale.value);
        }
        self.state = State::Keeping { leader, stale, writes };
        None
    }
}

/// A token no other lock holder has: this process, the time, and a count.
fn lock_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_nanos());
    format!("{}:{nanos:x}:{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// An instant later than any deadline that matters (for a timeout too long to add to now).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

impl<'s, T: Cacheable> Plan for GetOrSet<'s, '_, T> {
    type Value = T;
    type Output = T;

    fn advance(&mut self, input: Input<T>) -> Option<T> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Joining(top_lacks_key) => self.join_first(top_lacks_key),
            State::Reading(mut read) => match read.take(input.into_answer()) {
                Some((Some(value), _)) => Some(value),
                Some((None, faults)) => {
                    self.faults = faults;
                    self.stale = read.take_stale();
                    self.since = read.since();
                    if let Some(value) = self.serve_blind() {
                        return Some(value);
                    }
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
                Input::TimedOut => self.timed_out(),
                Input::Start => {
                    self.state = State::Following(flight);
                    None
                }
                Input::Reply(_) | Input::Computed(_) | Input::Failed | Input::Woke => self.join(),
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
                self.compute_or_lock(leader)
            }
            State::Locking(leader) => self.lock_answered(leader, input.into_answer()),
            State::Napping(leader) => match input {
                Input::Woke => self.reread(leader),
                _ => {
                    self.state = State::Napping(leader);
                    None
                }
            },
            State::LeaderReading(leader, mut read) => match read.take(input.into_answer()) {
                // Found (another instance may have stored it): this flight's followers get it too,
                // once the lock, if this caller took it, is released.
                Some((Some(value), _)) => {
                    let stored = StoredValue::new(value.clone());
                    self.unlock_then(Some(leader), AfterUnlock::Land(value, stored))
                }
                // A miss — after a nap, the holder may have died and its lock expired: compute,
                // or try to take the lock (computing at once when this caller holds it).
                Some((None, faults)) => {
                    self.faults = faults;
                    // A stale value found earlier is checked against the changes since *its*
                    // read, so that a change between the two reads still refuses it.
                    if self.stale.is_none() {
                        self.since = read.since();
                    }
                    self.compute_or_lock(leader)
                }
                None => {
                    self.state = State::LeaderReading(leader, read);
                    None
                }
            },
            State::Unlocking { leader, after } => {
                // A release that fails leaves a lock that expires: nothing more to do about it.
                self.locked = false;
                self.unlock_then(leader, after)
            }
            State::Computing(leader) => match input {
                Input::Computed(value) => self.store(leader, value),
                Input::Failed => self.failed(Some(leader)),
                _ => {
                    self.state = State::Computing(leader);
                    None
                }
            },
            State::Storing { leader, value, stored, mut writes } => match writes.take(input.into_answer()) {
                Some(_) => self.unlock_then(Some(leader), AfterUnlock::Land(value, stored)),
                None => {
                    self.state = State::Storing { leader, value, stored, writes };
                    None
                }
            },
            State::Awaiting => match input {
                // The background stored the value and landed the flight.
                Input::Computed(value) => Some(value),
                Input::Failed => self.failed(None),
                Input::TimedOut => self.timed_out(),
                _ => {
                    self.state = State::Awaiting;
                    None
                }
            },
            State::Keeping { leader, stale, mut writes } => match writes.take(input.into_answer()) {
                Some(_) => {
                    if let Some(leader) = leader {
                        leader.land(stale.stored);
                    }
                    Some(stale.value)
                }
                None => {
                    self.state = State::Keeping { leader, stale, writes };
                    None
                }
            },
            State::Failing | State::GivingUp | State::Finished => finished(),
        }
    }

    fn detach(&mut self) -> Option<Detached<T>> {
        let background = self.background.clone()?;
        match std::mem::replace(&mut self.state, State::Awaiting) {
            State::Computing(leader) => Some(Detached {
                background,
                key: self.key.to_owned(),
                leader,
                store_as: self.store_as.clone(),
                lock: self.locked.then(|| self.lock_layer().map(|index| (index, self.token.clone()))).flatten(),
                _value: std::marker::PhantomData,
            }),
            other => {
                self.state = other;
                None
            }
        }
    }

    fn next(&self) -> Step<'_> {
        match &self.state {
            State::Reading(read) => read.step(),
            State::Following(flight) => Step::Wait { flight, until: self.deadline() },
            State::Checking(_) => self.context.call(0, Request::GetValue(self.key)),
            // A panic is a failure to fall back from only when there is something to fall back on.
            State::Computing(_) => Step::Compute {
                catch_panics: self.fail_safe.is_some() && self.stale.is_some(),
                detach: self.background.is_some(),
                until: self.deadline(),
            },
            // The driver has the computation's outcome to wait for.
            State::Awaiting => Step::Compute { catch_panics: false, detach: true, until: self.deadline() },
            State::Storing { writes, .. } | State::Keeping { writes, .. } => writes.next(),
            State::Failing => Step::Fail,
            State::GivingUp => Step::GiveUp,
            State::Locking(_) => match self.lock_layer() {
                Some(index) => self.context.call(
                    index,
                    Request::Lock { key: self.key, token: &self.token, ttl: self.lock.unwrap_or_default() },
                ),
                None => finished(),
            },
            State::Napping(_) => {
                let soon = Instant::now() + LOCK_POLL;
                Step::Nap {
                    log: self.context.log,
                    until: self.lock_deadline.map_or(soon, |deadline| deadline.min(soon)),
                }
            }
            State::LeaderReading(_, read) => read.step(),
            State::Unlocking { .. } => match self.context.stack.iter().rposition(|layer| layer.adapter.can_lock()) {
                Some(index) => self.context.call(index, Request::Unlock { key: self.key, token: &self.token }),
                None => finished(),
            },
            // `advance` leaves `Joining` at once.
            State::Joining(_) | State::Finished => finished(),
        }
    }
}
