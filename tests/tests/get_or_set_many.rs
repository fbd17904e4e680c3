//! `get_or_set_many` / `try_get_or_set_many` (and the async twins, through `both_paths`): one
//! read per layer, one loader call for the keys no layer had, one write per layer; single flight
//! per key shared with single-key `get_or_set` and other batches; a failed loader caches nothing.
//!
//! Threads that could hang report through channels read with a generous deadline, so a bug fails
//! the test instead of hanging it. The deadlines and sleeps are not performance assertions.

mod both_paths;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter};
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
use cache_tower_tests::{memory_layers, peek, put, tower_of};

use both_paths::{Calls, on_both_paths};

on_both_paths!(
    one_loader_call_for_the_keys_no_layer_has,
    a_key_the_loader_does_not_return_is_left_out_and_not_cached,
    a_failed_loader_caches_nothing,
    a_key_another_caller_is_computing_is_waited_for_not_loaded,
    a_key_whose_computation_failed_elsewhere_is_loaded_again,
    memory_over_redis_reads_and_writes_redis_once_each,
    delete_many_removes_every_key_from_every_layer_in_one_unlink,
);

/// How long a test waits for a thread before declaring it stuck. Not a performance bound.
const DEADLINE: Duration = Duration::from_secs(10);
/// Long enough for the other caller to reach the flight while a computation runs.
const WORK: Duration = Duration::from_millis(200);

/// A loader that records what it was asked and answers `value:{key}` for each key.
fn recording(asked: &Mutex<Vec<Vec<String>>>) -> impl FnMut(&[&str]) -> Result<Vec<(String, String)>, String> + '_ {
    move |missing| {
        asked.lock().unwrap().push(missing.iter().map(|key| key.to_string()).collect());
        Ok(missing.iter().map(|key| (key.to_string(), format!("value:{key}"))).collect())
    }
}

fn one_loader_call_for_the_keys_no_layer_has(api: &impl Calls) {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    put(&layers[0], "a", "in l0".to_string());
    put(&layers[1], "b", "in l1".to_string());
    let asked = Mutex::new(Vec::new());

    let got = api.try_get_or_set_many(&tower, &["c", "a", "b", "d", "c"], recording(&asked)).unwrap();

    assert_eq!(*asked.lock().unwrap(), vec![vec!["c".to_string(), "d".to_string()]], "one call, the missing keys");
    let got: Vec<(&str, &str)> = got.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    assert_eq!(got, [("c", "value:c"), ("a", "in l0"), ("b", "in l1"), ("d", "value:d")], "request order, once each");
    assert_eq!(peek::<String>(&layers[0], "b").as_deref(), Some("in l1"), "the hit in l1 is backfilled above");
    for (index, layer) in layers.iter().enumerate() {
        assert_eq!(peek::<String>(layer, "d").as_deref(), Some("value:d"), "loaded value stored in layer {index}");
    }
    let again = api.try_get_or_set_many(&tower, &["a", "b", "c", "d"], recording(&asked)).unwrap();
    assert_eq!(again.len(), 4);
    assert_eq!(asked.lock().unwrap().len(), 1, "everything cached: the loader is not called again");
}

fn a_key_the_loader_does_not_return_is_left_out_and_not_cached(api: &impl Calls) {
    let layers = memory_layers(1);
    let tower = tower_of(&layers);
    let only_a = |_: &[&str]| Ok(vec![("a".to_string(), 1u32), ("not asked".to_string(), 9)]);

    let got = api.try_get_or_set_many(&tower, &["a", "b"], only_a).unwrap();

    assert_eq!(got.into_iter().collect::<Vec<_>>(), [("a".to_string(), 1)]);
    assert_eq!(peek::<u32>(&layers[0], "b"), None, "nothing stored for a key the loader had no value for");
    assert_eq!(peek::<u32>(&layers[0], "not asked"), None, "a key that was not asked for is ignored");
}

fn a_failed_loader_caches_nothing(api: &impl Calls) {
    let layers = memory_layers(2);
    let tower = tower_of(&layers);

    let failed = api.try_get_or_set_many::<u32>(&tower, &["a", "b"], |_| Err("database down".to_string()));

    assert_eq!(failed, Err("database down".to_string()));
    assert!(layers.iter().all(|layer| peek::<u32>(layer, "a").is_none()), "nothing cached");
    let asked = Mutex::new(Vec::new());
    let got = api.try_get_or_set_many(&tower, &["a", "b"], recording(&asked)).unwrap();
    assert_eq!(got.len(), 2, "the flights were released: the next call loads");
}

/// Starts a `get_or_set` of `key` on another thread whose computation takes [`WORK`] and then
/// returns `outcome`; returns once it is computing, with a receiver of its result.
fn computing_elsewhere(
    tower: &Arc<CacheTower>,
    key: &'static str,
    outcome: Result<String, String>,
) -> mpsc::Receiver<Result<String, String>> {
    let (started, computing) = mpsc::channel();
    let (send, result) = mpsc::channel();
    let tower = Arc::clone(tower);
    thread::spawn(move || {
        let got = tower.try_get_or_set(key, || {
            started.send(()).unwrap();
            thread::sleep(WORK);
            outcome
        });
        let _ = send.send(got);
    });
    computing.recv_timeout(DEADLINE).expect("the single-key computation started");
    result
}

