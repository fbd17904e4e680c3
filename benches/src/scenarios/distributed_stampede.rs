//! `redis/distributed-stampede`: 4 processes × 64 callers ask for one cold key at once, through
//! memory-over-Redis towers sharing the run's redis-server. With the distributed lock
//! (`LoadOptions::lock`) the loader must run once in all, and everyone must have the value about
//! one loader run and one round trip after the release; without it, each process's single flight
//! runs the loader once per process (what a per-process cache — moka's `get_with`, `cached`'s
//! `sync_writes` — can do at best).
//!
//! The processes are the runner's own binary re-executed in stampede mode
//! (`--stampede-peer <redis-url> <namespace> <callers> <loader-ms> <lock-ms>`, see
//! [`super::child`]; `lock-ms` 0: no lock): each builds an unbounded `MemoryAdapter` over a
//! `RedisAdapter` (invalidation on, default settings), waits until its invalidation listener has
//! subscribed, and says `ready`. For each round the runner picks a new key (cold everywhere) and
//! a start time 50 ms ahead on the wall clock (`SystemTime`, which every process on the machine
//! shares), and sends `round <key> <start>` to the four: each spawns its callers, which wait on a
//! barrier that its main thread opens at the start time; each caller calls
//! `get_or_set_with(key, options, loader)`, the loader sleeping the loader time (a stand-in for a
//! query) and counting its runs. A process answers `done <last return> <loader runs> <release
//! lateness>`. The round's wall time runs from the start time to the last return of any caller
//! in any process.
//!
//! The bar's yardstick, "one loader run plus one round trip", is measured in the same round: the
//! loader time plus the median of five `GET` round trips from the runner right after the round.

use std::process::ExitCode;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_tower::{CacheTower, LoadOptions, MemoryAdapter, RedisAdapter};
use cache_tower_tests::tracking::subscribed_tower;

use super::child::Child;
use super::{BoxResult, Measured, Scenario, versus};
use crate::data::{Dataset, User};
use crate::harness::{Samples, Settings};
use crate::report::{Figure, Outcome};
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "redis/distributed-stampede", run };

/// Processes per contender.
const PROCESSES: usize = 4;
/// Callers per process.
const CALLERS: usize = 64;
/// What the loader takes.
const LOADER: Duration = Duration::from_millis(50);
/// The lock timeout of the locked contender: far above the loader time, so no caller gives up.
const LOCK: Duration = Duration::from_secs(2);
/// How far ahead of sending a round its start time is: room for four processes to read the line
/// and spawn their callers on two cores.
const LEAD: Duration = Duration::from_millis(50);
/// A process released its callers this late, or later, in some round: the round's figure is
/// suspect (reported as a warning).
const LATE: Duration = Duration::from_millis(5);
/// How long the runner waits for any line from a process.
const REPLY: Duration = Duration::from_secs(20);
/// The Redis namespace of the processes' towers.
const NAMESPACE: &str = "dstampede:";

/// Nanoseconds since the Unix epoch on the wall clock that every process of the machine shares.
fn wall_clock_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_nanos()).unwrap_or_default()
}

/// One contender: its processes and what each round gave.
struct Contender {
    name: String,
    processes: Vec<Child>,
    walls: Vec<f64>,
    loads: Vec<u64>,
    late_rounds: usize,
}

impl Contender {
    fn start(name: &str, url: &str, lock: Duration) -> BoxResult<Self> {
        let (callers, loader, lock) =
            (CALLERS.to_string(), LOADER.as_millis().to_string(), lock.as_millis().to_string());
        let mut processes = Vec::with_capacity(PROCESSES);
        for p in 0..PROCESSES {
            let args = ["--stampede-peer", url, NAMESPACE, callers.as_str(), loader.as_str(), lock.as_str()];
            processes.push(Child::spawn(&format!("{name} process {p}"), &args)?);
        }
        for process in &mut processes {
            process.expect("ready", REPLY)?;
        }
        Ok(Self { name: name.to_string(), processes, walls: Vec::new(), loads: Vec::new(), late_rounds: 0 })
    }

