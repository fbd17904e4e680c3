//! The servers some scenarios need, started on first use and stopped when the run ends.
//!
//! Redis: the server named by `REDIS_URL` when it is set, otherwise a throwaway `redis-server`
//! of this run's own (loopback, a free port, no persistence), started the first time a Redis
//! scenario asks for it and stopped when [`Services`] is dropped at the end of the run, panics
//! included. Without `redis-server` on PATH and without `REDIS_URL`, the Redis scenarios are
//! skipped with a note rather than failing the run.
//!
//! Redis Cluster: the cluster named by `REDIS_CLUSTER_NODES` (comma-separated `host:port`) when
//! it is set, otherwise a throwaway cluster of this run's own (`TestCluster` of the tests crate:
//! three masters with one replica each, on free loopback ports, no persistence), started the
//! first time a cluster scenario (`cluster/...`, `coherence/cluster-staleness`) asks for it and
//! stopped with [`Services`]. Without `redis-server` and `redis-cli` on PATH and without
//! `REDIS_CLUSTER_NODES`, those scenarios are skipped with a note.

use std::cell::OnceCell;
use std::process::{Command, Stdio};

use cache_tower_tests::redis_cluster::{self, TestCluster};
use cache_tower_tests::redis_server::RedisServer;

/// The servers of one run. Drop it to stop them.
#[derive(Debug, Default)]
pub struct Services {
    redis: OnceCell<Result<Redis, String>>,
    cluster: OnceCell<Result<Cluster, String>>,
}

/// A Redis server the Redis scenarios may use.
#[derive(Debug)]
pub struct Redis {
    /// The URL to connect to.
    pub url: String,
    /// Where it comes from, for the report.
    pub origin: String,
    /// Our own server; `None` for `REDIS_URL`. Stopped when dropped.
    _server: Option<RedisServer>,
}

/// A Redis Cluster the cluster scenarios may use.
#[derive(Debug)]
pub struct Cluster {
    /// Its seed nodes, `host:port` (every node of our own cluster, replicas included).
    pub seeds: Vec<String>,
    /// Where it comes from, for the report.
    pub origin: String,
    /// Our own cluster; `None` for `REDIS_CLUSTER_NODES`. Stopped when dropped.
    _cluster: Option<TestCluster>,
}

impl Cluster {
    /// The seeds as `redis://host:port` URLs.
    pub fn seed_urls(&self) -> Vec<String> {
        self.seeds.iter().map(|seed| format!("redis://{seed}")).collect()
    }
}

impl Services {
    /// No server started yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The Redis server, started on first call; `Err` says why there is none.
    pub fn redis(&self) -> Result<&Redis, &str> {
        self.redis.get_or_init(start_redis).as_ref().map_err(String::as_str)
    }

    /// The Redis Cluster, started on first call; `Err` says why there is none.
    pub fn cluster(&self) -> Result<&Cluster, &str> {
        self.cluster.get_or_init(start_cluster).as_ref().map_err(String::as_str)
    }

    /// A line for the report about each server this run used.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        match self.redis.get() {
            Some(Ok(redis)) => lines.push(format!("redis: {}", redis.origin)),
            Some(Err(reason)) => lines.push(format!("redis: none, so the Redis scenarios were skipped: {reason}")),
            None => {}
        }
        match self.cluster.get() {
            Some(Ok(cluster)) => lines.push(format!("cluster: {}", cluster.origin)),
            Some(Err(reason)) => {
                lines.push(format!("cluster: none, so the Redis Cluster scenarios were skipped: {reason}"));
            }
            None => {}
        }
        lines
    }
}

fn start_redis() -> Result<Redis, String> {
    if let Some(url) = std::env::var("REDIS_URL").ok().filter(|url| !url.is_empty()) {
        let version = server_version(&url).map_err(|err| format!("REDIS_URL is set but does not answer: {err}"))?;
        let origin = format!(
            "the server of REDIS_URL (Redis {version}); its keys `user:*` were overwritten, and its \
             counters include any other client's traffic"
        );
        return Ok(Redis { url, origin, _server: None });
    }
    match Command::new("redis-server").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err("redis-server is not on PATH and REDIS_URL is not set (Debian: `apt-get install \
                        redis-server`, or `bash scripts/test.sh`, which installs it)"
                .to_string());
        }
        Err(err) => return Err(format!("redis-server cannot be run: {err}")),
    }
    eprintln!("starting redis-server ...");
    let server = std::panic::catch_unwind(RedisServer::start)
        .map_err(|panic| format!("redis-server did not start: {}", panic_message(&*panic)))?;
    let url = server.url();
    let version = server_version(&url).map_err(|err| format!("redis-server started but does not answer: {err}"))?;
    let origin = format!(
        "a redis-server {version} of this run's own on 127.0.0.1:{} (no persistence), stopped at the end",
        server.port()
    );
    Ok(Redis { url, origin, _server: Some(server) })
}

