//! Manual control of a `CacheTower`: built with `from_json` from two memory layers (plus a Redis
//! layer at `REDIS_URL` when it is set; memory only, saying so, when it is not), then every
//! operation by hand — `set`/`get`/`mset`/`mget`/`exists`/`delete`, a backfill, `get_or_set`
//! and `try_get_or_set`, layer management (`get_layers`, `add_layer`, `set_layer`), `stats()`
//! and `flush`.
//!
//! ```sh
//! cargo run -p cache-tower-examples --bin manual                                         # memory only
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p cache-tower-examples --bin manual      # plus Redis
//! ```

use std::time::Duration;

use cache_tower::{CacheTower, MemoryAdapter};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

fn user(id: u64, name: &str) -> User {
    User { id, name: name.to_owned() }
}

fn print_layers(tower: &CacheTower) {
    for (position, layer) in tower.get_layers().iter().enumerate() {
        println!(
            "  layer {position}: {:<6} namespace {:<32} ttl {:?}",
            layer.kind(),
            format!("{:?}", layer.namespace()),
            layer.ttl()
        );
    }
}

/// Explicit writes (`set`, `mset`, `delete`, `flush`) return the error of a layer that failed,
/// after updating the healthy ones. A service logs it and goes on, as this example does, so it
/// also runs with Redis down. (Reads never fail that way: a failed layer is a miss.)
fn report(operation: &str, result: cache_tower::Result<()>) {
    if let Err(err) = result {
        println!("  {operation}: {err} (the other layers were updated)");
    }
}

fn main() -> cache_tower::Result<()> {
    // The dictionary method: a tiny LRU on top (2 entries, so evictions show), a bigger memory
    // layer below it, and Redis at the bottom when REDIS_URL is set.
    let mut layers = vec![
        r#"{"adapter": "memory", "ttl": 30, "params": {"maxsize": 2, "lru": true}}"#,
        r#"{"adapter": "memory", "ttl": 300, "params": {"maxsize": 10000}}"#,
    ];
    let with_redis = std::env::var("REDIS_URL").is_ok_and(|url| !url.is_empty());
    if with_redis {
        layers.push(
            r#"{"adapter": "redis", "namespace": "cache-tower-example:manual:", "ttl": 600,
                "params": {"url_env": "REDIS_URL", "timeout_ms": 250}}"#,
        );
        println!("REDIS_URL is set: memory, memory, Redis");
    } else {
        println!("REDIS_URL is not set: two memory layers only");
    }
    let tower = CacheTower::from_json(&format!("[{}]", layers.join(", ")))?;
    if with_redis {
        // Start from an empty namespace (only this namespace: other keys in the database stay).
        report("flush", tower.flush());
    }
    print_layers(&tower);

    println!("\n-- set / get");
    report("set", tower.set("user:1", user(1, "Ada")));
    println!("get user:1          {:?}", tower.get::<User>("user:1"));
    println!("get user:1 as u64   {:?}  (a value of another type is a miss)", tower.get::<u64>("user:1"));
    println!("get user:404        {:?}", tower.get::<User>("user:404"));

    println!("\n-- mset / mget");
    report("mset", tower.mset([("user:2", user(2, "Grace")), ("user:3", user(3, "Barbara"))]));
    let found = tower.mget::<User, _>(&["user:1", "user:2", "user:3", "user:4"]);
    let mut found: Vec<_> = found.into_iter().collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in found {
        println!("mget {key}         {value:?}");
    }

    println!("\n-- exists / delete");
    println!("exists user:2       {}", tower.exists("user:2"));
    report("delete", tower.delete("user:2"));
    println!("after delete        {}", tower.exists("user:2"));

    println!("\n-- backfill");
    let top = &tower.get_layers()[0];
    top.delete("user:3")?; // drop it from layer 0 only
    println!("layer 0 has user:3  {}", top.exists("user:3")?);
    println!("get user:3          {:?}  (read from a layer below)", tower.get::<User>("user:3"));
    println!("layer 0 has user:3  {}  (backfilled)", top.exists("user:3")?);

    println!("\n-- get_or_set / try_get_or_set");
    for attempt in 1..=2 {
        let answer = tower.get_or_set("answer", || {
            println!("  computing the answer");
            42u32
        });
        println!("get_or_set answer #{attempt}: {answer}");
    }
    let failed = tower.try_get_or_set("settings", || Err::<String, _>("database down"));
    println!("try_get_or_set settings, failing:   {failed:?}  (not cached)");
    let ok = tower.try_get_or_set("settings", || Ok::<_, &str>("dark mode".to_owned()));
    println!("try_get_or_set settings, succeeding: {ok:?}");

    println!("\n-- stats (the tiny layer 0 evicted entries to stay at 2)");
    for layer in tower.stats() {
        println!(
            "  layer {} ({}): {} hits, {} misses, {} backfills, {} evictions, {} decode failures, {} errors",
            layer.layer,
            layer.kind,
            layer.hits,
            layer.misses,
            layer.backfills,
            layer.evictions,
            layer.decode_failures,
            layer.errors
        );
    }

    println!("\n-- layer management");
    // The programmatic method: add a layer at the bottom (asked last on reads)...
    tower.add_layer(MemoryAdapter::builder().namespace("archive:").build());
    // ...replace layer 0 with a bigger LRU (it starts empty, with fresh counters; reads backfill
    // it)...
    tower.set_layer(MemoryAdapter::builder().maxsize(1000).lru(true).ttl(Duration::from_secs(30)).build(), 0)?;
    // ...and a position past the end is an error, not a panic.
    if let Err(err) = tower.set_layer(MemoryAdapter::new(), 99) {
        println!("set_layer(_, 99): {err}");
    }
    print_layers(&tower);
    println!("get user:1 through the new layer 0: {:?}", tower.get::<User>("user:1"));
    let top = &tower.stats()[0];
    println!("new layer 0: {} misses, {} backfills", top.misses, top.backfills);

    println!("\n-- flush");
    report("flush", tower.flush());
    println!("exists user:1 after flush: {}", tower.exists("user:1"));
    Ok(())
}
