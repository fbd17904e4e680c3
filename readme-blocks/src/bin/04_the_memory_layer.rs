use std::time::Duration;

use cache_tower::clock::ManualClock;
use cache_tower::{CacheTower, MemoryAdapter};

fn main() -> cache_tower::Result<()> {
    // Two entries at most; then writing "c" evicts one. A clone of an adapter is a handle on
    // the same storage, so `layer` sees what the tower stores.
    for lru in [false, true] {
        let layer = MemoryAdapter::builder().maxsize(2).lru(lru).build();
        let tower = CacheTower::new();
        tower.add_layer(layer.clone());
        tower.set("a", 1)?;
        tower.set("b", 2)?;
        assert_eq!(tower.get::<i32>("a"), Some(1)); // for LRU, "a" is now the most recently used
        tower.set("c", 3)?;
        let mut kept = layer.keys();
        kept.sort();
        println!("lru = {lru}: keeps {kept:?}"); // FIFO keeps b and c; LRU keeps a and c
    }

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
