//! The Redis layer on real topologies: a 3-master / 3-replica Redis Cluster and a master with
//! two replicas watched by three sentinels, started by the test support on free loopback ports
//! and stopped afterwards. (The layer's behaviours on a cluster, from the same bodies as on one
//! server, are `redis.rs`'s `on_a_cluster`.)
//!
//! * coherence: a library write and an external write on every master reach every instance's
//!   memory layer;
//! * a killed cluster master and a Sentinel failover under 8 threads + 8 tasks of load: no
//!   panic, no call past the layer's timeout + 50 ms, writes back within the failover time + 2 s,
//!   no stale read afterwards;
//! * a slot migrated to another master while the tower serves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_tower::{CacheTower, LoadOptions, MemoryAdapter, RedisAdapter};
use cache_tower_tests::redis_cluster::TestCluster;
use cache_tower_tests::redis_sentinel::{MASTER_NAME, TestSentinel};
use cache_tower_tests::redis_server::unique_namespace;

/// Each operation's bound in the fault tests.
const TIMEOUT: Duration = Duration::from_millis(250);
/// What a call may take past [`TIMEOUT`].
const SLACK: Duration = Duration::from_millis(50);

fn cluster_layer(cluster: &TestCluster, namespace: &str) -> RedisAdapter {
    RedisAdapter::builder()
        .cluster(cluster.seeds())
        .namespace(namespace)
        .ttl(Duration::from_secs(600))
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .build()
        .expect("building the cluster layer")
}

fn sentinel_layer(sentinel: &TestSentinel, namespace: &str) -> RedisAdapter {
    RedisAdapter::builder()
        .sentinel(MASTER_NAME, sentinel.sentinels())
        .namespace(namespace)
        .ttl(Duration::from_secs(600))
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .build()
        .expect("building the sentinel layer")
}

/// Memory over `redis`: an instance of a service.
fn instance(redis: RedisAdapter) -> CacheTower {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().maxsize(10_000).build());
    tower.add_layer(redis);
    tower
}

/// A plain redis-rs connection to the cluster, for external writes and checks.
fn raw_cluster(cluster: &TestCluster) -> redis::cluster::ClusterConnection {
    let nodes: Vec<String> = cluster.seeds().iter().map(|seed| format!("redis://{seed}")).collect();
    redis::cluster::ClusterClient::new(nodes).expect("cluster nodes").get_connection().expect("connecting")
}

/// Keys whose slots fall on every master (at least `per_master` on each).
fn keys_on_every_master(cluster: &TestCluster, namespace: &str, per_master: usize) -> Vec<String> {
    let masters = cluster.masters();
    let mut counts = vec![0usize; masters.len()];
    let mut keys = Vec::new();
    for i in 0.. {
        let key = format!("k{i}");
        let owner = cluster.master_of_key(&format!("{namespace}{key}"));
        let at = masters.iter().position(|&port| port == owner).expect("a master");
        counts[at] += 1;
        keys.push(key);
        if counts.iter().all(|&count| count >= per_master) {
            break;
        }
    }
    keys
}

/// Polls `check` until it holds, for up to `within`.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn writes_on_every_master_reach_every_instance() {
    let cluster = TestCluster::start();
    let ns = unique_namespace("cluster-coherence");
    let writer = instance(cluster_layer(&cluster, &ns));
    let reader = instance(cluster_layer(&cluster, &ns));
    // Both listeners subscribe on every master first (the first subscription clears memory).
    std::thread::sleep(Duration::from_millis(500));
    let keys = keys_on_every_master(&cluster, &ns, 3);

    for key in &keys {
        writer.set(key, 1u64).unwrap();
        assert_eq!(reader.get::<u64>(key), Some(1), "{key}: read through and kept in the reader's memory");
    }
    // A library write in the other instance.
    for key in &keys {
        writer.set(key, 2u64).unwrap();
    }
    for key in &keys {
        assert!(eventually(Duration::from_secs(1), || reader.get::<u64>(key) == Some(2)), "{key}: still stale");
    }
    // An external write, on whichever master owns each key.
    let mut raw = raw_cluster(&cluster);
    for key in &keys {
        redis::cmd("SET").arg(format!("{ns}{key}")).arg("3").exec(&mut raw).unwrap();
    }
    for key in &keys {
        assert!(
            eventually(Duration::from_secs(1), || reader.get::<u64>(key) == Some(3)),
            "{key}: external write missed"
        );
        assert!(
            eventually(Duration::from_secs(1), || writer.get::<u64>(key) == Some(3)),
            "{key}: external write missed"
        );
    }
}

