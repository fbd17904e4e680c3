use std::time::Duration;

use cache_tower::{CacheTower, MemoryAdapter, registry};

fn main() -> cache_tower::Result<()> {
    // In code: any tower, built any way.
    let reports = CacheTower::new();
    reports.add_layer(MemoryAdapter::builder().maxsize(100).ttl(Duration::from_secs(3600)).build());
    registry::register("reports", reports);

    // From JSON: named towers, each a list of layers as in the configuration reference.
    let names = registry::register_json(
        r#"{
            "sessions": [{"adapter": "memory", "namespace": "session:", "ttl": 900}],
            "users":    [{"adapter": "memory", "ttl": 60, "params": {"maxsize": 10000, "lru": true}}]
        }"#,
    )?;
    assert_eq!(names, ["sessions", "users"]);
    // "default" is built in: it is what #[cached_tower] uses without `config`.
    assert_eq!(registry::names(), ["default", "reports", "sessions", "users"]);

    // At start-up, before serving: every tower the program uses is there.
    registry::require(&["reports", "sessions", "users"])?;

    let users = registry::get("users").expect("registered above");
    users.set("user:1", "Ada".to_string())?;
    assert_eq!(users.get::<String>("user:1").as_deref(), Some("Ada"));
    Ok(())
}
