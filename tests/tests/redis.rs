//! The Redis layer against a real `redis-server`: what it stores and where (JSON text under
//! namespace + key), TTLs (per layer, remaining TTL on reads, backfills that never outlive their
//! source), `mget`/`mset`/`delete`/`exists`/`flush` (namespace only, glob characters included),
//! one round trip per operation, and values it cannot read (corrupt JSON, wrong shape, a hash).
//!
//! Every behaviour is written once, over [`Calls`], and runs twice: through the blocking methods
//! (`blocking::*`) and through the `*_async` ones on a tokio runtime (`on_tokio::*`). The contents
//! of Redis are checked with a plain redis-rs connection ([`Raw`]), never through the adapter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter, adapter::CacheAdapter};
use cache_tower_tests::redis_server::{RedisServer, TestRedis, unique_namespace};
use cache_tower_tests::{User, peek, put};

mod both_paths;

use both_paths::{Calls, on_both_paths};

// The behaviours that need a server of their own (its `INFO` counts, its databases): one
// server, both paths.
on_both_paths! {
    mset_writes_every_key_with_its_ttl_in_one_command,
    flush_with_an_empty_namespace_empties_the_whole_database,
    get_mget_and_mset_are_one_round_trip_each,
}

/// The behaviours of the layer whatever its topology: `on_one_server::{blocking,on_tokio}::*`
/// (each test with a server of its own, or `REDIS_URL`), and all of them on one Redis Cluster
/// (three masters, three replicas, started once for the lot) in `on_a_cluster`, from the same
/// bodies.
macro_rules! on_every_topology {
    ($($behaviour:ident),+ $(,)?) => {
        mod on_one_server {
            mod blocking {
                $( #[test] fn $behaviour() {
                    let redis = cache_tower_tests::redis_server::TestRedis::new();
                    super::super::$behaviour(&crate::both_paths::Blocking, &super::super::Server::Single(&redis))
                } )+
            }
            mod on_tokio {
                $( #[test] fn $behaviour() {
                    let redis = cache_tower_tests::redis_server::TestRedis::new();
                    super::super::$behaviour(&crate::both_paths::OnTokio::new(), &super::super::Server::Single(&redis))
                } )+
            }
        }

        /// Every behaviour, on both paths, on one cluster.
        #[test]
        fn on_a_cluster() {
            let cluster = cache_tower_tests::redis_cluster::TestCluster::start();
            let server = Server::Cluster(cluster.seeds());
            let on_tokio = crate::both_paths::OnTokio::new();
            $(
                eprintln!("on a cluster: {}", stringify!($behaviour));
                $behaviour(&crate::both_paths::Blocking, &server);
                $behaviour(&on_tokio, &server);
            )+
        }
    };
}

on_every_topology! {
    values_are_json_text_under_namespace_and_key,
    layer_ttl_is_the_redis_ttl_and_zero_means_none,
    adapter_get_returns_the_time_the_key_has_left,
    backfill_into_memory_lives_no_longer_than_the_key_had_left_in_redis,
    mget_returns_every_key_and_backfills_only_the_layers_above_each_hit,
    backfilled_mset_keeps_each_keys_remaining_ttl,
    an_entrys_own_ttl_is_capped_by_each_layers_ttl,
    delete_and_exists,
    flush_deletes_only_the_namespace_even_with_glob_characters,
    corrupt_values_are_misses_and_get_or_set_overwrites_them,
    a_key_of_another_type_is_a_miss_not_a_fault,
    unusual_keys_round_trip,
}

/// Where a behaviour runs: one server, or a cluster (its seed nodes).
enum Server<'a> {
    Single(&'a TestRedis),
    Cluster(Vec<String>),
}

impl Server<'_> {
    /// A Redis layer on this server (see [`redis_layer`]).
    fn layer(&self, namespace: &str, ttl: Duration) -> RedisAdapter {
        let builder = match self {
            Server::Single(redis) => RedisAdapter::builder().url(redis.url()),
            Server::Cluster(seeds) => RedisAdapter::builder().cluster(seeds.clone()),
        };
        layer_settings(builder, namespace, ttl).build().expect("building the redis layer")
    }

    /// The layer's `params` in a JSON configuration.
    fn params(&self) -> serde_json::Value {
        match self {
            Server::Single(redis) => serde_json::json!({ "url": redis.url() }),
            Server::Cluster(seeds) => serde_json::json!({ "cluster": seeds }),
        }
    }

    /// A plain redis-rs connection to it.
    fn raw(&self) -> Raw {
        match self {
            Server::Single(redis) => Raw::connect(redis.url()),
            Server::Cluster(seeds) => {
                let nodes: Vec<String> = seeds.iter().map(|seed| format!("redis://{seed}")).collect();
                let client = redis::cluster::ClusterClient::new(nodes).expect("valid cluster nodes");
                Raw(Box::new(client.get_connection().expect("connecting to the test cluster")))
            }
        }
    }
}