    /// One round on `key`: the wall time, how many times the loader ran in all, and whether a
    /// process released its callers [`LATE`] or later.
    fn round(&mut self, key: &str) -> BoxResult<(Duration, u64, bool)> {
        let start = wall_clock_ns() + LEAD.as_nanos();
        for process in &mut self.processes {
            process.send(&format!("round {key} {start}"))?;
        }
        let (mut last, mut loads, mut late) = (start, 0, false);
        for process in &mut self.processes {
            let (_, line) = process.recv(REPLY)?;
            let words: Vec<&str> = line.split_whitespace().collect();
            let ["done", end, runs, lateness_ns] = words.as_slice() else {
                return Err(format!("{}: expected `done …`, got {line:?}", self.name).into());
            };
            last = last.max(end.parse()?);
            loads += runs.parse::<u64>()?;
            late |= lateness_ns.parse::<u128>()? >= LATE.as_nanos();
        }
        let wall = Duration::from_nanos(u64::try_from(last - start).unwrap_or(u64::MAX));
        Ok((wall, loads, late))
    }
}

/// The median of five `GET` round trips on `connection` (a key that is not there).
fn round_trip(connection: &mut redis::Connection) -> BoxResult<Duration> {
    let mut trips = Vec::with_capacity(5);
    for _ in 0..5 {
        let started = Instant::now();
        redis::cmd("GET").arg("dstampede:no such key").query::<Option<String>>(connection)?;
        trips.push(started.elapsed());
    }
    trips.sort_unstable();
    Ok(trips[2])
}

fn run(_: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let redis = match services.redis() {
        Ok(redis) => redis,
        Err(reason) => return Ok(super::redis_support::skipped(SCENARIO.id, reason)),
    };
    let url = redis.url.as_str();
    let mut raw = redis::Client::open(url)?.get_connection()?;
    let mut contenders = [
        Contender::start("cache-tower, distributed lock (`LoadOptions::lock`)", url, LOCK)?,
        Contender::start("cache-tower, each process's single flight only (no lock)", url, Duration::ZERO)?,
    ];
    let mut yardstick = Vec::new();
    for round in 0..settings.warmup_rounds + settings.samples {
        for turn in 0..contenders.len() {
            let c = (turn + round) % contenders.len();
            let contender = &mut contenders[c];
            let (wall, loads, late) = contender.round(&format!("cold:{c}:{round}"))?;
            if round >= settings.warmup_rounds {
                contender.walls.push(wall.as_secs_f64() * 1e6);
                contender.loads.push(loads);
                contender.late_rounds += usize::from(late);
            }
        }
        if round >= settings.warmup_rounds {
            yardstick.push((LOADER + round_trip(&mut raw)?).as_secs_f64() * 1e6);
        }
    }
    let yardstick_name = format!("one loader run ({} ms) + one Redis round trip (`GET`)", LOADER.as_millis());
    let measured: Vec<Measured> = contenders
        .iter()
        .map(|contender| Measured::new(&contender.name, Samples::from(contender.walls.clone()), Figure::WallMicros))
        .chain(std::iter::once(Measured::new(&yardstick_name, Samples::from(yardstick), Figure::WallMicros)))
        .collect();

    let mut notes: Vec<String> = contenders.iter().map(loads_note).collect();
    notes.push(format!(
        "redis/distributed-stampede: {PROCESSES} processes × {CALLERS} threads, memory over one Redis, one new key per \
         round; the loader sleeps {} ms; each figure is the median over rounds of the wall time from the common \
         start (a wall-clock instant each process waits for) until the last caller of any process has the value. \
         The lock's waiters are woken by the invalidation their miss subscribed them to, and look again every \
         10 ms otherwise.",
        LOADER.as_millis()
    ));
    for contender in &contenders {
        if contender.late_rounds > 0 {
            notes.push(format!(
                "warning: redis/distributed-stampede: {}: in {} rounds a process released its callers {} ms or more \
                 after the start (a busy machine); those rounds' walls include the delay.",
                contender.name,
                contender.late_rounds,
                LATE.as_millis()
            ));
        }
    }
    let title =
        format!("{PROCESSES} processes × {CALLERS} callers, one cold key (µs wall until all have it, lower is better)");
    let mut rows = versus(&title, &measured[0], &measured[2..3]);
    rows.extend(versus(&title, &measured[0], &measured[1..2]));
    Ok(Outcome { rows, notes, ..Outcome::default() })
}

