use std::time::Duration;

use cache_tower::{CacheTower, MemoryAdapter};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

fn main() -> cache_tower::Result<()> {
    // A tower of one layer: in-process memory, at most 1,024 entries (the least recently used
    // goes first when it is full), each kept for 60 seconds, under keys prefixed with "users:".
    let tower = CacheTower::from_json(
        r#"[{"adapter": "memory", "namespace": "users:", "ttl": 60, "params": {"maxsize": 1024, "lru": true}}]"#,
    )?;

    // The same tower, built in code instead of from JSON.
    let same = CacheTower::new();
    let memory = MemoryAdapter::builder().namespace("users:").maxsize(1024).lru(true);
    same.add_layer(memory.ttl(Duration::from_secs(60)).build());
    println!("layers: {} and {}", tower.get_layers().len(), same.get_layers().len());

    tower.set("user:1", User { id: 1, name: "Ada".into() })?;
    let ada: Option<User> = tower.get("user:1");
    println!("get user:1: {ada:?}");

    // The closure runs only when the key is missing; its value is stored, then returned.
    let grace = tower.get_or_set("user:2", || User { id: 2, name: "Grace".into() });
    println!("get_or_set user:2: {grace:?}");

    // Every key asked for, in the order asked: None for a key no layer holds.
    for (key, user) in tower.mget::<User, _>(&["user:1", "user:2", "user:3"]) {
        println!("mget {key}: {user:?}");
    }

    tower.delete("user:1")?;
    println!("user:1 exists after delete: {}", tower.exists("user:1"));
    Ok(())
}
