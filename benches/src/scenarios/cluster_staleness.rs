//! `coherence/cluster-staleness`: `coherence/staleness` on a Redis Cluster: how long after a
//! write another process still reads the old value, across two real OS processes whose towers
//! share the run's cluster on loopback, the keys written spread over every master.
//!
//! The peers are those of `coherence/staleness` ([`super::staleness`], `--peer <role>
//! cluster:<seeds> <namespace>`): each builds a memory-over-Redis tower (an unbounded
//! `MemoryAdapter` over a `RedisAdapter` on the cluster, namespace `cstale:`, invalidation on,
//! default settings; its listener tracks every master) and says `ready` once its invalidation
//! listener has subscribed. The measure is that scenario's, write by write, except that the
//! writes go round a set of keys chosen so that each master serves [`KEYS_PER_MASTER`] of them,
//! in turn (master 1, 2, 3, 1, ...): a library write is B's `tower.set`, an external write a
//! plain `SET` of the JSON under namespace + key from the runner's own sync redis-rs cluster
//! connection, a library delete B's `tower.delete`; staleness is the time from the write's stamp
//! to the stamp of A's `seen` line (both by the runner's clock), A's re-read from the cluster
//! included. Bar: p99 ≤ 2 ms for every kind of write.

use std::time::{Duration, Instant};

use super::cluster_support::{self, Nodes};
use super::staleness::{ABSENT, CLUSTER_PREFIX, GIVE_UP, REPLY, Write, log_spread, percentile, sorted, start_peers};
use super::{BoxResult, Scenario};
use crate::data::Dataset;
use crate::harness::Settings;
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "coherence/cluster-staleness", run };

/// The Redis namespace of both peers' towers.
const NAMESPACE: &str = "cstale:";
/// Keys written per master.
const KEYS_PER_MASTER: usize = 4;
/// The project's bar for the p99.
const BAR: Duration = Duration::from_millis(2);

/// The staleness figures of one kind of write.
struct Figures {
    write: Write,
    micros: Vec<f64>,
    /// The same figures by the master that serves the key written.
    by_master: Vec<Vec<f64>>,
    /// A's `seen` arrived before the write's stamp (counted as 0).
    early: usize,
    timeouts: usize,
}

fn describe(write: Write) -> &'static str {
    match write {
        Write::LibrarySet => "library write: process B `tower.set` (B's `ok` → A reads the new value)",
        Write::ExternalSet => {
            "external write: redis-rs cluster `SET cstale:<key> <json>` from the runner (reply → A reads it)"
        }
        Write::LibraryDelete => "library delete: process B `tower.delete` (B's `ok` → A reads a miss)",
    }
}

fn short(write: Write) -> &'static str {
    match write {
        Write::LibrarySet => "library set",
        Write::ExternalSet => "external SET",
        Write::LibraryDelete => "library delete",
    }
}

/// `KEYS_PER_MASTER` keys of each master (`k0`, `k1`, ... under the namespace), in turn: the
/// keys, and the master of each.
fn spread_keys(nodes: &Nodes) -> (Vec<String>, Vec<usize>) {
    let mut per_master: Vec<Vec<String>> = vec![Vec::new(); nodes.masters()];
    let mut n = 0;
    while per_master.iter().any(|keys| keys.len() < KEYS_PER_MASTER) {
        let key = format!("k{n}");
        let keys = &mut per_master[nodes.master_of(&format!("{NAMESPACE}{key}"))];
        if keys.len() < KEYS_PER_MASTER {
            keys.push(key);
        }
        n += 1;
    }
    let (mut keys, mut masters) = (Vec::new(), Vec::new());
    for turn in 0..KEYS_PER_MASTER {
        for (master, its_keys) in per_master.iter().enumerate() {
            keys.push(its_keys[turn].clone());
            masters.push(master);
        }
    }
    (keys, masters)
}

