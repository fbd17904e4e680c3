//! What the Redis Cluster scenarios share: the towers on the cluster, the raw clients, the
//! cluster's slot map, and filling the cluster with the dataset.
//!
//! The hand-written raw client of the batch scenarios ([`Nodes`]) knows which master serves each
//! key: it reads the slot map once (`CLUSTER SLOTS`), computes each key's hash slot itself
//! (CRC16 of the key, or of its hash tag, modulo 16384, checked against `CLUSTER KEYSLOT` at set-up)
//! and keeps one `MultiplexedConnection` per master on a current-thread tokio runtime of its own.
//!
//! Costs are counted as the Redis scenarios count them (`redis_support`), outside the timed runs,
//! but summed over every master ([`Counter`]; the replicas' work, and their `REPLCONF ACK`s to
//! the masters, are left out) and without a relay:
//! a cluster client learns each node's real address from the cluster, so it cannot be made to
//! connect through one, and round trips are not counted.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use cache_tower::{CacheTower, RedisAdapter};
use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, Pipeline, RedisResult};

use super::redis_support::MIN_COMMANDS_PER_OP;
use super::{BoxResult, Measured};
use crate::data::{Dataset, ENTRIES};
use crate::harness::Contender;
use crate::report::{Outcome, Trips};
use crate::services::{self, Cluster};

/// The sync raw cluster client as the table shows it.
pub(super) const RAW_SYNC: &str = "redis-rs 1.8 sync `cluster::ClusterConnection`";
/// The async raw cluster client as the table shows it.
pub(super) const RAW_ASYNC: &str = "redis-rs 1.8 async `cluster_async::ClusterConnection`";
/// The hand-written per-master client as the table shows it.
pub(super) const RAW_NODES: &str = "redis-rs 1.8 `MultiplexedConnection` per master";

/// How many hash slots a Redis Cluster has.
const SLOTS: usize = 16_384;

/// A current-thread tokio runtime, for the async contenders (`block_on` from the measuring
/// thread).
pub(super) fn runtime() -> BoxResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// A Redis layer on the cluster with the default settings (no namespace: keys are `user:{n}` as
/// the raw clients write them), with layer TTL `ttl`.
pub(super) fn cluster_layer(cluster: &Cluster, ttl: Option<Duration>) -> cache_tower::Result<RedisAdapter> {
    let builder = RedisAdapter::builder().cluster(cluster.seeds.iter().cloned());
    match ttl {
        Some(ttl) => builder.ttl(ttl).build(),
        None => builder.build(),
    }
}

/// A tower whose only layer is Redis on the cluster: reads take the top-layer path (plain `GET`
/// / `MGET`).
pub(super) fn redis_only(cluster: &Cluster, ttl: Option<Duration>) -> cache_tower::Result<CacheTower> {
    let tower = CacheTower::new();
    tower.add_layer(cluster_layer(cluster, ttl)?);
    Ok(tower)
}

/// A raw sync cluster connection (redis-rs routes each command by its key's slot).
pub(super) fn raw_sync(cluster: &Cluster) -> BoxResult<Mutex<redis::cluster::ClusterConnection>> {
    Ok(Mutex::new(redis::cluster::ClusterClient::new(cluster.seed_urls())?.get_connection()?))
}

/// A raw async cluster connection, made on `runtime` (its tasks run there, during `block_on`).
pub(super) fn raw_async(
    cluster: &Cluster,
    runtime: &tokio::runtime::Runtime,
) -> BoxResult<redis::cluster_async::ClusterConnection> {
    let client = redis::cluster::ClusterClient::new(cluster.seed_urls())?;
    Ok(runtime.block_on(client.get_async_connection())?)
}

/// Locks a raw connection (a poisoned lock only means another op panicked; the connection is
/// still usable for a benchmark).
pub(super) fn lock<T>(raw: &Mutex<T>) -> MutexGuard<'_, T> {
    raw.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The outcome of a cluster scenario that could not run.
