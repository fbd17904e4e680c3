//! Tags: `set_with` / `LoadOptions::tags` attach tags to an entry, and `invalidate_tag` (and
//! async) makes every entry carrying a tag a miss in every layer of every instance, in one round
//! trip per Redis layer whatever the number of entries (`adapter/redis/tags.rs`,
//! `adapter/memory/tag_index.rs`).
//!
//! Against real redis-servers the tests start: one `SET` of the tag's record and nothing else;
//! the memory layer reclaims what it invalidates; the stored form (a header, then the JSON);
//! a tower without invalidation reads the records and still misses at once; the fail-safe never
//! serves an invalidated entry; a corrupt header is a miss and a corrupt record still works; the
//! record's TTL. Across real OS processes (the `tower_peer` binary), an invalidation empties the
//! other instance's memory of the tag's entries only, also after its tracking connection was
//! killed. Deadlines are generous bounds, not performance claims.

mod both_paths;
mod raw_redis;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_tower::adapter::{CacheAdapter, RemovalCause};
use cache_tower::{CacheTower, LoadOptions, MemoryAdapter, RedisAdapter};
use cache_tower_tests::commandstats::{command_calls, settled_calls};
use cache_tower_tests::peer::{DELIVERY, Peer};
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
use cache_tower_tests::tracking::subscribed_tower;
use cache_tower_tests::{peek, tower_of};

use both_paths::{Calls, on_both_paths};
use raw_redis::Raw;

on_both_paths!(
    a_memory_layer_removes_the_tagged_entries_at_once_and_keeps_the_rest,
    over_redis_an_invalidation_is_one_set_whatever_the_tag_covers,
    a_tagged_entry_is_stored_as_a_header_then_its_json,
    a_tower_without_invalidation_checks_the_records_and_misses_at_once,
    a_get_or_set_with_tags_computes_again_after_an_invalidation,
    the_fail_safe_never_serves_an_invalidated_entry,
    a_corrupt_header_is_a_miss_and_a_corrupt_record_still_works,
    the_tag_record_lives_as_long_as_an_entry_can,
);

/// The peer binary: one service instance.
const PEER: &str = env!("CARGO_BIN_EXE_tower_peer");

fn redis_layer(server: &RedisServer, namespace: &str, invalidation: bool) -> RedisAdapter {
    RedisAdapter::builder().url(server.url()).namespace(namespace).invalidation(invalidation).build().unwrap()
}

fn tagged(tags: &[&str]) -> LoadOptions {
    LoadOptions::new().tags(tags.iter().copied())
}

/// The Redis key of a tag's record.
fn record(namespace: &str, tag: &str) -> String {
    format!("{namespace}\0tag\0{tag}")
}

fn a_memory_layer_removes_the_tagged_entries_at_once_and_keeps_the_rest(api: &impl Calls) {
    let causes = Arc::new(Mutex::new(Vec::new()));
    let heard = Arc::clone(&causes);
    let top = MemoryAdapter::builder()
        .on_removal(move |key, cause| heard.lock().unwrap().push((key.to_owned(), cause)))
        .build();
    let bottom = MemoryAdapter::new();
    let tower = tower_of(&[top.clone(), bottom.clone()]);
    for n in 0..100 {
        api.set_with(&tower, &format!("order:{n}"), n, &tagged(&["customer:1", &format!("day:{}", n % 2)])).unwrap();
    }
    api.set_with(&tower, "order:other", 7, &tagged(&["customer:2"])).unwrap();
    api.set(&tower, "plain", 8).unwrap();

    api.invalidate_tag(&tower, "day:0").unwrap();

    assert_eq!((top.len(), bottom.len()), (52, 52), "the 50 entries of day:0 are gone from both layers");
    assert_eq!(api.get::<i32>(&tower, "order:0"), None);
    assert_eq!(api.get::<i32>(&tower, "order:1"), Some(1), "day:1 stays");
    let invalidated = causes.lock().unwrap().iter().filter(|(_, cause)| *cause == RemovalCause::Invalidated).count();
    assert_eq!(invalidated, 50, "the listener hears each as invalidated");

    api.invalidate_tag(&tower, "customer:1").unwrap();
    assert_eq!((top.len(), bottom.len()), (2, 2));
    assert_eq!(api.get::<i32>(&tower, "order:other"), Some(7));
    assert_eq!(api.get::<i32>(&tower, "plain"), Some(8));
    api.invalidate_tag(&tower, "no such tag").unwrap();
    assert_eq!(top.len(), 2);

    // Overwritten untagged, a key no longer carries the tag.
    api.set_with(&tower, "k", 1, &tagged(&["t"])).unwrap();
    api.set(&tower, "k", 2).unwrap();
    api.invalidate_tag(&tower, "t").unwrap();
    assert_eq!(api.get::<i32>(&tower, "k"), Some(2), "the untagged value is not invalidated");
}

