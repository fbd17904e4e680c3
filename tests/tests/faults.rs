//! The fault suite: a memory layer over a Redis layer (100 ms timeout) while the server is killed
//! and restarted, frozen and thawed, its invalidation connection killed, its values corrupted,
//! its keys odd, one cold key stampeded, and one key rewritten while other towers read it.
//!
//! Each case asserts what a service relies on: nothing panics; no call waits past [`BUDGET`]
//! (the timeout plus 50 ms) where a call can meet the fault; values are right once Redis is back;
//! nothing written while Redis was healthy is lost to a freeze; and once a change has reached a
//! tower, no older value comes out of its memory again.
//!
//! A tracking connection that is lost and cannot come back while the data connections still work
//! is a case of its own: memory must not go on serving what it took in since.
//!
//! `CACHE_TOWER_SOAK=<seconds>` runs the load through kills, the load through freezes and the
//! version race for that long each, instead of a few seconds.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter, adapter::CacheAdapter};
use cache_tower_tests::User;
use cache_tower_tests::peer::{DELIVERY, POLL, Peer, json};
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
use cache_tower_tests::tracking::subscribed_tower;

mod both_paths;
mod raw_redis;

use both_paths::{Blocking, Calls, on_both_paths};
use raw_redis::Raw;

on_both_paths! {
    killing_the_invalidation_connection_clears_memory_and_tracking_resumes,
    killing_every_normal_connection_clears_memory_and_tracking_resumes,
    while_tracking_cannot_resume_memory_serves_nothing_stale,
    corrupt_values_are_misses_and_get_or_set_overwrites_them,
    unusual_keys_work_and_are_invalidated_across_towers,
}

/// The Redis layer's timeout in the cases that time their calls.
const TIMEOUT: Duration = Duration::from_millis(100);
/// The longest any one call may take, whatever Redis does: the timeout plus 50 ms.
const BUDGET: Duration = Duration::from_millis(150);
/// A generous timeout, for cases about something else than time (big values, stampedes), so a
/// slow machine does not turn a reply into a miss.
const PATIENT: Duration = Duration::from_secs(2);
/// How long after Redis is back the tower may take to use it again (the breaker's 1 s cool-down
/// and one probe, with room to spare) and its listener to subscribe again (back-off ≤ 1 s).
const RECOVERY: Duration = Duration::from_secs(5);
/// The environment variable that turns the long runs into a soak of that many seconds.
const SOAK: &str = "CACHE_TOWER_SOAK";
/// The peer binary, for the cross-process version race.
const PEER: &str = env!("CARGO_BIN_EXE_tower_peer");

/// How long a long-running case runs: `default`, or the soak time.
fn run_time(default: Duration) -> Duration {
    match std::env::var(SOAK) {
        Ok(text) if !text.trim().is_empty() => {
            let seconds: u64 =
                text.trim().parse().unwrap_or_else(|_| panic!("{SOAK}={text:?}: expected a whole number of seconds"));
            Duration::from_secs(seconds)
        }
        _ => default,
    }
}

/// The cases that load the machine take turns, so that one's load does not eat another's budget.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

// ===== support =====

fn redis_layer(url: &str, namespace: &str, timeout: Duration) -> RedisAdapter {
    RedisAdapter::builder()
        .url(url)
        .namespace(namespace)
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .expect("building the redis layer")
}

/// A subscribed memory-over-Redis tower on a server of the test's own.
struct Stack {
    server: RedisServer,
    namespace: String,
    timeout: Duration,
    memory: MemoryAdapter,
    tower: Arc<CacheTower>,
}

impl Stack {
    fn new(timeout: Duration) -> Self {
        let server = RedisServer::start();
        let namespace = unique_namespace("faults");
        let memory = MemoryAdapter::new();
        let tower = subscribed_tower(&memory, &redis_layer(&server.url(), &namespace, timeout));
        Self { server, namespace, timeout, memory, tower: Arc::new(tower) }
    }

    /// Another instance: a subscribed tower with a memory layer of its own, same server and
    /// namespace.
    fn another(&self) -> (MemoryAdapter, CacheTower) {
        let memory = MemoryAdapter::new();
        let tower = subscribed_tower(&memory, &redis_layer(&self.server.url(), &self.namespace, self.timeout));
        (memory, tower)
    }

    fn raw(&self) -> Raw {
        Raw::connect(&self.server.url(), &self.namespace)
    }
}

/// Reads `key` through `tower` until `memory` holds it, and still does a moment later (so the
/// news of the write that stored it has come and gone).
fn prime(api: &impl Calls, tower: &CacheTower, memory: &MemoryAdapter, key: &str, expected: &str) {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let got = api.get::<String>(tower, key);
        assert_eq!(got.as_deref(), Some(expected), "reading {key:?} before the change");
        if memory.exists(key).unwrap() {
            std::thread::sleep(Duration::from_millis(20));
            if memory.exists(key).unwrap() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "a read of {key:?} never left it in memory");
    }
}

