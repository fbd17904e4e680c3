//! Stale values and the fail-safe (`LoadOptions`, docs/architecture.md §15): an entry past its
//! TTL stays for its layer's stale window, a miss for plain reads; a get-or-set whose computation
//! fails (an `Err` or a panic) returns it instead, keeps it fresh for the throttle period, and
//! counts it. Without a stale value the failure reaches the caller. A key deleted, flushed, or
//! changed by another process or an external write is never served stale afterwards.
//!
//! Memory layers run on a manual clock; Redis layers on real time with TTLs of a second.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use cache_tower::adapter::CacheAdapter;
use cache_tower::clock::ManualClock;
use cache_tower::{CacheTower, LoadOptions, MemoryAdapter, RedisAdapter, cached_tower, registry};
use cache_tower_tests::peer::Peer;
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
use cache_tower_tests::tracking::subscribed_tower;

mod raw_redis;

use raw_redis::Raw;

const TTL: Duration = Duration::from_secs(60);
const STALE: Duration = Duration::from_secs(3600);
const THROTTLE: Duration = Duration::from_secs(30);
const PEER: &str = env!("CARGO_BIN_EXE_tower_peer");

fn fail_safe() -> LoadOptions {
    LoadOptions::new().fail_safe(THROTTLE)
}

/// A memory layer with a TTL and a stale window on a manual clock, and a tower of it.
fn memory_tower(stale: Duration) -> (CacheTower, MemoryAdapter, ManualClock) {
    let clock = ManualClock::new();
    let memory = MemoryAdapter::builder().ttl(TTL).stale(stale).clock(clock.clone()).build();
    let tower = CacheTower::new();
    tower.add_layer(memory.clone());
    (tower, memory, clock)
}

/// The blocking and the async get-or-set, for behaviours written once.
#[derive(Clone, Copy, Debug)]
enum Path {
    Blocking,
    OnTokio,
}

const PATHS: [Path; 2] = [Path::Blocking, Path::OnTokio];

impl Path {
    fn load<T: cache_tower::Cacheable>(
        self,
        tower: &CacheTower,
        key: &str,
        options: &LoadOptions,
        compute: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, String> {
        match self {
            Path::Blocking => tower.try_get_or_set_with(key, options, compute),
            Path::OnTokio => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(tower.try_get_or_set_with_async(key, options, || async move { compute() })),
        }
    }
}

#[test]
fn a_stale_value_answers_a_failing_computation_and_plain_reads_miss_it() {
    for path in PATHS {
        let (tower, _memory, clock) = memory_tower(STALE);
        assert_eq!(path.load(&tower, "k", &fail_safe(), || Ok(1)), Ok(1));
        clock.advance(TTL + Duration::from_secs(1));
        assert_eq!(tower.get::<i32>("k"), None, "{path:?}: a stale entry is a miss for get");
        assert!(!tower.exists("k"), "{path:?}: and for exists");
        assert_eq!(tower.mget::<i32, _>(&["k"])["k"], None, "{path:?}: and for mget");

        assert_eq!(path.load(&tower, "k", &fail_safe(), || Err("down".to_owned())), Ok(1), "{path:?}");
        assert_eq!(tower.stats()[0].stale_served, 1, "{path:?}: counted");
        assert_eq!(tower.get::<i32>("k"), Some(1), "{path:?}: fresh for the throttle period");

        clock.advance(THROTTLE + Duration::from_secs(1));
        assert_eq!(tower.get::<i32>("k"), None, "{path:?}: stale again after the throttle period");
        assert_eq!(path.load(&tower, "k", &fail_safe(), || Err("down".to_owned())), Ok(1), "{path:?}");
        assert_eq!(tower.stats()[0].stale_served, 2, "{path:?}");
        assert_eq!(path.load(&tower, "k", &fail_safe(), || Ok(2)), Ok(1), "{path:?}: throttled, not recomputed");
    }
}

#[test]
fn the_throttle_holds_the_source_off() {
    let (tower, _memory, clock) = memory_tower(STALE);
    tower.set("k", 1).unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    let calls = AtomicUsize::new(0);
    let failing = || {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<i32, _>("down".to_owned())
    };
    for _ in 0..100 {
        assert_eq!(tower.try_get_or_set_with("k", &fail_safe(), failing), Ok(1));
        clock.advance(Duration::from_millis(100));
    }
    // 100 calls over 10 s, all within one throttle period: the source was asked once.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    clock.advance(THROTTLE);
    assert_eq!(tower.try_get_or_set_with("k", &fail_safe(), failing), Ok(1));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "asked again once the throttle period is over");
}