pub(super) fn skipped(id: &str, reason: &str) -> Outcome {
    eprintln!("  skipped: {reason}");
    Outcome {
        notes: vec![format!("{id} skipped: no Redis Cluster (see the `cluster:` line above).")],
        ..Outcome::default()
    }
}

/// The note of a bar: `ours / peer` of the medians against `bar`.
pub(super) fn bar_note(id: &str, ours: &Measured, peer: &Measured, bar: f64) -> String {
    let ratio = ours.figure.value() / peer.figure.value();
    let verdict = if ratio <= bar { "met" } else { "MISSED" };
    format!("{id}: ours / {} = {ratio:.2}x against the bar of {bar:.2}x: {verdict}", peer.name)
}

/// The note that says how a cluster scenario's costs were counted.
pub(super) fn costs_note(id: &str, nodes: &Nodes) -> String {
    format!(
        "{id}: costs are summed over the cluster's {} masters (replicas left out, their `REPLCONF ACK`s \
         too); round trips are not counted (a cluster client cannot be made to connect through a relay).",
        nodes.masters()
    )
}

// ===== hash slots =====

/// CRC16/XMODEM (polynomial 0x1021, no reflection, initial value 0), one byte at a time.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0, |crc, &byte| (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)])
}

/// The hash slot of `key`: CRC16 of its hash tag (what is between its first `{` and the next
/// `}`, when that is not empty) or of the whole key, modulo 16384.
pub(super) fn slot(key: &[u8]) -> u16 {
    let tag = key.iter().position(|&byte| byte == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter().position(|&byte| byte == b'}').filter(|&close| close > 0).map(|close| &rest[..close])
    });
    crc16(tag.unwrap_or(key)) % SLOTS as u16
}

// ===== the hand-written per-master client =====

/// One `MultiplexedConnection` per master, the slot map, and the runtime they run on.
pub(super) struct Nodes {
    runtime: tokio::runtime::Runtime,
    /// The master of each slot, as an index into `masters` and `connections`.
    owner: Vec<usize>,
    /// `host:port` of each master, sorted.
    masters: Vec<String>,
    connections: Vec<MultiplexedConnection>,
}

impl Nodes {
    /// Reads the slot map from the first seed that answers, checks [`slot`] against
    /// `CLUSTER KEYSLOT` for a sample of the dataset's keys, and connects to every master.
    pub(super) fn connect(cluster: &Cluster, data: &Dataset) -> BoxResult<Self> {
        let mut con = redis::Client::open(cluster.seed_urls()[0].as_str())?.get_connection()?;
        let ranges = services::cluster_slots(&mut con)?;
        let mut masters: Vec<String> = ranges.iter().map(|range| format!("{}:{}", range.host, range.port)).collect();
        masters.sort();
        masters.dedup();
        let mut owner = vec![usize::MAX; SLOTS];
        for range in &ranges {
            let master = masters.binary_search(&format!("{}:{}", range.host, range.port)).unwrap_or(usize::MAX);
            for slot in range.first..=range.last {
                if let Some(entry) = owner.get_mut(usize::from(slot)) {
                    *entry = master;
                }
            }
        }
        if let Some(unserved) = owner.iter().position(|&master| master == usize::MAX) {
            return Err(format!("the cluster's slot map leaves slot {unserved} without a master").into());
        }
        let sample = data.keys.iter().step_by(97).map(String::as_str).chain(["{user}:1", "a{}b", "{}{x}", "x{y}z{w}"]);
        for key in sample {
            let theirs: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut con)?;
            if theirs != slot(key.as_bytes()) {
                return Err(
                    format!("slot of {key:?}: CLUSTER KEYSLOT says {theirs}, ours {}", slot(key.as_bytes())).into()
                );
            }
        }
        let runtime = runtime()?;
        let connections = masters
            .iter()
            .map(|master| {
                let client = redis::Client::open(format!("redis://{master}"))?;
                runtime.block_on(client.get_multiplexed_async_connection())
            })
            .collect::<RedisResult<Vec<_>>>()?;
        Ok(Self { runtime, owner, masters, connections })
    }

    /// How many masters serve slots.
    pub(super) fn masters(&self) -> usize {
        self.masters.len()
    }

    /// The master (index) that serves `key`.
    pub(super) fn master_of(&self, key: &str) -> usize {
        self.owner[usize::from(slot(key.as_bytes()))]
    }

    /// The positions of `keys` grouped by the master that serves each: group `m` for master `m`.
    pub(super) fn group<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Vec<Vec<usize>> {
        let mut groups = vec![Vec::new(); self.masters.len()];
        for (index, key) in keys.into_iter().enumerate() {
            groups[self.master_of(key)].push(index);
        }
        groups
    }

    /// Sends `pipelines[m]` to master `m`, all at once (`at_once`) or one master after another,
    /// and returns each master's reply. An empty pipeline is not sent (its reply is empty).
    pub(super) fn send<T: FromRedisValue>(&self, pipelines: &[Pipeline], at_once: bool) -> Vec<RedisResult<T>> {
        let sends = pipelines.iter().zip(&self.connections).map(|(pipeline, connection)| {
            let mut connection = connection.clone();
            async move {
                if pipeline.is_empty() {
                    return T::from_redis_value(redis::Value::Array(Vec::new())).map_err(redis::RedisError::from);
                }
                pipeline.query_async::<T>(&mut connection).await
            }
        });
        self.runtime.block_on(async {
            if at_once {
                join_all(sends.collect()).await
            } else {
                let mut replies = Vec::with_capacity(pipelines.len());
                for send in sends {
                    replies.push(send.await);
                }
                replies
            }
        })
    }
}

