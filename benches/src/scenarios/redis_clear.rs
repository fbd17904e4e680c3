//! `redis/clear`: the logical clear of a memory-over-Redis tower whose Redis namespace holds
//! [`Settings::clear_entries`] keys (1,000,000; `--quick`: 100,000), against `flush()` of the
//! same keys (the issue's bar: "`clear` of a namespace holding 1,000,000 entries in Redis: ≤ 2
//! round trips").
//!
//! * The namespace [`NAMESPACE`] is filled once with the keys `k0`, `k1`, ... (values: their
//!   number, as JSON), by `MSET`s of [`FILL_BATCH`] keys on a connection of the setup's own.
//! * `clear()` moves the namespace to a new generation (one `INCR` of its record
//!   `<namespace>\0generation`) and empties the memory layer: the old keys stay in Redis,
//!   unreachable. So every timed call runs on the full namespace without rewriting a key: before
//!   each call (untimed), a `DEL` of the record moves the namespace back to generation 0, where
//!   the keys are. The tower's invalidation listener follows (it reads the record and empties
//!   the memory layer; that is waited for), then [`WARM`] of the keys are read back into the
//!   memory layer (one `mget`, every key found), and the call is timed. Afterwards a read of a
//!   warm key must miss (both layers).
//! * `flush()` (`SCAN MATCH` + `UNLINK`, batches of 1,000) runs once, on the same state (the
//!   same tower, after the same reset and warm-up), timed alone: it removes every key.
//! * Costs are counted through the relay, outside the timed runs, each contender with only its
//!   own clients alive: the call alone (invalidation listener off; the record deleted again
//!   before each call, on a connection that bypasses the relay, so each counted call has the full
//!   namespace), the call with the listener on (clears back to back), a fresh tower's first call
//!   (it opens its connection), and one `flush()` of the keys (written again for it).
//! * Another instance: a second tower (its own memory layer over its own Redis adapter, same
//!   namespace, subscribed) holds a copy of a key in its memory layer; after each of
//!   [`Settings::followed_clears`] clears by the first tower (each on the full namespace, as
//!   above), its memory layer is polled (`exists`, a `yield_now` between looks) until the copy
//!   is gone.

use std::time::{Duration, Instant};

use cache_tower::adapter::{CacheAdapter, Entry, StoredValue};
use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter};

use super::redis_support::{self, COUNTED_OPS, Counter, Failures, Raw, warn};
use super::staleness::{percentile, sorted};
use super::{BoxResult, Measured, Scenario};
use crate::data::Dataset;
use crate::harness::{Contender, Samples, Settings};
use crate::report::{Detail, Figure, Outcome, Row, Trips};
use crate::services::{Redis, Services};

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "redis/clear", run };

/// The namespace of every tower of the scenario.
const NAMESPACE: &str = "bench-clear:";

/// Keys per `MSET` of the fill.
const FILL_BATCH: usize = 10_000;

/// Keys read into the memory layer before each timed call.
const WARM: usize = 10_000;

/// The size the bar is stated for.
const BAR_ENTRIES: usize = 1_000_000;

/// The bar of Redis round trips per call (`redis/invalidate-tag` has the same one).
pub(super) const ROUND_TRIPS_BAR: f64 = 2.0;

/// A key no tower reads, planted in a memory layer to see its listener empty it.
const SENTINEL: &str = "\u{0}bench-clear:sentinel";

/// The key the second instance holds a copy of.
const COPY: &str = "copy";

/// How long a listener may take to subscribe, or to follow the namespace back to generation 0.
pub(super) const FOLLOW_WITHIN: Duration = Duration::from_secs(10);

/// How long the second instance's copy may outlive a clear (or an invalidation) before it
/// counts as a timeout.
pub(super) const GIVE_UP: Duration = Duration::from_secs(2);

/// Longer than an invalidation listener takes to notice its tower was dropped.
pub(super) const LISTENER_STOP: Duration = Duration::from_millis(500);

/// The tower key of key number `n`.
fn key(n: usize) -> String {
    format!("k{n}")
}

/// The Redis key of the namespace's generation record.
fn record() -> String {
    format!("{NAMESPACE}\0generation")
}