// ===== support =====

/// A plain redis-rs connection (to one server or a cluster), to see what the adapter stored
/// without going through it.
struct Raw(Box<dyn redis::ConnectionLike>);

impl Raw {
    fn connect(url: &str) -> Self {
        let client = redis::Client::open(url).expect("a valid redis URL");
        Self(Box::new(client.get_connection().expect("connecting to the test redis")))
    }

    fn query<T: redis::FromRedisValue>(&mut self, args: &[&str]) -> T {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut *self.0).unwrap_or_else(|err| panic!("raw {args:?}: {err}"))
    }

    fn get(&mut self, key: &str) -> Option<String> {
        self.query(&["GET", key])
    }

    fn set(&mut self, key: &str, value: &str) {
        self.query::<()>(&["SET", key, value]);
    }

    fn set_px(&mut self, key: &str, value: &str, millis: u64) {
        self.query::<()>(&["SET", key, value, "PX", &millis.to_string()]);
    }

    fn pttl(&mut self, key: &str) -> i64 {
        self.query(&["PTTL", key])
    }

    fn exists(&mut self, key: &str) -> bool {
        self.query::<i64>(&["EXISTS", key]) == 1
    }

    /// How many of `keys` exist.
    fn count(&mut self, keys: impl IntoIterator<Item = String>) -> usize {
        let keys: Vec<String> = keys.into_iter().collect();
        let mut args = vec!["EXISTS"];
        args.extend(keys.iter().map(String::as_str));
        self.query(&args)
    }

    /// A field of `INFO <section>`, as a number.
    fn info(&mut self, section: &str, field: &str) -> u64 {
        let text: String = self.query(&["INFO", section]);
        text.lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
            .trim()
            .parse()
            .expect("a number")
    }

    /// How many reads from client sockets the server has done: one per round trip of a command
    /// that fits in one read (the `INFO` asking for it included).
    fn reads(&mut self) -> u64 {
        self.info("stats", "total_reads_processed")
    }
}

/// A Redis layer. The timeout is generous: a slow machine must not turn a reply into a miss here
/// (faults are the subject of `redis_outage.rs`). Cross-process invalidation is off: it evicts
/// local copies after every write, which these tests of the layer's own semantics (backfill,
/// TTLs, round trips) would see as noise; it has tests of its own (`coherence.rs`).
fn redis_layer(url: &str, namespace: &str, ttl: Duration) -> RedisAdapter {
    layer_settings(RedisAdapter::builder().url(url), namespace, ttl).build().expect("building the redis layer")
}

/// The settings of [`redis_layer`], for a builder that names its servers already.
fn layer_settings(
    builder: cache_tower::adapter::RedisAdapterBuilder,
    namespace: &str,
    ttl: Duration,
) -> cache_tower::adapter::RedisAdapterBuilder {
    builder
        .namespace(namespace)
        .ttl(ttl)
        .invalidation(false)
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
}

fn tower(layers: Vec<Arc<dyn CacheAdapter>>) -> CacheTower {
    let tower = CacheTower::new();
    tower.set_layers(layers);
    tower
}

fn only(redis: &RedisAdapter) -> CacheTower {
    tower(vec![Arc::new(redis.clone())])
}

fn over(memory: &MemoryAdapter, redis: &RedisAdapter) -> CacheTower {
    tower(vec![Arc::new(memory.clone()), Arc::new(redis.clone())])
}

/// Every layer answered every call: a fault would have been hidden as a miss.
#[track_caller]
fn assert_no_layer_failed(tower: &CacheTower) {
    for layer in tower.stats() {
        assert_eq!((layer.errors, layer.skipped), (0, 0), "layer {} failed: {layer:?}", layer.layer);
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("encoding a test value")
}

fn keys(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}")).collect()
}

const MINUTE: Duration = Duration::from_secs(60);

// ===== behaviours =====

fn values_are_json_text_under_namespace_and_key(api: &impl Calls, server: &Server) {
    let ns = unique_namespace("json");
    let redis = server.layer(&ns, Duration::ZERO);
    let tower = only(&redis);
    let mut raw = server.raw();

    api.set(&tower, "user:7", User::sample(7)).unwrap();
    api.mset(&tower, &[("user:8".to_owned(), User::sample(8))]).unwrap();

    for id in [7, 8] {
        let text = raw.get(&format!("{ns}user:{id}")).expect("stored under namespace + key");
        let stored: serde_json::Value = serde_json::from_str(&text).expect("the stored value is JSON text");
        assert_eq!(stored, serde_json::to_value(User::sample(id)).unwrap());
    }
    assert_eq!(raw.get("user:7"), None, "the namespace is part of the Redis key");

    // Another program writing JSON under the namespace is read like our own writes.
    raw.set(&format!("{ns}greeting"), "\"hello\"");
    assert_eq!(api.get::<String>(&tower, "greeting").as_deref(), Some("hello"));
    assert_eq!(api.get::<User>(&tower, "user:7"), Some(User::sample(7)));
    assert_no_layer_failed(&tower);
}

