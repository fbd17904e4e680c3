//! Faults of the Redis layer, with a real server that each test kills (SIGKILL), freezes
//! (SIGSTOP), restarts or thaws: reads and `get_or_set` never fail and never wait longer than the
//! timeout plus 50 ms, the circuit breaker opens and lets the layer back in once Redis returns,
//! explicit writes report the failing layer after writing the others, and a freeze loses nothing.
//!
//! Every behaviour runs on the blocking path and on the async one (see `both_paths`).

use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter, adapter::CacheAdapter, error::ErrorKind};
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
use cache_tower_tests::{User, peek, put};

mod both_paths;

use both_paths::{Calls, on_both_paths};

on_both_paths! {
    redis_killed_mid_run_costs_no_errors_and_no_long_waits,
    redis_frozen_mid_run_costs_no_errors_and_no_long_waits,
    breaker_opens_and_the_layer_is_used_again_after_a_restart,
    breaker_opens_and_the_layer_is_used_again_after_a_thaw,
    explicit_writes_to_a_dead_redis_name_the_layer_after_writing_memory,
    a_freeze_loses_nothing_written_while_healthy,
}

/// The Redis layer's timeout in these tests.
const TIMEOUT: Duration = Duration::from_millis(100);
/// The longest any one call may take while Redis is down or hung (issue 3, ADR 4).
const BOUND: Duration = Duration::from_millis(150);
/// How long after Redis is back the layer must be in use again: the breaker's 1 s cool-down,
/// then one probe.
const RECOVERY: Duration = Duration::from_millis(2500);

/// A memory layer over a Redis layer on a server of the test's own.
struct Stack {
    server: RedisServer,
    namespace: String,
    memory: MemoryAdapter,
    redis: RedisAdapter,
    tower: CacheTower,
}

impl Stack {
    fn new() -> Self {
        let server = RedisServer::start();
        let namespace = unique_namespace("outage");
        let memory = MemoryAdapter::new();
        let redis = RedisAdapter::builder()
            .url(server.url())
            .namespace(namespace.clone())
            .ttl(Duration::from_secs(60))
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()
            .expect("building the redis layer");
        let tower = CacheTower::new();
        tower.add_layer(memory.clone());
        tower.add_layer(redis.clone());
        Self { server, namespace, memory, redis, tower }
    }

    /// A plain connection to the server, to see what is stored without the adapter.
    fn raw(&self) -> redis::Connection {
        let client = redis::Client::open(self.server.url()).expect("a valid URL");
        client.get_connection_with_timeout(Duration::from_secs(5)).expect("connecting to the test redis")
    }

    fn raw_get(&self, key: &str) -> Option<String> {
        redis::cmd("GET").arg(format!("{}{key}", self.namespace)).query(&mut self.raw()).expect("raw GET")
    }
}

/// The slow calls of a run (over 10 ms), to assert on and to show when the assertion fails.
#[derive(Debug, Default)]
struct Timings {
    calls: usize,
    slowest: Vec<(Duration, String)>,
}

impl Timings {
    /// Runs `call`, timing it.
    fn time<R>(&mut self, what: impl FnOnce() -> String, call: impl FnOnce() -> R) -> R {
        let started = Instant::now();
        let result = call();
        let took = started.elapsed();
        self.calls += 1;
        if took > Duration::from_millis(10) {
            self.slowest.push((took, what()));
        }
        result
    }

    #[track_caller]
    fn assert_all_within(&self, bound: Duration) {
        let over: Vec<_> = self.slowest.iter().filter(|(took, _)| *took > bound).collect();
        assert!(over.is_empty(), "{} of {} calls took longer than {bound:?}: {over:?}", over.len(), self.calls);
    }
}

/// Reads and `get_or_set`s through the tower, checking every answer and timing every call.
#[derive(Debug, Default)]
struct ReadLoop {
    round: u64,
    timings: Timings,
}

