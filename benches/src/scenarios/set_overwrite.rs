//! `set` of a present key on one thread (an overwrite: nothing is evicted), cloning the value
//! for every call as every contender must.

use std::hint::black_box;

use cache_tower::MemoryAdapter;

use super::caches::{self, MOKA, QUICK_CACHE};
use super::{BoxResult, Scenario, measure_ns_per_op, versus};
use crate::data::{Dataset, ENTRIES};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memory/set-overwrite", run };

fn run(data: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let mut notes = Vec::new();
    let tower = caches::tower(MemoryAdapter::new(), data, &mut notes)?;
    let moka = caches::moka(None, data, &mut notes);
    let quick = caches::quick_cache(2 * ENTRIES, data, &mut notes);

    let (keys, users) = (&data.keys, &data.users);
    let contenders = [
        Contender::per_op("cache-tower `set`", |i| {
            black_box(tower.set(&keys[i], users[i].clone()).is_ok());
        }),
        // moka and quick_cache take the key by value: the key clone is part of their call.
        Contender::per_op(format!("{MOKA} `insert`"), |i| {
            moka.insert(keys[i].clone(), users[i].clone());
        }),
        Contender::per_op(format!("{QUICK_CACHE} `insert`"), |i| {
            quick.insert(keys[i].clone(), users[i].clone());
        }),
    ];
    let measured = measure_ns_per_op(&contenders, data, settings);
    let rows = versus("set, overwriting, 1 thread (ns/op, lower is better)", &measured[0], &measured[1..]);
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