#[test]
fn a_panicking_computation_falls_back_too() {
    for path in PATHS {
        let (tower, _memory, clock) = memory_tower(STALE);
        tower.set("k", 1).unwrap();
        clock.advance(TTL + Duration::from_secs(1));
        let got = path.load(&tower, "k", &fail_safe(), || -> Result<i32, String> { panic!("source exploded") });
        assert_eq!(got, Ok(1), "{path:?}");
    }
}

#[test]
fn without_a_stale_value_the_failure_reaches_the_caller() {
    for path in PATHS {
        let (tower, _memory, clock) = memory_tower(STALE);
        let down = || Err::<i32, _>("down".to_owned());
        assert_eq!(path.load(&tower, "absent", &fail_safe(), down), Err("down".to_owned()), "{path:?}: nothing cached");

        tower.set("old", 1).unwrap();
        clock.advance(TTL + STALE + Duration::from_secs(1));
        assert_eq!(path.load(&tower, "old", &fail_safe(), down), Err("down".to_owned()), "{path:?}: past its window");

        tower.set("plain", 1).unwrap();
        clock.advance(TTL + Duration::from_secs(1));
        let no_fail_safe = LoadOptions::new();
        assert_eq!(path.load(&tower, "plain", &no_fail_safe, down), Err("down".to_owned()), "{path:?}: no fail-safe");
        assert_eq!(tower.stats()[0].stale_served, 0, "{path:?}");

        let panicked = catch_unwind(AssertUnwindSafe(|| {
            path.load(&tower, "absent", &fail_safe(), || -> Result<i32, String> { panic!("boom") })
        }));
        assert!(panicked.is_err(), "{path:?}: with nothing to fall back on, the panic goes to the caller");
    }
}

#[test]
fn waiting_callers_share_the_fallback_and_the_source_is_asked_once() {
    let (tower, _memory, clock) = memory_tower(STALE);
    tower.set("k", 1).unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    let tower = Arc::new(tower);
    let calls = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (tower, calls) = (tower.clone(), calls.clone());
            thread::spawn(move || {
                tower.try_get_or_set_with("k", &fail_safe(), || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(100));
                    Err::<i32, _>("down".to_owned())
                })
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.join().unwrap(), Ok(1));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_key_deleted_while_the_computation_fails_is_not_brought_back() {
    let (tower, memory, clock) = memory_tower(STALE);
    tower.set("k", 1).unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    let got = tower.try_get_or_set_with("k", &fail_safe(), || {
        tower.delete("k").unwrap();
        Err::<i32, _>("down".to_owned())
    });
    assert_eq!(got, Ok(1), "read before the delete, so this caller may have it");
    assert!(memory.get_stale("k").unwrap().is_none(), "but it is not kept");
    assert_eq!(tower.try_get_or_set_with("k", &fail_safe(), || Err::<i32, _>("down".to_owned())), Err("down".into()));
}

