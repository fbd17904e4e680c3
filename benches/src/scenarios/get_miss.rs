//! `get` of an absent key on one thread: what a miss costs before any computation. cache-tower
//! (FIFO, LRU and S3-FIFO layers) against moka (TinyLFU and LRU), quick_cache and cached's
//! `LruCache`. Every cache is bounded to [`BOUND`] entries and holds the 10,000 users; the reads ask for 10,000 other keys
//! (`user:{n}` for n in 10,000..20,000, never inserted) in the same random order as the hit
//! scenarios. cached's miss is its store's `cache_get` (a `#[cached]` function would compute on
//! a miss).

use cache_tower::adapter::EvictionPolicy;
use std::hint::black_box;

use cached::Cached;

use super::caches::{self, BOUND, CACHED_LRU, MOKA_LRU, MOKA_TINY_LFU, QUICK_CACHE_POLICY};
use super::{BoxResult, Scenario, measure_ns_per_op, versus};
use crate::data::{Dataset, ENTRIES, User, key};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memory/get-miss", run };

fn run(data: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let mut notes = Vec::new();
    let fifo = caches::tower(caches::memory(BOUND, EvictionPolicy::Fifo), data, &mut notes)?;
    let lru = caches::tower(caches::memory(BOUND, EvictionPolicy::Lru), data, &mut notes)?;
    let s3_fifo = caches::tower(caches::memory(BOUND, EvictionPolicy::S3Fifo), data, &mut notes)?;
    let moka = caches::moka(BOUND, false, data, &mut notes);
    let moka_lru = caches::moka(BOUND, true, data, &mut notes);
    let quick = caches::quick_cache(BOUND, data, &mut notes);
    let lru_cache = caches::cached_lru(BOUND, data, &mut notes);
    let absent: Vec<String> = (ENTRIES..2 * ENTRIES).map(key).collect();

    let contenders = [
        Contender::per_op("cache-tower `get`, FIFO", |i| {
            black_box(fifo.get::<User>(&absent[i]));
        }),
        Contender::per_op("cache-tower `get`, LRU (`lru: true`)", |i| {
            black_box(lru.get::<User>(&absent[i]));
        }),
        Contender::per_op("cache-tower `get`, S3-FIFO (`policy: \"s3-fifo\"`)", |i| {
            black_box(s3_fifo.get::<User>(&absent[i]));
        }),
        Contender::per_op(format!("{MOKA_TINY_LFU} `get`"), |i| {
            black_box(moka.get(absent[i].as_str()));
        }),
        Contender::per_op(format!("{MOKA_LRU} `get`"), |i| {
            black_box(moka_lru.get(absent[i].as_str()));
        }),
        Contender::per_op(format!("{QUICK_CACHE_POLICY} `get`"), |i| {
            black_box(quick.get(absent[i].as_str()));
        }),
        Contender::per_op(format!("{CACHED_LRU} `cache_get` behind a `Mutex`"), |i| {
            black_box(caches::lock(&lru_cache).cache_get(absent[i].as_str()).is_some());
        }),
    ];
    let measured = measure_ns_per_op(&contenders, data, settings);
    let found = absent
        .iter()
        .filter(|key| {
            fifo.get::<User>(key).is_some()
                || lru.get::<User>(key).is_some()
                || s3_fifo.get::<User>(key).is_some()
                || moka.get(key.as_str()).is_some()
                || moka_lru.get(key.as_str()).is_some()
                || quick.get(key.as_str()).is_some()
                || caches::lock(&lru_cache).cache_get(key.as_str()).is_some()
        })
        .count();
    if found > 0 {
        let note = format!("warning: memory/get-miss: {found} of the absent keys were found in some cache");
        eprintln!("  {note}");
        notes.push(note);
    }
    let scenario = |policy| format!("get miss, 1 thread, {policy}, bound {BOUND} entries (ns/op, lower is better)");
    let mut rows = versus(&scenario("S3-FIFO"), &measured[2], &measured[3..]);
    rows.extend(versus(&scenario("FIFO"), &measured[0], &measured[3..]));
    rows.extend(versus(&scenario("LRU"), &measured[1], &measured[3..]));
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
