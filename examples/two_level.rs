//! A two-level tower: memory over Redis at `REDIS_URL`, or memory only (saying so) when the
//! variable is unset.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p cache-tower-examples --bin two_level
//! cargo run -p cache-tower-examples --bin two_level      # memory only
//! ```

use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product {
    sku: String,
    price_cents: u64,
}

/// Stands in for a slow catalogue service.
fn fetch_product(sku: &str) -> Product {
    std::thread::sleep(Duration::from_millis(30));
    Product { sku: sku.to_owned(), price_cents: 1999 }
}

fn main() -> cache_tower::Result<()> {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().maxsize(10_000).ttl(Duration::from_secs(60)).build());
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let redis = RedisAdapter::builder()
                .url(url)
                .namespace("cache-tower-example:")
                .ttl(Duration::from_secs(300))
                .build()?;
            println!("two levels: memory over Redis at {}", redis.endpoint());
            tower.add_layer(redis);
        }
        _ => println!("REDIS_URL is not set: running on memory only"),
    }

    for round in 1..=3 {
        let started = Instant::now();
        let product = tower.get_or_set("product:42", || fetch_product("42"));
        println!("round {round}: {product:?} in {:?}", started.elapsed());
    }
    tower.delete("product:42")?;

    for layer in tower.stats() {
        println!(
            "layer {} ({}): {} hits, {} misses, {} backfills, {} errors{}",
            layer.layer,
            layer.kind,
            layer.hits,
            layer.misses,
            layer.backfills,
            layer.errors,
            if layer.circuit_open { " (circuit open: Redis is being skipped)" } else { "" }
        );
    }
    Ok(())
}
