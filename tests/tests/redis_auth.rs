//! Reaching a Redis that asks who you are: `requirepass`, an ACL user, the seed README's
//! configuration, URLs and passwords from environment variables, TLS with a private certificate
//! authority; and passwords never showing in `Debug`, errors or logs.
//!
//! Each test starts its own server. Where a test makes calls, it makes them on the blocking path
//! and on the async one.

use std::time::Duration;

use cache_tower::{
    CacheTower, MemoryAdapter, RedisAdapter,
    adapter::{CacheAdapter, RedisAdapterBuilder},
    error::ErrorKind,
};
use cache_tower_tests::logs::captured_logs;
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
use cache_tower_tests::{User, peek};

/// A password with characters that must be percent-encoded in a URL, and a marker to look for.
const PASSWORD: &str = "hunter2/p@ss:wörd";
/// [`PASSWORD`] as it appears in a URL.
const PASSWORD_IN_URL: &str = "hunter2%2Fp%40ss%3Aw%C3%B6rd";
/// The part of [`PASSWORD`] that must never show in any text the cache produces.
const MARKER: &str = "hunter2";

/// Generous: these tests are about authentication, not timeouts.
const TIMEOUT: Duration = Duration::from_secs(5);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("building a tokio runtime")
}

fn redis(builder: RedisAdapterBuilder, namespace: &str) -> RedisAdapter {
    builder.namespace(namespace).timeout(TIMEOUT).connect_timeout(TIMEOUT).build().expect("building the redis layer")
}

fn only(redis: &RedisAdapter) -> CacheTower {
    let tower = CacheTower::new();
    tower.add_layer(redis.clone());
    tower
}

/// A plain connection to `url`, to check what was stored without the adapter.
fn raw(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("a valid URL");
    client.get_connection_with_timeout(TIMEOUT).expect("connecting to the test redis")
}

fn raw_get(con: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(con).expect("raw GET")
}

/// A set and a get through `tower`, blocking and async; the values land under the namespace.
#[track_caller]
fn assert_round_trips(tower: &CacheTower, namespace: &str, raw_url: &str) {
    tower.set("blocking", User::sample(1)).expect("set");
    assert_eq!(tower.get::<User>("blocking"), Some(User::sample(1)));
    runtime().block_on(async {
        tower.set_async("async", User::sample(2)).await.expect("set_async");
        assert_eq!(tower.get_async::<User>("async").await, Some(User::sample(2)));
    });
    let mut con = raw(raw_url);
    for (key, id) in [("blocking", 1), ("async", 2)] {
        let text = raw_get(&mut con, &format!("{namespace}{key}")).unwrap_or_else(|| panic!("{key} not in Redis"));
        assert_eq!(serde_json::from_str::<User>(&text).unwrap(), User::sample(id));
    }
    for layer in tower.stats() {
        assert_eq!(layer.errors, 0, "{layer:?}");
    }
}

/// Every call fails in the Redis layer (index `layer`) as an error, never a panic, and neither
/// the error nor anything else shows the password.
#[track_caller]
fn assert_refused(tower: &CacheTower, layer: usize, what: &str) {
    let err = tower.set("k", 1).expect_err(what);
    assert_eq!((err.kind(), err.layer()), (ErrorKind::Layer, Some(layer)), "{what}: {err}");
    assert_no_secret(&format!("{err} {err:?}"), what);
    assert_eq!(tower.get::<i32>("absent"), None, "{what}: reads are misses");
    let err = runtime().block_on(tower.set_async("k", 1)).expect_err(what);
    assert_eq!((err.kind(), err.layer()), (ErrorKind::Layer, Some(layer)), "{what} (async): {err}");
    assert_no_secret(&format!("{err} {err:?}"), what);
    assert_eq!(runtime().block_on(tower.get_async::<i32>("absent")), None, "{what}: async reads are misses");
}

#[track_caller]
fn assert_no_secret(text: &str, what: &str) {
    for secret in [MARKER, PASSWORD, PASSWORD_IN_URL, "wonderland"] {
        assert!(!text.contains(secret), "{what}: {secret:?} shows in: {text}");
    }
}

// ===== requirepass =====

#[test]
fn requirepass_via_params_via_url_and_via_json() {
    let server = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let raw_url = format!("redis://:{PASSWORD_IN_URL}@127.0.0.1:{}/0", server.port());

    let ns = unique_namespace("params");
    let from_parts = redis(RedisAdapter::builder().host("127.0.0.1").port(server.port()).password(PASSWORD), &ns);
    assert_round_trips(&only(&from_parts), &ns, &raw_url);

    let ns = unique_namespace("url");
    assert_round_trips(&only(&redis(RedisAdapter::builder().url(&raw_url), &ns)), &ns, &raw_url);

    let ns = unique_namespace("json");
    let config = serde_json::json!([{"adapter": "redis", "namespace": ns,
        "params": {"host": "127.0.0.1", "port": server.port(), "password": PASSWORD, "timeout_ms": 5000}}]);
    assert_round_trips(&CacheTower::from_config(&config).unwrap(), &ns, &raw_url);
}

