//! The JSON configuration: a list of layers, top first, each naming its adapter.
//!
//! ```json
//! [
//!   {"adapter": "memory", "namespace": "session:", "ttl": 60, "params": {"maxsize": 1024, "lru": true}}
//! ]
//! ```
//!
//! Validation is strict: an unknown adapter or field, or a value of the wrong type, is an
//! [`ErrorKind::Config`](crate::ErrorKind::Config) error naming the layer index and the field, so
//! a typo in a settings file fails at start-up instead of silently running with defaults.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::adapter::CacheAdapter;
use crate::adapter::memory::MemoryAdapter;
use crate::error::{Error, Result};

/// The fields a layer object may have.
const LAYER_FIELDS: &[&str] = &["adapter", "namespace", "ttl", "params"];
/// The adapters this build knows.
const ADAPTERS: &[&str] = &["memory"];

/// Parses JSON text, reporting syntax errors as configuration errors.
pub(crate) fn parse_json(json: &str) -> Result<Value> {
    serde_json::from_str(json)
        .map_err(|err| Error::config(None, None, "configuration is not valid JSON").with_source(err))
}

/// Builds the adapters of a list-of-layers configuration, top layer first.
pub(crate) fn build_layers(config: &Value) -> Result<Vec<Arc<dyn CacheAdapter>>> {
    let layers = config.as_array().ok_or_else(|| {
        Error::config(None, None, format!("configuration must be a JSON array of layers, got {}", describe(config)))
    })?;
    layers.iter().enumerate().map(|(index, layer)| build_layer(index, layer)).collect()
}

/// The common fields of one layer, validated.
struct LayerSpec<'a> {
    index: usize,
    namespace: String,
    ttl: Duration,
    params: Option<&'a Map<String, Value>>,
}

fn build_layer(index: usize, layer: &Value) -> Result<Arc<dyn CacheAdapter>> {
    let object = layer
        .as_object()
        .ok_or_else(|| Error::config(Some(index), None, format!("expected a layer object, got {}", describe(layer))))?;
    reject_unknown(index, "", object, LAYER_FIELDS)?;
    let adapter = match object.get("adapter") {
        Some(Value::String(name)) => name.as_str(),
        Some(other) => {
            return Err(field_error(index, "adapter", format!("expected a string, got {}", describe(other))));
        }
        None => return Err(field_error(index, "adapter", format!("missing; expected one of {}", ADAPTERS.join(", ")))),
    };
    let spec = LayerSpec {
        index,
        namespace: match object.get("namespace") {
            None => String::new(),
            Some(Value::String(namespace)) => namespace.clone(),
            Some(other) => {
                return Err(field_error(index, "namespace", format!("expected a string, got {}", describe(other))));
            }
        },
        ttl: Duration::from_secs(match object.get("ttl") {
            None => 0,
            Some(value) => whole_number(index, "ttl", value, "a whole number of seconds, 0 or more")?,
        }),
        params: match object.get("params") {
            None | Some(Value::Null) => None,
            Some(Value::Object(params)) => Some(params),
            Some(other) => {
                return Err(field_error(index, "params", format!("expected an object, got {}", describe(other))));
            }
        },
    };
    match adapter {
        "memory" => memory_layer(&spec),
        other => Err(field_error(
            index,
            "adapter",
            format!("unknown adapter {other:?}; expected one of {}", ADAPTERS.join(", ")),
        )),
    }
}

fn memory_layer(spec: &LayerSpec<'_>) -> Result<Arc<dyn CacheAdapter>> {
    let mut builder = MemoryAdapter::builder().namespace(spec.namespace.clone()).ttl(spec.ttl);
    if let Some(params) = spec.params {
        reject_unknown(spec.index, "params.", params, &["maxsize", "lru"])?;
        if let Some(value) = params.get("maxsize") {
            let maxsize = whole_number(spec.index, "params.maxsize", value, "a whole number of entries, 0 or more")?;
            let maxsize = usize::try_from(maxsize).map_err(|_| {
                field_error(spec.index, "params.maxsize", format!("{maxsize} is too large for this machine"))
            })?;
            builder = builder.maxsize(maxsize);
        }
        match params.get("lru") {
            None => {}
            Some(Value::Bool(lru)) => builder = builder.lru(*lru),
            Some(other) => {
                return Err(field_error(
                    spec.index,
                    "params.lru",
                    format!("expected true or false, got {}", describe(other)),
                ));
            }
        }
    }
    Ok(Arc::new(builder.build()))
}

