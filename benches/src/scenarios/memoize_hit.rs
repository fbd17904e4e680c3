//! A memoized function called with arguments it has seen, on one thread: `#[cached_tower]`
//! against `cached`'s `#[cached]` on the same function and value.
//!
//! * `memoize/hit`: the tower is one unbounded memory layer.
//! * `memoize/hit-over-redis`: the tower is a memory layer over Redis; every call hits the memory
//!   layer, so Redis must see no traffic at all (its costs are counted).
//!
//! Both macros build their key from the argument, an id such as `"42"`: ours with the template
//! `user:{key}` (pieces copied into a key on the stack, `MemoKey`, as the expansion does),
//! `cached`'s with `key.to_owned()`, as its users write it (its store is per function, so it needs
//! no prefix). What building our key costs alone is measured as a baseline.

use std::hint::black_box;
use std::sync::Arc;

use cache_tower::__private::MemoKey;
use cache_tower::{CacheTower, MemoryAdapter, cached_tower, registry};
use cached::proc_macro::cached;

use super::caches::CACHED;
use super::redis_support::{self, COUNTED_OPS, Counter};
use super::{BoxResult, Measured, Scenario, measure_ns_per_op, versus};
use crate::data::{Dataset, ENTRIES, User, load_user, loads};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memoize/hit", run: run_memory };
/// See the module docs.
pub(super) const SCENARIO_OVER_REDIS: Scenario = Scenario { id: "memoize/hit-over-redis", run: run_over_redis };

/// The registry name of the memory-only tower.
const MEMORY_TOWER: &str = "bench_users";
/// The registry name of the memory-over-Redis tower.
const REDIS_TOWER: &str = "bench_users_redis";

/// Ours, on the memory-only tower.
#[cached_tower(config = "bench_users", key = "user:{key}")]
fn load(key: &str) -> User {
    load_user(&format!("user:{key}"))
}

/// Ours, on the memory-over-Redis tower.
#[cached_tower(config = "bench_users_redis", key = "user:{key}")]
fn load_over_redis(key: &str) -> User {
    load_user(&format!("user:{key}"))
}

/// `cached`'s, as its users write it for a `&str` argument.
#[cached(key = "String", convert = r#"{ key.to_owned() }"#)]
fn cached_load(key: &str) -> User {
    load_user(&format!("user:{key}"))
}

/// The argument of each user: `ids[n]` is `"n"`.
fn ids() -> Vec<String> {
    (0..ENTRIES).map(|n| n.to_string()).collect()
}

/// Calls `call` for every id (filling its cache), then again, and warns when the second pass ran
/// the body: its figures would include misses.
fn fill(name: &str, ids: &[String], notes: &mut Vec<String>, call: impl Fn(&str) -> User) {
    for id in ids {
        call(id);
    }
    let before = loads();
    for id in ids {
        call(id);
    }
    let missed = loads() - before;
    if missed > 0 {
        let note = format!("warning: {name} ran its body {missed} times on a second pass; its figures include misses");
        eprintln!("  {note}");
        notes.push(note);
    }
}

/// Measures ours, `cached`'s and the key baseline; returns (ours, cached, baseline).
fn measure(
    data: &Dataset,
    settings: &Settings,
    ids: &[String],
    ours: impl Fn(&str) -> User + Sync,
) -> (Measured, Measured, Measured) {
    let contenders = [
        Contender::per_op("cache-tower `#[cached_tower]` hit", |i| {
            black_box(ours(&ids[i]));
        }),
        Contender::per_op(format!("{CACHED} `#[cached]` hit"), |i| {
            black_box(cached_load(&ids[i]));
        }),
        Contender::per_op("baseline: building the key `user:{key}` alone", |i| {
            let mut key = MemoKey::new();
            key.push_str("user:");
            key.push_str(&ids[i]);
            black_box(&*key);
        }),
    ];
    let loads_before = loads();
    let mut measured = measure_ns_per_op(&contenders, data, settings).into_iter();
    if loads() != loads_before {
        eprintln!("  warning: memoized bodies ran {} times while measuring hits", loads() - loads_before);
    }
    match (measured.next(), measured.next(), measured.next()) {
        (Some(ours), Some(theirs), Some(baseline)) => (ours, theirs, baseline),
        _ => unreachable!("three contenders measured"),
    }
}

fn run_memory(data: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let mut notes = Vec::new();
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::new());
    registry::register(MEMORY_TOWER, tower);
    let ids = ids();
    fill("cache-tower `#[cached_tower]`", &ids, &mut notes, load);
    fill(CACHED, &ids, &mut notes, cached_load);

    let (ours, theirs, baseline) = measure(data, settings, &ids, load);
    notes.push(format!(
        "memoize/hit: building our key from its template `user:{{key}}` (on the stack) costs {} of our figure; \
         `cached` copies the argument (`key.to_owned()`).",
        baseline.figure
    ));
    let rows =
        versus("memoized hit, memory tower, 1 thread, unbounded (both) (ns/op, lower is better)", &ours, &[theirs]);
    Ok(Outcome { rows, notes, ..Outcome::default() })
}

fn run_over_redis(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let redis = match services.redis() {
        Ok(redis) => redis,
        Err(reason) => return Ok(redis_support::skipped(SCENARIO_OVER_REDIS.id, reason)),
    };
    let mut notes = Vec::new();
    let tower = Arc::new(redis_support::memory_over_redis(&redis.url, 0)?);
    registry::register(REDIS_TOWER, Arc::clone(&tower));
    let ids = ids();
    fill("cache-tower `#[cached_tower]` over Redis", &ids, &mut notes, load_over_redis);
    fill(CACHED, &ids, &mut notes, cached_load);

    let (ours, theirs, _) = measure(data, settings, &ids, load_over_redis);
    redis_support::check_tower("cache-tower `#[cached_tower]` over Redis", &tower, false, &mut notes);

    // Every call hits the memory layer: Redis should see nothing.
    let mut counter = Counter::new(redis, false)?;
    let counted = Contender::per_op("cache-tower `#[cached_tower]` hit (memory over Redis)", |i| {
        black_box(load_over_redis(&ids[i]));
    });
    let trips = vec![counter.count(SCENARIO_OVER_REDIS.id, &counted, redis_support::indices(data, COUNTED_OPS))?];

    let rows = versus(
        "memoized hit, memory over Redis tower, 1 thread, unbounded memory (both) (ns/op, lower is better)",
        &ours,
        &[theirs],
    );
    Ok(Outcome { rows, notes, trips, ..Outcome::default() })
}
