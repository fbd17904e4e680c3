//! A two-level tower built in code: memory over Redis at `REDIS_URL`, or memory only (saying
//! so) when the variable is unset or unusable.
//!
//! It shows what the tower does when Redis is down, and goes on as a service would (a cache must
//! never make the app less available): reads are misses (the value is computed and served from
//! memory), explicit writes update memory and return Redis's error, which the example prints,
//! and after three failures in a row the circuit breaker opens: the tower skips Redis, trying it
//! again every second. It exits 0 whether Redis is up, down or not configured.
//!
//! It empties its own namespace in Redis (`cache-tower-example:two_level:`) first, so every run
//! starts cold and prints the same lines; only the `(took …)` timings change.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p cache-tower-examples --bin two_level
//! REDIS_URL=redis://127.0.0.1:1/0 cargo run -p cache-tower-examples --bin two_level   # Redis down
//! cargo run -p cache-tower-examples --bin two_level                                   # memory only
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter};
use serde::{Deserialize, Serialize};

mod support;
use support::{show_stats, took};

/// Every key this example writes to Redis is under this prefix.
const NAMESPACE: &str = "cache-tower-example:two_level:";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product {
    sku: String,
    price_cents: u64,
}

/// How many times `fetch_product` really ran (the cache skips it on a hit).
static FETCHES: AtomicUsize = AtomicUsize::new(0);

/// Stands in for a slow catalogue service.
fn fetch_product(sku: &str) -> Product {
    FETCHES.fetch_add(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(30));
    Product { sku: sku.to_owned(), price_cents: 1999 }
}

/// The Redis layer at `REDIS_URL`, or `None` (saying why) to run on memory only.
fn redis_layer() -> Option<RedisAdapter> {
    let url = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            println!("REDIS_URL is not set: running on memory only");
            return None;
        }
    };
    // Building does not connect: a server that is down shows on the first call, not here.
    match RedisAdapter::builder().url(url).namespace(NAMESPACE).ttl(Duration::from_secs(300)).build() {
        Ok(redis) => {
            println!("two levels: memory over Redis at {}", redis.endpoint());
            Some(redis)
        }
        Err(err) => {
            println!("REDIS_URL is set but unusable ({}): running on memory only", err.report());
            None
        }
    }
}

/// Prints what an explicit write did: every layer took it, or the error of the one that did not
/// (the layers above it were updated all the same).
fn show_write(what: &str, result: cache_tower::Result<()>) {
    match result {
        Ok(()) => println!("{what}: done in every layer"),
        Err(err) => println!("{what}: done in memory, not in Redis: {}", err.report()),
    }
}

fn main() {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().maxsize(10_000).ttl(Duration::from_secs(60)).build());
    let with_redis = match redis_layer() {
        Some(redis) => {
            tower.add_layer(redis);
            true
        }
        None => false,
    };
    if with_redis {
        // Start cold: empty this example's namespace (only it: other keys in the database stay).
        match tower.flush() {
            Ok(()) => println!("emptied {NAMESPACE:?} in Redis, so this run starts cold"),
            Err(err) => println!("could not empty {NAMESPACE:?} in Redis, going on: {}", err.report()),
        }
    }

    // With Redis down, round 1 is a miss in both layers (a failing layer is a miss, not an
    // error): the product is fetched, and served from memory afterwards.
    println!("\n-- get_or_set, three rounds");
    for round in 1..=3 {
        let (before, started) = (FETCHES.load(Ordering::Relaxed), Instant::now());
        let product = tower.get_or_set("product:42", || fetch_product("42"));
        let source =
            if FETCHES.load(Ordering::Relaxed) > before { "fetched from the catalogue" } else { "from the cache" };
        println!("round {round}: {product:?}, {source} {}", took(started.elapsed()));
    }

    // With Redis down, the flush and round 1's read have failed (round 1 did not then try to
    // store into the layer that had just failed it): the set is the third failure in a row, which
    // opens the circuit breaker, so the delete right after it (microseconds later; the breaker lets
    // a call through again after a second) skips Redis, and its error says so.
    println!("\n-- explicit writes");
    show_write("set product:43", tower.set("product:43", Product { sku: "43".into(), price_cents: 2500 }));
    show_write("delete product:42", tower.delete("product:42"));

    println!("\n-- reads never fail: a layer that cannot answer is a miss");
    println!("get product:43: {:?}", tower.get::<Product>("product:43"));
    println!("get product:42: {:?}", tower.get::<Product>("product:42"));

    println!("\n-- stats");
    show_stats("", &tower.stats());
}
