//! `get` of a present key from Redis on one thread: a tower whose only layer is Redis (the
//! top-layer path: one plain `GET`, then a JSON decode) against the raw redis-rs client doing
//! `GET` and `serde_json::from_slice::<User>`.

use std::hint::black_box;

use super::redis_support::{self, COUNTED_OPS, Clients, Counter, RAW};
use super::{BoxResult, Scenario, measure_micros_per_op, versus};
use crate::data::{Dataset, User};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "redis/get-hit", run };

fn contenders<'a>(clients: &'a Clients, data: &'a Dataset) -> Vec<Contender<'a>> {
    let keys = &data.keys;
    vec![
        Contender::per_op("cache-tower `get` (Redis-only tower)", move |i| {
            black_box(clients.tower.get::<User>(&keys[i]));
        }),
        Contender::per_op(format!("{RAW} `GET` + `serde_json::from_slice`"), move |i| {
            let reply = redis::cmd("GET")
                .arg(keys[i].as_str())
                .query::<Option<Vec<u8>>>(&mut *redis_support::lock(&clients.raw));
            let json = clients.failures.found(reply);
            black_box(json.and_then(|json| clients.failures.decode::<User>(&json)));
        }),
    ]
}

fn run(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let redis = match services.redis() {
        Ok(redis) => redis,
        Err(reason) => return Ok(redis_support::skipped(SCENARIO.id, reason)),
    };
    redis_support::fill(&redis.url, data)?;
    let mut notes = Vec::new();

    let clients = Clients::redis_only(&redis.url, None)?;
    let timed = contenders(&clients, data);
    let measured =
        measure_micros_per_op(&timed, redis_support::indices(data, redis_support::ops(settings, 1)), settings);
    redis_support::check_tower("cache-tower `get`", &clients.tower, true, &mut notes);
    clients.failures.report(RAW, &mut notes);

    let mut counter = Counter::new(redis, true)?;
    let counted = Clients::redis_only(counter.url(), None)?;
    let trips =
        counter.count_all(SCENARIO.id, &contenders(&counted, data), redis_support::indices(data, COUNTED_OPS))?;

    let rows = versus("Redis get hit, 1 thread (µs/op, lower is better)", &measured[0], &measured[1..]);
    Ok(Outcome { rows, notes, trips, ..Outcome::default() })
}
