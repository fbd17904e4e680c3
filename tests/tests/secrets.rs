//! Passwords never show: not in `Debug`, `Display`, an error's source chain or a log line, for
//! every URL form the redis client accepts (`redis://`, `rediss://`, `redis+unix://`, `unix://`
//! and their `valkey` twins; `user:pass@` and the `?user=` / `?pass=` query of socket URLs), for
//! passwords holding characters a URL reserves, written unencoded, and for a secret field of the
//! JSON configuration given a value of the wrong type.
//!
//! The URL forms are those of redis-rs 1.8's `parse_redis_url` and `IntoConnectionInfo for
//! url::Url` (`redis/src/connection.rs`): TCP schemes read the user and password from the URL's
//! user info, socket schemes from the `user` and `pass` query parameters.

use std::error::Error as _;
use std::time::Duration;

use cache_tower::{
    CacheTower, Error, RedisAdapter,
    adapter::{CacheAdapter, RedisAdapterBuilder},
    error::ErrorKind,
    registry,
};
use cache_tower_tests::logs::captured_logs;
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
use serde_json::json;

/// The password of the servers here; it holds no character a URL reserves, so it can be put in
/// any URL form as it is.
const PASSWORD: &str = "hunter2secret";
/// What must never show.
const MARKER: &str = "hunter2";

const TIMEOUT: Duration = Duration::from_secs(5);

/// Every text an error offers: `Display`, `Debug`, and each source's, down the chain.
fn all_text(err: &Error) -> String {
    let mut text = format!("{err}\n{err:?}");
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!("\n{cause}\n{cause:?}"));
        source = cause.source();
    }
    text
}

#[track_caller]
fn assert_no_secret(text: &str, what: &str) {
    assert!(!text.contains(MARKER), "{what}: the password shows in:\n{text}");
}

/// Checks the builder and what it builds (the adapter, its endpoint, or the error) for `url`.
#[track_caller]
fn check_url(url: &str) -> Result<RedisAdapter, Error> {
    let builder = RedisAdapter::builder().url(url).timeout(TIMEOUT).connect_timeout(TIMEOUT);
    assert_no_secret(&format!("{builder:?}"), &format!("Debug of the builder for {url}"));
    let built = builder.build();
    match &built {
        Ok(adapter) => {
            let tower = CacheTower::new();
            tower.add_layer(adapter.clone());
            assert_no_secret(&format!("{adapter:?} {tower:?} {}", adapter.endpoint()), &format!("adapter of {url}"));
        }
        Err(err) => {
            assert_eq!(err.kind(), ErrorKind::Config, "{url}: {err}");
            assert_no_secret(&all_text(err), &format!("error for {url}"));
        }
    }
    built
}

/// Every failure of `adapter` (refused or unreachable), blocking and async, through a tower and
/// directly: errors and the log lines of the test thread.
#[track_caller]
fn check_failures(adapter: &RedisAdapter, what: &str) {
    let direct = CacheAdapter::get(adapter, "k").expect_err(what);
    assert_no_secret(&all_text(&direct), what);
    let tower = CacheTower::new();
    tower.add_layer(adapter.clone());
    let logs = captured_logs(|| {
        let err = tower.set("k", 1).expect_err(what);
        assert_eq!(err.kind(), ErrorKind::Layer, "{what}: {err}");
        assert_no_secret(&all_text(&err), what);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let err = tower.set_async("k", 1).await.expect_err(what);
            assert_no_secret(&all_text(&err), what);
        });
    });
    assert!(logs.contains("cache layer failed"), "{what}: the failure is logged:\n{logs}");
    assert_no_secret(&logs, &format!("{what}: logs"));
}

