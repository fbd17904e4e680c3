//! What the Redis scenarios share: the raw client, the towers, filling the server with the
//! dataset, and counting what each contender costs the server.
//!
//! Costs are counted outside the timed runs, over a fixed number of operations per contender:
//! `INFO stats commandstats` from a connection of its own before and after (server reads, bytes
//! received, calls of each command, those run inside Lua scripts included), and round trips from
//! a [`Relay`] that the counted clients connect through.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_tower::adapter::{CacheAdapter, EvictionPolicy};
use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter};

use super::BoxResult;
use super::relay::Relay;
use crate::data::{Dataset, ENTRIES, User};
use crate::harness::{Contender, Settings};
use crate::report::{Outcome, Trips};
use crate::services::Redis;

/// The name of the raw-client peer as the table shows it.
pub(super) const RAW: &str = "redis-rs 1.8 sync `Connection`";

/// Operations per contender in a cost count.
pub const COUNTED_OPS: usize = 1_000;

/// Commands rarer than this per operation are left out of a count: they are background traffic
/// of the connection, not the operation's cost.
pub const MIN_COMMANDS_PER_OP: f64 = 0.01;

/// The TTL of the layers that write with one (mset), and of the raw `SET ... PX` it is compared
/// with.
pub(super) const WRITE_TTL: Duration = Duration::from_secs(300);

/// A raw redis-rs connection. The mutex is what lets a `Sync` contender own it; uncontended, it
/// costs tens of nanoseconds on operations of tens of microseconds.
pub(super) type Raw = Mutex<redis::Connection>;

/// The two sides of a Redis scenario: a tower, and a raw redis-rs connection with a count of
/// its failures.
pub(super) struct Clients {
    pub(super) tower: CacheTower,
    pub(super) raw: Raw,
    pub(super) failures: Failures,
}

impl Clients {
    /// A Redis-only tower (with layer TTL `ttl`) against a raw connection, both to `url`.
    pub(super) fn redis_only(url: &str, ttl: Option<Duration>) -> BoxResult<Self> {
        Ok(Self { tower: redis_only(url, ttl)?, raw: raw(url)?, failures: Failures::default() })
    }
}

/// A raw connection to `url`.
pub(super) fn raw(url: &str) -> BoxResult<Raw> {
    Ok(Mutex::new(redis::Client::open(url)?.get_connection()?))
}

/// Locks a raw connection (a poisoned lock only means another op panicked; the connection is
/// still usable for a benchmark).
pub(super) fn lock(raw: &Raw) -> std::sync::MutexGuard<'_, redis::Connection> {
    raw.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A Redis layer on `url` with the default settings (no namespace: keys are `user:{n}` as the
/// raw client writes them).
pub(super) fn redis_layer(url: &str, ttl: Option<Duration>) -> cache_tower::Result<RedisAdapter> {
    redis_layer_with(url, ttl, true)
}

/// [`redis_layer`] with its invalidation listener on (the default) or off. On, a tower with a
/// memory layer above it watches every change under the namespace, and re-reads (one `MGET`)
/// the keys it wrote itself lately when their change is reported.
pub(super) fn redis_layer_with(
    url: &str,
    ttl: Option<Duration>,
    invalidation: bool,
) -> cache_tower::Result<RedisAdapter> {
    let builder = RedisAdapter::builder().url(url).invalidation(invalidation);
    match ttl {
        Some(ttl) => builder.ttl(ttl).build(),
        None => builder.build(),
    }
}

/// A Redis layer on `url` under `namespace`, its invalidation listener on or off (no TTL).
pub(super) fn namespaced_layer(url: &str, namespace: &str, invalidation: bool) -> cache_tower::Result<RedisAdapter> {
    RedisAdapter::builder().url(url).namespace(namespace).invalidation(invalidation).build()
}

/// A tower whose only layer is Redis: reads take the top-layer path (plain `GET` / `MGET`).
pub(super) fn redis_only(url: &str, ttl: Option<Duration>) -> cache_tower::Result<CacheTower> {
    let tower = CacheTower::new();
    tower.add_layer(redis_layer(url, ttl)?);
    Ok(tower)
}

/// A tower of a memory layer of `maxsize` entries (FIFO; `0`: unbounded) over Redis.
pub(super) fn memory_over_redis(url: &str, maxsize: usize) -> cache_tower::Result<CacheTower> {
    memory_over_redis_with(url, maxsize, EvictionPolicy::Fifo)
}

/// [`memory_over_redis`] with the memory layer's eviction policy.
pub(super) fn memory_over_redis_with(
    url: &str,
    maxsize: usize,
    policy: EvictionPolicy,
) -> cache_tower::Result<CacheTower> {
    Ok(memory_over(maxsize, policy, redis_layer(url, None)?))
}

/// A tower of a memory layer of `maxsize` entries (`0`: unbounded) with `policy` over `redis`.
pub(super) fn memory_over(maxsize: usize, policy: EvictionPolicy, redis: RedisAdapter) -> CacheTower {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().maxsize(maxsize).policy(policy).build());
    tower.add_layer(redis);
    tower
}