fn an_entrys_own_ttl_is_capped_by_each_layers_ttl(api: &impl Calls, server: &Server) {
    let mut raw = server.raw();
    let ns = unique_namespace("own-ttl");
    let memory = MemoryAdapter::builder().ttl(Duration::from_secs(20)).build();
    let tower = CacheTower::new();
    tower.add_layer(memory.clone());
    tower.add_layer(server.layer(&ns, MINUTE));

    api.set_with_ttl(&tower, "short", 1, Duration::from_secs(5)).unwrap();
    api.set_with_ttl(&tower, "long", 2, Duration::from_secs(600)).unwrap();
    api.set_with_ttl(&tower, "none", 3, Duration::ZERO).unwrap();
    let items = [("m1".to_owned(), 4), ("m2".to_owned(), 5)];
    api.mset_with_ttl(&tower, &items, Duration::from_secs(7)).unwrap();

    // Redis: the shorter of the entry's TTL and the layer's 60 s.
    for (key, low, high) in [("short", 4_000, 5_000), ("long", 58_000, 60_000), ("none", 58_000, 60_000)] {
        let pttl = raw.pttl(&format!("{ns}{key}"));
        assert!((low..=high).contains(&pttl), "{key}: PTTL {pttl} in Redis, expected {low}..={high}");
    }
    for key in ["m1", "m2"] {
        let pttl = raw.pttl(&format!("{ns}{key}"));
        assert!((6_000..=7_000).contains(&pttl), "{key}: PTTL {pttl} in Redis, expected about 7 s");
    }
    // Memory: the shorter of the entry's TTL and its own 20 s.
    let left = |key: &str| memory.get(key).unwrap().and_then(|entry| entry.ttl()).expect("a TTL in memory");
    assert!(left("short") <= Duration::from_secs(5) && left("short") > Duration::from_secs(4));
    assert!(left("long") <= Duration::from_secs(20) && left("long") > Duration::from_secs(19));
    assert!(left("none") <= Duration::from_secs(20) && left("none") > Duration::from_secs(19));
    assert!(left("m2") <= Duration::from_secs(7) && left("m2") > Duration::from_secs(6));
    assert_eq!(api.get::<i32>(&tower, "short"), Some(1));
    assert_no_layer_failed(&tower);

    // Longer than Redis can take, on a layer without a TTL: the largest TTL instead, no error.
    let ns = unique_namespace("own-ttl-max");
    let tower = only(&server.layer(&ns, Duration::ZERO));
    api.set_with_ttl(&tower, "forever", 1, Duration::MAX).expect("Duration::MAX is cache_tower's MAX_TTL");
    let pttl = raw.pttl(&format!("{ns}forever"));
    let max = i64::try_from(cache_tower::adapter::MAX_TTL.as_millis()).unwrap();
    assert!((max - 60_000..=max).contains(&pttl), "PTTL {pttl}, expected about {max}");
    assert_no_layer_failed(&tower);
}

fn layer_ttl_is_the_redis_ttl_and_zero_means_none(api: &impl Calls, server: &Server) {
    let mut raw = server.raw();

    let ns = unique_namespace("ttl");
    let tower = only(&server.layer(&ns, MINUTE));
    api.set(&tower, "one", 1).unwrap();
    api.mset(&tower, &[("two".to_owned(), 2), ("three".to_owned(), 3)]).unwrap();
    for key in ["one", "two", "three"] {
        let pttl = raw.pttl(&format!("{ns}{key}"));
        assert!((58_000..=60_000).contains(&pttl), "{key}: PTTL {pttl}, expected the layer's 60 s");
    }
    assert_no_layer_failed(&tower);

    // ttl 0 = never expires: no `EX 0` (which Redis rejects), no TTL at all. From code and from
    // the JSON configuration.
    let ns = unique_namespace("ttl0");
    let config = serde_json::json!([{"adapter": "redis", "namespace": ns, "ttl": 0, "params": server.params()}]);
    let from_config = CacheTower::from_config(&config).unwrap();
    let from_code = only(&server.layer(&ns, Duration::ZERO));
    for (name, tower) in [("config", &from_config), ("code", &from_code)] {
        api.set(tower, &format!("{name}:one"), 1).expect("ttl 0 must not send EX 0");
        api.mset(tower, &[(format!("{name}:two"), 2)]).expect("ttl 0 must not send EX 0");
        for key in ["one", "two"] {
            let full = format!("{ns}{name}:{key}");
            assert!(raw.exists(&full), "{full} was written");
            assert_eq!(raw.pttl(&full), -1, "{full} must have no expiry");
        }
        assert_no_layer_failed(tower);
    }
}

