//! `mset` of 1,000 keys into a Redis Cluster on one thread, each with a TTL, the keys of each
//! batch spread over every master: a Redis-only tower on the cluster whose layer has a TTL (the
//! keys grouped by hash slot: a plain `SET .. PX` for a slot's lone key, one atomic Lua script
//! call, `EVALSHA`, for a slot of several; the slots of one master in one pipeline, every master
//! at once, each pipeline routed by redis-rs's async cluster connection) against the hand-written best a client can do, with one
//! `MultiplexedConnection` per master and the slot map read once at set-up (`CLUSTER SLOTS`):
//!
//! * per-node pipelines: each key's slot computed, the keys grouped by the master that serves
//!   them, one pipeline of `SET key value PX ttl` per master (not atomic), all masters at once;
//! * sequential: the same pipelines sent one master after another.
//!
//! Every contender encodes each value as JSON; ours also clones each value, because `mset` takes
//! them by value. Bars: ours ≤ 1.15x the per-node pipelines, and faster than the sequential ones.

use std::hint::black_box;

use cache_tower::CacheTower;
use redis::Pipeline;

use super::cluster_support::{self, Nodes, RAW_NODES};
use super::redis_support::{self, COUNTED_OPS, Failures, WRITE_TTL};
use super::{BoxResult, Scenario, measure_micros_per_op, versus};
use crate::data::Dataset;
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "cluster/mset-1000", run };

/// Keys per `mset`.
const BATCH: usize = 1_000;

/// The bar: ours / the per-node pipelines.
const BAR: f64 = 1.15;

struct Clients {
    tower: CacheTower,
    nodes: Nodes,
    at_once: Failures,
    sequential: Failures,
}

impl Clients {
    /// `SET key json PX ttl` of every user of `batch`, one pipeline per master, all at once or
    /// one master after another.
    fn raw_mset(&self, data: &Dataset, batch: &[usize], at_once: bool, failures: &Failures) {
        let ttl_ms = WRITE_TTL.as_millis() as u64;
        let groups = self.nodes.group(batch.iter().map(|&n| data.keys[n].as_str()));
        let mut pipelines: Vec<Pipeline> = Vec::with_capacity(groups.len());
        for group in &groups {
            let mut pipeline = redis::pipe();
            for &index in group {
                let n = batch[index];
                match serde_json::to_vec(&data.users[n]) {
                    Ok(json) => {
                        pipeline.cmd("SET").arg(data.keys[n].as_str()).arg(json).arg("PX").arg(ttl_ms).ignore();
                    }
                    Err(_) => return failures.add(),
                }
            }
            pipelines.push(pipeline);
        }
        for reply in self.nodes.send::<()>(&pipelines, at_once) {
            failures.check(reply);
        }
    }
}

/// Operation `i` writes batch `i % batches.len()`: 1,000 distinct keys.
fn contenders<'a>(clients: &'a Clients, data: &'a Dataset, batches: &'a [Vec<usize>]) -> Vec<Contender<'a>> {
    let (keys, users) = (&data.keys, &data.users);
    vec![
        Contender::per_op(format!("cache-tower `mset` of {BATCH} (Redis-only tower on the cluster, TTL)"), move |i| {
            let batch = &batches[i % batches.len()];
            let items = batch.iter().map(|&n| (keys[n].as_str(), users[n].clone()));
            black_box(clients.tower.mset(items).is_ok());
        }),
        Contender::per_op(format!("{RAW_NODES}: a pipeline of `SET .. PX` per master, at once"), move |i| {
            clients.raw_mset(data, &batches[i % batches.len()], true, &clients.at_once);
        }),
        Contender::per_op(format!("{RAW_NODES}: a pipeline of `SET .. PX` per master, one after another"), move |i| {
            clients.raw_mset(data, &batches[i % batches.len()], false, &clients.sequential);
        }),
    ]
}

fn run(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let cluster = match services.cluster() {
        Ok(cluster) => cluster,
        Err(reason) => return Ok(cluster_support::skipped(SCENARIO.id, reason)),
    };
    let batches = redis_support::batches(BATCH);
    let mut notes = Vec::new();

    let clients = Clients {
        tower: cluster_support::redis_only(cluster, Some(WRITE_TTL))?,
        nodes: Nodes::connect(cluster, data)?,
        at_once: Failures::default(),
        sequential: Failures::default(),
    };
    let timed = contenders(&clients, data, &batches);
    let indices = redis_support::indices(data, redis_support::ops(settings, 100));
    let measured = measure_micros_per_op(&timed, indices, settings);
    let mut counter = cluster_support::Counter::new(&clients.nodes)?;
    let trips = counter.count_all(SCENARIO.id, &timed, redis_support::indices(data, COUNTED_OPS))?;
    notes.push(cluster_support::costs_note(SCENARIO.id, &clients.nodes));
    redis_support::check_tower("cache-tower `mset`", &clients.tower, false, &mut notes);
    clients.at_once.report(timed[1].name(), &mut notes);
    clients.sequential.report(timed[2].name(), &mut notes);

    let slots = {
        let mut slots: Vec<u16> = batches[0].iter().map(|&n| cluster_support::slot(data.keys[n].as_bytes())).collect();
        slots.sort_unstable();
        slots.dedup();
        slots.len()
    };
    notes.push(format!(
        "cluster/mset-1000: each batch has keys on all {} masters in {slots} hash slots (the first batch); ours \
         writes each slot atomically (a plain `SET .. PX` for a slot's lone key, one `EVALSHA` for a slot of \
         several; every key with its TTL from the start), one pipeline per master; the raw pipelines are not \
         atomic. Ours clones each value (`mset` takes values by value).",
        clients.nodes.masters()
    ));
    notes.push(cluster_support::bar_note(SCENARIO.id, &measured[0], &measured[1], BAR));
    notes.push(cluster_support::bar_note(SCENARIO.id, &measured[0], &measured[2], 1.0));

    let rows = versus(
        &format!("Redis Cluster mset of {BATCH} keys with TTL, 1 thread (µs/op, lower is better)"),
        &measured[0],
        &measured[1..],
    );
    Ok(Outcome { rows, notes, trips, ..Outcome::default() })
}
