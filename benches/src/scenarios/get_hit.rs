//! `get` of a present key on one thread: cache-tower's L0 hit (a clone of the typed value)
//! against moka, quick_cache and a `#[cached]` memoized function.

use std::hint::black_box;

use cache_tower::MemoryAdapter;
use cached::proc_macro::cached;

use super::caches::{self, CACHED, MOKA, QUICK_CACHE};
use super::{BoxResult, Scenario, measure_ns_per_op, versus};
use crate::data::{Dataset, ENTRIES, User, load_user, loads};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memory/get-hit", run };

/// What a user of `cached` writes: the function body runs on a miss, the macro's unbounded
/// store answers hits. The key is the `&str` argument, owned (the store needs a `String`).
#[cached(key = "String", convert = r#"{ key.to_owned() }"#)]
fn cached_user(key: &str) -> User {
    load_user(key)
}

fn run(data: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let mut notes = Vec::new();
    let tower = caches::tower(MemoryAdapter::new(), data, &mut notes)?;
    let moka = caches::moka(None, data, &mut notes);
    let quick = caches::quick_cache(2 * ENTRIES, data, &mut notes);
    for key in &data.keys {
        cached_user(key);
    }
    caches::check_hits(CACHED, data, &mut notes, |key| {
        let before = loads();
        cached_user(key);
        loads() == before
    });

    let (keys, users) = (&data.keys, &data.users);
    let contenders = [
        Contender::per_op("cache-tower `get`", |i| {
            let _ = black_box(tower.get::<User>(&keys[i]));
        }),
        Contender::per_op(format!("{MOKA} `get`"), |i| {
            black_box(moka.get(keys[i].as_str()));
        }),
        Contender::per_op(format!("{QUICK_CACHE} `get`"), |i| {
            black_box(quick.get(keys[i].as_str()));
        }),
        Contender::per_op(format!("{CACHED} `#[cached]` hit"), |i| {
            black_box(cached_user(&keys[i]));
        }),
        // The floor every cache above pays: a clone of the value, read in the same random order.
        Contender::per_op("baseline: `User::clone`, no cache", |i| {
            black_box(users[i].clone());
        }),
    ];
    let measured = measure_ns_per_op(&contenders, data, settings);
    // `measured` follows `contenders`: cache-tower, three peers, the baseline.
    notes.push(format!(
        "get hit baseline: cloning the `User` alone, in the same random key order, costs {}; \
         every figure of the get rows includes it.",
        measured[4].figure
    ));
    let rows = versus("get hit, 1 thread (ns/op, lower is better)", &measured[0], &measured[1..4]);
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
