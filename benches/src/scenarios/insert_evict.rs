//! `set` of an absent key into a full cache on one thread: every insert evicts an entry (or, in
//! moka's TinyLFU, may refuse the newcomer: one entry leaves either way).
//!
//! cache-tower (FIFO, LRU and S3-FIFO layers) against moka (TinyLFU and LRU), quick_cache and
//! cached's `LruCache`. Every cache is bounded to [`BOUND`] entries. The keys are [`KEYS`] fresh
//! ones (`user:{n}` for n from 10,000 on, never part of the 10,000 users), written in a fixed
//! shuffled order, cycled; each round inserts the next `ops_per_sample / 10` of them, the same for
//! every contender of the round. A key comes back only after all the others, more than twice
//! [`BOUND`] inserts later, so it has been evicted by then (FIFO and LRU evict it for sure, and so
//! does S3-FIFO: nothing is read, so it evicts in insertion order, and its ghost queue, half the
//! entries, has forgotten the key; the other policies are checked by the caches' sizes). Each cache is filled by one untimed pass over the keys before the warm-up
//! rounds, so every timed insert finds it full. Values are
//! clones of the users, cloned on every call as every contender must; moka's, quick_cache's and
//! cached's inserts take the key by value, so their figures include a clone of the key `String`.

use cache_tower::adapter::EvictionPolicy;
use std::hint::black_box;

use cache_tower::CacheTower;
use cached::Cached;

use super::caches::{self, BOUND, CACHED_LRU, MOKA_LRU, MOKA_TINY_LFU, QUICK_CACHE_POLICY};
use super::{BoxResult, Scenario, measure_ns_per_op_by_round, versus};
use crate::data::{Dataset, ENTRIES, key, permutation};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memory/insert-evict", run };

/// How many fresh keys are inserted, in a cycle: more than twice the bound.
const KEYS: usize = 30_000;
const _: () = assert!(KEYS > 2 * BOUND);
/// Inserts per sample: `ops_per_sample` divided by this.
const OPS_DIVISOR: usize = 10;
/// How far over its bound a cache may be before a warning (quick_cache's bound is approximate:
/// it holds a few entries more).
const SLACK: usize = BOUND / 100;

fn run(data: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let mut notes = Vec::new();
    let fresh: Vec<String> = (ENTRIES..ENTRIES + KEYS).map(key).collect();
    let order = permutation(KEYS, 0xE71C7);
    // Round r inserts the next `len` keys of the order, cycled: a key comes back every KEYS
    // inserts, whatever the length of a sample (an insert costs a microsecond or more with some
    // contenders, so a sample is shorter than the cycle).
    let len = (settings.ops_per_sample / OPS_DIVISOR).max(1);
    let rounds = settings.warmup_rounds + settings.samples;
    let per_round: Vec<Vec<u32>> =
        (0..rounds).map(|round| (0..len).map(|n| order[(round * len + n) % KEYS]).collect()).collect();
    let users = &data.users;

    let (fifo_memory, lru_memory, s3_fifo_memory) = (
        caches::memory(BOUND, EvictionPolicy::Fifo),
        caches::memory(BOUND, EvictionPolicy::Lru),
        caches::memory(BOUND, EvictionPolicy::S3Fifo),
    );
    let (fifo, lru, s3_fifo) = (CacheTower::new(), CacheTower::new(), CacheTower::new());
    fifo.add_layer(fifo_memory.clone());
    lru.add_layer(lru_memory.clone());
    s3_fifo.add_layer(s3_fifo_memory.clone());
    let moka = caches::empty_moka(BOUND, false);
    let moka_lru = caches::empty_moka(BOUND, true);
    let quick = quick_cache::sync::Cache::new(BOUND);
    let lru_cache = std::sync::Mutex::new(cached::LruCache::new(BOUND));

    let value = |i: usize| users[i % ENTRIES].clone();
    let contenders = [
        Contender::per_op("cache-tower `set`, FIFO", |i| {
            black_box(fifo.set(&fresh[i], value(i)).is_ok());
        }),
        Contender::per_op("cache-tower `set`, LRU (`lru: true`)", |i| {
            black_box(lru.set(&fresh[i], value(i)).is_ok());
        }),
        Contender::per_op("cache-tower `set`, S3-FIFO (`policy: \"s3-fifo\"`)", |i| {
            black_box(s3_fifo.set(&fresh[i], value(i)).is_ok());
        }),
        Contender::per_op(format!("{MOKA_TINY_LFU} `insert`"), |i| {
            moka.insert(fresh[i].clone(), value(i));
        }),
        Contender::per_op(format!("{MOKA_LRU} `insert`"), |i| {
            moka_lru.insert(fresh[i].clone(), value(i));
        }),
        Contender::per_op(format!("{QUICK_CACHE_POLICY} `insert`"), |i| {
            quick.insert(fresh[i].clone(), value(i));
        }),
        Contender::per_op(format!("{CACHED_LRU} `cache_set` behind a `Mutex`"), |i| {
            black_box(caches::lock(&lru_cache).cache_set(fresh[i].clone(), value(i)));
        }),
    ];
    for contender in &contenders {
        contender.run(&order);
    }
    let evictions = |tower: &CacheTower| tower.stats()[0].evictions;
    let before = (evictions(&fifo), evictions(&lru), evictions(&s3_fifo));
    let measured = measure_ns_per_op_by_round(&contenders, &per_round, settings);
    let inserts = (rounds * len) as u64;
    let evicted = (evictions(&fifo) - before.0, evictions(&lru) - before.1, evictions(&s3_fifo) - before.2);

    moka.run_pending_tasks();
    moka_lru.run_pending_tasks();
    let sizes = [
        ("cache-tower FIFO", fifo_memory.len()),
        ("cache-tower LRU", lru_memory.len()),
        ("cache-tower S3-FIFO", s3_fifo_memory.len()),
        (MOKA_TINY_LFU, moka.entry_count() as usize),
        (MOKA_LRU, moka_lru.entry_count() as usize),
        (QUICK_CACHE_POLICY, quick.len()),
        (CACHED_LRU, caches::lock(&lru_cache).cache_size()),
    ];
    for (name, size) in sizes {
        if size > BOUND + SLACK {
            let note = format!("warning: memory/insert-evict: {name} holds {size} entries, over its bound of {BOUND}");
            eprintln!("  {note}");
            notes.push(note);
        }
    }
    notes.push(format!(
        "memory/insert-evict: {inserts} inserts per contender of keys absent from the full cache; cache-tower's \
         layers counted {} (FIFO), {} (LRU) and {} (S3-FIFO) evictions; sizes after the run: {}.",
        evicted.0,
        evicted.1,
        evicted.2,
        sizes.iter().map(|(name, size)| format!("{name} {size}")).collect::<Vec<_>>().join(", ")
    ));
    let scenario = |policy| {
        format!(
            "insert of an absent key into a full cache, 1 thread, {policy}, bound {BOUND} entries (ns/op, lower is better)"
        )
    };
    let mut rows = versus(&scenario("S3-FIFO"), &measured[2], &measured[3..]);
    rows.extend(versus(&scenario("FIFO"), &measured[0], &measured[3..]));
    rows.extend(versus(&scenario("LRU"), &measured[1], &measured[3..]));
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
