//! `clear` / `clear_async`: a logical clear of every layer in O(1) round trips (a generation per
//! Redis namespace, `adapter/redis/generation.rs`), next to `flush`, which removes keys.
//!
//! Against real redis-servers the tests start: one `INCR` whatever the namespace holds; old keys
//! unreachable at once (still in Redis, reclaimed by their TTL or `flush`); a fresh connection,
//! another tower and another process all go on under the new generation; with invalidation off
//! a clear reaches another tower within a second; a corrupt generation record is an error that
//! names it; the fail-safe never serves a cleared entry. Across real OS processes (the
//! `tower_peer` binary), a clear empties the other instance's memory, also after its tracking
//! connection was killed. Deadlines are generous bounds, not performance claims.

mod both_paths;
mod raw_redis;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cache_tower::{CacheTower, LoadOptions, MemoryAdapter, RedisAdapter, adapter::CacheAdapter};
use cache_tower_tests::commandstats::{command_calls, settled_calls};
use cache_tower_tests::peer::{DELIVERY, Peer};
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
use cache_tower_tests::tracking::subscribed_tower;
use cache_tower_tests::{memory_layers, peek, put, tower_of};

use both_paths::{Calls, on_both_paths};
use raw_redis::Raw;

on_both_paths!(
    a_memory_stack_is_emptied_and_its_listener_hears_invalidated,
    a_clear_over_redis_is_one_incr_whatever_the_namespace_holds,
    after_a_clear_every_tower_and_connection_goes_on_under_the_new_generation,
    flush_after_clear_removes_every_generation_and_keeps_the_record,
    a_corrupt_generation_record_fails_clear_naming_it_and_reads_go_on,
    the_fail_safe_never_serves_a_cleared_entry,
);

/// The peer binary: one service instance.
const PEER: &str = env!("CARGO_BIN_EXE_tower_peer");

fn redis_layer(server: &RedisServer, namespace: &str, invalidation: bool) -> RedisAdapter {
    RedisAdapter::builder().url(server.url()).namespace(namespace).invalidation(invalidation).build().unwrap()
}

/// The record a clear increments.
fn record(namespace: &str) -> String {
    format!("{namespace}\0generation")
}

fn a_memory_stack_is_emptied_and_its_listener_hears_invalidated(api: &impl Calls) {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    put(&layers[0], "a", 1u32);
    put(&layers[1], "b", 2u32);

    api.clear(&tower).unwrap();

    assert!(api.get::<u32>(&tower, "a").is_none() && api.get::<u32>(&tower, "b").is_none());
    assert_eq!(layers[0].stats().invalidations + layers[1].stats().invalidations, 2, "each removal is an invalidation");
    api.set(&tower, "a", 3u32).unwrap();
    assert_eq!(api.get::<u32>(&tower, "a"), Some(3), "the tower works on after a clear");
}

fn a_clear_over_redis_is_one_incr_whatever_the_namespace_holds(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("clear-incr");
    let memory = MemoryAdapter::new();
    let redis = redis_layer(&server, &namespace, true);
    let tower = subscribed_tower(&memory, &redis);
    let items: Vec<(String, u32)> = (0..5_000).map(|n| (format!("k{n}"), n)).collect();
    api.mset(&tower, &items).unwrap();
    let mut raw = Raw::connect(&server.url(), &namespace);
    let before = settled_calls(&mut raw.connection);

    api.clear(&tower).unwrap();

    let mut sent = command_calls(&mut raw.connection);
    sent.retain(|name, calls| {
        *calls -= before.get(name).copied().unwrap_or(0);
        // The listener reads the record when it hears it change, and checks its connection
        // with a `PING` now and then (its own thread, not the call).
        *calls > 0 && name != "getrange" && name != "ping"
    });
    assert_eq!(sent, BTreeMap::from([("incr".to_owned(), 1)]), "one INCR of the generation record, nothing else");
    assert_eq!(raw.get("k1").as_deref(), Some("1"), "the old key is still in Redis, unreachable");
    for key in ["k0", "k1", "k4999"] {
        assert_eq!(api.get::<u32>(&tower, key), None, "{key} is cleared");
        assert_eq!(peek::<u32>(&memory, key), None, "{key} is not in memory");
    }
    api.set(&tower, "k1", 10u32).unwrap();
    let full = format!("{namespace}\0g1\0k1");
    let stored: Option<String> = redis::cmd("GET").arg(&full).query(&mut raw.connection).unwrap();
    assert_eq!(stored.as_deref(), Some("10"), "generation 1 keys are `<ns>\\0g1\\0<key>`");
    assert_eq!(api.get::<u32>(&tower, "k1"), Some(10));
}

