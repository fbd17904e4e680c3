//! The quick start: a memory-only tower built from a JSON list of layers (the form a settings
//! file holds), used the way a service would: `get_or_set`, plain reads and writes, a second
//! layer added in code, and the per-layer stats in plain words.
//!
//! It never talks to Redis (`REDIS_URL` is not read), so it prints the same lines on every run;
//! only the `(took …)` timings change.
//!
//! Run it with `cargo run -p cache-tower-examples --bin quickstart`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter};
use serde::{Deserialize, Serialize};

mod support;
use support::{count, took};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// How many times `load_user` really ran (the cache skips it on a hit).
static QUERIES: AtomicUsize = AtomicUsize::new(0);

/// Stands in for a slow database query.
fn load_user(id: u64) -> User {
    QUERIES.fetch_add(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(50));
    User { id, name: format!("user {id}") }
}

fn main() -> cache_tower::Result<()> {
    // The dictionary method: the same list of layers a settings file would hold.
    let tower = CacheTower::from_json(
        r#"[{"adapter": "memory", "namespace": "users:", "ttl": 60, "params": {"maxsize": 1024, "lru": true}}]"#,
    )?;

    // get_or_set: the first call runs load_user, the second is answered by the cache.
    for attempt in 1..=2 {
        let (before, started) = (QUERIES.load(Ordering::Relaxed), Instant::now());
        let user = tower.get_or_set("user:7", || load_user(7));
        let source =
            if QUERIES.load(Ordering::Relaxed) > before { "loaded from the database" } else { "from the cache" };
        println!("attempt {attempt}: {user:?}, {source} {}", took(started.elapsed()));
    }

    // Plain reads and writes; mget answers in the order the keys were asked.
    tower.set("user:8", User { id: 8, name: "Grace".into() })?;
    let many = tower.mget::<User, _>(&["user:7", "user:8", "user:9"]);
    for (key, user) in &many {
        println!("mget {key}: {user:?}");
    }
    tower.delete("user:8")?;
    println!("user:8 exists after delete: {}", tower.exists("user:8"));

    // The programmatic method: a second, larger and longer-lived layer below the first.
    tower.add_layer(MemoryAdapter::builder().maxsize(100_000).ttl(Duration::from_secs(300)).build());
    tower.set("user:9", User { id: 9, name: "Ada".into() })?;
    println!("layers: {}", tower.get_layers().len());

    for layer in tower.stats() {
        println!(
            "layer {} ({}): {}, {}, {}, {}",
            layer.layer,
            layer.kind,
            count(layer.hits, "hit", "hits"),
            count(layer.misses, "miss", "misses"),
            count(layer.backfills, "backfill", "backfills"),
            count(layer.evictions, "eviction", "evictions"),
        );
    }
    Ok(())
}
