//! CacheTower over memory layers: the read path (top down, backfilling only the layers above the
//! one that answered), the write path (every layer), `exists`, `flush`, layer management, stats,
//! and the regressions of docs/architecture.md §4 that concern the tower and the memory layer.

use indexmap::IndexMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cache_tower::{
    CacheTower, MemoryAdapter,
    adapter::{CacheAdapter, Entry, StoredValue},
    clock::ManualClock,
    error::ErrorKind,
};
use cache_tower_tests::{User, memory_layers, peek, put, put_json, tower_of};
use serde::{Deserialize, Serialize};

/// The value each layer holds for `key`, top first.
fn column<T: cache_tower::Cacheable>(layers: &[MemoryAdapter], key: &str) -> Vec<Option<T>> {
    layers.iter().map(|layer| peek::<T>(layer, key)).collect()
}

// ===== get: backfill =====

#[test]
fn get_hit_in_layer_i_backfills_every_layer_above_and_none_below() {
    for depth in 1..=3 {
        for found_at in 0..depth {
            let layers = memory_layers(depth);
            let tower = tower_of(&layers);
            put(&layers[found_at], "k", format!("v{found_at}"));

            let got = tower.get::<String>("k");

            assert_eq!(got, Some(format!("v{found_at}")), "depth {depth}, found at {found_at}");
            for (index, value) in column::<String>(&layers, "k").into_iter().enumerate() {
                let expected = (index <= found_at).then(|| format!("v{found_at}"));
                assert_eq!(value, expected, "depth {depth}, found at {found_at}, layer {index}");
            }
        }
    }
}

#[test]
fn get_answers_from_the_first_layer_that_has_the_key_and_leaves_lower_copies_alone() {
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    put(&layers[1], "k", "middle".to_string());
    put(&layers[2], "k", "bottom".to_string());

    assert_eq!(tower.get::<String>("k").as_deref(), Some("middle"));
    assert_eq!(column::<String>(&layers, "k"), [Some("middle".into()), Some("middle".into()), Some("bottom".into())]);
}

#[test]
fn get_miss_in_every_layer_is_none_and_writes_nothing() {
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    assert_eq!(tower.get::<String>("absent"), None);
    assert!(layers.iter().all(MemoryAdapter::is_empty));
}

#[test]
fn tower_without_layers_misses_reads_and_accepts_writes() {
    let tower = CacheTower::new();
    tower.set("k", 1).unwrap();
    tower.mset([("a", 1)]).unwrap();
    assert_eq!(tower.get::<i32>("k"), None);
    assert_eq!(tower.mget::<i32, _>(&["k"]), IndexMap::from([("k".to_string(), None)]));
    assert!(!tower.exists("k"));
    tower.delete("k").unwrap();
    tower.flush().unwrap();
}

// ===== mget =====

#[test]
fn mget_backfills_each_key_only_above_where_it_was_found() {
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    put(&layers[0], "a", 0u32);
    put(&layers[1], "b", 1u32);
    put(&layers[2], "c", 2u32);

    let values = tower.mget::<u32, _>(&["a", "b", "c", "missing"]);

    let expected: IndexMap<String, Option<u32>> =
        [("a", Some(0)), ("b", Some(1)), ("c", Some(2)), ("missing", None)].map(|(k, v)| (k.to_string(), v)).into();
    assert_eq!(values, expected);
    assert_eq!(column::<u32>(&layers, "a"), [Some(0), None, None], "a was found in layer 0: nothing to backfill");
    assert_eq!(column::<u32>(&layers, "b"), [Some(1), Some(1), None], "b was found in layer 1");
    assert_eq!(column::<u32>(&layers, "c"), [Some(2), Some(2), Some(2)], "c was found in layer 2");
    assert_eq!(column::<u32>(&layers, "missing"), [None, None, None]);
}

/// docs/architecture.md §4: the seed's `mget` with a missing key wrote hits into every layer, slower ones too.
#[test]
fn mget_never_writes_a_hit_into_slower_layers() {
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    put(&layers[0], "top", "t".to_string());
    put(&layers[1], "mid", "m".to_string());

    let values = tower.mget::<String, _>(&["top", "mid", "nowhere"]);

    assert_eq!(values["top"].as_deref(), Some("t"));
    assert_eq!(values["mid"].as_deref(), Some("m"));
    assert_eq!(values["nowhere"], None);
    assert_eq!(column::<String>(&layers, "top"), [Some("t".into()), None, None]);
    assert_eq!(column::<String>(&layers, "mid"), [Some("m".into()), Some("m".into()), None]);
    assert_eq!(layers[2].len(), 0, "the slowest layer answered nothing and must receive nothing");
}

