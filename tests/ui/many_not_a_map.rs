use cache_tower::cached_tower;

#[cached_tower(key = "user:{ids}", many = "ids")]
fn users(ids: &[u64]) -> Vec<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

fn main() {
    users(&[1]);
}
