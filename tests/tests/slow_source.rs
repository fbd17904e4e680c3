//! A slow or stuck source (`try_get_or_load`, `LoadOptions` timeouts and eager refresh,
//! docs/architecture.md §15): with a stale value, a caller waits at most its soft timeout and the
//! computation goes on in the background, storing its value in every layer — and every instance
//! — when it completes; a hard timeout bounds every wait (an error when nothing stale can answer);
//! callers of the key meanwhile share the one computation. A hit past `refresh_ahead` of its TTL
//! returns at once and refreshes the key once in the background.
//!
//! Time bounds here are budgets with room for a noisy machine; each test prints what it measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use cache_tower::clock::ManualClock;
use cache_tower::error::ErrorKind;
use cache_tower::{CacheTower, Error, LoadOptions, MemoryAdapter, RedisAdapter};
use cache_tower_tests::peer::Peer;
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
use cache_tower_tests::tracking::subscribed_tower;

const TTL: Duration = Duration::from_secs(100);
const SOFT: Duration = Duration::from_millis(50);
const HARD: Duration = Duration::from_millis(150);
/// How long the slow source takes.
const SLOW: Duration = Duration::from_millis(400);
/// Room for a busy 2-core machine beyond a timeout; not a speed claim.
const SLACK: Duration = Duration::from_millis(60);
const PEER: &str = env!("CARGO_BIN_EXE_tower_peer");

/// A memory layer with a TTL and an hour of staleness on a manual clock, and a tower of it.
fn memory_tower() -> (Arc<CacheTower>, ManualClock) {
    let clock = ManualClock::new();
    let memory = MemoryAdapter::builder().ttl(TTL).stale(Duration::from_secs(3600)).clock(clock.clone()).build();
    let tower = CacheTower::new();
    tower.add_layer(memory);
    (Arc::new(tower), clock)
}

/// A source that takes [`SLOW`] and counts its calls.
fn slow_source(calls: &Arc<AtomicUsize>, value: &str) -> impl FnOnce() -> Result<String, String> + Send + 'static {
    let (calls, value) = (calls.clone(), value.to_owned());
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        thread::sleep(SLOW);
        Ok(value)
    }
}

