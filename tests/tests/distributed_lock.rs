//! Distributed stampede protection (`LoadOptions::lock`, docs/architecture.md §15): real OS
//! processes — `tower_peer` instances, each a memory layer over the same Redis — miss one cold key
//! at once, and the computation runs once in all (counted outside the processes, by an `INCR` in
//! Redis); a holder killed mid-load leaves a lock that expires, and then one other instance loads;
//! with Redis frozen while a lock is held, callers fall back to their own single flight within
//! the timeout budget; a caller that takes the lock reads the key once more before computing (a
//! layer of the test's own that stores the key as the lock is taken makes that race certain).
//!
//! Time bounds are budgets with room for a busy 2-core machine; the figures are printed.

use std::process::Command;
use std::thread;
use std::time::Duration;

use cache_tower_tests::peer::Peer;
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};

mod raw_redis;

use raw_redis::Raw;

const PEER: &str = env!("CARGO_BIN_EXE_tower_peer");
/// Room beyond what a call must take; not a speed claim.
const SLACK: u64 = 600;

/// What `stampede` answered: the slowest caller's milliseconds and the distinct values.
fn parse_stampede(name: &str, reply: &str) -> (u64, Vec<String>) {
    let rest = reply.strip_prefix("ok ").unwrap_or_else(|| panic!("{name}: stampede answered {reply:?}"));
    let (slowest, values) = rest.split_once(' ').unwrap_or_else(|| panic!("{name}: {reply:?}"));
    (slowest.parse().unwrap(), serde_json::from_str(values).unwrap())
}

/// Runs `stampede` on every peer at once; their answers, in order.
fn stampede_all(peers: Vec<Peer>, words: &'static [&'static str]) -> Vec<(u64, Vec<String>)> {
    let threads: Vec<_> = peers
        .into_iter()
        .map(|mut peer| {
            thread::spawn(move || {
                let reply = peer.call(words);
                parse_stampede(peer.name(), &reply)
            })
        })
        .collect();
    threads.into_iter().map(|thread| thread.join().unwrap()).collect()
}

/// How many times the computation of `key` ran, as the peers counted it in Redis.
fn loads(server: &RedisServer, namespace: &str, key: &str) -> i64 {
    let mut raw = Raw::connect(&server.url(), "");
    redis::cmd("GET")
        .arg(format!("stampede:{namespace}{key}"))
        .query::<Option<i64>>(&mut raw.connection)
        .unwrap()
        .unwrap_or(0)
}

#[test]
fn four_processes_of_sixteen_callers_compute_a_cold_key_once() {
    let server = RedisServer::start();
    let namespace = unique_namespace("lock");
    let peers: Vec<Peer> =
        (0..4).map(|n| Peer::start(PEER, &format!("peer {n}"), &server.url(), &namespace, &[])).collect();
    let answers = stampede_all(peers, &["stampede", "cold", "16", "200", "2000"]);
    assert_eq!(loads(&server, &namespace, "cold"), 1, "one computation in all");
    let values: Vec<&String> = answers.iter().flat_map(|(_, values)| values).collect();
    assert!(values.windows(2).all(|pair| pair[0] == pair[1]), "every caller got the one value: {values:?}");
    let slowest = answers.iter().map(|(ms, _)| *ms).max().unwrap();
    eprintln!("4 × 16 callers, a 200 ms computation: the slowest caller took {slowest} ms");
    assert!(slowest < 200 + SLACK, "{slowest} ms");
}

#[test]
fn a_holder_killed_mid_load_lets_another_instance_load_once_its_lock_expires() {
    let server = RedisServer::start();
    let namespace = unique_namespace("lock-killed");
    let holder = Peer::start(PEER, "holder", &server.url(), &namespace, &[]);
    let other = Peer::start(PEER, "other", &server.url(), &namespace, &[]);
    let pid = holder.pid();
    // The holder takes the lock (500 ms) and computes for 5 s: it is killed long before.
    let doomed = thread::spawn(move || {
        let mut holder = holder;
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            holder.call(&["stampede", "k", "1", "5000", "500"])
        }));
    });
    thread::sleep(Duration::from_millis(150));
    assert_eq!(loads(&server, &namespace, "k"), 1, "the holder started computing");
    Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    let answers = stampede_all(vec![other], &["stampede", "k", "4", "100", "500"]);
    let (slowest, values) = &answers[0];
    eprintln!("after the holder died: the slowest caller took {slowest} ms");
    assert_eq!(loads(&server, &namespace, "k"), 2, "the other instance computed once");
    assert_eq!(values.len(), 1, "its callers shared it: {values:?}");
    assert!(*slowest < 500 + 100 + SLACK, "no caller waits past the lock timeout + the computation: {slowest} ms");
    let _ = doomed.join();
}

