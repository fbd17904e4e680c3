use cache_tower::{CacheTower, LoadOptions};
use std::time::Duration;

fn main() -> cache_tower::Result<()> {
    let tower = CacheTower::from_json(r#"[{"adapter": "memory", "ttl": 300, "stale": 3600}]"#)?;
    let options = LoadOptions::new()
        .soft_timeout(Duration::from_millis(100))
        .hard_timeout(Duration::from_secs(2))
        .refresh_ahead(0.8);
    let fetch = || {
        // An HTTP call, a query... owned data only: it may outlive this call.
        Ok::<String, String>("EUR 1.08".to_string())
    };
    let rate = tower.try_get_or_load("rate:EURUSD", &options, fetch);
    assert_eq!(rate.as_deref(), Ok("EUR 1.08"));
    Ok(())
}
