//! Memory layers kept coherent across processes (docs/architecture.md §7): two real service instances — two
//! `tower_peer` processes, each a memory layer over the same Redis — and a plain Redis client.
//! Once one instance holds a key in memory, a `set`, `delete`, `flush` or `mset` by the other, or
//! an external SET, DEL, EXPIRE, PEXPIRE or FLUSHDB, reaches it: its next reads return the new state
//! within [`DELIVERY`] (the observed latency is printed, and named when the assertion fails).
//! A write under another namespace leaves the copy alone; with invalidation off, it stays stale.
//!
//! In-process, two towers whose memory layers have a namespace other than their Redis layer's
//! are evicted just as well (Redis keys are mapped back to tower keys); those behaviours run on
//! the blocking path and the async one (see `both_paths`).

use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter, adapter::CacheAdapter};
use cache_tower_tests::peer::{DELIVERY, POLL, Peer, STAYS, json};
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
use cache_tower_tests::tracking::subscribed_tower;

mod both_paths;
mod raw_redis;

use both_paths::{Calls, on_both_paths};
use raw_redis::Raw;

on_both_paths! {
    memory_namespaced_apart_from_redis_is_still_evicted,
    with_invalidation_off_in_the_builder_a_copy_stays_stale,
}

/// The peer binary: one service instance.
const PEER: &str = env!("CARGO_BIN_EXE_tower_peer");

// ===== across processes =====

/// A server, a namespace on it, and two peers A and B using that namespace.
struct Pair {
    server: RedisServer,
    namespace: String,
    a: Peer,
    b: Peer,
}

impl Pair {
    fn start(extra: &[&str]) -> Self {
        let server = RedisServer::start();
        let namespace = unique_namespace("coherence");
        let a = Peer::start(PEER, "A", &server.url(), &namespace, extra);
        let b = Peer::start(PEER, "B", &server.url(), &namespace, extra);
        Self { server, namespace, a, b }
    }

    fn raw(&self) -> Raw {
        Raw::connect(&self.server.url(), &self.namespace)
    }
}

#[test]
fn a_set_in_one_process_evicts_the_copy_in_another() {
    let Pair { server: _server, mut a, mut b, .. } = Pair::start(&[]);
    b.set("k", "v1");
    a.prime("k", "v1");
    b.set("k", "v2");
    a.await_value("k", Some("v2"), "B set k");
}

#[test]
fn a_delete_in_one_process_evicts_the_copy_in_another() {
    let Pair { server: _server, mut a, mut b, .. } = Pair::start(&[]);
    b.set("k", "v1");
    a.prime("k", "v1");
    b.must(&["delete", "k"]);
    a.await_value("k", None, "B deleted k");
}

#[test]
fn a_flush_in_one_process_evicts_every_copy_in_another() {
    let Pair { server: _server, mut a, mut b, .. } = Pair::start(&[]);
    b.must(&["mset", "k1", "1", "k2", "2", "k3", "3"]);
    for (key, value) in [("k1", "1"), ("k2", "2"), ("k3", "3")] {
        a.prime(key, value);
    }
    b.must(&["flush"]);
    for key in ["k1", "k2", "k3"] {
        a.await_value(key, None, "B flushed");
    }
}

#[test]
fn an_mset_in_one_process_evicts_every_copy_in_another() {
    let Pair { server: _server, mut a, mut b, .. } = Pair::start(&[]);
    b.must(&["mset", "k1", "old1", "k2", "old2"]);
    a.prime("k1", "old1");
    a.prime("k2", "old2");
    b.must(&["mset", "k1", "new1", "k2", "new2"]);
    a.await_value("k1", Some("new1"), "B mset k1 k2");
    a.await_value("k2", Some("new2"), "B mset k1 k2");
}

#[test]
fn an_external_set_evicts_the_copy() {
    let pair = Pair::start(&[]);
    let (mut raw, mut a) = (pair.raw(), pair.a);
    raw.set("k", &json("v1"));
    a.prime("k", "v1");
    raw.set("k", &json("from outside"));
    a.await_value("k", Some("from outside"), "external SET");
}

#[test]
fn an_external_del_evicts_the_copy() {
    let pair = Pair::start(&[]);
    let (mut raw, mut a) = (pair.raw(), pair.a);
    raw.set("k", &json("v1"));
    a.prime("k", "v1");
    raw.on_key("DEL", "k", &[]);
    a.await_value("k", None, "external DEL");
}

#[test]
fn an_external_pexpire_evicts_the_copy() {
    let pair = Pair::start(&[]);
    let (mut raw, mut a) = (pair.raw(), pair.a);
    raw.set("k", &json("v1")); // no TTL: memory's copy would live forever
    a.prime("k", "v1");
    raw.on_key("PEXPIRE", "k", &[b"1"]);
    a.await_value("k", None, "external PEXPIRE 1 ms");
}

