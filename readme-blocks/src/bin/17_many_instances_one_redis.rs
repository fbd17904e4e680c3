use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter};

/// What every instance of a service builds: its own memory layer over the shared Redis.
fn instance(redis_url: &str) -> cache_tower::Result<CacheTower> {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().ttl(Duration::from_secs(600)).build());
    tower.add_layer(RedisAdapter::builder().url(redis_url).namespace("readme:coherence:").build()?);
    Ok(tower)
}

fn main() -> cache_tower::Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_string());
    let (a, b) = (instance(&url)?, instance(&url)?);

    a.set("greeting", "hello".to_string())?;
    assert_eq!(b.get::<String>("greeting").as_deref(), Some("hello")); // now in b's memory too

    // A change made through a: b's memory copy is evicted well before its 600-second TTL,
    // and b's next read fetches the new value from Redis.
    a.set("greeting", "bonjour".to_string())?;
    let started = Instant::now();
    while b.get::<String>("greeting").as_deref() != Some("bonjour") {
        assert!(started.elapsed() < Duration::from_secs(5), "b still serves the old value");
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("b read the new value {:?} after the change", started.elapsed());

    a.flush()?;
    Ok(())
}
