use std::time::{Duration, Instant};

use cache_tower::cached_tower;

/// Cached in the built-in "default" tower (memory only), under a key made of the function's
/// path and its arguments.
#[cached_tower]
fn slow_square(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(200)); // a slow computation in real life
    n * n
}

fn main() {
    for attempt in 1..=2 {
        let started = Instant::now();
        let square = slow_square(12);
        // About 200 ms the first time; microseconds the second, from memory.
        println!("attempt {attempt}: {square} in {:?}", started.elapsed());
    }
}