fn run(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let cluster = match services.cluster() {
        Ok(cluster) => cluster,
        Err(reason) => return Ok(cluster_support::skipped(SCENARIO.id, reason)),
    };
    let nodes = Nodes::connect(cluster, data)?;
    let (keys, masters) = spread_keys(&nodes);
    let mut raw = redis::cluster::ClusterClient::new(cluster.seed_urls())?.get_connection()?;
    for key in &keys {
        redis::cmd("DEL").arg(format!("{NAMESPACE}{key}")).query::<()>(&mut raw)?;
    }

    let target = format!("{CLUSTER_PREFIX}{}", cluster.seeds.join(","));
    let (mut reader, mut writer, pings) = start_peers(&target, NAMESPACE)?;

    let writes = settings.staleness_writes;
    let mut version = 0u64;
    let mut all = Vec::new();
    for write in [Write::LibrarySet, Write::ExternalSet, Write::LibraryDelete] {
        eprintln!("  {} writes over {} keys: {}", writes, keys.len(), describe(write));
        let mut figures = Figures {
            write,
            micros: Vec::with_capacity(writes),
            by_master: vec![Vec::new(); nodes.masters()],
            early: 0,
            timeouts: 0,
        };
        let mut current: Vec<String> = Vec::with_capacity(keys.len());
        for key in &keys {
            current.push(format!("v{version}"));
            set_raw(&mut raw, key, &format!("v{version}"))?;
        }
        for w in 0..writes {
            let k = w % keys.len();
            let key = keys[k].as_str();
            version += 1;
            let new = if write == Write::LibraryDelete { ABSENT.to_string() } else { format!("v{version}") };
            reader.send(&format!("arm {key} {} {new}", current[k]))?;
            reader.expect("armed", REPLY)?;
            let written = match write {
                Write::LibrarySet => {
                    writer.send(&format!("set {key} {new}"))?;
                    writer.expect("ok", REPLY)?
                }
                Write::ExternalSet => set_raw(&mut raw, key, &new)?,
                Write::LibraryDelete => {
                    writer.send(&format!("delete {key}"))?;
                    writer.expect("ok", REPLY)?
                }
            };
            let (seen, line) = reader.recv(REPLY)?;
            let micros = match line.as_str() {
                "seen" => {
                    if seen < written {
                        figures.early += 1;
                    }
                    seen.saturating_duration_since(written).as_secs_f64() * 1e6
                }
                "timeout" => {
                    figures.timeouts += 1;
                    GIVE_UP.as_secs_f64() * 1e6
                }
                other => return Err(format!("peer A: {other}").into()),
            };
            figures.micros.push(micros);
            figures.by_master[masters[k]].push(micros);
            current[k] = new;
            if write == Write::LibraryDelete {
                // Put the key back for its next delete; A arms on it.
                version += 1;
                current[k] = format!("v{version}");
                set_raw(&mut raw, key, &current[k])?;
            }
        }
        log_spread(&figures.micros, figures.timeouts);
        all.push(figures);
    }
    reader.send("quit")?;
    writer.send("quit")?;

    let mut table = format!(
        "### Cross-process staleness on a Redis Cluster (`coherence/cluster-staleness`)\n\n\
         `coherence/staleness` on this run's Redis Cluster ({} masters): two OS processes, A reading and B \
         writing, each with a memory-over-Redis tower on the cluster (namespace `{NAMESPACE}`, invalidation on). \
         The writes go round {} keys, {KEYS_PER_MASTER} served by each master, one master after another. Per \
         write: A holds the key in its memory layer and polls its own `tower.get`; the figure is the time from \
         the write returning (B's `ok` line, or the raw client's reply, as it reached the runner) to A's `seen` \
         line reaching the runner, both stamped by the runner's one clock, A's re-read from the cluster included. \
         A `ping` round trip over A's pipes (the size of the stamping error) took p50 {:.0} µs, p99 {:.0} µs. \
         A waits at most {} s (a timeout counts as {} s).\n\n\
         | write | writes | p50 | p99 | max | over {} ms | p99 by master | seen before the write's stamp (counted \
         as 0) | timeouts |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        nodes.masters(),
        keys.len(),
        percentile(&pings, 50.0),
        percentile(&pings, 99.0),
        GIVE_UP.as_secs(),
        GIVE_UP.as_secs(),
        BAR.as_millis()
    );
    let mut notes = Vec::new();
    for figures in &all {
        let ordered = sorted(&figures.micros);
        let over = ordered.iter().filter(|&&us| us > BAR.as_secs_f64() * 1e6).count();
        let p99 = percentile(&ordered, 99.0);
        let by_master: Vec<String> =
            figures.by_master.iter().map(|micros| format!("{:.0}", percentile(&sorted(micros), 99.0))).collect();
        table.push_str(&format!(
            "| {} | {} | {:.0} µs | {:.0} µs | {:.0} µs | {over} | {} µs | {} | {} |\n",
            describe(figures.write),
            ordered.len(),
            percentile(&ordered, 50.0),
            p99,
            ordered.last().copied().unwrap_or(f64::NAN),
            by_master.join(" / "),
            figures.early,
            figures.timeouts
        ));
        let verdict = if p99 <= BAR.as_secs_f64() * 1e6 { "met" } else { "MISSED" };
        notes.push(format!(
            "{}, {}: p99 {p99:.0} µs against the bar of {} ms: {verdict}",
            SCENARIO.id,
            short(figures.write),
            BAR.as_millis()
        ));
    }
    Ok(Outcome { notes, sections: vec![table], ..Outcome::default() })
}

/// A raw `SET` of `value` as JSON under namespace + `key`; the moment its reply came back.
fn set_raw(raw: &mut redis::cluster::ClusterConnection, key: &str, value: &str) -> BoxResult<Instant> {
    redis::cmd("SET").arg(format!("{NAMESPACE}{key}")).arg(serde_json::to_vec(value)?).query::<()>(raw)?;
    Ok(Instant::now())
}
