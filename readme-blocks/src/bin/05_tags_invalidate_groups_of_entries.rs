use cache_tower::{CacheTower, LoadOptions};

fn main() -> cache_tower::Result<()> {
    let tower = CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    let of_user_7 = LoadOptions::new().tags(["user:7"]);
    tower.set_with("profile:7", "Ada".to_string(), &of_user_7)?;
    let orders = tower.get_or_set_with("orders:7", &of_user_7, || vec![101, 102]);
    assert_eq!(orders, vec![101, 102]);
    tower.set("profile:8", "Grace".to_string())?;

    tower.invalidate_tag("user:7")?; // or `invalidate_tag_async(..).await`

    assert_eq!(tower.get::<String>("profile:7"), None);
    assert_eq!(tower.get::<Vec<u32>>("orders:7"), None);
    assert_eq!(tower.get::<String>("profile:8").as_deref(), Some("Grace"));
    Ok(())
}
