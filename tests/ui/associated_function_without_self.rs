use cache_tower::cached_tower;

struct Users;

impl Users {
    // No receiver and no `Self`: the macro takes it for a free function, and calls its body as
    // `load_uncached`, which only `Self::load_uncached` names inside an `impl`.
    #[cached_tower(config = "users", key = "user:{id}")]
    fn load(id: u64) -> u64 {
        id
    }
}

fn main() {
    Users::load(1);
}
