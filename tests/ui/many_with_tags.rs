use std::collections::HashMap;

use cache_tower::cached_tower;

#[cached_tower(key = "user:{ids}", many = "ids", tags = ["user:{ids}"])]
fn users(ids: &[u64]) -> HashMap<u64, String> {
    ids.iter().map(|id| (*id, id.to_string())).collect()
}

fn main() {
    users(&[1]);
}