/// What the workers of a fault test saw.
#[derive(Default)]
struct Load {
    calls: AtomicU64,
    failed: AtomicU64,
    /// The longest call, in microseconds.
    slowest_micros: AtomicU64,
}

impl Load {
    fn record<T>(&self, started: Instant, result: Result<T, cache_tower::Error>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.slowest_micros.fetch_max(micros, Ordering::Relaxed);
    }

    fn slowest(&self) -> Duration {
        Duration::from_micros(self.slowest_micros.load(Ordering::Relaxed))
    }
}

/// 8 threads and 8 tokio tasks reading and writing `keys` through `tower` until `stop`.
fn start_load(
    tower: &Arc<CacheTower>,
    keys: &Arc<Vec<String>>,
    stop: &Arc<AtomicBool>,
    load: &Arc<Load>,
) -> (Vec<std::thread::JoinHandle<()>>, tokio::runtime::Runtime, Vec<tokio::task::JoinHandle<()>>) {
    let threads = (0..8)
        .map(|worker| {
            let (tower, keys, stop, load) = (tower.clone(), keys.clone(), stop.clone(), load.clone());
            std::thread::spawn(move || {
                let mut i = worker;
                while !stop.load(Ordering::Relaxed) {
                    let key = &keys[i % keys.len()];
                    let started = Instant::now();
                    if i % 4 == 0 {
                        load.record(started, tower.set(key, i as u64));
                    } else {
                        let _ = tower.get::<u64>(key);
                        load.record(started, Ok(()));
                    }
                    i += 8;
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let tasks = (0..8)
        .map(|worker| {
            let (tower, keys, stop, load) = (tower.clone(), keys.clone(), stop.clone(), load.clone());
            runtime.spawn(async move {
                let mut i = worker + 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    let key = &keys[i % keys.len()];
                    let started = Instant::now();
                    if i % 4 == 0 {
                        load.record(started, tower.set_async(key, i as u64).await);
                    } else {
                        let _ = tower.get_async::<u64>(key).await;
                        load.record(started, Ok(()));
                    }
                    i += 8;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect();
    (threads, runtime, tasks)
}

/// Stops the load and checks that no worker panicked.
fn stop_load(
    stop: &AtomicBool,
    (threads, runtime, tasks): (
        Vec<std::thread::JoinHandle<()>>,
        tokio::runtime::Runtime,
        Vec<tokio::task::JoinHandle<()>>,
    ),
) {
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("a worker thread panicked");
    }
    runtime.block_on(async {
        for task in tasks {
            task.await.expect("a worker task panicked");
        }
    });
}

/// Writes `value` to `key` until it works, for up to `within`; the time it took.
fn first_write_within(tower: &CacheTower, key: &str, value: u64, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if tower.set(key, value).is_ok() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn a_killed_cluster_master_under_load() {
    let mut cluster = TestCluster::start();
    let ns = unique_namespace("cluster-kill");
    let tower = Arc::new(instance(cluster_layer(&cluster, &ns)));
    let other = instance(cluster_layer(&cluster, &ns));
    let keys = Arc::new(keys_on_every_master(&cluster, &ns, 20));
    for key in keys.iter() {
        tower.set(key, 0u64).unwrap();
    }
    let (stop, load) = (Arc::new(AtomicBool::new(false)), Arc::new(Load::default()));
    let workers = start_load(&tower, &keys, &stop, &load);
    std::thread::sleep(Duration::from_millis(300));

    let victim_key =
        keys.iter().find(|key| cluster.master_of_key(&format!("{ns}{key}")) == cluster.masters()[0]).unwrap().clone();
    let victim = cluster.masters()[0];
    let killed = Instant::now();
    cluster.kill_node(victim);
    let failover = cluster.wait_for_failover(victim, Duration::from_secs(30));
    let resumed = first_write_within(&tower, &victim_key, 7, failover + Duration::from_secs(2))
        .map(|_| killed.elapsed())
        .unwrap_or_else(|| {
            panic!("writes to the dead master's slots did not resume within the failover time ({failover:?}) + 2 s")
        });
    std::thread::sleep(Duration::from_millis(300));
    stop_load(&stop, workers);
    assert!(
        load.slowest() <= TIMEOUT + SLACK,
        "a call took {:?}, past the timeout {TIMEOUT:?} + {SLACK:?} ({} calls, {} failed)",
        load.slowest(),
        load.calls.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed)
    );
    eprintln!("failover {failover:?}, writes back {resumed:?} after the kill, slowest call {:?}", load.slowest());

    // No stale read afterwards: the last write is what every instance reads.
    for key in keys.iter() {
        tower.set(key, 99u64).unwrap();
    }
    for key in keys.iter() {
        assert!(eventually(Duration::from_secs(1), || tower.get::<u64>(key) == Some(99)), "{key}");
        assert!(
            eventually(Duration::from_secs(1), || other.get::<u64>(key) == Some(99)),
            "{key} stale in the other instance"
        );
    }
}

#[test]
fn a_slot_migrated_while_serving() {
    let cluster = TestCluster::start();
    let ns = unique_namespace("cluster-migrate");
    let tower = Arc::new(instance(cluster_layer(&cluster, &ns)));
    let other = instance(cluster_layer(&cluster, &ns));
    let keys = Arc::new(keys_on_every_master(&cluster, &ns, 10));
    for key in keys.iter() {
        tower.set(key, 0u64).unwrap();
    }
    let moved = keys[0].clone();
    let mut raw = raw_cluster(&cluster);
    let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(format!("{ns}{moved}")).query(&mut raw).unwrap();
    let from = cluster.master_of_key(&format!("{ns}{moved}"));
    let to = *cluster.masters().iter().find(|&&port| port != from).unwrap();

    let (stop, load) = (Arc::new(AtomicBool::new(false)), Arc::new(Load::default()));
    let workers = start_load(&tower, &keys, &stop, &load);
    std::thread::sleep(Duration::from_millis(200));
    cluster.migrate_slot(slot, to);
    std::thread::sleep(Duration::from_millis(300));
    stop_load(&stop, workers);
    assert_eq!(cluster.master_of_key(&format!("{ns}{moved}")), to, "the slot moved");
    assert!(load.slowest() <= TIMEOUT + SLACK, "a call took {:?}", load.slowest());

    // Reads and writes of the moved key go to its new owner; every instance agrees.
    tower.set(&moved, 42u64).unwrap();
    assert!(eventually(Duration::from_secs(1), || other.get::<u64>(&moved) == Some(42)));
    let stored: String = redis::cmd("GET").arg(format!("{ns}{moved}")).query(&mut raw).unwrap();
    assert_eq!(stored, "42");
    tower.mset(keys.iter().map(|key| (key.as_str(), 5u64))).unwrap();
    let read = other.mget::<u64, _>(&keys);
    assert!(read.values().all(|value| *value == Some(5)), "{read:?}");
}

#[test]
fn a_sentinel_failover_under_load() {
    let mut sentinel = TestSentinel::start();
    let ns = unique_namespace("sentinel-failover");
    let tower = Arc::new(instance(sentinel_layer(&sentinel, &ns)));
    let other = instance(sentinel_layer(&sentinel, &ns));
    let keys: Arc<Vec<String>> = Arc::new((0..50).map(|i| format!("k{i}")).collect());
    for key in keys.iter() {
        tower.set(key, 0u64).unwrap();
        assert_eq!(other.get::<u64>(key), Some(0));
    }
    let (stop, load) = (Arc::new(AtomicBool::new(false)), Arc::new(Load::default()));
    let workers = start_load(&tower, &keys, &stop, &load);
    std::thread::sleep(Duration::from_millis(300));

    let old_master = sentinel.master_port();
    let killed = Instant::now();
    sentinel.kill_master();
    let new_master = sentinel.wait_for_failover(old_master, Duration::from_secs(30));
    let failover = killed.elapsed();
    assert_ne!(new_master, old_master);
    first_write_within(&tower, "after", 1, Duration::from_secs(2))
        .unwrap_or_else(|| panic!("writes did not resume within the failover time ({failover:?}) + 2 s"));
    std::thread::sleep(Duration::from_millis(300));
    stop_load(&stop, workers);
    assert!(load.slowest() <= TIMEOUT + SLACK, "a call took {:?}", load.slowest());

    // The new master has the writes; both instances read them, not what their memory held.
    let mut raw = redis::Client::open(format!("redis://127.0.0.1:{new_master}/0")).unwrap().get_connection().unwrap();
    for key in keys.iter() {
        tower.set(key, 77u64).unwrap();
        let stored: String = redis::cmd("GET").arg(format!("{ns}{key}")).query(&mut raw).unwrap();
        assert_eq!(stored, "77", "{key} went to the new master");
    }
    for key in keys.iter() {
        assert!(
            eventually(Duration::from_secs(2), || other.get::<u64>(key) == Some(77)),
            "{key} stale after the failover"
        );
    }
}

#[test]
fn sentinels_and_data_nodes_with_passwords() {
    let set_up = TestSentinel::start_with_auth("t0psecret");
    let ns = unique_namespace("sentinel-auth");
    let layer = |sentinel_password: &str| {
        RedisAdapter::builder()
            .sentinel(MASTER_NAME, set_up.sentinels())
            .sentinel_password(sentinel_password)
            .password("t0psecret")
            .namespace(&ns)
            .timeout(Duration::from_secs(2))
            .build()
            .expect("building the layer")
    };
    let tower = instance(layer("t0psecret"));
    tower.set("k", 1u64).unwrap();
    assert_eq!(instance(layer("t0psecret")).get::<u64>("k"), Some(1));

    // The sentinels refuse a wrong password: an error, which shows neither password.
    let refused = instance(layer("wrong-one"));
    let err = refused.set("k", 2u64).expect_err("the sentinels refused the password");
    let shown = format!("{err} {err:?} {}", err.report());
    assert!(!shown.contains("t0psecret") && !shown.contains("wrong-one"), "{shown}");
    assert!(format!("{:?}", layer("t0psecret")).contains("sentinels"), "the endpoint names the sentinels");
}

#[test]
fn batches_over_every_master_round_trip_on_both_paths_and_survive_a_script_flush() {
    // A batch spread over the slot space (lone keys: `GET` / plain `SET`) with a hash-tagged
    // group (one slot of many keys: `MGET` / the atomic script), one pipeline per master.
    let cluster = TestCluster::start();
    let ns = unique_namespace("cluster-batches");
    let tower = instance(cluster_layer(&cluster, &ns));
    let other = instance(cluster_layer(&cluster, &ns));
    let mut keys = keys_on_every_master(&cluster, &ns, 40);
    keys.extend((0..20).map(|i| format!("{{tagged}}:{i}")));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut raw = raw_cluster(&cluster);

    for round in 0..3u64 {
        if round == 2 {
            // Every node forgets the layer's scripts: the next `mset` loads them again.
            let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut raw).unwrap();
        }
        let items = keys.iter().enumerate().map(|(i, key)| (key.as_str(), round * 1000 + i as u64));
        if round == 1 {
            runtime.block_on(tower.mset_async(items)).unwrap();
        } else {
            tower.mset(items).unwrap();
        }
        let expected: Vec<Option<u64>> = (0..keys.len()).map(|i| Some(round * 1000 + i as u64)).collect();
        // The writer reads its own writes at once; the other instance once the invalidations of
        // its older copies have arrived (within the coherence figures).
        let read = |tower: &CacheTower| -> Vec<Option<u64>> {
            let read = if round == 1 {
                runtime.block_on(tower.mget_async::<u64, _>(&keys))
            } else {
                tower.mget::<u64, _>(&keys)
            };
            read.values().copied().collect()
        };
        assert_eq!(read(&tower), expected, "round {round}, the writer");
        assert!(eventually(Duration::from_secs(1), || read(&other) == expected), "round {round}, the other instance");
        let stored: Option<String> = redis::cmd("GET").arg(format!("{ns}{{tagged}}:3")).query(&mut raw).unwrap();
        assert_eq!(stored.as_deref(), Some((round * 1000 + keys.len() as u64 - 17).to_string().as_str()));
    }
    // One `UNLINK` per slot, every master's in one pipeline: gone for both instances.
    tower.delete_many(&keys).unwrap();
    assert!(tower.mget::<u64, _>(&keys).values().all(Option::is_none), "deleted for the writer");
    assert!(
        eventually(Duration::from_secs(1), || other.mget::<u64, _>(&keys).values().all(Option::is_none)),
        "deleted for the other instance"
    );
    for layered in [&tower, &other] {
        assert!(layered.stats().iter().all(|layer| layer.errors == 0), "{:?}", layered.stats());
    }
}

#[test]
fn a_clear_reaches_every_instance_on_a_cluster_with_and_without_a_hash_tag() {
    let cluster = TestCluster::start();
    for ns in [unique_namespace("cluster-clear"), format!("{{{}}}", unique_namespace("cluster-clear-tagged"))] {
        let writer = instance(cluster_layer(&cluster, &ns));
        let reader = instance(cluster_layer(&cluster, &ns));
        std::thread::sleep(Duration::from_millis(500));
        // A hash-tagged namespace puts every key on one master.
        let keys = if ns.starts_with('{') {
            (0..10).map(|n| format!("k{n}")).collect()
        } else {
            keys_on_every_master(&cluster, &ns, 3)
        };
        let items: Vec<(&str, u64)> = keys.iter().map(|key| (key.as_str(), 1)).collect();
        writer.mset(items).unwrap();
        for key in &keys {
            assert!(eventually(Duration::from_secs(1), || reader.get::<u64>(key) == Some(1)), "{ns}{key}: never read");
        }

        writer.clear().unwrap();

        for key in &keys {
            assert!(eventually(Duration::from_secs(1), || reader.get::<u64>(key).is_none()), "{ns}{key}: not cleared");
        }
        let items: Vec<(&str, u64)> = keys.iter().map(|key| (key.as_str(), 2)).collect();
        writer.mset(items).unwrap();
        let read = reader.mget::<u64, _>(&keys);
        assert!(
            read.values().all(|value| *value == Some(2)),
            "{ns}: a batch over every master after the clear: {read:?}"
        );
        let mut raw = raw_cluster(&cluster);
        let stored: Option<String> = redis::cmd("GET").arg(format!("{ns}\0g1\0{}", keys[0])).query(&mut raw).unwrap();
        assert_eq!(stored.as_deref(), Some("2"), "{ns}: written under generation 1");
        if ns.starts_with('{') {
            let slot = cluster.slot_of_key(&ns);
            assert_eq!(
                cluster.slot_of_key(&format!("{ns}\0g1\0{}", keys[0])),
                slot,
                "a hash-tagged namespace keeps its slot"
            );
        }
    }
}

#[test]
fn a_tag_invalidation_reaches_every_instance_on_a_cluster_with_records_on_several_masters() {
    let cluster = TestCluster::start();
    let ns = unique_namespace("cluster-tags");
    let writer = instance(cluster_layer(&cluster, &ns));
    let reader = instance(cluster_layer(&cluster, &ns));
    let bare = CacheTower::new();
    bare.add_layer(cluster_layer(&cluster, &ns));
    std::thread::sleep(Duration::from_millis(500));
    let keys = keys_on_every_master(&cluster, &ns, 2);
    // Tag records spread over the slots too: each key carries its own tag and a shared one.
    for (n, key) in keys.iter().enumerate() {
        writer.set_with(key, n as u64, &LoadOptions::new().tags([format!("own:{n}"), "shared".to_owned()])).unwrap();
    }
    writer.set("plain", 7u64).unwrap();
    for key in &keys {
        assert!(eventually(Duration::from_secs(1), || reader.get::<u64>(key).is_some()), "{ns}{key}: never read");
    }
    let read = bare.mget::<u64, _>(&keys);
    assert!(read.values().all(Option::is_some), "a batch checks the records of every slot: {read:?}");

    writer.invalidate_tag("own:0").unwrap();
    assert!(eventually(Duration::from_secs(1), || reader.get::<u64>(&keys[0]).is_none()), "own:0 reached the reader");
    assert_eq!(bare.get::<u64>(&keys[0]), None);
    assert_eq!(reader.get::<u64>(&keys[1]), Some(1), "another tag's entry stays");

    writer.invalidate_tag("shared").unwrap();
    for key in &keys {
        assert!(eventually(Duration::from_secs(1), || reader.get::<u64>(key).is_none()), "{ns}{key}: not invalidated");
    }
    assert!(bare.mget::<u64, _>(&keys).values().all(Option::is_none));
    assert_eq!(reader.get::<u64>("plain"), Some(7), "untagged entries stay");
}

#[test]
fn a_frozen_cluster_master_under_load() {
    // A master that stops answering (SIGSTOP) for less than the cluster's node timeout: no
    // failover, its slots just hang until it is thawed. Calls on its keys time out; no call
    // waits past the timeout, on the blocking path's sync connections (a Redis-only tower: each
    // blocking `get` and `set` is one command) or on the async connection.
    let mut cluster = TestCluster::start();
    let ns = unique_namespace("cluster-freeze");
    let tower = Arc::new(CacheTower::new());
    tower.add_layer(cluster_layer(&cluster, &ns));
    let keys = Arc::new(keys_on_every_master(&cluster, &ns, 20));
    for key in keys.iter() {
        tower.set(key, 0u64).unwrap();
    }
    let (stop, load) = (Arc::new(AtomicBool::new(false)), Arc::new(Load::default()));
    let workers = start_load(&tower, &keys, &stop, &load);
    std::thread::sleep(Duration::from_millis(300));

    let victim = cluster.masters()[0];
    let victim_key = keys.iter().find(|key| cluster.master_of_key(&format!("{ns}{key}")) == victim).unwrap().clone();
    cluster.freeze_node(victim);
    std::thread::sleep(Duration::from_millis(700));
    cluster.thaw_node(victim);
    first_write_within(&tower, &victim_key, 7, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("writes to the frozen master's slots did not resume within 3 s of thawing it"));
    std::thread::sleep(Duration::from_millis(300));
    stop_load(&stop, workers);
    assert!(
        load.slowest() <= TIMEOUT + SLACK,
        "a call took {:?}, past the timeout {TIMEOUT:?} + {SLACK:?} ({} calls, {} failed)",
        load.slowest(),
        load.calls.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed)
    );
    eprintln!(
        "slowest call {:?} ({} calls, {} failed)",
        load.slowest(),
        load.calls.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed)
    );

    // No stale read afterwards: the last write is what is read, on both paths.
    for key in keys.iter() {
        tower.set(key, 99u64).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for key in keys.iter() {
        assert_eq!(tower.get::<u64>(key), Some(99), "{key}");
        assert_eq!(runtime.block_on(tower.get_async::<u64>(key)), Some(99), "{key}");
    }
}

/// `CLIENT KILL` of every normal client of every node (the layer's connections, sync and
/// async), then a pause of 20 ms, as between a server closing an idle connection and the next
/// call (see `redis_connections.rs`).
fn kill_clients_on_every_node(cluster: &TestCluster) {
    for seed in cluster.seeds() {
        let client = redis::Client::open(format!("redis://{seed}")).expect("a node URL");
        let mut raw = client.get_connection_with_timeout(Duration::from_secs(5)).expect("connecting to a node");
        let _: u64 = redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
            .query(&mut raw)
            .expect("CLIENT KILL");
    }
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn blocking_single_commands_survive_killed_connections_and_a_script_flush() {
    // Every blocking call of one command (`SET`, `GET`, `SET NX`, the unlock script) goes out on
    // one of the layer's sync cluster connections when one is idle; connections the servers
    // closed, and scripts they forgot, cost no error.
    let cluster = TestCluster::start();
    let ns = unique_namespace("cluster-single");
    let layer = RedisAdapter::builder()
        .cluster(cluster.seeds())
        .namespace(&ns)
        .ttl(Duration::from_secs(600))
        // Off: its connections would be killed too.
        .invalidation(false)
        .timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("building the cluster layer");
    let tower = CacheTower::new();
    tower.add_layer(layer.clone());
    let keys = keys_on_every_master(&cluster, &ns, 5);
    // Calls for a while, so that the layer's sync connections are made (in the background) and used.
    let warm_up = |value: u64| {
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(200) {
            for key in &keys {
                assert_eq!(tower.get::<u64>(key), Some(value), "{key}");
            }
        }
    };
    for key in &keys {
        tower.set(key, 1u64).unwrap();
    }
    warm_up(1);
    for round in 0..3u64 {
        kill_clients_on_every_node(&cluster);
        for key in &keys {
            tower.set(key, round).expect("a set after a kill");
        }
        kill_clients_on_every_node(&cluster);
        for key in &keys {
            assert_eq!(tower.get::<u64>(key), Some(round), "{key}, a get after a kill");
        }
        warm_up(round);
    }

    // Every node forgets the layer's scripts: the unlock script is loaded again.
    use cache_tower::adapter::CacheAdapter as _;
    let mut raw = raw_cluster(&cluster);
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut raw).unwrap();
    assert!(layer.lock("locked", "one", Duration::from_secs(10)).unwrap(), "a free lock is taken");
    assert!(!layer.lock("locked", "two", Duration::from_secs(10)).unwrap(), "a held lock is not");
    layer.unlock("locked", "one").unwrap();
    assert!(layer.lock("locked", "two", Duration::from_secs(10)).unwrap(), "the unlock released it");
    assert!(tower.stats().iter().all(|layer| layer.errors == 0), "{:?}", tower.stats());
}