fn adapter_get_returns_the_time_the_key_has_left(api: &impl Calls, server: &Server) {
    let mut raw = server.raw();
    let ns = unique_namespace("remaining");
    let redis = server.layer(&ns, MINUTE);
    api.set(&only(&redis), "k", 1).unwrap();

    let fresh = api.adapter_get(&redis, "k").unwrap().expect("just written").ttl().expect("the layer has a TTL");
    assert!(fresh <= MINUTE && fresh > Duration::from_secs(55), "remaining TTL {fresh:?}, layer TTL 60 s");

    raw.query::<i64>(&["PEXPIRE", &format!("{ns}k"), "1500"]);
    let left = api.adapter_get(&redis, "k").unwrap().expect("still there").ttl().expect("it expires");
    assert!(left > Duration::ZERO && left <= Duration::from_millis(1500), "remaining TTL {left:?} after PEXPIRE 1500");

    raw.set(&format!("{ns}forever"), "2");
    assert_eq!(api.adapter_get(&redis, "forever").unwrap().expect("present").ttl(), None, "a key without expiry");
    assert!(api.adapter_get(&redis, "absent").unwrap().is_none());
}

fn backfill_into_memory_lives_no_longer_than_the_key_had_left_in_redis(api: &impl Calls, server: &Server) {
    let mut raw = server.raw();
    let ns = unique_namespace("backfill-ttl");
    let memory = MemoryAdapter::builder().ttl(MINUTE).build();
    let tower = over(&memory, &server.layer(&ns, MINUTE));

    raw.set_px(&format!("{ns}short"), "\"v\"", 1500);
    let written = Instant::now();
    assert_eq!(api.get::<String>(&tower, "short").as_deref(), Some("v"));

    let backfilled = CacheAdapter::get(&memory, "short").unwrap().expect("the read backfilled layer 0");
    let ttl = backfilled.ttl().expect("a backfill from a key that expires must expire");
    assert!(
        ttl > Duration::ZERO && ttl <= Duration::from_millis(1500),
        "layer 0 keeps it for {ttl:?}, Redis had 1.5 s"
    );
    let stats = tower.stats();
    assert_eq!((stats[0].backfills, stats[1].hits), (1, 1), "{stats:?}");

    // A key without expiry in Redis gets layer 0's own TTL.
    raw.set(&format!("{ns}long"), "\"w\"");
    assert_eq!(api.get::<String>(&tower, "long").as_deref(), Some("w"));
    let ttl = CacheAdapter::get(&memory, "long").unwrap().expect("backfilled").ttl().expect("layer 0 has a TTL");
    assert!(ttl > Duration::from_secs(55) && ttl <= MINUTE, "layer 0 keeps it for {ttl:?}, its TTL is 60 s");

    // Once Redis has dropped it, layer 0 has too.
    std::thread::sleep(Duration::from_millis(1600).saturating_sub(written.elapsed()));
    assert_eq!(api.get::<String>(&tower, "short"), None, "layer 0 outlived the Redis copy");
    assert_no_layer_failed(&tower);
}