#[test]
fn mget_result_has_every_requested_key_and_duplicates_once() {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    put(&layers[1], "a", 10i64);

    let values = tower.mget::<i64, _>(&["a", "x", "a", "x", "a"]);

    assert_eq!(values.len(), 2);
    assert_eq!(values["a"], Some(10));
    assert_eq!(values["x"], None);
    assert_eq!(column::<i64>(&layers, "a"), [Some(10), Some(10)]);
    let stats = tower.stats();
    assert_eq!(stats[0].backfills, 1, "a duplicated key is backfilled once");
    assert_eq!(stats[1].hits, 1, "a duplicated key is read once");
}

#[test]
fn mget_of_no_keys_is_empty() {
    let tower = tower_of(&memory_layers(2));
    let keys: [&str; 0] = [];
    assert!(tower.mget::<i32, _>(&keys).is_empty());
}

#[test]
fn mget_accepts_owned_keys() {
    let layers = memory_layers(1);
    let tower = tower_of(&layers);
    tower.set("k1", 1).unwrap();
    let keys = vec!["k1".to_string(), "k2".to_string()];
    let values = tower.mget::<i32, _>(&keys);
    assert_eq!(values, IndexMap::from([("k1".to_string(), Some(1)), ("k2".to_string(), None)]));
}

#[test]
fn mget_returns_keys_in_request_order_each_once() {
    // Found in different layers, missing, and asked twice: the result keeps the order of the
    // request (where each key was first asked), like the original library's dict, run after run.
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    put(&layers[1], "z", 26u32);
    put(&layers[0], "m", 13u32);
    put(&layers[1], "a", 1u32);
    let keys = ["z", "missing", "m", "a", "z", "b"];
    let values = tower.mget::<u32, _>(&keys);
    let pairs: Vec<(&str, Option<u32>)> = values.iter().map(|(key, value)| (key.as_str(), *value)).collect();
    assert_eq!(pairs, [("z", Some(26)), ("missing", None), ("m", Some(13)), ("a", Some(1)), ("b", None)]);
}

// ===== writes =====

#[test]
fn set_overwrites_in_every_layer() {
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    for (index, layer) in layers.iter().enumerate() {
        put(layer, "k", format!("old{index}"));
    }
    tower.set("k", "new".to_string()).unwrap();
    assert_eq!(column::<String>(&layers, "k"), vec![Some("new".to_string()); 3]);
    assert_eq!(tower.get::<String>("k").as_deref(), Some("new"));
}

#[test]
fn set_writes_every_layer_even_when_empty() {
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    tower.set("u", User::sample(7)).unwrap();
    assert_eq!(column::<User>(&layers, "u"), vec![Some(User::sample(7)); 3]);
}

#[test]
fn mset_overwrites_in_every_layer() {
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    put(&layers[0], "k1", 100);
    put(&layers[2], "k2", 200);
    tower.mset([("k1", 1), ("k2", 2), ("k3", 3)]).unwrap();
    for (key, value) in [("k1", 1), ("k2", 2), ("k3", 3)] {
        assert_eq!(column::<i32>(&layers, key), vec![Some(value); 3], "{key}");
    }
}

#[test]
fn mset_of_nothing_changes_nothing() {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    tower.set("k", 1).unwrap();
    tower.mset(Vec::<(&str, i32)>::new()).unwrap();
    assert_eq!(column::<i32>(&layers, "k"), [Some(1), Some(1)]);
}

#[test]
fn delete_removes_from_every_layer() {
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    for layer in &layers {
        put(layer, "k", 1u8);
        put(layer, "other", 2u8);
    }
    tower.delete("k").unwrap();
    assert_eq!(column::<u8>(&layers, "k"), [None, None, None]);
    assert_eq!(column::<u8>(&layers, "other"), [Some(2), Some(2), Some(2)], "other keys stay");
    assert_eq!(tower.get::<u8>("k"), None);
    tower.delete("never-there").unwrap();
}

#[test]
fn flush_empties_every_layer() {
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    tower.mset((0..20).map(|i| (format!("k{i}"), i))).unwrap();
    put(&layers[2], "only-bottom", 1);
    assert!(layers.iter().all(|layer| layer.len() >= 20));

    tower.flush().unwrap();

    for (index, layer) in layers.iter().enumerate() {
        assert_eq!(layer.len(), 0, "layer {index}");
        assert!(layer.keys().is_empty(), "layer {index}");
    }
    assert_eq!(tower.get::<i32>("only-bottom"), None);
    tower.set("after", 1).unwrap();
    assert_eq!(tower.get::<i32>("after"), Some(1), "a flushed tower is usable");
}

// ===== exists =====

#[test]
fn exists_is_true_for_every_non_empty_subset_of_layers_and_never_backfills() {
    for subset in 1u8..8 {
        let layers = memory_layers(3);
        let tower = tower_of(&layers);
        let holds = |index: usize| subset & (1 << index) != 0;
        for (index, layer) in layers.iter().enumerate() {
            if holds(index) {
                put(layer, "k", index);
            }
        }

        assert!(tower.exists("k"), "subset {subset:03b}");

        for (index, layer) in layers.iter().enumerate() {
            let expected = holds(index).then_some(index);
            assert_eq!(peek::<usize>(layer, "k"), expected, "subset {subset:03b}, layer {index}: exists changed it");
        }
        assert!(tower.stats().iter().all(|s| s.backfills == 0), "subset {subset:03b}");
    }
}