fn a_key_another_caller_is_computing_is_waited_for_not_loaded(api: &impl Calls) {
    let tower = Arc::new(tower_of(&memory_layers(2)));
    let single = computing_elsewhere(&tower, "b", Ok("from get_or_set".to_string()));
    let asked = Mutex::new(Vec::new());

    let got = api.try_get_or_set_many(&tower, &["a", "b", "c"], recording(&asked)).unwrap();

    assert_eq!(*asked.lock().unwrap(), vec![vec!["a".to_string(), "c".to_string()]], "b is being computed");
    assert_eq!(got["b"], "from get_or_set", "the batch got the single-key caller's value");
    assert_eq!(single.recv_timeout(DEADLINE).unwrap(), Ok("from get_or_set".to_string()));
}

fn a_key_whose_computation_failed_elsewhere_is_loaded_again(api: &impl Calls) {
    let tower = Arc::new(tower_of(&memory_layers(1)));
    let single = computing_elsewhere(&tower, "b", Err("failed".to_string()));
    let asked = Mutex::new(Vec::new());

    let got = api.try_get_or_set_many(&tower, &["a", "b"], recording(&asked)).unwrap();

    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked, vec![vec!["a".to_string()], vec!["b".to_string()]], "b loaded after its leader failed");
    assert_eq!(got["b"], "value:b");
    assert_eq!(single.recv_timeout(DEADLINE).unwrap(), Err("failed".to_string()));
}