fn mget_returns_every_key_and_backfills_only_the_layers_above_each_hit(api: &impl Calls, server: &Server) {
    let mut raw = server.raw();
    let (ns1, ns2) = (unique_namespace("mget-l1"), unique_namespace("mget-l2"));
    let memory = MemoryAdapter::new();
    let tower = tower(vec![
        Arc::new(memory.clone()),
        Arc::new(server.layer(&ns1, Duration::ZERO)),
        Arc::new(server.layer(&ns2, Duration::ZERO)),
    ]);

    put(&memory, "top", 0); // falsy values are hits like any other
    raw.set(&format!("{ns1}middle"), "1");
    raw.set(&format!("{ns2}middle"), "99"); // shadowed by layer 1
    raw.set(&format!("{ns2}bottom"), "2");

    let got = api.mget::<i32, _>(&tower, &["top", "middle", "bottom", "absent", "absent too"]);
    let got: Vec<(&str, Option<i32>)> = got.iter().map(|(key, value)| (key.as_str(), *value)).collect();
    let expected = [("top", Some(0)), ("middle", Some(1)), ("bottom", Some(2)), ("absent", None), ("absent too", None)];
    assert_eq!(got, expected, "every key, in request order");

    // Layer 0 got what was found below it; layer 1 only what was found below *it*; layer 2 nothing.
    let in_memory = ["top", "middle", "bottom"].map(|key| peek::<i32>(&memory, key));
    assert_eq!(in_memory, [Some(0), Some(1), Some(2)], "layer 0 has every hit");
    assert_eq!(memory.len(), 3, "layer 0 has nothing else");
    assert_eq!(raw.get(&format!("{ns1}bottom")).as_deref(), Some("2"), "layer 1 is backfilled from layer 2");
    assert_eq!(raw.get(&format!("{ns1}top")), None, "layer 1 is below the hit in layer 0");
    assert_eq!(raw.get(&format!("{ns2}top")), None, "layer 2 is below the hit in layer 0");
    assert_eq!(raw.get(&format!("{ns2}middle")).as_deref(), Some("99"), "layer 2 is below the hit in layer 1");
    assert!(!raw.exists(&format!("{ns1}absent")) && !raw.exists(&format!("{ns2}absent")), "a miss writes nothing");
    let backfills: Vec<u64> = tower.stats().iter().map(|layer| layer.backfills).collect();
    assert_eq!(backfills, [2, 1, 0]);

    // Many keys: every one comes back, hits and misses alike.
    let many = keys("many:", 100);
    for key in many.iter().step_by(2) {
        raw.set(&format!("{ns2}{key}"), &key.len().to_string());
    }
    let got = api.mget::<usize, _>(&tower, &many);
    assert_eq!(got.len(), 100);
    for (i, key) in many.iter().enumerate() {
        assert_eq!(got[key], (i % 2 == 0).then_some(key.len()), "{key}");
    }
    assert_no_layer_failed(&tower);
}

fn backfilled_mset_keeps_each_keys_remaining_ttl(api: &impl Calls, server: &Server) {
    let mut raw = server.raw();
    let (ns1, ns2) = (unique_namespace("mset-ttl-l1"), unique_namespace("mset-ttl-l2"));
    let tower = tower(vec![
        Arc::new(MemoryAdapter::new()),
        Arc::new(server.layer(&ns1, MINUTE)),
        Arc::new(server.layer(&ns2, Duration::ZERO)),
    ]);
    raw.set_px(&format!("{ns2}a"), "1", 2_000);
    raw.set_px(&format!("{ns2}b"), "2", 20_000);
    raw.set(&format!("{ns2}c"), "3");

    let got = api.mget::<i32, _>(&tower, &["a", "b", "c"]);
    assert_eq!([got["a"], got["b"], got["c"]], [Some(1), Some(2), Some(3)]);

    // Layer 1 was backfilled with one batch; each key lives no longer than it had left below,
    // and never longer than layer 1's own TTL.
    let pttl = |raw: &mut Raw, key: &str| raw.pttl(&format!("{ns1}{key}"));
    let (a, b, c) = (pttl(&mut raw, "a"), pttl(&mut raw, "b"), pttl(&mut raw, "c"));
    assert!((1..=2_000).contains(&a), "a: PTTL {a}, it had 2 s left");
    assert!((15_000..=20_000).contains(&b), "b: PTTL {b}, it had 20 s left");
    assert!((55_000..=60_000).contains(&c), "c: PTTL {c}, it had no expiry and layer 1's TTL is 60 s");
    assert_no_layer_failed(&tower);
}

fn mset_writes_every_key_with_its_ttl_in_one_command(api: &impl Calls) {
    // A server of its own: the test counts EXPIRE commands server wide.
    let server = RedisServer::start();
    let mut raw = Raw::connect(&server.url());
    let ns = unique_namespace("mset");
    let memory = MemoryAdapter::builder().ttl(MINUTE).build();
    let tower = over(&memory, &redis_layer(&server.url(), &ns, Duration::from_secs(30)));
    let items: Vec<(String, u32)> = (0..100).map(|i| (format!("k{i}"), i)).collect();

    api.mset(&tower, &items).unwrap();

    for (key, value) in &items {
        let full = format!("{ns}{key}");
        assert_eq!(raw.get(&full), Some(value.to_string()), "{full}");
        let pttl = raw.pttl(&full);
        assert!((25_000..=30_000).contains(&pttl), "{full}: PTTL {pttl}, expected the layer's 30 s");
        assert!(memory.keys().contains(key), "layer 0 has {key}");
    }
    // Written with its TTL from the start: no key was ever given its expiry afterwards.
    let stats: String = raw.query(&["INFO", "commandstats"]);
    for command in ["cmdstat_expire:", "cmdstat_pexpire:", "cmdstat_mset:"] {
        assert!(!stats.contains(command), "mset used {command}\n{stats}");
    }
    // Atomic: the 100 SETs ran inside one script call (a NOSCRIPT miss before the script was
    // loaded is a failed call, not a run).
    let scripts = succeeded_calls(&stats, "evalsha") + succeeded_calls(&stats, "eval");
    assert_eq!(scripts, 1, "one script ran the whole mset\n{stats}");
    assert_eq!(succeeded_calls(&stats, "set"), 100, "{stats}");
    assert_no_layer_failed(&tower);
}

