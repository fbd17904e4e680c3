//! Named towers registered at start-up from a JSON file, then used by name by memoized functions.
//!
//! `examples/towers.json` holds two towers: `"sessions"` and `"users"`, both memory only. When
//! `REDIS_URL` is set, the example also registers `examples/towers.redis.json`, whose `"users"`
//! tower (memory over Redis, the URL read from `REDIS_URL` through `"url_env"`) replaces the
//! first one; when it is unset, it says so and `"users"` stays memory only. It ends by showing
//! the error a mistake in such a file gets: it names the tower, the layer and the field.
//!
//! ```sh
//! cargo run -p cache-tower-examples --bin registry_file                                      # memory only
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p cache-tower-examples --bin registry_file   # users over Redis
//! ```

use std::time::{Duration, Instant};

use cache_tower::{cached_tower, registry};
use serde::{Deserialize, Serialize};

/// A service would take these paths from its settings.
const TOWERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/towers.json");
const REDIS_TOWERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/towers.redis.json");

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    user_id: u64,
    token: String,
}

/// Cached in the `"users"` tower, whose layers prefix the key with their namespace (`user:7`).
#[cached_tower(config = "users", key = "{id}")]
fn load_user(id: u64) -> User {
    std::thread::sleep(Duration::from_millis(50)); // a database query
    User { id, name: format!("user {id}") }
}

/// Cached in the `"sessions"` tower; an unknown token (`None`) is not cached.
#[cached_tower(config = "sessions", key = "{token}")]
fn load_session(token: &str) -> Option<Session> {
    std::thread::sleep(Duration::from_millis(20)); // a session store lookup
    token
        .strip_prefix("tok-")
        .and_then(|id| id.parse().ok())
        .map(|user_id| Session { user_id, token: token.to_owned() })
}

fn timed<T: std::fmt::Debug>(label: &str, call: impl FnOnce() -> T) {
    let started = Instant::now();
    let value = call();
    println!("{label:<28} {:>8.3} ms  {value:?}", started.elapsed().as_secs_f64() * 1e3);
}

fn main() -> cache_tower::Result<()> {
    let names = registry::register_file(TOWERS)?;
    println!("registered from towers.json: {names:?}");

    if std::env::var("REDIS_URL").is_ok_and(|url| !url.is_empty()) {
        // Registering a name again replaces the tower: "users" becomes memory over Redis.
        let names = registry::register_file(REDIS_TOWERS)?;
        println!("REDIS_URL is set: registered from towers.redis.json: {names:?} (memory over Redis)");
        if let Some(users) = registry::get("users") {
            // Start from an empty namespace, so the first call below is a miss on every run.
            // If Redis is down, say so and go on: the memory layer still caches.
            if let Err(err) = users.flush() {
                println!("could not empty the Redis namespace, going on: {err}");
            }
        }
    } else {
        println!("REDIS_URL is not set: every tower runs on memory only");
    }

    for name in registry::names() {
        let layers = registry::get(&name).map(|tower| tower.get_layers()).unwrap_or_default();
        let layers: Vec<String> =
            layers.iter().map(|layer| format!("{} (namespace {:?})", layer.kind(), layer.namespace())).collect();
        println!("tower {name:?}: {}", layers.join(" over "));
    }

    println!();
    timed("load_user(7), first call", || load_user(7));
    timed("load_user(7), second call", || load_user(7));
    timed("load_session(tok-7), first", || load_session("tok-7"));
    timed("load_session(tok-7), second", || load_session("tok-7"));
    timed("load_session(bogus), first", || load_session("bogus"));
    timed("load_session(bogus), second", || load_session("bogus"));

    // The towers are ordinary CacheTowers: look one up to use it directly.
    if let Some(users) = registry::get("users") {
        // Keys are the tower's keys; each layer adds its namespace (layer 0 stores "user:7").
        println!("\n\"users\" layer 0 holds key \"7\": {}", users.get_layers()[0].exists("7")?);
        for layer in users.stats() {
            println!("\"users\" layer {} ({}): {} hits, {} misses", layer.layer, layer.kind, layer.hits, layer.misses);
        }
    }

    // A mistake in the file: nothing is registered, and the error says where it is.
    let bad = r#"{"reports": [{"adapter": "memory"}, {"adapter": "memory", "params": {"maxsize": "big"}}]}"#;
    if let Err(err) = registry::register_json(bad) {
        println!("\na bad file: {err}");
        println!("  tower {:?}, layer {:?}, field {:?}", err.tower(), err.layer(), err.field());
        println!("  \"reports\" registered: {}", registry::get("reports").is_some());
    }
    Ok(())
}
