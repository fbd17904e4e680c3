//! `get_or_set` of a present key on one thread: the hit path of get-or-compute, where the
//! computation must not run. cache-tower (FIFO and S3-FIFO layers) against moka (TinyLFU) and
//! quick_cache. Every cache is bounded to [`BOUND`] entries and holds the 10,000 users.

use cache_tower::adapter::EvictionPolicy;
use std::convert::Infallible;
use std::hint::black_box;

use super::caches::{self, BOUND, MOKA_TINY_LFU, QUICK_CACHE_POLICY};
use super::{BoxResult, Scenario, measure_ns_per_op, versus};
use crate::data::{Dataset, load_user, loads};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memory/get-or-set-hit", run };

fn run(data: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let mut notes = Vec::new();
    let tower = caches::tower(caches::memory(BOUND, EvictionPolicy::Fifo), data, &mut notes)?;
    let s3_fifo = caches::tower(caches::memory(BOUND, EvictionPolicy::S3Fifo), data, &mut notes)?;
    let moka = caches::moka(BOUND, false, data, &mut notes);
    let quick = caches::quick_cache(BOUND, data, &mut notes);

    let keys = &data.keys;
    let contenders = [
        Contender::per_op("cache-tower `get_or_set`, FIFO", |i| {
            black_box(tower.get_or_set(&keys[i], || load_user(&keys[i])));
        }),
        Contender::per_op("cache-tower `get_or_set`, S3-FIFO (`policy: \"s3-fifo\"`)", |i| {
            black_box(s3_fifo.get_or_set(&keys[i], || load_user(&keys[i])));
        }),
        // `get_with_by_ref` rather than `get_with`: it takes `&str` like ours, no key clone.
        Contender::per_op(format!("{MOKA_TINY_LFU} `get_with_by_ref`"), |i| {
            black_box(moka.get_with_by_ref(keys[i].as_str(), || load_user(&keys[i])));
        }),
        Contender::per_op(format!("{QUICK_CACHE_POLICY} `get_or_insert_with`"), |i| {
            black_box(quick.get_or_insert_with(keys[i].as_str(), || Ok::<_, Infallible>(load_user(&keys[i]))).ok());
        }),
    ];
    let loads_before = loads();
    let measured = measure_ns_per_op(&contenders, data, settings);
    if loads() != loads_before {
        let note = format!("warning: get_or_set ran {} computations: some calls missed", loads() - loads_before);
        eprintln!("  {note}");
        notes.push(note);
    }
    let scenario =
        |policy| format!("get_or_set hit, 1 thread, {policy}, bound {BOUND} entries (ns/op, lower is better)");
    let mut rows = versus(&scenario("S3-FIFO"), &measured[1], &measured[2..]);
    rows.extend(versus(&scenario("FIFO"), &measured[0], &measured[2..]));
    Ok(Outcome { rows, notes, ..Outcome::default() })
}