/// The calls of `command` that ran without error, from `INFO commandstats`.
fn succeeded_calls(stats: &str, command: &str) -> u64 {
    let Some(line) = stats.lines().find(|line| line.starts_with(&format!("cmdstat_{command}:"))) else { return 0 };
    let field = |name: &str| -> u64 {
        line.split([':', ',']).find_map(|part| part.strip_prefix(name)?.strip_prefix('=')?.parse().ok()).unwrap_or(0)
    };
    field("calls") - field("failed_calls")
}

fn delete_and_exists(api: &impl Calls, server: &Server) {
    let mut raw = server.raw();
    let ns = unique_namespace("delete");
    let memory = MemoryAdapter::new();
    let tower = over(&memory, &server.layer(&ns, MINUTE));

    assert!(!api.exists(&tower, "k"));
    api.set(&tower, "k", "v".to_owned()).unwrap();
    assert!(api.exists(&tower, "k"));
    assert!(raw.exists(&format!("{ns}k")));

    api.delete(&tower, "k").unwrap();
    assert!(!raw.exists(&format!("{ns}k")), "deleted from Redis");
    assert!(!CacheAdapter::exists(&memory, "k").unwrap(), "deleted from memory");
    assert!(!api.exists(&tower, "k"));
    assert_eq!(api.get::<String>(&tower, "k"), None);
    api.delete(&tower, "never there").expect("deleting an absent key is not an error");

    // exists finds a key only Redis has, and never copies it up.
    raw.set(&format!("{ns}below"), "1");
    assert!(api.exists(&tower, "below"));
    assert!(!CacheAdapter::exists(&memory, "below").unwrap(), "exists must not backfill");
    assert_no_layer_failed(&tower);
}

fn flush_deletes_only_the_namespace_even_with_glob_characters(api: &impl Calls, server: &Server) {
    let mut raw = server.raw();
    // A unique prefix keeps tests apart on a shared server; the glob characters come after it.
    let prefix = unique_namespace("flush");
    let namespaces = ["a*:", "b?:", "c[x]:", "d\\]e:"].map(|ns| format!("{prefix}{ns}"));
    // Keys the namespace pattern would match if its glob characters were not escaped.
    let lookalikes = ["aX:1", "bY:1", "cx:1", "d]e:1", "other:1"].map(|key| format!("{prefix}{key}"));
    for key in &lookalikes {
        raw.set(key, "0");
    }
    let towers: Vec<CacheTower> = namespaces.iter().map(|ns| only(&server.layer(ns, Duration::ZERO))).collect();
    // The first namespace holds more keys than one SCAN step and one UNLINK batch take (1,000).
    let items: Vec<Vec<(String, usize)>> = (0..towers.len())
        .map(|t| (0..if t == 0 { 2_500 } else { 3 }).map(|i| (format!("k{i}"), i)).collect())
        .collect();
    for (tower, items) in towers.iter().zip(&items) {
        api.mset(tower, items).unwrap();
    }

    for flushed in 0..towers.len() {
        api.flush(&towers[flushed]).unwrap();
        for (t, ns) in namespaces.iter().enumerate() {
            let kept = raw.count(items[t].iter().map(|(key, _)| format!("{ns}{key}")));
            let expected = if t <= flushed { 0 } else { items[t].len() };
            assert_eq!(kept, expected, "after flushing {:?}: keys left under {ns:?}", namespaces[flushed]);
        }
        for key in &lookalikes {
            assert!(raw.exists(key), "flushing {:?} deleted {key:?}, which is outside it", namespaces[flushed]);
        }
        assert_no_layer_failed(&towers[flushed]);
    }
}

fn flush_with_an_empty_namespace_empties_the_whole_database(api: &impl Calls) {
    // Documented: an empty namespace is the whole database. It needs a server of its own.
    let server = RedisServer::start();
    let mut db0 = Raw::connect(&server.url());
    let mut db1 = Raw::connect(&format!("redis://127.0.0.1:{}/1", server.port()));
    for key in ["x", "y:z", "a*b"] {
        db0.set(key, "1");
    }
    db1.set("other-db", "1");
    let tower = only(&redis_layer(&server.url(), "", Duration::ZERO));
    api.mset(&tower, &keys("k", 1_500).into_iter().map(|key| (key, 0)).collect::<Vec<_>>()).unwrap();
    assert_eq!(db0.query::<u64>(&["DBSIZE"]), 1_503);

    api.flush(&tower).unwrap();

    assert_eq!(db0.query::<u64>(&["DBSIZE"]), 0, "every key of database 0 is gone");
    assert!(db1.exists("other-db"), "other databases are untouched");
    assert_no_layer_failed(&tower);
}

