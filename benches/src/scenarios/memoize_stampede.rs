//! 64 callers of a memoized function asking for the same cold key at once: how long until all of
//! them have the value, and how many times the body ran (it must run once).
//!
//! * 64 threads, released together by a `Barrier`: `#[cached_tower]` on a sync `fn` against
//!   `cached`'s `#[cached(sync_writes = "default")]` (which holds the cache's lock while the body
//!   runs, so the other callers wait and then read the value).
//! * 64 tokio tasks on a multi-thread runtime, released by a `tokio::sync::Barrier`:
//!   `#[cached_tower]` on an `async fn` against `#[cached(sync_writes = "default")]` on the same
//!   `async fn`.
//!
//! The body sleeps 1 ms (a stand-in for a query). Each round uses a new key, so every round
//! starts cold; the wall time runs from the first caller's release to the last caller's return.
//! Threads and tasks are spawned before the release, outside the measure.

use std::future::Future;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, cached_tower, registry};
use cached::proc_macro::cached;

use super::caches::CACHED;
use super::{BoxResult, Measured, Scenario, versus};
use crate::data::{Dataset, User};
use crate::harness::{Samples, Settings};
use crate::report::{Figure, Outcome};
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memoize/stampede-64", run };

/// Callers per round.
const CALLERS: usize = 64;

/// What the body takes.
const BODY: Duration = Duration::from_millis(1);

static OURS_SYNC_RUNS: AtomicU64 = AtomicU64::new(0);
static OURS_ASYNC_RUNS: AtomicU64 = AtomicU64::new(0);
static CACHED_SYNC_RUNS: AtomicU64 = AtomicU64::new(0);
static CACHED_ASYNC_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached_tower(config = "bench_stampede", key = "user:{n}")]
fn ours_sync(n: u64) -> User {
    OURS_SYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(BODY);
    User::sample(n)
}

#[cached_tower(config = "bench_stampede_async", key = "user:{n}")]
async fn ours_async(n: u64) -> User {
    OURS_ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BODY).await;
    User::sample(n)
}

#[cached(sync_writes = "default")]
fn cached_sync(n: u64) -> User {
    CACHED_SYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(BODY);
    User::sample(n)
}

#[cached(sync_writes = "default")]
async fn cached_async(n: u64) -> User {
    CACHED_ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BODY).await;
    User::sample(n)
}

/// The span from the first start to the last end.
fn wall(spans: &[(Instant, Instant)]) -> Duration {
    let first = spans.iter().map(|span| span.0).min();
    let last = spans.iter().map(|span| span.1).max();
    match (first, last) {
        (Some(first), Some(last)) => last - first,
        _ => Duration::ZERO,
    }
}

/// One round on threads: `CALLERS` threads call `call(n)` at once.
fn threads_round(call: fn(u64) -> User, n: u64) -> Duration {
    let start_line = Barrier::new(CALLERS);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let start_line = &start_line;
                scope.spawn(move || {
                    start_line.wait();
                    let started = Instant::now();
                    black_box(call(n));
                    (started, Instant::now())
                })
            })
            .collect();
        callers.into_iter().map(|caller| caller.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    wall(&spans)
}

/// One round on tasks: `CALLERS` tasks call `call(n)` at once.
fn tasks_round<F, Fut>(runtime: &tokio::runtime::Runtime, call: F, n: u64) -> Duration
where
    F: Fn(u64) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = User> + Send,
{
    runtime.block_on(async move {
        let start_line = std::sync::Arc::new(tokio::sync::Barrier::new(CALLERS));
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let start_line = std::sync::Arc::clone(&start_line);
                tokio::spawn(async move {
                    start_line.wait().await;
                    let started = Instant::now();
                    black_box(call(n).await);
                    (started, Instant::now())
                })
            })
            .collect();
        let mut spans = Vec::with_capacity(CALLERS);
        for caller in callers {
            spans.push(caller.await.unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic())));
        }
        wall(&spans)
    })
}

