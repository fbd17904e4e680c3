//! `coherence/staleness`: how long after a write another process still reads the old value,
//! across two real OS processes sharing the run's redis-server on loopback.
//!
//! Process A (the reader) and process B (the writer) are the runner's own binary re-executed in
//! peer mode (`--peer <role> <redis-url> <namespace>`, see [`super::child`]): each builds a
//! memory-over-Redis tower (an unbounded `MemoryAdapter` over a `RedisAdapter` with namespace
//! `stale:`, invalidation on, default settings) and waits until its invalidation listener has
//! subscribed before it says `ready`. (`coherence/cluster-staleness` runs the same peers on a
//! Redis Cluster: a `<redis-url>` of `cluster:<host:port>,...` names the cluster's seeds.)
//!
//! For each write:
//! 1. The runner tells A `arm <key> <old> <new>`: A reads the key until it gets the current value
//!    *from its memory layer* (it has read it, the memory layer holds it, and still holds it 1 ms
//!    later, so no late news of an earlier change is on its way), answers `armed`, then calls
//!    its own `tower.get` in a loop (a `yield_now` between calls) until it reads the new version,
//!    and prints `seen` at once.
//! 2. The write: a library write is B's `tower.set(key, new)` (the runner sends `set` to B, and
//!    stamps B's `ok` when its line arrives); an external write is a plain redis-rs `SET` of the
//!    JSON under namespace + key, from the runner itself (stamped when the reply returns); a
//!    library delete is B's `tower.delete(key)` (the key is first set with a raw `SET`, and A
//!    waits for a miss).
//! 3. Staleness is the time from the write's stamp to the stamp of A's `seen` line. Both stamps
//!    are taken by the runner's monotonic clock as the lines arrive, so no two clocks are
//!    compared. The pipe hops add error either way (B's `ok` travels one pipe hop before its
//!    stamp, A's `seen` one hop too); their size is measured as a `ping` round trip to A.
//!
//! What A waits for includes the re-read: once the change has evicted A's memory copy, A's next
//! `get` misses memory and fetches the new value from Redis (one round trip).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter, adapter::CacheAdapter};
use cache_tower_tests::tracking::subscribed_tower;

use super::child::Child;
use super::{BoxResult, Scenario};
use crate::data::Dataset;
use crate::harness::Settings;
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "coherence/staleness", run };

/// The Redis namespace of both peers' towers.
const NAMESPACE: &str = "stale:";
/// The one key written and read.
const KEY: &str = "k";
/// The value a reader waits for after a delete: the key is absent.
pub(super) const ABSENT: &str = "-";
/// How long A waits for a new version before it says `timeout`.
pub(super) const GIVE_UP: Duration = Duration::from_secs(2);
/// How long the runner waits for any line from a peer.
pub(super) const REPLY: Duration = Duration::from_secs(15);

/// The two peer processes on `target` (A reading, B writing, both `ready`, with towers under
/// `namespace`), and the round trips of 200 pings over A's pipes, sorted, in µs: the error of
/// the stamps.
pub(super) fn start_peers(target: &str, namespace: &str) -> BoxResult<(Child, Child, Vec<f64>)> {
    let mut reader = Child::spawn("peer A (reader)", &["--peer", "reader", target, namespace])?;
    reader.expect("ready", REPLY)?;
    let mut writer = Child::spawn("peer B (writer)", &["--peer", "writer", target, namespace])?;
    writer.expect("ready", REPLY)?;
    let mut pings = Vec::new();
    for _ in 0..200 {
        let sent = Instant::now();
        reader.send("ping")?;
        let at = reader.expect("pong", REPLY)?;
        pings.push(at.duration_since(sent).as_secs_f64() * 1e6);
    }
    pings.sort_by(f64::total_cmp);
    Ok((reader, writer, pings))
}
/// The project's bar for the p99.
const BAR: Duration = Duration::from_millis(10);

/// The peer's `<redis-url>` argument that names a Redis Cluster: this prefix, then its seeds
/// (`host:port`), comma-separated.
pub(super) const CLUSTER_PREFIX: &str = "cluster:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Write {
    /// B's `tower.set`.
    LibrarySet,
    /// A raw redis-rs `SET` of the JSON from the runner.
    ExternalSet,
    /// B's `tower.delete`.
    LibraryDelete,
}

impl Write {
    fn describe(self) -> &'static str {
        match self {
            Self::LibrarySet => "library write: process B `tower.set` (B's `ok` → A reads the new value)",
            Self::ExternalSet => "external write: redis-rs `SET stale:k <json>` from the runner (reply → A reads it)",
            Self::LibraryDelete => "library delete: process B `tower.delete` (B's `ok` → A reads a miss)",
        }
    }
}

