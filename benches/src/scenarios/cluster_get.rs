//! `get` of a present key from a Redis Cluster on one thread, the keys spread over every master:
//! a tower whose only layer is Redis on the cluster (the top-layer path: one plain `GET` on one of
//! the layer's sync cluster connections, on the calling thread, routed by redis-rs (ADR 20); then
//! a JSON decode) against redis-rs's own cluster connections doing the same work:
//!
//! * the sync `cluster::ClusterConnection`: `GET` + `serde_json::from_slice::<User>`;
//! * the async `cluster_async::ClusterConnection`, driven by `block_on` of a current-thread tokio
//!   runtime (its tasks run on the measuring thread): `GET` + decode;
//! * the same async connection sending the pipeline `GET` + `PTTL` of the key + decode: what a
//!   read that needs the remaining TTL sends (a backfilling read of ours does); it does more than
//!   the Redis-only tower's plain `GET`, so it is shown, not held to the bar.
//!
//! The async row: the same tower's `get_async` (on the layer's async cluster connection, whose
//! tasks run on the layer's own thread), awaited by `block_on` of a current-thread runtime,
//! against the raw async cluster connection's `GET` + decode. Bar: ours ≤ 1.10x the raw `GET`.

use std::hint::black_box;
use std::sync::Mutex;

use cache_tower::CacheTower;

use super::cluster_support::{self, RAW_ASYNC, RAW_SYNC};
use super::redis_support::{self, COUNTED_OPS, Failures};
use super::{BoxResult, Scenario, measure_micros_per_op, versus};
use crate::data::{Dataset, User};
use crate::harness::{Contender, Settings};
use crate::report::Outcome;
use crate::services::{Cluster, Services};

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "cluster/get", run };

/// The bar: ours / the raw client's `GET`.
const BAR: f64 = 1.10;

struct Clients {
    tower: CacheTower,
    /// Runs the async contenders (ours and the raw async connection).
    runtime: tokio::runtime::Runtime,
    sync: Mutex<redis::cluster::ClusterConnection>,
    connection: redis::cluster_async::ClusterConnection,
    sync_failures: Failures,
    async_failures: Failures,
    pipeline_failures: Failures,
}

impl Clients {
    fn new(cluster: &Cluster) -> BoxResult<Self> {
        let runtime = cluster_support::runtime()?;
        let connection = cluster_support::raw_async(cluster, &runtime)?;
        Ok(Self {
            tower: cluster_support::redis_only(cluster, None)?,
            runtime,
            sync: cluster_support::raw_sync(cluster)?,
            connection,
            sync_failures: Failures::default(),
            async_failures: Failures::default(),
            pipeline_failures: Failures::default(),
        })
    }
}

fn contenders<'a>(clients: &'a Clients, data: &'a Dataset) -> Vec<Contender<'a>> {
    let keys = &data.keys;
    vec![
        Contender::per_op("cache-tower `get` (Redis-only tower on the cluster)", move |i| {
            black_box(clients.tower.get::<User>(&keys[i]));
        }),
        Contender::per_op(format!("{RAW_SYNC} `GET` + `serde_json::from_slice`"), move |i| {
            let reply = redis::cmd("GET")
                .arg(keys[i].as_str())
                .query::<Option<Vec<u8>>>(&mut *cluster_support::lock(&clients.sync));
            let json = clients.sync_failures.found(reply);
            black_box(json.and_then(|json| clients.sync_failures.decode::<User>(&json)));
        }),
        Contender::per_op(format!("{RAW_ASYNC} `GET` + decode (`block_on`)"), move |i| {
            let mut connection = clients.connection.clone();
            let reply = clients.runtime.block_on(async {
                redis::cmd("GET").arg(keys[i].as_str()).query_async::<Option<Vec<u8>>>(&mut connection).await
            });
            let json = clients.async_failures.found(reply);
            black_box(json.and_then(|json| clients.async_failures.decode::<User>(&json)));
        }),
        Contender::per_op(format!("{RAW_ASYNC} pipeline `GET` + `PTTL` + decode (`block_on`)"), move |i| {
            let mut connection = clients.connection.clone();
            let reply = clients.runtime.block_on(async {
                let key = keys[i].as_str();
                redis::pipe()
                    .cmd("GET")
                    .arg(key)
                    .cmd("PTTL")
                    .arg(key)
                    .query_async::<(Option<Vec<u8>>, i64)>(&mut connection)
                    .await
            });
            let (json, ttl) = match clients.pipeline_failures.check(reply) {
                Some((json, ttl)) => (clients.pipeline_failures.found(Ok(json)), ttl),
                None => (None, 0),
            };
            black_box((json.and_then(|json| clients.pipeline_failures.decode::<User>(&json)), ttl));
        }),
        Contender::per_op("cache-tower `get_async` (Redis-only tower on the cluster, `block_on`)", move |i| {
            black_box(clients.runtime.block_on(clients.tower.get_async::<User>(&keys[i])));
        }),
    ]
}

fn run(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let cluster = match services.cluster() {
        Ok(cluster) => cluster,
        Err(reason) => return Ok(cluster_support::skipped(SCENARIO.id, reason)),
    };
    let nodes = cluster_support::Nodes::connect(cluster, data)?;
    cluster_support::fill(&nodes, data)?;
    let mut notes = Vec::new();

    let clients = Clients::new(cluster)?;
    let timed = contenders(&clients, data);
    let indices = redis_support::indices(data, redis_support::ops(settings, 1));
    let per_master = nodes.group(indices.iter().map(|&i| data.keys[i as usize].as_str()));
    let measured = measure_micros_per_op(&timed, indices, settings);
    let mut counter = cluster_support::Counter::new(&nodes)?;
    let trips = counter.count_all(SCENARIO.id, &timed, redis_support::indices(data, COUNTED_OPS))?;
    notes.push(cluster_support::costs_note(SCENARIO.id, &nodes));
    redis_support::check_tower("cache-tower `get` / `get_async`", &clients.tower, true, &mut notes);
    clients.sync_failures.report(RAW_SYNC, &mut notes);
    clients.async_failures.report(&format!("{RAW_ASYNC} `GET`"), &mut notes);
    clients.pipeline_failures.report(&format!("{RAW_ASYNC} `GET` + `PTTL`"), &mut notes);
    let spread: Vec<String> = per_master.iter().map(|group| group.len().to_string()).collect();
    notes.push(format!(
        "cluster/get: {} reads per sample over {} masters ({} each); a Redis-only tower's `get` sends a plain \
         `GET`, so the `GET` + `PTTL` row does more than ours (it is what a read needing the key's TTL sends).",
        indices.len(),
        nodes.masters(),
        spread.join(" / ")
    ));
    notes.push(cluster_support::bar_note(SCENARIO.id, &measured[0], &measured[1], BAR));
    notes.push(cluster_support::bar_note(SCENARIO.id, &measured[4], &measured[2], BAR));

    let mut rows = versus("Redis Cluster get hit, 1 thread (µs/op, lower is better)", &measured[0], &measured[1..4]);
    rows.extend(versus(
        "Redis Cluster get hit, async on a current-thread runtime, 1 thread (µs/op, lower is better)",
        &measured[4],
        &measured[2..3],
    ));
    Ok(Outcome { rows, notes, trips, ..Outcome::default() })
}
