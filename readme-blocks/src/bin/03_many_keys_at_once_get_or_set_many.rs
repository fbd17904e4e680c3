use cache_tower::CacheTower;
use std::collections::HashMap;

fn main() -> cache_tower::Result<()> {
    let tower = CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    tower.set("user:1", "ada".to_string())?;

    let keys = ["user:1", "user:2", "user:3"];
    let users = tower.get_or_set_many(&keys, |missing: &[&str]| {
        // One query for all the missing ones (here: user:2 and user:3).
        missing.iter().map(|key| (key.to_string(), format!("name of {key}"))).collect::<HashMap<_, _>>()
    });
    assert_eq!(users["user:1"], "ada");
    assert_eq!(users.len(), 3);
    Ok(())
}