/// The staleness figures of one kind of write.
struct Figures {
    write: Write,
    micros: Vec<f64>,
    /// A's `seen` arrived before the write's stamp (counted as 0).
    early: usize,
    timeouts: usize,
}

fn run(_: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let redis = match services.redis() {
        Ok(redis) => redis,
        Err(reason) => return Ok(super::redis_support::skipped(SCENARIO.id, reason)),
    };
    let url = redis.url.as_str();
    let mut raw = redis::Client::open(url)?.get_connection()?;
    redis::cmd("DEL").arg(format!("{NAMESPACE}{KEY}")).query::<()>(&mut raw)?;

    let (mut reader, mut writer, pings) = start_peers(url, NAMESPACE)?;

    let writes = settings.staleness_writes;
    let mut version = 0u64;
    let mut all = Vec::new();
    for write in [Write::LibrarySet, Write::ExternalSet, Write::LibraryDelete] {
        eprintln!("  {} writes: {}", writes, write.describe());
        let mut figures = Figures { write, micros: Vec::with_capacity(writes), early: 0, timeouts: 0 };
        let mut current = format!("v{version}");
        set_raw(&mut raw, &current)?;
        for _ in 0..writes {
            version += 1;
            let new = if write == Write::LibraryDelete { ABSENT.to_string() } else { format!("v{version}") };
            reader.send(&format!("arm {KEY} {current} {new}"))?;
            reader.expect("armed", REPLY)?;
            let written = match write {
                Write::LibrarySet => {
                    writer.send(&format!("set {KEY} {new}"))?;
                    writer.expect("ok", REPLY)?
                }
                Write::ExternalSet => set_raw(&mut raw, &new)?,
                Write::LibraryDelete => {
                    writer.send(&format!("delete {KEY}"))?;
                    writer.expect("ok", REPLY)?
                }
            };
            let (seen, line) = reader.recv(REPLY)?;
            match line.as_str() {
                "seen" => {
                    if seen < written {
                        figures.early += 1;
                    }
                    figures.micros.push(seen.saturating_duration_since(written).as_secs_f64() * 1e6);
                }
                "timeout" => {
                    figures.timeouts += 1;
                    figures.micros.push(GIVE_UP.as_secs_f64() * 1e6);
                }
                other => return Err(format!("peer A: {other}").into()),
            }
            current = new;
            if write == Write::LibraryDelete {
                // Put the key back for the next delete; A arms on it.
                version += 1;
                current = format!("v{version}");
                set_raw(&mut raw, &current)?;
            }
        }
        log_spread(&figures.micros, figures.timeouts);
        all.push(figures);
    }
    reader.send("quit")?;
    writer.send("quit")?;

    let mut table = format!(
        "### Cross-process staleness (`coherence/staleness`)\n\n\
         Two OS processes (the runner's own binary in peer mode), A reading and B writing, each with a \
         memory-over-Redis tower (namespace `{NAMESPACE}`, invalidation on), on this run's redis-server over \
         loopback. Per write: A holds the key in its memory layer and polls its own `tower.get` (a \
         `yield_now` between calls); the figure is the time from the write returning (B's `ok` line, or \
         the raw client's reply, as it reached the runner) to A's `seen` line reaching the runner, both \
         stamped by the runner's one clock. It includes A's re-read from Redis after the eviction. A \
         `ping` round trip over A's pipes (the size of the stamping error) took p50 {:.0} µs, p99 {:.0} µs. \
         A waits at most {} s (a timeout counts as {} s).\n\n\
         | write | writes | p50 | p99 | max | over 10 ms | seen before the write's stamp (counted as 0) | timeouts |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        percentile(&pings, 50.0),
        percentile(&pings, 99.0),
        GIVE_UP.as_secs(),
        GIVE_UP.as_secs()
    );
    let mut notes = Vec::new();
    for figures in &all {
        let sorted = sorted(&figures.micros);
        let over = sorted.iter().filter(|&&us| us > BAR.as_secs_f64() * 1e6).count();
        let p99 = percentile(&sorted, 99.0);
        table.push_str(&format!(
            "| {} | {} | {:.0} µs | {:.0} µs | {:.0} µs | {over} | {} | {} |\n",
            figures.write.describe(),
            sorted.len(),
            percentile(&sorted, 50.0),
            p99,
            sorted.last().copied().unwrap_or(f64::NAN),
            figures.early,
            figures.timeouts
        ));
        let verdict = if p99 <= BAR.as_secs_f64() * 1e6 { "met" } else { "MISSED" };
        notes.push(format!(
            "coherence/staleness, {}: p99 {p99:.0} µs against the bar of {} ms: {verdict}",
            match figures.write {
                Write::LibrarySet => "library set",
                Write::ExternalSet => "external SET",
                Write::LibraryDelete => "library delete",
            },
            BAR.as_millis()
        ));
    }
    Ok(Outcome { notes, sections: vec![table], ..Outcome::default() })
}

