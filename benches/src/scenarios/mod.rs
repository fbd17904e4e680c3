//! The scenarios: each builds its caches, measures cache-tower and its peers side by side, and
//! returns one table row per peer.
//!
//! Every contender of a row has the same bound, in entries, and the row says which. The memory
//! scenarios that hold the 10,000 users bound every cache to `caches::BOUND` (12,500) entries, so
//! hits hit (checked after filling); `memory/get-miss` reads absent keys, `memory/insert-evict`
//! writes absent keys into full caches, the Zipf read-through scenarios draw 100,000 keys for
//! caches of 10,000, and `memory/scan` reads a hot set of 5,000 keys through caches of 10,000
//! while a one-pass scan of cold keys goes by. The memoize rows compare unbounded stores on both
//! sides.
//!
//! The Redis scenarios (`redis/...`) compare cache-tower over a Redis server with the raw
//! redis-rs client doing the same work (`redis/get-or-set-many`: the batch read-through
//! `get_or_set_many` of a memory-over-Redis tower against a hand-written `MGET` + loader +
//! pipelined `SET`s; `redis/clear`: the logical `clear` of a namespace of 1,000,000 keys against
//! `flush` of the same keys, and how soon another instance follows; `redis/invalidate-tag`:
//! `invalidate_tag` of a tag covering 10,000 entries against `delete_many` of the same keys, how
//! soon another instance follows, and an untagged hit with tags in use against one without);
//! the memoize scenarios (`memoize/...`) compare `#[cached_tower]` with `cached`'s `#[cached]`.
//! See each file.
//!
//! Four scenarios run child processes, the runner's own binary re-executed in a hidden mode (see
//! [`child`]): `coherence/staleness` and `coherence/cluster-staleness` (two towers in two
//! processes sharing one Redis, or one Redis Cluster), `redis/distributed-stampede` (four
//! processes of 64 callers each on one cold key) and `memory/bounded-rss` (each contender's
//! memory measured in a fresh process). The cluster scenarios (`cluster/...`) compare a tower
//! on a Redis Cluster with redis-rs's cluster connections and a hand-written per-master client.
//!
//! To add a scenario, write a file with a `SCENARIO` constant and list it in [`all`]. Its `id`
//! is what `--filter` matches, as a substring: `--filter memory/get-hit` also runs
//! `memory/get-hit-arc`.

mod bounded_rss;
mod caches;
mod child;
mod cluster_get;
mod cluster_mget;
mod cluster_mset;
mod cluster_staleness;
mod cluster_support;
mod distributed_stampede;
mod get_hit;
mod get_hit_arc;
mod get_miss;
mod get_or_set_hit;
mod get_two_threads;
mod insert_evict;
mod memoize_hit;
mod memoize_refreshing;
mod memoize_stampede;
mod redis_clear;
mod redis_get_backfill;
mod redis_get_hit;
mod redis_get_or_set_many;
mod redis_invalidate_tag;
mod redis_mget;
mod redis_mget_backfill;
mod redis_mset;
mod redis_support;
mod relay;
mod scan_read_through;
mod set_overwrite;
mod staleness;
mod zipf_read_through;

use crate::data::Dataset;
use crate::harness::{self, Contender, Samples, Settings};
use crate::report::{Detail, Figure, Outcome, Row};
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
        get_hit_arc::SCENARIO,
        get_miss::SCENARIO,
        set_overwrite::SCENARIO,
        insert_evict::SCENARIO,
        get_two_threads::SCENARIO,
        get_or_set_hit::SCENARIO,
        zipf_read_through::SCENARIO_09,
        zipf_read_through::SCENARIO_11,
        scan_read_through::SCENARIO,
        redis_get_hit::SCENARIO,
        redis_mget::SCENARIO,
        redis_mset::SCENARIO,
        redis_get_backfill::SCENARIO,
        redis_mget_backfill::SCENARIO,
        redis_get_or_set_many::SCENARIO,
        redis_clear::SCENARIO,
        redis_invalidate_tag::SCENARIO,
        cluster_get::SCENARIO,
        cluster_mget::SCENARIO,
        cluster_mset::SCENARIO,
        memoize_hit::SCENARIO,
        memoize_hit::SCENARIO_OVER_REDIS,
        memoize_refreshing::SCENARIO,
        memoize_stampede::SCENARIO,
        distributed_stampede::SCENARIO,
        staleness::SCENARIO,
        cluster_staleness::SCENARIO,
        bounded_rss::SCENARIO,
    ]
}

