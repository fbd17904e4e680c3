//! `mget` of N keys that miss the memory layer and are all in Redis, on one thread, for N = 10
//! and N = 1,000 (one scenario, a row pair per N): a memory-over-Redis tower (its memory layer
//! S3-FIFO, bounded to [`BOUND`] entries, which holds every user; one round trip of `MGET` and
//! a `PTTL` per key, a JSON decode per value, then a backfill of the memory layer with each
//! value and its TTL) against two raw redis-rs baselines:
//!
//! * `MGET` of the N keys and `serde_json::from_slice::<User>` of each value: the bar;
//! * what a hand-rolled two-level cache does: the same `MGET` and decodes, and an insert of a
//!   clone of each value into a bounded local map (a quick_cache `sync::Cache` of [`BOUND`]
//!   entries). It reads no TTL;
//! * a pipeline of `MGET` and a `PTTL` per key (one round trip, the commands ours sends) and a
//!   decode of each value: what reading the TTLs costs, apart from the tower.
//!
//! Operation `i` reads batch `i % batches`: distinct keys, every user in one batch of each size.
//! Before each operation the batch's keys are deleted from the memory layer (one
//! `tower.get_layers()[0].delete(key)` each, and from the hand-rolled cache's local map),
//! outside the timed region: the harness reads the clock around each operation of this
//! scenario, for every contender alike.

use std::hint::black_box;

use cache_tower::adapter::EvictionPolicy;

use super::caches::{BOUND, QUICK_CACHE};
use super::redis_support::{self, COUNTED_OPS, Counter, RAW};
use super::{BoxResult, Scenario, measure_micros_per_op, versus};
use crate::data::{Dataset, User};
use crate::harness::{Contender, Settings};
use crate::report::{Outcome, Row, Trips};
use crate::services::{Redis, Services};

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "redis/mget-backfill", run };

/// Keys per `mget`, one row pair each.
const BATCHES: [usize; 2] = [10, 1_000];

/// This scenario's clients.
type Clients = redis_support::BackfillClients;

impl Clients {
    /// `MGET` of `batch` and a decode of each value (a missing or undecodable one is counted).
    fn raw_mget(&self, batch: &[&str]) -> Vec<Option<User>> {
        let reply = redis::cmd("MGET").arg(batch).query::<Vec<Option<Vec<u8>>>>(&mut *redis_support::lock(&self.raw));
        self.failures
            .check(reply)
            .unwrap_or_default()
            .into_iter()
            .map(|json| self.failures.found(Ok(json)).and_then(|json| self.failures.decode(&json)))
            .collect()
    }

    /// `MGET` of `batch` and a `PTTL` of each key, pipelined, and a decode of each value with its
    /// TTL in milliseconds (a missing or undecodable value, or a reply of the wrong shape, is
    /// counted).
    fn raw_mget_with_ttls(&self, batch: &[&str]) -> Vec<Option<(User, i64)>> {
        let mut pipe = redis::pipe();
        pipe.cmd("MGET").arg(batch);
        for &key in batch {
            pipe.cmd("PTTL").arg(key);
        }
        let reply = pipe.query::<Vec<redis::Value>>(&mut *redis_support::lock(&self.raw));
        let mut replies = self.failures.check(reply).unwrap_or_default().into_iter();
        let values: Vec<Option<Vec<u8>>> = match replies.next().map(redis::from_redis_value) {
            Some(Ok(values)) => values,
            _ => Vec::new(),
        };
        if values.len() != batch.len() {
            self.failures.add();
        }
        values
            .into_iter()
            .zip(replies)
            .map(|(json, pttl)| {
                let user = self.failures.found(Ok(json)).and_then(|json| self.failures.decode::<User>(&json))?;
                let pttl = redis::from_redis_value::<i64>(pttl).ok();
                if pttl.is_none() {
                    self.failures.add();
                }
                Some((user, pttl?))
            })
            .collect()
    }
}

