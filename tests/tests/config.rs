//! The JSON configuration (`CacheTower::from_json` / `from_config`): the seed README's memory
//! layer loads; every mistake is an `ErrorKind::Config` error naming the layer index and the
//! field, never a panic.

use std::time::Duration;

use cache_tower::{
    CacheTower, Error, MemoryAdapter,
    adapter::{CacheAdapter, MAX_TTL},
    error::ErrorKind,
};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The seed README's dictionary example, memory layer.
const SEED_MEMORY_LAYER: &str = r#"[
  {
    "adapter": "memory",
    "namespace": "session:",
    "ttl": 60,
    "params": {
      "maxsize": 1024,
      "lru": true
    }
  }
]"#;

fn rejected(config: &Value) -> Error {
    match CacheTower::from_config(config) {
        Ok(tower) => panic!("{config} should be rejected, got {tower:?}"),
        Err(err) => err,
    }
}

fn rejected_json(text: &str) -> Error {
    match CacheTower::from_json(text) {
        Ok(tower) => panic!("{text} should be rejected, got {tower:?}"),
        Err(err) => err,
    }
}

/// Asserts `config` is rejected as a configuration error about `field` of layer `layer`, and that
/// both `from_config` and `from_json` agree.
fn assert_names(config: Value, layer: usize, field: &str) {
    for err in [rejected(&config), rejected_json(&config.to_string())] {
        assert_eq!(err.kind(), ErrorKind::Config, "{config}: {err}");
        assert_eq!(err.layer(), Some(layer), "{config}: {err}");
        assert_eq!(err.field(), Some(field), "{config}: {err}");
        let text = err.to_string();
        assert!(text.contains(&format!("layer {layer}")), "{config}: display {text:?} does not name the layer");
        assert!(text.contains(field), "{config}: display {text:?} does not name the field");
    }
}

// ===== what loads =====

#[test]
fn the_seed_readme_memory_layer_loads() {
    let tower = CacheTower::from_json(SEED_MEMORY_LAYER).unwrap();
    let layers = tower.get_layers();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].kind(), "memory");
    assert_eq!(layers[0].namespace(), "session:");
    assert_eq!(layers[0].ttl(), Some(Duration::from_secs(60)));

    tower.set("key", "value".to_string()).unwrap();
    assert_eq!(tower.get::<String>("key").as_deref(), Some("value"));
}

#[test]
fn the_seed_memory_layer_is_bounded_and_lru() {
    let tower = CacheTower::from_json(
        r#"[{"adapter": "memory", "namespace": "session:", "ttl": 60, "params": {"maxsize": 2, "lru": true}}]"#,
    )
    .unwrap();
    tower.set("a", 1).unwrap();
    tower.set("b", 2).unwrap();
    tower.get::<i32>("a");
    tower.set("c", 3).unwrap();
    assert_eq!(tower.get::<i32>("b"), None, "lru: b was the least recently used");
    assert_eq!(tower.get::<i32>("a"), Some(1));
    assert_eq!(tower.stats()[0].evictions, 1);
}

#[test]
fn from_json_and_from_config_build_the_same_stack() {
    let config = json!([
        {"adapter": "memory", "namespace": "a:", "ttl": 5},
        {"adapter": "memory", "namespace": "b:", "ttl": 0, "params": {}},
        {"adapter": "memory", "params": null}
    ]);
    for tower in [CacheTower::from_config(&config).unwrap(), CacheTower::from_json(&config.to_string()).unwrap()] {
        let layers = tower.get_layers();
        let summary: Vec<(&str, Option<Duration>)> = layers.iter().map(|l| (l.namespace(), l.ttl())).collect();
        assert_eq!(summary, [("a:", Some(Duration::from_secs(5))), ("b:", None), ("", None)]);
    }
}