#[test]
fn a_wrong_or_missing_password_is_an_error_not_a_panic() {
    let server = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let ns = unique_namespace("refused");
    let cases = [
        ("wrong password", RedisAdapter::builder().port(server.port()).password("hunter2-but-wrong")),
        ("no password", RedisAdapter::builder().port(server.port())),
    ];
    for (what, builder) in cases {
        let redis = redis(builder, &ns);
        let err = only(&redis).set("k", 1).expect_err(what);
        let words = match what {
            "no password" => "the server requires a password and none was given: set `password`",
            _ => "the server refused the user name or password: check `username` and `password`",
        };
        assert!(err.to_string().contains(words), "{what}: the error says what to fix: {err}");
        assert_refused(&only(&redis), 0, what);
        // Below a memory layer: the memory layer still works, and the error names layer 1.
        let memory = MemoryAdapter::new();
        let tower = CacheTower::new();
        tower.add_layer(memory.clone());
        tower.add_layer(redis);
        assert_refused(&tower, 1, what);
        assert_eq!(peek::<i32>(&memory, "k"), Some(1), "{what}: memory was written");
        assert_eq!(tower.get_or_set("computed", || 5), 5, "{what}");
    }
}

// ===== ACL users =====

#[test]
fn acl_user_via_builder_and_url() {
    let server =
        RedisServer::start_with(&["--user", "alice", "on", ">wonderland", "~*", "+@all", "--user", "default", "off"]);
    let raw_url = format!("redis://alice:wonderland@127.0.0.1:{}/0", server.port());

    let ns = unique_namespace("alice");
    let alice = redis(RedisAdapter::builder().port(server.port()).username("alice").password("wonderland"), &ns);
    let tower = only(&alice);
    assert_round_trips(&tower, &ns, &raw_url);
    // Every operation is allowed to alice, flush's SCAN and UNLINK included.
    tower.mset([("a", 1), ("b", 2)]).unwrap();
    assert_eq!(tower.mget::<i32, _>(&["a", "b", "c"]).values().flatten().count(), 2);
    assert!(tower.exists("a"));
    tower.delete("a").unwrap();
    tower.flush().unwrap();
    assert!(!tower.exists("b"));
    assert_eq!(tower.stats()[0].errors, 0, "{:?}", tower.stats());

    let ns = unique_namespace("alice-url");
    assert_round_trips(&only(&redis(RedisAdapter::builder().url(&raw_url), &ns)), &ns, &raw_url);

    let cases = [
        ("alice, wrong password", RedisAdapter::builder().port(server.port()).username("alice").password("hunter2")),
        ("the default user, disabled", RedisAdapter::builder().port(server.port())),
        ("an unknown user", RedisAdapter::builder().port(server.port()).username("mallory").password("wonderland")),
    ];
    for (what, builder) in cases {
        assert_refused(&only(&redis(builder, &ns)), 0, what);
    }
}

// ===== the seed README's configuration =====

#[test]
fn the_seed_readme_dictionary_example_works_end_to_end() {
    let server = RedisServer::start();
    // The seed's example, pointed at the test server.
    let config = format!(
        r#"[
          {{"adapter": "memory", "namespace": "session:", "ttl": 60, "params": {{"maxsize": 1024, "lru": true}}}},
          {{"adapter": "redis", "namespace": "session:", "ttl": 300,
            "params": {{"host": "localhost", "port": {}, "db": 0, "decode_responses": true}}}}
        ]"#,
        server.port()
    );
    let cache = CacheTower::from_json(&config).expect("the seed configuration loads");
    let layers = cache.get_layers();
    let mut con = raw(&server.url());
    redis::cmd("SET").arg("other:key").arg("1").exec(&mut con).unwrap();

    cache.set("key", "value".to_owned()).unwrap();
    assert_eq!(cache.get::<String>("key").as_deref(), Some("value"));
    assert_eq!(raw_get(&mut con, "session:key").as_deref(), Some("\"value\""), "JSON text under namespace + key");
    let pttl: i64 = redis::cmd("PTTL").arg("session:key").query(&mut con).unwrap();
    assert!((290_000..=300_000).contains(&pttl), "Redis keeps it for the layer's 300 s: PTTL {pttl}");

    // The next read comes from Redis and backfills memory. Invalidation is on (the seed's
    // configuration has memory over Redis): the echo of our own `set` may still be on its way,
    // and a backfill racing with it is skipped on purpose, so allow a few attempts.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        layers[0].delete("key").unwrap();
        assert_eq!(cache.get::<String>("key").as_deref(), Some("value"));
        if layers[0].exists("key").unwrap() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the backfill never reached memory");
        std::thread::sleep(Duration::from_millis(20));
    }

    cache.mset([("key1", "value1".to_owned()), ("key2", "value2".to_owned())]).unwrap();
    let got = cache.mget::<String, _>(&["key1", "key2", "key3"]);
    assert_eq!(
        [got["key1"].as_deref(), got["key2"].as_deref(), got["key3"].as_deref()],
        [Some("value1"), Some("value2"), None]
    );

    cache.delete("key1").unwrap();
    assert!(!cache.exists("key1"));
    assert!(cache.exists("key2"));
    assert_eq!(raw_get(&mut con, "session:key1"), None);

    cache.flush().unwrap();
    for key in ["key", "key2"] {
        assert!(!cache.exists(key), "{key} survived the flush");
        assert_eq!(raw_get(&mut con, &format!("session:{key}")), None);
    }
    assert_eq!(raw_get(&mut con, "other:key").as_deref(), Some("1"), "flush keeps keys outside the namespace");
    assert!(cache.stats().iter().all(|layer| layer.errors == 0), "{:?}", cache.stats());
}