impl ReadLoop {
    /// One round: a key no one has (a miss in memory, so Redis is asked), a key computed on the
    /// spot (a miss, a computation, a write to both layers), a batch of keys two of which are
    /// computed on the spot, a key computed earlier (answered by
    /// memory, or a miss once memory was cleared for a lost invalidation connection).
    fn round(&mut self, api: &impl Calls, tower: &CacheTower) {
        let (i, timings) = (self.round, &mut self.timings);
        let absent = format!("absent:{i}");
        let got = timings.time(|| format!("get {absent}"), || api.get::<u64>(tower, &absent));
        assert_eq!(got, None, "{absent}");

        let computed = format!("computed:{i}");
        let got = timings.time(|| format!("get_or_set {computed}"), || api.get_or_set(tower, &computed, || i));
        assert_eq!(got, i, "{computed}");

        // A batch: one read per layer, one loader call, one write per layer; a hung Redis must
        // cost it one timeout, not one for the read and another for the write.
        let batch = [format!("batch:{i}:a"), format!("batch:{i}:b"), format!("computed:{i}")];
        let keys: Vec<&str> = batch.iter().map(String::as_str).collect();
        let load = |missing: &[&str]| Ok(missing.iter().map(|key| (key.to_string(), i)).collect());
        let got = timings.time(|| format!("get_or_set_many {keys:?}"), || api.try_get_or_set_many(tower, &keys, load));
        assert_eq!(got.map(|values| values.len()), Ok(3), "{keys:?}");

        let earlier = format!("computed:{}", i / 2);
        let got = timings.time(|| format!("get {earlier}"), || api.get::<u64>(tower, &earlier));
        // Memory answers while the invalidation connection is up; when it is lost (Redis killed
        // or frozen) memory is cleared, since changes may be missed, and Redis cannot answer:
        // then a miss is right. A wrong value never is.
        assert!(got.is_none() || got == Some(i / 2), "{earlier}: {got:?}");

        self.round += 1;
        std::thread::sleep(Duration::from_millis(2));
    }

    fn run_until(&mut self, api: &impl Calls, tower: &CacheTower, until: Instant) {
        while Instant::now() < until {
            self.round(api, tower);
        }
    }
}

/// Runs a [`ReadLoop`] for 300 ms on a healthy server, applies `fault`, and goes on until 1.6 s
/// (so the breaker's cool-down passes and one probe goes out during the fault).
fn read_loop_through(api: &impl Calls, fault: fn(&mut RedisServer)) -> (Stack, ReadLoop) {
    let mut stack = Stack::new();
    let started = Instant::now();
    let mut run = ReadLoop::default();
    run.run_until(api, &stack.tower, started + Duration::from_millis(300));
    let healthy_rounds = run.round;
    fault(&mut stack.server);
    run.run_until(api, &stack.tower, started + Duration::from_millis(1600));
    assert!(healthy_rounds > 10 && run.round > healthy_rounds + 10, "too few rounds to tell: {run:?}");
    (stack, run)
}

// ===== behaviours =====

fn redis_killed_mid_run_costs_no_errors_and_no_long_waits(api: &impl Calls) {
    let (stack, run) = read_loop_through(api, RedisServer::kill);

    run.timings.assert_all_within(BOUND);
    let redis = &stack.tower.stats()[1];
    assert!(redis.errors > 0 && redis.skipped > 0, "the loop ran into the dead server and the breaker: {redis:?}");
}

fn redis_frozen_mid_run_costs_no_errors_and_no_long_waits(api: &impl Calls) {
    let (mut stack, run) = read_loop_through(api, RedisServer::freeze);
    stack.server.thaw();

    run.timings.assert_all_within(BOUND);
    let redis = &stack.tower.stats()[1];
    assert!(redis.errors > 0 && redis.skipped > 0, "the loop ran into the frozen server and the breaker: {redis:?}");
}

fn breaker_opens_and_the_layer_is_used_again_after_a_restart(api: &impl Calls) {
    let mut stack = Stack::new();
    api.set(&stack.tower, "before", 1).expect("healthy");
    stack.server.kill();
    open_the_breaker(api, &stack);
    stack.server.restart();
    assert_used_again(api, &stack);
}

fn breaker_opens_and_the_layer_is_used_again_after_a_thaw(api: &impl Calls) {
    let mut stack = Stack::new();
    api.set(&stack.tower, "before", 1).expect("healthy");
    stack.server.freeze();
    open_the_breaker(api, &stack);
    stack.server.thaw();
    assert_used_again(api, &stack);
    assert_eq!(stack.raw_get("before").as_deref(), Some("1"), "a freeze keeps the data");
}

/// Fails reads until the breaker opens, then checks that calls skip the layer without waiting.
fn open_the_breaker(api: &impl Calls, stack: &Stack) {
    let tower = &stack.tower;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut i = 0;
    while !tower.stats()[1].circuit_open {
        assert!(Instant::now() < deadline, "the breaker did not open: {:?}", tower.stats()[1]);
        assert_eq!(api.get::<u32>(tower, &format!("absent:{i}")), None);
        i += 1;
    }
    assert!(i >= 3, "the breaker opened after {i} failures; it takes 3 in a row");

    // Open: the layer is skipped (well within the 1 s cool-down, so no probe goes out).
    let skipped_before = tower.stats()[1].skipped;
    let mut timings = Timings::default();
    for i in 0..20 {
        let key = format!("while-open:{i}");
        let got = timings.time(|| format!("get {key}"), || api.get::<u32>(tower, &key));
        assert_eq!(got, None);
        let got = timings.time(|| format!("get_or_set {key}"), || api.get_or_set(tower, &key, || i));
        assert_eq!(got, i);
        let err = timings.time(|| format!("set {key}"), || api.set(tower, &key, i)).expect_err("Redis is down");
        assert_eq!(err.layer(), Some(1), "{err}");
    }
    timings.assert_all_within(TIMEOUT / 2);
    let redis = &tower.stats()[1];
    assert!(redis.circuit_open, "{redis:?}");
    assert!(redis.skipped >= skipped_before + 60, "calls skip the open layer: {redis:?}");
}

