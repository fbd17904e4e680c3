use cache_tower::cached_tower;

type Lookup = Result<Option<u64>, String>;

#[cached_tower(config = "users", key = "user:{id}", result = true, option = true)]
fn find_user(id: u64) -> Lookup {
    Ok(Some(id))
}

fn main() {
    let _ = find_user(1);
}
