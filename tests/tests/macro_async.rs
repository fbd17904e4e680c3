//! `#[cached_tower]` on `async fn` (tokio): plain values, `Result` with `?` and early `return`,
//! `Option`, methods on `&self`, `tags` and their invalidation, async companions, a tower that is
//! not registered or whose only layer is dead, single flight across tasks, and cancellation and
//! panics: a caller whose future is dropped (or whose body panics) in the middle of the body must
//! not leave the callers waiting on it hanging.
//!
//! Each memoized function counts its body's runs in a static of its own and uses a tower name of
//! its own (the registry is process-wide; tests run in parallel). Waits that could hang are
//! bounded by a generous deadline, so a bug fails the test instead of hanging it; the deadlines
//! are not performance assertions.

use std::num::ParseIntError;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use cache_tower::{CacheTower, RedisAdapter, cached_tower, registry};
use cache_tower_tests::memoized::{count, register_memory, runs};
use cache_tower_tests::{User, memory_layers, peek, tower_of};
use tokio::sync::Barrier;
use tokio::time::{sleep, timeout};

/// How long a test waits for a task before declaring it stuck. Not a performance bound.
const DEADLINE: Duration = Duration::from_secs(10);

/// Waits until `counter` reaches `at_least`, failing the test after [`DEADLINE`].
async fn wait_for_runs(counter: &AtomicUsize, at_least: usize) {
    let waited = timeout(DEADLINE, async {
        while runs(counter) < at_least {
            sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the body never started");
}

// ===== plain values =====

static LOAD_USER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_plain", key = "user:{id}")]
async fn load_user(id: u64) -> User {
    tokio::task::yield_now().await;
    count(&LOAD_USER_RUNS);
    User::sample(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plain_result_is_computed_once_per_key_and_stored_under_its_key() {
    let tower = register_memory("async_plain");

    assert_eq!(load_user(7).await, User::sample(7));
    assert_eq!(load_user(7).await, User::sample(7));
    assert_eq!(load_user(8).await, User::sample(8));

    assert_eq!(runs(&LOAD_USER_RUNS), 2, "once per key");
    assert_eq!(tower.get::<User>("user:7"), Some(User::sample(7)));
    assert_eq!(tower.get::<User>("user:8"), Some(User::sample(8)));
}

static PRELOADED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_preloaded", key = "n:{id}")]
async fn preloaded(id: u32) -> u32 {
    count(&PRELOADED_RUNS);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_value_already_in_the_tower_is_returned_without_running_the_body() {
    let tower = register_memory("async_preloaded");
    tower.set_async("n:1", 1000u32).await.unwrap();

    assert_eq!(preloaded(1).await, 1000);
    assert_eq!(runs(&PRELOADED_RUNS), 0);
}

#[cached_tower(config = "async_every_layer", key = "user:{id}")]
async fn stored_everywhere(id: u64) -> User {
    User::sample(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_result_is_stored_in_every_layer() {
    let layers = memory_layers(3);
    registry::register("async_every_layer", tower_of(&layers));

    stored_everywhere(4).await;

    for (index, layer) in layers.iter().enumerate() {
        assert_eq!(peek::<User>(layer, "user:4"), Some(User::sample(4)), "layer {index}");
    }
}

static ADD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_default_key")]
async fn add(a: u32, b: u32) -> u32 {
    count(&ADD_RUNS);
    a + b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_default_key_is_the_function_path_and_its_arguments_as_a_json_array() {
    let tower = register_memory("async_default_key");

    assert_eq!(add(1, 2).await, 3);
    assert_eq!(add(1, 2).await, 3);

    assert_eq!(runs(&ADD_RUNS), 1);
    assert_eq!(tower.get::<u32>(concat!(module_path!(), "::add:[1,2]")), Some(3));
}

// ===== Result =====

#[derive(Debug, PartialEq)]
enum AppError {
    Parse(String),
    Empty,
}

impl From<ParseIntError> for AppError {
    fn from(err: ParseIntError) -> Self {
        AppError::Parse(err.to_string())
    }
}

static PARSE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_result", key = "parse:{text}")]
async fn parse(text: String) -> Result<u32, AppError> {
    count(&PARSE_RUNS);
    if text.is_empty() {
        return Err(AppError::Empty);
    }
    tokio::task::yield_now().await;
    let number: u32 = text.parse()?;
    Ok(number * 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_result_caches_ok_and_returns_errors_uncached() {
    let tower = register_memory("async_result");

    assert_eq!(parse("21".to_owned()).await, Ok(42));
    assert_eq!(parse("21".to_owned()).await, Ok(42));
    assert_eq!(runs(&PARSE_RUNS), 1, "Ok is cached");
    assert_eq!(tower.get::<u32>("parse:21"), Some(42));

    assert!(matches!(parse("x".to_owned()).await, Err(AppError::Parse(_))), "`?` converts the error with From");
    assert!(matches!(parse("x".to_owned()).await, Err(AppError::Parse(_))));
    assert_eq!(parse(String::new()).await, Err(AppError::Empty), "an early `return` works");
    assert_eq!(runs(&PARSE_RUNS), 4, "errors are not cached: each call runs the body");
    assert!(!tower.exists("parse:x"));
    assert!(!tower.exists("parse:"));
}

static FLAKY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_flaky", key = "flaky:{id}")]
async fn flaky(id: u32) -> Result<u32, String> {
    if count(&FLAKY_RUNS) == 1 { Err("database down".to_owned()) } else { Ok(id) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_an_error_the_next_call_runs_the_body_and_caches_its_success() {
    let tower = register_memory("async_flaky");

    assert_eq!(flaky(5).await, Err("database down".to_owned()));
    assert!(!tower.exists("flaky:5"));
    assert_eq!(flaky(5).await, Ok(5));
    assert_eq!(flaky(5).await, Ok(5));

    assert_eq!(runs(&FLAKY_RUNS), 2);
}

type Fallible = Result<u32, String>;

static ALIAS_RESULT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_alias_result", key = "alias:{id}", result = true)]
async fn fallible(id: u32) -> Fallible {
    count(&ALIAS_RESULT_RUNS);
    if id == 0 { Err("zero".to_owned()) } else { Ok(id) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn result_true_treats_an_alias_as_a_result() {
    let tower = register_memory("async_alias_result");

    assert_eq!(fallible(0).await, Err("zero".to_owned()));
    assert_eq!(fallible(0).await, Err("zero".to_owned()));
    assert_eq!(fallible(9).await, Ok(9));
    assert_eq!(fallible(9).await, Ok(9));

    assert_eq!(runs(&ALIAS_RESULT_RUNS), 3);
    assert!(!tower.exists("alias:0"));
    assert_eq!(tower.get::<u32>("alias:9"), Some(9));
}

// ===== Option =====

static FIND_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_option", key = "find:{id}")]
async fn find(id: u32) -> Option<u32> {
    count(&FIND_RUNS);
    (id % 2 == 0).then_some(id * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_option_caches_some_only() {
    let tower = register_memory("async_option");

    assert_eq!(find(3).await, None);
    assert_eq!(find(3).await, None);
    assert_eq!(runs(&FIND_RUNS), 2, "None is not cached");
    assert!(!tower.exists("find:3"));

    assert_eq!(find(4).await, Some(40));
    assert_eq!(find(4).await, Some(40));
    assert_eq!(runs(&FIND_RUNS), 3, "Some is cached");
    assert_eq!(tower.get::<u32>("find:4"), Some(40));
}

static FIND_NONE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_cache_none", key = "find:{id}", cache_none = true)]
async fn find_caching_none(id: u32) -> Option<u32> {
    count(&FIND_NONE_RUNS);
    (id % 2 == 0).then_some(id * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_none_caches_none_too() {
    let tower = register_memory("async_cache_none");

    assert_eq!(find_caching_none(3).await, None);
    assert_eq!(find_caching_none(3).await, None);
    assert_eq!(find_caching_none(4).await, Some(40));
    assert_eq!(find_caching_none(4).await, Some(40));

    assert_eq!(runs(&FIND_NONE_RUNS), 2);
    assert!(tower.exists("find:3"));
}

type Maybe = Option<u32>;

static ALIAS_OPTION_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_alias_option", key = "maybe:{id}", option = true)]
async fn maybe(id: u32) -> Maybe {
    count(&ALIAS_OPTION_RUNS);
    (id != 0).then_some(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn option_true_treats_an_alias_as_an_option() {
    let tower = register_memory("async_alias_option");

    assert_eq!(maybe(0).await, None);
    assert_eq!(maybe(0).await, None);
    assert_eq!(maybe(6).await, Some(6));
    assert_eq!(maybe(6).await, Some(6));

    assert_eq!(runs(&ALIAS_OPTION_RUNS), 3);
    assert!(!tower.exists("maybe:0"));
    assert_eq!(tower.get::<u32>("maybe:6"), Some(6));
}

// ===== methods =====

struct Pricing {
    region: &'static str,
    runs: AtomicUsize,
}

impl Pricing {
    #[cached_tower(config = "async_method", key = "{self.region}:{id}")]
    async fn price(&self, id: u32) -> u32 {
        tokio::task::yield_now().await;
        count(&self.runs);
        if self.region == "eu" { id * 100 } else { id * 200 }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn methods_on_self_use_the_receiver_in_their_key() {
    let tower = register_memory("async_method");
    let eu = Pricing { region: "eu", runs: AtomicUsize::new(0) };
    let us = Pricing { region: "us", runs: AtomicUsize::new(0) };

    assert_eq!(eu.price(3).await, 300);
    assert_eq!(eu.price(3).await, 300);
    assert_eq!(us.price(3).await, 600);

    assert_eq!((runs(&eu.runs), runs(&us.runs)), (1, 1));
    assert_eq!(tower.get::<u32>("eu:3"), Some(300));
    assert_eq!(tower.get::<u32>("us:3"), Some(600));

    assert_eq!(eu.price_uncached(3).await, 300);
    assert_eq!(runs(&eu.runs), 2);
    eu.price_invalidate(3).await.unwrap();
    assert!(!tower.exists("eu:3"));
    assert!(tower.exists("us:3"));
}

// ===== tags =====

static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Returns the number of the run that computed it. The key leaves the tenant out, so a call can
/// name tags other than those its cached value was stored with.
#[cached_tower(config = "async_tags", key = "profile:{id}", tags = ["user:{id}", "tenant:{tenant}"])]
async fn profile(id: u32, tenant: &str) -> usize {
    let _ = (id, tenant);
    tokio::task::yield_now().await;
    count(&PROFILE_RUNS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalidating_a_tag_makes_the_results_carrying_it_computed_again_and_no_others() {
    let tower = register_memory("async_tags");

    assert_eq!((profile(1, "acme").await, profile(2, "acme").await), (1, 2));
    tower.invalidate_tag_async("user:1").await.unwrap();
    assert_eq!(profile(1, "acme").await, 3, "computed again: its tag was invalidated");
    assert_eq!(profile(2, "acme").await, 2, "another id's result stays cached");
    assert_eq!(profile(1, "globex").await, 3, "a hit: the call's tags are not checked");

    tower.invalidate_tag_async("tenant:globex").await.unwrap();
    assert_eq!(profile(1, "acme").await, 3, "stored with the first call's tags only");
    tower.invalidate_tag_async("tenant:acme").await.unwrap();
    assert_eq!((profile(1, "acme").await, profile(2, "acme").await), (4, 5), "both carried the tenant's tag");
    assert_eq!(runs(&PROFILE_RUNS), 5);
}

static REPORT_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A background load (`refresh_ahead`) stores its tags too.
#[cached_tower(config = "async_tags_load", key = "report:{id}", tags = ["report:{id}"], refresh_ahead = 0.9)]
async fn report(id: u32) -> usize {
    let _ = id;
    count(&REPORT_RUNS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_background_load_stores_its_tags() {
    let tower = register_memory("async_tags_load");

    assert_eq!((report(1).await, report(2).await), (1, 2));
    tower.invalidate_tag_async("report:1").await.unwrap();
    assert_eq!((report(1).await, report(2).await), (3, 2));
}

// ===== companions =====

static TICKET_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Returns the number of the run that computed it, so a test sees which run a value came from.
#[cached_tower(config = "async_companions", key = "ticket:{id}")]
async fn ticket(id: u32) -> usize {
    let _ = id;
    tokio::task::yield_now().await;
    count(&TICKET_RUNS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_companions_are_async_uncached_runs_and_invalidate_removes() {
    let tower = register_memory("async_companions");

    assert_eq!(ticket_uncached(1).await, 1);
    assert_eq!(ticket_uncached(1).await, 2, "_uncached runs the body every time");
    assert!(!tower.exists("ticket:1"), "_uncached stores nothing");

    assert_eq!(ticket(1).await, 3);
    assert_eq!(ticket_uncached(1).await, 4);
    assert_eq!(ticket(1).await, 3, "_uncached neither reads nor overwrites the cached value");

    ticket_invalidate(1).await.unwrap();
    assert!(!tower.exists("ticket:1"), "_invalidate removed the entry");
    assert_eq!(ticket(1).await, 5, "the next call runs the body");
    assert_eq!(ticket(1).await, 5);
    assert_eq!(runs(&TICKET_RUNS), 5);
}

// ===== which tower =====

static IN_DEFAULT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(key = "in_default:{id}")]
async fn in_default(id: u32) -> u32 {
    count(&IN_DEFAULT_RUNS);
    id
}

/// The only test of this file that registers the default tower.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_config_the_default_tower_is_used() {
    let tower = register_memory(registry::DEFAULT_TOWER);

    in_default(1).await;
    in_default(1).await;

    assert_eq!(runs(&IN_DEFAULT_RUNS), 1);
    assert_eq!(tower.get::<u32>("in_default:1"), Some(1));
}

static UNREGISTERED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_never_registered", key = "k:{id}")]
async fn unregistered(id: u32) -> u32 {
    count(&UNREGISTERED_RUNS);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_no_tower_registered_the_body_runs_every_time() {
    for _ in 0..3 {
        assert_eq!(unregistered(4).await, 4);
    }

    assert_eq!(runs(&UNREGISTERED_RUNS), 3);
    assert!(unregistered_invalidate(4).await.is_ok());
}

static DEAD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_dead_layer", key = "dead:{id}")]
async fn through_dead_layer(id: u32) -> u32 {
    count(&DEAD_RUNS);
    id + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_layer_that_fails_never_becomes_a_function_error() {
    // Nothing listens on port 1: every call to this layer fails.
    let dead = RedisAdapter::builder().port(1).timeout(Duration::from_millis(50)).build().expect("a valid adapter");
    let tower = CacheTower::new();
    tower.add_layer(dead);
    registry::register("async_dead_layer", tower);

    for _ in 0..5 {
        assert_eq!(through_dead_layer(1).await, 2, "the body's value, whatever the cache does");
    }

    assert_eq!(runs(&DEAD_RUNS), 5);
    assert!(through_dead_layer_invalidate(1).await.is_err(), "an explicit invalidate reports the layer's failure");
}

// ===== names the expansion uses are the user's to use too =====

static COLLIDING_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Parameters and locals named like the expansion's own (`key`, `body`, `SITE`, `__site`): each
/// means what the user wrote, in the key and in the body.
#[cached_tower(config = "async_hygiene", key = "{key}:{body}:{SITE}")]
#[allow(non_snake_case)]
async fn colliding(mut key: u32, body: u32, SITE: u32, __site: u32) -> u32 {
    static __CACHE_TOWER_SITE: u32 = 100_000;
    let memoize = |value: u32| value * 10;
    key += 1;
    tokio::task::yield_now().await;
    count(&COLLIDING_RUNS);
    memoize(key) + body * 100 + SITE * 1000 + __site * 10_000 + __CACHE_TOWER_SITE
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn names_the_expansion_uses_do_not_collide_with_the_users() {
    let tower = register_memory("async_hygiene");

    let expected = 20 + 200 + 3000 + 40_000 + 100_000;
    assert_eq!(colliding(1, 2, 3, 4).await, expected);
    assert_eq!(colliding(1, 2, 3, 4).await, expected);
    assert_eq!(colliding_uncached(1, 2, 3, 4).await, expected);
    assert_eq!(runs(&COLLIDING_RUNS), 2, "one cached run and one uncached run");
    assert_eq!(tower.get::<u32>("1:2:3"), Some(expected), "the key is made of the parameters");
    colliding_invalidate(1, 2, 3, 4).await.unwrap();
    assert!(!tower.exists("1:2:3"));
}

// ===== concurrency =====

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_single_flight", key = "slow:{id}")]
async fn slow_user(id: u64) -> User {
    // Long enough that every task has joined the flight while the first call runs.
    sleep(Duration::from_millis(50)).await;
    count(&SLOW_RUNS);
    User::sample(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_calling_one_cold_key_run_the_body_once() {
    const TASKS: usize = 64;
    register_memory("async_single_flight");
    let barrier = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                slow_user(9).await
            })
        })
        .collect();

    for task in tasks {
        let user = timeout(DEADLINE, task).await.expect("a task is stuck").expect("a task panicked");
        assert_eq!(user, User::sample(9));
    }
    assert_eq!(runs(&SLOW_RUNS), 1, "the body ran more than once");
}

static ABORTED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_cancel_abort", key = "aborted:{id}")]
async fn abandoned_by_abort(id: u32) -> u32 {
    if count(&ABORTED_RUNS) == 1 {
        // The first run never finishes by itself: only cancellation ends it.
        std::future::pending::<()>().await;
    }
    id * 3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aborted_caller_releases_the_callers_waiting_on_it() {
    register_memory("async_cancel_abort");
    let first = tokio::spawn(abandoned_by_abort(5));
    wait_for_runs(&ABORTED_RUNS, 1).await;
    let second = tokio::spawn(abandoned_by_abort(5));
    // Let the second caller start waiting on the first one's flight.
    sleep(Duration::from_millis(100)).await;
    assert_eq!(runs(&ABORTED_RUNS), 1, "the second caller waits instead of running the body");

    first.abort();

    let value = timeout(DEADLINE, second).await.expect("the waiting caller hangs").expect("the task panicked");
    assert_eq!(value, 15, "the waiting caller ran the body itself");
    assert_eq!(runs(&ABORTED_RUNS), 2);
    assert_eq!(abandoned_by_abort(5).await, 15, "and its value was cached");
    assert_eq!(runs(&ABORTED_RUNS), 2);
}

static PANICKY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_panic", key = "panicky:{id}")]
async fn panicky(id: u32) -> u32 {
    if count(&PANICKY_RUNS) == 1 {
        // Give a second caller time to start waiting on this call, then fail.
        sleep(Duration::from_millis(1000)).await;
        panic!("the first run fails");
    }
    id * 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_body_does_not_leave_other_callers_waiting() {
    register_memory("async_panic");
    let first = tokio::spawn(panicky(21));
    wait_for_runs(&PANICKY_RUNS, 1).await;
    let second = tokio::spawn(panicky(21));
    sleep(Duration::from_millis(150)).await;
    assert_eq!(runs(&PANICKY_RUNS), 1, "the second caller waits on the first call, it does not run the body");

    let value = timeout(DEADLINE, second).await.expect("the waiting caller hangs").expect("the task panicked");
    assert_eq!(value, 42, "the waiting caller ran the body itself");
    assert!(first.await.expect_err("the first run panicked").is_panic());
    assert_eq!(panicky(21).await, 42);
    assert_eq!(runs(&PANICKY_RUNS), 2, "the second run's value was cached");
}

static TIMED_OUT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "async_cancel_timeout", key = "timed_out:{id}")]
async fn abandoned_by_timeout(id: u32) -> u32 {
    if count(&TIMED_OUT_RUNS) == 1 {
        sleep(Duration::from_secs(3600)).await;
    }
    id * 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_dropped_by_a_timeout_releases_the_callers_waiting_on_it() {
    register_memory("async_cancel_timeout");
    // The first call's future is dropped when its timeout fires, in the middle of its run.
    let first = tokio::spawn(timeout(Duration::from_millis(500), abandoned_by_timeout(6)));
    wait_for_runs(&TIMED_OUT_RUNS, 1).await;
    let second = tokio::spawn(abandoned_by_timeout(6));
    // Checked while the first call still runs: once it is dropped, the second may run at once.
    sleep(Duration::from_millis(200)).await;
    assert_eq!(runs(&TIMED_OUT_RUNS), 1, "the second caller waits on the first call, it does not run the body");
    assert!(first.await.expect("the task panicked").is_err(), "the first call was still running");

    let value = timeout(DEADLINE, second).await.expect("the waiting caller hangs").expect("the task panicked");
    assert_eq!(value, 24, "the waiting caller ran the body itself");
    assert_eq!(runs(&TIMED_OUT_RUNS), 2);
}
