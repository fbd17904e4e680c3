//! `get` that misses the memory layer and finds the key in Redis, on one thread: a memory-over-
//! Redis tower (its memory layer FIFO, bounded to [`BOUND`] entries; one round trip of `GET` and
//! `PTTL`, reading the value and its remaining TTL, a JSON decode, then a backfill of the memory
//! layer)
//! against two raw redis-rs baselines:
//!
//! * a pipeline of `GET` and `PTTL` (one round trip) and a decode: what reading the TTL costs;
//! * what a hand-rolled two-level cache does: a plain `GET`, a decode, and an insert of a clone
//!   into a bounded local map (a quick_cache `sync::Cache` of [`BOUND`] entries), the value
//!   returned.
//!
//! Before each operation the key is deleted from the memory layer (through
//! `tower.get_layers()[0].delete(key)`, and from the hand-rolled cache's local map), outside the
//! timed region: the harness reads the clock around each operation of this scenario, for every
//! contender alike.

use std::hint::black_box;

use cache_tower::adapter::EvictionPolicy;

use super::caches::{BOUND, QUICK_CACHE};
use super::redis_support::{self, COUNTED_OPS, Counter, RAW};
use super::{BoxResult, Scenario, measure_micros_per_op, versus};
use crate::data::{Dataset, User};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "redis/get-backfill", run };

/// This scenario's clients.
type Clients = redis_support::BackfillClients;

fn contenders<'a>(clients: &'a Clients, data: &'a Dataset) -> Vec<Contender<'a>> {
    let keys = &data.keys;
    vec![
        Contender::per_op_with_setup(
            "cache-tower `get`, memory miss, Redis hit, backfill",
            move |i| {
                if clients.memory.delete(&keys[i]).is_err() {
                    clients.failures.add();
                }
            },
            move |i| {
                black_box(clients.tower.get::<User>(&keys[i]));
            },
        ),
        Contender::per_op_with_setup(
            format!("{RAW} pipeline `GET` + `PTTL` + decode"),
            |_| {},
            move |i| {
                let key = keys[i].as_str();
                let reply = redis::pipe()
                    .cmd("GET")
                    .arg(key)
                    .cmd("PTTL")
                    .arg(key)
                    .query::<(Option<Vec<u8>>, i64)>(&mut *redis_support::lock(&clients.raw));
                let json = clients.failures.found(reply.map(|(json, pttl)| json.map(|json| (json, pttl))));
                black_box(json.and_then(|(json, pttl)| Some((clients.failures.decode::<User>(&json)?, pttl))));
            },
        ),
        Contender::per_op_with_setup(
            format!("hand-rolled two-level: {RAW} `GET` + decode + {QUICK_CACHE} `insert` (bound {BOUND})"),
            move |i| {
                clients.local.remove(keys[i].as_str());
            },
            move |i| {
                let key = keys[i].as_str();
                let reply =
                    redis::cmd("GET").arg(key).query::<Option<Vec<u8>>>(&mut *redis_support::lock(&clients.raw));
                let user = clients.failures.found(reply).and_then(|json| clients.failures.decode::<User>(&json));
                if let Some(user) = &user {
                    clients.local.insert(key.to_owned(), user.clone());
                }
                black_box(user);
            },
        ),
    ]
}

fn run(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let redis = match services.redis() {
        Ok(redis) => redis,
        Err(reason) => return Ok(redis_support::skipped(SCENARIO.id, reason)),
    };
    redis_support::fill(&redis.url, data)?;
    let mut notes = Vec::new();

    let clients = Clients::new(&redis.url, BOUND, EvictionPolicy::Fifo)?;
    let timed = contenders(&clients, data);
    let measured =
        measure_micros_per_op(&timed, redis_support::indices(data, redis_support::ops(settings, 1)), settings);
    redis_support::check_tower("cache-tower `get` with backfill", &clients.tower, true, &mut notes);
    let stats = clients.tower.stats();
    if stats[0].hits > 0 {
        let note = format!(
            "warning: redis/get-backfill: {} reads hit the memory layer; they should all miss it",
            stats[0].hits
        );
        eprintln!("  {note}");
        notes.push(note);
    }
    clients.failures.report(RAW, &mut notes);
    notes.push(format!(
        "redis/get-backfill: the key is deleted from the memory layer (bound {BOUND} entries) before each of our \
         reads, and from the hand-rolled cache's local map before each of its reads, outside the timed region (the \
         clock is read around each operation, for every contender). Ours reads the value and its TTL in one \
         `EVALSHA`; the hand-rolled cache reads no TTL (a plain `GET`)."
    ));

    let mut counter = Counter::new(redis, true)?;
    let counted = Clients::new(counter.url(), BOUND, EvictionPolicy::Fifo)?;
    let trips =
        counter.count_all(SCENARIO.id, &contenders(&counted, data), redis_support::indices(data, COUNTED_OPS))?;

    let rows = versus(
        &format!("Redis get, memory miss + backfill, 1 thread, memory bound {BOUND} entries (µs/op, lower is better)"),
        &measured[0],
        &measured[1..],
    );
    Ok(Outcome { rows, notes, trips, ..Outcome::default() })
}
