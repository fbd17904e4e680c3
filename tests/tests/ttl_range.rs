//! The largest TTL, `cache_tower::adapter::MAX_TTL`, against a real redis-server: a layer with it really
//! writes (`SET … PX`, and the multi-key script) and its entries carry it; one more is refused
//! when the layer is configured, in JSON and by the builder, rather than by Redis on every write.

use std::time::Duration;

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter, adapter::MAX_TTL, error::ErrorKind};
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(5);

fn pttl(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(con).expect("PTTL")
}

/// Asserts Redis keeps `key` for (about) `MAX_TTL`.
#[track_caller]
fn assert_max_ttl(con: &mut redis::Connection, key: &str) {
    let max = i64::try_from(MAX_TTL.as_millis()).unwrap();
    let left = pttl(con, key);
    assert!((max - 60_000..=max).contains(&left), "{key}: PTTL {left}, expected about {max}");
}

#[test]
fn the_largest_ttl_works_with_redis() {
    let server = RedisServer::start();
    let mut con = redis::Client::open(server.url()).unwrap().get_connection_with_timeout(TIMEOUT).unwrap();

    let ns = unique_namespace("max-ttl");
    let redis = RedisAdapter::builder()
        .port(server.port())
        .namespace(&ns)
        .ttl(MAX_TTL)
        .timeout(TIMEOUT)
        .invalidation(false)
        .build()
        .expect("MAX_TTL is accepted");
    let tower = CacheTower::new();
    tower.add_layer(redis);
    tower.set("one", 1).expect("SET PX with MAX_TTL");
    assert_max_ttl(&mut con, &format!("{ns}one"));
    tower.mset([("a", 1), ("b", 2)]).expect("the multi-key script with MAX_TTL");
    assert_max_ttl(&mut con, &format!("{ns}a"));
    assert_max_ttl(&mut con, &format!("{ns}b"));
    assert_eq!(tower.get::<i32>("b"), Some(2));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        tower.set_async("async", 3).await.expect("async SET PX with MAX_TTL");
        tower.mset_async([("c", 4)]).await.expect("async multi-key script with MAX_TTL");
    });
    assert_max_ttl(&mut con, &format!("{ns}async"));
    assert_max_ttl(&mut con, &format!("{ns}c"));
    assert_eq!(tower.stats()[0].errors, 0, "{:?}", tower.stats());

    // The same from JSON, memory over Redis, the values read back through the tower.
    let ns = unique_namespace("max-ttl-json");
    let config = json!([
        {"adapter": "memory", "ttl": MAX_TTL.as_secs()},
        {"adapter": "redis", "namespace": ns, "ttl": MAX_TTL.as_secs(),
         "params": {"port": server.port(), "timeout_ms": 5000, "invalidation": false}}
    ]);
    let tower = CacheTower::from_config(&config).expect("MAX_TTL in JSON");
    tower.set("k", 5).unwrap();
    assert_max_ttl(&mut con, &format!("{ns}k"));
    tower.get_layers()[0].delete("k").unwrap();
    assert_eq!(tower.get::<i32>("k"), Some(5), "read from Redis, backfilled");
    assert!(tower.stats().iter().all(|layer| layer.errors == 0), "{:?}", tower.stats());

    // What the check spares: Redis itself refuses a TTL past the signed 64-bit milliseconds.
    let refused: redis::RedisResult<()> =
        redis::cmd("SET").arg(format!("{ns}raw")).arg("1").arg("PX").arg(i64::MAX - 1).query(&mut con);
    assert!(refused.is_err(), "Redis accepted PX {}", i64::MAX - 1);
}

#[test]
fn one_more_than_the_largest_ttl_is_refused_at_configuration_time() {
    let one_more = MAX_TTL + Duration::from_secs(1);
    let err = RedisAdapter::builder().ttl(one_more).build().expect_err("over MAX_TTL");
    assert_eq!((err.kind(), err.field()), (ErrorKind::Config, Some("ttl")), "{err}");
    let err = RedisAdapter::builder().ttl(MAX_TTL + Duration::from_nanos(1)).build().expect_err("over MAX_TTL");
    assert_eq!(err.field(), Some("ttl"), "{err}");
    let err = RedisAdapter::builder().ttl(Duration::MAX).build().expect_err("Duration::MAX");
    assert_eq!(err.field(), Some("ttl"), "{err}");

    // In JSON, for either adapter, naming the layer and the field; nothing connects.
    for adapter in ["memory", "redis"] {
        let config = json!([{"adapter": "memory"}, {"adapter": adapter, "ttl": one_more.as_secs()}]);
        let err = CacheTower::from_config(&config).expect_err(adapter);
        assert_eq!((err.kind(), err.layer(), err.field()), (ErrorKind::Config, Some(1), Some("ttl")), "{err}");
        assert!(err.to_string().contains("layer 1") && err.to_string().contains("MAX_TTL"), "{err}");
    }

    // The memory builder cannot fail: it clamps.
    assert_eq!(cache_tower::adapter::CacheAdapter::ttl(&MemoryAdapter::builder().ttl(one_more).build()), Some(MAX_TTL));
}
