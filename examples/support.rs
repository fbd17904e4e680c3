//! What the examples share: timings in the one form the examples test masks, counts in plain
//! words, and a tower's stats told from what is the same on every run. Not part of cache-tower:
//! copy what you need.

// Each example uses a part of this module.
#![allow(dead_code)]

use std::time::Duration;

use cache_tower::LayerStats;

/// A timing, always in this form: `(took 12.345 ms)` (the examples test masks exactly it).
pub fn took(elapsed: Duration) -> String {
    format!("(took {:.3} ms)", elapsed.as_secs_f64() * 1e3)
}

/// `n` with the singular or the plural: "1 hit", "2 hits", "0 hits".
pub fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

/// Prints a tower's stats in plain words, each line starting with `prefix`: how many reads the
/// cache answered, then each layer.
///
/// With Redis below a memory layer, the memory layer's counts are left out: a process keeps its
/// own writes in memory, but a write of a key soon after another may lose its copy depending on
/// timing (docs/adr/0013-a-process-keeps-its-own-writes.md), so which layer answers a read may
/// vary from run to run.
pub fn show_stats(prefix: &str, stats: &[LayerStats]) {
    // Every read asks layer 0 first; a read answered by any layer counts one hit there.
    let reads = stats.first().map_or(0, |top| top.hits + top.misses);
    let answered: u64 = stats.iter().map(|layer| layer.hits).sum();
    println!(
        "{prefix}{}: the cache answered {answered}, {} missed every layer",
        count(reads, "read", "reads"),
        reads - answered
    );
    let with_redis = stats.iter().any(|layer| layer.kind == "redis");
    for layer in stats {
        let place = format!("{prefix}layer {} ({})", layer.layer, layer.kind);
        if layer.kind == "redis" {
            let breaker = if layer.circuit_open {
                "circuit breaker open: Redis failed 3 times in a row, so the tower skips it and tries it \
                 again once a second has passed"
            } else {
                "circuit breaker closed: the tower calls Redis"
            };
            let failed = count(layer.errors, "call", "calls");
            println!("{place}: {failed} failed, {} skipped; {breaker}", count(layer.skipped, "call", "calls"));
        } else if with_redis {
            println!("{place}: hits and misses left out while Redis is below it");
        } else {
            println!(
                "{place}: {}, {}, {}, {}",
                count(layer.hits, "hit", "hits"),
                count(layer.misses, "miss", "misses"),
                count(layer.backfills, "backfill", "backfills"),
                count(layer.evictions, "eviction", "evictions"),
            );
        }
    }
}