#[test]
fn exists_is_false_when_no_layer_has_the_key() {
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    put(&layers[1], "other", 1);
    assert!(!tower.exists("k"));
}

#[test]
fn exists_ignores_expired_entries() {
    let clock = ManualClock::new();
    let top = MemoryAdapter::builder().ttl(Duration::from_secs(5)).clock(&clock).build();
    let bottom = MemoryAdapter::builder().ttl(Duration::from_secs(10)).clock(&clock).build();
    let tower = tower_of(&[top, bottom]);
    tower.set("k", 1).unwrap();
    clock.advance(Duration::from_secs(5));
    assert!(tower.exists("k"), "still in the bottom layer");
    clock.advance(Duration::from_secs(5));
    assert!(!tower.exists("k"), "expired everywhere");
}

// ===== layer management =====

fn named(namespace: &str) -> MemoryAdapter {
    MemoryAdapter::builder().namespace(namespace).build()
}

fn namespaces(tower: &CacheTower) -> Vec<String> {
    tower.get_layers().iter().map(|layer| layer.namespace().to_owned()).collect()
}

#[test]
fn add_layer_appends_at_the_bottom_and_get_layers_lists_top_first() {
    let tower = CacheTower::new();
    assert!(tower.get_layers().is_empty());
    tower.add_layer(named("l0"));
    tower.add_layer(named("l1"));
    tower.add_layer(named("l2"));
    assert_eq!(namespaces(&tower), ["l0", "l1", "l2"]);
    assert!(tower.get_layers().iter().all(|layer| layer.kind() == "memory"));
}

#[test]
fn get_layers_hands_out_the_layers_themselves() {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::new());
    tower.add_layer(MemoryAdapter::new());
    tower.set("k", 5).unwrap();
    let layers = tower.get_layers();
    assert_eq!(peek::<i32>(&*layers[1], "k"), Some(5));
    layers[1].delete("k").unwrap();
    layers[0].delete("k").unwrap();
    assert_eq!(tower.get::<i32>("k"), None);
}

#[test]
fn set_layers_replaces_the_whole_stack() {
    let tower = CacheTower::new();
    tower.add_layer(named("old0"));
    tower.add_layer(named("old1"));
    tower.add_layer(named("old2"));
    tower.set("k", 1).unwrap();

    let fresh: Vec<Arc<dyn CacheAdapter>> = vec![Arc::new(named("new0"))];
    tower.set_layers(fresh);

    assert_eq!(namespaces(&tower), ["new0"]);
    assert_eq!(tower.get::<i32>("k"), None, "the old layers are gone");
    tower.set_layers(Vec::<MemoryAdapter>::new());
    assert!(tower.get_layers().is_empty());
}

#[test]
fn set_layers_accepts_the_layers_of_another_tower() {
    let first = tower_of(&memory_layers(2));
    first.set("k", 3).unwrap();
    let second = CacheTower::new();
    second.set_layers(first.get_layers());
    assert_eq!(second.get::<i32>("k"), Some(3), "adapters are shared handles");
}

#[test]
fn set_layer_replaces_at_a_position_and_appends_at_the_end() {
    let tower = CacheTower::new();
    tower.add_layer(named("a"));
    tower.add_layer(named("b"));

    tower.set_layer(named("B"), 1).unwrap();
    assert_eq!(namespaces(&tower), ["a", "B"]);
    tower.set_layer(named("A"), 0).unwrap();
    assert_eq!(namespaces(&tower), ["A", "B"]);
    tower.set_layer(named("C"), 2).unwrap();
    assert_eq!(namespaces(&tower), ["A", "B", "C"]);
}

#[test]
fn set_layer_past_the_end_is_a_position_error_and_changes_nothing() {
    let tower = CacheTower::new();
    let err = tower.set_layer(named("x"), 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Position);
    assert!(tower.get_layers().is_empty());

    tower.add_layer(named("a"));
    for position in [2, 3, usize::MAX] {
        let err = tower.set_layer(named("x"), position).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Position, "position {position}");
    }
    assert_eq!(namespaces(&tower), ["a"]);
}

#[test]
fn set_layer_on_an_empty_tower_at_zero_appends() {
    let tower = CacheTower::new();
    tower.set_layer(named("first"), 0).unwrap();
    assert_eq!(namespaces(&tower), ["first"]);
}

// ===== stats =====

