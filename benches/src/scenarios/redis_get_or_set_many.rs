//! `get_or_set_many` of 1,000 keys, 10% of them missing, on one thread (the issue's bar: "one
//! loader call, ≤ 2 Redis round trips, ≤ 1.2x a hand-written MGET + loader + pipelined SETs"): a
//! memory-over-Redis tower (its memory layer S3-FIFO, bounded to [`BOUND`] entries, which holds
//! every user; its Redis layer writing with the TTL [`WRITE_TTL`]) against the hand-written,
//! memory-less equivalent on the raw redis-rs connection:
//!
//! * ours: one read of the memory layer for all keys (all miss), one round trip of `MGET` and a
//!   `PTTL` per key (pipelined), a JSON decode per value found, a backfill of the memory layer,
//!   one call of the loader with the 100 keys no layer had, then one write of what it returned
//!   to each layer (Redis: one `EVALSHA` of the mset script, `SET key value PX ttl` each);
//! * raw, the bar: `MGET` of the 1,000 keys, a decode of each value found, one call of the same
//!   loader with the missing keys, one pipeline of `SET key json PX ttl` for each loaded value
//!   (one round trip), the values returned in request order.
//!
//! The loader builds the missing keys' `User`s from the dataset (a clone each, no I/O); it is
//! the same function for both, and counts its calls: exactly one per operation, of exactly 100
//! keys, or the notes say otherwise.
//!
//! Operation `i` reads batch `i % batches`: 1,000 distinct keys, every user in one batch.
//! Before each operation, outside the timed region (the harness reads the clock around each
//! operation of this scenario, for every contender alike), every tenth key of the batch is
//! deleted from Redis (one `UNLINK` of 100 keys, on a connection of its own that never goes
//! through the cost-counting relay) and, for ours, every key of the batch from the memory layer
//! (one `tower.get_layers()[0].delete(key)` each): 900 keys are found in Redis, 100 are loaded.
//!
//! The timed tower runs with its Redis layer's invalidation listener on (the default): on a
//! report of a change of a key this process wrote in the last second, it re-reads the key (one
//! `MGET` per report, off the caller's thread). The cost table therefore counts ours twice: as
//! timed, and with the listener off, which is the `get_or_set_many` call alone and what the
//! round-trip bar is held to; both are shown. Each contender is counted with only its own
//! clients alive, so no other tower's listener is counted against it.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_tower::adapter::EvictionPolicy;

use super::caches::BOUND;
use super::cluster_support;
use super::redis_support::{self, BackfillClients, COUNTED_OPS, Counter, Failures, RAW, Raw, WRITE_TTL};
use super::{BoxResult, Scenario, measure_micros_per_op, versus};
use crate::data::{Dataset, User};
use crate::harness::{Contender, Settings};
use crate::report::{Outcome, Trips};
use crate::services::{Redis, Services};

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "redis/get-or-set-many", run };

/// Keys per operation.
const BATCH: usize = 1_000;

/// Every `MISSING_EVERY`-th key of a batch is deleted from Redis before each operation.
const MISSING_EVERY: usize = 10;

/// Keys per batch that no layer has: the loader's share.
const MISSING: usize = BATCH / MISSING_EVERY;

/// The bar: ours / the hand-written `MGET` + loader + pipelined `SET`s.
const BAR: f64 = 1.2;

/// The bar of Redis round trips per operation of ours.
const ROUND_TRIPS_BAR: f64 = 2.0;

/// Longer than the invalidation listener takes to notice its tower was dropped.
const LISTENER_STOP: Duration = Duration::from_millis(500);

/// The loader of both contenders, with counts of how it was called.
struct Loader<'a> {
    data: &'a Dataset,
    /// Calls since the current operation's setup.
    calls_this_op: AtomicU64,
    /// Operations begun.
    ops: AtomicU64,
    /// Calls in all.
    calls: AtomicU64,
    /// Operations that called it other than once.
    wrong_call_ops: AtomicU64,
    /// Calls with other than [`MISSING`] keys.
    wrong_size_calls: AtomicU64,
    /// Keys asked for that are not in the dataset.
    unknown_keys: AtomicU64,
}