#[test]
fn an_external_expire_evicts_the_copy() {
    let pair = Pair::start(&[]);
    let (mut raw, mut a) = (pair.raw(), pair.a);
    raw.set("k", &json("v1"));
    a.prime("k", "v1");
    // EXPIRE in whole seconds: the copy must go when the key does, not outlive it.
    raw.on_key("EXPIRE", "k", &[b"1"]);
    let deadline = Instant::now() + Duration::from_secs(1) + DELIVERY;
    while raw.get("k").is_some() {
        assert!(Instant::now() < deadline, "Redis did not expire k");
        std::thread::sleep(POLL);
    }
    a.await_value("k", None, "external EXPIRE 1 s, once expired");
}

#[test]
fn an_external_flushdb_evicts_every_copy() {
    let pair = Pair::start(&[]);
    let (mut raw, mut a) = (pair.raw(), pair.a);
    raw.set("k1", &json("1"));
    raw.set("k2", &json("2"));
    a.prime("k1", "1");
    a.prime("k2", "2");
    raw.run(&["FLUSHDB"]);
    a.await_value("k1", None, "external FLUSHDB");
    a.await_value("k2", None, "external FLUSHDB");
}

#[test]
fn a_write_under_another_namespace_evicts_nothing() {
    let server = RedisServer::start();
    let base = unique_namespace("namespaces");
    let (ours, theirs) = (format!("{base}a:"), format!("{base}b:"));
    let mut a = Peer::start(PEER, "A", &server.url(), &ours, &[]);
    let mut b = Peer::start(PEER, "B", &server.url(), &theirs, &[]);
    a.set("k", "mine");
    a.prime("k", "mine");

    b.set("k", "theirs");
    b.must(&["delete", "k"]);
    b.must(&["flush"]);
    a.keeps("k", "mine", "B wrote k under another namespace");

    // A was listening all along: a change under its own namespace does reach it.
    Raw::connect(&server.url(), &ours).set("k", &json("changed"));
    a.await_value("k", Some("changed"), "external SET under A's namespace");
}

#[test]
fn with_invalidation_off_in_the_configuration_a_copy_stays_stale() {
    let pair = Pair::start(&["--no-invalidation"]);
    let mut raw = pair.raw();
    let (mut a, mut b) = (pair.a, pair.b);
    assert_eq!(raw.tracking_clients(), Vec::<u64>::new(), "no process subscribes when invalidation is off");
    b.set("k", "v1");
    a.prime("k", "v1");
    b.set("k", "v2");
    assert_eq!(raw.get("k"), Some(json("v2")));
    a.keeps("k", "v1", "invalidation off");
}