/// The contenders of the backfill scenarios (`redis/get-backfill`, `redis/mget-backfill`,
/// `redis/get-or-set-many`): a memory-over-Redis tower with a handle on its memory layer (to
/// delete from before each read), the raw client, and the local map of a hand-rolled two-level
/// cache.
pub(super) struct BackfillClients {
    pub(super) tower: CacheTower,
    /// The tower's memory layer, to delete from before each read.
    pub(super) memory: Arc<dyn CacheAdapter>,
    pub(super) raw: Raw,
    /// The local map of the hand-rolled two-level cache.
    pub(super) local: quick_cache::sync::Cache<String, User>,
    pub(super) failures: Failures,
}

impl BackfillClients {
    /// Every client on the server of `url`, the memory layers (ours and the local map) bounded
    /// to `bound` entries, ours with `policy`.
    pub(super) fn new(url: &str, bound: usize, policy: EvictionPolicy) -> BoxResult<Self> {
        Self::with_redis(url, bound, policy, redis_layer(url, None)?)
    }

    /// [`new`](Self::new) with the tower's Redis layer given (its TTL, its invalidation
    /// listener); the raw client connects to `url`.
    pub(super) fn with_redis(url: &str, bound: usize, policy: EvictionPolicy, redis: RedisAdapter) -> BoxResult<Self> {
        let tower = memory_over(bound, policy, redis);
        let memory = Arc::clone(&tower.get_layers()[0]);
        Ok(Self {
            tower,
            memory,
            raw: raw(url)?,
            local: quick_cache::sync::Cache::new(bound),
            failures: Failures::default(),
        })
    }
}

/// Writes every user into Redis as JSON (no TTL) with the raw client, and checks they are all
/// there. Every Redis read scenario starts with it, so none depends on another's writes.
pub(super) fn fill(url: &str, data: &Dataset) -> BoxResult<()> {
    let raw = raw(url)?;
    let mut con = lock(&raw);
    for chunk in data.keys.iter().zip(&data.users).collect::<Vec<_>>().chunks(1_000) {
        let mut pipe = redis::pipe();
        for (key, user) in chunk {
            pipe.cmd("SET").arg(key.as_str()).arg(serde_json::to_vec(user)?).ignore();
        }
        pipe.query::<()>(&mut *con)?;
    }
    let mut exists = redis::cmd("EXISTS");
    for key in &data.keys {
        exists.arg(key.as_str());
    }
    let present: usize = exists.query(&mut *con)?;
    if present != ENTRIES {
        return Err(format!("redis holds {present} of the {ENTRIES} users just written").into());
    }
    Ok(())
}

/// The outcome of a Redis scenario that could not run.
pub(super) fn skipped(id: &str, reason: &str) -> Outcome {
    eprintln!("  skipped: {reason}");
    Outcome {
        notes: vec![format!("{id} skipped: no Redis server (see the `redis:` line above).")],
        ..Outcome::default()
    }
}

/// The first `count` indices of thread 0's read sequence.
pub(super) fn indices(data: &Dataset, count: usize) -> &[u32] {
    let reads = data.reads(0);
    &reads[..count.min(reads.len())]
}

/// How many operations a timed sample of a Redis scenario runs: `io_ops_per_sample`, divided by
/// `divisor` for operations on many keys.
pub(super) fn ops(settings: &Settings, divisor: usize) -> usize {
    (settings.io_ops_per_sample / divisor).max(1)
}

/// Batches of `size` distinct user indices, every user in exactly one batch, in a fixed
/// shuffled order.
pub(super) fn batches(size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..ENTRIES).collect();
    // A fixed permutation: sort by a hash of the index.
    order.sort_by_key(|&n| (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17));
    order.chunks(size).map(<[usize]>::to_vec).collect()
}

/// [`batches`] of `size` as the dataset's keys.
pub(super) fn key_batches(data: &Dataset, size: usize) -> Vec<Vec<&str>> {
    batches(size).iter().map(|batch| batch.iter().map(|&n| data.keys[n].as_str()).collect()).collect()
}

/// Counts failed raw operations, so a figure made partly of errors is flagged, not published.
#[derive(Debug, Default)]
pub(super) struct Failures(AtomicU64);

