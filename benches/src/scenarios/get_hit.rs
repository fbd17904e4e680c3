//! `get` of a present key on one thread: cache-tower's L0 hit (a clone of the typed value),
//! FIFO, LRU and S3-FIFO, against moka (TinyLFU and LRU), quick_cache and a `#[cached(max_size)]` memoized
//! function, every cache bounded to [`BOUND`] entries and holding the 10,000 users (every read
//! hits; checked after filling).

use cache_tower::adapter::EvictionPolicy;
use std::hint::black_box;

use cached::proc_macro::cached;

use super::caches::{self, BOUND, CACHED_LRU, MOKA_LRU, MOKA_TINY_LFU, QUICK_CACHE_POLICY};
use super::{BoxResult, Scenario, measure_ns_per_op, versus};
use crate::data::{Dataset, User, load_user, loads};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memory/get-hit", run };

// The attribute below needs a literal.
const _: () = assert!(BOUND == 12_500);

/// What a user of `cached` writes for a bounded cache: the function body runs on a miss, the
/// macro's `LruCache` of 12,500 entries answers hits. The key is the `&str` argument, owned.
#[cached(max_size = 12500, key = "String", convert = r#"{ key.to_owned() }"#)]
fn cached_user(key: &str) -> User {
    load_user(key)
}

fn run(data: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let mut notes = Vec::new();
    let fifo = caches::tower(caches::memory(BOUND, EvictionPolicy::Fifo), data, &mut notes)?;
    let lru = caches::tower(caches::memory(BOUND, EvictionPolicy::Lru), data, &mut notes)?;
    let s3_fifo = caches::tower(caches::memory(BOUND, EvictionPolicy::S3Fifo), data, &mut notes)?;
    let moka = caches::moka(BOUND, false, data, &mut notes);
    let moka_lru = caches::moka(BOUND, true, data, &mut notes);
    let quick = caches::quick_cache(BOUND, data, &mut notes);
    for key in &data.keys {
        cached_user(key);
    }
    caches::check_hits(CACHED_LRU, data, &mut notes, |key| {
        let before = loads();
        cached_user(key);
        loads() == before
    });

    let (keys, users) = (&data.keys, &data.users);
    let contenders = [
        Contender::per_op("cache-tower `get`, FIFO", |i| {
            black_box(fifo.get::<User>(&keys[i]));
        }),
        Contender::per_op("cache-tower `get`, LRU (`lru: true`)", |i| {
            black_box(lru.get::<User>(&keys[i]));
        }),
        Contender::per_op("cache-tower `get`, S3-FIFO (`policy: \"s3-fifo\"`)", |i| {
            black_box(s3_fifo.get::<User>(&keys[i]));
        }),
        Contender::per_op(format!("{MOKA_TINY_LFU} `get`"), |i| {
            black_box(moka.get(keys[i].as_str()));
        }),
        Contender::per_op(format!("{MOKA_LRU} `get`"), |i| {
            black_box(moka_lru.get(keys[i].as_str()));
        }),
        Contender::per_op(format!("{QUICK_CACHE_POLICY} `get`"), |i| {
            black_box(quick.get(keys[i].as_str()));
        }),
        Contender::per_op(format!("{CACHED_LRU} `#[cached(max_size)]` hit"), |i| {
            black_box(cached_user(&keys[i]));
        }),
        // The floor every cache above pays: a clone of the value, read in the same random order.
        Contender::per_op("baseline: `User::clone`, no cache", |i| {
            black_box(users[i].clone());
        }),
    ];
    let loads_before = loads();
    let measured = measure_ns_per_op(&contenders, data, settings);
    if loads() != loads_before {
        let note = format!("warning: memory/get-hit: `#[cached]` ran its body {} times", loads() - loads_before);
        eprintln!("  {note}");
        notes.push(note);
    }
    // `measured` follows `contenders`: ours FIFO, LRU and S3-FIFO, four peers, the baseline.
    notes.push(format!(
        "get hit baseline: cloning the `User` alone, in the same random key order, costs {}; \
         every figure of the get rows includes it.",
        measured[7].figure
    ));
    let scenario = |policy| format!("get hit, 1 thread, {policy}, bound {BOUND} entries (ns/op, lower is better)");
    let mut rows = versus(&scenario("S3-FIFO"), &measured[2], &measured[3..7]);
    rows.extend(versus(&scenario("FIFO"), &measured[0], &measured[3..7]));
    rows.extend(versus(&scenario("LRU"), &measured[1], &measured[3..7]));
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