/// Polls `get key` through `tower` until it answers `expected`; returns how long that took, and
/// prints it when `change` is named.
fn await_read(api: &impl Calls, tower: &CacheTower, key: &str, expected: Option<&str>, change: &str) -> Duration {
    let since = Instant::now();
    loop {
        let got = api.get::<String>(tower, key);
        let took = since.elapsed();
        if got.as_deref() == expected {
            if !change.is_empty() {
                eprintln!("{change}: read {:?} = {expected:?} after {took:?}", short(key));
            }
            return took;
        }
        assert!(
            took < DELIVERY,
            "{change}: still read {:?} = {got:?} after {took:?}, expected {expected:?}",
            short(key)
        );
        std::thread::sleep(POLL);
    }
}

/// The start of a long key, for messages.
fn short(key: &str) -> String {
    if key.chars().count() <= 24 { key.to_owned() } else { format!("{}...", key.chars().take(24).collect::<String>()) }
}

/// Calls, timed: the slowest, and those over a bound.
#[derive(Debug, Default)]
struct Timings {
    calls: u64,
    slowest: Duration,
    over: Vec<(Duration, String)>,
}

impl Timings {
    fn time<R>(&mut self, what: impl FnOnce() -> String, call: impl FnOnce() -> R) -> R {
        let started = Instant::now();
        let result = call();
        self.record(started.elapsed(), what);
        result
    }

    fn record(&mut self, took: Duration, what: impl FnOnce() -> String) {
        self.calls += 1;
        self.slowest = self.slowest.max(took);
        if took > BUDGET {
            self.over.push((took, what()));
        }
    }

    fn merge(&mut self, other: Timings) {
        self.calls += other.calls;
        self.slowest = self.slowest.max(other.slowest);
        self.over.extend(other.over);
    }

    #[track_caller]
    fn assert_within_budget(&self) {
        let mut over = self.over.clone();
        over.sort_by_key(|(took, _)| std::cmp::Reverse(*took));
        over.truncate(20);
        assert!(
            self.over.is_empty(),
            "{} of {} calls took longer than {BUDGET:?} (the timeout + 50 ms); the slowest: {over:?}",
            self.over.len(),
            self.calls
        );
    }
}

// ===== (a), (b): the server killed or frozen under load =====

/// Keys the load reads, computes and writes.
const LOAD_KEYS: u64 = 64;
/// Keys written before the fault and only read by the load.
const KEPT_KEYS: u64 = 100;
const LOAD_THREADS: usize = 8;
const LOAD_TASKS: usize = 8;
/// Between two calls of one actor: the load is busy, not a spin that starves the machine.
const PAUSE: Duration = Duration::from_millis(1);

/// Every value the load writes or computes for `key` is this one, so any read can be checked.
fn value_of(key: &str) -> String {
    format!("value of {key}")
}

fn kept_key(i: u64) -> String {
    format!("kept:{i}")
}

/// What one actor of the load saw.
#[derive(Debug, Default)]
struct Tally {
    timings: Timings,
    wrong: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.timings.merge(other.timings);
        self.wrong.extend(other.wrong);
    }

    /// A read must be a miss or the key's one value; `get` itself never fails.
    fn check_read(&mut self, key: &str, got: Option<String>) {
        match got {
            None => {}
            Some(value) if value == value_of(key) => {}
            other => self.wrong.push(format!("get {key:?} answered {other:?}")),
        }
    }

    fn check_computed(&mut self, key: &str, got: String) {
        if got != value_of(key) {
            self.wrong.push(format!("get_or_set {key:?} answered {got:?}"));
        }
    }
}

/// The operation of an actor's `round`, and its key.
fn load_step(actor: u64, round: u64) -> (u64, String) {
    let op = round % 4;
    let key = if op == 3 {
        kept_key((actor * 31 + round * 7) % KEPT_KEYS)
    } else {
        format!("load:{}", (actor * 17 + round * 5) % LOAD_KEYS)
    };
    (op, key)
}

fn sync_actor(tower: &CacheTower, actor: u64, stop: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        let (op, key) = load_step(actor, round);
        let started = Instant::now();
        match op {
            0 | 3 => {
                let got = tower.get::<String>(&key);
                tally.check_read(&key, got);
            }
            1 => {
                let got = tower.get_or_set(&key, || value_of(&key));
                tally.check_computed(&key, got);
            }
            _ => {
                // Fails while Redis is down (memory is still written); only its time matters here.
                let _ = tower.set(&key, value_of(&key));
            }
        }
        tally.timings.record(started.elapsed(), || format!("thread {actor}: op {op} on {key}"));
        round += 1;
        std::thread::sleep(PAUSE);
    }
    tally
}

