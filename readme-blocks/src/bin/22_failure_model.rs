use cache_tower::error::Fault;
use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter};

fn main() -> cache_tower::Result<()> {
    // Memory over a Redis layer that nobody answers: nothing listens on port 1.
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::new());
    tower.add_layer(RedisAdapter::builder().url("redis://127.0.0.1:1/0").build()?);

    // A read never fails: the broken layer is a miss.
    assert_eq!(tower.get::<String>("user:1"), None);

    // A write writes the layers that work, then returns the error of the one that did not.
    let err = tower.set("user:1", "Ada".to_string()).unwrap_err();
    assert_eq!(err.fault(), Some(Fault::Connection));
    println!("set: {}", err.report()); // the error and its causes, on one line
    assert_eq!(tower.get::<String>("user:1").as_deref(), Some("Ada")); // memory still answers

    // The third failure in a row (after the get and the set) opens the circuit breaker: for a
    // second, the layer is skipped, without waiting for it.
    let err = tower.delete("user:2").unwrap_err();
    println!("delete: {:?} fault, {err}", err.fault());
    let err = tower.delete("user:3").unwrap_err();
    assert!(err.is_skipped());

    for layer in tower.stats() {
        println!("layer {} ({}): {} errors, {} skipped", layer.layer, layer.kind, layer.errors, layer.skipped);
    }
    Ok(())
}