/// Polls `read` until it gives `expected`, for up to two seconds.
fn eventually(what: &str, expected: &str, mut read: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(2) + SLOW;
    loop {
        if read().as_deref() == Some(expected) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} never became {expected:?}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn at_the_soft_timeout_the_stale_value_answers_and_the_computation_completes_in_the_background() {
    let (tower, clock) = memory_tower();
    tower.set("k", "old".to_owned()).unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    let calls = Arc::new(AtomicUsize::new(0));
    let options = LoadOptions::new().soft_timeout(SOFT);

    let started = Instant::now();
    let got = tower.try_get_or_load("k", &options, slow_source(&calls, "new"));
    let took = started.elapsed();
    eprintln!("soft timeout {SOFT:?}: answered after {took:?}");
    assert_eq!(got.as_deref(), Ok("old"));
    assert!(took >= SOFT && took < SOFT + SLACK, "answered after {took:?}");
    assert_eq!(tower.stats()[0].stale_served, 1);
    eventually("the background's value", "new", || tower.get::<String>("k"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn the_async_soft_timeout_too() {
    let (tower, clock) = memory_tower();
    tower.set("k", "old".to_owned()).unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    let calls = Arc::new(AtomicUsize::new(0));
    let options = LoadOptions::new().soft_timeout(SOFT);
    let runtime = runtime();
    let source = slow_source(&calls, "new");
    let started = Instant::now();
    let got = runtime.block_on(tower.try_get_or_load_async("k", &options, move || async move { source() }));
    let took = started.elapsed();
    eprintln!("async soft timeout {SOFT:?}: answered after {took:?}");
    assert_eq!(got.as_deref(), Ok("old"));
    assert!(took < SOFT + SLACK, "answered after {took:?}");
    eventually("the background's value", "new", || tower.get::<String>("k"));
}

#[test]
fn callers_meanwhile_share_the_one_background_computation() {
    let (tower, clock) = memory_tower();
    tower.set("k", "old".to_owned()).unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    let calls = Arc::new(AtomicUsize::new(0));
    let options = LoadOptions::new().soft_timeout(SOFT);
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (tower, source, options) = (tower.clone(), slow_source(&calls, "new"), options.clone());
            thread::spawn(move || tower.try_get_or_load("k", &options, source))
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.join().unwrap().as_deref(), Ok("old"));
    }
    // More callers while the computation still runs.
    assert_eq!(tower.try_get_or_load("k", &options, slow_source(&calls, "newer")).as_deref(), Ok("old"));
    eventually("the background's value", "new", || tower.get::<String>("k"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one computation for every caller");
}

#[test]
fn the_hard_timeout_bounds_every_wait() {
    let (tower, clock) = memory_tower();
    let calls = Arc::new(AtomicUsize::new(0));
    let options = LoadOptions::new().hard_timeout(HARD);

    // Nothing stale: the timeout's error, converted into the call's error type.
    let started = Instant::now();
    let got: Result<String, Error> = tower.try_get_or_load("cold", &options, {
        let source = slow_source(&calls, "v");
        move || source().map_err(|message| Error::new(ErrorKind::Layer, message))
    });
    let took = started.elapsed();
    eprintln!("hard timeout {HARD:?}: gave up after {took:?}");
    assert_eq!(got.unwrap_err().kind(), ErrorKind::Timeout);
    assert!(took < HARD + SLACK, "gave up after {took:?}");
    eventually("the value computed after the timeout", "v", || tower.get::<String>("cold"));

    // Something stale: it answers at the hard timeout (no soft timeout set).
    tower.set("warm", "old".to_owned()).unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    let got = tower.try_get_or_load("warm", &options, slow_source(&calls, "new"));
    assert_eq!(got.as_deref(), Ok("old"));

    // A String error type takes the timeout too.
    let got = tower.try_get_or_load("other", &options, slow_source(&calls, "v"));
    assert!(got.unwrap_err().contains("hard timeout"));
}

#[test]
fn a_fast_source_is_not_held_up_by_the_timeouts() {
    let (tower, _clock) = memory_tower();
    let options = LoadOptions::new().soft_timeout(SOFT).hard_timeout(HARD);
    assert_eq!(tower.try_get_or_load("k", &options, || Ok::<_, String>(1)), Ok(1));
    assert_eq!(tower.get::<i32>("k"), Some(1), "stored before the call returned");
    let failing = tower.try_get_or_load("e", &options, || Err::<i32, _>("down".to_owned()));
    assert_eq!(failing, Err("down".to_owned()), "a failure without anything stale is the caller's");
}

#[test]
fn the_later_result_reaches_every_layer_and_every_instance() {
    let server = RedisServer::start();
    let namespace = unique_namespace("soft-timeout");
    let memory = MemoryAdapter::builder().ttl(Duration::from_secs(1)).stale(Duration::from_secs(60)).build();
    let redis = RedisAdapter::builder()
        .url(server.url())
        .namespace(&namespace)
        .ttl(Duration::from_secs(1))
        .stale(Duration::from_secs(60))
        .build()
        .unwrap();
    let tower = subscribed_tower(&memory, &redis);
    let mut other = Peer::start(PEER, "other", &server.url(), &namespace, &[]);
    tower.set("k", "old".to_owned()).unwrap();
    thread::sleep(Duration::from_millis(1100)); // stale everywhere
    let calls = Arc::new(AtomicUsize::new(0));
    let got = tower.try_get_or_load("k", &LoadOptions::new().soft_timeout(SOFT), slow_source(&calls, "new"));
    assert_eq!(got.as_deref(), Ok("old"));
    eventually("this instance", "new", || tower.get::<String>("k"));
    eventually("the other instance", "new", || other.get("k"));
    assert_eq!(cache_tower_tests::peek::<String>(&redis, "k").as_deref(), Some("new"));
}

#[test]
fn a_hit_past_the_refresh_fraction_returns_at_once_and_refreshes_once() {
    let (tower, clock) = memory_tower();
    let calls = Arc::new(AtomicUsize::new(0));
    let options = LoadOptions::new().refresh_ahead(0.8);
    assert_eq!(tower.try_get_or_load("k", &options, || Ok::<_, String>("v1".to_owned())).as_deref(), Ok("v1"));
    clock.advance(Duration::from_secs(50));
    assert_eq!(tower.try_get_or_load("k", &options, slow_source(&calls, "v2")).as_deref(), Ok("v1"));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "at 50% of its TTL: no refresh");

    clock.advance(Duration::from_secs(31)); // 81%
    let slowest = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let (tower, source, slowest) = (tower.clone(), slow_source(&calls, "v2"), slowest.clone());
            let options = options.clone();
            thread::spawn(move || {
                let started = Instant::now();
                let got = tower.try_get_or_load("k", &options, source);
                let took = started.elapsed();
                let mut slowest = slowest.lock().unwrap();
                *slowest = (*slowest).max(took);
                got
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.join().unwrap().as_deref(), Ok("v1"), "the cached value, at once");
    }
    let slowest = *slowest.lock().unwrap();
    eprintln!("64 callers during a refresh: the slowest took {slowest:?} (the source takes {SLOW:?})");
    assert!(slowest < SLOW / 2, "a caller waited for the refresh: {slowest:?}");
    eventually("the refreshed value", "v2", || tower.get::<String>("k"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one refresh");
}

#[test]
fn an_async_refresh_too_and_a_failing_one_is_not_retried_on_every_hit() {
    let (tower, clock) = memory_tower();
    let runtime = runtime();
    let options = LoadOptions::new().refresh_ahead(0.8);
    let calls = Arc::new(AtomicUsize::new(0));
    let load = |value: Result<&'static str, &'static str>| {
        let calls = calls.clone();
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            value.map(str::to_owned).map_err(str::to_owned)
        }
    };
    let get_or_load = |source| runtime.block_on(tower.try_get_or_load_async("k", &options, source));
    assert_eq!(get_or_load(load(Ok("v1"))).as_deref(), Ok("v1"));
    clock.advance(Duration::from_secs(81));
    assert_eq!(get_or_load(load(Err("down"))).as_deref(), Ok("v1"), "the cached value, at once");
    thread::sleep(Duration::from_millis(50));
    assert_eq!(tower.get::<String>("k").as_deref(), Some("v1"), "a failed refresh changes nothing");
    for _ in 0..10 {
        assert_eq!(get_or_load(load(Ok("v2"))).as_deref(), Ok("v1"));
    }
    thread::sleep(Duration::from_millis(50));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the copy was refreshed ahead once: no retry on every hit");

    clock.advance(Duration::from_secs(20)); // its TTL ran out: the next call loads it
    assert_eq!(get_or_load(load(Ok("v2"))).as_deref(), Ok("v2"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    clock.advance(Duration::from_secs(81)); // the new copy is refreshed ahead in its turn
    assert_eq!(get_or_load(load(Ok("v3"))).as_deref(), Ok("v2"));
    eventually("the refreshed value", "v3", || tower.get::<String>("k"));
}

// ===== the macro =====

use cache_tower::{cached_tower, registry};

static SOURCE_SLOW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static RATE_VERSION: AtomicUsize = AtomicUsize::new(1);
static COUNTER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "slow_macro", key = "rate:{pair}", ttl = "100ms", soft_timeout = "50ms")]
fn rate(pair: String) -> Result<String, String> {
    if SOURCE_SLOW.load(Ordering::SeqCst) {
        thread::sleep(SLOW);
    }
    Ok(format!("{pair} v{}", RATE_VERSION.load(Ordering::SeqCst)))
}

#[cached_tower(config = "refresh_macro", key = "counter:{n}", ttl = "300ms", refresh_ahead = 0.5)]
fn counter(n: u64) -> u64 {
    n + COUNTER_RUNS.fetch_add(1, Ordering::SeqCst) as u64
}

#[cached_tower(config = "hard_macro", key = "slow:{id}", hard_timeout = "50ms")]
async fn slow_async(id: u64) -> Result<u64, String> {
    tokio::time::sleep(SLOW).await;
    Ok(id)
}

#[test]
fn memoized_functions_take_the_timeouts_and_eager_refresh() {
    for name in ["slow_macro", "refresh_macro", "hard_macro"] {
        registry::register_json(&format!(r#"{{"{name}": [{{"adapter": "memory", "stale": 3600}}]}}"#)).unwrap();
    }
    // Soft timeout: past its 100 ms TTL the stale result answers while the slow body goes on.
    assert_eq!(rate("EURUSD".into()).as_deref(), Ok("EURUSD v1"));
    thread::sleep(Duration::from_millis(150));
    SOURCE_SLOW.store(true, Ordering::SeqCst);
    RATE_VERSION.store(2, Ordering::SeqCst);
    let started = Instant::now();
    assert_eq!(rate("EURUSD".into()).as_deref(), Ok("EURUSD v1"));
    assert!(started.elapsed() < Duration::from_millis(50) + SLACK, "waited {:?}", started.elapsed());
    eventually("the memoized result", "EURUSD v2", || rate("EURUSD".into()).ok());

    // Eager refresh: past half its 300 ms TTL a call answers at once and refreshes.
    let first = counter(10);
    thread::sleep(Duration::from_millis(180));
    assert_eq!(counter(10), first, "the cached value, at once");
    let refreshed = (first + 1).to_string();
    eventually("the refreshed counter", &refreshed, || Some(counter(10).to_string()));

    // Hard timeout on an async function: an error, since nothing is stale.
    let got = runtime().block_on(slow_async(7));
    assert!(got.unwrap_err().contains("hard timeout"));
}
