use std::time::Duration;

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter};

/// Memory over Redis. Another process building the same tower shares the Redis layer.
fn tower(redis_url: &str) -> cache_tower::Result<CacheTower> {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().maxsize(10_000).ttl(Duration::from_secs(60)).build());
    tower.add_layer(
        RedisAdapter::builder()
            .url(redis_url) // or .url_env("REDIS_URL"), or .host(…).port(…).password(…)
            .namespace("readme:users:")
            .ttl(Duration::from_secs(300))
            .timeout(Duration::from_millis(500))
            .build()?,
    );
    Ok(tower)
}

fn main() -> cache_tower::Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_string());
    let first = tower(&url)?;
    first.set("user:1", "Ada".to_string())?; // in Redis: key readme:users:user:1, JSON text "Ada"

    // A second tower, as another process would have: its memory layer is empty, so the value
    // comes from Redis and is copied into its memory layer on the way.
    let second = tower(&url)?;
    assert_eq!(second.get::<String>("user:1").as_deref(), Some("Ada"));
    assert_eq!(second.get::<String>("user:1").as_deref(), Some("Ada")); // a memory hit now
    let stats = second.stats();
    let (memory, redis) = (&stats[0], &stats[1]);
    println!("memory: {} hit, {} backfill; redis: {} hit", memory.hits, memory.backfills, redis.hits);

    first.flush()?; // removes the keys under "readme:users:" from Redis, and nothing else
    Ok(())
}
