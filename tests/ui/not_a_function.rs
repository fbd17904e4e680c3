use cache_tower::cached_tower;

#[cached_tower(config = "users")]
struct User {
    id: u64,
}

fn main() {}