#[test]
fn stats_count_hits_misses_and_backfills_per_layer() {
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    put(&layers[2], "deep", 1);

    assert_eq!(tower.get::<i32>("deep"), Some(1)); // L0 miss, L1 miss, L2 hit; L0 and L1 backfilled
    assert_eq!(tower.get::<i32>("deep"), Some(1)); // L0 hit
    assert_eq!(tower.get::<i32>("absent"), None); // a miss everywhere

    let stats = tower.stats();
    assert_eq!(stats.len(), 3);
    let table: Vec<(usize, u64, u64, u64)> = stats.iter().map(|s| (s.layer, s.hits, s.misses, s.backfills)).collect();
    assert_eq!(table, [(0, 1, 2, 1), (1, 0, 2, 1), (2, 1, 1, 0)]);
    assert!(stats.iter().all(|s| s.kind == "memory" && s.errors == 0 && s.decode_failures == 0));
}

#[test]
fn stats_count_mget_per_key() {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    put(&layers[0], "a", 1);
    put(&layers[1], "b", 2);
    put(&layers[1], "c", 3);

    tower.mget::<i32, _>(&["a", "b", "c", "d"]);

    let stats = tower.stats();
    assert_eq!((stats[0].hits, stats[0].misses, stats[0].backfills), (1, 3, 2));
    assert_eq!((stats[1].hits, stats[1].misses, stats[1].backfills), (2, 1, 0));
}

#[test]
fn stats_report_the_adapters_evictions_and_expirations() {
    let clock = ManualClock::new();
    let memory = MemoryAdapter::builder().maxsize(1).ttl(Duration::from_secs(1)).clock(&clock).build();
    let tower = tower_of(&[memory]);
    tower.set("a", 1).unwrap();
    tower.set("b", 2).unwrap(); // evicts a
    clock.advance(Duration::from_secs(1));
    assert_eq!(tower.get::<i32>("b"), None); // b expired
    let stats = &tower.stats()[0];
    assert_eq!((stats.evictions, stats.expirations), (1, 1));
}

#[test]
fn set_layers_starts_the_counters_again() {
    let tower = tower_of(&memory_layers(1));
    tower.get::<i32>("absent");
    assert_eq!(tower.stats()[0].misses, 1);
    tower.set_layers(tower.get_layers());
    assert_eq!(tower.stats()[0].misses, 0);
}

// ===== docs/architecture.md §4: falsy values are hits =====

fn assert_falsy_is_a_hit<T>(value: T)
where
    T: cache_tower::Cacheable + PartialEq + std::fmt::Debug,
{
    let what = format!("{value:?}");
    // Stored typed in layer 0.
    let tower = tower_of(&memory_layers(1));
    tower.set("k", value.clone()).unwrap();
    assert_eq!(tower.get::<T>("k"), Some(value.clone()), "get {what}");
    let values = tower.mget::<T, _>(&["k", "absent"]);
    assert_eq!(values["k"], Some(value.clone()), "mget {what}");
    assert_eq!(values["absent"], None);

    // Found as JSON in a lower layer, as a shared layer would return it.
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    let json = serde_json::to_string(&value).unwrap();
    put_json(&layers[1], "g", &json);
    put_json(&layers[1], "m", &json);
    assert_eq!(tower.get::<T>("g"), Some(value.clone()), "get {what} from JSON");
    assert_eq!(tower.mget::<T, _>(&["m"])["m"], Some(value.clone()), "mget {what} from JSON");
    assert_eq!(peek::<T>(&layers[0], "g"), Some(value.clone()), "{what} backfilled by get");
    assert_eq!(peek::<T>(&layers[0], "m"), Some(value), "{what} backfilled by mget");
}

#[test]
fn falsy_values_are_hits_in_get_and_mget() {
    assert_falsy_is_a_hit(0i32);
    assert_falsy_is_a_hit(0.0f64);
    assert_falsy_is_a_hit(String::new());
    assert_falsy_is_a_hit(false);
    assert_falsy_is_a_hit(Vec::<u8>::new());
    assert_falsy_is_a_hit(HashMap::<String, i32>::new());
    assert_falsy_is_a_hit(None::<u32>);
    assert_falsy_is_a_hit(());
}

// ===== docs/architecture.md §4: a backfilled entry lives no longer than it had left =====

fn ttl_layers(clock: &ManualClock, ttls: &[u64]) -> Vec<MemoryAdapter> {
    ttls.iter().map(|&secs| MemoryAdapter::builder().ttl(Duration::from_secs(secs)).clock(clock).build()).collect()
}

