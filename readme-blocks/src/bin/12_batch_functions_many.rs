use std::collections::HashMap;

use cache_tower::{cached_tower, registry};

#[cached_tower(config = "users", key = "user:{ids}", many = "ids")]
fn user_names(ids: &[u64]) -> HashMap<u64, String> {
    println!("loading {ids:?}"); // one query for all the missing ones
    ids.iter().map(|id| (*id, format!("user {id}"))).collect()
}

fn main() -> cache_tower::Result<()> {
    registry::register_json(r#"{"users": [{"adapter": "memory", "ttl": 60}]}"#)?;
    assert_eq!(user_names(&[1, 2]).len(), 2); // prints "loading [1, 2]"
    assert_eq!(user_names(&[2, 3]).len(), 2); // prints "loading [3]"
    user_names_invalidate(&[1, 2, 3])?; // forgets each element's entry (one `delete_many`)
    Ok(())
}
