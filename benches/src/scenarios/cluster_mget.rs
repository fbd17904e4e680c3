//! `mget` of 1,000 present keys from a Redis Cluster on one thread, the keys of each batch spread
//! over every master: a Redis-only tower on the cluster (a read per hash slot, the slots of one
//! master in one pipeline, every master at once, each pipeline routed by redis-rs's async
//! cluster connection; then a JSON decode per value, into an `IndexMap` of every requested key,
//! in request order) against the hand-written best a
//! client can do, with one `MultiplexedConnection` per master and the slot map read once at
//! set-up (`CLUSTER SLOTS`):
//!
//! * per-node pipelines: each key's slot computed, the keys grouped by the master that serves
//!   them, one pipeline of `GET`s per master, all masters at once, each value decoded and put
//!   back in request order;
//! * the same with a `PTTL` after each `GET` (what a read needing every key's TTL sends; more
//!   than the Redis-only tower asks for, so it is shown, not held to the bar);
//! * sequential: the `GET` pipelines sent one master after another.
//!
//! One more row tells the tower's own cost from redis-rs's: redis-rs's async cluster connection
//! sent one plain `MGET` of the batch (split by slot by redis-rs), driven by `block_on` of a
//! current-thread runtime, + decode.
//!
//! Bars: ours ≤ 1.15x the per-node `GET` pipelines, and faster than the sequential ones.

use std::hint::black_box;

use cache_tower::CacheTower;
use redis::{Pipeline, Value};

use super::cluster_support::{self, Nodes, RAW_ASYNC, RAW_NODES};
use super::redis_support::{self, COUNTED_OPS, Failures};
use super::{BoxResult, Scenario, measure_micros_per_op, versus};
use crate::data::{Dataset, User};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "cluster/mget-1000", run };

/// Keys per `mget`.
const BATCH: usize = 1_000;

/// The bar: ours / the per-node pipelines.
const BAR: f64 = 1.15;

struct Clients {
    tower: CacheTower,
    nodes: Nodes,
    at_once: Failures,
    with_ttls: Failures,
    sequential: Failures,
    /// Runs the raw async cluster connection.
    runtime: tokio::runtime::Runtime,
    connection: redis::cluster_async::ClusterConnection,
    split: Failures,
}

impl Clients {
    /// `GET` (with `ttls`, `GET` + `PTTL`) of every key of `batch`, one pipeline per master, all
    /// at once or one master after another; each value decoded, in request order.
    fn raw_mget(&self, batch: &[&str], ttls: bool, at_once: bool, failures: &Failures) -> Vec<Option<User>> {
        let groups = self.nodes.group(batch.iter().copied());
        let pipelines: Vec<Pipeline> = groups
            .iter()
            .map(|group| {
                let mut pipeline = redis::pipe();
                for &index in group {
                    pipeline.cmd("GET").arg(batch[index]);
                    if ttls {
                        pipeline.cmd("PTTL").arg(batch[index]);
                    }
                }
                pipeline
            })
            .collect();
        let mut users: Vec<Option<User>> = vec![None; batch.len()];
        let replies = self.nodes.send::<Vec<Value>>(&pipelines, at_once);
        for (group, reply) in groups.iter().zip(replies) {
            let Some(values) = failures.check(reply) else { continue };
            let step = if ttls { 2 } else { 1 };
            if values.len() != group.len() * step {
                failures.add();
                continue;
            }
            for (&index, replies) in group.iter().zip(values.chunks(step)) {
                let json = match &replies[0] {
                    Value::BulkString(json) => Some(json),
                    _ => None,
                };
                if ttls && !matches!(replies[1], Value::Int(_)) {
                    failures.add();
                }
                users[index] = failures.found(Ok(json)).and_then(|json| failures.decode(json));
            }
        }
        users
    }
}