#[test]
fn each_process_subscribes_once_with_tracking_on() {
    let pair = Pair::start(&[]);
    let mut raw = pair.raw();
    assert_eq!(raw.tracking_clients().len(), 2, "one tracking connection per process");
    drop(pair.a);
    let deadline = Instant::now() + DELIVERY;
    while raw.tracking_clients().len() != 1 {
        assert!(Instant::now() < deadline, "A's tracking connection outlived A");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ===== in one process =====

/// Two towers, each its own memory layer (namespace `m:`) over its own Redis adapter (namespace
/// `r:...`), on one server.
struct Towers {
    server: RedisServer,
    namespace: String,
    memory_a: MemoryAdapter,
    a: CacheTower,
    b: CacheTower,
}

impl Towers {
    fn start(invalidation: bool) -> Self {
        let server = RedisServer::start();
        let namespace = format!("r:{}", unique_namespace("mapped"));
        let redis = || {
            RedisAdapter::builder()
                .url(server.url())
                .namespace(namespace.clone())
                .timeout(Duration::from_secs(1))
                .invalidation(invalidation)
                .build()
                .expect("building the redis layer")
        };
        let memory = || MemoryAdapter::builder().namespace("m:").build();
        let (memory_a, memory_b) = (memory(), memory());
        let (a, b) = if invalidation {
            (subscribed_tower(&memory_a, &redis()), subscribed_tower(&memory_b, &redis()))
        } else {
            let stack = |memory: &MemoryAdapter| {
                let tower = CacheTower::new();
                tower.add_layer(memory.clone());
                tower.add_layer(redis());
                tower
            };
            (stack(&memory_a), stack(&memory_b))
        };
        Self { server, namespace, memory_a, a, b }
    }

    /// Reads `key` through A until A's memory layer holds it, steadily (as [`Peer::prime`]).
    fn prime_a(&self, api: &impl Calls, key: &str, expected: &str) {
        let deadline = Instant::now() + DELIVERY;
        loop {
            assert_eq!(api.get::<String>(&self.a, key).as_deref(), Some(expected), "reading {key:?} first");
            if self.memory_a.exists(key).unwrap() {
                std::thread::sleep(Duration::from_millis(20));
                if self.memory_a.exists(key).unwrap() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "a read of {key:?} never left it in A's memory");
        }
    }

    /// Polls A's `get key` until it answers `expected`.
    fn await_a(&self, api: &impl Calls, key: &str, expected: Option<&str>, change: &str) -> Duration {
        let since = Instant::now();
        loop {
            let got = api.get::<String>(&self.a, key);
            let took = since.elapsed();
            if got.as_deref() == expected {
                eprintln!("{change}: tower A saw {key:?} = {expected:?} after {took:?}");
                return took;
            }
            assert!(took < DELIVERY, "{change}: A still read {key:?} = {got:?} after {took:?}, expected {expected:?}");
            std::thread::sleep(POLL);
        }
    }
}

fn memory_namespaced_apart_from_redis_is_still_evicted(api: &impl Calls) {
    let towers = Towers::start(true);
    let (a, b) = (&towers.a, &towers.b);
    assert_eq!(a.get_layers()[0].namespace(), "m:");
    assert!(towers.namespace.starts_with("r:"));

    api.set(b, "k", "v1".to_owned()).unwrap();
    towers.prime_a(api, "k", "v1");
    api.set(b, "k", "v2".to_owned()).unwrap();
    towers.await_a(api, "k", Some("v2"), "tower B set k");

    towers.prime_a(api, "k", "v2");
    api.delete(b, "k").unwrap();
    towers.await_a(api, "k", None, "tower B deleted k");

    let mut raw = Raw::connect(&towers.server.url(), &towers.namespace);
    raw.set("k", &json("outside"));
    towers.prime_a(api, "k", "outside");
    raw.set("k", &json("outside again"));
    towers.await_a(api, "k", Some("outside again"), "external SET of r:...k");
    // A's memory holds the tower key, not the Redis one.
    towers.prime_a(api, "k", "outside again");
    assert_eq!(towers.memory_a.keys(), vec!["k".to_owned()]);
}

fn with_invalidation_off_in_the_builder_a_copy_stays_stale(api: &impl Calls) {
    let towers = Towers::start(false);
    let mut raw = Raw::connect(&towers.server.url(), &towers.namespace);
    assert_eq!(raw.tracking_clients(), Vec::<u64>::new(), "no tower subscribes when invalidation is off");
    api.set(&towers.b, "k", "v1".to_owned()).unwrap();
    towers.prime_a(api, "k", "v1");
    api.set(&towers.b, "k", "v2".to_owned()).unwrap();
    raw.set("other", &json("x"));
    let until = Instant::now() + STAYS;
    while Instant::now() < until {
        assert!(towers.memory_a.exists("k").unwrap(), "A lost k from memory with invalidation off");
        assert_eq!(api.get::<String>(&towers.a, "k").as_deref(), Some("v1"));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(raw.get("k"), Some(json("v2")));
}

#[test]
fn the_removal_listener_hears_an_invalidation_as_invalidated() {
    use std::sync::{Arc, Mutex};

    use cache_tower::adapter::RemovalCause;

    let server = RedisServer::start();
    let namespace = unique_namespace("listened");
    let redis = || RedisAdapter::builder().url(server.url()).namespace(namespace.clone()).build().unwrap();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    let memory_a = MemoryAdapter::builder()
        .on_removal(move |key, cause| log.lock().unwrap().push((key.to_owned(), cause)))
        .build();
    let a = subscribed_tower(&memory_a, &redis());
    let b = subscribed_tower(&MemoryAdapter::new(), &redis());

    b.set("k", "v1".to_owned()).unwrap();
    // Read through A until its memory layer holds k steadily: the invalidation of B's write of
    // v1 may still be on its way and evict the first copy.
    let deadline = Instant::now() + DELIVERY;
    loop {
        assert_eq!(a.get::<String>("k").as_deref(), Some("v1"));
        if memory_a.exists("k").unwrap() {
            std::thread::sleep(Duration::from_millis(20));
            if memory_a.exists("k").unwrap() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "a read of k never left it in A's memory");
    }
    let before = memory_a.stats().invalidations;
    heard.lock().unwrap().clear();
    b.set("k", "v2".to_owned()).unwrap();
    let deadline = Instant::now() + DELIVERY;
    while memory_a.exists("k").unwrap() {
        assert!(Instant::now() < deadline, "B's set never evicted A's copy");
        std::thread::sleep(POLL);
    }
    assert_eq!(*heard.lock().unwrap(), [("k".to_owned(), RemovalCause::Invalidated)]);
    assert_eq!(memory_a.stats().invalidations, before + 1);
    assert_eq!(memory_a.stats().removals, 0, "an invalidation is not counted as a delete");
}
