//! The scenarios: each builds its caches, measures cache-tower and its peers side by side, and
//! returns one table row per peer.
//!
//! Unless a scenario says otherwise, every cache is filled with the same 10,000 entries and has
//! room for all of them: cache-tower is a tower of one unbounded `MemoryAdapter` (no TTL), moka
//! is unbounded, and quick_cache (always bounded) gets twice the room it needs. Reads hit.
//!
//! The Redis scenarios (`redis/...`) compare cache-tower over a Redis server with the raw
//! redis-rs client doing the same work; the memoize scenarios (`memoize/...`) compare
//! `#[cached_tower]` with `cached`'s `#[cached]`. See each file.
//!
//! Two scenarios run child processes, the runner's own binary re-executed in a hidden mode (see
//! [`child`]): `coherence/staleness` (two towers in two processes sharing one Redis) and
//! `memory/bounded-rss` (each contender's memory measured in a fresh process).
//!
//! To add a scenario, write a file with a `SCENARIO` constant and list it in [`all`]. Its `id`
//! is what `--filter` matches.

mod bounded_rss;
mod caches;
mod child;
mod get_hit;
mod get_or_set_hit;
mod get_two_threads;
mod memoize_hit;
mod memoize_stampede;
mod redis_get_backfill;
mod redis_get_hit;
mod redis_mget;
mod redis_mset;
mod redis_support;
mod relay;
mod set_overwrite;
mod staleness;

use crate::data::Dataset;
use crate::harness::{self, Contender, Samples, Settings};
use crate::report::{Figure, Outcome, Row};
use crate::services::Services;
pub use child::dispatch as child_mode;
pub use redis_support::{COUNTED_OPS, MIN_COMMANDS_PER_OP};

/// What a scenario's `run` returns: its outcome, or whatever stopped it.
pub type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// One scenario of the benchmark run.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// A short, stable name, matched by `--filter`: `memory/get-hit`, ...
    pub id: &'static str,
    /// Builds the caches, measures, returns the rows. It gets the servers it may start (Redis).
    pub run: fn(&Dataset, &Settings, &Services) -> BoxResult<Outcome>,
}

/// Every scenario, in table order.
pub fn all() -> Vec<Scenario> {
    vec![
        get_hit::SCENARIO,
        set_overwrite::SCENARIO,
        get_two_threads::SCENARIO,
        get_or_set_hit::SCENARIO,
        redis_get_hit::SCENARIO,
        redis_mget::SCENARIO,
        redis_mset::SCENARIO,
        redis_get_backfill::SCENARIO,
        memoize_hit::SCENARIO,
        memoize_hit::SCENARIO_OVER_REDIS,
        memoize_stampede::SCENARIO,
        staleness::SCENARIO,
        bounded_rss::SCENARIO,
    ]
}

/// One contender's median figure.
#[derive(Debug, Clone)]
struct Measured {
    name: String,
    figure: Figure,
}

/// Measures ns/op of every contender on one thread (thread 0's read sequence), and logs each
/// median with its spread to stderr.
fn measure_ns_per_op(contenders: &[Contender<'_>], data: &Dataset, settings: &Settings) -> Vec<Measured> {
    let samples = harness::ns_per_op(contenders, data.reads(0), settings);
    summarize(contenders, &samples, Figure::NsPerOp)
}

/// Measures µs/op of every contender on one thread over `indices` (operations that cross the
/// network: fewer of them per sample).
fn measure_micros_per_op(contenders: &[Contender<'_>], indices: &[u32], settings: &Settings) -> Vec<Measured> {
    let samples = harness::ns_per_op(contenders, indices, settings);
    summarize(contenders, &samples, |ns| Figure::MicrosPerOp(ns / 1_000.0))
}

/// Measures the total throughput of every contender with one thread per read sequence.
fn measure_throughput(contenders: &[Contender<'_>], data: &Dataset, settings: &Settings) -> Vec<Measured> {
    let per_thread: Vec<&[u32]> = data.reads.iter().map(Vec::as_slice).collect();
    let samples = harness::throughput(contenders, &per_thread, settings);
    summarize(contenders, &samples, Figure::MopsPerSec)
}

fn summarize(contenders: &[Contender<'_>], samples: &[Samples], unit: fn(f64) -> Figure) -> Vec<Measured> {
    contenders
        .iter()
        .zip(samples)
        .map(|(contender, samples)| {
            let figure = unit(samples.median());
            eprintln!("  {:<40} {figure:>16}  (spread {:.0}%)", contender.name(), samples.spread() * 100.0);
            Measured { name: contender.name().to_string(), figure }
        })
        .collect()
}

/// The rows of `scenario`: `ours` against each of `peers`.
fn versus(scenario: &str, ours: &Measured, peers: &[Measured]) -> Vec<Row> {
    peers
        .iter()
        .map(|peer| Row {
            scenario: scenario.to_string(),
            ours: ours.figure,
            peer: peer.name.clone(),
            theirs: peer.figure,
        })
        .collect()
}
