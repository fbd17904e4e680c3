//! The memory layer's removal listener and byte bound, through their edges: a listener that uses
//! the adapter it listens to, a listener that panics (caught), an entry heavier than the whole bound, and
//! a byte bound that holds under mixed sizes. (The model test, `memory_model.rs`, checks every
//! cause and bound against a reference on random operations.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_tower::{
    CacheTower, MemoryAdapter,
    adapter::{CacheAdapter, ENTRY_OVERHEAD, Entry, EvictionPolicy, MemoryAdapterBuilder, RemovalCause, StoredValue},
    clock::ManualClock,
};

type Heard = Arc<Mutex<Vec<(String, RemovalCause)>>>;

/// `builder` with a listener that records every removal, and what it heard.
fn listened(builder: MemoryAdapterBuilder) -> (MemoryAdapter, Heard) {
    let heard: Heard = Arc::default();
    let log = Arc::clone(&heard);
    (builder.on_removal(move |key, cause| log.lock().unwrap().push((key.to_owned(), cause))).build(), heard)
}

fn entry(value: impl cache_tower::Cacheable) -> Entry {
    Entry::new(StoredValue::new(value), None)
}

#[test]
fn a_listener_may_use_the_adapter_it_listens_to() {
    // The listener runs once the shard's lock is released: reading and writing the same adapter
    // from it must not deadlock.
    let slot: Arc<Mutex<Option<MemoryAdapter>>> = Arc::default();
    let from_listener = Arc::clone(&slot);
    let memory = MemoryAdapter::builder()
        .maxsize(1)
        .on_removal(move |key, cause| {
            let memory = from_listener.lock().unwrap().clone().expect("set before any write");
            if cause == RemovalCause::Evicted {
                let _ = memory.get(key).unwrap();
                memory.set("last-evicted", &entry(key.to_owned())).unwrap();
            }
        })
        .build();
    *slot.lock().unwrap() = Some(memory.clone());
    memory.set("a", &entry(1)).unwrap();
    memory.set("b", &entry(2)).unwrap();
    // "b" evicted "a"; the listener's write of "last-evicted" then evicted "b", and so on: each
    // write stays within maxsize.
    assert_eq!(memory.len(), 1);
    assert!(memory.stats().evictions >= 2);
}

#[test]
fn a_panicking_listener_is_caught_and_the_operation_finishes() {
    let heard: Heard = Arc::default();
    let log = Arc::clone(&heard);
    let memory = MemoryAdapter::builder()
        .on_removal(move |key, cause| {
            log.lock().unwrap().push((key.to_owned(), cause));
            assert_ne!(key, "a", "the listener refuses to hear of a");
        })
        .build();
    let keys: Vec<String> = (0..100).map(|i| if i == 0 { "a".to_owned() } else { format!("k{i}") }).collect();
    for key in &keys {
        memory.set(key, &entry(1)).unwrap();
    }
    // A flush goes through every shard; a panic in the first must not stop it.
    memory.flush().unwrap();
    assert_eq!(memory.len(), 0, "every shard was emptied");
    let mut told: Vec<String> = heard.lock().unwrap().iter().map(|(key, _)| key.clone()).collect();
    told.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(told, expected, "every removal was told despite the panic");
    // The adapter is usable afterwards, and the listener still called.
    memory.set("a", &entry(1)).unwrap();
    memory.delete("a").unwrap();
    assert_eq!(heard.lock().unwrap().last(), Some(&("a".to_owned(), RemovalCause::Removed)));
}

