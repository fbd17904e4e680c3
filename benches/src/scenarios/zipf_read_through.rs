//! Read-through on Zipf-distributed keys, one thread: each operation asks for a key and, on a
//! miss, computes its value and stores it. 100,000 keys (`user:{n}`), caches of
//! [`ZIPF_BOUND`] entries, so about a tenth of the keys fit: what a cache keeps decides how often
//! the computation runs, and each contender's **hit ratio** is reported beside its time.
//!
//! * cache-tower: `get_or_set(key, compute)` (FIFO, LRU and S3-FIFO layers);
//! * moka: `get_with_by_ref(&str, compute)` (TinyLFU and LRU);
//! * quick_cache: `get_or_insert_with(&str, compute)`;
//! * cached: a `#[cached(max_size = 10000)]` function whose body is the computation.
//!
//! The computation is the same for every contender ([`load_user`]: parse the id, build the
//! 10-field `User`, a few hundred ns), counted per contender: hit ratio = 1 - computations /
//! operations. Two Zipf exponents: `memory/zipf-0.9` and `memory/zipf-1.1`. One seeded stream of
//! keys per exponent: every cache is warmed by the same untimed first [`WARM_OPS`] reads, then
//! each round (warm-up rounds included) reads the next `ops_per_sample / 10` keys, the same for
//! every contender of the round; the counts cover the warm-up rounds and the samples.

use cache_tower::adapter::EvictionPolicy;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use cache_tower::CacheTower;
use cached::proc_macro::cached;

use super::caches::{self, CACHED_LRU, MOKA_LRU, MOKA_TINY_LFU, QUICK_CACHE_POLICY};
use super::{BoxResult, Scenario, measure_ns_per_op_by_round, versus};
use crate::data::{Dataset, User, key, load_user};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;
use crate::zipf::Zipf;

/// See the module docs.
pub(super) const SCENARIO_09: Scenario = Scenario { id: "memory/zipf-0.9", run: run_09 };
/// See the module docs.
pub(super) const SCENARIO_11: Scenario = Scenario { id: "memory/zipf-1.1", run: run_11 };

/// How many distinct keys the reads are drawn from.
const KEYS: usize = 100_000;
/// The bound of every cache of these scenarios, in entries.
const ZIPF_BOUND: usize = 10_000;
/// Operations per sample: `ops_per_sample` divided by this (a miss costs microseconds here).
const OPS_DIVISOR: usize = 10;
/// Reads of the untimed warming pass (the caches are full well before its end).
const WARM_OPS: usize = 50_000;
// The attributes below need a literal.
const _: () = assert!(ZIPF_BOUND == 10_000);

static CACHED_09_LOADS: AtomicU64 = AtomicU64::new(0);
static CACHED_11_LOADS: AtomicU64 = AtomicU64::new(0);

/// cached's read-through for `memory/zipf-0.9` (a store of its own per function).
#[cached(max_size = 10000, key = "String", convert = r#"{ key.to_owned() }"#)]
fn cached_09(key: &str) -> User {
    CACHED_09_LOADS.fetch_add(1, Ordering::Relaxed);
    load_user(key)
}

/// cached's read-through for `memory/zipf-1.1`.
#[cached(max_size = 10000, key = "String", convert = r#"{ key.to_owned() }"#)]
fn cached_11(key: &str) -> User {
    CACHED_11_LOADS.fetch_add(1, Ordering::Relaxed);
    load_user(key)
}

fn run_09(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    run(0.9, SCENARIO_09.id, cached_09, &CACHED_09_LOADS, data, settings, services)
}

fn run_11(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    run(1.1, SCENARIO_11.id, cached_11, &CACHED_11_LOADS, data, settings, services)
}

/// The computation of a miss, counted in `loads`.
fn compute(loads: &AtomicU64, key: &str) -> User {
    loads.fetch_add(1, Ordering::Relaxed);
    load_user(key)
}

