use cache_tower::cached_tower;

#[cached_tower(config = "users", key = "user:{id}", option = "yes")]
fn find_user(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {
    find_user(1);
}
