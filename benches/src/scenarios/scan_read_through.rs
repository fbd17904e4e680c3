//! Scan resistance, read-through, one thread: does a cache keep its hot set while a one-pass scan
//! of cold keys flows through it? A hot set of [`HOT`] keys (`user:0` to `user:4999`) read
//! uniformly at random, and cold keys (`user:5000` onwards) each read exactly once, in order;
//! caches of [`SCAN_BOUND`] entries, twice the hot set. A scan-resistant policy lets the cold keys
//! pass and keeps the hot ones; a recency or insertion-order policy lets the scan push them out.
//!
//! * cache-tower: `get_or_set(key, compute)` (FIFO, LRU and S3-FIFO layers);
//! * moka: `get_with_by_ref(&str, compute)` (TinyLFU and LRU);
//! * quick_cache: `get_or_insert_with(&str, compute)`;
//! * cached: a `#[cached(max_size = 10000)]` function whose body is the computation.
//!
//! The computation is the same for every contender ([`load_user`], as in the Zipf scenarios),
//! counted per contender, hot keys apart from cold ones. Three phases, the same key sequences for
//! every contender:
//!
//! 1. warm, untimed: [`WARM_OPS`] hot reads, every hot key once (in a shuffled order), then the
//!    rest at random, so every cache holds the hot set (checked: each contender computes each hot
//!    key exactly once);
//! 2. the scan, timed by rounds (warm-up rounds included): groups of [`COLD_PER_HOT`] cold reads,
//!    the next keys of the scan, then one hot read; each round reads `ops_per_sample / 10` keys
//!    (whole groups), the next stretch of the scan, the same for every contender of the round.
//!    The scan has at least [`COLD_MIN`] cold keys: when the rounds need more, the cold key count
//!    follows from the settings (every cold key is still read once), and when they need fewer,
//!    the rounds are made longer;
//! 3. after, untimed: [`AFTER_OPS`] hot reads.
//!
//! Each row's hit ratio is the hot-set hit ratio during the scan: hot reads that hit / hot reads
//! of phase 2 (cold reads always miss, and are left out of it). The hot-set hit ratio after the
//! scan (phase 3) is in the notes; both go to stderr too.

use cache_tower::adapter::EvictionPolicy;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use cache_tower::CacheTower;
use cached::proc_macro::cached;

use super::caches::{self, CACHED_LRU, MOKA_LRU, MOKA_TINY_LFU, QUICK_CACHE_POLICY};
use super::{BoxResult, Scenario, measure_ns_per_op_by_round, versus};
use crate::data::{Dataset, SplitMix64, User, key, load_user, permutation};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memory/scan", run };

/// How many hot keys: key indices `0..HOT`.
const HOT: usize = 5_000;
/// The fewest cold keys the scan reads (key indices `HOT..`), each once.
const COLD_MIN: usize = 100_000;
/// Cold reads per hot read during the scan.
const COLD_PER_HOT: usize = 3;
/// The bound of every cache of this scenario, in entries.
const SCAN_BOUND: usize = 10_000;
/// Operations per round of the scan: `ops_per_sample` divided by this (three misses in four).
const OPS_DIVISOR: usize = 10;
/// Hot reads of the untimed warming pass.
const WARM_OPS: usize = 50_000;
/// Hot reads of the untimed pass after the scan.
const AFTER_OPS: usize = 50_000;
// The attribute below needs a literal.
const _: () = assert!(SCAN_BOUND == 10_000);

/// The computations of one contender, hot keys apart from cold ones.
struct Loads {
    hot: AtomicU64,
    cold: AtomicU64,
}

impl Loads {
    const fn new() -> Self {
        Self { hot: AtomicU64::new(0), cold: AtomicU64::new(0) }
    }

    fn count(&self, hot: bool) {
        if hot { &self.hot } else { &self.cold }.fetch_add(1, Ordering::Relaxed);
    }

    /// (hot, cold) so far.
    fn get(&self) -> (u64, u64) {
        (self.hot.load(Ordering::Relaxed), self.cold.load(Ordering::Relaxed))
    }
}

static CACHED_LOADS: Loads = Loads::new();

