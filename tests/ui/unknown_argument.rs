use cache_tower::cached_tower;

#[cached_tower(config = "users", expires = 5)]
fn load_user(id: u64) -> u64 {
    id
}

fn main() {
    load_user(1);
    // The companions exist even so: no second error for them.
    load_user_uncached(1);
    let _ = load_user_invalidate(1);
}