impl Failures {
    /// The value, or `None` (counted) for an error.
    pub(super) fn check<T>(&self, result: redis::RedisResult<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(_) => {
                self.0.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// The value of a read that must find it; an error or a nil reply is counted.
    pub(super) fn found<T>(&self, result: redis::RedisResult<Option<T>>) -> Option<T> {
        let value = self.check(result).flatten();
        if value.is_none() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        value
    }

    /// Counts one failure the caller found itself.
    pub(super) fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The JSON decoded as a `T`; a value that does not decode is counted.
    pub(super) fn decode<T: serde::de::DeserializeOwned>(&self, json: &[u8]) -> Option<T> {
        let value = serde_json::from_slice(json).ok();
        if value.is_none() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        value
    }

    /// Adds a warning note when any operation of `name` failed.
    pub(super) fn report(&self, name: &str, notes: &mut Vec<String>) {
        let failed = self.0.load(Ordering::Relaxed);
        if failed > 0 {
            warn(notes, format!("warning: {name} had {failed} failed or missing results; its figures include them"));
        }
    }
}

/// Adds a warning note when a tower had faults (errors, skipped layers, undecodable values) or,
/// with `must_hit`, when its last layer missed: every read of the Redis scenarios should hit
/// there.
pub(super) fn check_tower(name: &str, tower: &CacheTower, must_hit: bool, notes: &mut Vec<String>) {
    let stats = tower.stats();
    let faults: u64 = stats.iter().map(|layer| layer.errors + layer.skipped + layer.decode_failures).sum();
    let last_misses = if must_hit { stats.last().map_or(0, |layer| layer.misses) } else { 0 };
    if faults > 0 || last_misses > 0 {
        warn(
            notes,
            format!(
                "warning: {name} had {faults} layer faults and {last_misses} misses in its last layer; its \
                 figures include them"
            ),
        );
    }
}

/// Adds `note` to the notes, and prints it on stderr at once.
pub(super) fn warn(notes: &mut Vec<String>, note: String) {
    eprintln!("  {note}");
    notes.push(note);
}

// ===== counting costs =====

/// The server's counters at one moment.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    reads: u64,
    bytes_in: u64,
    /// The server process's CPU time (`used_cpu_user` + `used_cpu_sys`), in microseconds.
    cpu_micros: u64,
    calls: HashMap<String, u64>,
}

/// Counts what operations cost a Redis server, through `INFO` on a connection of its own and,
/// when given, a relay that the counted clients connect through.
pub(super) struct Counter {
    info: redis::Connection,
    relay: Option<Relay>,
    url: String,
    /// What one pair of snapshots costs by itself (their own `INFO` requests).
    overhead: Snapshot,
}

impl Counter {
    /// A counter for `redis`, with a relay when `relay` is true (and the URL is a plain
    /// `redis://` one the relay can stand in for).
    pub(super) fn new(redis: &Redis, relay: bool) -> BoxResult<Self> {
        let info = redis::Client::open(redis.url.as_str())?.get_connection()?;
        let relay = match relayed(&redis.url) {
            Some((target, _)) if relay => Some(Relay::start(target)?),
            _ => None,
        };
        let url = match (&relay, relayed(&redis.url)) {
            (Some(relay), Some((_, make_url))) => make_url(relay.port()),
            _ => redis.url.clone(),
        };
        let mut counter = Self { info, relay, url, overhead: Snapshot::default() };
        let (first, second) = (counter.snapshot()?, counter.snapshot()?);
        counter.overhead = delta(&first, &second, &Snapshot::default());
        Ok(counter)
    }

    /// The URL the counted clients must connect to (the relay's, when there is one).
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// Runs `contender` a few times to settle (connect, load scripts), then `indices.len()`
    /// times between two snapshots: its costs per operation.
    pub(super) fn count(&mut self, scenario: &str, contender: &Contender<'_>, indices: &[u32]) -> BoxResult<Trips> {
        contender.run(&indices[..indices.len().min(10)]);
        self.count_settled(scenario, contender, indices)
    }

