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
#[cfg(feature = "redis")]
const ADAPTERS: &[&str] = &["memory", "redis"];
#[cfg(not(feature = "redis"))]
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
        #[cfg(feature = "redis")]
        "redis" => redis_layer(&spec),
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

/// The Redis layer's `params`: the seed's (`host`, `port`, `db`, `username`, `password`,
/// `decode_responses`, accepted and ignored: values are always JSON text), a URL, secrets from
/// environment variables, timeouts, pool size and TLS.
#[cfg(feature = "redis")]
const REDIS_PARAMS: &[&str] = &[
    "host",
    "port",
    "db",
    "username",
    "password",
    "password_env",
    "url",
    "url_env",
    "decode_responses",
    "timeout_ms",
    "connect_timeout_ms",
    "pool_size",
    "tls",
    "tls_ca_file",
    "invalidation",
];

#[cfg(feature = "redis")]
fn redis_layer(spec: &LayerSpec<'_>) -> Result<Arc<dyn CacheAdapter>> {
    use crate::adapter::redis::RedisAdapter;

    let index = spec.index;
    let mut builder = RedisAdapter::builder().namespace(spec.namespace.clone()).ttl(spec.ttl);
    let empty = Map::new();
    let params = spec.params.unwrap_or(&empty);
    reject_unknown(index, "params.", params, REDIS_PARAMS)?;
    let text = |name: &str| -> Result<Option<String>> {
        match params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(field_error(
                index,
                &format!("params.{name}"),
                format!("expected a string, got {}", describe(other)),
            )),
        }
    };
    let number = |name: &str, expected: &str| -> Result<Option<u64>> {
        params.get(name).map(|value| whole_number(index, &format!("params.{name}"), value, expected)).transpose()
    };
    let flag = |name: &str| -> Result<Option<bool>> {
        match params.get(name) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(field_error(
                index,
                &format!("params.{name}"),
                format!("expected true or false, got {}", describe(other)),
            )),
        }
    };
    let too_large =
        |name: &str, value: u64| field_error(index, &format!("params.{name}"), format!("{value} is out of range"));

    if let Some(url) = text("url")? {
        builder = builder.url(url);
    }
    if let Some(name) = text("url_env")? {
        builder = builder.url_env(name);
    }
    if let Some(host) = text("host")? {
        builder = builder.host(host);
    }
    if let Some(port) = number("port", "a port number from 1 to 65535")? {
        let port = u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| too_large("port", port))?;
        builder = builder.port(port);
    }
    if let Some(db) = number("db", "a database number, 0 or more")? {
        builder = builder.db(u32::try_from(db).map_err(|_| too_large("db", db))?);
    }
    if let Some(username) = text("username")? {
        builder = builder.username(username);
    }
    if let Some(password) = text("password")? {
        builder = builder.password(password);
    }
    if let Some(name) = text("password_env")? {
        builder = builder.password_env(name);
    }
    flag("decode_responses")?; // accepted for the seed's sake; values are always JSON text
    if let Some(ms) = number("timeout_ms", "a whole number of milliseconds, more than 0")? {
        builder = builder.timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = number("connect_timeout_ms", "a whole number of milliseconds, more than 0")? {
        builder = builder.connect_timeout(Duration::from_millis(ms));
    }
    if let Some(size) = number("pool_size", "a whole number of connections, 0 or more")? {
        builder = builder.pool_size(usize::try_from(size).map_err(|_| too_large("pool_size", size))?);
    }
    if let Some(tls) = flag("tls")? {
        builder = builder.tls(tls);
    }
    if let Some(path) = text("tls_ca_file")? {
        builder = builder.tls_ca_file(path);
    }
    if let Some(invalidation) = flag("invalidation")? {
        builder = builder.invalidation(invalidation);
    }
    let adapter = builder.build().map_err(|err| {
        // The builder names its own setting; in a configuration file that is `params.<name>`.
        let field = err.field().map(|field| {
            let name = match field {
                "timeout" => "timeout_ms",
                "connect_timeout" => "connect_timeout_ms",
                other => other,
            };
            format!("params.{name}")
        });
        Error::config(Some(index), field.as_deref(), err.message().to_owned())
    })?;
    Ok(Arc::new(adapter))
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

    #[cfg(feature = "redis")]
    #[test]
    fn accepts_the_seed_redis_layer_without_connecting() {
        let layers = build_layers(&json!([
            {"adapter": "memory", "namespace": "session:", "ttl": 60, "params": {"maxsize": 1024, "lru": true}},
            {"adapter": "redis", "namespace": "session:", "ttl": 300,
             "params": {"host": "localhost", "port": 6379, "db": 0, "decode_responses": true}}
        ]))
        .unwrap();
        assert_eq!(layers[1].kind(), "redis");
        assert_eq!(layers[1].ttl(), Some(Duration::from_secs(300)));
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_errors_name_the_layer_and_field() {
        let cases = [
            (json!([{"adapter": "redis", "params": {"port": "6379"}}]), "params.port"),
            (json!([{"adapter": "redis", "params": {"port": 70000}}]), "params.port"),
            (json!([{"adapter": "redis", "params": {"db": -1}}]), "params.db"),
            (json!([{"adapter": "redis", "params": {"hots": "x"}}]), "params.hots"),
            (json!([{"adapter": "redis", "params": {"url": "http://x"}}]), "params.url"),
            (json!([{"adapter": "redis", "params": {"url": "redis://x", "host": "y"}}]), "params.url"),
            (json!([{"adapter": "redis", "params": {"url_env": "CACHE_TOWER_SURELY_UNSET_VAR"}}]), "params.url_env"),
            (json!([{"adapter": "redis", "params": {"timeout_ms": 0}}]), "params.timeout_ms"),
            (json!([{"adapter": "redis", "params": {"decode_responses": "yes"}}]), "params.decode_responses"),
        ];
        for (config, field) in cases {
            let err = error_of(config.clone());
            assert_eq!(err.layer(), Some(0), "{config}: {err}");
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
