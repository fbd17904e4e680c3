//! The servers some scenarios need, started on first use and stopped when the run ends.
//!
//! Redis: the server named by `REDIS_URL` when it is set, otherwise a throwaway `redis-server`
//! of this run's own (loopback, a free port, no persistence), started the first time a Redis
//! scenario asks for it and stopped when [`Services`] is dropped at the end of the run, panics
//! included. Without `redis-server` on PATH and without `REDIS_URL`, the Redis scenarios are
//! skipped with a note rather than failing the run.

use std::cell::OnceCell;
use std::process::{Command, Stdio};

use cache_tower_tests::redis_server::RedisServer;

/// The servers of one run. Drop it to stop them.
#[derive(Debug, Default)]
pub struct Services {
    redis: OnceCell<Result<Redis, String>>,
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

impl Services {
    /// No server started yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The Redis server, started on first call; `Err` says why there is none.
    pub fn redis(&self) -> Result<&Redis, &str> {
        self.redis.get_or_init(start_redis).as_ref().map_err(String::as_str)
    }

    /// A line for the report about each server this run used.
    pub fn describe(&self) -> Vec<String> {
        match self.redis.get() {
            Some(Ok(redis)) => vec![format!("redis: {}", redis.origin)],
            Some(Err(reason)) => vec![format!("redis: none, so the Redis scenarios were skipped: {reason}")],
            None => Vec::new(),
        }
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
    let server = std::panic::catch_unwind(RedisServer::start).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no reason given");
        format!("redis-server did not start: {message}")
    })?;
    let url = server.url();
    let version = server_version(&url).map_err(|err| format!("redis-server started but does not answer: {err}"))?;
    let origin = format!(
        "a redis-server {version} of this run's own on 127.0.0.1:{} (no persistence), stopped at the end",
        server.port()
    );
    Ok(Redis { url, origin, _server: Some(server) })
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
