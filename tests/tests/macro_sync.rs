//! `#[cached_tower]` on sync functions and methods: what is cached (plain values, `Ok`, `Some`,
//! `None` with `cache_none`), the exact keys it writes (templates and the default key), the
//! tower it uses (named, `"default"`, none registered), `tags` and their invalidation, the
//! companions `<name>_uncached` and `<name>_invalidate`, single flight across threads, a
//! panicking body, and a dead layer.
//!
//! Each memoized function counts its body's runs in a static of its own and uses a tower name of
//! its own, because tests run in parallel in one process and the registry is process-wide.
//! Threads that could hang report through channels read with a generous deadline, so a bug fails
//! the test instead of hanging it; the deadlines are not performance assertions.

use std::fmt::Debug;
use std::num::ParseIntError;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use cache_tower::{CacheTower, RedisAdapter, cached_tower, registry};
use cache_tower_tests::logs::captured_logs;
use cache_tower_tests::memoized::{count, register_memory, runs};
use cache_tower_tests::{User, memory_layers, peek, tower_of};
use serde::Serialize;

/// How long a test waits for a thread before declaring it stuck. Not a performance bound.
const DEADLINE: Duration = Duration::from_secs(10);

/// Waits until `counter` reaches `at_least`, failing the test after [`DEADLINE`].
fn wait_for_runs(counter: &AtomicUsize, at_least: usize) {
    let start = Instant::now();
    while runs(counter) < at_least {
        assert!(start.elapsed() < DEADLINE, "the body never started");
        thread::sleep(Duration::from_millis(2));
    }
}

// ===== plain values =====

static LOAD_USER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_plain", key = "user:{id}")]
fn load_user(id: u64) -> User {
    count(&LOAD_USER_RUNS);
    User::sample(id)
}

#[test]
fn a_plain_result_is_computed_once_per_key_and_stored_under_its_key() {
    let tower = register_memory("sync_plain");

    assert_eq!(load_user(7), User::sample(7));
    assert_eq!(load_user(7), User::sample(7));
    assert_eq!(load_user(8), User::sample(8));
    assert_eq!(load_user(7), User::sample(7));

    assert_eq!(runs(&LOAD_USER_RUNS), 2, "once per key");
    assert_eq!(tower.get::<User>("user:7"), Some(User::sample(7)));
    assert_eq!(tower.get::<User>("user:8"), Some(User::sample(8)));
}

static PRELOADED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_preloaded", key = "n:{id}")]
fn preloaded(id: u32) -> u32 {
    count(&PRELOADED_RUNS);
    id
}

#[test]
fn a_value_already_in_the_tower_is_returned_without_running_the_body() {
    let tower = register_memory("sync_preloaded");
    tower.set("n:1", 1000u32).unwrap();

    assert_eq!(preloaded(1), 1000, "the cached value, not the body's");
    assert_eq!(runs(&PRELOADED_RUNS), 0);
}

static STALE_TYPE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_preloaded_wrong_type", key = "wrong:{id}")]
fn stale_type(id: u32) -> u32 {
    count(&STALE_TYPE_RUNS);
    id
}

#[test]
fn a_stored_value_of_another_type_is_a_miss_and_is_overwritten() {
    let tower = register_memory("sync_preloaded_wrong_type");
    tower.set("wrong:3", "not a number".to_owned()).unwrap();

    assert_eq!(stale_type(3), 3);
    assert_eq!(stale_type(3), 3);

    assert_eq!(runs(&STALE_TYPE_RUNS), 1, "the fresh value was cached");
    assert_eq!(tower.get::<u32>("wrong:3"), Some(3));
}

static EVERY_LAYER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_every_layer", key = "user:{id}")]
fn stored_everywhere(id: u64) -> User {
    count(&EVERY_LAYER_RUNS);
    User::sample(id)
}

#[test]
fn the_result_is_stored_in_every_layer() {
    let layers = memory_layers(3);
    registry::register("sync_every_layer", tower_of(&layers));

    stored_everywhere(4);

    for (index, layer) in layers.iter().enumerate() {
        assert_eq!(peek::<User>(layer, "user:4"), Some(User::sample(4)), "layer {index}");
    }
}