fn start_cluster() -> Result<Cluster, String> {
    if let Some(seeds) = redis_cluster::cluster_from_env() {
        let env = redis_cluster::CLUSTER_NODES_ENV;
        let (version, masters) = cluster_version(&seeds)
            .map_err(|err| format!("{env} is set but its cluster does not answer as one: {err}"))?;
        let origin = format!(
            "the cluster of {env} ({}; Redis {version}, {masters} masters); its keys `user:*` and `cstale:*` were \
             overwritten, and its figures include any other client's traffic",
            seeds.join(",")
        );
        return Ok(Cluster { seeds, origin, _cluster: None });
    }
    for program in ["redis-server", "redis-cli"] {
        match Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "{program} is not on PATH and {} is not set (Debian: `apt-get install redis-server`, or \
                     `bash scripts/test.sh`, which installs it)",
                    redis_cluster::CLUSTER_NODES_ENV
                ));
            }
            Err(err) => return Err(format!("{program} cannot be run: {err}")),
        }
    }
    eprintln!("starting a Redis Cluster ({} nodes) ...", redis_cluster::NODES);
    let cluster = std::panic::catch_unwind(TestCluster::start)
        .map_err(|panic| format!("the Redis Cluster did not start: {}", panic_message(&*panic)))?;
    let seeds = cluster.seeds();
    let (version, masters) =
        cluster_version(&seeds).map_err(|err| format!("the Redis Cluster started but does not answer: {err}"))?;
    let ports: Vec<&str> = seeds.iter().filter_map(|seed| seed.rsplit(':').next()).collect();
    let origin = format!(
        "a Redis Cluster {version} of this run's own: {masters} masters with one replica each, on 127.0.0.1 ports \
         {} (no persistence), stopped at the end",
        ports.join(", ")
    );
    Ok(Cluster { seeds, origin, _cluster: Some(cluster) })
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no reason given")
}

/// The Redis version of the first seed and how many masters serve slots, once the first seed
/// says `cluster_state:ok`.
fn cluster_version(seeds: &[String]) -> Result<(String, usize), String> {
    let seed = seeds.first().ok_or("no seed nodes")?;
    let url = format!("redis://{seed}");
    let mut con = redis::Client::open(url.as_str())
        .and_then(|client| client.get_connection_with_timeout(std::time::Duration::from_secs(5)))
        .map_err(|err| format!("{seed}: {err}"))?;
    let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut con).map_err(|err| format!("{seed}: {err}"))?;
    let state = info.lines().find_map(|line| line.strip_prefix("cluster_state:")).map(str::trim);
    if state != Some("ok") {
        return Err(format!("{seed} says cluster_state {state:?}, not ok"));
    }
    let mut masters: Vec<(String, u16)> =
        cluster_slots(&mut con)?.into_iter().map(|range| (range.host, range.port)).collect();
    masters.sort();
    masters.dedup();
    Ok((server_version(&url).map_err(|err| format!("{seed}: {err}"))?, masters.len()))
}

/// One range of hash slots and the master that serves it, from `CLUSTER SLOTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    /// The first slot of the range.
    pub first: u16,
    /// The last slot of the range (included).
    pub last: u16,
    /// The master's host, as the cluster announces it.
    pub host: String,
    /// The master's port.
    pub port: u16,
}

/// `CLUSTER SLOTS` on `con`: every slot range with its master (replicas left out).
pub fn cluster_slots(con: &mut redis::Connection) -> Result<Vec<SlotRange>, String> {
    use redis::Value;
    let reply: Vec<Value> =
        redis::cmd("CLUSTER").arg("SLOTS").query(con).map_err(|err| format!("CLUSTER SLOTS: {err}"))?;
    let number = |value: &Value| match value {
        Value::Int(n) => u16::try_from(*n).ok(),
        _ => None,
    };
    reply
        .iter()
        .map(|range| {
            // [first slot, last slot, [master host, master port, id, ...], [replica ...] ...]
            let Value::Array(fields) = range else { return None };
            let Some(Value::Array(master)) = fields.get(2) else { return None };
            let host = match master.first()? {
                Value::BulkString(host) => String::from_utf8(host.clone()).ok()?,
                Value::SimpleString(host) => host.clone(),
                _ => return None,
            };
            Some(SlotRange {
                first: number(fields.first()?)?,
                last: number(fields.get(1)?)?,
                host,
                port: number(master.get(1)?)?,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("CLUSTER SLOTS answered something unexpected: {reply:?}"))
}

/// `redis_version` from `INFO server`.
fn server_version(url: &str) -> redis::RedisResult<String> {
    let mut con = redis::Client::open(url)?.get_connection()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut con)?;
    Ok(info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map_or_else(|| "of unknown version".to_string(), |v| v.trim().to_string()))
}
