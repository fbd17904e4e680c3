use std::time::Duration;

use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter};

fn main() -> cache_tower::Result<()> {
    // A cluster: seed nodes, `host:port` or URLs; one live node is enough to find the others.
    let cluster = RedisAdapter::builder()
        .cluster(["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"])
        .username("app") // and .password_env("REDIS_PASSWORD"): every node's credentials
        .namespace("users:")
        .ttl(Duration::from_secs(300));
    // A master found through Sentinel: the name Sentinel monitors, and the sentinels.
    let sentinel = RedisAdapter::builder()
        .sentinel("mymaster", ["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"])
        .sentinel_password("only-the-sentinels-know")
        .namespace("sessions:");
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().maxsize(10_000).build());
    tower.add_layer(cluster.build()?); // nothing connects until the first call
    let _failover_safe = sentinel.build()?;
    Ok(())
}