impl<'a> Loader<'a> {
    fn new(data: &'a Dataset) -> Self {
        Self {
            data,
            calls_this_op: AtomicU64::new(0),
            ops: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            wrong_call_ops: AtomicU64::new(0),
            wrong_size_calls: AtomicU64::new(0),
            unknown_keys: AtomicU64::new(0),
        }
    }

    /// The users of `missing`, from the dataset (no I/O), each key borrowed from it.
    fn load(&self, missing: &[&str]) -> Vec<(&'a str, User)> {
        self.calls_this_op.fetch_add(1, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        if missing.len() != MISSING {
            self.wrong_size_calls.fetch_add(1, Ordering::Relaxed);
        }
        let (keys, users) = (&self.data.keys, &self.data.users);
        missing
            .iter()
            .filter_map(|&key| {
                let n = key.strip_prefix("user:").and_then(|n| n.parse::<usize>().ok()).filter(|&n| {
                    // `user:007` parses but is not a key of the dataset.
                    keys.get(n).is_some_and(|known| known == key)
                });
                if n.is_none() {
                    self.unknown_keys.fetch_add(1, Ordering::Relaxed);
                }
                n.map(|n| (keys[n].as_str(), users[n].clone()))
            })
            .collect()
    }

    /// Called by each operation's setup: checks that the previous operation called the loader
    /// exactly once, and starts counting the next one's calls.
    fn begin_op(&self) {
        self.finish_op();
        self.ops.fetch_add(1, Ordering::Relaxed);
    }

    /// Checks the current operation's calls (if one was begun) and resets them.
    fn finish_op(&self) {
        let calls = self.calls_this_op.swap(0, Ordering::Relaxed);
        if self.ops.load(Ordering::Relaxed) > 0 && calls != 1 {
            self.wrong_call_ops.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// After the last operation: whether every operation called the loader exactly once, with
    /// exactly [`MISSING`] keys of the dataset; with a warning note when not.
    fn report(&self, name: &str, notes: &mut Vec<String>) -> bool {
        self.finish_op();
        let (ops, calls) = (self.ops.load(Ordering::Relaxed), self.calls.load(Ordering::Relaxed));
        let wrong_ops = self.wrong_call_ops.load(Ordering::Relaxed);
        let wrong_sizes = self.wrong_size_calls.load(Ordering::Relaxed);
        let unknown = self.unknown_keys.load(Ordering::Relaxed);
        if wrong_ops == 0 && wrong_sizes == 0 && unknown == 0 && ops > 0 {
            return true;
        }
        let note = format!(
            "warning: {}, {name}: the loader was called {calls} times over {ops} operations; {wrong_ops} \
             operations called it other than once, {wrong_sizes} calls had other than {MISSING} keys, {unknown} \
             keys were not the dataset's; its figures include them",
            SCENARIO.id
        );
        eprintln!("  {note}");
        notes.push(note);
        false
    }
}

/// This scenario's clients: the tower and the raw connection (through the relay when costs are
/// counted), a connection of the setup's own straight to the server, a loader per contender.
struct Clients<'a> {
    backfill: BackfillClients,
    /// Whether the tower's Redis layer runs its invalidation listener (the default; off only in
    /// a cost count of the call alone).
    invalidation: bool,
    /// The per-op setup's connection: never through the relay, so that its `UNLINK` is not
    /// counted as a round trip of the contender.
    setup: Raw,
    setup_failures: Failures,
    ours: Loader<'a>,
    raw: Loader<'a>,
}

impl<'a> Clients<'a> {
    /// The contenders' clients on `url`, the setup's on `direct_url`; the tower's Redis layer
    /// with the TTL [`WRITE_TTL`] and its invalidation listener on or off.
    fn new(url: &str, direct_url: &str, data: &'a Dataset, invalidation: bool) -> BoxResult<Self> {
        let redis = redis_support::redis_layer_with(url, Some(WRITE_TTL), invalidation)?;
        Ok(Self {
            backfill: BackfillClients::with_redis(url, BOUND, EvictionPolicy::S3Fifo, redis)?,
            invalidation,
            setup: redis_support::raw(direct_url)?,
            setup_failures: Failures::default(),
            ours: Loader::new(data),
            raw: Loader::new(data),
        })
    }

    /// One `UNLINK` of `keys` on the setup's connection; a reply other than `keys.len()` (a key
    /// that was not there: the previous operation did not write it back) is counted.
    fn unlink(&self, keys: &[&str]) {
        let reply = redis::cmd("UNLINK").arg(keys).query::<usize>(&mut *redis_support::lock(&self.setup));
        if self.setup_failures.check(reply).is_some_and(|unlinked| unlinked != keys.len()) {
            self.setup_failures.add();
        }
    }

    /// The hand-written equivalent of `get_or_set_many` without a memory layer: `MGET` of
    /// `batch`, a decode of each value found, one call of `loader` with the keys Redis did not
    /// have, one pipeline of `SET key json PX ttl` for each loaded value, and every value in
    /// request order (an error or an undecodable value is counted).
    fn raw_get_or_set_many(&self, batch: &[&'a str], loader: &Loader<'a>) -> Vec<User> {
        let failures = &self.backfill.failures;
        let mut con = redis_support::lock(&self.backfill.raw);
        let reply = redis::cmd("MGET").arg(batch).query::<Vec<Option<Vec<u8>>>>(&mut *con);
        let mut values: Vec<Option<User>> = failures
            .check(reply)
            .unwrap_or_default()
            .into_iter()
            .map(|json| json.and_then(|json| failures.decode(&json)))
            .collect();
        if values.len() != batch.len() {
            failures.add();
            values.resize(batch.len(), None);
        }
        let missing: Vec<usize> =
            values.iter().enumerate().filter(|(_, value)| value.is_none()).map(|(at, _)| at).collect();
        if !missing.is_empty() {
            let keys: Vec<&str> = missing.iter().map(|&at| batch[at]).collect();
            let mut loaded: HashMap<&str, User> = loader.load(&keys).into_iter().collect();
            let ttl_ms = WRITE_TTL.as_millis() as u64;
            let mut pipe = redis::pipe();
            for (&key, user) in &loaded {
                match serde_json::to_vec(user) {
                    Ok(json) => {
                        pipe.cmd("SET").arg(key).arg(json).arg("PX").arg(ttl_ms).ignore();
                    }
                    Err(_) => failures.add(),
                }
            }
            failures.check(pipe.query::<()>(&mut *con));
            for at in missing {
                values[at] = loaded.remove(batch[at]);
            }
        }
        values.into_iter().flatten().collect()
    }
}

/// The contenders. `batches[j]` holds a batch's keys, `missing[j]` every tenth of them.
fn contenders<'a>(
    clients: &'a Clients<'a>,
    batches: &'a [Vec<&'a str>],
    missing: &'a [Vec<&'a str>],
) -> Vec<Contender<'a>> {
    let batch = move |i: usize| batches[i % batches.len()].as_slice();
    let missing = move |i: usize| missing[i % missing.len()].as_slice();
    let failures = &clients.backfill.failures;
    let listener = if clients.invalidation { "" } else { ", invalidation listener off (the call alone)" };
    vec![
        Contender::per_op_with_setup(
            format!("cache-tower `get_or_set_many` of {BATCH}, {MISSING} missing, memory miss, Redis TTL{listener}"),
            move |i| {
                clients.ours.begin_op();
                for key in batch(i) {
                    if clients.backfill.memory.delete(key).is_err() {
                        failures.add();
                    }
                }
                clients.unlink(missing(i));
            },
            move |i| {
                let values = clients
                    .backfill
                    .tower
                    .get_or_set_many::<User, _, _, _, _>(batch(i), |keys| clients.ours.load(keys));
                if values.len() != BATCH {
                    failures.add();
                }
                black_box(values);
            },
        ),
        Contender::per_op_with_setup(
            format!("{RAW} `MGET` of {BATCH} + decode + loader + pipeline of `SET .. PX` each loaded"),
            move |i| {
                clients.raw.begin_op();
                clients.unlink(missing(i));
            },
            move |i| {
                let values = clients.raw_get_or_set_many(batch(i), &clients.raw);
                if values.len() != BATCH {
                    failures.add();
                }
                black_box(values);
            },
        ),
    ]
}

