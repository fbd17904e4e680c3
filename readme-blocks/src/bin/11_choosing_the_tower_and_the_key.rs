use cache_tower::{cached_tower, registry};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// Cached in the tower registered as "users", under "user:7" for `load_user(7)`.
#[cached_tower(config = "users", key = "user:{id}")]
fn load_user(id: u64) -> User {
    User { id, name: format!("user {id}") } // a slow query in real life
}

/// Only `Ok` is cached: an error goes back to its caller, and the next call tries again.
#[cached_tower(config = "users", key = "profile:{id}")]
fn load_profile(id: u64) -> Result<String, std::io::Error> {
    Ok(format!("profile of user {id}"))
}

/// A `Result` under another name: `result = true` says so (only `Ok` is cached).
type DbResult<T> = Result<T, std::io::Error>;

#[cached_tower(config = "users", key = "email:{id}", result = true)]
fn load_email(id: u64) -> DbResult<String> {
    Ok(format!("user{id}@example.com"))
}

struct Directory {
    region: String,
}

impl Directory {
    /// A method: its key names what the result depends on, `self` included. Only `Some` is
    /// cached (unless `cache_none = true`).
    #[cached_tower(config = "users", key = "{self.region}:{id}")]
    fn lookup(&self, id: u64) -> Option<User> {
        Some(User { id, name: format!("user {id} of {}", self.region) })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    registry::register_json(r#"{"users": [{"adapter": "memory", "ttl": 60, "params": {"maxsize": 10000}}]}"#)?;

    let user = load_user(7); // a miss: the body runs, "user:7" is written to every layer
    let again = load_user(7); // a hit: a copy from memory, the body does not run
    load_user_invalidate(7)?; // deletes "user:7" from every layer
    let fresh = load_user_uncached(7); // runs the body; reads and writes nothing
    println!("{user:?} {again:?} {fresh:?}");

    let profile = load_profile(7)?; // cached under "profile:7"
    let email = load_email(7)?; // cached under "email:7"
    let eu = Directory { region: "eu".into() }.lookup(7); // cached under "eu:7"
    println!("{profile}, {email}, {eu:?}");

    let users = registry::get("users").expect("registered above");
    assert!(users.exists("profile:7") && users.exists("email:7") && users.exists("eu:7"));
    assert!(!users.exists("user:7"));
    Ok(())
}