async fn async_actor(tower: &CacheTower, actor: u64, stop: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        let (op, key) = load_step(actor, round);
        let started = Instant::now();
        match op {
            0 | 3 => {
                let got = tower.get_async::<String>(&key).await;
                tally.check_read(&key, got);
            }
            1 => {
                let got = tower.get_or_set_async(&key, || async { value_of(&key) }).await;
                tally.check_computed(&key, got);
            }
            _ => {
                let _ = tower.set_async(&key, value_of(&key)).await;
            }
        }
        tally.timings.record(started.elapsed(), || format!("task {actor}: op {op} on {key}"));
        round += 1;
        tokio::time::sleep(PAUSE).await;
    }
    tally
}

/// 8 threads and 8 tokio tasks calling `get`, `get_or_set` and `set` on one tower.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Tally>>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
    runtime: tokio::runtime::Runtime,
}

impl Load {
    fn start(tower: &Arc<CacheTower>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("building a tokio runtime");
        let threads = (0..LOAD_THREADS as u64)
            .map(|actor| {
                let (tower, stop) = (Arc::clone(tower), Arc::clone(&stop));
                std::thread::spawn(move || sync_actor(&tower, actor, &stop))
            })
            .collect();
        let tasks = (0..LOAD_TASKS as u64)
            .map(|actor| {
                let (tower, stop) = (Arc::clone(tower), Arc::clone(&stop));
                runtime.spawn(async move { async_actor(&tower, 100 + actor, &stop).await })
            })
            .collect();
        Self { stop, threads, tasks, runtime }
    }

    /// Stops the load and gathers what it saw; a panic in an actor is a wrong answer.
    fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Tally::default();
        for thread in self.threads {
            match thread.join() {
                Ok(tally) => total.merge(tally),
                Err(panic) => total.wrong.push(format!("a load thread panicked: {}", panic_message(&*panic))),
            }
        }
        for task in self.tasks {
            match self.runtime.block_on(task) {
                Ok(tally) => total.merge(tally),
                Err(err) if err.is_panic() => {
                    total.wrong.push(format!("a load task panicked: {}", panic_message(&*err.into_panic())));
                }
                Err(err) => total.wrong.push(format!("a load task failed: {err}")),
            }
        }
        total
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".to_owned())
}

#[track_caller]
fn assert_load_went_well(tally: &Tally, min_calls: u64) {
    let first: Vec<_> = tally.wrong.iter().take(20).collect();
    assert!(tally.wrong.is_empty(), "{} wrong answers or panics under load: {first:?}", tally.wrong.len());
    assert!(tally.timings.calls >= min_calls, "too few calls to tell: {}", tally.timings.calls);
    tally.timings.assert_within_budget();
    eprintln!("load: {} calls, the slowest took {:?}", tally.timings.calls, tally.timings.slowest);
}

/// Writes the kept keys through the tower (half with `set`, half with one `mset`) and checks
/// that Redis has them.
fn write_kept_keys(stack: &Stack) {
    let half = KEPT_KEYS / 2;
    for i in 0..half {
        stack.tower.set(&kept_key(i), value_of(&kept_key(i))).expect("Redis is healthy");
    }
    let items: Vec<(String, String)> = (half..KEPT_KEYS).map(|i| (kept_key(i), value_of(&kept_key(i)))).collect();
    stack.tower.mset(items).expect("Redis is healthy");
    assert_kept_keys_in_redis(stack);
}

#[track_caller]
fn assert_kept_keys_in_redis(stack: &Stack) {
    let mut raw = stack.raw();
    let keys: Vec<String> = (0..KEPT_KEYS).map(|i| raw.key(&kept_key(i))).collect();
    let stored: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut raw.connection).expect("raw MGET");
    let lost: Vec<String> = (0..KEPT_KEYS)
        .zip(&stored)
        .filter(|(i, text)| text.as_deref() != Some(json(&value_of(&kept_key(*i))).as_str()))
        .map(|(i, _)| kept_key(i))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {KEPT_KEYS} keys written while Redis was healthy are lost or changed: {lost:?}",
        lost.len()
    );
}