/// Runs every future of `futures` at once (each polled in turn by the calling task whenever it is
/// woken) and returns their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut waiting = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Writes every user into the cluster as JSON (no TTL), one pipeline per master, and checks they
/// are all there. Every cluster read scenario starts with it, so none depends on another's
/// writes.
pub(super) fn fill(nodes: &Nodes, data: &Dataset) -> BoxResult<()> {
    let groups = nodes.group(data.keys.iter().map(String::as_str));
    let mut sets = Vec::with_capacity(groups.len());
    let mut exists = Vec::with_capacity(groups.len());
    for group in &groups {
        let (mut set, mut exist) = (redis::pipe(), redis::pipe());
        for &n in group {
            set.cmd("SET").arg(data.keys[n].as_str()).arg(serde_json::to_vec(&data.users[n])?).ignore();
            exist.cmd("EXISTS").arg(data.keys[n].as_str());
        }
        sets.push(set);
        exists.push(exist);
    }
    for reply in nodes.send::<()>(&sets, true) {
        reply?;
    }
    let mut present = 0;
    for reply in nodes.send::<Vec<usize>>(&exists, true) {
        present += reply?.iter().sum::<usize>();
    }
    if present != ENTRIES {
        return Err(format!("the cluster holds {present} of the {ENTRIES} users just written").into());
    }
    Ok(())
}

// ===== counting costs =====

/// The masters' counters at one moment, summed.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    reads: u64,
    bytes_in: u64,
    /// The masters' CPU time (`used_cpu_user` + `used_cpu_sys`), in microseconds.
    cpu_micros: u64,
    calls: HashMap<String, u64>,
}

impl Snapshot {
    /// Adds one master's `INFO stats cpu commandstats`.
    fn add(&mut self, info: &str) -> BoxResult<()> {
        for line in info.lines() {
            if let Some(value) = line.strip_prefix("used_cpu_user:").or_else(|| line.strip_prefix("used_cpu_sys:")) {
                self.cpu_micros += (value.trim().parse::<f64>()? * 1e6).round() as u64;
            } else if let Some(value) = line.strip_prefix("total_reads_processed:") {
                self.reads += value.trim().parse::<u64>()?;
            } else if let Some(value) = line.strip_prefix("total_net_input_bytes:") {
                self.bytes_in += value.trim().parse::<u64>()?;
            } else if let Some((name, fields)) = line.strip_prefix("cmdstat_").and_then(|rest| rest.split_once(':')) {
                let calls = fields.split(',').find_map(|field| field.strip_prefix("calls=")).unwrap_or("0");
                *self.calls.entry(name.to_string()).or_default() += calls.trim().parse::<u64>()?;
            }
        }
        Ok(())
    }

