//! `set` of a present key on one thread (an overwrite: nothing is evicted), cloning the value
//! for every call as every contender must. cache-tower (FIFO and S3-FIFO layers) against moka
//! (TinyLFU) and quick_cache. Every cache is bounded to [`BOUND`] entries and holds the 10,000
//! users.

use cache_tower::adapter::EvictionPolicy;
use std::hint::black_box;

use super::caches::{self, BOUND, MOKA_TINY_LFU, QUICK_CACHE_POLICY};
use super::{BoxResult, Scenario, measure_ns_per_op, versus};
use crate::data::Dataset;
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memory/set-overwrite", run };

fn run(data: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let mut notes = Vec::new();
    let tower = caches::tower(caches::memory(BOUND, EvictionPolicy::Fifo), data, &mut notes)?;
    let s3_fifo = caches::tower(caches::memory(BOUND, EvictionPolicy::S3Fifo), data, &mut notes)?;
    let moka = caches::moka(BOUND, false, data, &mut notes);
    let quick = caches::quick_cache(BOUND, data, &mut notes);

    let (keys, users) = (&data.keys, &data.users);
    let contenders = [
        Contender::per_op("cache-tower `set`, FIFO", |i| {
            black_box(tower.set(&keys[i], users[i].clone()).is_ok());
        }),
        Contender::per_op("cache-tower `set`, S3-FIFO (`policy: \"s3-fifo\"`)", |i| {
            black_box(s3_fifo.set(&keys[i], users[i].clone()).is_ok());
        }),
        // moka and quick_cache take the key by value: the key clone is part of their call.
        Contender::per_op(format!("{MOKA_TINY_LFU} `insert`"), |i| {
            moka.insert(keys[i].clone(), users[i].clone());
        }),
        Contender::per_op(format!("{QUICK_CACHE_POLICY} `insert`"), |i| {
            quick.insert(keys[i].clone(), users[i].clone());
        }),
    ];
    let measured = measure_ns_per_op(&contenders, data, settings);
    let scenario =
        |policy| format!("set, overwriting, 1 thread, {policy}, bound {BOUND} entries (ns/op, lower is better)");
    let mut rows = versus(&scenario("S3-FIFO"), &measured[1], &measured[2..]);
    rows.extend(versus(&scenario("FIFO"), &measured[0], &measured[2..]));
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