#[test]
fn with_redis_frozen_while_a_lock_is_held_callers_fall_back_within_the_timeout() {
    let mut server = RedisServer::start();
    let namespace = unique_namespace("lock-frozen");
    let holder = Peer::start(PEER, "holder", &server.url(), &namespace, &["--timeout-ms", "200"]);
    let mut other = Peer::start(PEER, "other", &server.url(), &namespace, &["--timeout-ms", "200"]);
    let busy = thread::spawn(move || {
        let mut holder = holder;
        holder.call(&["stampede", "k", "1", "1500", "5000"])
    });
    thread::sleep(Duration::from_millis(150));
    server.freeze();
    let reply = other.call(&["stampede", "k", "4", "100", "5000"]);
    server.thaw();
    let (slowest, values) = parse_stampede("other", &reply);
    eprintln!("Redis frozen while another holds the lock: the slowest caller took {slowest} ms");
    assert_eq!(values.len(), 1, "its callers shared one computation: {values:?}");
    // Its read of Redis times out (200 ms), its computation counts itself (a frozen server: up
    // to two more timeouts) and works 100 ms; it never waits for the lock's 5 s.
    assert!(slowest < 3 * 200 + 100 + SLACK, "{slowest} ms");
    let _ = busy.join();
}

/// A layer that can lock, where another instance stores the key just before this caller takes
/// the lock (the race between a caller's miss and its lock: the other instance stored the value
/// and released its lock in between). A plain memory map underneath; it counts lock releases.
#[derive(Debug, Default)]
struct StoredJustBeforeTheLock {
    inner: cache_tower::MemoryAdapter,
    unlocks: std::sync::atomic::AtomicUsize,
}

impl cache_tower::adapter::CacheAdapter for StoredJustBeforeTheLock {
    fn kind(&self) -> &'static str {
        "racing-lock"
    }
    fn namespace(&self) -> &str {
        ""
    }
    fn ttl(&self) -> Option<Duration> {
        None
    }
    fn get(&self, key: &str) -> cache_tower::Result<Option<cache_tower::adapter::Entry>> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, entry: &cache_tower::adapter::Entry) -> cache_tower::Result<()> {
        self.inner.set(key, entry)
    }
    fn delete(&self, key: &str) -> cache_tower::Result<()> {
        self.inner.delete(key)
    }
    fn exists(&self, key: &str) -> cache_tower::Result<bool> {
        self.inner.exists(key)
    }
    fn flush(&self) -> cache_tower::Result<()> {
        self.inner.flush()
    }
    fn can_lock(&self) -> bool {
        true
    }
    fn lock(&self, key: &str, _token: &str, _ttl: Duration) -> cache_tower::Result<bool> {
        let theirs = cache_tower::adapter::StoredValue::new("loaded by the other instance".to_owned());
        self.inner.set(key, &cache_tower::adapter::Entry::new(theirs, None))?;
        Ok(true)
    }
    fn unlock(&self, _key: &str, _token: &str) -> cache_tower::Result<()> {
        self.unlocks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn the_lock_holder_reads_again_before_computing() {
    let layer = std::sync::Arc::new(StoredJustBeforeTheLock::default());
    let tower = cache_tower::CacheTower::new();
    tower.add_layer(std::sync::Arc::clone(&layer) as std::sync::Arc<dyn cache_tower::adapter::CacheAdapter>);
    let options = cache_tower::LoadOptions::new().lock(Duration::from_secs(5));
    let mut computed = false;
    let value = tower.get_or_set_with("k", &options, || {
        computed = true;
        "loaded here".to_owned()
    });
    assert_eq!(value, "loaded by the other instance");
    assert!(!computed, "the value another instance stored while this one took the lock was computed again");
    assert_eq!(layer.unlocks.load(std::sync::atomic::Ordering::SeqCst), 1, "the lock taken is released");
}