fn over_redis_an_invalidation_is_one_set_whatever_the_tag_covers(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("tags-one-set");
    let memory = MemoryAdapter::new();
    let redis = redis_layer(&server, &namespace, true);
    let tower = subscribed_tower(&memory, &redis);
    let tenant = tagged(&["tenant:acme"]);
    for n in 0..2_000u32 {
        api.set_with(&tower, &format!("k{n}"), n, &tenant).unwrap();
    }
    api.set(&tower, "plain", 1u32).unwrap();
    assert_eq!(memory.len(), 2_001);
    let mut raw = Raw::connect(&server.url(), &namespace);
    let before = settled_calls(&mut raw.connection);

    api.invalidate_tag(&tower, "tenant:acme").unwrap();

    let mut sent = command_calls(&mut raw.connection);
    sent.retain(|name, calls| {
        *calls -= before.get(name).copied().unwrap_or(0);
        // The listener checks its connection with a `PING` now and then (its own thread).
        *calls > 0 && name != "ping"
    });
    assert_eq!(sent, BTreeMap::from([("set".to_owned(), 1)]), "one SET of the tag's record, nothing else");
    assert_eq!(memory.len(), 1, "the memory layer reclaimed every tagged entry");
    assert!(raw.get("k1").is_some(), "the old entry is still in Redis, a miss by its version");
    for key in ["k0", "k1", "k1999"] {
        assert!(!api.exists(&tower, key), "{key} does not exist any more");
        assert_eq!(api.get::<u32>(&tower, key), None, "{key} is invalidated");
        assert_eq!(peek::<u32>(&memory, key), None, "{key} is not backfilled");
    }
    assert_eq!(api.get::<u32>(&tower, "plain"), Some(1));
    api.set_with(&tower, "k1", 10u32, &tenant).unwrap();
    assert_eq!(api.get::<u32>(&tower, "k1"), Some(10), "written again under the new version");
    memory.flush().unwrap();
    assert_eq!(api.get::<u32>(&tower, "k1"), Some(10), "and read back from Redis");
}

fn a_tagged_entry_is_stored_as_a_header_then_its_json(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("tags-stored");
    let tower = CacheTower::new();
    tower.add_layer(redis_layer(&server, &namespace, false));
    let mut raw = Raw::connect(&server.url(), &namespace);

    api.set_with(&tower, "k", "v".to_owned(), &tagged(&["t\"1"])).unwrap();
    assert_eq!(raw.get("k").as_deref(), Some("#ct-tags {\"t\\\"1\":\"0\"}\n\"v\""), "version 0: never invalidated");

    api.invalidate_tag(&tower, "t\"1").unwrap();
    let version: String = redis::cmd("GET").arg(record(&namespace, "t\"1")).query(&mut raw.connection).unwrap();
    api.set_with(&tower, "k", "w".to_owned(), &tagged(&["t\"1"])).unwrap();
    assert_eq!(raw.get("k"), Some(format!("#ct-tags {{\"t\\\"1\":\"{version}\"}}\n\"w\"")));
    assert_eq!(api.get::<String>(&tower, "k").as_deref(), Some("w"));

    raw.set("external", "{\"plain\":true}");
    assert_eq!(api.get::<serde_json::Value>(&tower, "external"), Some(serde_json::json!({"plain": true})));
    api.set(&tower, "untagged", 5u32).unwrap();
    assert_eq!(raw.get("untagged").as_deref(), Some("5"), "an untagged entry is its plain JSON");

    let too_many: Vec<String> = (0..2_000).map(|n| format!("a rather long tag name, number {n:>6}")).collect();
    let err = api.set_with(&tower, "huge", 1u32, &LoadOptions::new().tags(too_many)).unwrap_err();
    assert!(err.to_string().contains("tags of this value take"), "{err}");
    assert_eq!(raw.get("huge"), None, "nothing written");
}

fn a_tower_without_invalidation_checks_the_records_and_misses_at_once(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("tags-no-invalidation");
    let writer = CacheTower::new();
    writer.add_layer(redis_layer(&server, &namespace, false));
    let reader = CacheTower::new();
    reader.add_layer(redis_layer(&server, &namespace, false));
    api.set_with(&writer, "k", 1u32, &tagged(&["a", "b"])).unwrap();
    assert_eq!(api.mget::<u32, _>(&reader, &["k", "k"]).get("k").copied().flatten(), Some(1));

    api.invalidate_tag(&writer, "b").unwrap();

    assert_eq!(api.get::<u32>(&reader, "k"), None, "another tower misses at once");
    assert_eq!(api.mget::<u32, _>(&reader, &["k"]).get("k").copied().flatten(), None);
    assert!(!api.exists(&reader, "k"), "exists checks the tags too");
    api.set(&writer, "plain", 2u32).unwrap();
    assert!(api.exists(&reader, "plain"));
    assert!(!api.exists(&reader, "never written"));
}