/// Whether the loader ran as it should: once per round with the lock, at most once per process
/// without.
fn loads_note(contender: &Contender) -> String {
    let min = contender.loads.iter().min().copied().unwrap_or(0);
    let max = contender.loads.iter().max().copied().unwrap_or(0);
    let total: u64 = contender.loads.iter().sum();
    let rounds = contender.loads.len();
    let verdict = match (min, max) {
        (1, 1) => "once in all, in every round".to_string(),
        (min, max) => format!("{min} to {max} times per round"),
    };
    format!(
        "redis/distributed-stampede: {}: the loader ran {verdict} ({total} runs in {rounds} rounds)",
        contender.name
    )
}

// ===== the child process =====

/// `--stampede-peer <redis-url> <namespace> <callers> <loader-ms> <lock-ms>`: see the module docs.
pub fn peer_main(args: &[String]) -> ExitCode {
    match peer(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("stampede peer: {err}");
            ExitCode::from(1)
        }
    }
}

fn peer(args: &[String]) -> BoxResult<()> {
    let [url, namespace, callers, loader_ms, lock_ms] = args else {
        return Err("usage: <runner> --stampede-peer <redis-url> <namespace> <callers> <loader-ms> <lock-ms>".into());
    };
    let callers: usize = callers.parse()?;
    let loader = Duration::from_millis(loader_ms.parse()?);
    let options = match lock_ms.parse()? {
        0 => LoadOptions::new(),
        ms => LoadOptions::new().lock(Duration::from_millis(ms)),
    };
    let redis = RedisAdapter::builder().url(url.as_str()).namespace(namespace.as_str()).build()?;
    let memory = MemoryAdapter::new();
    let tower = subscribed_tower(&memory, &redis);
    // Warm the data connections, so that the first round does not pay for opening them.
    tower.set("warm", 1u8)?;
    let mut out = std::io::stdout().lock();
    say(&mut out, "ready")?;
    for line in std::io::stdin().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["round", key, start] => stampede(&tower, &options, key, start.parse()?, callers, loader),
            ["quit"] => break,
            _ => format!("err bad command {line:?}"),
        };
        say(&mut out, &reply)?;
    }
    Ok(())
}

/// One round: `callers` threads released at `start` (wall-clock ns) call `get_or_set_with` of
/// `key`. Answers `done <last return ns> <loader runs> <release lateness ns>`.
fn stampede(
    tower: &CacheTower,
    options: &LoadOptions,
    key: &str,
    start: u128,
    callers: usize,
    loader: Duration,
) -> String {
    let loads = AtomicU64::new(0);
    let start_line = Barrier::new(callers + 1);
    let (last, lateness) = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..callers)
            .map(|_| {
                let (loads, start_line) = (&loads, &start_line);
                scope.spawn(move || {
                    start_line.wait();
                    let user: User = tower.get_or_set_with(key, options, || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(loader);
                        User::sample(7)
                    });
                    std::hint::black_box(user);
                    wall_clock_ns()
                })
            })
            .collect();
        let wait = start.saturating_sub(wall_clock_ns());
        std::thread::sleep(Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX)));
        let lateness = wall_clock_ns().saturating_sub(start);
        start_line.wait();
        let last = threads.into_iter().filter_map(|thread| thread.join().ok()).max().unwrap_or_default();
        (last, lateness)
    });
    format!("done {last} {} {lateness}", loads.load(Ordering::SeqCst))
}

fn say(out: &mut impl std::io::Write, line: &str) -> std::io::Result<()> {
    writeln!(out, "{line}")?;
    out.flush()
}