#[test]
fn delete_and_flush_beat_stale() {
    let down = || Err::<i32, _>("down".to_owned());
    let (tower, _memory, clock) = memory_tower(STALE);
    tower.mset([("a", 1), ("b", 2)]).unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    tower.delete("a").unwrap();
    assert_eq!(tower.try_get_or_set_with("a", &fail_safe(), down), Err("down".into()));
    tower.flush().unwrap();
    assert_eq!(tower.try_get_or_set_with("b", &fail_safe(), down), Err("down".into()));
}

#[test]
fn a_call_gives_its_values_a_stale_window_of_their_own() {
    let (tower, _memory, clock) = memory_tower(Duration::ZERO);
    let options = fail_safe().stale(STALE);
    assert_eq!(tower.try_get_or_set_with("k", &options, || Ok::<_, String>(1)), Ok(1));
    tower.set("plain", 1).unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    let down = || Err::<i32, _>("down".to_owned());
    assert_eq!(tower.try_get_or_set_with("k", &options, down), Ok(1), "kept stale by the call's window");
    assert_eq!(tower.try_get_or_set_with("plain", &options, down), Err("down".into()), "the layer keeps none");
}

#[test]
fn the_towers_defaults_apply_to_plain_get_or_set() {
    let (tower, _memory, clock) = memory_tower(STALE);
    tower.set_load_options(fail_safe());
    tower.set("k", 1).unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(tower.try_get_or_set("k", || Err::<i32, _>("down".to_owned())), Ok(1));
    // A call's own setting wins over the tower's.
    let (other, _memory, clock) = memory_tower(STALE);
    other.set_load_options(LoadOptions::new().ttl(Duration::from_secs(5)));
    assert_eq!(other.try_get_or_set_with("k", &LoadOptions::new().ttl(TTL), || Ok::<_, String>(1)), Ok(1));
    clock.advance(Duration::from_secs(6));
    assert_eq!(other.get::<i32>("k"), Some(1));
}

