use std::sync::atomic::{AtomicUsize, Ordering};

use cache_tower::{cached_tower, registry};

static CATALOGUE_CALLS: AtomicUsize = AtomicUsize::new(0);

/// An `async fn` awaits its tower: a Redis layer never blocks the runtime's threads.
#[cached_tower(config = "prices", key = "price:{sku}")]
async fn price_cents(sku: String) -> Option<u64> {
    CATALOGUE_CALLS.fetch_add(1, Ordering::SeqCst); // a call to a catalogue service in real life
    (sku != "gone").then_some(1999)
}

#[tokio::main]
async fn main() -> cache_tower::Result<()> {
    registry::register_json(r#"{"prices": [{"adapter": "memory", "ttl": 30}]}"#)?;

    assert_eq!(price_cents("A-1".into()).await, Some(1999)); // computed, then cached
    assert_eq!(price_cents("A-1".into()).await, Some(1999)); // a memory hit
    assert_eq!(price_cents("gone".into()).await, None); // None is not cached: asked again next time
    assert_eq!(CATALOGUE_CALLS.load(Ordering::SeqCst), 2);

    price_cents_invalidate("A-1".into()).await?; // the companions of an async fn are async too
    assert_eq!(price_cents_uncached("A-1".into()).await, Some(1999));
    Ok(())
}
