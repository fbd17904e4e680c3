//! `#[cached_tower]`: memoize expensive functions through a named tower.
//!
//! Shows a plain function (first call slow, second a memory hit), a `Result` function (only `Ok`
//! is cached), an `Option` function (only `Some` is cached), the `_invalidate` and `_uncached`
//! companions, and a method keyed on `self` (`"{self.region}:{id}"`).
//!
//! The functions use the tower registered as `"users"`: memory over Redis at `REDIS_URL`, or
//! memory only (saying so) when the variable is unset.
//!
//! ```sh
//! cargo run -p cache-tower-examples --bin memoize                                          # memory only
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p cache-tower-examples --bin memoize       # memory over Redis
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter, cached_tower, registry};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// How many times the bodies below really ran (the cache skips them on a hit), and how many
/// times they were called.
static QUERIES: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

fn slow_query() {
    QUERIES.fetch_add(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(50));
}

/// A plain result: always cached, under `user:{id}`.
#[cached_tower(config = "users", key = "user:{id}")]
fn load_user(id: u64) -> User {
    slow_query();
    User { id, name: format!("user {id}") }
}

/// A `Result`: an `Ok` is cached, an `Err` goes back to the caller and is not stored.
#[cached_tower(config = "users", key = "profile:{id}")]
fn load_profile(id: u64) -> Result<String, String> {
    slow_query();
    if id == 0 { Err("there is no user 0".to_owned()) } else { Ok(format!("profile of user {id}")) }
}

/// An `Option`: a `Some` is cached, a `None` is not (add `cache_none = true` to cache it too).
#[cached_tower(config = "users", key = "email:{email}")]
fn find_by_email(email: &str) -> Option<User> {
    slow_query();
    (email == "ada@example.com").then(|| User { id: 1, name: "Ada".into() })
}

/// A directory per region: the receiver is not part of a key unless the template names it.
struct Directory {
    region: String,
}

impl Directory {
    #[cached_tower(config = "users", key = "{self.region}:{id}")]
    fn lookup(&self, id: u64) -> User {
        slow_query();
        User { id, name: format!("user {id} of {}", self.region) }
    }
}

/// Runs `call`, printing what it returned, how long it took and whether the body ran.
fn timed<T: std::fmt::Debug>(label: &str, call: impl FnOnce() -> T) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    let (before, started) = (QUERIES.load(Ordering::Relaxed), Instant::now());
    let value = call();
    let elapsed = started.elapsed();
    let ran = if QUERIES.load(Ordering::Relaxed) > before { "body ran" } else { "cached" };
    println!("{label:<34} {:>9.3} ms  {ran:<8}  {value:?}", elapsed.as_secs_f64() * 1e3);
}

fn users_tower() -> cache_tower::Result<CacheTower> {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().maxsize(10_000).lru(true).ttl(Duration::from_secs(60)).build());
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let redis = RedisAdapter::builder()
                .url(url)
                .namespace("cache-tower-example:memoize:")
                .ttl(Duration::from_secs(300))
                .build()?;
            println!("tower \"users\": memory over Redis at {}", redis.endpoint());
            tower.add_layer(redis);
            // Start from an empty namespace, so the first calls below are misses on every run.
            // If Redis is down, say so and go on: the memory layer still caches.
            if let Err(err) = tower.flush() {
                println!("could not empty the Redis namespace, going on: {err}");
            }
        }
        _ => println!("REDIS_URL is not set: tower \"users\" runs on memory only"),
    }
    Ok(tower)
}

fn main() -> cache_tower::Result<()> {
    // Without this, the functions would still work: they would run uncached (and log a warning).
    registry::register("users", users_tower()?);

    println!("\n-- a plain function");
    timed("load_user(7), first call", || load_user(7));
    timed("load_user(7), second call", || load_user(7));
    timed("load_user(8), another key", || load_user(8));

    println!("\n-- companions");
    // Removes user:7 from every layer; an error means a layer (Redis) could not, the others did.
    if let Err(err) = load_user_invalidate(7) {
        println!("load_user_invalidate(7): {err}");
    }
    timed("load_user(7) after _invalidate", || load_user(7));
    timed("load_user_uncached(7)", || load_user_uncached(7));
    timed("load_user(7), still cached", || load_user(7));

    println!("\n-- Result: only Ok is cached");
    timed("load_profile(7), first call", || load_profile(7));
    timed("load_profile(7), second call", || load_profile(7));
    timed("load_profile(0), first call", || load_profile(0));
    timed("load_profile(0), second call", || load_profile(0));

    println!("\n-- Option: only Some is cached");
    timed("find_by_email(ada), first call", || find_by_email("ada@example.com"));
    timed("find_by_email(ada), second call", || find_by_email("ada@example.com"));
    timed("find_by_email(bob), first call", || find_by_email("bob@example.com"));
    timed("find_by_email(bob), second call", || find_by_email("bob@example.com"));

    println!("\n-- a method keyed on self.region");
    let (eu, us) = (Directory { region: "eu".into() }, Directory { region: "us".into() });
    timed("eu.lookup(7), first call", || eu.lookup(7));
    timed("eu.lookup(7), second call", || eu.lookup(7));
    timed("us.lookup(7), another region", || us.lookup(7));

    println!("\nthe bodies ran {} times for {} calls", QUERIES.load(Ordering::Relaxed), CALLS.load(Ordering::Relaxed));
    if let Some(users) = registry::get("users") {
        for layer in users.stats() {
            println!(
                "layer {} ({}): {} hits, {} misses, {} backfills, {} errors",
                layer.layer, layer.kind, layer.hits, layer.misses, layer.backfills, layer.errors
            );
        }
    }
    Ok(())
}