#[test]
fn the_stale_window_is_read_from_json() {
    let tower = CacheTower::from_json(r#"[{"adapter": "memory", "ttl": 60, "stale": 3600}]"#).unwrap();
    assert_eq!(tower.get_layers()[0].stale(), STALE);
    let err = CacheTower::from_json(r#"[{"adapter": "memory", "stale": "1h"}]"#).unwrap_err();
    assert_eq!((err.layer(), err.field()), (Some(0), Some("stale")));
    let err = CacheTower::from_json(r#"[{"adapter": "memory", "stale": 9000000000001}]"#).unwrap_err();
    assert_eq!(err.field(), Some("stale"), "{err}");
}

// ===== Redis =====

/// A Redis layer of TTL 1 s and stale window 60 s on `server`.
fn redis_layer(server: &RedisServer, namespace: &str) -> RedisAdapter {
    RedisAdapter::builder()
        .url(server.url())
        .namespace(namespace)
        .ttl(Duration::from_secs(1))
        .stale(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Sleeps past the one-second TTL of the Redis layers here.
fn past_the_ttl() {
    thread::sleep(Duration::from_millis(1100));
}

#[test]
fn redis_keeps_stale_values_as_plain_json_and_plain_reads_miss_them() {
    let server = RedisServer::start();
    let namespace = unique_namespace("stale-json");
    let tower = CacheTower::new();
    tower.add_layer(redis_layer(&server, &namespace));
    tower.set("k", "v".to_owned()).unwrap();
    let mut raw = Raw::connect(&server.url(), &namespace);
    assert_eq!(raw.get("k").as_deref(), Some("\"v\""));
    let pttl: i64 = redis::cmd("PTTL").arg(raw.key("k")).query(&mut raw.connection).unwrap();
    assert!((59_000..=61_000).contains(&pttl), "TTL + stale window: {pttl} ms");

    past_the_ttl();
    assert_eq!(tower.get::<String>("k"), None);
    assert!(!tower.exists("k"));
    assert_eq!(tower.mget::<String, _>(&["k"])["k"], None);
    for path in PATHS {
        let got = path.load(&tower, "k", &fail_safe(), || Err::<String, _>("down".to_owned()));
        assert_eq!(got.as_deref(), Ok("v"), "{path:?}");
    }
    assert_eq!(tower.stats()[0].stale_served, 2);
}

#[test]
fn a_stale_value_from_redis_is_kept_fresh_in_memory_for_the_throttle_period() {
    let server = RedisServer::start();
    let namespace = unique_namespace("stale-backfill");
    let memory = MemoryAdapter::builder().ttl(Duration::from_secs(1)).build();
    let tower = subscribed_tower(&memory, &redis_layer(&server, &namespace));
    assert_eq!(tower.get_or_set("k", || 1), 1);
    past_the_ttl();
    assert_eq!(tower.get::<i32>("k"), None);
    let calls = AtomicUsize::new(0);
    let failing = || {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<i32, _>("down".to_owned())
    };
    assert_eq!(tower.try_get_or_set_with("k", &fail_safe(), failing), Ok(1));
    assert_eq!(tower.stats()[1].stale_served, 1, "served from the Redis layer");
    assert_eq!(memory.get("k").unwrap().map(|e| e.value().decode::<i32>().unwrap()), Some(1), "kept in memory");
    for _ in 0..10 {
        assert_eq!(tower.try_get_or_set_with("k", &fail_safe(), failing), Ok(1));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Waits until `memory` holds nothing under `key`, stale or fresh: the change reached it.
fn evicted(memory: &MemoryAdapter, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while memory.get_stale(key).unwrap().is_some() {
        assert!(Instant::now() < deadline, "the change never evicted {key:?}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn changes_by_others_beat_stale() {
    let server = RedisServer::start();
    let namespace = unique_namespace("stale-beaten");
    let memory = MemoryAdapter::builder().ttl(Duration::from_secs(1)).stale(Duration::from_secs(60)).build();
    let tower = subscribed_tower(&memory, &redis_layer(&server, &namespace));
    let mut raw = Raw::connect(&server.url(), &namespace);
    let mut peer = Peer::start(PEER, "other", &server.url(), &namespace, &[]);
    let down = || Err::<String, _>("down".to_owned());
    for key in ["external-set", "external-del", "peer-set", "peer-delete"] {
        tower.set(key, "old".to_owned()).unwrap();
    }
    past_the_ttl();
    for key in ["external-set", "external-del", "peer-set", "peer-delete"] {
        assert!(memory.get_stale(key).unwrap().is_some_and(|entry| entry.is_stale()), "{key} is stale in memory");
    }

    raw.set("external-set", "\"new\"");
    evicted(&memory, "external-set");
    assert_eq!(tower.try_get_or_set_with("external-set", &fail_safe(), down).as_deref(), Ok("new"));

    raw.on_key("DEL", "external-del", &[]);
    evicted(&memory, "external-del");
    assert_eq!(tower.try_get_or_set_with("external-del", &fail_safe(), down), Err("down".into()));

    peer.set("peer-set", "new");
    evicted(&memory, "peer-set");
    assert_eq!(tower.try_get_or_set_with("peer-set", &fail_safe(), down).as_deref(), Ok("new"));

    peer.must(&["delete", "peer-delete"]);
    evicted(&memory, "peer-delete");
    assert_eq!(tower.try_get_or_set_with("peer-delete", &fail_safe(), down), Err("down".into()));
}

// ===== the macro =====

static SOURCE_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static PRICE_RUNS: AtomicUsize = AtomicUsize::new(0);

fn price_from_source(item: &str) -> Result<u32, String> {
    PRICE_RUNS.fetch_add(1, Ordering::SeqCst);
    if SOURCE_DOWN.load(Ordering::SeqCst) { Err("source down".to_owned()) } else { Ok(item.len() as u32) }
}

#[cached_tower(config = "fail_safe_sync", key = "price:{item}", ttl = "50ms", stale = "1h", fail_safe = "30s")]
fn price(item: &str) -> Result<u32, String> {
    price_from_source(item)
}

#[cached_tower(config = "fail_safe_async", key = "price:{item}", ttl = "50ms", stale = "1h", fail_safe = "30s")]
async fn price_async(item: &str) -> Result<u32, String> {
    price_from_source(item)
}

#[test]
fn a_memoized_function_with_fail_safe_answers_with_its_stale_result() {
    for name in ["fail_safe_sync", "fail_safe_async"] {
        registry::register_json(&format!(r#"{{"{name}": [{{"adapter": "memory"}}]}}"#)).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    SOURCE_DOWN.store(false, Ordering::SeqCst);
    assert_eq!(price("apple"), Ok(5));
    assert_eq!(runtime.block_on(price_async("apple")), Ok(5));
    thread::sleep(Duration::from_millis(80)); // past the 50 ms TTL: stale for an hour
    SOURCE_DOWN.store(true, Ordering::SeqCst);
    let runs = PRICE_RUNS.load(Ordering::SeqCst);
    assert_eq!(price("apple"), Ok(5));
    assert_eq!(runtime.block_on(price_async("apple")), Ok(5));
    assert_eq!(PRICE_RUNS.load(Ordering::SeqCst), runs + 2, "each asked the source once, which failed");
    assert_eq!(price("apple"), Ok(5));
    assert_eq!(PRICE_RUNS.load(Ordering::SeqCst), runs + 2, "then the throttle holds it off");
    assert_eq!(price("pear"), Err("source down".to_owned()), "nothing stale to fall back on");
}

// ===== a Redis hiccup =====

/// Waits until `server` has served an `MGET` (the listener's read-back of an own write), failing
/// the test after 10 s. Not a performance bound.
fn await_read_back(server: &RedisServer) {
    let mut raw = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut raw).unwrap();
        if stats.lines().any(|line| line.starts_with("cmdstat_mget:")) {
            return;
        }
        assert!(Instant::now() < deadline, "the listener never read its own write back");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_frozen_redis_leaves_warm_keys_answering_from_memory_and_the_thaw_brings_the_news() {
    let mut server = RedisServer::start();
    let namespace = unique_namespace("hiccup");
    let memory = MemoryAdapter::builder().ttl(Duration::from_secs(60)).stale(Duration::from_secs(600)).build();
    let redis = RedisAdapter::builder()
        .url(server.url())
        .namespace(&namespace)
        .ttl(Duration::from_secs(60))
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let tower = Arc::new(subscribed_tower(&memory, &redis));
    let loads = Arc::new(AtomicUsize::new(0));
    let load = {
        let loads = loads.clone();
        move || {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<String, String>("loaded".to_owned())
        }
    };
    tower.set("warm", "old".to_owned()).unwrap();
    // The listener hears that write and reads the key back (ADR 13) before it keeps the copy; a
    // freeze before that read is done would evict the copy, since the key's value is then
    // unknown. So freeze only once Redis has served the read-back.
    await_read_back(&server);
    assert_eq!(tower.try_get_or_set_with("warm", &fail_safe(), load.clone()).as_deref(), Ok("old"));
    let mut other = Raw::connect(&server.url(), &namespace); // another client, connected before the freeze

    server.freeze();
    // Its write waits in the frozen server's socket and lands at the thaw.
    let writer = thread::spawn(move || other.set("warm", "\"new\""));
    let frozen_until = Instant::now() + Duration::from_millis(2500);
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (tower, load) = (tower.clone(), load.clone());
            thread::spawn(move || {
                let mut answers = Vec::new();
                while Instant::now() < frozen_until {
                    answers.push(tower.try_get_or_set_with("warm", &fail_safe(), load.clone()));
                }
                answers
            })
        })
        .collect();
    let answers: Vec<_> = callers.into_iter().flat_map(|caller| caller.join().unwrap()).collect();
    let odd: Vec<_> = answers.iter().filter(|answer| answer.as_deref() != Ok("old")).take(5).collect();
    assert!(odd.is_empty(), "every call answered from memory: {odd:?}");
    assert_eq!(loads.load(Ordering::SeqCst), 0, "the source was never asked");
    assert!(tower.stats()[0].stale_served > 0, "answered as stale once the listener saw the freeze");
    assert_eq!(tower.get::<String>("warm"), None, "never as fresh: a plain read misses it");
    eprintln!("{} calls during the freeze, {} served stale", answers.len(), tower.stats()[0].stale_served);

    server.thaw();
    writer.join().unwrap();
    // The other client's write is done: from the first read that sees it on, none sees the old
    // value. (Until the breaker lets a read through again, at most its cool-down of a second,
    // the copy still answers as stale.)
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut seen_new = false;
    while Instant::now() < deadline {
        let answer = tower.try_get_or_set_with("warm", &fail_safe(), load.clone());
        match answer.as_deref() {
            Ok("new") => seen_new = true,
            Ok("old") => assert!(!seen_new, "the old value came back after the new one was read"),
            other => panic!("unexpected answer {other:?}"),
        }
        thread::sleep(Duration::from_millis(5));
    }
    assert!(seen_new, "the write made during the freeze was never read");
    assert!(memory.get_stale("warm").unwrap().is_none_or(|entry| entry.value().decode::<String>().unwrap() == "new"));
}

#[test]
fn the_towers_load_options_are_read_from_json() {
    let tower = CacheTower::from_json(
        r#"{"layers": [{"adapter": "memory", "ttl": 60, "stale": 3600}],
            "load": {"ttl": 5, "stale": 60, "fail_safe": 30, "soft_timeout_ms": 100, "hard_timeout_ms": 2000,
                     "refresh_ahead": 0.8}}"#,
    )
    .unwrap();
    let options = tower.load_options();
    assert_eq!(options.ttl, Some(Duration::from_secs(5)));
    assert_eq!(options.stale, Some(Duration::from_secs(60)));
    assert_eq!(options.fail_safe, Some(THROTTLE));
    assert_eq!(options.soft_timeout, Some(Duration::from_millis(100)));
    assert_eq!(options.hard_timeout, Some(Duration::from_secs(2)));
    assert_eq!(options.refresh_ahead, Some(0.8));
    assert_eq!(tower.get_layers().len(), 1);

    // Through the registry too.
    registry::register_json(r#"{"json_load_options": {"layers": [{"adapter": "memory"}], "load": {"fail_safe": 5}}}"#)
        .unwrap();
    let registered = registry::get("json_load_options").unwrap();
    assert_eq!(registered.load_options().fail_safe, Some(Duration::from_secs(5)));

    for (config, field, says) in [
        (r#"{"layers": [], "load": {"fail_safe": 0}}"#, Some("load.fail_safe"), "more than 0"),
        (r#"{"layers": [], "load": {"refresh_ahead": 1.5}}"#, Some("load.refresh_ahead"), "between 0 and 1"),
        (r#"{"layers": [], "load": {"soft_timeout": 100}}"#, Some("load.soft_timeout"), "unknown field `soft_timeout`"),
        (r#"{"layers": [], "lod": {}}"#, Some("lod"), "unknown field `lod`"),
        (r#"{"load": {}}"#, None, "an object with `layers`"),
    ] {
        let err = CacheTower::from_json(config).unwrap_err();
        assert_eq!(err.field(), field, "{config}: {err}");
        assert!(err.to_string().contains(says), "{config}: {err}");
    }
    let err = CacheTower::from_json(r#"{"layers": [{"adapter": "memory", "ttl": -1}]}"#).unwrap_err();
    assert_eq!((err.layer(), err.field()), (Some(0), Some("ttl")), "a layer's error names the layer");
}