#[test]
fn tcp_urls_with_the_password_in_the_user_info() {
    let server = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let port = server.port();
    for scheme in ["redis", "valkey"] {
        for (form, url) in [
            ("password only", format!("{scheme}://:{PASSWORD}@127.0.0.1:{port}/0")),
            ("user and password", format!("{scheme}://default:{PASSWORD}@127.0.0.1:{port}/1")),
            ("no db", format!("{scheme}://:{PASSWORD}@127.0.0.1:{port}")),
            ("protocol query", format!("{scheme}://:{PASSWORD}@127.0.0.1:{port}/0?protocol=resp3")),
        ] {
            let adapter = check_url(&url).unwrap_or_else(|err| panic!("{form}: {err}"));
            assert!(adapter.endpoint().contains(":***@127.0.0.1"), "{form}: {}", adapter.endpoint());
            let ns = unique_namespace("tcp");
            let tower = CacheTower::new();
            tower.add_layer(RedisAdapter::builder().url(&url).namespace(&ns).timeout(TIMEOUT).build().unwrap());
            tower.set("k", 1).unwrap_or_else(|err| panic!("{form}: {err}"));
            assert_eq!(tower.get::<i32>("k"), Some(1), "{form}");

            let wrong = url.replace(PASSWORD, &format!("{MARKER}-wrong"));
            check_failures(&check_url(&wrong).unwrap(), &format!("{form}, wrong password"));
        }
    }
}

#[test]
fn tls_urls_with_the_password_in_the_user_info() {
    // Whether or not this build has TLS, neither the builder, nor what it builds, nor a failure
    // to connect (nothing speaks TLS on the port) shows the password.
    let server = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let port = server.port();
    for url in [
        format!("rediss://:{PASSWORD}@127.0.0.1:{port}/0"),
        format!("rediss://default:{PASSWORD}@127.0.0.1:{port}/0#insecure"),
        format!("valkeys://:{PASSWORD}@127.0.0.1:{port}/0"),
    ] {
        if let Ok(adapter) = check_url(&url) {
            assert!(adapter.endpoint().starts_with("rediss://"), "{}", adapter.endpoint());
            // A TLS handshake with a plain-text server waits for its timeout: keep it short.
            let quick = RedisAdapter::builder().url(&url).timeout(Duration::from_millis(300)).build().unwrap();
            check_failures(&quick, &url.replace(PASSWORD, "<password>"));
        }
    }
}

