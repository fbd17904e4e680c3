//! Named towers registered at start-up from a JSON file, then used by name by memoized functions.
//!
//! `examples/towers.json` holds two towers: `"sessions"` and `"users"`, both memory only. When
//! `REDIS_URL` is set, the example also registers `examples/towers.redis.json`, whose `"users"`
//! tower (memory over Redis, the URL read from `REDIS_URL` through `"url_env"`, keys under
//! `cache-tower-example:registry_file:user:`) replaces the first one, and empties that namespace
//! so every run starts cold; when it is unset (or that file cannot be used), it says so and
//! `"users"` stays memory only. With Redis down the functions still cache in memory, and asking
//! the Redis layer directly whether it holds a key gets its error. It ends by showing the error a
//! mistake in such a file gets: it names the tower, the layer and the field.
//!
//! Each call says whether the body ran or the cache answered, then how long it took; the lines
//! are the same on every run but for the `(took …)` timings.
//!
//! ```sh
//! cargo run -p cache-tower-examples --bin registry_file                                      # memory only
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p cache-tower-examples --bin registry_file   # users over Redis
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_tower::{cached_tower, registry};
use serde::{Deserialize, Serialize};

mod support;
use support::{show_stats, took};

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

/// How many times the bodies below really ran (the cache skips them on a hit).
static QUERIES: AtomicU64 = AtomicU64::new(0);

/// Cached in the `"users"` tower, whose layers prefix the key with their namespace (`user:7`).
#[cached_tower(config = "users", key = "{id}")]
fn load_user(id: u64) -> User {
    QUERIES.fetch_add(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(50)); // a database query
    User { id, name: format!("user {id}") }
}

/// Cached in the `"sessions"` tower; an unknown token (`None`) is not cached.
#[cached_tower(config = "sessions", key = "{token}")]
fn load_session(token: &str) -> Option<Session> {
    QUERIES.fetch_add(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(20)); // a session store lookup
    token
        .strip_prefix("tok-")
        .and_then(|id| id.parse().ok())
        .map(|user_id| Session { user_id, token: token.to_owned() })
}

/// Runs `call`, printing whether the body ran, what it returned and how long it took.
fn timed<T: std::fmt::Debug>(label: &str, call: impl FnOnce() -> T) {
    let (before, started) = (QUERIES.load(Ordering::Relaxed), Instant::now());
    let value = call();
    let elapsed = started.elapsed();
    let ran = if QUERIES.load(Ordering::Relaxed) > before { "body ran" } else { "cached" };
    println!("{label:<28} {ran:<9} {value:?} {}", took(elapsed));
}

fn main() -> cache_tower::Result<()> {
    // The bundled file: an error here is a bug in the example, not an outage.
    let names = registry::register_file(TOWERS)?;
    println!("registered from towers.json: {}", names.join(", "));

    if std::env::var("REDIS_URL").is_ok_and(|url| !url.is_empty()) {
        // Registering a name again replaces the tower: "users" becomes memory over Redis. Building
        // it does not connect, so a Redis that is down shows on the first call, not here.
        match registry::register_file(REDIS_TOWERS) {
            Ok(names) => {
                println!(
                    "REDIS_URL is set: registered from towers.redis.json: {} (memory over Redis)",
                    names.join(", ")
                );
                if let Some(users) = registry::get("users") {
                    // Start from an empty namespace, so the first call below is a miss on every
                    // run. If Redis is down, say so and go on: the memory layer still caches.
                    match users.flush() {
                        Ok(()) => println!("emptied the Redis namespace of \"users\", so this run starts cold"),
                        Err(err) => {
                            println!("could not empty the Redis namespace of \"users\", going on: {}", err.report())
                        }
                    }
                }
            }
            Err(err) => println!("REDIS_URL is set but unusable ({}): \"users\" stays memory only", err.report()),
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
        // Keys are the tower's keys; each layer adds its namespace. Ask the bottom layer, which
        // every write reaches: with Redis below, the memory copy above it may have been lost to
        // a race between writes of one key (ADR 13), which varies from run to run.
        let layers = users.get_layers();
        if let Some((position, bottom)) = layers.iter().enumerate().next_back() {
            let place = format!("\"users\" layer {position} ({})", bottom.kind());
            match bottom.exists("7") {
                Ok(held) => {
                    println!("\n{place} holds key \"7\" (stored as {:?}): {held}", format!("{}7", bottom.namespace()))
                }
                Err(err) => println!("\n{place} could not say whether it holds key \"7\": {}", err.report()),
            }
        }
        show_stats("\"users\" ", &users.stats());
    }

    // A mistake in the file: nothing is registered, and the error says where it is.
    let bad = r#"{"reports": [{"adapter": "memory"}, {"adapter": "memory", "params": {"maxsize": "big"}}]}"#;
    if let Err(err) = registry::register_json(bad) {
        println!("\na bad file: {err}");
        let layer = err.layer().map_or_else(|| "none".to_owned(), |layer| layer.to_string());
        println!(
            "  its parts: tower {:?}, layer {layer}, field {:?}",
            err.tower().unwrap_or("none"),
            err.field().unwrap_or("none")
        );
        let registered = if registry::get("reports").is_some() { "registered" } else { "not registered" };
        println!("  \"reports\" is {registered}: a file is registered whole or not at all");
    }
    Ok(())
}