fn a_get_or_set_with_tags_computes_again_after_an_invalidation(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("tags-get-or-set");
    let memory = MemoryAdapter::new();
    let tower = subscribed_tower(&memory, &redis_layer(&server, &namespace, true));
    let options = tagged(&["user:1"]);
    let mut computed = 0;
    let mut load = |tower: &CacheTower| {
        api.get_or_set_with(tower, "profile:1", &options, || {
            computed += 1;
            format!("v{computed}")
        })
    };
    assert_eq!(load(&tower), "v1");
    assert_eq!(load(&tower), "v1", "a hit");
    assert!(peek::<String>(&memory, "profile:1").is_some());

    api.set_with(&tower, "profile:2", "kept".to_owned(), &tagged(&["user:2"])).unwrap();
    api.invalidate_tag(&tower, "user:1").unwrap();

    assert_eq!(api.get::<String>(&tower, "profile:2").as_deref(), Some("kept"), "another tag's entry stays");
    assert_eq!(load(&tower), "v2", "computed again");
    memory.flush().unwrap();
    assert_eq!(load(&tower), "v2", "the new value is in Redis under the new version");
}

fn the_fail_safe_never_serves_an_invalidated_entry(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("tags-fail-safe");
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
    let options = LoadOptions::new().fail_safe(Duration::from_secs(1)).tags(["t"]);
    assert_eq!(tower.try_get_or_set_with("k", &options, || Ok::<_, String>(1u32)), Ok(1));
    let other = LoadOptions::new().fail_safe(Duration::from_secs(1)).tags(["u"]);
    assert_eq!(tower.try_get_or_set_with("other", &other, || Ok::<_, String>(2u32)), Ok(2));
    std::thread::sleep(Duration::from_millis(80));
    // Past its TTL, in its stale window: the fail-safe would serve it ...
    api.invalidate_tag(&tower, "t").unwrap();
    let kept = tower.try_get_or_set_with("other", &other, || Err::<u32, _>("source down".to_owned()));
    assert_eq!(kept, Ok(2), "another tag's stale entry is still a fallback");

    // ... but not once its tag is invalidated.
    let got = tower.try_get_or_set_with("k", &options, || Err::<u32, _>("source down".to_owned()));
    assert_eq!(got, Err("source down".to_owned()), "an invalidated entry is not a fallback");
}

fn a_corrupt_header_is_a_miss_and_a_corrupt_record_still_works(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("tags-corrupt");
    let tower = CacheTower::new();
    tower.add_layer(redis_layer(&server, &namespace, false));
    let mut raw = Raw::connect(&server.url(), &namespace);
    for broken in
        ["#ct-tags nope\n1", "#ct-tags {\"t\":\"x\"}\n1", "#ct-tags {\"t\":\"0\"}", "#ct-tags {\"t\":\"0\"}\n"]
    {
        raw.set("k", broken);
        assert_eq!(api.get::<u32>(&tower, "k"), None, "{broken:?} is a miss");
        assert_eq!(api.mget::<u32, _>(&tower, &["k"]).get("k").copied().flatten(), None);
    }

    redis::cmd("SET").arg(record(&namespace, "t")).arg("not a number").exec(&mut raw.connection).unwrap();
    api.set_with(&tower, "k", 1u32, &tagged(&["t"])).unwrap();
    assert_eq!(api.get::<u32>(&tower, "k"), Some(1), "a record holding anything has a version");
    redis::cmd("SET").arg(record(&namespace, "t")).arg("something else").exec(&mut raw.connection).unwrap();
    assert_eq!(api.get::<u32>(&tower, "k"), None, "overwriting the record invalidates");
    api.set_with(&tower, "k", 2u32, &tagged(&["t"])).unwrap();
    api.invalidate_tag(&tower, "t").unwrap();
    assert_eq!(api.get::<u32>(&tower, "k"), None);
}

