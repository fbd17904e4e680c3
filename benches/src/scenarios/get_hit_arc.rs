//! `get` of a present key on one thread, the value an `Arc<User>` (a hit clones the `Arc`, not
//! the struct): cache-tower's L0 hit, S3-FIFO and FIFO, against quick_cache, moka (TinyLFU) and
//! a `#[cached(max_size)]` memoized function returning `Arc<User>`, every cache bounded to
//! [`BOUND`] entries and holding the 10,000 users (every read hits; checked after filling), read
//! in the same random key order as `memory/get-hit`.

use std::hint::black_box;
use std::sync::Arc;

use cache_tower::CacheTower;
use cache_tower::adapter::EvictionPolicy;
use cached::proc_macro::cached;

use super::caches::{self, BOUND, CACHED_LRU, MOKA, MOKA_TINY_LFU, QUICK_CACHE, QUICK_CACHE_POLICY};
use super::{BoxResult, Scenario, measure_ns_per_op, versus};
use crate::data::{Dataset, User, load_user, loads};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memory/get-hit-arc", run };

// The attribute below needs a literal.
const _: () = assert!(BOUND == 12_500);

/// `memory/get-hit`'s `cached_user`, its value an `Arc<User>`.
#[cached(max_size = 12500, key = "String", convert = r#"{ key.to_owned() }"#)]
fn cached_user_arc(key: &str) -> Arc<User> {
    Arc::new(load_user(key))
}

/// A tower with `memory` as its only layer, holding an `Arc` of every user.
fn tower(memory: cache_tower::MemoryAdapter, data: &Dataset, notes: &mut Vec<String>) -> BoxResult<CacheTower> {
    let tower = CacheTower::new();
    tower.add_layer(memory);
    for (key, user) in data.keys.iter().zip(&data.users) {
        tower.set(key, Arc::new(user.clone()))?;
    }
    caches::check_hits("cache-tower", data, notes, |key| tower.get::<Arc<User>>(key).is_some());
    Ok(tower)
}

fn run(data: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let mut notes = Vec::new();
    let s3_fifo = tower(caches::memory(BOUND, EvictionPolicy::S3Fifo), data, &mut notes)?;
    let fifo = tower(caches::memory(BOUND, EvictionPolicy::Fifo), data, &mut notes)?;
    let quick = quick_cache::sync::Cache::<String, Arc<User>>::new(BOUND);
    let moka = caches::empty_moka::<Arc<User>>(BOUND, false);
    for (key, user) in data.keys.iter().zip(&data.users) {
        quick.insert(key.clone(), Arc::new(user.clone()));
        moka.insert(key.clone(), Arc::new(user.clone()));
    }
    // moka applies inserts to its eviction policy lazily; settle them before measuring.
    moka.run_pending_tasks();
    caches::check_hits(QUICK_CACHE, data, &mut notes, |key| quick.get(key).is_some());
    caches::check_hits(MOKA, data, &mut notes, |key| moka.get(key).is_some());
    for key in &data.keys {
        cached_user_arc(key);
    }
    caches::check_hits(CACHED_LRU, data, &mut notes, |key| {
        let before = loads();
        cached_user_arc(key);
        loads() == before
    });

    let keys = &data.keys;
    let arcs: Vec<Arc<User>> = data.users.iter().cloned().map(Arc::new).collect();
    let contenders = [
        Contender::per_op("cache-tower `get::<Arc<User>>`, S3-FIFO (`policy: \"s3-fifo\"`)", |i| {
            black_box(s3_fifo.get::<Arc<User>>(&keys[i]));
        }),
        Contender::per_op("cache-tower `get::<Arc<User>>`, FIFO", |i| {
            black_box(fifo.get::<Arc<User>>(&keys[i]));
        }),
        Contender::per_op(format!("{QUICK_CACHE_POLICY} `get`, `Arc<User>`"), |i| {
            black_box(quick.get(keys[i].as_str()));
        }),
        Contender::per_op(format!("{MOKA_TINY_LFU} `get`, `Arc<User>`"), |i| {
            black_box(moka.get(keys[i].as_str()));
        }),
        Contender::per_op(format!("{CACHED_LRU} `#[cached(max_size)]` hit, `Arc<User>`"), |i| {
            black_box(cached_user_arc(&keys[i]));
        }),
        // The floor every cache above pays: a clone of the `Arc`, read in the same random order.
        Contender::per_op("baseline: `Arc::<User>::clone`, no cache", |i| {
            black_box(Arc::clone(&arcs[i]));
        }),
    ];
    let loads_before = loads();
    let measured = measure_ns_per_op(&contenders, data, settings);
    if loads() != loads_before {
        let note = format!("warning: {}: `#[cached]` ran its body {} times", SCENARIO.id, loads() - loads_before);
        eprintln!("  {note}");
        notes.push(note);
    }
    // `measured` follows `contenders`: ours S3-FIFO and FIFO, three peers, the baseline.
    notes.push(format!(
        "{}: the value is an `Arc<User>`, so a hit clones an `Arc` (a reference count), not the `User`; cloning \
         the `Arc` alone, in the same random key order, costs {}.",
        SCENARIO.id, measured[5].figure
    ));
    let scenario = |policy| {
        format!("get hit of an `Arc<User>`, 1 thread, {policy}, bound {BOUND} entries (ns/op, lower is better)")
    };
    let mut rows = versus(&scenario("S3-FIFO"), &measured[0], &measured[2..5]);
    rows.extend(versus(&scenario("FIFO"), &measured[1], &measured[2..5]));
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
