//! `get` that misses the memory layer and finds the key in Redis, on one thread: a memory-over-
//! Redis tower (one Lua script call, `EVALSHA`, reading the value and its remaining TTL, a JSON
//! decode, then a backfill of the memory layer) against the raw redis-rs client sending `GET`
//! and `PTTL` in one pipeline (one round trip) and decoding the value.
//!
//! Before each of our operations the key is deleted from the memory layer (through
//! `tower.get_layers()[0].delete(key)`), outside the timed region: the harness reads the clock
//! around each operation of this scenario, for both contenders alike.

use std::hint::black_box;
use std::sync::Arc;

use cache_tower::{CacheAdapter, CacheTower};

use super::redis_support::{self, COUNTED_OPS, Counter, Failures, RAW, Raw};
use super::{BoxResult, Scenario, measure_micros_per_op, versus};
use crate::data::{Dataset, User};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "redis/get-backfill", run };

struct Clients {
    tower: CacheTower,
    /// The tower's memory layer, to delete from before each read.
    memory: Arc<dyn CacheAdapter>,
    raw: Raw,
    failures: Failures,
}

impl Clients {
    fn new(url: &str) -> BoxResult<Self> {
        let tower = redis_support::memory_over_redis(url)?;
        let memory = Arc::clone(&tower.get_layers()[0]);
        Ok(Self { tower, memory, raw: redis_support::raw(url)?, failures: Failures::default() })
    }
}

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
                black_box(clients.tower.get::<User>(&keys[i]).ok());
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
    ]
}

fn run(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let redis = match services.redis() {
        Ok(redis) => redis,
        Err(reason) => return Ok(redis_support::skipped(SCENARIO.id, reason)),
    };
    redis_support::fill(&redis.url, data)?;
    let mut notes = Vec::new();

    let clients = Clients::new(&redis.url)?;
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
    notes.push(
        "redis/get-backfill: the key is deleted from the memory layer before each of our reads, outside the timed \
         region (the clock is read around each operation, for both contenders)."
            .to_string(),
    );

    let mut counter = Counter::new(redis, true)?;
    let counted = Clients::new(counter.url())?;
    let trips =
        counter.count_all(SCENARIO.id, &contenders(&counted, data), redis_support::indices(data, COUNTED_OPS))?;

    let rows =
        versus("Redis get, memory miss + backfill, 1 thread (µs/op, lower is better)", &measured[0], &measured[1..]);
    Ok(Outcome { rows, notes, trips, ..Outcome::default() })
}
