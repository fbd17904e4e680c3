//! Manual control of a `CacheTower`: built with `from_json` from two memory layers (plus a Redis
//! layer at `REDIS_URL` when it is set; memory only, saying so, when it is not), then every
//! operation by hand — `set`/`get`/`mset`/`mget`/`exists`/`delete`, a backfill, `get_or_set`
//! and `try_get_or_set`, layer management (`get_layers`, `add_layer`, `set_layer`), `stats()`
//! and `flush`.
//!
//! With Redis down every read still answers (from memory, or a miss), and every explicit write
//! updates memory and reports, in a sentence, that Redis did not take it; the stats show the
//! circuit breaker open. It empties its namespace in Redis (`cache-tower-example:manual:`)
//! first, so every run starts cold and prints the same lines.
//!
//! ```sh
//! cargo run -p cache-tower-examples --bin manual                                         # memory only
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p cache-tower-examples --bin manual      # plus Redis
//! ```

use std::time::Duration;

use cache_tower::{CacheTower, MemoryAdapter};
use serde::{Deserialize, Serialize};

mod support;
use support::{count, show_stats};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

fn user(id: u64, name: &str) -> User {
    User { id, name: name.to_owned() }
}

/// A duration as people write it: "30 seconds", "5 minutes", "1 hour", "250 milliseconds".
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => count(duration.as_millis().try_into().unwrap_or(u64::MAX), "millisecond", "milliseconds"),
        _ if duration.subsec_nanos() != 0 => format!("{:.1} seconds", duration.as_secs_f64()),
        _ if secs % 3600 == 0 => count(secs / 3600, "hour", "hours"),
        _ if secs % 60 == 0 => count(secs / 60, "minute", "minutes"),
        _ => count(secs, "second", "seconds"),
    }
}

fn print_layers(tower: &CacheTower) {
    for (position, layer) in tower.get_layers().iter().enumerate() {
        let namespace = match layer.namespace() {
            "" => "no namespace".to_owned(),
            namespace => format!("namespace {namespace:?}"),
        };
        let ttl = layer.ttl().map_or_else(|| "no TTL".to_owned(), |ttl| format!("TTL {}", human(ttl)));
        println!("  layer {position}: {:<6} {namespace:<42} {ttl}", layer.kind());
    }
}

/// Explicit writes (`set`, `mset`, `delete`, `flush`) return the error of a layer that failed,
/// after updating the healthy ones. A service logs it and goes on, as this example does, so it
/// also runs with Redis down. (Reads never fail that way: a failed layer is a miss.)
fn report(operation: &str, result: cache_tower::Result<()>) {
    let Err(err) = result else { return };
    let layer = err.layer().map_or_else(|| "one layer".to_owned(), |layer| format!("layer {layer}"));
    // Redis refused the connection, or its open circuit breaker skipped it: which of the two
    // depends on how long ago it last failed, so both are told the same way here.
    if err.is_connection() || err.is_timeout() || err.is_skipped() {
        println!("  {operation}: done in the other layers, not in {layer}: Redis is unreachable");
    } else {
        println!("  {operation}: done in the other layers, not in {layer}: {}", err.report());
    }
}

fn main() -> cache_tower::Result<()> {
    // The dictionary method: a tiny LRU on top (2 entries, so evictions show), a bigger memory
    // layer below it, and Redis at the bottom when REDIS_URL is set.
    let memory = [
        r#"{"adapter": "memory", "ttl": 30, "params": {"maxsize": 2, "lru": true}}"#,
        r#"{"adapter": "memory", "ttl": 300, "params": {"maxsize": 10000}}"#,
    ];
    let redis = r#"{"adapter": "redis", "namespace": "cache-tower-example:manual:", "ttl": 600,
                    "params": {"url_env": "REDIS_URL", "timeout_ms": 250}}"#;
    let memory_only = || CacheTower::from_json(&format!("[{}]", memory.join(", ")));
    // Building the Redis layer does not connect: a server that is down shows on the first call.
    let (tower, with_redis) = if std::env::var("REDIS_URL").is_ok_and(|url| !url.is_empty()) {
        match CacheTower::from_json(&format!("[{}, {redis}]", memory.join(", "))) {
            Ok(tower) => {
                println!("REDIS_URL is set: memory, memory, Redis");
                (tower, true)
            }
            Err(err) => {
                println!("REDIS_URL is set but unusable ({}): two memory layers only", err.report());
                (memory_only()?, false)
            }
        }
    } else {
        println!("REDIS_URL is not set: two memory layers only");
        (memory_only()?, false)
    };
    if with_redis {
        // Start from an empty namespace (only this namespace: other keys in the database stay).
        // This is the first call to Redis: if it is down, this says why, in full.
        match tower.flush() {
            Ok(()) => println!("emptied the Redis namespace, so this run starts cold"),
            Err(err) => println!("could not empty the Redis namespace, going on: {}", err.report()),
        }
    }
    print_layers(&tower);

    println!("\n-- set / get");
    report("set", tower.set("user:1", user(1, "Ada")));
    println!("get user:1          {:?}", tower.get::<User>("user:1"));
    println!("get user:1 as u64   {:?}  (a value of another type is a miss)", tower.get::<u64>("user:1"));
    println!("get user:404        {:?}", tower.get::<User>("user:404"));

    println!("\n-- mset / mget");
    report("mset", tower.mset([("user:2", user(2, "Grace")), ("user:3", user(3, "Barbara"))]));
    // The answer keeps the order of the keys asked.
    for (key, value) in tower.mget::<User, _>(&["user:1", "user:2", "user:3", "user:4"]) {
        println!("mget {key}         {value:?}");
    }

    println!("\n-- exists / delete");
    println!("exists user:2       {}", tower.exists("user:2"));
    report("delete", tower.delete("user:2"));
    println!("after delete        {}", tower.exists("user:2"));

    println!("\n-- backfill");
    let top = &tower.get_layers()[0];
    top.delete("user:3")?; // drop it from layer 0 only
    if with_redis {
        // With Redis below, whether layer 0 kept a copy of this process's writes can depend on
        // timing (ADR 13): what layer 0 holds is not shown while Redis is below it.
        println!("get user:3          {:?}  (a layer below answered)", tower.get::<User>("user:3"));
    } else {
        println!("layer 0 has user:3  {}", top.exists("user:3")?);
        println!("get user:3          {:?}  (read from a layer below)", tower.get::<User>("user:3"));
        println!("layer 0 has user:3  {}  (backfilled)", top.exists("user:3")?);
    }

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

    println!("\n-- stats (layer 0 keeps 2 entries at most: it evicts to make room)");
    show_stats("  ", &tower.stats());

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
    if !with_redis {
        let top = &tower.stats()[0];
        println!(
            "new layer 0: {}, {}",
            count(top.misses, "miss", "misses"),
            count(top.backfills, "backfill", "backfills")
        );
    }

    println!("\n-- flush");
    report("flush", tower.flush());
    println!("exists user:1 after flush: {}", tower.exists("user:1"));
    Ok(())
}
