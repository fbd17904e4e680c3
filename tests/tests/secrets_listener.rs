//! The invalidation listener runs on a thread of its own, so a subscriber set on the test thread
//! does not see what it logs: this test binary installs a process-wide capturing subscriber (one
//! test, so nothing else shares it) and checks that the listener's warnings about a refused
//! password name the server without its password, for every form the password can come in.

use std::time::{Duration, Instant};

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter, adapter::RedisAdapterBuilder};
use cache_tower_tests::logs::LogBuffer;
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};

const PASSWORD: &str = "hunter2secret";
const MARKER: &str = "hunter2";

#[test]
fn the_listener_thread_never_logs_a_password() {
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber of this binary");

    let dir = std::env::temp_dir().join(format!("cache-tower-listener-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("redis.sock");
    let socket_arg = socket.to_str().unwrap().to_owned();
    let server = RedisServer::start_with(&["--requirepass", PASSWORD, "--unixsocket", &socket_arg]);
    let port = server.port();
    let wrong = format!("{MARKER}-wrong");
    let path = socket.display();
    let cases: Vec<(&str, RedisAdapterBuilder)> = vec![
        ("no password", RedisAdapter::builder().port(port)),
        ("password setting", RedisAdapter::builder().port(port).password(&wrong)),
        ("user and password settings", RedisAdapter::builder().port(port).username("default").password(&wrong)),
        ("redis:// user info", RedisAdapter::builder().url(format!("redis://:{wrong}@127.0.0.1:{port}/0"))),
        (
            "redis:// user and password",
            RedisAdapter::builder().url(format!("redis://default:{wrong}@127.0.0.1:{port}/0")),
        ),
        ("redis+unix:// ?pass=", RedisAdapter::builder().url(format!("redis+unix://{path}?pass={wrong}"))),
        ("unix:// ?user=&pass=", RedisAdapter::builder().url(format!("unix://{path}?user=default&pass={wrong}"))),
    ];
    for (what, builder) in cases {
        let before = buffer.text().len();
        let redis = builder.namespace(unique_namespace("listener")).timeout(Duration::from_secs(2)).build().unwrap();
        let tower = CacheTower::new();
        tower.add_layer(MemoryAdapter::new());
        tower.add_layer(redis.clone()); // memory above Redis: the listener starts
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let logs = buffer.text()[before..].to_owned();
            if logs.contains("cache invalidation connection lost or refused") {
                assert!(logs.contains(redis.endpoint()), "{what}: the warning names the server:\n{logs}");
                // In words, naming the setting, not Redis's text about commands the user never sent.
                let words = match what {
                    "no password" => "the server requires a password and none was given: set `password`",
                    _ => "the server refused the user name or password: check `username` and `password`",
                };
                assert!(logs.contains(words), "{what}: {words:?} in:\n{logs}");
                assert!(!logs.contains("HELLO"), "{what}: raw protocol text in:\n{logs}");
                break;
            }
            assert!(Instant::now() < deadline, "{what}: the listener logged no warning:\n{logs}");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(tower);
    }
    let logs = buffer.text();
    assert!(!logs.contains(MARKER), "a password shows in the logs:\n{logs}");
    let _ = std::fs::remove_dir_all(&dir);
}
