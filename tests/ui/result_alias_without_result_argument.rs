use cache_tower::cached_tower;

type MyResult<T> = Result<T, String>;

#[cached_tower(config = "users", key = "user:{id}")]
fn load_user(id: u64) -> MyResult<u64> {
    Ok(id)
}

fn main() {
    let _ = load_user(1);
}
