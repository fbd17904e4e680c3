//! `memoize/refreshing-hit`: a memoized call whose key is being refreshed in the background
//! (`refresh_ahead`), against a plain memoized hit, both `#[cached_tower]` on one memory layer.
//!
//! 64 keys, TTL 100 s on a manual clock. After filling, the clock moves 85 s on (past the 80% of
//! `refresh_ahead = 0.8`, still fresh), and one call per key starts its refresh, whose body then
//! waits on a gate for the whole measurement: every measured call of the refreshing function finds
//! its copy due and its refresh started (the copy's mark says so: it starts nothing). The
//! plain function's copies are as old, without `refresh_ahead`. Reported: the medians and their
//! ratio, and the p99 of the samples (per-sample ns/op) of each and their ratio.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cache_tower::clock::ManualClock;
use cache_tower::{CacheTower, MemoryAdapter, cached_tower, registry};

use super::{BoxResult, Scenario, measure_ns_per_op, versus};
use crate::data::{Dataset, User};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memoize/refreshing-hit", run };

const KEYS: u64 = 64;
/// Whether the refreshing body is a refresh (then it waits for [`GATE`]).
static REFRESHING: AtomicBool = AtomicBool::new(false);
/// Opened when the measurement is over.
static GATE: AtomicBool = AtomicBool::new(false);
static REFRESH_RUNS: AtomicUsize = AtomicUsize::new(0);
static PLAIN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "bench_plain_aged", key = "user:{id}", ttl = "100s")]
fn plain(id: u64) -> User {
    PLAIN_RUNS.fetch_add(1, Ordering::SeqCst);
    User::sample(id)
}

#[cached_tower(config = "bench_refreshing", key = "user:{id}", ttl = "100s", refresh_ahead = 0.8)]
fn refreshing(id: u64) -> User {
    if REFRESHING.load(Ordering::SeqCst) {
        REFRESH_RUNS.fetch_add(1, Ordering::SeqCst);
        while !GATE.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    User::sample(id)
}

fn tower(clock: &ManualClock) -> CacheTower {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().clock(clock.clone()).build());
    tower
}

fn run(data: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let clock = ManualClock::new();
    registry::register("bench_plain_aged", tower(&clock));
    registry::register("bench_refreshing", tower(&clock));
    for id in 0..KEYS {
        plain(id);
        refreshing(id);
    }
    clock.advance(Duration::from_secs(85));
    REFRESHING.store(true, Ordering::SeqCst);
    for id in 0..KEYS {
        refreshing(id); // starts the key's refresh, which waits on the gate
    }
    let plain_before = PLAIN_RUNS.load(Ordering::SeqCst);
    let contenders = [
        Contender::per_op("cache-tower `#[cached_tower]` hit, its key being refreshed", |i| {
            black_box(refreshing(i as u64 % KEYS));
        }),
        Contender::per_op("cache-tower `#[cached_tower]` plain hit", |i| {
            black_box(plain(i as u64 % KEYS));
        }),
    ];
    let mut measured = measure_ns_per_op(&contenders, data, settings).into_iter();
    GATE.store(true, Ordering::SeqCst);
    let (Some(ours), Some(plain_hit)) = (measured.next(), measured.next()) else {
        return Err("two contenders were measured".into());
    };
    let mut notes = Vec::new();
    let refreshes = REFRESH_RUNS.load(Ordering::SeqCst);
    let plain_runs = PLAIN_RUNS.load(Ordering::SeqCst) - plain_before;
    if refreshes != KEYS as usize || plain_runs != 0 {
        notes.push(format!(
            "warning: {refreshes} refreshes ran (expected {KEYS}, one per key) and the plain body ran {plain_runs} times while measuring"
        ));
    }
    let p99 = |samples: &crate::harness::Samples| samples.percentile(99.0);
    let (ours_p99, plain_p99) = (p99(&ours.samples), p99(&plain_hit.samples));
    notes.push(format!(
        "memoize/refreshing-hit: p99 of the samples (interpolated, of {}): {ours_p99:.1} ns/op while refreshed, {plain_p99:.1} plain, ratio {:.2}x; one refresh per key ran ({refreshes} of {KEYS}).",
        ours.samples.values().len(),
        ours_p99 / plain_p99
    ));
    let rows = versus(
        "memoized hit while its key is refreshed in the background, 64 keys, 1 thread (ns/op, lower is better)",
        &ours,
        &[plain_hit],
    );
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
