//! A memoized function with no set-up at all: the built-in `"default"` tower, `registry::require`
//! for the names a program uses, and the warnings given without a `tracing` subscriber (read from
//! the standard error of `src/bin/memoize_warnings.rs`).

use std::process::Command;
use std::sync::atomic::AtomicUsize;

use cache_tower::error::ErrorKind;
use cache_tower::{cached_tower, registry};
use cache_tower_tests::memoized::{count, runs};
use cache_tower_tests::redis_server::TestRedis;

static SQUARES: AtomicUsize = AtomicUsize::new(0);

/// No `config`: the built-in default tower.
#[cached_tower(key = "square:{n}")]
fn square(n: u64) -> u64 {
    count(&SQUARES);
    n * n
}

#[test]
fn a_memoized_function_caches_from_its_first_call_with_no_set_up() {
    // This test binary registers nothing under "default" (nor anywhere before this point).
    assert_eq!(square(12), 144);
    assert_eq!(square(12), 144);
    assert_eq!(runs(&SQUARES), 1, "the second call is a hit");
    let default = registry::get(registry::DEFAULT_TOWER).expect("the built-in default tower");
    assert_eq!(default.get::<u64>("square:12"), Some(144));
    let layers = default.get_layers();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].kind(), "memory", "memory only");
    let described = format!("{:?}", layers[0]);
    assert!(described.contains(&format!("maxsize: {}", registry::DEFAULT_TOWER_MAXSIZE)), "bounded: {described}");
}

#[test]
fn require_names_every_missing_tower_and_the_registered_ones() {
    registry::register_json(r#"{"setup_users": [{"adapter": "memory"}]}"#).expect("valid");
    registry::require(&["setup_users", registry::DEFAULT_TOWER]).expect("both are there");

    let err = registry::require(&["setup_users", "setup_typo", "setup_other"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let text = err.to_string();
    for name in ["`setup_typo`", "`setup_other`", "registered: ", "`setup_users`", "`default`"] {
        assert!(text.contains(name), "{name} in: {text}");
    }
}

fn warnings_of(args: &[&str]) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_memoize_warnings")).args(args).output().expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{args:?}: {stdout}{stderr}");
    (stdout, stderr)
}

#[test]
fn a_missing_tower_is_told_on_standard_error_once_without_a_subscriber() {
    let (stdout, stderr) = warnings_of(&["unregistered"]);
    assert!(stdout.contains("ran 3"), "uncached, every call runs: {stdout}");
    assert_eq!(stderr.matches("cache-tower warning: ").count(), 1, "once: {stderr}");
    assert!(stderr.contains("no cache tower named `nobody_registered_this` is registered"), "{stderr}");
    assert!(stderr.contains("registry::require"), "names the check: {stderr}");
}

#[test]
fn with_a_subscriber_the_warning_goes_to_tracing_instead() {
    let (stdout, stderr) = warnings_of(&["unregistered-traced"]);
    assert!(!stderr.contains("cache-tower warning"), "{stderr}");
    assert_eq!(stdout.matches("no cache tower named `nobody_registered_this`").count(), 1, "{stdout}");
    assert!(stdout.contains("WARN"), "{stdout}");
}

#[test]
fn a_blocking_memoized_call_inside_a_runtime_warns_once_and_the_async_form_does_not() {
    let redis = TestRedis::new();
    let (stdout, stderr) = warnings_of(&["blocking", redis.url()]);
    assert!(stdout.contains("ran 3"), "{stdout}");
    assert_eq!(stderr.matches("cache-tower warning: ").count(), 1, "once: {stderr}");
    assert!(stderr.contains("blocking memoized function called inside a tokio runtime"), "{stderr}");
    assert!(stderr.contains("async fn") && stderr.contains("spawn_blocking"), "names the fixes: {stderr}");

    let (stdout, stderr) = warnings_of(&["async", redis.url()]);
    assert!(stdout.contains("ran 3"), "{stdout}");
    assert!(stderr.is_empty(), "no warning for the async form: {stderr}");
}
