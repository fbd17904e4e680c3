//! Two threads at once on bounded caches, total throughput: `get` of present keys only, then
//! 90% `get` / 10% `set` (the memory issue's bar). On reads each cache pays its eviction
//! bookkeeping (LRU recency, cache-tower S3-FIFO's per-entry read count, moka's frequency
//! sketch, quick_cache's S3-FIFO); a `set` overwrites a present key with a clone of its value
//! (moka's and quick_cache's take the key by value: a clone of the key `String` too), so the
//! writes contend with the reads for the shards' locks. cache-tower (FIFO, LRU and S3-FIFO
//! layers) against moka (TinyLFU) and quick_cache. Every cache is bounded to [`BOUND`] entries
//! and holds every key, so every read hits and no write evicts. In the mixed rows every tenth op
//! of each thread is the write.

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

    // 90% get / 10% set: every tenth op of each thread writes.
    let users = &data.users;
    let mixed = [
        Contender::per_op("cache-tower `get` / `set`, FIFO", |i| {
            if is_write() {
                black_box(fifo.set(&keys[i], users[i].clone()).is_ok());
            } else {
                black_box(fifo.get::<User>(&keys[i]));
            }
        }),
        Contender::per_op("cache-tower `get` / `set`, LRU", |i| {
            if is_write() {
                black_box(lru.set(&keys[i], users[i].clone()).is_ok());
            } else {
                black_box(lru.get::<User>(&keys[i]));
            }
        }),
        Contender::per_op("cache-tower `get` / `set`, S3-FIFO", |i| {
            if is_write() {
                black_box(s3_fifo.set(&keys[i], users[i].clone()).is_ok());
            } else {
                black_box(s3_fifo.get::<User>(&keys[i]));
            }
        }),
        Contender::per_op(format!("{MOKA_TINY_LFU} `get` / `insert`"), |i| {
            if is_write() {
                moka.insert(keys[i].clone(), users[i].clone());
            } else {
                black_box(moka.get(keys[i].as_str()));
            }
        }),
        Contender::per_op(format!("{QUICK_CACHE_POLICY} `get` / `insert`"), |i| {
            if is_write() {
                quick.insert(keys[i].clone(), users[i].clone());
            } else {
                black_box(quick.get(keys[i].as_str()));
            }
        }),
    ];
    let measured = measure_throughput(&mixed, data, settings);
    let scenario = |policy| {
        format!("90% get / 10% set, {threads} threads, {policy}, bound {BOUND} entries (throughput, higher is better)")
    };
    rows.extend(versus(&scenario("S3-FIFO"), &measured[2], &measured[3..]));
    rows.extend(versus(&scenario("FIFO"), &measured[0], &measured[3..]));
    rows.extend(versus(&scenario("LRU"), &measured[1], &measured[3..]));
    Ok(Outcome { rows, notes, ..Outcome::default() })
}

/// Whether this thread's next op is a write: every tenth op of the thread, counted in a
/// thread-local (each contender's calls on a thread come one after another, so a count per
/// thread gives each contender 10% writes in every sample).
fn is_write() -> bool {
    thread_local! {
        static OPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    OPS.with(|ops| {
        let n = ops.get();
        ops.set(n.wrapping_add(1));
        n % 10 == 0
    })
}