/// What the per-op setup alone costs the server (its `UNLINK`, which the server counts with the
/// contenders' commands), counted like a contender.
fn setup_alone<'a>(clients: &'a Clients<'a>, missing: &'a [Vec<&'a str>]) -> Contender<'a> {
    Contender::per_op(
        format!(
            "the per-op setup alone (untimed): `UNLINK` of {MISSING} keys, not through the relay (keys already \
             gone: its server CPU is a lower bound)"
        ),
        move |i| {
            let keys = missing[i % missing.len()].as_slice();
            // The keys are gone after a first pass: only the command's cost matters here.
            black_box(redis::cmd("UNLINK").arg(keys).query::<usize>(&mut *redis_support::lock(&clients.setup)).ok());
        },
    )
}

/// The verdict of the round-trip bar on counted round trips per operation.
fn round_trips_verdict(trips: &Trips) -> String {
    match trips.round_trips {
        Some(n) if n <= ROUND_TRIPS_BAR => format!("{n:.2} round trips/op, met"),
        Some(n) => format!("{n:.2} round trips/op, MISSED"),
        None => "not counted (no relay)".to_string(),
    }
}

/// The cost counts: ours (listener on, as timed), ours with the listener off (the call alone),
/// raw, and the setup alone; ours' rows marked with the round-trip bar. Each contender is counted
/// with only its own clients alive: a tower's invalidation listener re-reads the keys it wrote
/// lately when someone else changes them (the setup's `UNLINK`, the raw contender's `SET`s),
/// which would be counted against whichever contender runs at the time.
fn count(
    redis: &Redis,
    data: &Dataset,
    batches: &[Vec<&str>],
    missing: &[Vec<&str>],
    notes: &mut Vec<String>,
) -> BoxResult<Vec<Trips>> {
    let mut counter = Counter::new(redis, true)?;
    let indices = redis_support::indices(data, COUNTED_OPS);
    let mut trips = Vec::new();
    for invalidation in [true, false] {
        let counted = Clients::new(counter.url(), &redis.url, data, invalidation)?;
        let mut ours = counter.count(SCENARIO.id, &contenders(&counted, batches, missing)[0], indices)?;
        ours.contender =
            format!("{} (bar ≤ {ROUND_TRIPS_BAR:.0} round trips/op: {})", ours.contender, round_trips_verdict(&ours));
        trips.push(ours);
        counted
            .ours
            .report(&format!("ours (cost count, invalidation {})", if invalidation { "on" } else { "off" }), notes);
        counted.backfill.failures.report(&format!("{} (cost count)", SCENARIO.id), notes);
        counted.setup_failures.report(&format!("{} per-op setup (`UNLINK`, cost count)", SCENARIO.id), notes);
        drop(counted);
        // Let the dropped tower's listener see its stop flag (it looks every `HEALTH_CHECK`, 250
        // ms) before the next count starts.
        std::thread::sleep(LISTENER_STOP);
    }
    // The raw contender's clients hold an idle tower: its listener off, it sends nothing.
    let counted = Clients::new(counter.url(), &redis.url, data, false)?;
    trips.push(counter.count(SCENARIO.id, &contenders(&counted, batches, missing)[1], indices)?);
    trips.push(counter.count(SCENARIO.id, &setup_alone(&counted, missing), indices)?);
    counted.raw.report("raw (cost count)", notes);
    counted.backfill.failures.report(&format!("{RAW} (cost count)"), notes);

    let (with_listener, call) = (&trips[0], &trips[1]);
    let in_all = match (with_listener.round_trips, call.round_trips) {
        (Some(all), Some(call)) => {
            let over = if all <= ROUND_TRIPS_BAR { "within the bar" } else { "over the bar" };
            format!("{all:.2} round trips/op in all ({over}), {:.2} more than the call", all - call)
        }
        _ => "round trips not counted (no relay)".to_string(),
    };
    notes.push(format!(
        "{}: one `get_or_set_many` call (counted with the Redis layer's invalidation listener off: the call \
         alone): {} against the bar of ≤ {ROUND_TRIPS_BAR:.0} Redis round trips. With the listener on (the \
         default, and the timed tower): {in_all}; the listener re-reads (one `MGET`, off the caller's thread) \
         the keys this process wrote in the last second when their change is reported: its own `EVALSHA` of the \
         loaded keys, and here the setup's `UNLINK` of keys it wrote moments before.",
        SCENARIO.id,
        round_trips_verdict(call),
    ));
    Ok(trips)
}

fn run(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let redis = match services.redis() {
        Ok(redis) => redis,
        Err(reason) => return Ok(redis_support::skipped(SCENARIO.id, reason)),
    };
    redis_support::fill(&redis.url, data)?;
    let batches: Vec<Vec<&str>> = redis_support::key_batches(data, BATCH);
    let missing: Vec<Vec<&str>> =
        batches.iter().map(|batch| batch.iter().step_by(MISSING_EVERY).copied().collect()).collect();
    let mut notes = Vec::new();

    let clients = Clients::new(&redis.url, &redis.url, data, true)?;
    let timed = contenders(&clients, &batches, &missing);
    // As `redis/mget-backfill` divides the sample: by a tenth of the batch size.
    let indices = redis_support::indices(data, redis_support::ops(settings, BATCH / 10));
    let measured = measure_micros_per_op(&timed, indices, settings);
    redis_support::check_tower("cache-tower `get_or_set_many`", &clients.backfill.tower, false, &mut notes);
    let stats = clients.backfill.tower.stats();
    if stats[0].hits > 0 {
        let note =
            format!("warning: {}: {} reads hit the memory layer; they should all miss it", SCENARIO.id, stats[0].hits);
        eprintln!("  {note}");
        notes.push(note);
    }
    let loader_ok = clients.ours.report("ours", &mut notes);
    clients.raw.report("raw", &mut notes);
    clients.backfill.failures.report(SCENARIO.id, &mut notes);
    clients.setup_failures.report(&format!("{} per-op setup (`UNLINK`)", SCENARIO.id), &mut notes);
    // Its listener would react to the counted contenders' writes (see `count`).
    drop(timed);
    drop(clients);
    std::thread::sleep(LISTENER_STOP);

    let trips = count(redis, data, &batches, &missing, &mut notes)?;

    notes.push(format!(
        "{}: ours {} the loader once per operation with the {MISSING} missing keys (the bar: one loader call)",
        SCENARIO.id,
        if loader_ok { "called" } else { "did NOT always call" }
    ));
    notes.push(cluster_support::bar_note(SCENARIO.id, &measured[0], &measured[1], BAR));
    notes.push(format!(
        "{}: batches of {BATCH} distinct keys; before each operation, outside the timed region (the clock is read \
         around each operation, for every contender), every tenth key of the batch is deleted from Redis (one \
         `UNLINK` of {MISSING} keys, on a connection of its own that bypasses the relay; the server still counts \
         it, see the setup's own row in the cost table) and, for ours, every key of the batch from the memory \
         layer (S3-FIFO, bound {BOUND} entries). Ours reads the values and their TTLs in one round trip (`MGET` \
         and a `PTTL` per key, pipelined), backfills the memory layer, calls the loader once, and writes the \
         loaded values to memory and to Redis (one `EVALSHA` of `SET .. PX {}` each); the raw contender reads no \
         TTL and writes with a pipeline of `SET .. PX` (not atomic). Ours is timed with its Redis layer's \
         invalidation listener on (the default): its re-reads of keys it wrote lately run on the listener's \
         thread while the operations are timed. The loader clones the missing `User`s from \
         the dataset (no I/O), the same function for both; ours returns an `IndexMap` of owned keys, the raw \
         contender a `Vec` of the values in request order.",
        SCENARIO.id,
        WRITE_TTL.as_millis()
    ));

    let rows = versus(
        &format!(
            "Redis get_or_set_many of {BATCH} keys, {MISSING} missing, memory miss, 1 thread, memory bound {BOUND} \
             entries (µs/op, lower is better)"
        ),
        &measured[0],
        &measured[1..],
    );
    Ok(Outcome { rows, notes, trips, ..Outcome::default() })
}
