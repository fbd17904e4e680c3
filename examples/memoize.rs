//! `#[cached_tower]`: memoize expensive functions through a named tower.
//!
//! Shows a plain function (first call slow, second answered by the cache), a `Result` function
//! (only `Ok` is cached), an `Option` function (only `Some` is cached), the `_invalidate` and
//! `_uncached` companions, and a method keyed on `self` (`"{self.region}:{id}"`).
//!
//! The functions use the tower registered as `"users"`: memory over Redis at `REDIS_URL`, or
//! memory only (saying so) when the variable is unset or unusable. With Redis down the functions
//! still cache in memory, `_invalidate` reports that Redis did not forget the key, and the stats
//! show the circuit breaker open; it exits 0 in every case.
//!
//! Each line says whether the body ran or the cache answered, then the time the call took. The
//! example empties its namespace in Redis (`cache-tower-example:memoize:`) first, so every run
//! starts cold and prints the same lines; only the `(took …)` timings change.
//!
//! ```sh
//! cargo run -p cache-tower-examples --bin memoize                                          # memory only
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p cache-tower-examples --bin memoize       # memory over Redis
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter, cached_tower, registry};
use serde::{Deserialize, Serialize};

mod support;
use support::{count, show_stats, took};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// How many times the bodies below really ran (the cache skips them on a hit), and how many
/// times they were called.
static QUERIES: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);

/// Every key this example writes to Redis is under this prefix.
const NAMESPACE: &str = "cache-tower-example:memoize:";

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

/// Runs `call`, printing whether the body ran, what it returned and how long it took.
fn timed<T: std::fmt::Debug>(label: &str, call: impl FnOnce() -> T) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    let (before, started) = (QUERIES.load(Ordering::Relaxed), Instant::now());
    let value = call();
    let elapsed = started.elapsed();
    let ran = if QUERIES.load(Ordering::Relaxed) > before { "body ran" } else { "cached" };
    println!("{label:<34} {ran:<9} {value:?} {}", took(elapsed));
}

fn users_tower() -> CacheTower {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().maxsize(10_000).lru(true).ttl(Duration::from_secs(60)).build());
    let url = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            println!("REDIS_URL is not set: tower \"users\" runs on memory only");
            return tower;
        }
    };
    // Building does not connect: a server that is down shows on the first call, not here.
    match RedisAdapter::builder().url(url).namespace(NAMESPACE).ttl(Duration::from_secs(300)).build() {
        Ok(redis) => {
            println!("tower \"users\": memory over Redis at {}", redis.endpoint());
            tower.add_layer(redis);
            // Start from an empty namespace, so the first calls below are misses on every run.
            // If Redis is down, say so and go on: the memory layer still caches.
            match tower.flush() {
                Ok(()) => println!("emptied {NAMESPACE:?} in Redis, so this run starts cold"),
                Err(err) => println!("could not empty {NAMESPACE:?} in Redis, going on: {}", err.report()),
            }
        }
        Err(err) => println!("REDIS_URL is set but unusable ({}): tower \"users\" runs on memory only", err.report()),
    }
    tower
}

fn main() {
    // Without this, the functions would still work: they would run uncached (and log a warning).
    registry::register("users", users_tower());

    println!("\n-- a plain function");
    timed("load_user(7), first call", || load_user(7));
    timed("load_user(7), second call", || load_user(7));
    timed("load_user(8), another key", || load_user(8));

    println!("\n-- companions");
    // Removes user:7 from every layer; an error means a layer (Redis) could not, the others did.
    match load_user_invalidate(7) {
        Ok(()) => println!("load_user_invalidate(7): forgotten by every layer"),
        // Redis refused the connection, or its open circuit breaker skipped it (which of the two
        // depends on how long ago it last failed): either way, only memory forgot the key.
        Err(err) if err.is_connection() || err.is_timeout() || err.is_skipped() => {
            println!("load_user_invalidate(7): forgotten by memory; Redis is unreachable and may still hold it");
        }
        Err(err) => println!("load_user_invalidate(7): forgotten by memory, not by Redis: {}", err.report()),
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

    println!(
        "\nthe bodies ran {} for {}",
        count(QUERIES.load(Ordering::Relaxed), "time", "times"),
        count(CALLS.load(Ordering::Relaxed), "call", "calls")
    );
    if let Some(users) = registry::get("users") {
        show_stats("", &users.stats());
    }
}