/// One contender: how a round runs, and the counter of its body's runs.
struct Contender<'a> {
    name: String,
    round: Box<dyn Fn(u64) -> Duration + 'a>,
    runs: &'static AtomicU64,
}

/// Body runs per round of one contender, and its wall times in µs.
#[derive(Default)]
struct Record {
    walls: Vec<f64>,
    runs: Vec<u64>,
}

impl Record {
    fn runs_note(&self, name: &str) -> String {
        let (min, max) = (self.runs.iter().min().copied().unwrap_or(0), self.runs.iter().max().copied().unwrap_or(0));
        let total: u64 = self.runs.iter().sum();
        let verdict = if min == 1 && max == 1 {
            "once per key in every round".to_string()
        } else {
            format!("{min} to {max} times per key: NOT once")
        };
        format!("{name}: the body ran {verdict} ({total} runs in {} rounds of {CALLERS} callers)", self.runs.len())
    }
}

fn run(_: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    for name in ["bench_stampede", "bench_stampede_async"] {
        let tower = CacheTower::new();
        tower.add_layer(MemoryAdapter::new());
        registry::register(name, tower);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let workers = runtime.metrics().num_workers();
    let runtime = &runtime;
    let contenders = [
        Contender {
            name: "cache-tower `#[cached_tower]` sync fn".into(),
            round: Box::new(|n| threads_round(ours_sync, n)),
            runs: &OURS_SYNC_RUNS,
        },
        Contender {
            name: format!("{CACHED} `#[cached(sync_writes = \"default\")]` sync fn"),
            round: Box::new(|n| threads_round(cached_sync, n)),
            runs: &CACHED_SYNC_RUNS,
        },
        Contender {
            name: "cache-tower `#[cached_tower]` async fn".into(),
            round: Box::new(move |n| tasks_round(runtime, ours_async, n)),
            runs: &OURS_ASYNC_RUNS,
        },
        Contender {
            name: format!("{CACHED} `#[cached(sync_writes = \"default\")]` async fn"),
            round: Box::new(move |n| tasks_round(runtime, cached_async, n)),
            runs: &CACHED_ASYNC_RUNS,
        },
    ];

    // Rounds interleave the contenders in a rotating order, as the harness does; round r asks for
    // key r, cold for every contender.
    let mut records: Vec<Record> = contenders.iter().map(|_| Record::default()).collect();
    for round in 0..settings.warmup_rounds + settings.samples {
        for turn in 0..contenders.len() {
            let c = (turn + round) % contenders.len();
            let contender = &contenders[c];
            let before = contender.runs.load(Ordering::SeqCst);
            let wall = (contender.round)(round as u64);
            let runs = contender.runs.load(Ordering::SeqCst) - before;
            if round >= settings.warmup_rounds {
                records[c].walls.push(wall.as_secs_f64() * 1e6);
            }
            records[c].runs.push(runs);
        }
    }

    let measured: Vec<Measured> = contenders
        .iter()
        .zip(&records)
        .map(|(contender, record)| {
            Measured::new(&contender.name, Samples::from(record.walls.clone()), Figure::WallMicros)
        })
        .collect();

    let mut notes: Vec<String> = contenders
        .iter()
        .zip(&records)
        .map(|(c, r)| format!("memoize/stampede-64: {}", r.runs_note(&c.name)))
        .collect();
    notes.push(format!(
        "memoize/stampede-64: the body sleeps {} ms; each figure is the median over rounds of the wall time from \
         the release of {CALLERS} callers until the last one has the value (threads: a `Barrier`; tasks: a \
         `tokio::sync::Barrier` on a multi-thread runtime of {workers} workers).",
        BODY.as_millis()
    ));
    let mut rows = versus(
        &format!("{CALLERS} threads, one cold key (µs wall until all have it, lower is better)"),
        &measured[0],
        &measured[1..2],
    );
    rows.extend(versus(
        &format!("{CALLERS} tokio tasks, one cold key (µs wall until all have it, lower is better)"),
        &measured[2],
        &measured[3..4],
    ));
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
