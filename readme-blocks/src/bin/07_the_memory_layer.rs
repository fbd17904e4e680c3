use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_tower::adapter::{EvictionPolicy, RemovalCause};
use cache_tower::clock::ManualClock;
use cache_tower::{CacheTower, MemoryAdapter};

fn main() -> cache_tower::Result<()> {
    // Two entries at most; then writing "c" evicts one. A clone of an adapter is a handle on
    // the same storage, so `layer` sees what the tower stores.
    for policy in [EvictionPolicy::Fifo, EvictionPolicy::Lru, EvictionPolicy::S3Fifo] {
        let layer = MemoryAdapter::builder().maxsize(2).policy(policy).build();
        let tower = CacheTower::new();
        tower.add_layer(layer.clone());
        tower.set("a", 1)?;
        tower.set("b", 2)?;
        assert_eq!(tower.get::<i32>("a"), Some(1)); // "a" was read again
        tower.set("c", 3)?;
        let mut kept = layer.keys();
        kept.sort();
        println!("{policy}: keeps {kept:?}"); // FIFO keeps b and c; LRU and S3-FIFO keep a and c
    }

    // A bound in bytes, and a listener that hears why each entry left.
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    let layer = MemoryAdapter::builder()
        .max_bytes(1024 * 1024)
        .policy(EvictionPolicy::S3Fifo)
        .on_removal(move |key, cause| log.lock().unwrap().push((key.to_owned(), cause)))
        .build();
    let tower = CacheTower::new();
    tower.add_layer(layer.clone());
    for page in 0..100 {
        tower.set(&format!("page:{page}"), "x".repeat(50_000))?; // 100 pages of 50 KB
    }
    assert!(layer.bytes() <= 1024 * 1024);
    let evicted = heard.lock().unwrap().iter().filter(|(_, cause)| *cause == RemovalCause::Evicted).count();
    println!("{} pages kept in {} bytes, {evicted} evicted", layer.len(), layer.bytes());

    // TTL: an entry is gone once its time is up. A manual clock stands in for the passing time.
    let clock = ManualClock::new();
    let layer = MemoryAdapter::builder().ttl(Duration::from_secs(60)).clock(&clock).build();
    let tower = CacheTower::new();
    tower.add_layer(layer.clone());
    tower.set("session:1", "Ada".to_string())?;
    clock.advance(Duration::from_secs(61));
    assert!(!tower.exists("session:1"));
    assert_eq!(layer.purge_expired(), 1); // frees the memory of expired entries now
    Ok(())
}
