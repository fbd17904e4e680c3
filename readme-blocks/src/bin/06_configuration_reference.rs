use cache_tower::CacheTower;
use cache_tower::error::ErrorKind;

fn main() {
    let config = r#"[
        {"adapter": "memory", "namespace": "session:", "ttl": 60, "params": {"maxsize": 1024, "lru": true}},
        {"adapter": "memory", "params": {"maxsize": "big"}}
    ]"#;
    let Err(err) = CacheTower::from_json(config) else {
        panic!("a maxsize of \"big\" is refused");
    };
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!((err.layer(), err.field()), (Some(1), Some("params.maxsize")));
    println!("{err}");
}
