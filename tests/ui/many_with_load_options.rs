use std::collections::HashMap;

use cache_tower::cached_tower;

#[cached_tower(key = "user:{ids}", many = "ids", ttl = "30s", fail_safe = "1m")]
fn users(ids: &[u64]) -> HashMap<u64, String> {
    ids.iter().map(|id| (*id, id.to_string())).collect()
}

fn main() {
    users(&[1]);
}