fn get_mget_and_mset_are_one_round_trip_each(api: &impl Calls) {
    // A server of its own: it counts every read from every client.
    let server = RedisServer::start();
    let mut raw = Raw::connect(&server.url());
    let ns = unique_namespace("round-trips");
    let redis = redis_layer(&server.url(), &ns, MINUTE);
    let redis_only = only(&redis);
    let memory = MemoryAdapter::new();
    let layered = over(&memory, &redis);
    let hundred = keys("k", 100);
    let items: Vec<(String, u8)> = hundred.iter().map(|key| (key.clone(), 1)).collect();

    // Connect, and load the scripts (a script's first use on a server costs a NOSCRIPT reply and
    // a SCRIPT LOAD, as ADR 4 says); from then on, one command per operation.
    api.mset(&layered, &[("warm".to_owned(), 0u8)]).unwrap();
    memory.flush().unwrap();
    api.get::<u8>(&layered, "warm");
    api.mget::<u8, _>(&layered, &["warm", "cold"]);
    api.get::<u8>(&redis_only, "warm");
    memory.flush().unwrap();

    // `INFO` is read too: measure what asking costs, and subtract it.
    let overhead = {
        let before = raw.reads();
        raw.reads() - before
    };
    let mut reads_of = |what: &str, call: &mut dyn FnMut()| {
        let before = raw.reads();
        call();
        let reads = raw.reads() - before - overhead;
        assert_eq!(reads, 1, "{what}: {reads} round trips");
    };

    reads_of("get, Redis-only tower", &mut || {
        assert_eq!(api.get::<u8>(&redis_only, "warm"), Some(0));
    });
    reads_of("mset of 100 keys, Redis-only tower", &mut || api.mset(&redis_only, &items).unwrap());
    reads_of("mget of 100 keys, Redis-only tower", &mut || {
        assert!(api.mget::<u8, _>(&redis_only, &hundred).values().all(|v| *v == Some(1)));
    });
    reads_of("get missing memory, hitting Redis", &mut || {
        assert_eq!(api.get::<u8>(&layered, "k0"), Some(1));
    });
    reads_of("mget of 100 keys missing memory, hitting Redis", &mut || {
        assert!(api.mget::<u8, _>(&layered, &hundred).values().all(|v| *v == Some(1)));
    });
    reads_of("mset of 100 keys, memory over Redis", &mut || api.mset(&layered, &items).unwrap());

    // A hit in memory does not touch Redis at all.
    let before = raw.reads();
    assert_eq!(api.get::<u8>(&layered, "k0"), Some(1));
    assert_eq!(raw.reads() - before - overhead, 0, "a memory hit must not reach Redis");
    assert_no_layer_failed(&redis_only);
    assert_no_layer_failed(&layered);
}