/// A raw `SET` of `value` as JSON under namespace + key; the moment its reply came back.
fn set_raw(raw: &mut redis::Connection, value: &str) -> BoxResult<Instant> {
    redis::cmd("SET").arg(format!("{NAMESPACE}{KEY}")).arg(serde_json::to_vec(value)?).query::<()>(raw)?;
    Ok(Instant::now())
}

/// Logs the spread of one kind of write's staleness figures (µs) to stderr.
pub(super) fn log_spread(micros: &[f64], timeouts: usize) {
    let sorted = sorted(micros);
    eprintln!(
        "    p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs, {timeouts} timeouts",
        percentile(&sorted, 50.0),
        percentile(&sorted, 99.0),
        sorted.last().copied().unwrap_or(f64::NAN),
    );
}

pub(super) fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// The nearest-rank percentile of sorted values.
pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ===== peer mode =====

/// `--peer <role> <redis-url> <namespace>`: a memory-over-Redis tower in this process (on a Redis
/// Cluster when the URL is `cluster:<host:port>,...`), serving line commands on stdin, one answer
/// line each on stdout:
///
/// | command | answer |
/// |---|---|
/// | `arm <key> <old> <new>` | `armed` once the memory layer holds `old`; then `seen` when a `get` reads `new` (`-`: a miss), `timeout` after 2 s, or `err ...` |
/// | `set <key> <value>` | `ok` or `err ...` (the value is stored as a JSON string) |
/// | `delete <key>` | `ok` or `err ...` |
/// | `ping` | `pong` |
/// | `quit` | the peer exits |
///
/// Prints `ready` once its invalidation listener has subscribed.
pub fn peer_main(args: &[String]) -> ExitCode {
    let [_role, url, namespace] = args else {
        eprintln!("usage: <runner> --peer <role> <redis-url> <namespace>");
        return ExitCode::from(2);
    };
    let builder = match url.strip_prefix(CLUSTER_PREFIX) {
        Some(seeds) => RedisAdapter::builder().cluster(seeds.split(',')),
        None => RedisAdapter::builder().url(url.as_str()),
    };
    let redis = match builder.namespace(namespace.as_str()).build() {
        Ok(redis) => redis,
        Err(err) => {
            eprintln!("peer: {err}");
            return ExitCode::from(1);
        }
    };
    let memory = MemoryAdapter::new();
    // Panics (and so exits without `ready`) if the listener does not subscribe within 10 s.
    let tower = subscribed_tower(&memory, &redis);
    let mut out = std::io::stdout().lock();
    if say(&mut out, "ready").is_err() {
        return ExitCode::from(1);
    }
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["arm", key, old, new] => {
                if let Err(err) = arm(&tower, &memory, key, old) {
                    let _ = say(&mut out, &format!("err {err}"));
                    continue;
                }
                if say(&mut out, "armed").is_err() {
                    break;
                }
                watch(&tower, key, old, new)
            }
            ["set", key, value] => done(tower.set(key, (*value).to_string())),
            ["delete", key] => done(tower.delete(key)),
            ["ping"] => "pong".to_string(),
            ["quit"] => break,
            _ => format!("err bad command {line:?}"),
        };
        if say(&mut out, &reply).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn say(out: &mut impl std::io::Write, line: &str) -> std::io::Result<()> {
    writeln!(out, "{line}")?;
    out.flush()
}

fn done(result: cache_tower::Result<()>) -> String {
    match result {
        Ok(()) => "ok".to_string(),
        Err(err) => format!("err {}", err.to_string().replace('\n', " ")),
    }
}

/// Reads `key` until it is `old` and the memory layer holds it, and still holds it 1 ms later.
fn arm(tower: &CacheTower, memory: &MemoryAdapter, key: &str, old: &str) -> Result<(), String> {
    let deadline = Instant::now() + GIVE_UP;
    loop {
        let value = tower.get::<String>(key);
        if value.as_deref() == Some(old) && memory.exists(key).unwrap_or(false) {
            std::thread::sleep(Duration::from_millis(1));
            if memory.exists(key).unwrap_or(false) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{key:?} never settled in memory as {old:?} (last read {value:?})"));
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Polls `get key` until it reads `new`: `seen`, `timeout` or `err ...`.
fn watch(tower: &CacheTower, key: &str, old: &str, new: &str) -> String {
    let started = Instant::now();
    loop {
        match tower.get::<String>(key) {
            None if new == ABSENT => return "seen".to_string(),
            Some(value) if value == new => return "seen".to_string(),
            Some(value) if value == old => {}
            other => return format!("err read {other:?} while waiting for {new:?} after {old:?}"),
        }
        if started.elapsed() > GIVE_UP {
            return "timeout".to_string();
        }
        std::thread::yield_now();
    }
}