#[test]
fn an_entrys_own_ttl_is_kept_in_every_layer_for_the_shorter_of_it_and_the_layers() {
    let clock = ManualClock::new();
    let layers = ttl_layers(&clock, &[60, 10]);
    let tower = tower_of(&layers);
    tower.set_with_ttl("short", 1u32, Duration::from_secs(5)).unwrap();
    tower.set_with_ttl("long", 2u32, Duration::from_secs(600)).unwrap();
    tower.set_with_ttl("layers'", 3u32, Duration::ZERO).unwrap(); // no TTL of its own
    tower.mset_with_ttl([("m1", 4u32), ("m2", 5u32)], Duration::from_secs(8)).unwrap();
    let left = |layer: usize, key: &str| layers[layer].get(key).unwrap().and_then(|entry| entry.ttl());
    assert_eq!((left(0, "short"), left(1, "short")), (Some(Duration::from_secs(5)), Some(Duration::from_secs(5))));
    assert_eq!((left(0, "long"), left(1, "long")), (Some(Duration::from_secs(60)), Some(Duration::from_secs(10))));
    assert_eq!(
        (left(0, "layers'"), left(1, "layers'")),
        (Some(Duration::from_secs(60)), Some(Duration::from_secs(10)))
    );
    assert_eq!((left(0, "m1"), left(1, "m2")), (Some(Duration::from_secs(8)), Some(Duration::from_secs(8))));

    clock.advance(Duration::from_secs(6));
    assert_eq!(tower.get::<u32>("short"), None, "gone from every layer after its 5 s");
    assert_eq!(tower.get::<u32>("m1"), Some(4));
    clock.advance(Duration::from_secs(3));
    assert_eq!(tower.mget::<u32, _>(&["m1", "m2"]).values().flatten().count(), 0, "the mset's 8 s");
    assert_eq!(tower.get::<u32>("long"), Some(2), "in layer 0 for its 60 s");
}

#[test]
fn get_backfill_lives_no_longer_than_the_source_entry() {
    let clock = ManualClock::new();
    let layers = ttl_layers(&clock, &[60, 10]);
    let tower = tower_of(&layers);
    put(&layers[1], "k", 1u32); // expires at t = 10s in layer 1

    clock.advance(Duration::from_secs(7));
    assert_eq!(tower.get::<u32>("k"), Some(1)); // backfills layer 0
    assert_eq!(peek::<u32>(&layers[0], "k"), Some(1));
    let left = layers[0].get("k").unwrap().unwrap().ttl();
    assert_eq!(left, Some(Duration::from_secs(3)), "layer 0 got the 3s layer 1 had left, not its own 60s");

    clock.advance(Duration::from_secs(4));
    assert_eq!(peek::<u32>(&layers[0], "k"), None, "the backfilled copy outlived its source");
    assert!(!layers[0].exists("k").unwrap());
    assert_eq!(tower.get::<u32>("k"), None);
}

#[test]
fn mget_backfill_lives_no_longer_than_the_source_entry() {
    let clock = ManualClock::new();
    let layers = ttl_layers(&clock, &[60, 10]);
    let tower = tower_of(&layers);
    put(&layers[1], "a", 1u32);
    put(&layers[1], "b", 2u32);

    clock.advance(Duration::from_secs(7));
    let values = tower.mget::<u32, _>(&["a", "b"]);
    assert_eq!((values["a"], values["b"]), (Some(1), Some(2)));
    assert_eq!(column::<u32>(&layers, "a"), [Some(1), Some(1)]);

    clock.advance(Duration::from_secs(4));
    assert_eq!(peek::<u32>(&layers[0], "a"), None);
    assert_eq!(peek::<u32>(&layers[0], "b"), None);
}

/// A shared layer returns JSON; the backfill decodes it, and must still carry the time left.
#[test]
fn backfill_of_a_json_value_lives_no_longer_than_the_source_entry() {
    let clock = ManualClock::new();
    let layers = ttl_layers(&clock, &[60, 10]);
    let tower = tower_of(&layers);
    put_json(&layers[1], "g", "1");
    put_json(&layers[1], "m", "2");
    put(&layers[1], "other-type", 3u8);

    clock.advance(Duration::from_secs(7));
    assert_eq!(tower.get::<u32>("g"), Some(1));
    assert_eq!(tower.get::<u32>("other-type"), Some(3), "stored as u8, read as u32");
    assert_eq!(tower.mget::<u32, _>(&["m"])["m"], Some(2));
    for key in ["g", "m", "other-type"] {
        let left = layers[0].get(key).unwrap().map(|e| e.ttl());
        assert_eq!(left, Some(Some(Duration::from_secs(3))), "{key}: backfilled with what layer 1 had left");
    }

    clock.advance(Duration::from_secs(4));
    for key in ["g", "m", "other-type"] {
        assert!(!layers[0].exists(key).unwrap(), "{key}: the backfilled copy outlived its source");
    }
}