// ===== secrets from the environment =====

const URL_VAR: &str = "CACHE_TOWER_TESTS_REDIS_AUTH_URL";
const PASSWORD_VAR: &str = "CACHE_TOWER_TESTS_REDIS_AUTH_PASSWORD";
const PORT_VAR: &str = "CACHE_TOWER_TESTS_REDIS_AUTH_PORT";

/// Setting variables in this process would be `unsafe` (forbidden here), so the test runs itself
/// again in a child process with the variables set; the child does the checking.
#[test]
fn url_env_and_password_env_are_read_from_the_environment() {
    const NAME: &str = "url_env_and_password_env_are_read_from_the_environment";
    if let (Ok(url), Ok(port)) = (std::env::var(URL_VAR), std::env::var(PORT_VAR)) {
        return read_the_environment(&url, port.parse().expect("a port"));
    }
    let server = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", NAME, "--test-threads", "1", "--nocapture"])
        .env(URL_VAR, format!("redis://:{PASSWORD_IN_URL}@127.0.0.1:{}/0", server.port()))
        .env(PASSWORD_VAR, PASSWORD)
        .env(PORT_VAR, server.port().to_string())
        .output()
        .expect("running the test binary");
    let text = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && text.contains("1 passed"), "the child run failed:\n{text}");
}

fn read_the_environment(url: &str, port: u16) {
    let ns = unique_namespace("env");
    let from_url = redis(RedisAdapter::builder().url_env(URL_VAR), &ns);
    assert!(!format!("{from_url:?}").contains(MARKER), "{from_url:?}");
    assert_round_trips(&only(&from_url), &ns, url);

    let from_password = redis(RedisAdapter::builder().port(port).password_env(PASSWORD_VAR), &ns);
    assert_round_trips(&only(&from_password), &ns, url);

    let config = serde_json::json!([
        {"adapter": "redis", "namespace": ns, "params": {"url_env": URL_VAR}},
        {"adapter": "redis", "namespace": ns, "params": {"port": port, "password_env": PASSWORD_VAR}},
    ]);
    let tower = CacheTower::from_config(&config).unwrap();
    assert_no_secret(&format!("{tower:?}"), "Debug of a tower configured from the environment");
    for layer in tower.get_layers() {
        let tower = CacheTower::new();
        tower.add_layer(layer);
        assert_round_trips(&tower, &ns, url);
    }
}

// ===== secrets stay secret =====

