//! The quick start: a tower on the embedded default (memory only), used the way a service would.
//!
//! Run it with `cargo run -p cache-tower-examples --bin quickstart`.

use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// Stands in for a slow database query.
fn load_user(id: u64) -> User {
    std::thread::sleep(Duration::from_millis(50));
    User { id, name: format!("user {id}") }
}

fn main() -> cache_tower::Result<()> {
    // The dictionary method: the same list of layers a settings file would hold.
    let tower = CacheTower::from_json(
        r#"[{"adapter": "memory", "namespace": "users:", "ttl": 60, "params": {"maxsize": 1024, "lru": true}}]"#,
    )?;

    // get_or_set: the first call runs load_user, the second is a memory hit.
    for attempt in 1..=2 {
        let started = Instant::now();
        let user = tower.get_or_set("user:7", || load_user(7));
        println!("attempt {attempt}: {user:?} in {:?}", started.elapsed());
    }

    // Plain reads and writes.
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
            "layer {} ({}): {} hits, {} misses, {} backfills, {} evictions",
            layer.layer, layer.kind, layer.hits, layer.misses, layer.backfills, layer.evictions
        );
    }
    Ok(())
}