/// cached's read-through; `hot` only tells the counter which kind of key missed (the cache key is
/// `key` alone).
#[cached(max_size = 10000, key = "String", convert = r#"{ key.to_owned() }"#)]
fn cached_scan(key: &str, hot: bool) -> User {
    CACHED_LOADS.count(hot);
    load_user(key)
}

/// The computation of a miss of key index `i`, counted in `loads`.
fn compute(loads: &Loads, i: usize, key: &str) -> User {
    loads.count(i < HOT);
    load_user(key)
}

/// `len` hot key indices drawn uniformly from `0..HOT`.
fn hot_reads(rng: &mut SplitMix64, len: usize) -> impl Iterator<Item = u32> + '_ {
    (0..len).map(|_| rng.below(HOT) as u32)
}

fn run(_: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let id = SCENARIO.id;
    let rounds = settings.warmup_rounds + settings.samples;
    // Whole groups of `COLD_PER_HOT` cold reads and one hot read per round, enough of them for
    // the scan to reach `COLD_MIN` cold keys.
    let groups = (settings.ops_per_sample / OPS_DIVISOR / (COLD_PER_HOT + 1))
        .max(COLD_MIN.div_ceil(COLD_PER_HOT * rounds))
        .max(1);
    let len = groups * (COLD_PER_HOT + 1);
    let cold = rounds * groups * COLD_PER_HOT;
    let hot_in_scan = rounds * groups;

    let mut rng = SplitMix64(0x5CA9);
    let mut warm: Vec<u32> = permutation(HOT, 0x5CA9 ^ 0x77);
    warm.extend(hot_reads(&mut rng, WARM_OPS - HOT));
    let mut next_cold = HOT as u32..;
    let mut scan = Vec::with_capacity(rounds * len);
    for hot in hot_reads(&mut rng, hot_in_scan) {
        scan.extend(next_cold.by_ref().take(COLD_PER_HOT));
        scan.push(hot);
    }
    let per_round: Vec<Vec<u32>> = scan.chunks(len).map(<[u32]>::to_vec).collect();
    let after: Vec<u32> = hot_reads(&mut rng, AFTER_OPS).collect();
    let keys: Vec<String> = (0..HOT + cold).map(key).collect();

    let (fifo, lru, s3_fifo) = (CacheTower::new(), CacheTower::new(), CacheTower::new());
    fifo.add_layer(caches::memory(SCAN_BOUND, EvictionPolicy::Fifo));
    lru.add_layer(caches::memory(SCAN_BOUND, EvictionPolicy::Lru));
    s3_fifo.add_layer(caches::memory(SCAN_BOUND, EvictionPolicy::S3Fifo));
    let moka = caches::empty_moka::<User>(SCAN_BOUND, false);
    let moka_lru = caches::empty_moka::<User>(SCAN_BOUND, true);
    let quick = quick_cache::sync::Cache::<String, User>::new(SCAN_BOUND);
    let loads: [Loads; 6] = std::array::from_fn(|_| Loads::new());

    let keys = &keys;
    let loads_ref = &loads;
    let contenders = [
        Contender::per_op("cache-tower `get_or_set`, FIFO", |i| {
            black_box(fifo.get_or_set(&keys[i], || compute(&loads_ref[0], i, &keys[i])));
        }),
        Contender::per_op("cache-tower `get_or_set`, LRU (`lru: true`)", |i| {
            black_box(lru.get_or_set(&keys[i], || compute(&loads_ref[1], i, &keys[i])));
        }),
        Contender::per_op("cache-tower `get_or_set`, S3-FIFO (`policy: \"s3-fifo\"`)", |i| {
            black_box(s3_fifo.get_or_set(&keys[i], || compute(&loads_ref[2], i, &keys[i])));
        }),
        Contender::per_op(format!("{MOKA_TINY_LFU} `get_with_by_ref`"), |i| {
            black_box(moka.get_with_by_ref(keys[i].as_str(), || compute(&loads_ref[3], i, &keys[i])));
        }),
        Contender::per_op(format!("{MOKA_LRU} `get_with_by_ref`"), |i| {
            black_box(moka_lru.get_with_by_ref(keys[i].as_str(), || compute(&loads_ref[4], i, &keys[i])));
        }),
        Contender::per_op(format!("{QUICK_CACHE_POLICY} `get_or_insert_with`"), |i| {
            let value = quick.get_or_insert_with(keys[i].as_str(), || {
                Ok::<_, std::convert::Infallible>(compute(&loads_ref[5], i, &keys[i]))
            });
            black_box(value.ok());
        }),
        Contender::per_op(format!("{CACHED_LRU} `#[cached(max_size)]`"), |i| {
            black_box(cached_scan(&keys[i], i < HOT));
        }),
    ];
    let counts = || -> Vec<(u64, u64)> { loads.iter().chain([&CACHED_LOADS]).map(Loads::get).collect() };

    let before = counts();
    for contender in &contenders {
        contender.run(&warm);
    }
    let warmed = counts();
    let mut measured = measure_ns_per_op_by_round(&contenders, &per_round, settings);
    let scanned = counts();
    for contender in &contenders {
        contender.run(&after);
    }
    let finished = counts();

    let mut notes = Vec::new();
    let mut after_ratios = Vec::new();
    for (c, measured) in measured.iter_mut().enumerate() {
        let (warm_hot, warm_cold) = (warmed[c].0 - before[c].0, warmed[c].1 - before[c].1);
        let (scan_hot, scan_cold) = (scanned[c].0 - warmed[c].0, scanned[c].1 - warmed[c].1);
        let after_hot = finished[c].0 - scanned[c].0;
        // The warming reads only hot keys, each at least once, and the caches have room for
        // twice as many: one computation per hot key, or the cache dropped some before the scan.
        // A cold key is read once, so it always misses: one computation per cold read.
        if warm_hot != HOT as u64 || warm_cold != 0 || scan_cold != cold as u64 {
            let note = format!(
                "warning: {id}: {} computed {warm_hot} hot and {warm_cold} cold keys while warming (expected \
                 {HOT} and 0) and {scan_cold} cold keys during the scan (expected {cold})",
                measured.name
            );
            eprintln!("  {note}");
            notes.push(note);
        }
        let during = 1.0 - scan_hot as f64 / hot_in_scan as f64;
        let after = 1.0 - after_hot as f64 / AFTER_OPS as f64;
        eprintln!(
            "  {:<52} hot-set hit ratio during the scan {:.2}%, after {:.2}%",
            measured.name,
            during * 100.0,
            after * 100.0
        );
        measured.hit_ratio = Some(during);
        after_ratios.push(format!("{} {:.2}% ({after_hot} misses)", measured.name, after * 100.0));
    }

    notes.insert(
        0,
        format!(
            "{id}: a hot set of {HOT} keys read uniformly at random and a one-pass scan of {cold} cold keys \
             (each read once, in order), caches of {SCAN_BOUND} entries. Every cache was warmed first with \
             {WARM_OPS} hot reads (each hot key once, then at random). The timed scan: {COLD_PER_HOT} cold reads \
             per hot read, {rounds} rounds (warm-up rounds included) of {len} reads, the next stretch of the \
             scan each round, the same for every contender; {hot_in_scan} hot reads in all. The hit ratio in \
             the rows is the hot-set hit ratio during the scan (hot reads that hit / hot reads; the cold reads \
             all miss and are left out). The time per operation includes the computation of each miss \
             (`load_user`, the same for all), and three operations in four are cold misses."
        ),
    );
    notes.insert(
        1,
        format!(
            "{id}: hot-set hit ratio after the scan ({AFTER_OPS} hot reads, untimed; the first read of a hot key \
             the scan pushed out misses and brings it back, so the misses are roughly the hot keys lost, and a \
             cache that lost most of the hot set can still score above 90% here): {}.",
            after_ratios.join("; ")
        ),
    );
    let scenario = |policy| {
        format!(
            "read-through, hot set of {HOT} keys during a one-pass scan of {cold} cold keys ({COLD_PER_HOT} cold \
             reads per hot read), 1 thread, {policy}, bound {SCAN_BOUND} entries (ns/op with the hot-set hit \
             ratio during the scan; lower time, higher hits is better)"
        )
    };
    let mut rows = versus(&scenario("S3-FIFO"), &measured[2], &measured[3..]);
    rows.extend(versus(&scenario("FIFO"), &measured[0], &measured[3..]));
    rows.extend(versus(&scenario("LRU"), &measured[1], &measured[3..]));
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