#[test]
fn through_a_tower_every_cause_is_told_and_counted() {
    let clock = ManualClock::new();
    let (memory, heard) = listened(MemoryAdapter::builder().maxsize(2).clock(&clock));
    let tower = CacheTower::new();
    tower.add_layer(memory.clone());
    tower.set("a", 1).unwrap();
    tower.set("a", 2).unwrap(); // replaced
    tower.set_with_ttl("b", 3, Duration::from_secs(1)).unwrap();
    clock.advance(Duration::from_secs(2));
    tower.set("c", 4).unwrap(); // b expired, reclaimed by the write
    tower.set("d", 5).unwrap(); // evicts a
    tower.delete("c").unwrap(); // removed
    tower.flush().unwrap(); // d removed
    let heard = heard.lock().unwrap().clone();
    let expected = [
        ("a", RemovalCause::Replaced),
        ("b", RemovalCause::Expired),
        ("a", RemovalCause::Evicted),
        ("c", RemovalCause::Removed),
        ("d", RemovalCause::Removed),
    ];
    assert_eq!(heard, expected.map(|(key, cause)| (key.to_owned(), cause)));
    let stats = &tower.stats()[0];
    assert_eq!(
        (stats.replacements, stats.expirations, stats.evictions, stats.removals, stats.invalidations),
        (1, 1, 1, 2, 0)
    );
}

#[test]
fn an_entry_heavier_than_the_whole_bound_is_not_kept() {
    let (memory, heard) = listened(MemoryAdapter::builder().max_bytes(10_000));
    memory.set("page", &entry("small".to_owned())).unwrap();
    memory.set("page", &entry("x".repeat(20_000))).unwrap();
    assert!(!memory.exists("page").unwrap(), "neither the old value nor the too-heavy one is kept");
    assert_eq!(memory.bytes(), 0);
    assert_eq!(
        *heard.lock().unwrap(),
        [("page".to_owned(), RemovalCause::Replaced), ("page".to_owned(), RemovalCause::Evicted)]
    );
}

#[test]
fn the_byte_bound_holds_for_every_policy_and_mixed_sizes() {
    const MAX_BYTES: usize = 500_000;
    for policy in EvictionPolicy::ALL {
        let memory = MemoryAdapter::builder().max_bytes(MAX_BYTES).policy(policy).build();
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..6_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // 10 bytes to 10 KB, most of them small.
            let len = 10usize << (rng % 11);
            memory.set(&format!("key:{}", rng % 2_000), &entry("v".repeat(len.min(10_000)))).unwrap();
            assert!(memory.bytes() <= MAX_BYTES, "{policy}: {} bytes after write {i}", memory.bytes());
        }
        assert!(memory.bytes() > MAX_BYTES / 2, "{policy}: the bound is used, not just respected");
        assert!(memory.stats().evictions > 0, "{policy}");
    }
}

#[test]
fn a_weigher_decides_what_a_value_weighs() {
    let memory = MemoryAdapter::builder()
        .max_bytes(3 * (ENTRY_OVERHEAD + 1 + 100))
        .weigher(|_, value| value.typed::<u32>().map_or(0, |&n| n as usize))
        .build();
    for key in ["a", "b", "c"] {
        memory.set(key, &entry(100u32)).unwrap();
    }
    assert_eq!(memory.len(), 3, "exactly at the bound: all kept");
    memory.set("d", &entry(100u32)).unwrap();
    assert_eq!(memory.len(), 3, "one more evicts one");
    memory.set("d", &entry(250u32)).unwrap();
    assert_eq!(memory.len(), 2, "a heavier overwrite evicts another key to stay within the bound");
    assert!(memory.exists("d").unwrap(), "never the entry just written");
}

#[test]
fn overwriting_an_entry_that_expired_unreclaimed_is_told_as_expired() {
    // More expired entries than one write reclaims (8): the last to expire is still stored when
    // it is overwritten.
    let clock = ManualClock::new();
    let (memory, heard) = listened(MemoryAdapter::builder().maxsize(100).clock(&clock));
    for i in 1..=12u64 {
        memory.set(&format!("k{i}"), &Entry::new(StoredValue::new(i), Some(Duration::from_secs(i)))).unwrap();
    }
    clock.advance(Duration::from_secs(20));
    memory.set("k12", &entry(0u64)).unwrap();
    let told: Vec<(String, RemovalCause)> = heard.lock().unwrap().clone();
    assert!(told.contains(&("k12".to_owned(), RemovalCause::Expired)), "{told:?}");
    assert!(told.iter().all(|(_, cause)| *cause == RemovalCause::Expired), "{told:?}");
}