#[test]
fn backfill_through_three_layers_takes_the_shortest_life() {
    let clock = ManualClock::new();
    // Layer 1 keeps entries 5s at most; layer 2 holds the key with 10s to live.
    let layers = ttl_layers(&clock, &[60, 5, 100]);
    let tower = tower_of(&layers);
    clock.advance(Duration::from_secs(1));
    layers[2].set("k", &Entry::new(StoredValue::new(9u8), Some(Duration::from_secs(10)))).unwrap(); // until t = 11
    clock.advance(Duration::from_secs(3)); // t = 4: 7s left

    assert_eq!(tower.get::<u8>("k"), Some(9));
    assert_eq!(
        layers[1].get("k").unwrap().unwrap().ttl(),
        Some(Duration::from_secs(5)),
        "layer 1's own TTL is shorter"
    );
    assert_eq!(layers[0].get("k").unwrap().unwrap().ttl(), Some(Duration::from_secs(7)), "layer 0: what was left");

    clock.advance(Duration::from_secs(5)); // t = 9
    assert_eq!(column::<u8>(&layers, "k"), [Some(9), None, Some(9)]);
    clock.advance(Duration::from_secs(2)); // t = 11
    assert_eq!(column::<u8>(&layers, "k"), [None, None, None]);
}

#[test]
fn backfill_from_a_layer_without_ttl_uses_the_upper_layers_ttl() {
    let clock = ManualClock::new();
    let top = MemoryAdapter::builder().ttl(Duration::from_secs(30)).clock(&clock).build();
    let bottom = MemoryAdapter::builder().clock(&clock).build();
    let tower = tower_of(&[top.clone(), bottom.clone()]);
    put(&bottom, "k", 1);
    assert_eq!(tower.get::<i32>("k"), Some(1));
    clock.advance(Duration::from_secs(29));
    assert_eq!(peek::<i32>(&top, "k"), Some(1));
    clock.advance(Duration::from_secs(1));
    assert_eq!(peek::<i32>(&top, "k"), None);
    assert_eq!(peek::<i32>(&bottom, "k"), Some(1));
}

// ===== values that do not decode, and compatible types =====

#[test]
fn undecodable_value_is_a_miss_and_the_next_layer_overwrites_it() {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    put(&layers[0], "k", "not a number".to_string());
    put(&layers[1], "k", 42u32);

    assert_eq!(tower.get::<u32>("k"), Some(42));

    assert_eq!(peek::<u32>(&layers[0], "k"), Some(42), "layer 0 was overwritten by the backfill");
    let stats = tower.stats();
    assert_eq!(stats[0].decode_failures, 1);
    assert_eq!(stats[0].hits, 0);
    assert_eq!(stats[0].backfills, 1);
    assert_eq!(stats[1].hits, 1);
    assert_eq!(tower.get::<u32>("k"), Some(42));
    assert_eq!(tower.stats()[0].hits, 1, "the next read is a layer 0 hit");
}

#[test]
fn undecodable_value_in_json_is_a_miss() {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    put_json(&layers[0], "k", "{not json");
    put_json(&layers[1], "k", "5");
    assert_eq!(tower.get::<u8>("k"), Some(5));
    assert_eq!(peek::<u8>(&layers[0], "k"), Some(5));
    assert_eq!(tower.stats()[0].decode_failures, 1);
}

#[test]
fn undecodable_value_everywhere_is_none_never_a_panic() {
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    put(&layers[0], "k", "text".to_string());
    put(&layers[1], "k", vec![1, 2]);
    put_json(&layers[2], "k", "][");
    assert_eq!(tower.get::<User>("k"), None);
    assert_eq!(tower.mget::<User, _>(&["k"])["k"], None);
    assert!(tower.stats().iter().all(|s| s.decode_failures == 2), "{:?}", tower.stats());
    assert_eq!(peek::<String>(&layers[0], "k").as_deref(), Some("text"), "nothing was overwritten");
}

#[test]
fn mget_treats_an_undecodable_value_as_a_miss_and_overwrites_it() {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    put(&layers[0], "a", "wrong".to_string());
    put(&layers[0], "b", 2i64);
    put(&layers[1], "a", 1i64);

    let values = tower.mget::<i64, _>(&["a", "b"]);

    assert_eq!((values["a"], values["b"]), (Some(1), Some(2)));
    assert_eq!(peek::<i64>(&layers[0], "a"), Some(1));
    assert_eq!(tower.stats()[0].decode_failures, 1);
}

/// `LayerStats::decode_failures` is documented as "counted as misses too".
#[test]
fn decode_failure_counts_as_a_miss_too() {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    put(&layers[0], "k", "text".to_string());
    put(&layers[1], "k", 1u32);
    tower.get::<u32>("k");
    let stats = &tower.stats()[0];
    assert_eq!(stats.decode_failures, 1);
    assert_eq!(stats.misses, 1, "a decode failure is documented to count as a miss as well: {stats:?}");
}

