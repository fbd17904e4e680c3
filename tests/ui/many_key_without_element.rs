use std::collections::HashMap;

use cache_tower::cached_tower;

// Every element would share one key.
#[cached_tower(key = "users:{tenant}", many = "ids")]
fn users(tenant: &str, ids: &[u64]) -> HashMap<u64, String> {
    ids.iter().map(|id| (*id, format!("{tenant}{id}"))).collect()
}

fn main() {
    users("t", &[1]);
}
