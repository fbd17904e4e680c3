use std::collections::HashMap;

use cache_tower::cached_tower;

struct Directory;

impl Directory {
    #[cached_tower(key = "user:{ids}", many = "ids")]
    fn users(self, ids: Vec<u64>) -> HashMap<u64, String> {
        ids.into_iter().map(|id| (id, id.to_string())).collect()
    }
}

fn main() {
    Directory.users(vec![1]);
}