/// `cached_fn` is generic (a function item, not a pointer), so its call is inlined like the
/// other contenders' calls.
fn run(
    s: f64,
    id: &str,
    cached_fn: impl Fn(&str) -> User + Sync,
    cached_loads: &'static AtomicU64,
    _: &Dataset,
    settings: &Settings,
    _: &Services,
) -> BoxResult<Outcome> {
    let zipf = Zipf::new(KEYS, s);
    // A fresh stretch of the Zipf stream for every round, and one longer stretch to warm the
    // caches with: replaying one short sequence would make the workload that sequence's own
    // (narrower) distribution, which favours frequency-based policies.
    let len = (settings.ops_per_sample / OPS_DIVISOR).max(1);
    let rounds = settings.warmup_rounds + settings.samples;
    let mut stream = zipf.sequence(WARM_OPS + rounds * len, 0x21FF ^ s.to_bits());
    let per_round: Vec<Vec<u32>> = stream.split_off(WARM_OPS).chunks(len).map(<[u32]>::to_vec).collect();
    let warm = stream;
    let keys: Vec<String> = (0..KEYS).map(key).collect();

    let (fifo, lru, s3_fifo) = (CacheTower::new(), CacheTower::new(), CacheTower::new());
    fifo.add_layer(caches::memory(ZIPF_BOUND, EvictionPolicy::Fifo));
    lru.add_layer(caches::memory(ZIPF_BOUND, EvictionPolicy::Lru));
    s3_fifo.add_layer(caches::memory(ZIPF_BOUND, EvictionPolicy::S3Fifo));
    let moka = caches::empty_moka::<User>(ZIPF_BOUND, false);
    let moka_lru = caches::empty_moka::<User>(ZIPF_BOUND, true);
    let quick = quick_cache::sync::Cache::<String, User>::new(ZIPF_BOUND);
    let loads: [AtomicU64; 6] = Default::default();

    let keys = &keys;
    let loads_ref = &loads;
    let contenders = [
        Contender::per_op("cache-tower `get_or_set`, FIFO", |i| {
            black_box(fifo.get_or_set(&keys[i], || compute(&loads_ref[0], &keys[i])));
        }),
        Contender::per_op("cache-tower `get_or_set`, LRU (`lru: true`)", |i| {
            black_box(lru.get_or_set(&keys[i], || compute(&loads_ref[1], &keys[i])));
        }),
        Contender::per_op("cache-tower `get_or_set`, S3-FIFO (`policy: \"s3-fifo\"`)", |i| {
            black_box(s3_fifo.get_or_set(&keys[i], || compute(&loads_ref[2], &keys[i])));
        }),
        Contender::per_op(format!("{MOKA_TINY_LFU} `get_with_by_ref`"), |i| {
            black_box(moka.get_with_by_ref(keys[i].as_str(), || compute(&loads_ref[3], &keys[i])));
        }),
        Contender::per_op(format!("{MOKA_LRU} `get_with_by_ref`"), |i| {
            black_box(moka_lru.get_with_by_ref(keys[i].as_str(), || compute(&loads_ref[4], &keys[i])));
        }),
        Contender::per_op(format!("{QUICK_CACHE_POLICY} `get_or_insert_with`"), |i| {
            let value = quick.get_or_insert_with(keys[i].as_str(), || {
                Ok::<_, std::convert::Infallible>(compute(&loads_ref[5], &keys[i]))
            });
            black_box(value.ok());
        }),
        Contender::per_op(format!("{CACHED_LRU} `#[cached(max_size)]`"), |i| {
            black_box(cached_fn(&keys[i]));
        }),
    ];
    for contender in &contenders {
        contender.run(&warm);
    }
    let counts = || -> Vec<u64> {
        loads.iter().map(|count| count.load(Ordering::Relaxed)).chain([cached_loads.load(Ordering::Relaxed)]).collect()
    };
    let before = counts();
    let mut measured = measure_ns_per_op_by_round(&contenders, &per_round, settings);
    let ops = (rounds * len) as f64;
    for ((measured, after), before) in measured.iter_mut().zip(counts()).zip(before) {
        let ratio = 1.0 - (after - before) as f64 / ops;
        eprintln!("  {:<52} hit ratio {:.2}%", measured.name, ratio * 100.0);
        measured.hit_ratio = Some(ratio);
    }

    // What the best a cache of this size could do without seeing the future: hold the most
    // popular keys and nothing else.
    let mut hits_per_key = vec![0u32; KEYS];
    for &i in per_round.iter().flatten() {
        hits_per_key[i as usize] += 1;
    }
    hits_per_key.sort_unstable_by(|a, b| b.cmp(a));
    let top: u64 = hits_per_key[..ZIPF_BOUND].iter().map(|&n| u64::from(n)).sum();
    let notes = vec![format!(
        "{id}: Zipf s = {s} over {KEYS} keys, caches of {ZIPF_BOUND} entries; a cache holding exactly the \
         {ZIPF_BOUND} most popular keys would hit {:.1}% (the law; with hindsight, the {ZIPF_BOUND} keys read most \
         often in the {ops} reads of this run would have served {:.1}% of them). Each \
         round reads {len} fresh keys of the stream; every cache was warmed first with {WARM_OPS} reads. The time \
         per operation includes the computation of each miss (`load_user`, the same for all); hit ratios count \
         the warm-up rounds and the samples.",
        zipf.top_share(ZIPF_BOUND) * 100.0,
        top as f64 / ops * 100.0,
    )];
    let scenario = |policy| {
        format!(
            "read-through, Zipf s={s}, {KEYS} keys, 1 thread, {policy}, bound {ZIPF_BOUND} entries (ns/op with hit \
             ratio; lower time, higher hits is better)"
        )
    };
    let mut rows = versus(&scenario("S3-FIFO"), &measured[2], &measured[3..]);
    rows.extend(versus(&scenario("FIFO"), &measured[0], &measured[3..]));
    rows.extend(versus(&scenario("LRU"), &measured[1], &measured[3..]));
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
