use cache_tower::error::ErrorKind;
use cache_tower::registry;

fn main() {
    let towers = r#"{
        "sessions": [{"adapter": "memory"}],
        "users":    [{"adapter": "memory"}, {"adapter": "redis", "ttl": -1}]
    }"#;
    let err = registry::register_json(towers).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!((err.tower(), err.layer(), err.field()), (Some("users"), Some(1), Some("ttl")));
    println!("{err}"); // tower `users`, layer 1, field `ttl`: expected a whole number of …
    assert!(registry::get("sessions").is_none(), "nothing was registered");
}