#[test]
fn socket_urls_with_the_password_in_the_query() {
    let dir = std::env::temp_dir().join(format!("cache-tower-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("redis.sock");
    let socket_arg = socket.to_str().unwrap().to_owned();
    let _server = RedisServer::start_with(&["--requirepass", PASSWORD, "--unixsocket", &socket_arg]);
    let path = socket.display();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !socket.exists() {
        assert!(std::time::Instant::now() < deadline, "the server made no socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    for scheme in ["redis+unix", "unix", "valkey+unix"] {
        for (form, url) in [
            ("pass", format!("{scheme}://{path}?pass={PASSWORD}")),
            ("user and pass", format!("{scheme}://{path}?user=default&pass={PASSWORD}")),
            ("db, pass and protocol", format!("{scheme}://{path}?db=2&pass={PASSWORD}&protocol=3")),
        ] {
            let adapter = check_url(&url).unwrap_or_else(|err| panic!("{scheme} {form}: {err}"));
            assert!(adapter.endpoint().contains("pass=***"), "{scheme} {form}: {}", adapter.endpoint());
            let ns = unique_namespace("unix");
            let tower = CacheTower::new();
            tower.add_layer(RedisAdapter::builder().url(&url).namespace(&ns).timeout(TIMEOUT).build().unwrap());
            tower.set("k", 1).unwrap_or_else(|err| panic!("{scheme} {form}: {err}"));
            assert_eq!(tower.get::<i32>("k"), Some(1), "{scheme} {form}");

            let wrong = url.replace(PASSWORD, &format!("{MARKER}-wrong"));
            check_failures(&check_url(&wrong).unwrap(), &format!("{scheme} {form}, wrong password"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unencoded_reserved_characters_in_a_password_are_an_error_that_does_not_quote_it() {
    // Each would make the URL parse into something else (a host and port out of the start of
    // the password, a path, a fragment, a query) or not parse at all.
    let urls = [
        format!("redis://:{MARKER}#x@127.0.0.1:6379/0"),
        format!("redis://:{MARKER}/x@127.0.0.1:6379/0"),
        format!("redis://:{MARKER}?x@127.0.0.1:6379/0"),
        format!("redis://user:{MARKER}#x@127.0.0.1:6379/0"),
        "redis://:12345#hunter2@127.0.0.1:6379/0".to_owned(),
        "redis://:12345?hunter2@127.0.0.1:6379/0".to_owned(),
        "redis://:12345/hunter2@127.0.0.1:6379/0".to_owned(),
        "redis://u:12345#hunter2@127.0.0.1:6379/0".to_owned(),
        format!("rediss://:{MARKER}#x@127.0.0.1:6379/0"),
        format!("redis+unix:///tmp/x.sock?pass={MARKER}#frag"),
        format!("redis+unix:///tmp/x.sock?pass={MARKER}&pass2={MARKER}"),
        format!("redis://:{MARKER}@127.0.0.1:99999999/0"),
        format!("redis://:{MARKER}@127.0.0.1:6379/not-a-db"),
        format!("redis://:{MARKER}@127.0.0.1:6379/0?protocol=9"),
        format!("redis+unix:///tmp/x.sock?pass={MARKER}&db=nope"),
        format!("http://:{MARKER}@127.0.0.1:6379/0"),
    ];
    for url in urls {
        let err = check_url(&url).expect_err(&url);
        assert_eq!(err.field(), Some("url"), "{url}: {err}");
        // And through the JSON configuration and the registry.
        let config = json!([{"adapter": "redis", "params": {"url": url}}]);
        let err = CacheTower::from_config(&config).expect_err(&url);
        assert_eq!((err.layer(), err.field()), (Some(0), Some("params.url")), "{url}: {err}");
        assert_no_secret(&all_text(&err), &url);
        let err = registry::register_json(&json!({"secrets_url": config}).to_string()).expect_err(&url);
        assert_eq!(err.tower(), Some("secrets_url"));
        assert_no_secret(&all_text(&err), &url);
    }
}

#[test]
fn a_password_given_as_a_setting_needs_no_encoding() {
    let password = format!("{MARKER}#/?@:%20 wörd");
    let server = RedisServer::start_with(&["--requirepass", &password]);
    let ns = unique_namespace("parts");
    let builder: RedisAdapterBuilder = RedisAdapter::builder().port(server.port()).password(&password);
    assert_no_secret(&format!("{builder:?}"), "Debug of the builder");
    let adapter = builder.namespace(&ns).timeout(TIMEOUT).build().unwrap();
    assert_eq!(adapter.endpoint(), format!("redis://:***@127.0.0.1:{}/0", server.port()));
    let tower = CacheTower::new();
    tower.add_layer(adapter.clone());
    tower.set("k", 1).unwrap();
    assert_eq!(tower.get::<i32>("k"), Some(1));

    let config =
        json!([{"adapter": "redis", "namespace": ns, "params": {"port": server.port(), "password": password}}]);
    let tower = CacheTower::from_config(&config).unwrap();
    assert_no_secret(&format!("{tower:?}"), "Debug of a configured tower");
    assert_eq!(tower.get::<i32>("k"), Some(1));
}

#[test]
fn a_secret_field_of_the_wrong_type_is_not_echoed() {
    let values = [
        json!(8_675_309_123_u64),
        json!(-8_675_309),
        json!(8675.309),
        json!({"hunter2": "hunter2"}),
        json!(["hunter2"]),
        json!(true),
        json!(false),
    ];
    for field in ["password", "url"] {
        for value in &values {
            let config = json!([{"adapter": "memory"}, {"adapter": "redis", "params": {field: value}}]);
            let what = format!("{field}: {value}");
            let text = value.to_string();
            let errors = [
                CacheTower::from_config(&config).expect_err(&what),
                CacheTower::from_json(&config.to_string()).expect_err(&what),
                registry::register_json(&json!({"secrets_typed": config}).to_string()).expect_err(&what),
            ];
            for err in errors {
                assert_eq!(err.kind(), ErrorKind::Config, "{what}: {err}");
                assert_eq!((err.layer(), err.field()), (Some(1), Some(format!("params.{field}").as_str())), "{what}");
                assert!(registry::get("secrets_typed").is_none(), "{what}: nothing was registered");
                assert!(err.to_string().contains("expected a string"), "{what}: says what was expected: {err}");
                let all = all_text(&err);
                assert_no_secret(&all, &what);
                for shown in [text.as_str(), "8675", "got true", "got false"] {
                    assert!(!all.contains(shown), "{what}: {shown:?} is echoed in:\n{all}");
                }
            }
        }
    }
    // Other fields still say what came: they hold no secret.
    let err = CacheTower::from_config(&json!([{"adapter": "redis", "params": {"port": "6379"}}])).unwrap_err();
    assert!(err.to_string().contains("\"6379\""), "{err}");
}