#[test]
fn a_value_read_as_a_compatible_type_decodes_through_json() {
    let tower = tower_of(&memory_layers(1));
    tower.set("n", 7u8).unwrap();
    assert_eq!(tower.get::<u64>("n"), Some(7));
    assert_eq!(tower.get::<f64>("n"), Some(7.0));
    assert_eq!(tower.get::<String>("n"), None, "7 is not a string");

    tower.set("big", 300u32).unwrap();
    assert_eq!(tower.get::<u8>("big"), None, "300 does not fit a u8");

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Summary {
        id: u64,
        name: String,
    }
    tower.set("u", User::sample(3)).unwrap();
    assert_eq!(tower.get::<Summary>("u"), Some(Summary { id: 3, name: "user 3".into() }));
    assert_eq!(tower.get::<User>("u"), Some(User::sample(3)), "the stored value is unchanged");

    tower.set("list", vec!["a".to_string()]).unwrap();
    assert_eq!(tower.mget::<std::collections::VecDeque<String>, _>(&["list"])["list"], Some(["a".into()].into()));
}

#[test]
fn a_compatible_type_found_below_is_backfilled_and_then_read_from_layer_zero() {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    put(&layers[1], "n", 9u16);
    assert_eq!(tower.get::<i64>("n"), Some(9));
    assert_eq!(peek::<i64>(&layers[0], "n"), Some(9));
    assert_eq!(tower.get::<i64>("n"), Some(9));
    assert_eq!(tower.stats()[0].hits, 1);
}

// ===== a tower shared between threads =====

#[test]
fn layers_can_be_replaced_while_other_threads_read_and_write() {
    let tower = Arc::new(tower_of(&memory_layers(2)));
    std::thread::scope(|scope| {
        for t in 0..4 {
            let tower = &tower;
            scope.spawn(move || {
                for i in 0..500 {
                    let key = format!("t{t}-{}", i % 16);
                    tower.set(&key, i).unwrap();
                    // The layers it was written to, or fresh ones put in since: never another value.
                    let read = tower.get::<i32>(&key);
                    assert!(read.is_none() || read == Some(i), "{key}: read {read:?} after writing {i}");
                    let read = tower.mget::<i32, _>(&[key.as_str(), "x"]);
                    assert!(read[key.as_str()].is_none() || read[key.as_str()] == Some(i), "{key}: {read:?}");
                    assert_eq!(read["x"], None);
                }
            });
        }
        scope.spawn(|| {
            for _ in 0..200 {
                tower.set_layers(memory_layers(2));
                tower.add_layer(MemoryAdapter::new());
                let _ = tower.set_layer(MemoryAdapter::new(), 1);
            }
        });
    });
    assert_eq!(tower.get_layers().len(), 3);
}

// ===== the read fast lane (a typed hit in a FIFO memory top layer) and its fallbacks =====

#[test]
fn a_typed_hit_in_the_top_layer_is_counted_once_as_a_hit() {
    let tower = tower_of(&memory_layers(2));
    tower.set("k", User::sample(1)).unwrap();
    assert_eq!(tower.get::<User>("k"), Some(User::sample(1)));
    assert_eq!(tower.try_get_or_set("k", || Err::<User, ()>(())), Ok(User::sample(1)));
    let stats = tower.stats();
    assert_eq!((stats[0].hits, stats[0].misses), (2, 0));
    assert_eq!((stats[1].hits, stats[1].misses), (0, 0), "the layer below is not asked");
}

#[test]
fn a_value_of_another_type_in_the_top_layer_still_decodes_through_json() {
    let tower = tower_of(&memory_layers(1));
    tower.set("n", 7u8).unwrap();
    assert_eq!(tower.get::<u64>("n"), Some(7), "u8 stored, u64 read: decoded, not cloned");
    assert_eq!(tower.get::<String>("n"), None, "not a String: a miss");
    let stats = tower.stats();
    assert_eq!((stats[0].hits, stats[0].misses, stats[0].decode_failures), (1, 1, 1));
}

#[test]
fn a_miss_in_the_top_layer_goes_on_to_the_layers_below() {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    put(&layers[1], "k", 5);
    assert_eq!(tower.get::<i32>("k"), Some(5));
    assert_eq!(peek::<i32>(&layers[0], "k"), Some(5), "backfilled");
    let stats = tower.stats();
    assert_eq!((stats[0].misses, stats[1].hits), (1, 1));
}

#[test]
fn a_hit_beside_an_expired_entry_reclaims_it() {
    let clock = ManualClock::new();
    let memory = MemoryAdapter::builder().ttl(Duration::from_secs(10)).clock(&clock).build();
    let tower = tower_of(std::slice::from_ref(&memory));
    tower.set("old", 1).unwrap();
    clock.advance(Duration::from_secs(5));
    tower.set("new", 2).unwrap();
    clock.advance(Duration::from_secs(6)); // "old" expired at 10 s, "new" lives until 15 s
    assert_eq!(tower.get::<i32>("new"), Some(2));
    assert_eq!(tower.get::<i32>("old"), None);
    assert_eq!(memory.stats().expirations, 1);
    assert_eq!(memory.keys(), ["new"]);
}

