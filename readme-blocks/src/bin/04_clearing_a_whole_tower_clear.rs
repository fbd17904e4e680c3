fn main() -> cache_tower::Result<()> {
    let tower = cache_tower::CacheTower::from_json(r#"[{"adapter": "memory"}]"#)?;
    tower.set("user:1", "ada".to_string())?;

    tower.clear()?; // or `clear_async().await`

    assert_eq!(tower.get::<String>("user:1"), None);
    Ok(())
}