fn reject_unknown(index: usize, prefix: &str, object: &Map<String, Value>, known: &[&str]) -> Result<()> {
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        None => Ok(()),
        Some(key) => Err(field_error(
            index,
            &format!("{prefix}{key}"),
            format!("unknown field; expected one of {}", known.join(", ")),
        )),
    }
}

fn whole_number(index: usize, field: &str, value: &Value, expected: &str) -> Result<u64> {
    value.as_u64().ok_or_else(|| field_error(index, field, format!("expected {expected}, got {}", describe(value))))
}

fn field_error(index: usize, field: &str, message: String) -> Error {
    Error::config(Some(index), Some(field), message)
}

/// A short description of a JSON value for error messages: its type, and the value when short.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a long string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::json;

    fn error_of(config: Value) -> Error {
        match build_layers(&config) {
            Ok(_) => panic!("{config} should be rejected"),
            Err(err) => err,
        }
    }

    #[test]
    fn accepts_the_seed_memory_layer() {
        let layers = build_layers(&json!([
            {"adapter": "memory", "namespace": "session:", "ttl": 60, "params": {"maxsize": 1024, "lru": true}},
            {"adapter": "memory"}
        ]))
        .unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].namespace(), "session:");
        assert_eq!(layers[0].ttl(), Some(Duration::from_secs(60)));
        assert_eq!(layers[1].ttl(), None);
    }

    #[test]
    fn errors_name_the_layer_and_field() {
        let cases = [
            (json!([{"adapter": "memory"}, {"adapter": "memcached"}]), 1, "adapter"),
            (json!([{"namespace": "x"}]), 0, "adapter"),
            (json!([{"adapter": 5}]), 0, "adapter"),
            (json!([{"adapter": "memory", "tll": 5}]), 0, "tll"),
            (json!([{"adapter": "memory", "ttl": -1}]), 0, "ttl"),
            (json!([{"adapter": "memory", "ttl": 1.5}]), 0, "ttl"),
            (json!([{"adapter": "memory", "ttl": "60"}]), 0, "ttl"),
            (json!([{"adapter": "memory", "namespace": 3}]), 0, "namespace"),
            (json!([{"adapter": "memory", "params": []}]), 0, "params"),
            (json!([{"adapter": "memory", "params": {"maxsize": "big"}}]), 0, "params.maxsize"),
            (json!([{"adapter": "memory", "params": {"maxsize": -3}}]), 0, "params.maxsize"),
            (json!([{"adapter": "memory", "params": {"maxsize": 2.5}}]), 0, "params.maxsize"),
            (json!([{"adapter": "memory", "params": {"lru": "yes"}}]), 0, "params.lru"),
            (json!([{"adapter": "memory", "params": {"maxsze": 3}}]), 0, "params.maxsze"),
        ];
        for (config, layer, field) in cases {
            let err = error_of(config.clone());
            assert_eq!(err.kind(), ErrorKind::Config, "{config}");
            assert_eq!(err.layer(), Some(layer), "{config}: {err}");
            assert_eq!(err.field(), Some(field), "{config}: {err}");
        }
    }

    #[test]
    fn errors_for_the_whole_document() {
        assert!(error_of(json!({"adapter": "memory"})).to_string().contains("JSON array"));
        assert_eq!(error_of(json!(["memory"])).layer(), Some(0));
        assert_eq!(parse_json("[{").unwrap_err().kind(), ErrorKind::Config);
    }
}