fn the_tag_record_lives_as_long_as_an_entry_can(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("tags-record-ttl");
    let timed = CacheTower::new();
    timed.add_layer(
        RedisAdapter::builder()
            .url(server.url())
            .namespace(namespace.as_str())
            .ttl(Duration::from_secs(60))
            .stale(Duration::from_secs(10))
            .invalidation(false)
            .build()
            .unwrap(),
    );
    let untimed = CacheTower::new();
    untimed.add_layer(redis_layer(&server, &format!("{namespace}untimed:"), false));
    let mut raw = Raw::connect(&server.url(), &namespace);

    api.invalidate_tag(&timed, "t").unwrap();
    api.invalidate_tag(&untimed, "t").unwrap();

    let pttl: i64 = redis::cmd("PTTL").arg(record(&namespace, "t")).query(&mut raw.connection).unwrap();
    assert!((60_000..=70_000).contains(&pttl), "the layer's TTL plus its stale window, got {pttl} ms");
    let pttl: i64 =
        redis::cmd("PTTL").arg(record(&format!("{namespace}untimed:"), "t")).query(&mut raw.connection).unwrap();
    assert_eq!(pttl, -1, "no layer TTL: the record does not expire");
}

// ===== across processes =====

#[test]
fn a_tag_invalidation_in_one_process_empties_the_memory_of_another_of_that_tag_only() {
    let server = RedisServer::start();
    let namespace = unique_namespace("tags-peers");
    let mut a = Peer::start(PEER, "A", &server.url(), &namespace, &[]);
    let mut b = Peer::start(PEER, "B", &server.url(), &namespace, &[]);
    b.must(&["tagged", "k1", "1", "t1"]);
    b.must(&["tagged", "k2", "2", "t1", "t2"]);
    b.must(&["tagged", "other", "3", "t3"]);
    b.set("plain", "4");
    for (key, value) in [("k1", "1"), ("k2", "2"), ("other", "3"), ("plain", "4")] {
        a.prime(key, value);
    }

    b.must(&["invalidate-tag", "t1"]);

    let took = a.await_value("k1", None, "B invalidated t1");
    assert!(took < DELIVERY);
    a.await_value("k2", None, "B invalidated t1");
    assert!(!a.holds("k1") && !a.holds("k2"), "gone from A's memory");
    a.keeps("other", "3", "another tag");
    a.keeps("plain", "4", "untagged");
    a.must(&["tagged", "k1", "new", "t1"]);
    assert_eq!(b.get("k1").as_deref(), Some("new"), "written under the new version");
}

#[test]
fn a_tag_invalidation_while_the_listener_is_disconnected_is_followed_once_it_is_back() {
    let server = RedisServer::start();
    let namespace = unique_namespace("tags-lost");
    let mut a = Peer::start(PEER, "A", &server.url(), &namespace, &[]);
    let mut b = Peer::start(PEER, "B", &server.url(), &namespace, &[]);
    b.must(&["tagged", "k", "old", "t"]);
    a.prime("k", "old");
    let mut raw = Raw::connect(&server.url(), &namespace);

    for id in raw.tracking_clients() {
        let _: u64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query(&mut raw.connection).unwrap();
    }
    b.must(&["invalidate-tag", "t"]);

    let took = a.await_value("k", None, "B invalidated t while A's listener was away");
    assert!(took < DELIVERY);
    b.must(&["tagged", "k", "new", "t"]);
    a.await_value("k", Some("new"), "B wrote again");
}

/// Another tower of this process, memory over Redis: its listener hears the record change and
/// removes the tag's entries from its memory layer.
#[test]
fn another_tower_in_this_process_follows_through_its_listener() {
    let server = RedisServer::start();
    let namespace = unique_namespace("tags-in-process");
    let (memory_a, memory_b) = (MemoryAdapter::new(), MemoryAdapter::new());
    let a = subscribed_tower(&memory_a, &redis_layer(&server, &namespace, true));
    let b = subscribed_tower(&memory_b, &redis_layer(&server, &namespace, true));
    a.set_with("k", 1u32, &tagged(&["t"])).unwrap();
    a.set("plain", 2u32).unwrap();
    let since = Instant::now();
    while peek::<u32>(&memory_b, "k").is_none() || peek::<u32>(&memory_b, "plain").is_none() {
        assert_eq!(b.get::<u32>("k"), Some(1));
        assert_eq!(b.get::<u32>("plain"), Some(2));
        assert!(since.elapsed() < DELIVERY, "B never kept a copy");
        std::thread::sleep(Duration::from_millis(5));
    }

    a.invalidate_tag("t").unwrap();

    let since = Instant::now();
    while memory_b.exists("k").unwrap() {
        assert!(since.elapsed() < DELIVERY, "B's copy outlived the invalidation by {:?}", since.elapsed());
        std::thread::sleep(Duration::from_millis(1));
    }
    eprintln!("B's memory lost the tagged entry {:?} after A's invalidation", since.elapsed());
    assert_eq!(peek::<u32>(&memory_b, "plain"), Some(2), "the untagged entry stays in B's memory");
    assert_eq!(b.get::<u32>("k"), None);
}