// ===== key templates =====

#[derive(Debug, Clone)]
struct Tenant {
    id: String,
}

#[cached_tower(config = "sync_keys", key = "user:{id}")]
fn key_user(id: u64) -> u64 {
    id + 1
}

#[cached_tower(config = "sync_keys", key = "{tenant.id}:{page}")]
fn key_tenant_page(tenant: &Tenant, page: u32) -> String {
    format!("{} page {page}", tenant.id)
}

#[cached_tower(config = "sync_keys", key = "{id:08}")]
fn key_padded(id: u32) -> u32 {
    id * 2
}

#[cached_tower(config = "sync_keys", key = "{{literal}}:{id}")]
fn key_braces(id: u32) -> u32 {
    id * 3
}

#[cached_tower(config = "sync_long_keys", key = "{prefix}:{id:>4}")]
fn key_long(prefix: &str, id: u32) -> u32 {
    id + prefix.len() as u32
}

#[cached_tower(config = "sync_long_keys", key = "{prefix}|{id}")]
fn key_long_plain(prefix: &str, id: u32) -> u32 {
    id + 1
}

#[test]
fn keys_longer_than_the_stack_buffer_are_kept_whole() {
    let tower = register_memory("sync_long_keys");
    // 79 ASCII bytes, then a two-byte character across the 80-byte stack buffer's end.
    let prefix = format!("{}é", "p".repeat(79));
    assert_eq!(key_long(&prefix, 7), 7 + 81);
    assert_eq!(key_long_plain(&prefix, 7), 8);
    assert_eq!(tower.get::<u32>(&format!("{prefix}:   7")), Some(88));
    assert_eq!(tower.get::<u32>(&format!("{prefix}|7")), Some(8));
    assert_eq!(key_long_plain(&prefix, 7), 8, "a hit under the long key");
}

#[test]
fn key_templates_produce_exactly_their_keys() {
    let tower = register_memory("sync_keys");

    key_user(7);
    key_tenant_page(&Tenant { id: "acme".to_owned() }, 3);
    key_padded(42);
    key_braces(5);

    assert_eq!(tower.get::<u64>("user:7"), Some(8));
    assert_eq!(tower.get::<String>("acme:3").as_deref(), Some("acme page 3"));
    assert_eq!(tower.get::<u32>("00000042"), Some(84));
    assert_eq!(tower.get::<u32>("{literal}:5"), Some(15));
    for near_miss in ["user:8", "user:07", "acme", "42", "{{literal}}:5", "{literal:5}", "literal:5"] {
        assert!(!tower.exists(near_miss), "nothing stored under {near_miss:?}");
    }
    assert!(registry::get("sync_keys").unwrap().exists("user:7"));
}

// ===== the default key =====

static ADD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_default_key")]
fn add(a: u32, b: u32) -> u32 {
    count(&ADD_RUNS);
    a + b
}

#[derive(Debug, Clone, Serialize)]
struct Page {
    tenant: String,
    number: u32,
}

#[cached_tower(config = "sync_default_key")]
fn describe(name: &str, page: Page, tags: Vec<String>) -> String {
    format!("{name} {page:?} {tags:?}")
}

#[cached_tower(config = "sync_default_key_empty")]
fn no_arguments() -> u32 {
    11
}