fn after_a_clear_every_tower_and_connection_goes_on_under_the_new_generation(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("clear-others");
    let first = CacheTower::new();
    first.add_layer(redis_layer(&server, &namespace, false));
    // Opened before the clear, and without a listener: it learns of it within a second.
    let without_listener = CacheTower::new();
    without_listener.add_layer(redis_layer(&server, &namespace, false));
    api.set(&first, "k", 1u32).unwrap();
    assert_eq!(api.get::<u32>(&without_listener, "k"), Some(1));

    api.clear(&first).unwrap();
    api.set(&first, "k", 2u32).unwrap();

    // A tower built now reads the generation in its connection's handshake.
    let fresh = CacheTower::new();
    fresh.add_layer(redis_layer(&server, &namespace, false));
    assert_eq!(api.get::<u32>(&fresh, "k"), Some(2), "a new connection is on the new generation at once");
    let since = Instant::now();
    loop {
        match api.get::<u32>(&without_listener, "k") {
            Some(2) => break,
            Some(1) => {
                assert!(since.elapsed() < Duration::from_secs(3), "still generation 0 after {:?}", since.elapsed())
            }
            other => panic!("read {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("a tower without invalidation followed the clear after {:?}", since.elapsed());
}

fn flush_after_clear_removes_every_generation_and_keeps_the_record(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("clear-flush");
    let tower = CacheTower::new();
    tower.add_layer(redis_layer(&server, &namespace, false));
    api.set(&tower, "old", 1u32).unwrap();
    api.clear(&tower).unwrap();
    api.set(&tower, "new", 2u32).unwrap();
    let mut raw = Raw::connect(&server.url(), &namespace);
    let other = format!("other:{namespace}");
    redis::cmd("SET").arg(&other).arg("kept").exec(&mut raw.connection).unwrap();

    api.flush(&tower).unwrap();

    let mut left: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut raw.connection).unwrap();
    left.sort();
    let mut expected = vec![record(&namespace), other];
    expected.sort();
    assert_eq!(left, expected, "every generation's keys gone; the record and other keys stay");
    assert_eq!(api.get::<u32>(&tower, "new"), None);
    api.set(&tower, "new", 3u32).unwrap();
    let full = format!("{namespace}\0g1\0new");
    let stored: Option<String> = redis::cmd("GET").arg(&full).query(&mut raw.connection).unwrap();
    assert_eq!(stored.as_deref(), Some("3"), "still generation 1: a flush does not take a generation back");
}

fn a_corrupt_generation_record_fails_clear_naming_it_and_reads_go_on(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("clear-corrupt");
    let mut raw = Raw::connect(&server.url(), &namespace);
    redis::cmd("SET").arg(record(&namespace)).arg("not a number").exec(&mut raw.connection).unwrap();
    let tower = CacheTower::new();
    tower.add_layer(redis_layer(&server, &namespace, false));

    api.set(&tower, "k", 1u32).unwrap();
    assert_eq!(api.get::<u32>(&tower, "k"), Some(1), "the known generation (0) is kept");
    let err = api.clear(&tower).unwrap_err().to_string();

    assert!(err.contains("clear") && err.contains("generation record") && err.contains("not an integer"), "{err}");
    assert_eq!(api.get::<u32>(&tower, "k"), Some(1), "a failed clear changes nothing");
}

fn the_fail_safe_never_serves_a_cleared_entry(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("clear-fail-safe");
    let minute = Duration::from_secs(60);
    let memory = MemoryAdapter::builder().ttl(Duration::from_millis(50)).stale(minute).build();
    let redis = RedisAdapter::builder()
        .url(server.url())
        .namespace(namespace.as_str())
        .ttl(Duration::from_millis(50))
        .stale(minute)
        .build()
        .unwrap();
    let tower = subscribed_tower(&memory, &redis);
    let fail_safe = LoadOptions::new().fail_safe(Duration::from_secs(1));
    assert_eq!(tower.try_get_or_set_with("k", &fail_safe, || Ok::<_, String>(1u32)), Ok(1));
    std::thread::sleep(Duration::from_millis(80));
    // Past its TTL, in its stale window: the fail-safe would serve it ...
    api.clear(&tower).unwrap();

    // ... but not once the tower is cleared.
    let got = tower.try_get_or_set_with("k", &fail_safe, || Err::<u32, _>("source down".to_owned()));
    assert_eq!(got, Err("source down".to_owned()), "a cleared entry is not a fallback");
}

// ===== across processes =====

#[test]
fn a_clear_in_one_process_empties_the_memory_of_another() {
    let server = RedisServer::start();
    let namespace = unique_namespace("clear-peers");
    let mut a = Peer::start(PEER, "A", &server.url(), &namespace, &[]);
    let mut b = Peer::start(PEER, "B", &server.url(), &namespace, &[]);
    b.must(&["mset", "k1", "1", "k2", "2"]);
    a.prime("k1", "1");
    a.prime("k2", "2");

    b.must(&["clear"]);

    let took = a.await_value("k1", None, "B cleared");
    assert!(took < DELIVERY);
    a.await_value("k2", None, "B cleared");
    b.set("k1", "after");
    a.await_value("k1", Some("after"), "B wrote under the new generation");
    a.must(&["set", "k2", "from A"]);
    assert_eq!(b.get("k2").as_deref(), Some("from A"), "both on the same generation");
}

#[test]
fn a_clear_while_the_listener_is_disconnected_is_followed_once_it_is_back() {
    let server = RedisServer::start();
    let namespace = unique_namespace("clear-lost");
    let mut a = Peer::start(PEER, "A", &server.url(), &namespace, &[]);
    let mut b = Peer::start(PEER, "B", &server.url(), &namespace, &[]);
    b.set("k", "old");
    a.prime("k", "old");
    let mut raw = Raw::connect(&server.url(), &namespace);

    // Only the listeners' connections: A's data connection stays, still on generation 0, so
    // what moves A is its listener reading the record when it subscribes again.
    for id in raw.tracking_clients() {
        let _: u64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query(&mut raw.connection).unwrap();
    }
    b.must(&["clear"]);
    b.set("k", "new");

    let took = a.await_value("k", Some("new"), "B cleared while A's listener was away");
    assert!(took < DELIVERY);
    a.prime("k", "new");
    a.must(&["set", "k", "from A"]);
    assert_eq!(b.get("k").as_deref(), Some("from A"), "both on the same generation");
}

/// A clear under a namespace holding many keys, with another tower's memory over it (the
/// listener must move the other tower to the new generation before it reports the change).
#[test]
fn another_tower_in_this_process_follows_through_its_listener() {
    let server = RedisServer::start();
    let namespace = unique_namespace("clear-in-process");
    let (memory_a, memory_b) = (MemoryAdapter::new(), MemoryAdapter::new());
    let a = subscribed_tower(&memory_a, &redis_layer(&server, &namespace, true));
    let b = subscribed_tower(&memory_b, &redis_layer(&server, &namespace, true));
    a.set("k", 1u32).unwrap();
    // Read until B's memory keeps a copy (a read racing with the news of A's write is not kept).
    let since = Instant::now();
    while peek::<u32>(&memory_b, "k").is_none() {
        assert_eq!(b.get::<u32>("k"), Some(1));
        assert!(since.elapsed() < DELIVERY, "B never kept a copy");
        std::thread::sleep(Duration::from_millis(5));
    }

    a.clear().unwrap();

    let since = Instant::now();
    while memory_b.exists("k").unwrap() {
        assert!(since.elapsed() < DELIVERY, "B's copy outlived the clear by {:?}", since.elapsed());
        std::thread::sleep(Duration::from_millis(1));
    }
    eprintln!("B's memory emptied {:?} after A's clear", since.elapsed());
    assert_eq!(b.get::<u32>("k"), None, "B reads the new generation");
    b.set("k", 2u32).unwrap();
    assert_eq!(a.get::<u32>("k"), Some(2));
}
