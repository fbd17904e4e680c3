//! `mget` of 100 present keys from Redis on one thread: a Redis-only tower (one `MGET`, then a
//! JSON decode per value, into an `IndexMap` of every requested key, in request order) against the raw redis-rs
//! client doing `MGET` of the same keys and `serde_json::from_slice::<User>` of each value.

use std::hint::black_box;

use super::redis_support::{self, COUNTED_OPS, Clients, Counter, RAW};
use super::{BoxResult, Scenario, measure_micros_per_op, versus};
use crate::data::{Dataset, User};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "redis/mget-100", run };

/// Keys per `mget`.
const BATCH: usize = 100;

/// Operation `i` reads batch `i % batches.len()`: 100 distinct keys.
fn contenders<'a>(clients: &'a Clients, batches: &'a [Vec<&'a str>]) -> Vec<Contender<'a>> {
    vec![
        Contender::per_op(format!("cache-tower `mget` of {BATCH} (Redis-only tower)"), move |i| {
            let batch = &batches[i % batches.len()];
            black_box(clients.tower.mget::<User, _>(batch));
        }),
        Contender::per_op(format!("{RAW} `MGET` of {BATCH} + decode each"), move |i| {
            let batch = &batches[i % batches.len()];
            let reply = redis::cmd("MGET")
                .arg(batch.as_slice())
                .query::<Vec<Option<Vec<u8>>>>(&mut *redis_support::lock(&clients.raw));
            let users: Vec<Option<User>> = clients
                .failures
                .check(reply)
                .unwrap_or_default()
                .into_iter()
                .map(|json| clients.failures.found(Ok(json)).and_then(|json| clients.failures.decode(&json)))
                .collect();
            black_box(users);
        }),
    ]
}

fn run(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let redis = match services.redis() {
        Ok(redis) => redis,
        Err(reason) => return Ok(redis_support::skipped(SCENARIO.id, reason)),
    };
    redis_support::fill(&redis.url, data)?;
    let batches: Vec<Vec<&str>> = redis_support::key_batches(data, BATCH);
    let mut notes = Vec::new();

    let clients = Clients::redis_only(&redis.url, None)?;
    let timed = contenders(&clients, &batches);
    let indices = redis_support::indices(data, redis_support::ops(settings, 10));
    let measured = measure_micros_per_op(&timed, indices, settings);
    redis_support::check_tower("cache-tower `mget`", &clients.tower, true, &mut notes);
    clients.failures.report(RAW, &mut notes);

    let mut counter = Counter::new(redis, true)?;
    let counted = Clients::redis_only(counter.url(), None)?;
    let trips =
        counter.count_all(SCENARIO.id, &contenders(&counted, &batches), redis_support::indices(data, COUNTED_OPS))?;

    let rows =
        versus(&format!("Redis mget of {BATCH} keys, 1 thread (µs/op, lower is better)"), &measured[0], &measured[1..]);
    Ok(Outcome { rows, notes, trips, ..Outcome::default() })
}