#[test]
fn passwords_never_show_in_debug_errors_or_logs() {
    let server = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let port = server.port();
    let builders = [
        RedisAdapter::builder().port(port).password(PASSWORD),
        RedisAdapter::builder().url(format!("redis://:{PASSWORD_IN_URL}@127.0.0.1:{port}/0")),
        RedisAdapter::builder().url(format!("redis://app:{PASSWORD_IN_URL}@127.0.0.1:{port}/0")),
    ];
    for builder in builders {
        assert_no_secret(&format!("{builder:?}"), "Debug of the builder");
        let adapter = redis(builder, "secrets:");
        let tower = only(&adapter);
        assert_no_secret(&format!("{adapter:?} {tower:?} {}", adapter.endpoint()), "Debug of the adapter and tower");
    }

    // A configuration error about a URL that holds a password.
    let err = RedisAdapter::builder().url(format!("redis://:{PASSWORD_IN_URL}@127.0.0.1:99999999/0")).build();
    let err = err.expect_err("a port out of range");
    assert_eq!(err.field(), Some("url"), "{err}");
    assert_no_secret(&format!("{err} {err:?}"), "a configuration error");

    // A server refusing the password, and a dead one: errors and log lines.
    let wrong =
        RedisAdapter::builder().port(port).password(format!("{MARKER}-wrong")).timeout(TIMEOUT).build().unwrap();
    let mut dead_server = RedisServer::start();
    let dead = RedisAdapter::builder()
        .url(format!("redis://:{PASSWORD_IN_URL}@127.0.0.1:{}/0", dead_server.port()))
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    dead_server.kill();
    for (what, adapter) in [("a refused password", wrong), ("a dead server", dead)] {
        let direct = CacheAdapter::get(&adapter, "k").expect_err(what);
        assert_no_secret(&format!("{direct} {direct:?}"), what);
        let words = match what {
            "a dead server" => "nothing accepts connections there: is Redis running, and are the host and port right?",
            _ => "the server refused the user name or password",
        };
        assert!(direct.to_string().contains(words), "{what}: in words: {direct}");

        let tower = only(&adapter);
        let logs = captured_logs(|| {
            let err = tower.set("k", 1).expect_err(what);
            assert_no_secret(&format!("{err} {err:?}"), what);
            assert_eq!(tower.get::<i32>("k"), None);
        });
        assert!(logs.contains("cache layer failed"), "{what}: the failure is logged as a warning:\n{logs}");
        assert_no_secret(&logs, &format!("{what}: logs"));

        let tower = only(&adapter); // fresh counters: warnings are rate limited per layer
        let logs = captured_logs(|| {
            runtime().block_on(async {
                let err = tower.set_async("k", 1).await.expect_err(what);
                assert_no_secret(&format!("{err} {err:?}"), what);
                assert_eq!(tower.get_async::<i32>("k").await, None);
            });
        });
        assert!(logs.contains("cache layer failed"), "{what} (async): the failure is logged as a warning:\n{logs}");
        assert_no_secret(&logs, &format!("{what} (async): logs"));
    }
}

// ===== TLS =====

#[cfg(feature = "tls")]
#[test]
fn tls_with_a_private_certificate_authority_works_end_to_end() {
    use cache_tower_tests::tls_server::TlsRedis;

    let server = TlsRedis::start();
    let ca = server.ca_file();

    let ns = unique_namespace("tls-url");
    let by_url = redis(RedisAdapter::builder().url(server.url()).tls_ca_file(&ca), &ns);
    let tower = only(&by_url);
    assert_round_trips(&tower, &ns, &server.plain_url());
    tower.mset([("a", 1), ("b", 2)]).unwrap();
    assert_eq!(tower.mget::<i32, _>(&["a", "b", "c"]).values().flatten().count(), 2);
    tower.delete("a").unwrap();
    assert!(!tower.exists("a") && tower.exists("b"));
    tower.flush().unwrap();
    assert!(!tower.exists("b"));
    assert_eq!(tower.stats()[0].errors, 0, "{:?}", tower.stats());

    let ns = unique_namespace("tls-parts");
    let by_parts = RedisAdapter::builder().host("127.0.0.1").port(server.tls_port()).tls(true).tls_ca_file(&ca);
    assert_round_trips(&only(&redis(by_parts, &ns)), &ns, &server.plain_url());

    let ns = unique_namespace("tls-json");
    let config = serde_json::json!([{"adapter": "redis", "namespace": ns,
        "params": {"url": server.url(), "tls_ca_file": ca, "timeout_ms": 5000, "connect_timeout_ms": 5000}}]);
    assert_round_trips(&CacheTower::from_config(&config).unwrap(), &ns, &server.plain_url());
}

#[cfg(feature = "tls")]
#[test]
fn tls_failures_are_errors_never_panics() {
    use cache_tower_tests::tls_server::TlsRedis;

    // Without the CA, the server's certificate is not trusted: an error that says so, not a panic,
    // and not a silent fallback to plain text.
    let server = TlsRedis::start();
    let untrusted = only(&redis(RedisAdapter::builder().url(server.url()), "tls-untrusted:"));
    let blocking = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| untrusted.set("k", 1)));
    let on_tokio =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime().block_on(untrusted.set_async("k", 1))));
    let mut problems = Vec::new();
    for (path, outcome) in [("blocking", blocking), ("async", on_tokio)] {
        match outcome {
            Err(_) => problems.push(format!("{path}: set panicked instead of returning an error")),
            Ok(Ok(())) => problems.push(format!("{path}: set succeeded against an untrusted certificate")),
            Ok(Err(err)) if err.kind() != ErrorKind::Layer => {
                problems.push(format!("{path}: not a layer error: {err}"))
            }
            Ok(Err(err)) if !err.report().to_string().to_lowercase().contains("certificate") => {
                problems.push(format!("{path}: the error does not say the certificate is the problem: {err}"));
            }
            Ok(Err(_)) => {}
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
