//! MemoryAdapter: the seed's eviction sequences (FIFO and LRU), overwrites at maxsize, TTL expiry
//! for every operation, reclaiming expired entries without reading them, namespace, shared clones,
//! and a concurrency check on bounded adapters.

use std::collections::HashMap;
use std::time::Duration;

use cache_tower::{
    CacheTower, MemoryAdapter,
    adapter::{CacheAdapter, Entry, StoredValue},
    clock::ManualClock,
};
use cache_tower_tests::{peek, put, tower_of};

fn bounded(maxsize: usize, lru: bool) -> MemoryAdapter {
    MemoryAdapter::builder().maxsize(maxsize).lru(lru).build()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn entry<T: cache_tower::Cacheable>(value: T, ttl: Option<Duration>) -> Entry {
    Entry::new(StoredValue::new(value), ttl)
}

// ===== the seed's eviction sequences =====

/// The seed: maxsize 2; set a, set b, get a, set c. FIFO evicts the oldest key.
#[test]
fn fifo_evicts_the_oldest_key_even_when_it_was_just_read() {
    let memory = bounded(2, false);
    let tower = tower_of(std::slice::from_ref(&memory));
    tower.set("a", 1).unwrap();
    tower.set("b", 2).unwrap();
    assert_eq!(tower.get::<i32>("a"), Some(1));
    tower.set("c", 3).unwrap();

    assert_eq!(tower.get::<i32>("a"), None);
    assert_eq!(tower.get::<i32>("b"), Some(2));
    assert_eq!(tower.get::<i32>("c"), Some(3));
    assert_eq!(memory.keys(), ["b", "c"]);
    assert_eq!(memory.stats().evictions, 1);
}

/// The seed: maxsize 2; set a, set b, get a, set c. LRU evicts the least recently used key.
#[test]
fn lru_evicts_the_least_recently_used_key() {
    let memory = bounded(2, true);
    let tower = tower_of(std::slice::from_ref(&memory));
    tower.set("a", 1).unwrap();
    tower.set("b", 2).unwrap();
    assert_eq!(tower.get::<i32>("a"), Some(1));
    tower.set("c", 3).unwrap();

    assert_eq!(memory.keys(), ["a", "c"]);
    assert_eq!(tower.get::<i32>("b"), None);
    assert_eq!(tower.get::<i32>("a"), Some(1));
    assert_eq!(tower.get::<i32>("c"), Some(3));
    assert_eq!(memory.stats().evictions, 1);
}

#[test]
fn lru_mget_counts_as_a_use() {
    let memory = bounded(2, true);
    let tower = tower_of(std::slice::from_ref(&memory));
    tower.set("a", 1).unwrap();
    tower.set("b", 2).unwrap();
    tower.mget::<i32, _>(&["a"]);
    tower.set("c", 3).unwrap();
    assert_eq!(memory.keys(), ["a", "c"]);
}

/// docs/architecture.md §4: at maxsize, the seed's overwrite of a present key evicted another key.
#[test]
fn overwriting_a_present_key_at_maxsize_never_evicts() {
    for lru in [false, true] {
        let memory = bounded(2, lru);
        let tower = tower_of(std::slice::from_ref(&memory));
        tower.set("a", 1).unwrap();
        tower.set("b", 2).unwrap();
        for round in 0..5 {
            tower.set("a", 10 + round).unwrap();
            tower.set("b", 20 + round).unwrap();
            tower.mset([("a", 30 + round), ("b", 40 + round)]).unwrap();
        }
        assert_eq!(tower.get::<i32>("a"), Some(34), "lru {lru}");
        assert_eq!(tower.get::<i32>("b"), Some(44), "lru {lru}");
        assert_eq!(memory.len(), 2, "lru {lru}");
        assert_eq!(memory.stats().evictions, 0, "lru {lru}");
    }
}

#[test]
fn overwriting_at_maxsize_one_keeps_the_key() {
    let memory = bounded(1, false);
    memory.set("a", &entry(1, None)).unwrap();
    memory.set("a", &entry(2, None)).unwrap();
    assert_eq!(peek::<i32>(&memory, "a"), Some(2));
    assert_eq!(memory.stats().evictions, 0);
}

#[test]
fn fifo_overwrite_keeps_the_insertion_position() {
    let memory = bounded(2, false);
    memory.set("a", &entry(1, None)).unwrap();
    memory.set("b", &entry(2, None)).unwrap();
    memory.set("a", &entry(3, None)).unwrap(); // still the oldest
    assert_eq!(memory.keys(), ["a", "b"]);
    memory.set("c", &entry(4, None)).unwrap();
    assert_eq!(memory.keys(), ["b", "c"]);
    assert_eq!(peek::<i32>(&memory, "a"), None);
}

#[test]
fn lru_set_counts_as_a_use() {
    let memory = bounded(2, true);
    memory.set("a", &entry(1, None)).unwrap();
    memory.set("b", &entry(2, None)).unwrap();
    memory.set("a", &entry(3, None)).unwrap(); // now the most recently used
    assert_eq!(memory.keys(), ["b", "a"]);
    memory.set("c", &entry(4, None)).unwrap();
    assert_eq!(memory.keys(), ["a", "c"]);
    assert_eq!(peek::<i32>(&memory, "a"), Some(3));
}

#[test]
fn exists_does_not_change_lru_order() {
    let memory = bounded(2, true);
    memory.set("a", &entry(1, None)).unwrap();
    memory.set("b", &entry(2, None)).unwrap();
    assert!(memory.exists("a").unwrap());
    assert_eq!(memory.keys(), ["a", "b"]);
    memory.set("c", &entry(3, None)).unwrap();
    assert_eq!(memory.keys(), ["b", "c"], "exists must not make a the most recently used");
}

#[test]
fn fifo_get_does_not_change_order() {
    let memory = bounded(3, false);
    for key in ["a", "b", "c"] {
        memory.set(key, &entry(0, None)).unwrap();
    }
    memory.get("a").unwrap();
    memory.mget(&["b", "a"]).unwrap();
    assert_eq!(memory.keys(), ["a", "b", "c"]);
}

#[test]
fn delete_frees_a_place() {
    let memory = bounded(2, false);
    memory.set("a", &entry(1, None)).unwrap();
    memory.set("b", &entry(2, None)).unwrap();
    memory.delete("a").unwrap();
    memory.set("c", &entry(3, None)).unwrap();
    assert_eq!(memory.keys(), ["b", "c"]);
    assert_eq!(memory.stats().evictions, 0);
}

#[test]
fn a_bounded_adapter_never_holds_more_than_maxsize() {
    for maxsize in [1, 2, 3, 10, 100, 1000] {
        for lru in [false, true] {
            let memory = bounded(maxsize, lru);
            for i in 0..maxsize * 3 {
                memory.set(&format!("k{i}"), &entry(i, None)).unwrap();
            }
            assert!(memory.len() <= maxsize, "maxsize {maxsize}, lru {lru}: {}", memory.len());
            assert_eq!(memory.stats().evictions as usize, maxsize * 3 - memory.len());
        }
    }
}

#[test]
fn maxsize_zero_is_unbounded() {
    let memory = MemoryAdapter::new();
    for i in 0..5000 {
        memory.set(&format!("k{i}"), &entry(i, None)).unwrap();
    }
    assert_eq!(memory.len(), 5000);
    assert_eq!(memory.stats().evictions, 0);
    assert_eq!(peek::<i32>(&memory, "k0"), Some(0));
}

// ===== TTL =====

#[test]
fn entries_live_until_their_ttl_and_are_absent_from_then_on_for_every_operation() {
    for lru in [false, true] {
        let clock = ManualClock::new();
        let memory = MemoryAdapter::builder().ttl(secs(10)).lru(lru).clock(&clock).build();
        memory.set("k", &entry(1, None)).unwrap();
        memory.set("other", &entry(2, None)).unwrap();

        clock.advance(secs(9));
        assert_eq!(peek::<i32>(&memory, "k"), Some(1), "lru {lru}: get at ttl - 1s");
        assert!(memory.mget(&["k"]).unwrap()[0].is_some(), "lru {lru}: mget at ttl - 1s");
        assert!(memory.exists("k").unwrap(), "lru {lru}: exists at ttl - 1s");
        assert_eq!(memory.len(), 2, "lru {lru}: len at ttl - 1s");
        assert_eq!(memory.get("k").unwrap().unwrap().ttl(), Some(secs(1)), "lru {lru}: time left");

        clock.advance(secs(1));
        assert!(!memory.exists("k").unwrap(), "lru {lru}: exists at ttl");
        assert!(memory.mget(&["k", "other"]).unwrap().iter().all(Option::is_none), "lru {lru}: mget at ttl");
        assert_eq!(peek::<i32>(&memory, "k"), None, "lru {lru}: get at ttl");
        assert_eq!(memory.len(), 0, "lru {lru}: len at ttl");
        assert!(memory.is_empty());
        assert!(memory.keys().is_empty(), "lru {lru}: keys at ttl");
    }
}

#[test]
fn exists_and_len_see_expiry_without_any_read() {
    let clock = ManualClock::new();
    let memory = MemoryAdapter::builder().ttl(secs(3)).clock(&clock).build();
    memory.set("k", &entry(1, None)).unwrap();
    clock.advance(secs(3));
    // No get or mget: exists and len alone must see the entry as gone.
    assert!(!memory.exists("k").unwrap());
    assert_eq!(memory.len(), 0);
}

#[test]
fn expiry_through_the_tower() {
    let clock = ManualClock::new();
    let memory = MemoryAdapter::builder().ttl(secs(60)).clock(&clock).build();
    let tower = tower_of(std::slice::from_ref(&memory));
    tower.set("k", "v".to_string()).unwrap();
    tower.mset([("m", 1)]).unwrap();
    clock.advance(secs(59));
    assert_eq!(tower.get::<String>("k").as_deref(), Some("v"));
    assert_eq!(tower.mget::<i32, _>(&["m"])["m"], Some(1));
    assert!(tower.exists("k"));
    clock.advance(secs(1));
    assert_eq!(tower.get::<String>("k"), None);
    assert_eq!(tower.mget::<i32, _>(&["m"])["m"], None);
    assert!(!tower.exists("k"));
}

#[test]
fn an_entry_ttl_shorter_than_the_layers_wins_and_a_longer_one_does_not() {
    let clock = ManualClock::new();
    let memory = MemoryAdapter::builder().ttl(secs(10)).clock(&clock).build();
    memory.set("short", &entry(1, Some(secs(3)))).unwrap();
    memory.set("long", &entry(2, Some(secs(100)))).unwrap();
    assert_eq!(memory.get("short").unwrap().unwrap().ttl(), Some(secs(3)));
    assert_eq!(memory.get("long").unwrap().unwrap().ttl(), Some(secs(10)));
    clock.advance(secs(3));
    assert_eq!(memory.keys(), ["long"]);
    clock.advance(secs(7));
    assert!(memory.keys().is_empty());
}

#[test]
fn an_entry_with_zero_ttl_is_not_stored_and_removes_the_old_value() {
    let memory = MemoryAdapter::new();
    memory.set("k", &entry(1, None)).unwrap();
    memory.set("k", &entry(2, Some(Duration::ZERO))).unwrap();
    assert_eq!(peek::<i32>(&memory, "k"), None);
    memory.mset(&[("m", entry(3, Some(Duration::ZERO)))]).unwrap();
    assert!(!memory.exists("m").unwrap());
}

#[test]
fn overwriting_restarts_the_ttl() {
    let clock = ManualClock::new();
    let memory = MemoryAdapter::builder().ttl(secs(10)).clock(&clock).build();
    memory.set("k", &entry(1, None)).unwrap();
    clock.advance(secs(8));
    memory.set("k", &entry(2, None)).unwrap();
    clock.advance(secs(8));
    assert_eq!(peek::<i32>(&memory, "k"), Some(2));
    clock.advance(secs(2));
    assert_eq!(peek::<i32>(&memory, "k"), None);
}

#[test]
fn ttl_zero_means_never_expires() {
    let clock = ManualClock::new();
    let memory = MemoryAdapter::builder().ttl(Duration::ZERO).clock(&clock).build();
    assert_eq!(memory.ttl(), None);
    memory.set("k", &entry(1, None)).unwrap();
    clock.advance(secs(100 * 365 * 24 * 3600));
    assert_eq!(peek::<i32>(&memory, "k"), Some(1));
    assert!(memory.exists("k").unwrap());
    assert_eq!(memory.get("k").unwrap().unwrap().ttl(), None);
    assert_eq!(memory.purge_expired(), 0);
    assert_eq!(memory.len(), 1);

    let from_json = CacheTower::from_json(r#"[{"adapter": "memory", "ttl": 0}]"#).unwrap();
    assert_eq!(from_json.get_layers()[0].ttl(), None);
}

/// docs/architecture.md §4: the seed's expired keys lingered until read.
#[test]
fn expired_entries_are_reclaimed_by_unrelated_writes_without_being_read() {
    for lru in [false, true] {
        let clock = ManualClock::new();
        let memory = MemoryAdapter::builder().ttl(secs(5)).lru(lru).clock(&clock).build();
        for i in 0..200 {
            memory.set(&format!("old{i}"), &entry(i, None)).unwrap();
        }
        clock.advance(secs(5));
        assert_eq!(memory.stats().expirations, 0, "nothing reclaimed before any operation");

        // Writes of other keys only: none of the expired keys is read.
        for i in 0..1000 {
            memory.set(&format!("new{i}"), &entry(i, Some(secs(60)))).unwrap();
        }

        assert_eq!(memory.stats().expirations, 200, "lru {lru}: every expired entry was reclaimed by the writes");
        assert_eq!(memory.len(), 1000);
    }
}

/// Even when every write goes to one key (so one shard), expired entries everywhere are reclaimed
/// in bounded steps: an idle part of the cache does not keep its expired entries forever.
#[test]
fn writes_to_one_hot_key_reclaim_expired_entries_everywhere() {
    let clock = ManualClock::new();
    let memory = MemoryAdapter::builder().ttl(secs(5)).clock(&clock).build();
    for i in 0..200 {
        memory.set(&format!("old{i}"), &entry(i, None)).unwrap();
    }
    clock.advance(secs(5));
    for i in 0..1000 {
        memory.set("hot", &entry(i, None)).unwrap();
        memory.delete("absent").unwrap();
    }
    assert_eq!(memory.stats().expirations, 200);
}

/// The same with a small bounded adapter (a single shard) that never fills up: room is not what
/// triggers the reclaim.
#[test]
fn expired_entries_of_a_small_bounded_adapter_are_reclaimed_by_unrelated_writes() {
    for lru in [false, true] {
        let clock = ManualClock::new();
        let memory = MemoryAdapter::builder().maxsize(100).ttl(secs(5)).lru(lru).clock(&clock).build();
        for i in 0..50 {
            memory.set(&format!("old{i}"), &entry(i, None)).unwrap();
        }
        clock.advance(secs(5));
        for i in 0..50 {
            memory.set(&format!("new{i}"), &entry(i, None)).unwrap();
        }
        let stats = memory.stats();
        assert_eq!((stats.expirations, stats.evictions), (50, 0), "lru {lru}");
    }
}

#[test]
fn a_full_bounded_adapter_replaces_an_expired_entry_before_evicting_a_live_one() {
    let clock = ManualClock::new();
    let memory = MemoryAdapter::builder().maxsize(3).clock(&clock).build();
    memory.set("live1", &entry(1, None)).unwrap();
    memory.set("short", &entry(2, Some(secs(1)))).unwrap();
    memory.set("live2", &entry(3, None)).unwrap();
    clock.advance(secs(1));
    memory.set("new", &entry(4, None)).unwrap();
    assert_eq!(memory.keys(), ["live1", "live2", "new"]);
    let stats = memory.stats();
    assert_eq!((stats.evictions, stats.expirations), (0, 1));
}

/// Sharded (maxsize 1000): a cache full of expired entries is not full. Writing new keys reclaims
/// the expired entries; no live entry is evicted for room that expired entries were holding.
#[test]
fn expired_entries_never_cost_a_live_entry_its_place() {
    for lru in [false, true] {
        let clock = ManualClock::new();
        let memory = MemoryAdapter::builder().maxsize(1000).lru(lru).clock(&clock).build();
        for i in 0..3000 {
            memory.set(&format!("old{i}"), &entry(i, Some(secs(1)))).unwrap();
        }
        clock.advance(secs(1));
        let evictions_before = memory.stats().evictions;

        for i in 0..500 {
            memory.set(&format!("new{i}"), &entry(i, None)).unwrap();
        }

        assert_eq!(memory.stats().evictions, evictions_before, "lru {lru}: live entries were evicted");
        let missing: Vec<usize> = (0..500).filter(|i| !memory.exists(&format!("new{i}")).unwrap()).collect();
        assert!(missing.is_empty(), "lru {lru}: new keys missing: {missing:?}");
        assert_eq!(memory.len(), 500, "lru {lru}");
    }
}

#[test]
fn purge_expired_removes_every_expired_entry_and_counts_them() {
    let clock = ManualClock::new();
    let memory = MemoryAdapter::builder().clock(&clock).build();
    for i in 0..300u64 {
        memory.set(&format!("k{i}"), &entry(i, Some(secs(1 + i % 3)))).unwrap();
    }
    memory.set("forever", &entry(0u64, None)).unwrap();
    clock.advance(secs(1));
    assert_eq!(memory.purge_expired(), 100);
    assert_eq!(memory.purge_expired(), 0);
    clock.advance(secs(2));
    assert_eq!(memory.purge_expired(), 200);
    assert_eq!(memory.stats().expirations, 300);
    assert_eq!(memory.keys(), ["forever"]);
    assert_eq!(memory.len(), 1);
}

// ===== namespace, clones, flush =====

#[test]
fn namespace_is_reported() {
    let memory = MemoryAdapter::builder().namespace("session:").build();
    assert_eq!(memory.namespace(), "session:");
    assert_eq!(memory.kind(), "memory");
    assert_eq!(MemoryAdapter::new().namespace(), "");
    let tower = tower_of(&[memory]);
    assert_eq!(tower.get_layers()[0].namespace(), "session:");
}

#[test]
fn builder_settings_are_reported() {
    let memory = MemoryAdapter::builder().maxsize(7).lru(true).ttl(secs(9)).build();
    assert_eq!((memory.maxsize(), memory.is_lru(), memory.ttl()), (7, true, Some(secs(9))));
    let default = MemoryAdapter::new();
    assert_eq!((default.maxsize(), default.is_lru(), default.ttl()), (0, false, None));
}

#[test]
fn clones_share_storage() {
    let memory = bounded(2, false);
    let clone = memory.clone();
    put(&memory, "a", 1);
    assert_eq!(peek::<i32>(&clone, "a"), Some(1));
    clone.delete("a").unwrap();
    assert_eq!(peek::<i32>(&memory, "a"), None);
    put(&clone, "b", 2);
    put(&clone, "c", 3);
    put(&memory, "d", 4);
    assert_eq!(clone.keys(), ["c", "d"], "one maxsize for both handles");
    clone.flush().unwrap();
    assert!(memory.is_empty());
}

#[test]
fn the_same_adapter_in_two_towers_is_one_storage() {
    let shared = MemoryAdapter::new();
    let first = tower_of(std::slice::from_ref(&shared));
    let second = tower_of(&[MemoryAdapter::new(), shared.clone()]);
    first.set("k", 5).unwrap();
    assert_eq!(second.get::<i32>("k"), Some(5));
    assert_eq!(peek::<i32>(&*second.get_layers()[0], "k"), Some(5), "backfilled into second's layer 0");
}

#[test]
fn flush_empties_the_adapter_and_it_stays_usable() {
    let clock = ManualClock::new();
    let memory = MemoryAdapter::builder().maxsize(2).lru(true).clock(&clock).build();
    memory.set("a", &entry(1, Some(secs(5)))).unwrap();
    memory.set("b", &entry(2, None)).unwrap();
    memory.flush().unwrap();
    assert!(memory.is_empty());
    assert!(!memory.exists("a").unwrap());
    memory.set("c", &entry(3, None)).unwrap();
    memory.set("d", &entry(4, None)).unwrap();
    memory.set("e", &entry(5, None)).unwrap();
    assert_eq!(memory.keys(), ["d", "e"]);
    clock.advance(secs(10));
    assert_eq!(memory.purge_expired(), 0, "the flushed entry with TTL is not in the expiry heap");
}

/// Keys of every length (short ones are stored inline, long ones on the heap) and content are
/// kept apart, read back and listed exactly.
#[test]
fn keys_of_any_length_and_content_are_kept_apart() {
    let mut keys: Vec<String> = ["", "a", "a\0", "\0", "é", "日本語のキー", "a b", "A"].map(str::to_owned).into();
    for len in [29, 30, 31, 32, 255, 256, 1000] {
        keys.push("k".repeat(len));
        keys.push(format!("{}x", "k".repeat(len - 1)));
        keys.push("é".repeat(len / 2 + 1));
    }
    keys.sort();
    keys.dedup();
    for lru in [false, true] {
        let memory = MemoryAdapter::builder().lru(lru).build();
        for (i, key) in keys.iter().enumerate() {
            memory.set(key, &entry(i, None)).unwrap();
        }
        assert_eq!(memory.len(), keys.len(), "lru {lru}: distinct keys collided");
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(peek::<usize>(&memory, key), Some(i), "lru {lru}: key {key:?}");
            assert!(memory.exists(key).unwrap());
        }
        let mut listed = memory.keys();
        listed.sort();
        assert_eq!(listed, keys, "lru {lru}");
        for key in &keys {
            memory.delete(key).unwrap();
        }
        assert!(memory.is_empty(), "lru {lru}");
    }
}

#[test]
fn values_are_returned_as_stored() {
    let memory = MemoryAdapter::new();
    let user = cache_tower_tests::User::sample(11);
    put(&memory, "u", user.clone());
    assert_eq!(peek::<cache_tower_tests::User>(&memory, "u"), Some(user));
    let got = memory.get("u").unwrap().unwrap();
    assert!(got.value().is::<cache_tower_tests::User>(), "the memory layer keeps the typed value");
}

// ===== concurrency =====

/// A small deterministic pseudo-random generator (xorshift64*), so no dependency is needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 8 threads, each owning a disjoint range of keys (together more keys than maxsize), do random
/// set/get/delete/mget/exists. Each thread knows the last value it wrote to each of its keys, so
/// every read it makes must be either a miss (evicted) or that value.
#[test]
fn concurrent_random_operations_keep_bounds_and_never_return_stale_values() {
    const THREADS: u64 = 8;
    const KEYS_PER_THREAD: u64 = 400;
    const MAXSIZE: usize = 1000;
    for lru in [false, true] {
        let memory = bounded(MAXSIZE, lru);
        let finals: Vec<HashMap<String, Option<u64>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let memory = &memory;
                    scope.spawn(move || {
                        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t + 1) * 0x1234_5678_9abc_def1));
                        let mut last: HashMap<String, Option<u64>> = HashMap::new();
                        let check = |key: &str, got: Option<u64>, last: &HashMap<String, Option<u64>>| {
                            let expected = last.get(key).copied().flatten();
                            assert!(
                                got.is_none() || got == expected,
                                "lru {lru}, thread {t}, {key}: read {got:?}, last written {expected:?}"
                            );
                        };
                        for step in 0..20_000u64 {
                            let key = format!("t{t}:k{}", rng.below(KEYS_PER_THREAD));
                            match rng.below(10) {
                                0..=3 => {
                                    let value = (t << 32) | step;
                                    memory.set(&key, &entry(value, None)).unwrap();
                                    last.insert(key, Some(value));
                                }
                                4..=6 => {
                                    let got = peek::<u64>(memory, &key);
                                    check(&key, got, &last);
                                }
                                7 => {
                                    memory.delete(&key).unwrap();
                                    last.insert(key, None);
                                }
                                8 => {
                                    let other = format!("t{t}:k{}", rng.below(KEYS_PER_THREAD));
                                    let got = memory.mget(&[&key, &other]).unwrap();
                                    for (k, e) in [&key, &other].into_iter().zip(got) {
                                        check(k, e.map(|e| e.value().decode().unwrap()), &last);
                                    }
                                }
                                _ => {
                                    let present = memory.exists(&key).unwrap();
                                    if last.get(&key).copied().flatten().is_none() {
                                        assert!(!present, "lru {lru}, thread {t}, {key}: deleted yet exists");
                                    }
                                }
                            }
                        }
                        last
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });

        assert!(memory.len() <= MAXSIZE, "lru {lru}: {} entries", memory.len());
        assert!(memory.keys().len() <= MAXSIZE);
        let mut present = 0;
        for last in &finals {
            for (key, expected) in last {
                let got = peek::<u64>(&memory, key);
                assert!(got.is_none() || got == *expected, "lru {lru}, {key}: read {got:?}, last written {expected:?}");
                present += usize::from(got.is_some());
            }
        }
        assert_eq!(present, memory.len(), "lru {lru}: every stored key belongs to some thread");
        assert!(present > 0);
    }
}
