use cache_tower::{CacheTower, LoadOptions};
use std::time::Duration;

fn main() -> cache_tower::Result<()> {
    // Fresh for 60 s, then stale for an hour.
    let tower = CacheTower::from_json(r#"[{"adapter": "memory", "ttl": 60, "stale": 3600}]"#)?;
    // This call's values: fresh for 50 ms (then the layer's hour of staleness); fail-safe on,
    // a fallback kept fresh for 30 s.
    let options = LoadOptions::new().ttl(Duration::from_millis(50)).fail_safe(Duration::from_secs(30));

    let rate: Result<f64, String> = tower.try_get_or_set_with("rate:EURUSD", &options, || Ok(1.08));
    assert_eq!(rate, Ok(1.08));
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(tower.get::<f64>("rate:EURUSD"), None, "stale: plain reads miss it");

    let rate = tower.try_get_or_set_with("rate:EURUSD", &options, || Err("rates service down".to_string()));
    assert_eq!(rate, Ok(1.08), "the stale value, not the error");
    assert_eq!(tower.stats()[0].stale_served, 1);
    Ok(())
}
