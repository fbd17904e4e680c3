//! Knowing when a tower's invalidation listener has subscribed.
//!
//! The listener clears the memory layers above its Redis layer whenever it subscribes (and when
//! it loses its connection), since changes may have been missed. So a sentinel key planted in the
//! memory layer beforehand disappears once it has: tests wait for that before they measure how
//! changes are delivered, instead of sleeping for a while and hoping.

use std::time::{Duration, Instant};

use cache_tower::{
    CacheTower, MemoryAdapter, RedisAdapter,
    adapter::{CacheAdapter, Entry, StoredValue},
};

/// A key no test uses, planted in a memory layer to see it cleared.
pub const SENTINEL: &str = "\u{0}cache-tower-tests:sentinel";

/// How long a listener may take to subscribe before a test gives up on it.
pub const SUBSCRIBE_WITHIN: Duration = Duration::from_secs(10);

/// Puts [`SENTINEL`] into `memory`, bypassing any tower.
pub fn plant_sentinel(memory: &dyn CacheAdapter) -> cache_tower::Result<()> {
    memory.set(SENTINEL, &Entry::new(StoredValue::new(true), None))
}

/// Whether [`SENTINEL`] is gone from `memory` within `within` (polled every millisecond).
pub fn sentinel_cleared_within(memory: &dyn CacheAdapter, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !memory.exists(SENTINEL).unwrap_or(true) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A tower of `memory` over `redis` whose invalidation listener has subscribed (so every change
/// made from now on is delivered). Panics when it does not subscribe within [`SUBSCRIBE_WITHIN`].
pub fn subscribed_tower(memory: &MemoryAdapter, redis: &RedisAdapter) -> CacheTower {
    plant_sentinel(memory).expect("a memory layer takes any write");
    let tower = CacheTower::new();
    tower.add_layer(memory.clone());
    // Stacking Redis under memory starts the listener.
    tower.add_layer(redis.clone());
    assert!(
        sentinel_cleared_within(memory, SUBSCRIBE_WITHIN),
        "the invalidation listener of {redis:?} did not subscribe within {SUBSCRIBE_WITHIN:?}"
    );
    tower
}