#[test]
fn defaults_are_no_namespace_no_ttl_unbounded_fifo() {
    let tower = CacheTower::from_json(r#"[{"adapter": "memory"}]"#).unwrap();
    let layer = &tower.get_layers()[0];
    assert_eq!((layer.namespace(), layer.ttl()), ("", None));
    tower.mset((0..3000).map(|i| (format!("k{i}"), i))).unwrap();
    assert_eq!(tower.stats()[0].evictions, 0, "maxsize defaults to unbounded");
}

#[test]
fn maxsize_zero_is_unbounded_and_lru_false_is_fifo() {
    let tower =
        CacheTower::from_json(r#"[{"adapter": "memory", "params": {"maxsize": 2, "lru": false}}, {"adapter": "memory", "params": {"maxsize": 0}}]"#)
            .unwrap();
    tower.set("a", 1).unwrap();
    tower.set("b", 2).unwrap();
    tower.get::<i32>("a");
    tower.set("c", 3).unwrap();
    let top = &tower.get_layers()[0];
    assert!(!top.exists("a").unwrap(), "fifo evicts the oldest even after a read");
    assert!(tower.get_layers()[1].exists("a").unwrap(), "the unbounded layer keeps everything");
}

#[test]
fn an_empty_list_is_a_tower_without_layers() {
    let tower = CacheTower::from_json("[]").unwrap();
    assert!(tower.get_layers().is_empty());
}

#[test]
fn the_largest_ttl_and_a_very_large_maxsize_load_and_work() {
    let tower = CacheTower::from_config(&json!([
        {"adapter": "memory", "ttl": MAX_TTL.as_secs(), "params": {"maxsize": u32::MAX}}
    ]))
    .unwrap();
    assert_eq!(tower.get_layers()[0].ttl(), Some(MAX_TTL));
    tower.set("k", 1).unwrap();
    assert_eq!(tower.get::<i32>("k"), Some(1));
}

#[test]
fn a_ttl_over_max_ttl_names_layer_and_field() {
    for ttl in [MAX_TTL.as_secs() + 1, 9_223_372_036_854_776, u64::MAX] {
        assert_names(json!([{"adapter": "memory"}, {"adapter": "memory", "ttl": ttl}]), 1, "ttl");
        let err = rejected(&json!([{"adapter": "memory", "ttl": ttl}]));
        assert!(err.to_string().contains(&MAX_TTL.as_secs().to_string()), "the message gives the largest TTL: {err}");
    }
}

#[test]
fn the_memory_builder_clamps_a_ttl_over_max_ttl() {
    for ttl in [MAX_TTL + Duration::from_nanos(1), Duration::MAX] {
        assert_eq!(MemoryAdapter::builder().ttl(ttl).build().ttl(), Some(MAX_TTL));
    }
    assert_eq!(MemoryAdapter::builder().ttl(MAX_TTL).build().ttl(), Some(MAX_TTL));
}

// ===== errors name the layer and the field =====

#[test]
fn unknown_adapter_names_layer_and_field() {
    assert_names(json!([{"adapter": "memory"}, {"adapter": "memcached"}]), 1, "adapter");
    assert_names(json!([{"adapter": "Memory"}]), 0, "adapter");
    assert_names(json!([{"adapter": ""}]), 0, "adapter");
    let err = rejected(&json!([{"adapter": "memcached"}]));
    assert!(err.to_string().contains("memcached"), "the message says which adapter: {err}");
}

#[test]
fn missing_adapter_names_layer_and_field() {
    assert_names(json!([{"namespace": "x", "ttl": 5}]), 0, "adapter");
    assert_names(json!([{"adapter": "memory"}, {"adapter": "memory"}, {}]), 2, "adapter");
}

#[test]
fn adapter_of_the_wrong_type_names_layer_and_field() {
    assert_names(json!([{"adapter": 5}]), 0, "adapter");
    assert_names(json!([{"adapter": null}]), 0, "adapter");
    assert_names(json!([{"adapter": ["memory"]}]), 0, "adapter");
}

#[test]
fn unknown_layer_field_names_layer_and_field() {
    assert_names(json!([{"adapter": "memory", "tll": 5}]), 0, "tll");
    assert_names(json!([{"adapter": "memory"}, {"adapter": "memory", "maxsize": 5}]), 1, "maxsize");
}

#[test]
fn namespace_of_the_wrong_type_names_layer_and_field() {
    assert_names(json!([{"adapter": "memory", "namespace": 3}]), 0, "namespace");
    assert_names(json!([{"adapter": "memory", "namespace": {"a": 1}}]), 0, "namespace");
}

#[test]
fn negative_ttl_names_layer_and_field() {
    assert_names(json!([{"adapter": "memory", "ttl": -1}]), 0, "ttl");
    assert_names(json!([{"adapter": "memory"}, {"adapter": "memory", "ttl": -60}]), 1, "ttl");
}

#[test]
fn non_integer_ttl_names_layer_and_field() {
    assert_names(json!([{"adapter": "memory", "ttl": 1.5}]), 0, "ttl");
    assert_names(json!([{"adapter": "memory", "ttl": 0.1}]), 0, "ttl");
}

#[test]
fn string_ttl_names_layer_and_field() {
    assert_names(json!([{"adapter": "memory", "ttl": "60"}]), 0, "ttl");
    assert_names(json!([{"adapter": "memory", "ttl": true}]), 0, "ttl");
    assert_names(json!([{"adapter": "memory", "ttl": [60]}]), 0, "ttl");
}

#[test]
fn maxsize_of_the_wrong_type_names_layer_and_field() {
    assert_names(json!([{"adapter": "memory", "params": {"maxsize": "big"}}]), 0, "params.maxsize");
    assert_names(json!([{"adapter": "memory", "params": {"maxsize": "1024"}}]), 0, "params.maxsize");
    assert_names(json!([{"adapter": "memory", "params": {"maxsize": -3}}]), 0, "params.maxsize");
    assert_names(json!([{"adapter": "memory", "params": {"maxsize": 2.5}}]), 0, "params.maxsize");
    assert_names(
        json!([{"adapter": "memory"}, {"adapter": "memory", "params": {"maxsize": null}}]),
        1,
        "params.maxsize",
    );
}

#[test]
fn lru_not_bool_names_layer_and_field() {
    assert_names(json!([{"adapter": "memory", "params": {"lru": "yes"}}]), 0, "params.lru");
    assert_names(json!([{"adapter": "memory", "params": {"lru": 1}}]), 0, "params.lru");
    assert_names(json!([{"adapter": "memory", "params": {"lru": "true"}}]), 0, "params.lru");
}

#[test]
fn unknown_params_field_names_layer_and_field() {
    assert_names(json!([{"adapter": "memory", "params": {"maxsze": 3}}]), 0, "params.maxsze");
    assert_names(
        json!([{"adapter": "memory"}, {"adapter": "memory", "params": {"host": "localhost"}}]),
        1,
        "params.host",
    );
}

#[test]
fn params_of_the_wrong_type_names_layer_and_field() {
    assert_names(json!([{"adapter": "memory", "params": []}]), 0, "params");
    assert_names(json!([{"adapter": "memory", "params": "maxsize=3"}]), 0, "params");
}

#[test]
fn a_layer_that_is_not_an_object_names_its_index() {
    for (config, layer) in
        [(json!(["memory"]), 0), (json!([{"adapter": "memory"}, 5]), 1), (json!([{"adapter": "memory"}, null]), 1)]
    {
        for err in [rejected(&config), rejected_json(&config.to_string())] {
            assert_eq!(err.kind(), ErrorKind::Config, "{config}");
            assert_eq!(err.layer(), Some(layer), "{config}: {err}");
            assert!(err.to_string().contains(&format!("layer {layer}")), "{config}: {err}");
        }
    }
}

#[test]
fn the_first_bad_layer_is_reported() {
    let err = rejected(&json!([{"adapter": "memory"}, {"adapter": "memory", "ttl": -1}, {"adapter": "nope"}]));
    assert_eq!((err.layer(), err.field()), (Some(1), Some("ttl")));
}

#[test]
fn a_top_level_that_is_not_an_array_is_a_config_error() {
    for config in [json!({"adapter": "memory"}), json!("memory"), json!(null), json!(3)] {
        for err in [rejected(&config), rejected_json(&config.to_string())] {
            assert_eq!(err.kind(), ErrorKind::Config, "{config}");
            assert_eq!(err.layer(), None, "{config}: {err}");
            assert!(err.to_string().contains("array"), "{config}: the message says an array is expected: {err}");
        }
    }
}

#[test]
fn invalid_json_is_a_config_error() {
    for text in ["", "[", "[{", r#"[{"adapter": "memory",}]"#, "not json", r#"[{"adapter": 'memory'}]"#] {
        let err = rejected_json(text);
        assert_eq!(err.kind(), ErrorKind::Config, "{text:?}: {err}");
        assert_eq!(err.layer(), None, "{text:?}: {err}");
        assert!(std::error::Error::source(&err).is_some(), "{text:?}: the parser's error is attached");
    }
}

// ===== never a panic =====

/// Any JSON value: the layer fields, with values of any type. `"redis"` is not among the strings:
/// a valid Redis layer under a memory layer would start an invalidation listener against the
/// default 127.0.0.1:6379, a Redis this test did not start (the Redis layer's configuration and
/// its errors are tested in `redis.rs`, against a server it starts, and in the unit tests of
/// `cache-tower/src/config.rs`, which do not connect).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e20f64..1e20).prop_map(Value::from),
        prop::sample::select(vec!["memory", "", "60", "session:", "true"]).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let key = prop::sample::select(vec!["adapter", "namespace", "ttl", "params", "maxsize", "lru", "other"]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(key, inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_configuration_is_accepted_or_rejected_without_panicking(config in any_json()) {
        match CacheTower::from_config(&config) {
            Ok(tower) => {
                let layers = config.as_array().map(Vec::len);
                prop_assert_eq!(layers, Some(tower.get_layers().len()));
            }
            Err(err) => {
                prop_assert_eq!(err.kind(), ErrorKind::Config);
                if let Some(layer) = err.layer() {
                    let named = err.to_string().contains(&format!("layer {layer}"));
                    prop_assert!(named, "{}", err);
                }
            }
        }
    }

    #[test]
    fn any_text_is_accepted_or_rejected_without_panicking(text in "\\PC{0,64}") {
        if let Err(err) = CacheTower::from_json(&text) {
            prop_assert_eq!(err.kind(), ErrorKind::Config);
        }
    }
}
