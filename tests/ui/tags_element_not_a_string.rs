use cache_tower::cached_tower;

#[cached_tower(config = "users", key = "user:{id}", tags = ["user:{id}", id])]
fn load_user(id: u64) -> u64 {
    id
}

fn main() {
    load_user(1);
}