#[test]
fn the_default_key_is_the_function_path_and_its_arguments_as_a_json_array() {
    let tower = register_memory("sync_default_key");

    assert_eq!(add(1, 2), 3);
    assert_eq!(add(1, 2), 3);
    assert_eq!(add(2, 1), 3);

    let key = concat!(module_path!(), "::add");
    assert_eq!(tower.get::<u32>(&format!("{key}:[1,2]")), Some(3));
    assert_eq!(tower.get::<u32>(&format!("{key}:[2,1]")), Some(3));
    assert_eq!(runs(&ADD_RUNS), 2, "the same arguments give the same key on every call");

    let text = describe("ann", Page { tenant: "acme".to_owned(), number: 2 }, vec!["x".to_owned()]);
    let key = format!(r#"{}::describe:["ann",{{"tenant":"acme","number":2}},["x"]]"#, module_path!());
    assert_eq!(tower.get::<String>(&key), Some(text));
}

#[test]
fn the_default_key_of_a_function_without_arguments_is_an_empty_json_array() {
    let tower = register_memory("sync_default_key_empty");

    no_arguments();

    let key = concat!(module_path!(), "::no_arguments:[]");
    assert_eq!(tower.get::<u32>(key), Some(11), "the documented key {key:?}");
}

// ===== methods =====

struct Pricing {
    region: &'static str,
    runs: AtomicUsize,
}

impl Pricing {
    #[cached_tower(config = "sync_method", key = "{self.region}:{id}")]
    fn price(&self, id: u32) -> u32 {
        count(&self.runs);
        if self.region == "eu" { id * 100 } else { id * 200 }
    }
}

#[test]
fn methods_on_self_use_the_receiver_in_their_key() {
    let tower = register_memory("sync_method");
    let eu = Pricing { region: "eu", runs: AtomicUsize::new(0) };
    let us = Pricing { region: "us", runs: AtomicUsize::new(0) };

    assert_eq!(eu.price(3), 300);
    assert_eq!(eu.price(3), 300);
    assert_eq!(us.price(3), 600);

    assert_eq!((runs(&eu.runs), runs(&us.runs)), (1, 1));
    assert_eq!(tower.get::<u32>("eu:3"), Some(300));
    assert_eq!(tower.get::<u32>("us:3"), Some(600));

    assert_eq!(eu.price_uncached(3), 300);
    assert_eq!(runs(&eu.runs), 2, "the method's _uncached companion runs the body");
    eu.price_invalidate(3).unwrap();
    assert!(!tower.exists("eu:3"));
    assert!(tower.exists("us:3"), "only that receiver's entry is removed");
}

#[derive(Clone)]
struct Owned {
    region: String,
}

impl Owned {
    /// A receiver taken by value (and `mut`): the body gets it moved.
    #[cached_tower(config = "sync_method_by_value", key = "{self.region}:{id}")]
    fn into_label(mut self, id: u32) -> String {
        self.region.push('!');
        format!("{}{id}", self.region)
    }
}

#[test]
fn methods_on_self_by_value_are_memoized() {
    let tower = register_memory("sync_method_by_value");
    let eu = Owned { region: "eu".to_owned() };

    assert_eq!(eu.clone().into_label(1), "eu!1");
    assert_eq!(tower.get::<String>("eu:1").as_deref(), Some("eu!1"));
    assert_eq!(eu.clone().into_label_uncached(1), "eu!1");
    eu.into_label_invalidate(1).unwrap();
    assert!(!tower.exists("eu:1"));
}

// ===== generic functions =====

static SHOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_generic")]
fn show<T: Serialize + Debug>(v: T) -> String {
    count(&SHOW_RUNS);
    format!("{v:?}")
}

#[test]
fn generic_functions_are_memoized_per_argument_value() {
    let tower = register_memory("sync_generic");

    assert_eq!(show(5u8), "5");
    assert_eq!(show("x"), "\"x\"");
    assert_eq!(show(5u8), "5");

    assert_eq!(runs(&SHOW_RUNS), 2);
    assert_eq!(tower.get::<String>(concat!(module_path!(), "::show:[5]")).as_deref(), Some("5"));
    assert_eq!(tower.get::<String>(concat!(module_path!(), r#"::show:["x"]"#)).as_deref(), Some("\"x\""));
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

#[cached_tower(config = "sync_result", key = "parse:{text}")]
fn parse(text: &str) -> Result<u32, AppError> {
    count(&PARSE_RUNS);
    if text.is_empty() {
        return Err(AppError::Empty);
    }
    let number: u32 = text.parse()?;
    Ok(number * 2)
}

#[test]
fn a_result_caches_ok_and_returns_errors_uncached() {
    let tower = register_memory("sync_result");

    assert_eq!(parse("21"), Ok(42));
    assert_eq!(parse("21"), Ok(42));
    assert_eq!(runs(&PARSE_RUNS), 1, "Ok is cached");
    assert_eq!(tower.get::<u32>("parse:21"), Some(42), "the Ok value is what is stored");

    assert!(matches!(parse("x"), Err(AppError::Parse(_))), "`?` converts the error with From");
    assert!(matches!(parse("x"), Err(AppError::Parse(_))));
    assert_eq!(parse(""), Err(AppError::Empty), "an early `return` works");
    assert_eq!(runs(&PARSE_RUNS), 4, "errors are not cached: each call runs the body");
    assert!(!tower.exists("parse:x"));
    assert!(!tower.exists("parse:"));
}

static FLAKY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_flaky", key = "flaky:{id}")]
fn flaky(id: u32) -> Result<u32, String> {
    if count(&FLAKY_RUNS) == 1 { Err("database down".to_owned()) } else { Ok(id) }
}

#[test]
fn after_an_error_the_next_call_runs_the_body_and_caches_its_success() {
    let tower = register_memory("sync_flaky");

    assert_eq!(flaky(5), Err("database down".to_owned()));
    assert!(!tower.exists("flaky:5"));
    assert_eq!(flaky(5), Ok(5));
    assert_eq!(flaky(5), Ok(5));

    assert_eq!(runs(&FLAKY_RUNS), 2);
}

type Fallible = Result<u32, String>;

static ALIAS_RESULT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_alias_result", key = "alias:{id}", result = true)]
fn fallible(id: u32) -> Fallible {
    count(&ALIAS_RESULT_RUNS);
    if id == 0 { Err("zero".to_owned()) } else { Ok(id) }
}

#[test]
fn result_true_treats_an_alias_as_a_result() {
    let tower = register_memory("sync_alias_result");

    assert_eq!(fallible(0), Err("zero".to_owned()));
    assert_eq!(fallible(0), Err("zero".to_owned()));
    assert_eq!(fallible(9), Ok(9));
    assert_eq!(fallible(9), Ok(9));

    assert_eq!(runs(&ALIAS_RESULT_RUNS), 3, "the Err ran twice, the Ok once");
    assert!(!tower.exists("alias:0"));
    assert_eq!(tower.get::<u32>("alias:9"), Some(9), "the Ok value itself is stored");
}

static TTL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_ttl", key = "rate:{pair}", ttl = "1m30s")]
fn exchange_rate(pair: &str) -> u32 {
    count(&TTL_RUNS);
    pair.len() as u32
}

#[test]
fn ttl_gives_the_results_a_ttl_of_their_own_capped_by_the_layers() {
    let clock = cache_tower::clock::ManualClock::new();
    let short = cache_tower::MemoryAdapter::builder().ttl(Duration::from_secs(60)).clock(&clock).build();
    let long = cache_tower::MemoryAdapter::builder().ttl(Duration::from_secs(600)).clock(&clock).build();
    let tower = CacheTower::new();
    tower.add_layer(long.clone());
    tower.add_layer(short.clone());
    registry::register("sync_ttl", tower);

    assert_eq!(exchange_rate("EURUSD"), 6);
    let left = |layer: &cache_tower::MemoryAdapter| {
        cache_tower::adapter::CacheAdapter::get(layer, "rate:EURUSD").unwrap().and_then(|entry| entry.ttl())
    };
    assert_eq!(left(&long), Some(Duration::from_secs(90)), "the function's 1m30s, under the layer's 600 s");
    assert_eq!(left(&short), Some(Duration::from_secs(60)), "the layer's 60 s, under the function's 90 s");

    clock.advance(Duration::from_secs(80));
    assert_eq!(exchange_rate("EURUSD"), 6);
    assert_eq!(runs(&TTL_RUNS), 1, "still cached at 80 s");
    clock.advance(Duration::from_secs(11));
    assert_eq!(exchange_rate("EURUSD"), 6);
    assert_eq!(runs(&TTL_RUNS), 2, "expired after 90 s: the body ran again");
}

/// Named like a `Result` alias, but a plain value: `result = false` says so.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct SearchResult {
    hits: u32,
}

static SEARCH_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_result_named_struct", key = "search:{query}", result = false)]
fn search(query: u32) -> SearchResult {
    count(&SEARCH_RUNS);
    SearchResult { hits: query * 2 }
}

#[test]
fn result_false_caches_a_value_whose_type_is_named_like_a_result() {
    let tower = register_memory("sync_result_named_struct");
    assert_eq!(search(4), SearchResult { hits: 8 });
    assert_eq!(search(4), SearchResult { hits: 8 });
    assert_eq!(runs(&SEARCH_RUNS), 1);
    assert_eq!(tower.get::<SearchResult>("search:4"), Some(SearchResult { hits: 8 }));
}

// ===== Option =====

static FIND_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_option", key = "find:{id}")]
fn find(id: u32) -> Option<u32> {
    count(&FIND_RUNS);
    (id % 2 == 0).then_some(id * 10)
}

#[test]
fn an_option_caches_some_only() {
    let tower = register_memory("sync_option");

    assert_eq!(find(3), None);
    assert_eq!(find(3), None);
    assert_eq!(runs(&FIND_RUNS), 2, "None is not cached");
    assert!(!tower.exists("find:3"));

    assert_eq!(find(4), Some(40));
    assert_eq!(find(4), Some(40));
    assert_eq!(runs(&FIND_RUNS), 3, "Some is cached");
    assert_eq!(tower.get::<u32>("find:4"), Some(40), "the Some value itself is stored");
}

static FIND_NONE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_cache_none", key = "find:{id}", cache_none = true)]
fn find_caching_none(id: u32) -> Option<u32> {
    count(&FIND_NONE_RUNS);
    (id % 2 == 0).then_some(id * 10)
}

#[test]
fn cache_none_caches_none_too() {
    let tower = register_memory("sync_cache_none");

    assert_eq!(find_caching_none(3), None);
    assert_eq!(find_caching_none(3), None);
    assert_eq!(find_caching_none(4), Some(40));
    assert_eq!(find_caching_none(4), Some(40));

    assert_eq!(runs(&FIND_NONE_RUNS), 2, "None and Some are both cached");
    assert!(tower.exists("find:3"));
}

type Maybe = Option<u32>;

static ALIAS_OPTION_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_alias_option", key = "maybe:{id}", option = true)]
fn maybe(id: u32) -> Maybe {
    count(&ALIAS_OPTION_RUNS);
    (id != 0).then_some(id)
}

#[test]
fn option_true_treats_an_alias_as_an_option() {
    let tower = register_memory("sync_alias_option");

    assert_eq!(maybe(0), None);
    assert_eq!(maybe(0), None);
    assert_eq!(maybe(6), Some(6));
    assert_eq!(maybe(6), Some(6));

    assert_eq!(runs(&ALIAS_OPTION_RUNS), 3, "None ran twice, Some once");
    assert!(!tower.exists("maybe:0"));
    assert_eq!(tower.get::<u32>("maybe:6"), Some(6), "the Some value itself is stored");
}

// ===== which tower =====

static IN_DEFAULT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(key = "in_default:{id}")]
fn in_default(id: u32) -> u32 {
    count(&IN_DEFAULT_RUNS);
    id
}

/// The only test of this file that registers the default tower.
#[test]
fn without_config_the_default_tower_is_used() {
    let tower = register_memory(registry::DEFAULT_TOWER);

    in_default(1);
    in_default(1);

    assert_eq!(runs(&IN_DEFAULT_RUNS), 1);
    assert_eq!(tower.get::<u32>("in_default:1"), Some(1));
    assert!(registry::get("default").unwrap().exists("in_default:1"));
}

static UNREGISTERED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_never_registered", key = "k:{id}")]
fn unregistered(id: u32) -> u32 {
    count(&UNREGISTERED_RUNS);
    id
}

#[test]
fn with_no_tower_registered_the_body_runs_every_time_and_a_warning_is_logged_once() {
    let logs = captured_logs(|| {
        for _ in 0..3 {
            assert_eq!(unregistered(4), 4);
        }
    });
    assert!(unregistered_invalidate(4).is_ok(), "nothing to invalidate is not an error");

    assert_eq!(runs(&UNREGISTERED_RUNS), 3);
    let warnings: Vec<&str> = logs.lines().filter(|line| line.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "one warning for the memoized function:\n{logs}");
    assert!(warnings[0].contains("sync_never_registered"), "the warning names the tower: {logs}");
    assert!(warnings[0].contains("unregistered"), "the warning names the function: {logs}");
}

// ===== tags =====

static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Returns the number of the run that computed it. The key leaves the tenant out, so a call can
/// name tags other than those its cached value was stored with.
#[cached_tower(config = "sync_tags", key = "profile:{id}", tags = ["user:{id}", "tenant:{tenant}"])]
fn profile(id: u32, tenant: &str) -> usize {
    let _ = (id, tenant);
    count(&PROFILE_RUNS)
}

#[test]
fn invalidating_a_tag_makes_the_results_carrying_it_computed_again_and_no_others() {
    let tower = register_memory("sync_tags");

    assert_eq!((profile(1, "acme"), profile(2, "acme")), (1, 2));
    tower.invalidate_tag("user:1").unwrap();
    assert_eq!(profile(1, "acme"), 3, "computed again: its tag was invalidated");
    assert_eq!(profile(2, "acme"), 2, "another id's result stays cached");
    assert_eq!(profile(1, "acme"), 3);

    tower.invalidate_tag("tenant:acme").unwrap();
    assert_eq!((profile(1, "acme"), profile(2, "acme")), (4, 5), "both carried the tenant's tag");
    assert_eq!(runs(&PROFILE_RUNS), 5);
}

static MOVED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_tags_hit", key = "moved:{id}", tags = ["tenant:{tenant}"])]
fn moved(id: u32, tenant: &str) -> usize {
    let _ = (id, tenant);
    count(&MOVED_RUNS)
}

#[test]
fn a_hit_returns_the_cached_result_whatever_tags_the_call_names() {
    let tower = register_memory("sync_tags_hit");

    assert_eq!(moved(1, "acme"), 1);
    assert_eq!(moved(1, "globex"), 1, "a hit: the call's tags are not checked");
    tower.invalidate_tag("tenant:globex").unwrap();
    assert_eq!(moved(1, "globex"), 1, "the result was stored with the first call's tags only");
    tower.invalidate_tag("tenant:acme").unwrap();
    assert_eq!(moved(1, "globex"), 2);
}

static REPORT_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A background load (`soft_timeout`) stores its tags too, and so does a tag with a format spec.
#[cached_tower(config = "sync_tags_load", key = "report:{id}", tags = ["report:{id:03}"], soft_timeout = "5s")]
fn report(id: u32) -> usize {
    let _ = id;
    count(&REPORT_RUNS)
}

static TAGS_PARAMETER_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A parameter named like the expansion's local for the tags means the parameter.
#[cached_tower(config = "sync_tags_load", key = "named:{tags}", tags = ["named:{tags}"])]
fn named_tags(tags: u32) -> u32 {
    count(&TAGS_PARAMETER_RUNS);
    tags * 2
}

#[test]
fn background_loads_and_a_parameter_called_tags_store_their_tags() {
    let tower = register_memory("sync_tags_load");

    assert_eq!((report(1), report(2)), (1, 2));
    tower.invalidate_tag("report:001").unwrap();
    assert_eq!((report(1), report(2)), (3, 2));

    assert_eq!((named_tags(4), named_tags(4)), (8, 8));
    tower.invalidate_tag("named:4").unwrap();
    assert!(!tower.exists("named:4"));
    assert_eq!(named_tags(4), 8);
    assert_eq!(runs(&TAGS_PARAMETER_RUNS), 2);
}

// ===== companions =====

static TICKET_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Returns the number of the run that computed it, so a test sees which run a value came from.
#[cached_tower(config = "sync_companions", key = "ticket:{id}")]
fn ticket(id: u32) -> usize {
    let _ = id;
    count(&TICKET_RUNS)
}

#[test]
fn uncached_always_runs_and_stores_nothing_and_invalidate_removes_the_entry() {
    let tower = register_memory("sync_companions");

    assert_eq!(ticket_uncached(1), 1);
    assert_eq!(ticket_uncached(1), 2, "_uncached runs the body every time");
    assert!(!tower.exists("ticket:1"), "_uncached stores nothing");

    assert_eq!(ticket(1), 3);
    assert_eq!(ticket_uncached(1), 4);
    assert_eq!(ticket(1), 3, "_uncached neither reads nor overwrites the cached value");

    ticket_invalidate(1).unwrap();
    assert!(!tower.exists("ticket:1"), "_invalidate removed the entry");
    assert_eq!(ticket(1), 5, "the next call runs the body");
    assert_eq!(ticket(1), 5);
    assert_eq!(runs(&TICKET_RUNS), 5);
}

// ===== concurrency =====

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_single_flight", key = "slow:{id}")]
fn slow_user(id: u64) -> User {
    // Long enough that every thread has joined the flight while the first call runs.
    thread::sleep(Duration::from_millis(50));
    count(&SLOW_RUNS);
    User::sample(id)
}

#[test]
fn many_threads_calling_one_cold_key_run_the_body_once() {
    const THREADS: usize = 64;
    register_memory("sync_single_flight");
    let barrier = Arc::new(Barrier::new(THREADS));
    let (send, results) = mpsc::channel();
    for _ in 0..THREADS {
        let (barrier, send) = (Arc::clone(&barrier), send.clone());
        thread::spawn(move || {
            barrier.wait();
            send.send(slow_user(9)).unwrap();
        });
    }

    for received in 0..THREADS {
        match results.recv_timeout(DEADLINE) {
            Ok(user) => assert_eq!(user, User::sample(9)),
            Err(RecvTimeoutError::Timeout) => panic!("only {received} of {THREADS} threads finished"),
            Err(RecvTimeoutError::Disconnected) => panic!("a thread died after {received} results"),
        }
    }
    assert_eq!(runs(&SLOW_RUNS), 1, "the body ran more than once");
}

static PANICKY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_panic", key = "panicky:{id}")]
fn panicky(id: u32) -> u32 {
    if count(&PANICKY_RUNS) == 1 {
        // Give a second caller time to start waiting on this call, then fail.
        thread::sleep(Duration::from_millis(1000));
        panic!("the first run fails");
    }
    id * 2
}

#[test]
fn a_panicking_body_does_not_leave_other_callers_waiting() {
    register_memory("sync_panic");
    let first = thread::spawn(|| catch_unwind(AssertUnwindSafe(|| panicky(21))).is_err());
    wait_for_runs(&PANICKY_RUNS, 1);
    let (send, second) = mpsc::channel();
    thread::spawn(move || send.send(panicky(21)).unwrap());
    thread::sleep(Duration::from_millis(150));
    assert_eq!(runs(&PANICKY_RUNS), 1, "the second caller waits on the first call, it does not run the body");

    let value = match second.recv_timeout(DEADLINE) {
        Ok(value) => value,
        Err(err) => panic!("the caller waiting on the panicking call never returned ({err})"),
    };

    assert_eq!(value, 42, "the waiting caller ran the body itself");
    assert!(first.join().expect("the panic was caught"), "the panic reached the first caller");
    assert_eq!(panicky(21), 42);
    assert_eq!(runs(&PANICKY_RUNS), 2, "the second run's value was cached");
}

// ===== a cache fault is not a function error =====

static DEAD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "sync_dead_layer", key = "dead:{id}")]
fn through_dead_layer(id: u32) -> u32 {
    count(&DEAD_RUNS);
    id + 1
}

#[test]
fn a_layer_that_fails_never_becomes_a_function_error() {
    // Nothing listens on port 1: every call to this layer fails.
    let dead = RedisAdapter::builder().port(1).timeout(Duration::from_millis(50)).build().expect("a valid adapter");
    let tower = CacheTower::new();
    tower.add_layer(dead);
    registry::register("sync_dead_layer", tower);

    for _ in 0..5 {
        assert_eq!(through_dead_layer(1), 2, "the body's value, whatever the cache does");
    }

    assert_eq!(runs(&DEAD_RUNS), 5, "nothing could be cached, so the body ran each time");
    assert!(through_dead_layer_invalidate(1).is_err(), "an explicit invalidate reports the layer's failure");
}

// ===== names the expansion uses are the user's to use too =====

static COLLIDING_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Parameters, locals and items named like the expansion's own (`key`, `body`, `SITE`, `__site`,
/// the names it used to have): each means what the user wrote, in the key and in the body.
#[cached_tower(config = "sync_hygiene", key = "{key}:{body}:{SITE}:{__site}")]
#[allow(non_snake_case)]
fn colliding(mut key: u32, body: u32, SITE: u32, __site: u32, __cache_tower_key: u32) -> u32 {
    static __CACHE_TOWER_SITE: u32 = 100_000;
    let memoize = |value: u32| value * 10;
    key += 1;
    count(&COLLIDING_RUNS);
    memoize(key) + body * 100 + SITE * 1000 + __site * 10_000 + __cache_tower_key + __CACHE_TOWER_SITE
}

/// The same names in a default key.
#[cached_tower(config = "sync_hygiene")]
fn colliding_default(key: u32, body: &str) -> String {
    let site = "site";
    format!("{key}{body}{site}")
}

struct Colliding {
    key: u32,
}

impl Colliding {
    #[cached_tower(config = "sync_hygiene", key = "method:{self.key}:{key}")]
    fn method(&self, key: u32) -> u32 {
        let body = self.key;
        body * 10 + key
    }
}

#[test]
fn names_the_expansion_uses_do_not_collide_with_the_users() {
    let tower = register_memory("sync_hygiene");

    // memoize(1 + 1) = 20, plus 2 * 100, 3 * 1000, 4 * 10_000, 5, 100_000
    let expected = 20 + 200 + 3000 + 40_000 + 5 + 100_000;
    assert_eq!(colliding(1, 2, 3, 4, 5), expected);
    assert_eq!(colliding(1, 2, 3, 4, 5), expected);
    assert_eq!(colliding_uncached(1, 2, 3, 4, 5), expected);
    assert_eq!(runs(&COLLIDING_RUNS), 2, "one cached run and one uncached run");
    assert_eq!(tower.get::<u32>("1:2:3:4"), Some(expected), "the key is made of the parameters");
    colliding_invalidate(1, 2, 3, 4, 5).unwrap();
    assert!(!tower.exists("1:2:3:4"));

    assert_eq!(colliding_default(7, "b"), "7bsite");
    let key = format!(r#"{}::colliding_default:[7,"b"]"#, module_path!());
    assert_eq!(tower.get::<String>(&key).as_deref(), Some("7bsite"));

    assert_eq!(Colliding { key: 3 }.method(4), 34);
    assert_eq!(tower.get::<u32>("method:3:4"), Some(34));
}

// ===== associated functions and generics the call to the body must name =====

struct Scale;

impl Scale {
    const FACTOR: u32 = 7;

    /// No receiver: an associated function, which the macro knows by its `Self`.
    #[cached_tower(config = "sync_associated", key = "scaled:{id}")]
    fn scaled(id: u32) -> u32 {
        id * Self::FACTOR
    }
}

/// A type parameter the arguments do not give: the body is called with `::<T>`.
#[cached_tower(config = "sync_associated")]
fn zero<T: cache_tower::Cacheable + Default>() -> T {
    T::default()
}

/// A const parameter.
#[cached_tower(config = "sync_associated", key = "repeat:{c}:{n}")]
fn repeat<const N: usize>(c: char, n: usize) -> String {
    std::iter::repeat_n(c, N + n).collect()
}

#[test]
fn associated_functions_and_explicit_generics_are_memoized() {
    let tower = register_memory("sync_associated");

    assert_eq!(Scale::scaled(2), 14);
    assert_eq!(Scale::scaled_uncached(2), 14);
    assert_eq!(tower.get::<u32>("scaled:2"), Some(14));
    Scale::scaled_invalidate(2).unwrap();
    assert!(!tower.exists("scaled:2"));

    assert_eq!(zero::<u64>(), 0);
    assert_eq!(zero_uncached::<String>(), "");
    assert_eq!(repeat::<2>('x', 1), "xxx");
    assert_eq!(tower.get::<String>("repeat:x:1").as_deref(), Some("xxx"));
}