    /// `self - before - overhead`, field by field (never below zero).
    fn since(&self, before: &Self, overhead: &Self) -> Self {
        let sub = |a: u64, b: u64, o: u64| a.saturating_sub(b).saturating_sub(o);
        let calls = self
            .calls
            .iter()
            .map(|(name, &calls)| {
                let was = before.calls.get(name).copied().unwrap_or(0);
                let own = overhead.calls.get(name).copied().unwrap_or(0);
                (name.clone(), sub(calls, was, own))
            })
            .collect();
        Self {
            reads: sub(self.reads, before.reads, overhead.reads),
            bytes_in: sub(self.bytes_in, before.bytes_in, overhead.bytes_in),
            cpu_micros: self.cpu_micros.saturating_sub(before.cpu_micros),
            calls,
        }
    }
}

/// Counts what operations cost the cluster's masters, through `INFO` on a connection of its own
/// to each.
pub(super) struct Counter {
    masters: Vec<redis::Connection>,
    /// What one pair of snapshots costs by itself (their own `INFO` requests).
    overhead: Snapshot,
}

impl Counter {
    /// A counter for the masters of `nodes`.
    pub(super) fn new(nodes: &Nodes) -> BoxResult<Self> {
        let masters = nodes
            .masters
            .iter()
            .map(|master| redis::Client::open(format!("redis://{master}"))?.get_connection())
            .collect::<RedisResult<Vec<_>>>()?;
        let mut counter = Self { masters, overhead: Snapshot::default() };
        let (first, second) = (counter.snapshot()?, counter.snapshot()?);
        counter.overhead = second.since(&first, &Snapshot::default());
        Ok(counter)
    }

    /// Runs `contender` a few times to settle, then `indices.len()` times between two
    /// snapshots: its costs per operation, summed over the masters.
    pub(super) fn count(&mut self, scenario: &str, contender: &Contender<'_>, indices: &[u32]) -> BoxResult<Trips> {
        contender.run(&indices[..indices.len().min(10)]);
        let before = self.snapshot()?;
        contender.run(indices);
        let used = self.snapshot()?.since(&before, &self.overhead);
        let per_op = |n: u64| n as f64 / indices.len() as f64;
        let mut commands: Vec<(String, f64)> = used
            .calls
            .iter()
            .map(|(name, &calls)| (name.clone(), per_op(calls)))
            // Background traffic is not the operations' cost: a health-check `PING`, say, and the
            // replicas' `REPLCONF ACK` every second.
            .filter(|(name, per_op)| *per_op >= MIN_COMMANDS_PER_OP && name != "replconf")
            .collect();
        commands.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let trips = Trips {
            scenario: scenario.to_string(),
            contender: contender.name().to_string(),
            round_trips: None,
            reads: per_op(used.reads),
            bytes_in: per_op(used.bytes_in),
            server_cpu_micros: per_op(used.cpu_micros),
            commands,
        };
        eprintln!("  {:<40} {:.2} server reads/op (all masters)", trips.contender, trips.reads);
        Ok(trips)
    }

    /// [`count`](Self::count) for each contender, in order.
    pub(super) fn count_all(
        &mut self,
        scenario: &str,
        contenders: &[Contender<'_>],
        indices: &[u32],
    ) -> BoxResult<Vec<Trips>> {
        contenders.iter().map(|contender| self.count(scenario, contender, indices)).collect()
    }

    fn snapshot(&mut self) -> BoxResult<Snapshot> {
        let mut snapshot = Snapshot::default();
        for master in &mut self.masters {
            let info: String = redis::cmd("INFO").arg("stats").arg("cpu").arg("commandstats").query(master)?;
            snapshot.add(&info)?;
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_crc16_of_the_key_or_its_hash_tag() {
        // The check value of CRC16/XMODEM.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"123456789"), 12_739);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        // An empty tag does not count: the whole key is hashed.
        assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16_384);
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }
}