/// The contenders for batches of `batches[0].len()` keys.
fn contenders<'a>(clients: &'a Clients, batches: &'a [Vec<&'a str>]) -> Vec<Contender<'a>> {
    let size = batches[0].len();
    let batch = move |i: usize| batches[i % batches.len()].as_slice();
    vec![
        Contender::per_op_with_setup(
            format!("cache-tower `mget` of {size}, memory miss, Redis hit, backfill"),
            move |i| {
                for key in batch(i) {
                    if clients.memory.delete(key).is_err() {
                        clients.failures.add();
                    }
                }
            },
            move |i| {
                black_box(clients.tower.mget::<User, _>(batch(i)));
            },
        ),
        Contender::per_op_with_setup(
            format!("{RAW} `MGET` of {size} + decode each"),
            |_| {},
            move |i| {
                black_box(clients.raw_mget(batch(i)));
            },
        ),
        Contender::per_op_with_setup(
            format!(
                "hand-rolled two-level: {RAW} `MGET` of {size} + decode + {QUICK_CACHE} `insert` each (bound {BOUND})"
            ),
            move |i| {
                for &key in batch(i) {
                    clients.local.remove(key);
                }
            },
            move |i| {
                let keys = batch(i);
                let users = clients.raw_mget(keys);
                for (&key, user) in keys.iter().zip(&users) {
                    if let Some(user) = user {
                        clients.local.insert(key.to_owned(), user.clone());
                    }
                }
                black_box(users);
            },
        ),
        Contender::per_op_with_setup(
            format!("{RAW} pipeline `MGET` of {size} + a `PTTL` each + decode each"),
            |_| {},
            move |i| {
                black_box(clients.raw_mget_with_ttls(batch(i)));
            },
        ),
    ]
}

/// The rows, notes and costs of batches of `size` keys.
fn run_batch(
    size: usize,
    data: &Dataset,
    settings: &Settings,
    redis: &Redis,
    notes: &mut Vec<String>,
) -> BoxResult<(Vec<Row>, Vec<Trips>)> {
    eprintln!("  batches of {size}:");
    let batches: Vec<Vec<&str>> = redis_support::key_batches(data, size);

    let clients = Clients::new(&redis.url, BOUND, EvictionPolicy::S3Fifo)?;
    let timed = contenders(&clients, &batches);
    // As `redis/mget-100` divides the sample by 10: by a tenth of the batch size.
    let indices = redis_support::indices(data, redis_support::ops(settings, size / 10));
    let measured = measure_micros_per_op(&timed, indices, settings);
    redis_support::check_tower(&format!("cache-tower `mget` of {size} with backfill"), &clients.tower, true, notes);
    let stats = clients.tower.stats();
    if stats[0].hits > 0 {
        let note = format!(
            "warning: {} of {size}: {} reads hit the memory layer; they should all miss it",
            SCENARIO.id, stats[0].hits
        );
        eprintln!("  {note}");
        notes.push(note);
    }
    let backfilled = batches[0].iter().filter(|key| clients.memory.exists(key).unwrap_or(false)).count();
    if backfilled != size {
        let note = format!("warning: {} of {size}: {backfilled} of a batch's {size} keys were backfilled", SCENARIO.id);
        eprintln!("  {note}");
        notes.push(note);
    }
    clients.failures.report(&format!("{RAW} (batches of {size})"), notes);

    let mut counter = Counter::new(redis, true)?;
    let counted = Clients::new(counter.url(), BOUND, EvictionPolicy::S3Fifo)?;
    let trips =
        counter.count_all(SCENARIO.id, &contenders(&counted, &batches), redis_support::indices(data, COUNTED_OPS))?;

    let rows = versus(
        &format!(
            "Redis mget of {size} keys, memory miss + backfill, 1 thread, memory bound {BOUND} entries (µs/op, lower \
             is better)"
        ),
        &measured[0],
        &measured[1..],
    );
    Ok((rows, trips))
}

fn run(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let redis = match services.redis() {
        Ok(redis) => redis,
        Err(reason) => return Ok(redis_support::skipped(SCENARIO.id, reason)),
    };
    redis_support::fill(&redis.url, data)?;
    let (mut notes, mut rows, mut trips) = (Vec::new(), Vec::new(), Vec::new());
    for size in BATCHES {
        let (batch_rows, batch_trips) = run_batch(size, data, settings, redis, &mut notes)?;
        rows.extend(batch_rows);
        trips.extend(batch_trips);
    }
    notes.push(format!(
        "{}: batches of {:?} distinct keys; each batch's keys are deleted from the memory layer (S3-FIFO, bound \
         {BOUND} entries) before each of our reads, and from the hand-rolled cache's local map before each of its \
         reads, outside the timed region (the clock is read around each operation, for every contender). Ours \
         reads the values and their TTLs in one round trip (`MGET` and a `PTTL` per key, pipelined), as the raw \
         pipeline contender does; the other raw contenders read no TTL.",
        SCENARIO.id, BATCHES
    ));
    Ok(Outcome { rows, notes, trips, ..Outcome::default() })
}
