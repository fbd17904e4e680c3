//! `get` of present keys from two threads at once: total throughput of bounded caches, so each
//! one's eviction bookkeeping (LRU recency, moka's frequency sketch, quick_cache's S3-FIFO) is
//! paid on the read path. Every read hits: see [`CAPACITY`].

use std::hint::black_box;

use cache_tower::MemoryAdapter;

use super::caches::{self, MOKA, QUICK_CACHE};
use super::{BoxResult, Scenario, measure_throughput, versus};
use crate::data::{Dataset, User};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memory/get-2-threads", run };

/// The bound given to every cache of this scenario: the 10,000 entries plus 25%. Exactly 10,000
/// is not enough: cache-tower and quick_cache split their bound evenly between shards, keys do
/// not spread evenly, and the fullest shards evict early (filled with 10,000 keys, a bound of
/// 10,000 kept only about 9,810 to 9,900 of them in each). The headroom keeps every read a hit,
/// as the scenario intends; `caches` checks it.
const CAPACITY: usize = crate::data::ENTRIES * 5 / 4;

fn run(data: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let mut notes = Vec::new();
    let bounded = |lru| MemoryAdapter::builder().maxsize(CAPACITY).lru(lru).build();
    let fifo = caches::tower(bounded(false), data, &mut notes)?;
    let lru = caches::tower(bounded(true), data, &mut notes)?;
    let moka = caches::moka(Some(CAPACITY as u64), data, &mut notes);
    let quick = caches::quick_cache(CAPACITY, data, &mut notes);

    let keys = &data.keys;
    let contenders = [
        Contender::per_op("cache-tower `get`, FIFO", |i| {
            let _ = black_box(fifo.get::<User>(&keys[i]));
        }),
        Contender::per_op("cache-tower `get`, LRU", |i| {
            let _ = black_box(lru.get::<User>(&keys[i]));
        }),
        Contender::per_op(format!("{MOKA} `get`"), |i| {
            black_box(moka.get(keys[i].as_str()));
        }),
        Contender::per_op(format!("{QUICK_CACHE} `get`"), |i| {
            black_box(quick.get(keys[i].as_str()));
        }),
    ];
    let measured = measure_throughput(&contenders, data, settings);
    let threads = data.reads.len();
    let mut rows = versus(
        &format!("get hit, {threads} threads, FIFO, maxsize {CAPACITY} (throughput, higher is better)"),
        &measured[0],
        &measured[2..],
    );
    rows.extend(versus(
        &format!("get hit, {threads} threads, LRU, maxsize {CAPACITY} (throughput, higher is better)"),
        &measured[1],
        &measured[2..],
    ));
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