#[test]
fn an_lru_top_layer_keeps_its_recency_order_on_hits() {
    let memory = MemoryAdapter::builder().maxsize(2).lru(true).build();
    let tower = tower_of(std::slice::from_ref(&memory));
    tower.set("a", 1).unwrap();
    tower.set("b", 2).unwrap();
    assert_eq!(tower.get::<i32>("a"), Some(1)); // "a" is now the most recently used
    tower.set("c", 3).unwrap(); // evicts "b"
    assert_eq!(tower.get::<i32>("b"), None);
    assert_eq!(tower.get::<i32>("a"), Some(1));
}

#[test]
fn the_async_reads_take_the_same_fast_lane_and_fallbacks() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let clock = ManualClock::new();
        let top = MemoryAdapter::builder().ttl(Duration::from_secs(10)).clock(&clock).build();
        let bottom = MemoryAdapter::new();
        let tower = tower_of(&[top.clone(), bottom.clone()]);
        tower.set("user", User::sample(3)).unwrap();
        assert_eq!(tower.get_async::<User>("user").await, Some(User::sample(3)), "typed hit");
        assert_eq!(tower.get_or_set_async("user", || async { User::sample(4) }).await, User::sample(3));
        tower.set("n", 7u8).unwrap();
        assert_eq!(tower.get_async::<u64>("n").await, Some(7), "another type: decoded");
        put(&bottom, "below", 9);
        assert_eq!(tower.get_async::<i32>("below").await, Some(9), "a miss goes on below");
        clock.advance(Duration::from_secs(11)); // everything in the top layer has expired
        assert_eq!(tower.get_async::<i32>("below").await, Some(9), "still below, backfilled again");
        assert_eq!(top.keys(), ["below"], "the expired entries were reclaimed");
        let stats = tower.stats();
        assert_eq!((stats[0].hits, stats[0].misses), (3, 2));
    });
}

// ===== a failed write is not followed by a read of the same layer =====

/// A shared layer whose writes fail (as a timeout, after its watcher reported a change of the
/// key they carry, as a store that applied the write late would) and that counts the reads of
/// the tower's callers.
#[derive(Default)]
struct FailingShared {
    sink: std::sync::Mutex<Option<cache_tower::adapter::ChangeSink>>,
    reads: std::sync::atomic::AtomicUsize,
}

/// The handle the tower holds; the test keeps the other.
#[derive(Debug, Clone, Default)]
struct FailingSharedLayer(Arc<FailingShared>);

impl std::fmt::Debug for FailingShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailingShared").field("reads", &self.reads).finish_non_exhaustive()
    }
}

impl std::ops::Deref for FailingSharedLayer {
    type Target = FailingShared;
    fn deref(&self) -> &FailingShared {
        &self.0
    }
}

impl CacheAdapter for FailingSharedLayer {
    fn kind(&self) -> &'static str {
        "failing-shared"
    }
    fn namespace(&self) -> &str {
        ""
    }
    fn ttl(&self) -> Option<Duration> {
        None
    }
    fn get(&self, _: &str) -> cache_tower::Result<Option<Entry>> {
        // Reads by the watcher (which runs on a thread of its own) are not the caller's.
        if std::thread::current().name() != Some("watcher") {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(None)
    }
    fn set(&self, key: &str, _: &Entry) -> cache_tower::Result<()> {
        if let Some(sink) = self.sink.lock().unwrap().clone() {
            // Reported by a watcher thread, as a store's change feed would, before the write
            // comes back.
            let key = key.to_owned();
            let watcher = std::thread::Builder::new().name("watcher".into());
            watcher.spawn(move || sink(cache_tower::adapter::Change::Keys(&[key]))).unwrap().join().unwrap();
        }
        Err(cache_tower::Error::layer_fault(cache_tower::error::Fault::Timeout, "set timed out"))
    }
    fn delete(&self, _: &str) -> cache_tower::Result<()> {
        Ok(())
    }
    fn exists(&self, _: &str) -> cache_tower::Result<bool> {
        Ok(false)
    }
    fn flush(&self) -> cache_tower::Result<()> {
        Ok(())
    }
    fn watch_changes(&self, sink: cache_tower::adapter::ChangeSink) -> Option<cache_tower::adapter::ChangeWatch> {
        sink(cache_tower::adapter::Change::All);
        *self.sink.lock().unwrap() = Some(sink);
        Some(cache_tower::adapter::ChangeWatch::new(()))
    }
}

#[test]
fn a_set_does_not_read_back_from_a_layer_whose_write_just_failed() {
    // A set whose key changes while it is written reads the key back from the shared layer to
    // tell its own change from another's. From a layer whose write has just failed (a timeout,
    // say) that read would cost the caller the timeout a second time, and could not show the
    // set's value anyway.
    let shared = FailingSharedLayer::default();
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::new());
    tower.add_layer(shared.clone());
    let err = tower.set("k", 1u32).expect_err("the shared layer's write failed");
    assert_eq!(err.fault(), Some(cache_tower::error::Fault::Timeout));
    assert_eq!(shared.reads.load(std::sync::atomic::Ordering::Relaxed), 0, "the failed layer was read back");
}
