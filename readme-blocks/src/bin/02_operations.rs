use cache_tower::error::ErrorKind;
use cache_tower::{CacheTower, MemoryAdapter};

fn main() -> cache_tower::Result<()> {
    // Two layers: a small memory layer on top (layer 0) over a larger one (layer 1).
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().maxsize(100).build());
    tower.add_layer(MemoryAdapter::builder().maxsize(10_000).build());

    tower.mset([("a", 1u32), ("b", 2), ("c", 3)])?; // every layer, one batch each

    // Make layer 0 forget "a": the next read finds it in layer 1 and copies it back up.
    tower.get_layers()[0].delete("a")?;
    assert_eq!(tower.get::<u32>("a"), Some(1));
    assert!(tower.get_layers()[0].exists("a")?);

    // A computation that can fail: its error comes back and nothing is stored.
    let failed = tower.try_get_or_set("d", || "4x".parse::<u32>());
    assert!(failed.is_err() && !tower.exists("d"));
    assert_eq!(tower.try_get_or_set("d", || "4".parse::<u32>()), Ok(4));

    // What each layer has seen so far.
    for layer in tower.stats() {
        println!(
            "layer {} ({}): {} hits, {} misses, {} backfills",
            layer.layer, layer.kind, layer.hits, layer.misses, layer.backfills
        );
    }

    // Change the stack while it is in use: replace layer 1, append a third layer.
    tower.set_layer(MemoryAdapter::new(), 1)?;
    tower.set_layer(MemoryAdapter::new(), 2)?;
    let past_the_end = tower.set_layer(MemoryAdapter::new(), 5).unwrap_err();
    assert_eq!(past_the_end.kind(), ErrorKind::Position);
    println!("{past_the_end}");

    tower.flush()?; // every layer empties its own namespace
    assert!(!tower.exists("b"));
    Ok(())
}