/// Operation `i` reads batch `i % batches.len()`: 1,000 distinct keys.
fn contenders<'a>(clients: &'a Clients, batches: &'a [Vec<&'a str>]) -> Vec<Contender<'a>> {
    vec![
        Contender::per_op(format!("cache-tower `mget` of {BATCH} (Redis-only tower on the cluster)"), move |i| {
            black_box(clients.tower.mget::<User, _>(&batches[i % batches.len()]));
        }),
        Contender::per_op(format!("{RAW_NODES}: a `GET` pipeline per master, at once + decode"), move |i| {
            black_box(clients.raw_mget(&batches[i % batches.len()], false, true, &clients.at_once));
        }),
        Contender::per_op(format!("{RAW_NODES}: a `GET` + `PTTL` pipeline per master, at once + decode"), move |i| {
            black_box(clients.raw_mget(&batches[i % batches.len()], true, true, &clients.with_ttls));
        }),
        Contender::per_op(format!("{RAW_NODES}: a `GET` pipeline per master, one after another + decode"), move |i| {
            black_box(clients.raw_mget(&batches[i % batches.len()], false, false, &clients.sequential));
        }),
        Contender::per_op(
            format!("{RAW_ASYNC}: one `MGET` of {BATCH}, split by slot by redis-rs + decode"),
            move |i| {
                let batch = &batches[i % batches.len()];
                let mut connection = clients.connection.clone();
                let reply = clients.runtime.block_on(async {
                    redis::cmd("MGET").arg(batch.as_slice()).query_async::<Vec<Option<Vec<u8>>>>(&mut connection).await
                });
                let users: Vec<Option<User>> = clients
                    .split
                    .check(reply)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|json| clients.split.found(Ok(json)).and_then(|json| clients.split.decode(&json)))
                    .collect();
                black_box(users);
            },
        ),
    ]
}

fn run(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let cluster = match services.cluster() {
        Ok(cluster) => cluster,
        Err(reason) => return Ok(cluster_support::skipped(SCENARIO.id, reason)),
    };
    let nodes = Nodes::connect(cluster, data)?;
    cluster_support::fill(&nodes, data)?;
    let batches: Vec<Vec<&str>> = redis_support::key_batches(data, BATCH);
    let mut notes = Vec::new();

    let runtime = cluster_support::runtime()?;
    let clients = Clients {
        tower: cluster_support::redis_only(cluster, None)?,
        nodes,
        at_once: Failures::default(),
        with_ttls: Failures::default(),
        sequential: Failures::default(),
        connection: cluster_support::raw_async(cluster, &runtime)?,
        runtime,
        split: Failures::default(),
    };
    let timed = contenders(&clients, &batches);
    let indices = redis_support::indices(data, redis_support::ops(settings, 100));
    let measured = measure_micros_per_op(&timed, indices, settings);
    let mut counter = cluster_support::Counter::new(&clients.nodes)?;
    let trips = counter.count_all(SCENARIO.id, &timed, redis_support::indices(data, COUNTED_OPS))?;
    notes.push(cluster_support::costs_note(SCENARIO.id, &clients.nodes));
    redis_support::check_tower("cache-tower `mget`", &clients.tower, true, &mut notes);
    clients.at_once.report(timed[1].name(), &mut notes);
    clients.with_ttls.report(timed[2].name(), &mut notes);
    clients.sequential.report(timed[3].name(), &mut notes);
    clients.split.report(timed[4].name(), &mut notes);

    notes.push(format!(
        "cluster/mget-1000: each batch has keys on all {} masters ({}) in {} hash slots on average; ours reads \
         each slot (a `GET` for a slot's lone key, an `MGET` for a slot of several) in one pipeline per master; \
         redis-rs splits the raw cluster connection's `MGET` into one `MGET` per slot. The `GET` + `PTTL` row \
         does more than ours (a Redis-only tower's `mget` asks for values only).",
        clients.nodes.masters(),
        keys_per_master(&clients.nodes, &batches),
        mean_slots(&batches),
    ));
    notes.push(cluster_support::bar_note(SCENARIO.id, &measured[0], &measured[1], BAR));
    notes.push(cluster_support::bar_note(SCENARIO.id, &measured[0], &measured[3], 1.0));

    let rows = versus(
        &format!("Redis Cluster mget of {BATCH} keys, 1 thread (µs/op, lower is better)"),
        &measured[0],
        &measured[1..],
    );
    Ok(Outcome { rows, notes, trips, ..Outcome::default() })
}

/// The keys per master of the first batch, as `a / b / c`.
fn keys_per_master(nodes: &Nodes, batches: &[Vec<&str>]) -> String {
    let groups = nodes.group(batches[0].iter().copied());
    groups.iter().map(|group| group.len().to_string()).collect::<Vec<_>>().join(" / ")
}

/// The mean number of distinct hash slots of a batch.
fn mean_slots(batches: &[Vec<&str>]) -> usize {
    let total: usize = batches
        .iter()
        .map(|batch| {
            let mut slots: Vec<u16> = batch.iter().map(|key| cluster_support::slot(key.as_bytes())).collect();
            slots.sort_unstable();
            slots.dedup();
            slots.len()
        })
        .sum();
    total / batches.len().max(1)
}
