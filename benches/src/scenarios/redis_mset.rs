//! `mset` of 100 keys into Redis on one thread, each with a TTL: a Redis-only tower whose layer
//! has a TTL (one atomic Lua script call, `EVALSHA`, that runs `SET key value PX ttl` for every
//! key) against the raw redis-rs client sending a pipeline of 100 `SET key value PX ttl` (not
//! atomic), and the same pipeline wrapped in `MULTI`/`EXEC` (atomic, like ours). Every contender
//! encodes each value as JSON; ours also clones each value, because `mset` takes them by value.

use std::hint::black_box;

use cache_tower::CacheTower;

use super::redis_support::{self, COUNTED_OPS, Counter, Failures, RAW, Raw, WRITE_TTL};
use super::{BoxResult, Scenario, measure_micros_per_op, versus};
use crate::data::Dataset;
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "redis/mset-100", run };

/// Keys per `mset`.
const BATCH: usize = 100;

struct Clients {
    tower: CacheTower,
    raw: Raw,
    failures: Failures,
}

impl Clients {
    fn new(url: &str) -> BoxResult<Self> {
        Ok(Self {
            tower: redis_support::redis_only(url, Some(WRITE_TTL))?,
            raw: redis_support::raw(url)?,
            failures: Failures::default(),
        })
    }

    /// 100 `SET key json PX ttl` in one pipeline, atomic (`MULTI`/`EXEC`) or not.
    fn raw_mset(&self, data: &Dataset, batch: &[usize], atomic: bool) {
        let ttl_ms = WRITE_TTL.as_millis() as u64;
        let mut pipe = redis::pipe();
        if atomic {
            pipe.atomic();
        }
        for &n in batch {
            match serde_json::to_vec(&data.users[n]) {
                Ok(json) => {
                    pipe.cmd("SET").arg(data.keys[n].as_str()).arg(json).arg("PX").arg(ttl_ms).ignore();
                }
                Err(_) => return self.failures.add(),
            }
        }
        self.failures.check(pipe.query::<()>(&mut *redis_support::lock(&self.raw)));
    }
}

/// Operation `i` writes batch `i % batches.len()`: 100 distinct keys.
fn contenders<'a>(clients: &'a Clients, data: &'a Dataset, batches: &'a [Vec<usize>]) -> Vec<Contender<'a>> {
    let (keys, users) = (&data.keys, &data.users);
    vec![
        Contender::per_op(format!("cache-tower `mset` of {BATCH} (Redis-only tower, TTL)"), move |i| {
            let batch = &batches[i % batches.len()];
            let items = batch.iter().map(|&n| (keys[n].as_str(), users[n].clone()));
            black_box(clients.tower.mset(items).is_ok());
        }),
        Contender::per_op(format!("{RAW} pipeline of {BATCH} `SET .. PX`"), move |i| {
            clients.raw_mset(data, &batches[i % batches.len()], false);
        }),
        Contender::per_op(format!("{RAW} `MULTI` pipeline of {BATCH} `SET .. PX` `EXEC`"), move |i| {
            clients.raw_mset(data, &batches[i % batches.len()], true);
        }),
        // What `mset` taking values by value costs ours before any I/O.
        Contender::per_op(format!("baseline: cloning {BATCH} `User`s, no I/O"), move |i| {
            let batch = &batches[i % batches.len()];
            black_box(batch.iter().map(|&n| users[n].clone()).collect::<Vec<_>>());
        }),
    ]
}

fn run(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let redis = match services.redis() {
        Ok(redis) => redis,
        Err(reason) => return Ok(redis_support::skipped(SCENARIO.id, reason)),
    };
    let batches = redis_support::batches(BATCH);
    let mut notes = Vec::new();

    let clients = Clients::new(&redis.url)?;
    let timed = contenders(&clients, data, &batches);
    let indices = redis_support::indices(data, redis_support::ops(settings, 10));
    let measured = measure_micros_per_op(&timed, indices, settings);
    redis_support::check_tower("cache-tower `mset`", &clients.tower, false, &mut notes);
    clients.failures.report(RAW, &mut notes);
    notes.push(format!(
        "redis/mset-100: ours is one atomic Lua script call (`EVALSHA`, every key with its TTL from the \
         start); the plain pipeline is not atomic, the `MULTI` one is. Ours clones each value (`mset` takes \
         values by value): cloning {BATCH} `User`s alone costs {} of its figure.",
        measured[3].figure
    ));

    let mut counter = Counter::new(redis, true)?;
    let counted = Clients::new(counter.url())?;
    let counted_contenders = contenders(&counted, data, &batches);
    let trips = counter.count_all(SCENARIO.id, &counted_contenders[..3], redis_support::indices(data, COUNTED_OPS))?;

    let rows = versus(
        &format!("Redis mset of {BATCH} keys with TTL, 1 thread (µs/op, lower is better)"),
        &measured[0],
        &measured[1..3],
    );
    Ok(Outcome { rows, notes, trips, ..Outcome::default() })
}
