//! A process keeps its own writes (docs/adr/0013-a-process-keeps-its-own-writes.md): a `set`,
//! `mset` or `get_or_set` of a memory-over-Redis tower leaves the value in memory, although the
//! invalidation listener hears the write as a change of the key, so the next read is a memory
//! hit, not a Redis round trip. Coherence holds meanwhile: a later write by anyone else still
//! evicts it, and writes of one key racing in one process (with reads backfilling and another
//! process writing) never leave memory holding anything but what Redis holds.
//!
//! Each behaviour runs on the blocking path and the async one (see `both_paths`).

use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter, adapter::CacheAdapter};
use cache_tower_tests::peer::{DELIVERY, POLL, STAYS, json};
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
use cache_tower_tests::tracking::subscribed_tower;

mod both_paths;
mod raw_redis;

use both_paths::{Calls, on_both_paths};
use raw_redis::Raw;

on_both_paths! {
    a_set_keeps_its_value_in_memory,
    an_mset_and_a_set_with_ttl_keep_their_values,
    a_get_or_set_keeps_the_computed_value,
    a_later_write_elsewhere_still_evicts_an_own_write,
    racing_own_writes_leave_memory_as_redis_holds_it,
}

/// A memory layer over Redis, its listener subscribed, and a raw connection for writes from
/// "another process".
struct Setup {
    _server: RedisServer,
    memory: MemoryAdapter,
    tower: CacheTower,
    raw: Raw,
}

impl Setup {
    fn start() -> Self {
        let server = RedisServer::start();
        let namespace = unique_namespace("own");
        let redis = RedisAdapter::builder()
            .url(server.url())
            .namespace(namespace.clone())
            .timeout(Duration::from_secs(1))
            .build()
            .expect("building the redis layer");
        let memory = MemoryAdapter::new();
        let tower = subscribed_tower(&memory, &redis);
        let raw = Raw::connect(&server.url(), &namespace);
        Self { _server: server, memory, tower, raw }
    }

    /// How many reads Redis (layer 1) has answered.
    fn redis_hits(&self) -> u64 {
        self.tower.stats()[1].hits
    }

    /// Asserts that memory holds each `(key, value)` for [`STAYS`] (the report of a write comes
    /// within a millisecond here) and that reading them then is a memory hit.
    fn assert_kept(&self, api: &impl Calls, items: &[(&str, &str)]) {
        let until = Instant::now() + STAYS;
        while Instant::now() < until {
            for (key, _) in items {
                assert!(self.memory.exists(key).unwrap(), "the process's own write of {key:?} left memory");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let before = self.redis_hits();
        for (key, value) in items {
            assert_eq!(api.get::<String>(&self.tower, key).as_deref(), Some(*value));
        }
        assert_eq!(self.redis_hits(), before, "reading {items:?} after writing them went to Redis");
    }

    /// Polls `get key` until it answers `expected`, failing after [`DELIVERY`].
    fn await_value(&self, api: &impl Calls, key: &str, expected: &str) {
        let since = Instant::now();
        loop {
            let got = api.get::<String>(&self.tower, key);
            if got.as_deref() == Some(expected) {
                return;
            }
            assert!(since.elapsed() < DELIVERY, "still read {key:?} = {got:?}, expected {expected:?}");
            std::thread::sleep(POLL);
        }
    }
}

fn a_set_keeps_its_value_in_memory(api: &impl Calls) {
    let setup = Setup::start();
    api.set(&setup.tower, "k", "v1".to_owned()).unwrap();
    setup.assert_kept(api, &[("k", "v1")]);
    // Overwrites too, a few milliseconds apart. (Writes of one key back to back, each sent
    // before the report of the last is checked, may lose the copy: see ADR 13.)
    for round in 2..20 {
        api.set(&setup.tower, "k", format!("v{round}")).unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    setup.assert_kept(api, &[("k", "v19")]);
}

fn an_mset_and_a_set_with_ttl_keep_their_values(api: &impl Calls) {
    let setup = Setup::start();
    let items: Vec<(String, String)> = (0..20).map(|i| (format!("m{i}"), format!("value {i}"))).collect();
    api.mset(&setup.tower, &items).unwrap();
    api.set_with_ttl(&setup.tower, "t", "timed".to_owned(), Duration::from_secs(60)).unwrap();
    let mut kept: Vec<(&str, &str)> = items.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    kept.push(("t", "timed"));
    setup.assert_kept(api, &kept);
}

fn a_get_or_set_keeps_the_computed_value(api: &impl Calls) {
    let setup = Setup::start();
    assert_eq!(api.get_or_set(&setup.tower, "g", || "computed".to_owned()), "computed");
    setup.assert_kept(api, &[("g", "computed")]);
}

fn a_later_write_elsewhere_still_evicts_an_own_write(api: &impl Calls) {
    let mut setup = Setup::start();
    api.set(&setup.tower, "k", "mine".to_owned()).unwrap();
    setup.assert_kept(api, &[("k", "mine")]);
    setup.raw.set("k", &json("theirs"));
    setup.await_value(api, "k", "theirs");
    // Written again here, then deleted elsewhere.
    api.set(&setup.tower, "k", "mine again".to_owned()).unwrap();
    setup.assert_kept(api, &[("k", "mine again")]);
    setup.raw.on_key("DEL", "k", &[]);
    let since = Instant::now();
    while api.get::<String>(&setup.tower, "k").is_some() {
        assert!(since.elapsed() < DELIVERY, "an external DEL of an own write never reached memory");
        std::thread::sleep(POLL);
    }
}

/// Four writers of this process and one outside it write the same few keys while a reader
/// backfills them; once all is quiet, every copy in memory equals the value in Redis.
fn racing_own_writes_leave_memory_as_redis_holds_it(api: &impl Calls) {
    const KEYS: usize = 4;
    const ROUNDS: usize = 150;
    let mut setup = Setup::start();
    let key = |i: usize| format!("r{}", i % KEYS);
    std::thread::scope(|scope| {
        for writer in 0..4 {
            let tower = &setup.tower;
            scope.spawn(move || {
                for round in 0..ROUNDS {
                    // Blocking calls on these threads: the async path runs on the main thread.
                    tower.set(&key(round), format!("writer {writer} round {round}")).unwrap();
                }
            });
        }
        let tower = &setup.tower;
        scope.spawn(move || {
            for round in 0..ROUNDS * 2 {
                let _ = tower.get::<String>(&key(round));
            }
        });
        for round in 0..ROUNDS {
            api.set(&setup.tower, &key(round + 1), format!("main round {round}")).unwrap();
            if round % 10 == 0 {
                setup.raw.set(&key(round + 2), &json(&format!("outside round {round}")));
            }
        }
    });
    // Let the last reports arrive and be checked.
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..KEYS {
        let key = key(i);
        let in_redis = setup.raw.get(&key);
        if let Some(copy) = setup.memory.get_value(&key).unwrap() {
            let copy = String::from_utf8(copy.json().unwrap().to_vec()).unwrap();
            assert_eq!(Some(copy), in_redis, "memory's copy of {key:?} differs from Redis's value");
        }
    }
}