/// `n` with a comma every three digits.
pub(super) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (at, digit) in digits.chars().enumerate() {
        if at > 0 && (digits.len() - at) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A Redis layer on the namespace, its invalidation listener on or off.
fn redis_layer(url: &str, invalidation: bool) -> cache_tower::Result<RedisAdapter> {
    redis_support::namespaced_layer(url, NAMESPACE, invalidation)
}

/// A tower of `memory` (shared with the caller) over `redis`.
pub(super) fn tower_of(memory: &MemoryAdapter, redis: RedisAdapter) -> CacheTower {
    let tower = CacheTower::new();
    tower.add_layer(memory.clone());
    tower.add_layer(redis);
    tower
}

/// Puts `key` into `memory`, bypassing any tower.
fn plant(memory: &MemoryAdapter, key: &str) -> cache_tower::Result<()> {
    memory.set(key, &Entry::new(StoredValue::new(true), None))
}

/// Whether `key` is gone from `memory` within `within` (looked at every millisecond).
pub(super) fn gone_within(memory: &MemoryAdapter, key: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !memory.exists(key).unwrap_or(true) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A tower of `memory` over `redis` whose invalidation listener has subscribed: the listener
/// empties the memory layer when it subscribes, so a sentinel planted before is gone then.
pub(super) fn subscribed(memory: &MemoryAdapter, redis: RedisAdapter) -> BoxResult<CacheTower> {
    plant(memory, SENTINEL)?;
    let tower = tower_of(memory, redis);
    if !gone_within(memory, SENTINEL, FOLLOW_WITHIN) {
        return Err(format!("the invalidation listener did not subscribe within {FOLLOW_WITHIN:?}").into());
    }
    Ok(tower)
}

/// The namespace's keys, through the setup's own connection (never through the relay).
struct Namespace {
    con: redis::Connection,
    entries: usize,
    /// Keys of the server outside the namespace (other scenarios' `user:*` keys).
    base: usize,
}

impl Namespace {
    /// The empty namespace on `url` (whatever an earlier run left there removed: keys of every
    /// generation, and the record).
    fn new(url: &str, entries: usize) -> BoxResult<Self> {
        let tower = CacheTower::new();
        tower.add_layer(redis_layer(url, false)?);
        tower.flush()?;
        let mut con = redis::Client::open(url)?.get_connection()?;
        redis::cmd("DEL").arg(record()).query::<()>(&mut con)?;
        let base = redis::cmd("DBSIZE").query(&mut con)?;
        Ok(Self { con, entries, base })
    }

    /// Keys the server holds beyond the others'.
    fn held(&mut self) -> BoxResult<usize> {
        let size: usize = redis::cmd("DBSIZE").query(&mut self.con)?;
        Ok(size.saturating_sub(self.base))
    }

    /// Writes the keys of generation 0 (the namespace must be empty): how long it took.
    fn fill(&mut self) -> BoxResult<Duration> {
        let started = Instant::now();
        for first in (0..self.entries).step_by(FILL_BATCH) {
            let mut mset = redis::cmd("MSET");
            for n in first..(first + FILL_BATCH).min(self.entries) {
                mset.arg(format!("{NAMESPACE}{}", key(n))).arg(n);
            }
            mset.query::<()>(&mut self.con)?;
        }
        let took = started.elapsed();
        let held = self.held()?;
        if held != self.entries {
            return Err(format!("the namespace holds {held} keys after writing {}", self.entries).into());
        }
        Ok(took)
    }

    /// Moves the namespace back to generation 0, where its keys are (`DEL` of the record), and
    /// waits until the listener of each tower whose memory layer is in `followers` has followed
    /// (emptied that memory layer).
    fn back_to_full(&mut self, followers: &[&MemoryAdapter]) -> BoxResult<()> {
        for memory in followers {
            plant(memory, SENTINEL)?;
        }
        let deleted: usize = redis::cmd("DEL").arg(record()).query(&mut self.con)?;
        if deleted == 0 {
            // Generation 0 already: nothing for a listener to follow.
            for memory in followers {
                memory.delete(SENTINEL)?;
            }
            return Ok(());
        }
        for memory in followers {
            if !gone_within(memory, SENTINEL, FOLLOW_WITHIN) {
                return Err(format!("a listener did not follow the namespace back within {FOLLOW_WITHIN:?}").into());
            }
        }
        Ok(())
    }
}

/// Reads `keys` through `tower` (memory misses, Redis hits, the memory layer backfilled);
/// `Err` unless Redis had every one.
pub(super) fn warm(tower: &CacheTower, keys: &[String]) -> BoxResult<()> {
    let found = tower.mget::<u64, _>(keys).values().filter(|value| value.is_some()).count();
    if found != keys.len() {
        return Err(format!("Redis had {found} of the {} keys read into the memory layer", keys.len()).into());
    }
    Ok(())
}

/// The verdict of the round-trip bar on counted round trips per call.
pub(super) fn round_trips_verdict(trips: &Trips) -> String {
    match trips.round_trips {
        Some(n) if n <= ROUND_TRIPS_BAR => format!("{n:.2} round trips/op, met"),
        Some(n) => format!("{n:.2} round trips/op, MISSED"),
        None => "not counted (no relay)".to_string(),
    }
}

pub(super) fn round_trips(trips: &Trips) -> String {
    trips.round_trips.map_or_else(|| "not counted (no relay)".to_string(), |n| format!("{n:.2} round trips/op"))
}

/// The timed clears (warm-up rounds, then one sample each): µs per call.
fn time_clears(
    ns: &mut Namespace,
    tower: &CacheTower,
    memory: &MemoryAdapter,
    warm_keys: &[String],
    settings: &Settings,
    notes: &mut Vec<String>,
) -> BoxResult<Samples> {
    let (mut micros, mut unexpected) = (Vec::with_capacity(settings.samples), 0);
    let last = key(ns.entries - 1);
    for round in 0..settings.warmup_rounds + settings.samples {
        ns.back_to_full(&[memory])?;
        warm(tower, warm_keys)?;
        let held = memory.len();
        let started = Instant::now();
        tower.clear()?;
        let took = started.elapsed();
        if held != warm_keys.len()
            || !memory.is_empty()
            || tower.get::<u64>(&warm_keys[0]).is_some()
            || tower.get::<u64>(&last).is_some()
        {
            unexpected += 1;
        }
        if round >= settings.warmup_rounds {
            micros.push(took.as_secs_f64() * 1e6);
        }
    }
    if unexpected > 0 {
        warn(
            notes,
            format!(
                "warning: {}: {unexpected} timed clears did not start with exactly {WARM} keys in memory, or left a \
                 key readable; their figures are included",
                SCENARIO.id
            ),
        );
    }
    Ok(Samples::from(micros))
}

/// What the second instance saw of the first one's calls (`clear()` here, `invalidate_tag` in
/// `redis/invalidate-tag`).
pub(super) struct Followed {
    /// From the first tower's call returning to the copy gone, µs.
    pub(super) since_return: Vec<f64>,
    /// From the first tower's call being called to the copy gone, µs.
    pub(super) since_call: Vec<f64>,
    /// The copy was gone at the first look after the call returned.
    pub(super) gone_at_return: usize,
    pub(super) timeouts: usize,
}

impl Followed {
    /// Room for `calls` calls.
    pub(super) fn new(calls: usize) -> Self {
        Self {
            since_return: Vec::with_capacity(calls),
            since_call: Vec::with_capacity(calls),
            gone_at_return: 0,
            timeouts: 0,
        }
    }

    /// Looks at `gone` (a `yield_now` between looks) from `returned` on, until it says the copy
    /// is gone or [`GIVE_UP`] has passed (a timeout, counted as [`GIVE_UP`]), and records how
    /// long that took since the call was `called` and since it `returned`.
    pub(super) fn record(&mut self, called: Instant, returned: Instant, gone: impl Fn() -> bool) {
        self.record_stamped(called, returned, || gone().then(Instant::now));
    }

    /// [`record`](Self::record) for a copy whose going is stamped where it happens: `gone` says
    /// when the copy went, once it has. A copy gone before the call returned counts 0 from the
    /// return.
    pub(super) fn record_stamped(&mut self, called: Instant, returned: Instant, gone: impl Fn() -> Option<Instant>) {
        let mut first_look = true;
        loop {
            if let Some(gone) = gone() {
                self.since_return.push(gone.saturating_duration_since(returned).as_secs_f64() * 1e6);
                self.since_call.push(gone.saturating_duration_since(called).as_secs_f64() * 1e6);
                self.gone_at_return += usize::from(first_look);
                return;
            }
            if returned.elapsed() > GIVE_UP {
                self.timeouts += 1;
                self.since_return.push(GIVE_UP.as_secs_f64() * 1e6);
                self.since_call.push(GIVE_UP.as_secs_f64() * 1e6);
                return;
            }
            first_look = false;
            std::thread::yield_now();
        }
    }

    /// The markdown table of the figures: a row measured from `call` (as the table names it,
    /// `` `clear()` ``) returning, and one from its being called; `calls` heads the count's
    /// column (`clears`).
    pub(super) fn table(&self, call: &str, calls: &str) -> String {
        let mut table = format!(
            "| measured from | {calls} | p50 | p99 | max | gone at the first look after the call returned | timeouts |\n\
             |---|---:|---:|---:|---:|---:|---:|\n"
        );
        for (from, micros) in [
            (format!("the first tower's {call} returning"), &self.since_return),
            (format!("the first tower's {call} being called"), &self.since_call),
        ] {
            let sorted = sorted(micros);
            table.push_str(&format!(
                "| {from} | {} | {:.0} µs | {:.0} µs | {:.0} µs | {} | {} |\n",
                sorted.len(),
                percentile(&sorted, 50.0),
                percentile(&sorted, 99.0),
                sorted.last().copied().unwrap_or(f64::NAN),
                self.gone_at_return,
                self.timeouts
            ));
        }
        table
    }
}

/// `clears` clears by `tower`, each on the full namespace, with a second tower (its own memory
/// layer and Redis adapter) holding a copy of [`COPY`] in its memory layer.
fn follow_clears(
    ns: &mut Namespace,
    url: &str,
    tower: &CacheTower,
    memory: &MemoryAdapter,
    clears: usize,
) -> BoxResult<Followed> {
    let other_memory = MemoryAdapter::new();
    let other = subscribed(&other_memory, redis_layer(url, true)?)?;
    let mut followed = Followed::new(clears);
    for _ in 0..clears {
        ns.back_to_full(&[memory, &other_memory])?;
        // The copy, kept 1 ms: no late news of the reset is on its way.
        let mut tries = 0;
        loop {
            plant(&other_memory, COPY)?;
            std::thread::sleep(Duration::from_millis(1));
            if other_memory.exists(COPY)? {
                break;
            }
            tries += 1;
            if tries == 100 {
                return Err("the second instance's memory layer keeps losing its copy before the clear".into());
            }
        }
        let called = Instant::now();
        tower.clear()?;
        let returned = Instant::now();
        followed.record(called, returned, || !other_memory.exists(COPY).unwrap_or(true));
    }
    if other.get::<u64>(&key(0)).is_some() {
        return Err("the second instance still reads a cleared key from Redis".into());
    }
    Ok(followed)
}

/// The markdown section of the second instance's figures.
fn followed_section(followed: &Followed, entries: usize) -> String {
    let mut section = format!(
        "### Another instance follows a clear (`{}`)\n\n\
         Two towers in this process on this run's redis-server over loopback, each a memory layer \
         (`MemoryAdapter`, unbounded) over a Redis adapter of its own on namespace `{NAMESPACE}` (invalidation on, \
         both listeners subscribed). Before each clear, the namespace holds its {} keys as the current generation \
         (see the notes), and the second tower's memory layer holds a copy of a key (planted straight into it, \
         kept 1 ms). The first tower calls `clear()`; the runner then polls the second tower's memory layer \
         (`exists`, a `yield_now` between looks) until the copy is gone: the second tower's listener heard the \
         record change (client tracking), read it (`GETRANGE`) and emptied its memory layer. A copy still there \
         after {} s counts as {} s.\n\n",
        SCENARIO.id,
        thousands(entries),
        GIVE_UP.as_secs(),
        GIVE_UP.as_secs()
    );
    section.push_str(&followed.table("`clear()`", "clears"));
    section
}

/// The cost counts, through the relay: the call alone (the bar), with the listener on, a fresh
/// tower's first call, and one flush. The namespace must hold its keys (generation 0 or not).
fn count(redis: &Redis, data: &Dataset, ns: &mut Namespace, notes: &mut Vec<String>) -> BoxResult<Vec<Trips>> {
    let mut counter = Counter::new(redis, true)?;
    let relayed = counter.url().to_string();
    let indices = redis_support::indices(data, COUNTED_OPS);
    let entries = thousands(ns.entries);
    let failures = Failures::default();
    // The setup's `DEL` of the record, on a connection of its own that bypasses the relay.
    let setup: Raw = redis_support::raw(&redis.url)?;
    let reset = || {
        let deleted = redis::cmd("DEL").arg(record()).query::<usize>(&mut *redis_support::lock(&setup));
        if failures.check(deleted).is_none() {
            failures.add();
        }
    };
    let clear = |tower: &CacheTower| {
        if tower.clear().is_err() {
            failures.add();
        }
    };
    let mut trips = Vec::new();

    // The call alone: listener off, the namespace full before each call.
    {
        let tower = tower_of(&MemoryAdapter::new(), redis_layer(&relayed, false)?);
        let alone = Contender::per_op_with_setup(
            format!(
                "cache-tower `clear()` of the namespace holding {entries} keys, memory over Redis, invalidation \
                 listener off (the call alone); before each call, `DEL` of the generation record on a connection \
                 that bypasses the relay (the keys are the current generation again; the server counts its `del`)"
            ),
            |_| reset(),
            |_| clear(&tower),
        );
        let mut counted = counter.count(SCENARIO.id, &alone, indices)?;
        counted.contender = format!(
            "{} (bar ≤ {ROUND_TRIPS_BAR:.0} round trips/op: {})",
            counted.contender,
            round_trips_verdict(&counted)
        );
        trips.push(counted);
    }

    // With the listener on: it reads the record when it hears it change.
    {
        let memory = MemoryAdapter::new();
        let tower = subscribed(&memory, redis_layer(&relayed, true)?)?;
        let listening = Contender::per_op(
            "cache-tower `clear()`, invalidation listener on (as timed), clears back to back (after the first, the \
             current generation is empty: the call sends the same `INCR`)",
            |_| clear(&tower),
        );
        trips.push(counter.count(SCENARIO.id, &listening, indices)?);
    }
    std::thread::sleep(LISTENER_STOP);

    // A new tower's first call: it opens its connection.
    let fresh = Contender::per_op_with_setup(
        "cache-tower `clear()` as a new tower's first call (listener off; the namespace full again before each, as \
         above): the call opens its connection (the client's set-up, the layer's handshake), not what the bar is \
         held to",
        |_| reset(),
        |_| match redis_layer(&relayed, false) {
            Ok(redis) => clear(&tower_of(&MemoryAdapter::new(), redis)),
            Err(_) => failures.add(),
        },
    );
    trips.push(counter.count(SCENARIO.id, &fresh, indices)?);

    // One flush of the same keys (generation 0 again).
    ns.back_to_full(&[])?;
    {
        let tower = tower_of(&MemoryAdapter::new(), redis_layer(&relayed, false)?);
        // Opens the connection before the count (and finds a key of generation 0).
        if tower.get::<u64>(&key(0)).is_none() {
            failures.add();
        }
        let flush = Contender::per_op(
            format!(
                "cache-tower `flush()` of the same {entries} keys (`SCAN MATCH` + `UNLINK`, batches of 1,000), \
                 listener off, one call counted"
            ),
            |_| {
                if tower.flush().is_err() {
                    failures.add();
                }
            },
        );
        trips.push(counter.count_settled(SCENARIO.id, &flush, &indices[..1])?);
    }
    let left = ns.held()?;
    if left != 0 {
        warn(notes, format!("warning: {}: {left} keys were left after the counted flush", SCENARIO.id));
    }
    failures.report(&format!("{} (cost count)", SCENARIO.id), notes);
    Ok(trips)
}

fn run(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let redis = match services.redis() {
        Ok(redis) => redis,
        Err(reason) => return Ok(redis_support::skipped(SCENARIO.id, reason)),
    };
    let entries = settings.clear_entries;
    let mut ns = Namespace::new(&redis.url, entries)?;
    let filled = ns.fill()?;
    eprintln!("  wrote {} keys in {:.1} s", thousands(entries), filled.as_secs_f64());
    let mut notes = Vec::new();
    // Spread over the namespace.
    let warm_keys: Vec<String> = (0..WARM).map(|n| key(n * (entries / WARM).max(1))).collect();

    let memory = MemoryAdapter::new();
    let tower = subscribed(&memory, redis_layer(&redis.url, true)?)?;
    let samples = time_clears(&mut ns, &tower, &memory, &warm_keys, settings, &mut notes)?;
    let clear = Measured::new("cache-tower `clear()`", samples, Figure::MicrosPerOp);

    eprintln!("  {} clears followed by another instance ...", settings.followed_clears);
    let followed = follow_clears(&mut ns, &redis.url, &tower, &memory, settings.followed_clears)?;
    super::staleness::log_spread(&followed.since_return, followed.timeouts);

    ns.back_to_full(&[&memory])?;
    warm(&tower, &warm_keys)?;
    let held = memory.len();
    let started = Instant::now();
    tower.flush()?;
    let flush = started.elapsed().as_secs_f64() * 1e6;
    eprintln!("  {:<52} {:>16}", "cache-tower `flush()`, once", Figure::MicrosPerOp(flush).to_string());
    let left = ns.held()?;
    if held != WARM || left != 0 || !memory.is_empty() {
        warn(
            &mut notes,
            format!(
                "warning: {}: the timed flush started with {held} keys in memory (not {WARM}) or left {left} keys in \
                 Redis, {} in memory",
                SCENARIO.id,
                memory.len()
            ),
        );
    }
    // Its listener would be counted against the counted contenders (the server's side of it).
    drop(tower);
    std::thread::sleep(LISTENER_STOP);

    let refilled = ns.fill()?;
    eprintln!("  wrote the {} keys again in {:.1} s", thousands(entries), refilled.as_secs_f64());
    let trips = count(redis, data, &mut ns, &mut notes)?;
    redis::cmd("DEL").arg(record()).query::<()>(&mut ns.con)?;

    let shown = thousands(entries);
    let quick = if entries < BAR_ENTRIES {
        format!(" (quick run: the bar is for {})", thousands(BAR_ENTRIES))
    } else {
        String::new()
    };
    let (alone, listening, fresh, flushed) = (&trips[0], &trips[1], &trips[2], &trips[3]);
    notes.push(format!(
        "{}: one `clear()` of a namespace holding {shown} entries{quick}: {} against the bar of ≤ \
         {ROUND_TRIPS_BAR:.0} Redis round trips (the call alone, counted through the relay with the Redis layer's \
         invalidation listener off, the keys the current generation before every counted call). With the listener \
         on: {} in all (its read of the record it heard change, on its own thread). A new tower's first call: {} \
         (it opens its connection). `flush()` of the same keys: {}.",
        SCENARIO.id,
        round_trips_verdict(alone),
        round_trips(listening),
        round_trips(fresh),
        flushed.round_trips.map_or_else(|| "not counted (no relay)".to_string(), |n| format!("{n:.0} round trips"))
    ));
    notes.push(format!(
        "{}: flush / clear = {:.0}x ({:.2} s for the one `flush()`, {} the median `clear()` of {} calls).",
        SCENARIO.id,
        flush / clear.figure.value(),
        flush / 1e6,
        clear.figure,
        settings.samples
    ));
    notes.push(format!(
        "{}: the namespace `{NAMESPACE}` is written once with {shown} keys (`k0`..., values their number; {:.1} s \
         of `MSET`s of {} keys), and the server holds {} other keys that `SCAN` walks too. A clear leaves the old \
         keys in Redis (unreachable), so each timed call ran on the full namespace without rewriting a key: before \
         it, untimed, a `DEL` of the generation record `{NAMESPACE}\\0generation` moved the namespace back to \
         generation 0, where the keys are; the tower's invalidation listener followed (it read the record and \
         emptied the memory layer; waited for), {} of the keys (spread over the namespace) were read into the \
         memory layer (`MemoryAdapter`, unbounded) with one `mget`, all found in Redis; then `clear()` was timed \
         ({} warm-up calls, then {} samples; each one `INCR` and the memory layer emptied, the Redis layer's \
         invalidation listener on, the default), and afterwards reads of a warm key and of the last key missed. \
         `flush()` ran once on the same state (the same tower, after the same reset and warm-up), timed alone; its \
         listener then hears of every key removed, on its own thread, during and after the call. The keys were \
         written again for the counted flush.",
        SCENARIO.id,
        filled.as_secs_f64(),
        thousands(FILL_BATCH),
        thousands(ns.base),
        thousands(WARM),
        settings.warmup_rounds,
        settings.samples
    ));

    let row = Row {
        scenario: format!(
            "Redis `clear` of a namespace holding {shown} entries{quick}, {} of them warm in the memory layer, 1 \
             thread (µs per call, lower is better)",
            thousands(WARM)
        ),
        ours: clear.figure,
        ours_detail: clear.detail(),
        peer: format!(
            "cache-tower `flush()` of the same keys (`SCAN MATCH` + `UNLINK`, batches of 1,000), one call; ratio: \
             clear / flush (flush / clear = {:.0}x)",
            flush / clear.figure.value()
        ),
        theirs: Figure::MicrosPerOp(flush),
        theirs_detail: Detail::default(),
        ratio_p10_p90: None,
    };
    Ok(Outcome { rows: vec![row], notes, trips, sections: vec![followed_section(&followed, entries)] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