/// Once the fault is over: a write through the tower reaches Redis again within [`RECOVERY`].
fn await_redis_in_use(stack: &Stack) -> Duration {
    let since = Instant::now();
    let mut raw = stack.raw();
    loop {
        let _ = stack.tower.set("recovered", "yes".to_owned());
        if raw.get("recovered").as_deref() == Some(json("yes").as_str()) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < RECOVERY,
            "the Redis layer was not used again within {RECOVERY:?}: {:?}",
            stack.tower.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Once the fault is over, with the load stopped: every load key reads right through
/// `get_or_set` (computed afresh where it is gone), the invalidation listener is subscribed
/// again, and an external write to any key reaches the tower's reads: no copy from before the
/// fault survives its invalidation.
fn assert_recovered(stack: &Stack) {
    let used_again = await_redis_in_use(stack);
    let mut raw = stack.raw();
    let since = Instant::now();
    while raw.tracking_clients().is_empty() {
        assert!(since.elapsed() < RECOVERY, "the invalidation listener did not subscribe again within {RECOVERY:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("recovery: Redis in use again after {used_again:?}, a tracking connection {:?} later", since.elapsed());

    let computed = AtomicUsize::new(0);
    for i in 0..LOAD_KEYS {
        let key = format!("load:{i}");
        let got = stack.tower.get_or_set(&key, || {
            computed.fetch_add(1, Ordering::Relaxed);
            value_of(&key)
        });
        assert_eq!(got, value_of(&key), "after recovery");
    }
    eprintln!("recovery: {} of {LOAD_KEYS} load keys computed afresh", computed.load(Ordering::Relaxed));

    prime(&Blocking, &stack.tower, &stack.memory, "load:0", &value_of("load:0"));
    for i in 0..LOAD_KEYS {
        raw.set(&format!("load:{i}"), &json(&format!("rewritten {i}")));
    }
    let slowest = (0..LOAD_KEYS)
        .map(|i| {
            let expected = format!("rewritten {i}");
            await_read(&Blocking, &stack.tower, &format!("load:{i}"), Some(&expected), "")
        })
        .max();
    eprintln!("recovery: external SETs of every load key read back, the slowest after {slowest:?}");
}

#[test]
fn redis_killed_and_restarted_under_load() {
    let _heavy = heavy();
    let mut stack = Stack::new(TIMEOUT);
    write_kept_keys(&stack);
    let until = Instant::now() + run_time(Duration::from_secs(2));
    let load = Load::start(&stack.tower);
    let mut cycles = 0;
    while cycles == 0 || Instant::now() < until {
        std::thread::sleep(Duration::from_millis(500));
        stack.server.kill();
        std::thread::sleep(Duration::from_millis(700));
        stack.server.restart(); // empty: a server without persistence loses its data, as it should
        std::thread::sleep(Duration::from_millis(1300)); // the breaker's cool-down, then a probe
        cycles += 1;
    }
    let tally = load.finish();

    assert_load_went_well(&tally, 1000);
    let redis = &stack.tower.stats()[1];
    assert!(redis.errors > 0 && redis.skipped > 0, "the load met the dead server and the breaker: {redis:?}");
    assert_recovered(&stack);

    // The restart emptied Redis, and losing the connection cleared memory: every key written
    // before the kill is computed afresh, and stored again.
    let computed = AtomicUsize::new(0);
    for i in 0..KEPT_KEYS {
        let key = kept_key(i);
        let got = stack.tower.get_or_set(&key, || {
            computed.fetch_add(1, Ordering::Relaxed);
            value_of(&key)
        });
        assert_eq!(got, value_of(&key));
    }
    assert_eq!(computed.into_inner() as u64, KEPT_KEYS, "keys lost with the server are computed afresh");
    assert_kept_keys_in_redis(&stack);
    eprintln!("{cycles} kill/restart cycles");
}

#[test]
fn redis_frozen_and_thawed_under_load_loses_nothing() {
    let _heavy = heavy();
    let mut stack = Stack::new(TIMEOUT);
    write_kept_keys(&stack);
    let until = Instant::now() + run_time(Duration::from_secs(2));
    let load = Load::start(&stack.tower);
    let mut cycles = 0;
    while cycles == 0 || Instant::now() < until {
        std::thread::sleep(Duration::from_millis(500));
        stack.server.freeze();
        std::thread::sleep(Duration::from_millis(1200)); // past the breaker's cool-down: a probe meets the freeze
        stack.server.thaw();
        std::thread::sleep(Duration::from_millis(1300));
        cycles += 1;
    }
    let tally = load.finish();

    assert_load_went_well(&tally, 1000);
    let redis = &stack.tower.stats()[1];
    assert!(redis.errors > 0 && redis.skipped > 0, "the load met the frozen server and the breaker: {redis:?}");
    assert_kept_keys_in_redis(&stack);
    // And a tower that never saw them reads them all back.
    let (_, fresh) = stack.another();
    let keys: Vec<String> = (0..KEPT_KEYS).map(kept_key).collect();
    let got = fresh.mget::<String, _>(&keys);
    let wrong: Vec<&String> = keys.iter().filter(|key| got[*key].as_deref() != Some(value_of(key).as_str())).collect();
    assert!(wrong.is_empty(), "read back wrong after the freeze: {wrong:?}");
    assert_recovered(&stack);
    eprintln!("{cycles} freeze/thaw cycles");
}

// ===== (c): the invalidation connection killed =====

fn killing_the_invalidation_connection_clears_memory_and_tracking_resumes(api: &impl Calls) {
    kill_and_recover(api, |raw, tracking| raw.run(&["CLIENT", "KILL", "ID", &tracking.to_string()]));
}

fn killing_every_normal_connection_clears_memory_and_tracking_resumes(api: &impl Calls) {
    // The tower's own data connections go too: a call or two fail (misses), none hang.
    kill_and_recover(api, |raw, _| raw.run(&["CLIENT", "KILL", "TYPE", "normal"]));
}

/// Primes memory, kills the tracking connection with `kill`, and checks that memory is cleared,
/// that a change made while nobody listened is read, and that tracking resumes.
fn kill_and_recover(api: &impl Calls, kill: impl FnOnce(&mut Raw, u64)) {
    let stack = Stack::new(TIMEOUT);
    let (tower, memory) = (&*stack.tower, &stack.memory);
    let mut raw = stack.raw();
    let mut timings = Timings::default();
    for (key, value) in [("k1", "1"), ("k2", "2"), ("gap", "before")] {
        raw.set(key, &json(value));
        prime(api, tower, memory, key, value);
    }
    let tracking = raw.tracking_clients();
    assert_eq!(tracking.len(), 1, "one tracking connection: {tracking:?}");

    kill(&mut raw, tracking[0]);
    raw.set("gap", &json("changed while nobody listened"));

    // Memory is cleared: changes may have been missed.
    let since = Instant::now();
    while memory.exists("k1").unwrap() || memory.exists("k2").unwrap() {
        assert!(since.elapsed() < DELIVERY, "memory kept its copies {DELIVERY:?} after the tracking connection died");
        std::thread::sleep(POLL);
    }
    eprintln!("memory cleared {:?} after the tracking connection was killed", since.elapsed());

    // The change nobody was told about is read, not the old copy.
    let since = Instant::now();
    loop {
        let got = timings.time(|| "get gap".to_owned(), || api.get::<String>(tower, "gap"));
        if got.as_deref() == Some("changed while nobody listened") {
            break;
        }
        assert!(since.elapsed() < DELIVERY, "still read {got:?} {DELIVERY:?} after the tracking connection died");
        std::thread::sleep(POLL);
    }

    // Tracking resumes on a new connection, and delivers again.
    let since = Instant::now();
    loop {
        let resumed = raw.tracking_clients();
        if resumed.len() == 1 && resumed[0] != tracking[0] {
            break;
        }
        assert!(since.elapsed() < RECOVERY, "no new tracking connection: {tracking:?}, then {resumed:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    prime(api, tower, memory, "k1", "1");
    raw.set("k1", &json("after"));
    await_read(api, tower, "k1", Some("after"), "external SET once tracking resumed");
    for key in ["k2", "gap"] {
        let got = timings.time(|| format!("get {key}"), || api.get::<String>(tower, key));
        assert!(got.is_some(), "{key} reads again");
    }
    timings.assert_within_budget();
}

/// The tracking connection is lost and cannot come back (the server is full), while the data
/// connections go on working. Memory was cleared once, at the loss; what A reads afterwards goes
/// back into memory, and with nobody listening, a change by B must still not leave A reading the
/// old value for good.
fn while_tracking_cannot_resume_memory_serves_nothing_stale(api: &impl Calls) {
    let stack = Stack::new(TIMEOUT);
    let (a, memory) = (&*stack.tower, &stack.memory);
    let mut raw = stack.raw();
    let a_tracking = raw.tracking_clients();
    assert_eq!(a_tracking.len(), 1);
    let (_, b) = stack.another();
    // Every connection the towers use for data is open (and kept) before the server is full.
    api.set(&b, "k", "v1".to_owned()).unwrap();
    prime(api, a, memory, "k", "v1");
    let connected = raw.info_field("clients", "connected_clients");
    // Full once A's tracking connection is gone: it cannot come back, the others go on working.
    raw.run(&["CONFIG", "SET", "maxclients", &(connected - 1).to_string()]);
    raw.run(&["CLIENT", "KILL", "ID", &a_tracking[0].to_string()]);
    let since = Instant::now();
    while memory.exists("k").unwrap() {
        assert!(since.elapsed() < DELIVERY, "memory kept its copy after the tracking connection died");
        std::thread::sleep(POLL);
    }

    // A reads k again over its open data connection; then B changes it, and nobody can tell A.
    assert_eq!(api.get::<String>(a, "k").as_deref(), Some("v1"));
    api.set(&b, "k", "v2".to_owned()).unwrap();
    assert_eq!(raw.get("k"), Some(json("v2")));
    assert!(!raw.tracking_clients().contains(&a_tracking[0]));
    // Losing the signal must not turn into serving stale data (docs/architecture.md §7): without a
    // subscription, what A's memory took in since cannot be trusted.
    await_read(api, a, "k", Some("v2"), "B set k while A's listener could not subscribe");
}

// ===== (d): corrupt values =====

const BIG: usize = 10 * 1024 * 1024;

fn corrupt_values_are_misses_and_get_or_set_overwrites_them(api: &impl Calls) {
    let _heavy = heavy();
    let stack = Stack::new(PATIENT);
    let tower = &*stack.tower;
    let mut raw = stack.raw();

    let big_text = "x".repeat(BIG);
    let big_json = json(&big_text);
    let strings: Vec<(&str, Vec<u8>)> = vec![
        ("not json", b"definitely not json".to_vec()),
        ("empty", Vec::new()),
        ("a number", b"42".to_vec()),
        ("truncated", br#""half a str"#.to_vec()),
        ("not utf-8", b"\"\xff\xfe\"".to_vec()),
        ("10 MB truncated", big_json.as_bytes()[..big_json.len() - 1].to_vec()),
    ];
    let users: Vec<(&str, Vec<u8>)> = vec![
        ("wrong shape", br#"{"id": "seven", "name": 7}"#.to_vec()),
        ("a string, not a user", br#""user 7""#.to_vec()),
        ("truncated user", br#"{"id":7,"name":"user 7","email":"us"#.to_vec()),
    ];
    for (key, bytes) in strings.iter().chain(&users) {
        raw.on_key("SET", key, &[bytes.as_slice()]);
    }
    raw.set("10 MB", &big_json);

    for (key, _) in &strings {
        assert_eq!(api.get::<String>(tower, key), None, "{key:?} reads as a miss");
    }
    for (key, _) in &users {
        assert_eq!(api.get::<User>(tower, key), None, "{key:?} reads as a miss");
    }
    let keys: Vec<&str> = strings.iter().map(|(key, _)| *key).chain(["10 MB"]).collect();
    let many = api.mget::<String, _>(tower, &keys);
    assert!(strings.iter().all(|(key, _)| many[*key].is_none()), "mget: corrupt values are misses");
    assert!(many["10 MB"].as_ref().is_some_and(|text| *text == big_text), "mget: the 10 MB value decodes");
    let got = api.get::<String>(tower, "10 MB");
    assert!(got.is_some_and(|text| text == big_text), "get: the 10 MB value decodes");
    assert!(tower.stats()[1].decode_failures >= (strings.len() + users.len()) as u64, "{:?}", tower.stats()[1]);

    for (key, _) in &strings {
        let fresh = format!("fresh {key}");
        assert_eq!(api.get_or_set(tower, key, || fresh.clone()), fresh);
        assert_eq!(raw.get(key), Some(json(&fresh)), "get_or_set overwrote {key:?} in Redis");
        assert_eq!(api.get::<String>(tower, key), Some(fresh));
    }
    for (i, (key, _)) in users.iter().enumerate() {
        let user = User::sample(i as u64);
        assert_eq!(api.get_or_set(tower, key, || user.clone()), user);
        let stored = raw.get(key).expect("overwritten");
        assert_eq!(serde_json::from_str::<User>(&stored).unwrap(), user, "get_or_set overwrote {key:?} in Redis");
    }

    // A good copy in memory, corrupted behind the tower's back: evicted, then a miss.
    raw.set("good", &json("good"));
    prime(api, tower, &stack.memory, "good", "good");
    raw.set("good", "{garbage");
    await_read(api, tower, "good", None, "corrupted externally");
    assert_eq!(api.get_or_set(tower, "good", || "good again".to_owned()), "good again");
    assert_eq!(raw.get("good"), Some(json("good again")));
}

// ===== (e): unusual keys =====

fn unusual_keys() -> Vec<String> {
    vec![
        "with space".to_owned(),
        " leading and trailing ".to_owned(),
        "new\nline".to_owned(),
        "crlf\r\nand\ttab".to_owned(),
        "ünïcødé ключ 鍵 🚀".to_owned(),
        "glob*?[chars]\\".to_owned(),
        "k".repeat(1024),
        "é".repeat(512),
    ]
}

fn unusual_keys_work_and_are_invalidated_across_towers(api: &impl Calls) {
    let stack = Stack::new(PATIENT);
    let (a, memory_a) = (&*stack.tower, &stack.memory);
    let (_, b) = stack.another();
    let mut raw = stack.raw();
    for key in unusual_keys() {
        let short = short(&key);
        api.set(a, &key, "v1".to_owned()).unwrap();
        assert_eq!(raw.get(&key), Some(json("v1")), "{short:?} is stored under namespace + key");
        assert_eq!(api.get::<String>(&b, &key).as_deref(), Some("v1"), "{short:?}");

        prime(api, a, memory_a, &key, "v1");
        api.set(&b, &key, "v2".to_owned()).unwrap();
        await_read(api, a, &key, Some("v2"), &format!("B set {short:?}"));

        prime(api, a, memory_a, &key, "v2");
        api.delete(&b, &key).unwrap();
        await_read(api, a, &key, None, &format!("B deleted {short:?}"));

        api.set(a, &key, "v3".to_owned()).unwrap();
        api.delete(a, &key).unwrap();
        assert_eq!(api.get::<String>(a, &key), None, "{short:?}");
        assert_eq!(raw.get(&key), None, "{short:?} deleted from Redis");
    }
    assert!(stack.tower.stats().iter().all(|layer| layer.errors == 0), "{:?}", stack.tower.stats());
}

// ===== (f): a stampede on one cold key =====

#[test]
fn thousands_of_concurrent_misses_on_one_key_share_one_computation() {
    const THREADS: usize = 8;
    const CALLS_PER_THREAD: usize = 50;
    const TASKS: usize = 64;
    const CALLS_PER_TASK: usize = 25; // 8 × 50 + 64 × 25 = 2,000 calls
    const BODY: Duration = Duration::from_millis(20);
    /// Long enough to mean "hung" on any machine.
    const HANG: Duration = Duration::from_secs(30);
    const KEY: &str = "cold";

    let _heavy = heavy();
    let stack = Stack::new(PATIENT);
    let runs = Arc::new(AtomicUsize::new(0));
    let value = || User::sample(7);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().expect("a tokio runtime");
    let start = Instant::now() + Duration::from_millis(300);

    let threads: Vec<JoinHandle<usize>> = (0..THREADS)
        .map(|_| {
            let (tower, runs) = (Arc::clone(&stack.tower), Arc::clone(&runs));
            std::thread::spawn(move || {
                std::thread::sleep(start.saturating_duration_since(Instant::now()));
                (0..CALLS_PER_THREAD)
                    .filter(|_| {
                        let got = tower.get_or_set(KEY, || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(BODY);
                            value()
                        });
                        got == value()
                    })
                    .count()
            })
        })
        .collect();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (tower, runs) = (Arc::clone(&stack.tower), Arc::clone(&runs));
            runtime.spawn(async move {
                tokio::time::sleep_until(tokio::time::Instant::from_std(start)).await;
                let mut right = 0;
                for _ in 0..CALLS_PER_TASK {
                    let got = tower
                        .get_or_set_async(KEY, || async {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(BODY).await;
                            value()
                        })
                        .await;
                    right += usize::from(got == value());
                }
                right
            })
        })
        .collect();

    let deadline = Instant::now() + HANG;
    while !threads.iter().all(JoinHandle::is_finished) {
        assert!(Instant::now() < deadline, "a thread is still in get_or_set after {HANG:?}: hung");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut right: usize =
        threads.into_iter().map(|thread| thread.join().expect("a thread panicked in get_or_set")).sum();
    let all = runtime.block_on(async {
        tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), async {
            let mut right = 0;
            for task in tasks {
                right += task.await.expect("a task panicked in get_or_set_async");
            }
            right
        })
        .await
    });
    right += all.expect("a task hung in get_or_set_async");

    assert_eq!(right, THREADS * CALLS_PER_THREAD + TASKS * CALLS_PER_TASK, "every call got the value");
    let runs = runs.load(Ordering::SeqCst);
    // Callers that arrive during the flight share it. One whose read missed just before the
    // value was stored and who asks for the flight just after it landed starts a second one:
    // that is the "or very few times" of the contract, and never more than twice here.
    assert!((1..=2).contains(&runs), "the body ran {runs} times for 2,000 concurrent calls on one cold key");
    eprintln!("stampede: the body ran {runs} time(s) for 2,000 calls");
    let stored = stack.raw().get(KEY).expect("the value is in Redis");
    assert_eq!(serde_json::from_str::<User>(&stored).unwrap(), value());
}

// ===== (g): no read goes back once a newer version was seen =====

/// What one reader saw of a key that only ever moves forward.
#[derive(Debug, Default)]
struct Versions {
    reads: u64,
    /// The highest version read so far.
    seen: u64,
    distinct: u64,
    /// Reads that answered less than a version read before: (seen before, read now).
    went_back: Vec<(u64, u64)>,
    /// Misses after the first hit (the key is never deleted; only a failing layer misses).
    misses: u64,
}

impl Versions {
    fn observe(&mut self, got: Option<u64>) {
        self.reads += 1;
        match got {
            None if self.seen > 0 => self.misses += 1,
            None => {}
            Some(version) if version < self.seen => self.went_back.push((self.seen, version)),
            Some(version) => {
                if version > self.seen {
                    self.distinct += 1;
                }
                self.seen = version;
            }
        }
    }

    #[track_caller]
    fn assert_never_went_back(&self, reader: &str) {
        let first: Vec<_> = self.went_back.iter().take(10).collect();
        assert!(
            self.went_back.is_empty(),
            "{reader}: {} reads returned an older version than one already read (seen, read): {first:?}; {self:?}",
            self.went_back.len()
        );
        assert!(self.distinct >= 10, "{reader}: too few versions seen to tell: {self:?}");
    }
}

/// The writer's pause after `version`: short, and now and then long enough for the readers to
/// read a version more than once (from memory).
fn writer_pause(version: u64) -> Duration {
    if version % 50 == 0 { Duration::from_millis(5) } else { Duration::from_micros(300) }
}

#[test]
fn no_read_goes_back_after_a_newer_version_was_seen_in_one_process() {
    const SYNC_READERS: usize = 2;
    const ASYNC_READERS: usize = 2;
    let _heavy = heavy();
    let run = run_time(Duration::from_secs(3));
    let stack = Stack::new(PATIENT);
    let readers: Vec<(MemoryAdapter, Arc<CacheTower>)> =
        (0..SYNC_READERS + ASYNC_READERS).map(|_| stack.another()).map(|(m, t)| (m, Arc::new(t))).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let latest = Arc::new(AtomicU64::new(0));

    let writer = {
        let (tower, stop, latest) = (Arc::clone(&stack.tower), Arc::clone(&stop), Arc::clone(&latest));
        std::thread::spawn(move || {
            let mut version = 0;
            while !stop.load(Ordering::Relaxed) {
                version += 1;
                tower.set("k", version).unwrap_or_else(|err| panic!("writing version {version}: {err}"));
                latest.store(version, Ordering::SeqCst);
                std::thread::sleep(writer_pause(version));
            }
        })
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
    let sync_readers: Vec<JoinHandle<Versions>> = readers[..SYNC_READERS]
        .iter()
        .map(|(_, tower)| {
            let (tower, stop) = (Arc::clone(tower), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut versions = Versions::default();
                while !stop.load(Ordering::Relaxed) {
                    versions.observe(tower.get::<u64>("k"));
                    std::thread::sleep(Duration::from_micros(100));
                }
                versions
            })
        })
        .collect();
    let async_readers: Vec<tokio::task::JoinHandle<Versions>> = readers[SYNC_READERS..]
        .iter()
        .map(|(_, tower)| {
            let (tower, stop) = (Arc::clone(tower), Arc::clone(&stop));
            runtime.spawn(async move {
                let mut versions = Versions::default();
                while !stop.load(Ordering::Relaxed) {
                    versions.observe(tower.get_async::<u64>("k").await);
                    tokio::time::sleep(Duration::from_micros(100)).await;
                }
                versions
            })
        })
        .collect();

    std::thread::sleep(run);
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("the writer panicked");
    let mut seen: Vec<(String, Versions)> = Vec::new();
    for (i, reader) in sync_readers.into_iter().enumerate() {
        seen.push((format!("sync reader {i}"), reader.join().expect("a reader panicked")));
    }
    for (i, reader) in async_readers.into_iter().enumerate() {
        seen.push((format!("async reader {i}"), runtime.block_on(reader).expect("a reader panicked")));
    }

    let last = latest.load(Ordering::SeqCst);
    for ((name, versions), (memory, tower)) in seen.iter().zip(&readers) {
        eprintln!("{name}: {versions:?}; memory {:?}", tower.stats()[0]);
        versions.assert_never_went_back(name);
        assert!(versions.seen <= last, "{name} read {} but only {last} was written", versions.seen);
        let stats = tower.stats();
        assert_eq!(stats[1].errors, 0, "{name}: {:?}", stats[1]);
        assert_eq!(versions.misses, 0, "{name} missed a key that Redis always had: {versions:?}");
        assert!(
            stats[0].hits > 0 && stats[1].hits > 0,
            "{name}: memory served reads, and evictions sent reads to Redis: {stats:?}"
        );
        // The last version reaches every reader.
        let since = Instant::now();
        while tower.get::<u64>("k") != Some(last) {
            assert!(
                since.elapsed() < DELIVERY,
                "{name} never read the last version {last}; memory has {:?}",
                memory.get("k")
            );
            std::thread::sleep(POLL);
        }
    }
    eprintln!("version race: {last} versions written in {run:?}");
}

#[test]
fn no_read_goes_back_after_a_newer_version_was_seen_across_processes() {
    let _heavy = heavy();
    let run = run_time(Duration::from_secs(2));
    let server = RedisServer::start();
    let namespace = unique_namespace("versions");
    let mut a = Peer::start(PEER, "A", &server.url(), &namespace, &[]);
    let mut b = Peer::start(PEER, "B", &server.url(), &namespace, &[]);
    let stop = Arc::new(AtomicBool::new(false));

    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut version = 0u64;
            while !stop.load(Ordering::Relaxed) {
                version += 1;
                b.set("k", &version.to_string());
                std::thread::sleep(writer_pause(version));
            }
            (b, version)
        })
    };
    let mut versions = Versions::default();
    // Reads that found k in memory, and reads that had to go to Redis.
    let (mut from_memory, mut from_redis) = (0u64, 0u64);
    let until = Instant::now() + run;
    while Instant::now() < until {
        if a.holds("k") {
            from_memory += 1;
        } else {
            from_redis += 1;
        }
        let got = a.get("k").map(|text| text.parse::<u64>().unwrap_or_else(|_| panic!("A read {text:?}")));
        versions.observe(got);
    }
    stop.store(true, Ordering::Relaxed);
    let (_b, last) = writer.join().expect("the writer panicked");

    eprintln!("A: {versions:?}; memory held k before {from_memory} of {} reads", versions.reads);
    versions.assert_never_went_back("A");
    assert_eq!(versions.misses, 0, "A missed a key that Redis always had: {versions:?}");
    assert!(
        from_memory > 0 && from_redis > 0,
        "A read from memory ({from_memory}), and from Redis after evictions ({from_redis})"
    );
    a.await_value("k", Some(&last.to_string()), "B's last version");
}