/// Redis is back: within [`RECOVERY`] a write through the same tower reaches it again, and a read
/// that misses memory is answered by it.
fn assert_used_again(api: &impl Calls, stack: &Stack) {
    let back = Instant::now();
    let mut attempts = 0;
    while stack.raw_get("after").as_deref() != Some("42") {
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "the layer was not used again within 5 s of Redis coming back ({attempts} writes): {:?}",
            stack.tower.stats()[1]
        );
        let _ = api.set(&stack.tower, "after", 42); // errors until the breaker lets a call through
        attempts += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = back.elapsed();
    assert!(took <= RECOVERY, "the layer was used again only {took:?} after Redis came back");
    assert!(!stack.tower.stats()[1].circuit_open);

    redis::cmd("SET").arg(format!("{}written-outside", stack.namespace)).arg("7").exec(&mut stack.raw()).unwrap();
    assert_eq!(api.get::<u32>(&stack.tower, "written-outside"), Some(7), "reads reach Redis again");
}

fn explicit_writes_to_a_dead_redis_name_the_layer_after_writing_memory(api: &impl Calls) {
    let mut stack = Stack::new();
    let (tower, memory) = (&stack.tower, &stack.memory);
    stack.server.kill();
    // Let the invalidation listener notice the loss (it clears memory once, as it should)
    // before checking what the writes leave in memory.
    std::thread::sleep(Duration::from_millis(300));

    // Enough writes to go from failing calls to an open breaker: the answer is the same.
    for round in 0..5u64 {
        let started = Instant::now();
        let err = api.set(tower, "set", User::sample(round)).expect_err("set with Redis dead");
        assert_eq!((err.kind(), err.layer()), (ErrorKind::Layer, Some(1)), "round {round}: {err}");
        assert!(err.to_string().contains("layer 1"), "the message names the layer: {err}");
        assert_eq!(peek::<User>(memory, "set"), Some(User::sample(round)), "round {round}: memory was written");

        let items: Vec<(String, u64)> = vec![(format!("m{round}a"), round), (format!("m{round}b"), round + 1)];
        let err = api.mset(tower, &items).expect_err("mset with Redis dead");
        assert_eq!(err.layer(), Some(1), "round {round}: {err}");
        assert_eq!([peek(memory, &items[0].0), peek(memory, &items[1].0)], [Some(round), Some(round + 1)]);

        put(memory, "doomed", round);
        let err = api.delete(tower, "doomed").expect_err("delete with Redis dead");
        assert_eq!(err.layer(), Some(1), "round {round}: {err}");
        assert!(!memory.exists("doomed").unwrap(), "round {round}: memory was deleted from");
        assert!(started.elapsed() <= 3 * BOUND, "round {round} took {:?}", started.elapsed());
    }
    assert!(tower.stats()[1].circuit_open);
}

fn a_freeze_loses_nothing_written_while_healthy(api: &impl Calls) {
    let mut stack = Stack::new();
    let items: Vec<(String, User)> = (0..50).map(|id| (format!("mset:{id}"), User::sample(id))).collect();
    api.mset(&stack.tower, &items).expect("healthy");
    for id in 50..100 {
        api.set(&stack.tower, &format!("set:{id}"), User::sample(id)).expect("healthy");
    }

    stack.server.freeze();
    ReadLoop::default().run_until(api, &stack.tower, Instant::now() + Duration::from_millis(400));
    stack.server.thaw();

    let mut raw = stack.raw();
    let keys: Vec<String> =
        (0..100).map(|id| format!("{}{}:{id}", stack.namespace, if id < 50 { "mset" } else { "set" })).collect();
    let stored: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut raw).expect("raw MGET");
    for (id, text) in stored.into_iter().enumerate() {
        let text = text.unwrap_or_else(|| panic!("{} was lost", keys[id]));
        assert_eq!(serde_json::from_str::<User>(&text).unwrap(), User::sample(id as u64), "{}", keys[id]);
    }

    // And the layer reads them back, from a tower whose memory is empty.
    let fresh = CacheTower::new();
    fresh.add_layer(MemoryAdapter::new());
    fresh.add_layer(stack.redis.clone());
    let short: Vec<&str> = keys.iter().map(|key| &key[stack.namespace.len()..]).collect();
    let got = api.mget::<User, _>(&fresh, &short);
    assert!(short.iter().enumerate().all(|(id, key)| got[*key] == Some(User::sample(id as u64))), "{got:?}");
}