/// One contender's median figure, with its samples (in the figure's unit) and, for read-through
/// scenarios, its hit ratio.
#[derive(Debug, Clone)]
struct Measured {
    name: String,
    figure: Figure,
    samples: Samples,
    hit_ratio: Option<f64>,
}

impl Measured {
    /// The median of `samples` (in the unit `unit` makes of a sample), logged to stderr with the
    /// samples' p10–p90 and min–max.
    fn new(name: &str, samples: Samples, unit: fn(f64) -> Figure) -> Self {
        let figure = unit(samples.median());
        let samples = samples.map(|value| unit(value).value());
        let ((p10, p90), (min, max)) = (samples.p10_p90(), samples.min_max());
        eprintln!(
            "  {name:<52} {figure:>16}  p10–p90 {}–{}, min–max {}–{}",
            figure.number(p10),
            figure.number(p90),
            figure.number(min),
            figure.number(max)
        );
        Self { name: name.to_string(), figure, samples, hit_ratio: None }
    }

    fn detail(&self) -> Detail {
        Detail { p10_p90: Some(self.samples.p10_p90()), hit_ratio: self.hit_ratio }
    }
}

/// Measures ns/op of every contender on one thread (thread 0's read sequence), and logs each
/// median with its spread to stderr.
fn measure_ns_per_op(contenders: &[Contender<'_>], data: &Dataset, settings: &Settings) -> Vec<Measured> {
    let samples = harness::ns_per_op(contenders, data.reads(0), settings);
    summarize(contenders, samples, Figure::NsPerOp)
}

/// [`measure_ns_per_op`] with a sequence of its own per round (see [`harness::ns_per_op_by_round`]).
fn measure_ns_per_op_by_round(contenders: &[Contender<'_>], rounds: &[Vec<u32>], settings: &Settings) -> Vec<Measured> {
    let samples = harness::ns_per_op_by_round(contenders, rounds, settings);
    summarize(contenders, samples, Figure::NsPerOp)
}

/// Measures µs/op of every contender on one thread over `indices` (operations that cross the
/// network: fewer of them per sample).
fn measure_micros_per_op(contenders: &[Contender<'_>], indices: &[u32], settings: &Settings) -> Vec<Measured> {
    let samples = harness::ns_per_op(contenders, indices, settings);
    summarize(contenders, samples, |ns| Figure::MicrosPerOp(ns / 1_000.0))
}

/// Measures the total throughput of every contender with one thread per read sequence.
fn measure_throughput(contenders: &[Contender<'_>], data: &Dataset, settings: &Settings) -> Vec<Measured> {
    let per_thread: Vec<&[u32]> = data.reads.iter().map(Vec::as_slice).collect();
    let samples = harness::throughput(contenders, &per_thread, settings);
    summarize(contenders, samples, Figure::MopsPerSec)
}

fn summarize(contenders: &[Contender<'_>], samples: Vec<Samples>, unit: fn(f64) -> Figure) -> Vec<Measured> {
    contenders.iter().zip(samples).map(|(contender, samples)| Measured::new(contender.name(), samples, unit)).collect()
}

/// The rows of `scenario`: `ours` against each of `peers`, with the spread of each and the
/// p10–p90 of the per-round ratios (every contender of a scenario is sampled once per round).
fn versus(scenario: &str, ours: &Measured, peers: &[Measured]) -> Vec<Row> {
    peers
        .iter()
        .map(|peer| {
            let ratios = ours.samples.ratios(&peer.samples);
            Row {
                scenario: scenario.to_string(),
                ours: ours.figure,
                ours_detail: ours.detail(),
                peer: peer.name.clone(),
                theirs: peer.figure,
                theirs_detail: peer.detail(),
                ratio_p10_p90: (!ratios.values().is_empty()).then(|| ratios.p10_p90()),
            }
        })
        .collect()
}
