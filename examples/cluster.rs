//! Memory over a Redis Cluster at `REDIS_CLUSTER_NODES` (comma-separated `host:port` seed
//! nodes), or memory only (saying so) when the variable is unset or unusable.
//!
//! It writes and reads a batch of keys that the cluster spreads over its masters (the layer
//! splits `mset` and `mget` by hash slot and sends each master its share at once), then the same
//! through a namespace with a hash tag, which puts every key of the layer on one slot: one
//! command per batch, atomic `mset`, and no sharding. It exits 0 whether the cluster is up, down
//! or not configured, and empties its own namespaces first, so every run prints the same lines
//! (only the `(took …)` timings change).
//!
//! ```sh
//! REDIS_CLUSTER_NODES=127.0.0.1:7000,127.0.0.1:7001 cargo run -p cache-tower-examples --bin cluster
//! cargo run -p cache-tower-examples --bin cluster      # memory only
//! ```

use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter};

mod support;
use support::{show_stats, took};

/// The keys of the spread layer: hashed over every slot.
const SPREAD: &str = "cache-tower-example:cluster:";
/// The keys of the pinned layer: `{…}` is a hash tag, so only `cluster-pinned` is hashed and
/// every key of the layer lands on one slot.
const PINNED: &str = "cache-tower-example:{cluster-pinned}:";

/// The seed nodes of `REDIS_CLUSTER_NODES`, or `None` (saying why) to run on memory only.
fn seed_nodes() -> Option<Vec<String>> {
    match std::env::var("REDIS_CLUSTER_NODES") {
        Ok(nodes) if !nodes.trim().is_empty() => Some(nodes.split(',').map(|node| node.trim().to_owned()).collect()),
        _ => {
            println!("REDIS_CLUSTER_NODES is not set: running on memory only");
            None
        }
    }
}

/// An instance of the service: memory, over the cluster under `namespace` when there is one.
fn instance(nodes: Option<&[String]>, namespace: &str) -> CacheTower {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().maxsize(10_000).ttl(Duration::from_secs(60)).build());
    if let Some(nodes) = nodes {
        // Building does not connect: a cluster that is down shows on the first call.
        let redis = RedisAdapter::builder().cluster(nodes.iter().cloned()).namespace(namespace);
        match redis.ttl(Duration::from_secs(300)).build() {
            Ok(redis) => tower.add_layer(redis),
            Err(err) => println!("REDIS_CLUSTER_NODES is set but unusable ({}): memory only", err.report()),
        }
    }
    tower
}

/// Writes 1,000 keys through one instance and reads them through another (whose memory is
/// empty, so they come from the cluster).
fn batch(nodes: Option<&[String]>, namespace: &str) -> CacheTower {
    let writer = instance(nodes, namespace);
    if writer.get_layers().len() > 1 {
        match writer.flush() {
            Ok(()) => println!("emptied {namespace:?} on every master, so this run starts cold"),
            Err(err) => println!("could not empty {namespace:?}, going on: {}", err.report()),
        }
    }
    let keys: Vec<String> = (0..1_000).map(|i| format!("item:{i}")).collect();
    let started = Instant::now();
    match writer.mset(keys.iter().enumerate().map(|(i, key)| (key.as_str(), i as u64))) {
        Ok(()) => println!("mset of 1000 keys: done in every layer {}", took(started.elapsed())),
        Err(err) => println!("mset of 1000 keys: done in memory, not in Redis: {}", err.report()),
    }
    let reader = instance(nodes, namespace);
    let started = Instant::now();
    let read = reader.mget::<u64, _>(&keys);
    let found = read.values().filter(|value| value.is_some()).count();
    let in_order = read.keys().zip(&keys).all(|(read, asked)| read == asked);
    println!(
        "mget of 1000 keys by another instance: {found} found, in request order: {in_order} {}",
        took(started.elapsed())
    );
    reader
}

fn main() {
    let nodes = seed_nodes();

    if let Some(nodes) = &nodes {
        println!("memory over a Redis Cluster seeded by {} nodes", nodes.len());
    }

    println!("\n-- keys spread over every master: each master gets its share at once");
    let spread = batch(nodes.as_deref(), SPREAD);
    show_stats("reader: ", &spread.stats());

    println!("\n-- one slot for the whole layer (a hash tag in the namespace): one command per batch");
    let pinned = batch(nodes.as_deref(), PINNED);
    show_stats("reader: ", &pinned.stats());
}