    /// [`count`](Self::count) without its settling runs: for an operation whose first run changes
    /// what the next one costs (a `flush` empties what the next would remove). The caller opens
    /// the contender's connections beforehand.
    pub(super) fn count_settled(
        &mut self,
        scenario: &str,
        contender: &Contender<'_>,
        indices: &[u32],
    ) -> BoxResult<Trips> {
        let trips_before = self.relay.as_ref().map(Relay::round_trips);
        let before = self.snapshot()?;
        contender.run(indices);
        let after = self.snapshot()?;
        let trips_after = self.relay.as_ref().map(Relay::round_trips);
        let used = delta(&before, &after, &self.overhead);
        let per_op = |n: u64| n as f64 / indices.len() as f64;
        let mut commands: Vec<(String, f64)> = used
            .calls
            .iter()
            .map(|(name, &calls)| (name.clone(), per_op(calls)))
            // Background traffic (a health-check `PING`, say) is not the operations' cost.
            .filter(|&(_, per_op)| per_op >= MIN_COMMANDS_PER_OP)
            .collect();
        commands.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let trips = Trips {
            scenario: scenario.to_string(),
            contender: contender.name().to_string(),
            round_trips: trips_before.zip(trips_after).map(|(before, after)| per_op(after - before)),
            reads: per_op(used.reads),
            bytes_in: per_op(used.bytes_in),
            server_cpu_micros: per_op(used.cpu_micros),
            commands,
        };
        eprintln!(
            "  {:<40} {} round trips/op, {:.2} server reads/op",
            trips.contender,
            trips.round_trips.map_or_else(|| "?".to_string(), |n| format!("{n:.2}")),
            trips.reads
        );
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
        let info: String = redis::cmd("INFO").arg("stats").arg("cpu").arg("commandstats").query(&mut self.info)?;
        let mut snapshot = Snapshot::default();
        for line in info.lines() {
            if let Some(value) = line.strip_prefix("used_cpu_user:").or_else(|| line.strip_prefix("used_cpu_sys:")) {
                // Seconds with six decimals.
                snapshot.cpu_micros += (value.trim().parse::<f64>()? * 1e6).round() as u64;
            } else if let Some(value) = line.strip_prefix("total_reads_processed:") {
                snapshot.reads = value.trim().parse()?;
            } else if let Some(value) = line.strip_prefix("total_net_input_bytes:") {
                snapshot.bytes_in = value.trim().parse()?;
            } else if let Some(rest) = line.strip_prefix("cmdstat_") {
                // cmdstat_get:calls=1000,usec=...
                let Some((name, fields)) = rest.split_once(':') else { continue };
                let calls = fields.split(',').find_map(|field| field.strip_prefix("calls=")).unwrap_or("0");
                snapshot.calls.insert(name.to_string(), calls.trim().parse()?);
            }
        }
        Ok(snapshot)
    }
}

/// `after - before - overhead`, field by field (never below zero).
fn delta(before: &Snapshot, after: &Snapshot, overhead: &Snapshot) -> Snapshot {
    let sub = |a: u64, b: u64, o: u64| a.saturating_sub(b).saturating_sub(o);
    let calls = after
        .calls
        .iter()
        .map(|(name, &calls)| {
            let was = before.calls.get(name).copied().unwrap_or(0);
            let own = overhead.calls.get(name).copied().unwrap_or(0);
            (name.clone(), sub(calls, was, own))
        })
        .collect();
    Snapshot {
        reads: sub(after.reads, before.reads, overhead.reads),
        bytes_in: sub(after.bytes_in, before.bytes_in, overhead.bytes_in),
        // The server's own CPU for two INFO calls is noise next to a thousand operations.
        cpu_micros: after.cpu_micros.saturating_sub(before.cpu_micros),
        calls,
    }
}

/// For a `redis://[user[:password]@]host[:port][/db]` URL: the server's address, and a function
/// making the same URL with the host and port of a relay on 127.0.0.1. `None` for other schemes
/// (TLS, unix sockets), which are counted without a relay.
fn relayed(url: &str) -> Option<(String, impl Fn(u16) -> String + use<>)> {
    let rest = url.strip_prefix("redis://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let has_port =
        host_port.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) && !host_port.ends_with(']');
    let target = if has_port { host_port.to_string() } else { format!("{host_port}:6379") };
    let (userinfo, path) = (userinfo.to_string(), path.to_string());
    Some((target, move |port: u16| format!("redis://{userinfo}127.0.0.1:{port}{path}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_urls_keep_credentials_and_database() {
        let (target, make) = relayed("redis://app:pw@cache.local:6380/2").unwrap();
        assert_eq!(target, "cache.local:6380");
        assert_eq!(make(7000), "redis://app:pw@127.0.0.1:7000/2");
        let (target, make) = relayed("redis://127.0.0.1").unwrap();
        assert_eq!(target, "127.0.0.1:6379");
        assert_eq!(make(7000), "redis://127.0.0.1:7000");
        assert!(relayed("rediss://host:6379/0").is_none());
    }

    #[test]
    fn delta_subtracts_the_snapshots_own_cost() {
        let snap = |reads, get| Snapshot {
            reads,
            bytes_in: reads * 10,
            cpu_micros: 0,
            calls: [("get".to_string(), get)].into(),
        };
        let used = delta(&snap(10, 5), &snap(1_012, 1_005), &snap(2, 0));
        assert_eq!((used.reads, used.bytes_in, used.calls["get"]), (1_000, 10_000, 1_000));
    }
}