/// Calls of each command on `server` (`INFO commandstats`).
fn command_calls(raw: &mut redis::Connection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(raw).unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|field| field.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// The caller's own commands: invalidation is off here, because with it on the listener reads
/// back the keys of every own write (one `MGET` on its thread, after the report: ADR 13), which
/// is not the caller's round trip.
fn memory_over_redis_reads_and_writes_redis_once_each(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("many");
    let builder = RedisAdapter::builder().url(server.url()).namespace(namespace.as_str());
    let redis = builder.invalidation(false).build().unwrap();
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::new());
    tower.add_layer(redis.clone());
    let keys: Vec<String> = (0..1_000).map(|n| format!("k{n}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    // 90% in Redis already, 10% missing everywhere.
    for key in keys.iter().filter(|key| !key.ends_with('7')) {
        put(&redis, key, format!("stored:{key}"));
    }
    let mut raw = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let before = command_calls(&mut raw);
    let asked = Mutex::new(Vec::new());

    let got = api.try_get_or_set_many(&tower, &keys, recording(&asked)).unwrap();

    assert_eq!(got.len(), 1_000);
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "one loader call");
    assert_eq!(asked[0].len(), 100, "for the 10% missing");
    let mut commands = command_calls(&mut raw);
    for (name, calls) in &mut commands {
        *calls -= before.get(name).copied().unwrap_or(0);
    }
    // The async path opens its connection here: the scripts are loaded in its handshake.
    commands.retain(|name, calls| *calls > 0 && name != "info" && name != "script|load" && name != "getrange");
    let expected = [("evalsha", 1), ("mget", 1), ("pttl", 1_000), ("set", 100)];
    assert_eq!(
        commands,
        expected.map(|(name, calls)| (name.to_owned(), calls)).into(),
        "one read (MGET and a PTTL per key, one pipeline) and one write (the mset script, its SETs inside)"
    );
    assert_eq!(peek::<String>(&redis, "k7").as_deref(), Some("value:k7"), "loaded value written to Redis");
    assert!(tower.stats().iter().all(|layer| layer.errors == 0));
}

/// What the `_invalidate` companion of a `many` function sends: one `UNLINK` for all its keys.
fn delete_many_removes_every_key_from_every_layer_in_one_unlink(api: &impl Calls) {
    let server = RedisServer::start();
    let namespace = unique_namespace("delete-many");
    let redis =
        RedisAdapter::builder().url(server.url()).namespace(namespace.as_str()).invalidation(false).build().unwrap();
    let memory = MemoryAdapter::new();
    let tower = CacheTower::new();
    tower.add_layer(memory.clone());
    tower.add_layer(redis.clone());
    let items: Vec<(String, u32)> = (0..500).map(|n| (format!("k{n}"), n)).collect();
    api.mset(&tower, &items).unwrap();
    let keys: Vec<String> = (0..400).map(|n| format!("k{n}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut raw = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let before = command_calls(&mut raw);

    api.delete_many(&tower, &keys).unwrap();

    let mut commands = command_calls(&mut raw);
    for (name, calls) in &mut commands {
        *calls -= before.get(name).copied().unwrap_or(0);
    }
    commands.retain(|name, calls| *calls > 0 && name != "info" && name != "script|load" && name != "getrange");
    assert_eq!(commands, [("unlink".to_owned(), 1)].into(), "one UNLINK for the 400 keys");
    for key in ["k0", "k399"] {
        assert_eq!(peek::<u32>(&memory, key), None, "{key} gone from memory");
        assert_eq!(peek::<u32>(&redis, key), None, "{key} gone from Redis");
    }
    assert_eq!(api.get::<u32>(&tower, "k400"), Some(400), "the other keys stay");
    api.delete_many(&tower, &[]).unwrap();
}

#[test]
fn batches_and_single_key_callers_under_contention_compute_each_key_once() {
    const CALLERS: usize = 16;
    let tower = Arc::new(tower_of(&memory_layers(2)));
    let loads: Arc<Vec<AtomicUsize>> = Arc::new((0..32).map(|_| AtomicUsize::new(0)).collect());
    let barrier = Arc::new(Barrier::new(CALLERS));
    let (send, results) = mpsc::channel();
    for caller in 0..CALLERS {
        let (tower, loads, barrier, send) = (tower.clone(), loads.clone(), barrier.clone(), send.clone());
        thread::spawn(move || {
            // Overlapping windows of keys, in different orders; every fourth caller asks one key.
            let mut keys: Vec<String> = (0..8).map(|n| format!("k{}", (caller * 3 + n) % 32)).collect();
            if caller % 2 == 1 {
                keys.reverse();
            }
            barrier.wait();
            let got: Vec<(String, usize)> = if caller % 4 == 3 {
                let key = keys[0].clone();
                let n: usize = key[1..].parse().unwrap();
                let value = tower.get_or_set(&key, || {
                    loads[n].fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(20));
                    n
                });
                vec![(key, value)]
            } else {
                let loaded = tower.get_or_set_many(&keys, |missing| {
                    thread::sleep(Duration::from_millis(20));
                    missing
                        .iter()
                        .map(|key| {
                            let n: usize = key[1..].parse().unwrap();
                            loads[n].fetch_add(1, Ordering::SeqCst);
                            (key.to_string(), n)
                        })
                        .collect::<Vec<_>>()
                });
                assert_eq!(loaded.len(), keys.len(), "every key has a value");
                loaded.into_iter().collect()
            };
            send.send(got).unwrap();
        });
    }
    for _ in 0..CALLERS {
        let got = results.recv_timeout(DEADLINE).expect("a caller is stuck (batches waiting on each other?)");
        assert!(got.iter().all(|(key, value)| key[1..].parse::<usize>().unwrap() == *value));
    }
    for (n, count) in loads.iter().enumerate() {
        assert!(count.load(Ordering::SeqCst) <= 1, "k{n} computed {} times", count.load(Ordering::SeqCst));
    }
}

#[test]
fn an_async_batch_can_run_in_a_spawned_task() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tower = Arc::new(tower_of(&memory_layers(1)));
    let task = runtime.spawn(async move {
        let load = |missing: Vec<String>| async move { missing.into_iter().map(|key| (key, 1u32)).collect::<Vec<_>>() };
        tower.get_or_set_many_async(&["a", "b"], load).await
    });
    let got = runtime.block_on(async { task.await.unwrap() });
    assert_eq!((got["a"], got["b"]), (1, 1));
}

/// A layer whose reads time out, counting the writes it is sent.
#[derive(Debug, Default)]
struct TimingOut {
    writes: AtomicUsize,
}

impl cache_tower::adapter::CacheAdapter for TimingOut {
    fn kind(&self) -> &'static str {
        "timing-out"
    }
    fn namespace(&self) -> &str {
        ""
    }
    fn ttl(&self) -> Option<Duration> {
        None
    }
    fn get(&self, _: &str) -> cache_tower::Result<Option<cache_tower::adapter::Entry>> {
        Err(cache_tower::Error::layer_fault(cache_tower::error::Fault::Timeout, "read timed out"))
    }
    fn set(&self, _: &str, _: &cache_tower::adapter::Entry) -> cache_tower::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn delete(&self, _: &str) -> cache_tower::Result<()> {
        Ok(())
    }
    fn exists(&self, _: &str) -> cache_tower::Result<bool> {
        Ok(false)
    }
    fn flush(&self) -> cache_tower::Result<()> {
        Ok(())
    }
}

#[test]
fn a_layer_whose_read_failed_is_not_written_by_the_same_batch() {
    let layers = memory_layers(1);
    let hung = Arc::new(TimingOut::default());
    let tower = tower_of(&layers);
    tower.add_layer(Arc::clone(&hung) as Arc<dyn cache_tower::adapter::CacheAdapter>);

    let got = tower
        .get_or_set_many(&["a", "b"], |missing| missing.iter().map(|key| (key.to_string(), 1u8)).collect::<Vec<_>>());

    assert_eq!(got.len(), 2, "loaded");
    assert_eq!(peek::<u8>(&layers[0], "a"), Some(1), "stored in the layer that answered");
    assert_eq!(hung.writes.load(Ordering::SeqCst), 0, "a hung layer costs one timeout, not a second for the write");
}

#[test]
fn an_empty_batch_asks_nothing() {
    let tower = tower_of(&memory_layers(1));
    let got =
        tower.get_or_set_many::<u8, &str, _, _, String>(&[], |_| -> Vec<(String, u8)> { panic!("no loader call") });
    assert!(got.is_empty());
}
