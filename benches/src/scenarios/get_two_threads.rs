//! `get` of present keys from two threads at once: total throughput of bounded caches, so each
//! one's eviction bookkeeping (LRU recency, cache-tower S3-FIFO's per-entry read count, moka's
//! frequency sketch, quick_cache's S3-FIFO) is paid on the read path. cache-tower (FIFO, LRU and
//! S3-FIFO layers) against moka (TinyLFU) and quick_cache. Every cache is bounded to [`BOUND`]
//! entries, so every read hits.

use cache_tower::adapter::EvictionPolicy;
use std::hint::black_box;

use super::caches::{self, BOUND, MOKA_TINY_LFU, QUICK_CACHE_POLICY};
use super::{BoxResult, Scenario, measure_throughput, versus};
use crate::data::{Dataset, User};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memory/get-2-threads", run };

fn run(data: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let mut notes = Vec::new();
    let fifo = caches::tower(caches::memory(BOUND, EvictionPolicy::Fifo), data, &mut notes)?;
    let lru = caches::tower(caches::memory(BOUND, EvictionPolicy::Lru), data, &mut notes)?;
    let s3_fifo = caches::tower(caches::memory(BOUND, EvictionPolicy::S3Fifo), data, &mut notes)?;
    let moka = caches::moka(BOUND, false, data, &mut notes);
    let quick = caches::quick_cache(BOUND, data, &mut notes);

    let keys = &data.keys;
    let contenders = [
        Contender::per_op("cache-tower `get`, FIFO", |i| {
            black_box(fifo.get::<User>(&keys[i]));
        }),
        Contender::per_op("cache-tower `get`, LRU", |i| {
            black_box(lru.get::<User>(&keys[i]));
        }),
        Contender::per_op("cache-tower `get`, S3-FIFO", |i| {
            black_box(s3_fifo.get::<User>(&keys[i]));
        }),
        Contender::per_op(format!("{MOKA_TINY_LFU} `get`"), |i| {
            black_box(moka.get(keys[i].as_str()));
        }),
        Contender::per_op(format!("{QUICK_CACHE_POLICY} `get`"), |i| {
            black_box(quick.get(keys[i].as_str()));
        }),
    ];
    let measured = measure_throughput(&contenders, data, settings);
    let threads = data.reads.len();
    let scenario =
        |policy| format!("get hit, {threads} threads, {policy}, bound {BOUND} entries (throughput, higher is better)");
    let mut rows = versus(&scenario("S3-FIFO"), &measured[2], &measured[3..]);
    rows.extend(versus(&scenario("FIFO"), &measured[0], &measured[3..]));
    rows.extend(versus(&scenario("LRU"), &measured[1], &measured[3..]));
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
