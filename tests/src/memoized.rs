//! Helpers for the `#[cached_tower]` tests: towers registered by name, and counting body runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_tower::{CacheTower, registry};

/// Registers a tower of one memory layer under `name` and returns it.
pub fn register_memory(name: &str) -> Arc<CacheTower> {
    let tower = Arc::new(CacheTower::from_json(r#"[{"adapter": "memory"}]"#).expect("a valid configuration"));
    registry::register(name, Arc::clone(&tower));
    tower
}

/// How many times a body counted by [`count`] has run.
pub fn runs(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

/// Counts a run of a body and returns its number (1 for the first run).
pub fn count(counter: &AtomicUsize) -> usize {
    counter.fetch_add(1, Ordering::SeqCst) + 1
}