fn corrupt_values_are_misses_and_get_or_set_overwrites_them(api: &impl Calls, server: &Server) {
    let mut raw = server.raw();
    let ns = unique_namespace("corrupt");
    let redis = server.layer(&ns, MINUTE);
    let memory = MemoryAdapter::new();
    let layered = over(&memory, &redis);
    let redis_only = only(&redis);
    let bad = [("not-json", "{not json"), ("wrong-shape", r#"{"id": 1, "name": 5}"#), ("wrong-type", "\"a string\"")];
    for (key, text) in bad {
        raw.set(&format!("{ns}{key}"), text);
    }
    raw.set(&format!("{ns}good"), &json(&User::sample(1)));

    for (key, _) in bad {
        assert_eq!(api.get::<User>(&layered, key), None, "{key}: memory over Redis");
        assert_eq!(api.get::<User>(&redis_only, key), None, "{key}: Redis only");
        assert!(!CacheAdapter::exists(&memory, key).unwrap(), "{key}: an unreadable value must not be backfilled");
    }
    let got = api.mget::<User, _>(&layered, &["not-json", "wrong-shape", "wrong-type", "good"]);
    assert_eq!(got.len(), 4);
    assert_eq!(got["good"], Some(User::sample(1)));
    assert!(["not-json", "wrong-shape", "wrong-type"].iter().all(|key| got[*key].is_none()), "{got:?}");
    let stats = &layered.stats()[1];
    assert_eq!(stats.decode_failures, 6, "3 gets and 3 keys of the mget: {stats:?}");

    // get_or_set computes and overwrites the unreadable value, in Redis too.
    for (i, (key, _)) in bad.iter().enumerate() {
        let id = 10 + i as u64;
        assert_eq!(api.get_or_set(&layered, key, || User::sample(id)), User::sample(id), "{key}");
        assert_eq!(raw.get(&format!("{ns}{key}")), Some(json(&User::sample(id))), "{key} was overwritten in Redis");
        assert_eq!(api.get::<User>(&redis_only, key), Some(User::sample(id)));
    }
    assert_no_layer_failed(&layered);
    assert_no_layer_failed(&redis_only);
}

fn a_key_of_another_type_is_a_miss_not_a_fault(api: &impl Calls, server: &Server) {
    let mut raw = server.raw();
    let ns = unique_namespace("wrongtype");
    let redis = server.layer(&ns, MINUTE);
    let layered = over(&MemoryAdapter::new(), &redis);
    let redis_only = only(&redis);
    raw.query::<i64>(&["HSET", &format!("{ns}hash"), "field", "value"]);
    raw.set(&format!("{ns}good"), "7");

    // More reads than it takes to open the circuit breaker: WRONGTYPE must not count as a fault.
    for _ in 0..5 {
        assert_eq!(api.get::<i32>(&layered, "hash"), None);
        assert_eq!(api.get::<i32>(&redis_only, "hash"), None);
    }
    for tower in [&layered, &redis_only] {
        let got = api.mget::<i32, _>(tower, &["hash", "good"]);
        assert_eq!((got["hash"], got["good"]), (None, Some(7)));
    }
    assert_no_layer_failed(&layered);
    assert_no_layer_failed(&redis_only);
    for tower in [&layered, &redis_only] {
        assert!(tower.stats().iter().all(|layer| !layer.circuit_open), "{:?}", tower.stats());
    }

    // get_or_set replaces it with the computed value.
    assert_eq!(api.get_or_set(&layered, "hash", || 8), 8);
    assert_eq!(raw.get(&format!("{ns}hash")).as_deref(), Some("8"));
    assert_eq!(api.get::<i32>(&redis_only, "hash"), Some(8));
}

fn unusual_keys_round_trip(api: &impl Calls, server: &Server) {
    let mut raw = server.raw();
    let ns = unique_namespace("odd-keys");
    let redis = server.layer(&ns, MINUTE);
    let tower = only(&redis);
    let keys = [
        "with space".to_owned(),
        "line\nbreak".to_owned(),
        "crlf\r\nand\ttab".to_owned(),
        "ünïcødé ключ 鍵 🗝".to_owned(),
        "glob*chars?[x]\\".to_owned(),
        "k".repeat(1024),
    ];

    for key in &keys {
        let value = format!("value of {key:?}");
        api.set(&tower, key, value.clone()).unwrap();
        assert_eq!(raw.get(&format!("{ns}{key}")), Some(json(&value)), "stored under namespace + {key:?}");
        assert_eq!(api.get::<String>(&tower, key), Some(value.clone()), "{key:?}");
        // Through the value-and-TTL read a lower layer uses, too.
        let layered = over(&MemoryAdapter::new(), &redis);
        assert_eq!(api.get::<String>(&layered, key), Some(value), "{key:?} from layer 1");
        assert!(api.exists(&tower, key), "{key:?}");
    }
    let got = api.mget::<String, _>(&tower, &keys);
    assert!(keys.iter().all(|key| got[key] == Some(format!("value of {key:?}"))), "{got:?}");
    for key in &keys {
        api.delete(&tower, key).unwrap();
        assert!(!raw.exists(&format!("{ns}{key}")), "{key:?} deleted");
    }
    assert_no_layer_failed(&tower);
}

/// The server's count of connections accepted so far.
fn connections_received(raw: &mut Raw) -> u64 {
    let stats: String = raw.query(&["INFO", "stats"]);
    let line = stats.lines().find_map(|line| line.strip_prefix("total_connections_received:"));
    line.and_then(|count| count.trim().parse().ok()).expect("INFO stats has total_connections_received")
}

#[test]
fn many_tasks_reading_at_once_share_one_new_async_connection() {
    // A server of its own: the test counts the connections it accepts.
    let server = RedisServer::start();
    let mut raw = Raw::connect(&server.url());
    let tower = Arc::new(only(&redis_layer(&server.url(), &unique_namespace("herd"), MINUTE)));
    let before = connections_received(&mut raw);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    runtime.block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let (tower, barrier) = (Arc::clone(&tower), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    tower.get_async::<u32>(&format!("k{i}")).await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), None);
        }
    });
    assert_no_layer_failed(&tower);
    assert_eq!(connections_received(&mut raw) - before, 1, "32 tasks opened one shared connection");
}
