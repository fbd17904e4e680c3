//! The JSON configuration: a list of layers, top first, each naming its adapter.
//!
//! ```json
//! [
//!   {"adapter": "memory", "namespace": "session:", "ttl": 60, "params": {"maxsize": 1024, "lru": true}}
//! ]
//! ```
//!
//! A memory layer's `params`: `maxsize` (entries, `0`: no limit), `max_bytes` (what the entries
//! weigh together, `0`: no limit; see
//! [`MemoryAdapterBuilder::max_bytes`](crate::adapter::MemoryAdapterBuilder::max_bytes)), `policy` (`"fifo"`, the
//! default, `"lru"` or `"s3-fifo"`: see [`EvictionPolicy`](crate::adapter::EvictionPolicy)) and
//! the original library's `lru` (`true` is `"policy": "lru"`, `false` is `"fifo"`; giving both
//! `lru` and `policy` is an error, since one of them would be ignored).
//!
//! Validation is strict: an unknown adapter or field, or a value of the wrong type, is an
//! [`ErrorKind::Config`](crate::error::ErrorKind::Config) error naming the layer index and the field, so
//! a typo in a settings file fails at start-up instead of silently running with defaults.
//!
//! Each adapter's layer is a typed struct (`#[serde(deny_unknown_fields)]`), deserialized with
//! `serde_path_to_error`, which gives the field path of an error. The `adapter` field is read
//! first and picks the struct: serde's own internally tagged enums buffer the layer before
//! deserializing it, which loses the path. Every leaf value goes through [`Json`], so messages
//! say what was expected and describe what came, and a secret field (`password`, `url`) of the
//! wrong type is described by its type only, never echoed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::adapter::memory::MemoryAdapter;
use crate::adapter::{CacheAdapter, EvictionPolicy};
use crate::error::{Error, Result};
use crate::load_options::LoadOptions;

/// The longest TTL a layer takes: 9,000,000,000,000 seconds, about 285,000 years.
///
/// A longer one is a configuration error ([`ErrorKind::Config`](crate::error::ErrorKind::Config), field
/// `ttl`) in JSON and in [`RedisAdapterBuilder::build`](crate::adapter::RedisAdapterBuilder::build);
/// [`MemoryAdapterBuilder::ttl`](crate::adapter::MemoryAdapterBuilder::ttl) clamps to it.
///
/// Why this bound: Redis takes `SET … PX` in milliseconds as a signed 64-bit integer and adds
/// the current time, so about 9.2e15 s is the hard limit, past which every write fails; and the
/// Redis layer writes several keys at once through a Lua script, whose numbers are doubles,
/// exact only up to 2^53 ms (about 9.007e12 s). `MAX_TTL`, 9e15 ms, is within both.
///
/// ```
/// use cache_tower::{CacheTower, adapter::MAX_TTL};
///
/// let largest = format!(r#"[{{"adapter": "memory", "ttl": {}}}]"#, MAX_TTL.as_secs());
/// assert!(CacheTower::from_json(&largest).is_ok());
/// let too_long = format!(r#"[{{"adapter": "memory", "ttl": {}}}]"#, MAX_TTL.as_secs() + 1);
/// assert_eq!(CacheTower::from_json(&too_long).unwrap_err().field(), Some("ttl"));
/// ```
pub const MAX_TTL: Duration = Duration::from_secs(9_000_000_000_000);

/// `Ok` for a TTL of at most [`MAX_TTL`], else the message of the error.
pub(crate) fn check_ttl(ttl: Duration) -> std::result::Result<(), String> {
    if ttl <= MAX_TTL {
        return Ok(());
    }
    Err(format!("{ttl:?} is more than the largest TTL, {} seconds (cache_tower::adapter::MAX_TTL)", MAX_TTL.as_secs()))
}

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

/// Builds a tower's configuration: a list of layers, or an object with the list as `layers` and
/// the tower's default [`LoadOptions`] as `load`:
///
/// ```json
/// {"layers": [{"adapter": "memory", "ttl": 60, "stale": 3600}],
///  "load": {"fail_safe": 30, "soft_timeout_ms": 100, "hard_timeout_ms": 2000, "refresh_ahead": 0.8}}
/// ```
///
/// `load` takes `ttl` and `stale` (whole seconds), `fail_safe` (the throttle period, whole
/// seconds, more than 0), `soft_timeout_ms` and `hard_timeout_ms` (whole milliseconds, more than
/// 0), `refresh_ahead` (a fraction between 0 and 1) and `lock_ms` (the distributed lock's
/// timeout, whole milliseconds, more than 0). Everything is read before anything is built.
pub(crate) fn build_tower(config: &Value) -> Result<(Vec<Arc<dyn CacheAdapter>>, LoadOptions)> {
    // An object without `layers` (a single layer given for the list, say) is read as a list, to
    // say that a list of layers is what a configuration is.
    if !config.as_object().is_some_and(|object| object.contains_key("layers")) {
        return Ok((build_layers(config)?, LoadOptions::new()));
    }
    let tower: TowerConfig = serde_path_to_error::deserialize(config).map_err(|err| {
        let field = err.path().to_string();
        Error::config(None, (field != ".").then_some(field.as_str()), err.into_inner().to_string())
    })?;
    let layers = build_layers(&tower.layers)?;
    Ok((layers, tower.load.map(LoadConfig::options).unwrap_or_default()))
}

/// A tower's configuration in its object form (see [`build_tower`]).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TowerConfig {
    layers: Value,
    #[serde(default)]
    load: Option<LoadConfig>,
}

/// The tower's default [`LoadOptions`], as `load` gives them.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadConfig {
    #[serde(default, deserialize_with = "optional_ttl")]
    ttl: Option<Duration>,
    #[serde(default, deserialize_with = "optional_ttl")]
    stale: Option<Duration>,
    #[serde(default, deserialize_with = "positive_secs")]
    fail_safe: Option<Duration>,
    #[serde(default, deserialize_with = "positive_millis")]
    soft_timeout_ms: Option<Duration>,
    #[serde(default, deserialize_with = "positive_millis")]
    hard_timeout_ms: Option<Duration>,
    #[serde(default, deserialize_with = "fraction")]
    refresh_ahead: Option<f64>,
    #[serde(default, deserialize_with = "positive_millis")]
    lock_ms: Option<Duration>,
}

impl LoadConfig {
    fn options(self) -> LoadOptions {
        let mut options = LoadOptions::new();
        options.ttl = self.ttl;
        options.stale = self.stale;
        options.fail_safe = self.fail_safe;
        options.soft_timeout = self.soft_timeout_ms;
        options.hard_timeout = self.hard_timeout_ms;
        options.refresh_ahead = self.refresh_ahead;
        options.lock = self.lock_ms;
        options
    }
}

/// Builds the adapters of a list-of-layers configuration, top layer first. The whole list is
/// read before any adapter is built, so a mistake in a lower layer builds nothing.
pub(crate) fn build_layers(config: &Value) -> Result<Vec<Arc<dyn CacheAdapter>>> {
    let layers = config.as_array().ok_or_else(|| {
        Error::config(
            None,
            None,
            format!(
                "configuration must be a JSON array of layers (or an object with `layers` and `load`), got {}",
                Json::of(config).describe()
            ),
        )
    })?;
    let layers: Vec<LayerConfig> =
        layers.iter().enumerate().map(|(index, layer)| parse_layer(index, layer)).collect::<Result<_>>()?;
    layers.into_iter().enumerate().map(|(index, layer)| layer.build(index)).collect()
}

// ===== the typed configuration =====

/// One layer, as the adapter its `adapter` field names.
enum LayerConfig {
    Memory(MemoryLayer),
    #[cfg(feature = "redis")]
    Redis(Box<RedisLayer>),
}

/// The value of `adapter`.
enum AdapterName {
    Memory,
    #[cfg(feature = "redis")]
    Redis,
}

impl<'de> Deserialize<'de> for AdapterName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        match Json::deserialize(deserializer)? {
            Json::Str(name) => match name.as_str() {
                "memory" => Ok(Self::Memory),
                #[cfg(feature = "redis")]
                "redis" => Ok(Self::Redis),
                other => Err(de::Error::custom(format!(
                    "unknown adapter {other:?}; expected one of {}",
                    ADAPTERS.join(", ")
                ))),
            },
            other => Err(wrong("a string", &other)),
        }
    }
}

/// A memory layer: `{"adapter": "memory", "namespace": …, "ttl": …, "params": {…}}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryLayer {
    #[serde(rename = "adapter")]
    _adapter: IgnoredAny,
    #[serde(default, deserialize_with = "namespace")]
    namespace: String,
    #[serde(default, deserialize_with = "ttl")]
    ttl: Duration,
    /// Seconds an entry is kept past its TTL as a stale value (fail-safe), 0 for none.
    #[serde(default, deserialize_with = "ttl")]
    stale: Duration,
    #[serde(default, deserialize_with = "object")]
    params: Option<MemoryParams>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MemoryParams {
    #[serde(default, deserialize_with = "maxsize")]
    maxsize: Option<usize>,
    #[serde(default, deserialize_with = "max_bytes")]
    max_bytes: Option<usize>,
    #[serde(default, deserialize_with = "flag")]
    lru: Option<bool>,
    #[serde(default, deserialize_with = "policy")]
    policy: Option<EvictionPolicy>,
}

/// A Redis layer: `{"adapter": "redis", "namespace": …, "ttl": …, "params": {…}}`.
#[cfg(feature = "redis")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisLayer {
    #[serde(rename = "adapter")]
    _adapter: IgnoredAny,
    #[serde(default, deserialize_with = "namespace")]
    namespace: String,
    #[serde(default, deserialize_with = "ttl")]
    ttl: Duration,
    /// Seconds an entry is kept past its TTL as a stale value (fail-safe), 0 for none.
    #[serde(default, deserialize_with = "ttl")]
    stale: Duration,
    #[serde(default, deserialize_with = "object")]
    params: Option<RedisParams>,
}

/// The Redis layer's `params`: the original library's (`host`, `port`, `db`, `username`, `password`,
/// `decode_responses`, accepted and ignored: values are always JSON text), a URL, secrets from
/// environment variables, timeouts, pool size and TLS. Text settings may be `null` (unset).
#[cfg(feature = "redis")]
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RedisParams {
    #[serde(default, deserialize_with = "text")]
    host: Option<String>,
    #[serde(default, deserialize_with = "port")]
    port: Option<u16>,
    #[serde(default, deserialize_with = "db")]
    db: Option<u32>,
    #[serde(default, deserialize_with = "text")]
    username: Option<String>,
    #[serde(default, deserialize_with = "secret")]
    password: Option<Secret>,
    #[serde(default, deserialize_with = "text")]
    password_env: Option<String>,
    /// A URL may hold a password: a secret too.
    #[serde(default, deserialize_with = "secret")]
    url: Option<Secret>,
    #[serde(default, deserialize_with = "text")]
    url_env: Option<String>,
    #[serde(rename = "decode_responses", default, deserialize_with = "flag")]
    _decode_responses: Option<bool>,
    #[serde(default, deserialize_with = "millis")]
    timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "millis")]
    connect_timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "pool_size")]
    pool_size: Option<usize>,
    #[serde(default, deserialize_with = "flag")]
    tls: Option<bool>,
    #[serde(default, deserialize_with = "text")]
    tls_ca_file: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    invalidation: Option<bool>,
    /// A Redis Cluster's seed nodes, instead of one server.
    #[serde(default)]
    cluster: Option<Vec<Node>>,
    /// A master found through Sentinel, instead of a fixed server.
    #[serde(default, deserialize_with = "object")]
    sentinel: Option<SentinelParams>,
}

/// `"sentinel": {"master_name": …, "nodes": [...], "username"?, "password"?, "password_env"?}`:
/// the credentials are the sentinels' own.
#[cfg(feature = "redis")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SentinelParams {
    master_name: String,
    nodes: Vec<Node>,
    #[serde(default, deserialize_with = "text")]
    username: Option<String>,
    #[serde(default, deserialize_with = "secret")]
    password: Option<Secret>,
    #[serde(default, deserialize_with = "text")]
    password_env: Option<String>,
}

/// A node of a node list: `"host:port"` or a URL, which may hold a password, so a value of the
/// wrong type is described by its type only.
#[cfg(feature = "redis")]
struct Node(String);

#[cfg(feature = "redis")]
impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        match Json::deserialize(deserializer)? {
            Json::Str(node) => Ok(Node(node)),
            other => Err(de::Error::custom(format!(
                "expected a node (\"host:port\" or a URL), got {} (not shown: it may hold a secret)",
                other.kind()
            ))),
        }
    }
}

/// A secret string: never shown, not even by `Debug`.
#[cfg(feature = "redis")]
struct Secret(String);

#[cfg(feature = "redis")]
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Reads one layer: its `adapter` first, which picks the typed struct to read it as.
fn parse_layer(index: usize, layer: &Value) -> Result<LayerConfig> {
    let object = layer.as_object().ok_or_else(|| {
        Error::config(Some(index), None, format!("expected a layer object, got {}", Json::of(layer).describe()))
    })?;
    let Some(adapter) = object.get("adapter") else {
        return Err(Error::config(
            Some(index),
            Some("adapter"),
            format!("missing; expected one of {}", ADAPTERS.join(", ")),
        ));
    };
    let adapter = AdapterName::deserialize(adapter)
        .map_err(|err| Error::config(Some(index), Some("adapter"), err.to_string()))?;
    Ok(match adapter {
        AdapterName::Memory => LayerConfig::Memory(typed(index, layer)?),
        #[cfg(feature = "redis")]
        AdapterName::Redis => LayerConfig::Redis(Box::new(typed(index, layer)?)),
    })
}

/// Deserializes a layer as `T`, an error naming the field path (`params.maxsize`).
fn typed<T: DeserializeOwned>(index: usize, layer: &Value) -> Result<T> {
    serde_path_to_error::deserialize(layer).map_err(|err| {
        let field: Vec<String> = err
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                _ => None,
            })
            .collect();
        let field = field.join(".");
        // The message is ours (see `Json`) or serde's about a field name: it never holds a value.
        Error::config(Some(index), (!field.is_empty()).then_some(field.as_str()), err.into_inner().to_string())
    })
}

impl LayerConfig {
    fn build(self, index: usize) -> Result<Arc<dyn CacheAdapter>> {
        match self {
            Self::Memory(layer) => layer.build(),
            #[cfg(feature = "redis")]
            Self::Redis(layer) => layer.build(index),
        }
        .map_err(|err: Error| err.at_layer(index))
    }
}

impl MemoryLayer {
    fn build(self) -> Result<Arc<dyn CacheAdapter>> {
        let mut builder = MemoryAdapter::builder().namespace(self.namespace).ttl(self.ttl).stale(self.stale);
        let params = self.params.unwrap_or_default();
        if let Some(maxsize) = params.maxsize {
            builder = builder.maxsize(maxsize);
        }
        if let Some(max_bytes) = params.max_bytes {
            builder = builder.max_bytes(max_bytes);
        }
        match (params.lru, params.policy) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    None,
                    Some("params.lru"),
                    "give `policy` or the older `lru`, not both (`\"lru\": true` is `\"policy\": \"lru\"`)",
                ));
            }
            (Some(lru), None) => builder = builder.lru(lru),
            (None, Some(policy)) => builder = builder.policy(policy),
            (None, None) => {}
        }
        Ok(Arc::new(builder.build()))
    }
}

#[cfg(feature = "redis")]
impl RedisLayer {
    fn build(self, index: usize) -> Result<Arc<dyn CacheAdapter>> {
        use crate::adapter::redis::RedisAdapter;

        // Each parameter given sets the builder's setting of the same meaning; one left out
        // keeps the builder's default.
        fn given<B, T>(builder: B, value: Option<T>, set: impl FnOnce(B, T) -> B) -> B {
            match value {
                Some(value) => set(builder, value),
                None => builder,
            }
        }
        let params = self.params.unwrap_or_default();
        let mut builder = RedisAdapter::builder().namespace(self.namespace).ttl(self.ttl).stale(self.stale);
        builder = given(builder, params.url, |b, Secret(url)| b.url(url));
        builder = given(builder, params.url_env, |b, name| b.url_env(name));
        builder = given(builder, params.host, |b, host| b.host(host));
        builder = given(builder, params.port, |b, port| b.port(port));
        builder = given(builder, params.db, |b, db| b.db(db));
        builder = given(builder, params.username, |b, username| b.username(username));
        builder = given(builder, params.password, |b, Secret(password)| b.password(password));
        builder = given(builder, params.password_env, |b, name| b.password_env(name));
        builder = given(builder, params.timeout_ms, |b, ms| b.timeout(Duration::from_millis(ms)));
        builder = given(builder, params.connect_timeout_ms, |b, ms| b.connect_timeout(Duration::from_millis(ms)));
        builder = given(builder, params.pool_size, |b, size| b.pool_size(size));
        builder = given(builder, params.tls, |b, tls| b.tls(tls));
        builder = given(builder, params.tls_ca_file, |b, path| b.tls_ca_file(path));
        builder = given(builder, params.invalidation, |b, invalidation| b.invalidation(invalidation));
        builder = given(builder, params.cluster, |b, nodes| b.cluster(nodes.into_iter().map(|Node(node)| node)));
        if let Some(sentinel) = params.sentinel {
            builder = builder.sentinel(sentinel.master_name, sentinel.nodes.into_iter().map(|Node(node)| node));
            builder = given(builder, sentinel.username, |b, username| b.sentinel_username(username));
            builder = given(builder, sentinel.password, |b, Secret(password)| b.sentinel_password(password));
            builder = given(builder, sentinel.password_env, |b, name| b.sentinel_password_env(name));
        }
        let adapter = builder.build().map_err(|err| {
            // The builder names its own setting; in a configuration file that is `params.<name>`
            // (or the layer's own `ttl`). The error keeps its message and its source.
            let field = err.field().map(|field| match field {
                "ttl" | "stale" => field.to_owned(),
                "timeout" => "params.timeout_ms".to_owned(),
                "connect_timeout" => "params.connect_timeout_ms".to_owned(),
                other => format!("params.{other}"),
            });
            err.with_field(field).at_layer(index)
        })?;
        Ok(Arc::new(adapter))
    }
}

// ===== leaf values =====

/// A JSON value as far as error messages need it: scalars with their value, arrays and objects
/// by their kind only (their contents skipped).
enum Json {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
    Array,
    Object,
}

impl Json {
    fn of(value: &Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Self::U64(u),
                (None, Some(i)) => Self::I64(i),
                (None, None) => Self::F64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Self::Str(s.clone()),
            Value::Array(_) => Self::Array,
            Value::Object(_) => Self::Object,
        }
    }

    /// The value for a message: its type, and the value when short.
    fn describe(&self) -> String {
        match self {
            Self::Null => "null".to_owned(),
            Self::Bool(b) => b.to_string(),
            Self::U64(n) => n.to_string(),
            Self::I64(n) => n.to_string(),
            Self::F64(n) => n.to_string(),
            Self::Str(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
            Self::Str(_) => "a long string".to_owned(),
            Self::Array => "an array".to_owned(),
            Self::Object => "an object".to_owned(),
        }
    }

    /// The type of the value alone, for a secret field: its value is not shown.
    #[cfg(feature = "redis")]
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::U64(_) | Self::I64(_) | Self::F64(_) => "a number",
            Self::Str(_) => "a string",
            Self::Array => "an array",
            Self::Object => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct JsonVisitor;
        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Json, E> {
                Ok(Json::Bool(v))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Json, E> {
                Ok(Json::U64(v))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Json, E> {
                Ok(if v >= 0 { Json::U64(v.unsigned_abs()) } else { Json::I64(v) })
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Json, E> {
                Ok(Json::F64(v))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Json, E> {
                Ok(Json::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Json, E> {
                Ok(Json::Str(v))
            }
            fn visit_unit<E>(self) -> std::result::Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_none<E>(self) -> std::result::Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Json, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Json::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Json, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Json::Object)
            }
        }
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// "expected …, got …".
fn wrong<E: de::Error>(expected: &str, got: &Json) -> E {
    E::custom(format!("expected {expected}, got {}", got.describe()))
}

fn whole<'de, D: Deserializer<'de>>(deserializer: D, expected: &str) -> std::result::Result<u64, D::Error> {
    match Json::deserialize(deserializer)? {
        Json::U64(n) => Ok(n),
        other => Err(wrong(expected, &other)),
    }
}

fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<bool>, D::Error> {
    match Json::deserialize(deserializer)? {
        Json::Bool(b) => Ok(Some(b)),
        other => Err(wrong("true or false", &other)),
    }
}

fn namespace<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<String, D::Error> {
    match Json::deserialize(deserializer)? {
        Json::Str(s) => Ok(s),
        other => Err(wrong("a string", &other)),
    }
}

fn ttl<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Duration, D::Error> {
    let secs = whole(deserializer, "a whole number of seconds, 0 or more")?;
    let ttl = Duration::from_secs(secs);
    check_ttl(ttl).map_err(|_| {
        de::Error::custom(format!(
            "{secs} seconds is more than the largest TTL, {} seconds (cache_tower::adapter::MAX_TTL)",
            MAX_TTL.as_secs()
        ))
    })?;
    Ok(ttl)
}

fn policy<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<EvictionPolicy>, D::Error> {
    match Json::deserialize(deserializer)? {
        Json::Str(name) => name.parse().map(Some).map_err(de::Error::custom),
        other => Err(wrong("a policy name (\"fifo\", \"lru\" or \"s3-fifo\")", &other)),
    }
}

fn maxsize<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<usize>, D::Error> {
    let n = whole(deserializer, "a whole number of entries, 0 or more")?;
    usize::try_from(n).map(Some).map_err(|_| de::Error::custom(format!("{n} is too large for this machine")))
}

fn max_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<usize>, D::Error> {
    let n = whole(deserializer, "a whole number of bytes, 0 or more")?;
    usize::try_from(n).map(Some).map_err(|_| de::Error::custom(format!("{n} is too large for this machine")))
}

/// An object, read as `T`; `null` is none. Its fields keep their path.
fn object<'de, D, T>(deserializer: D) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectVisitor<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Option<T>, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
        fn visit_unit<E>(self) -> std::result::Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> std::result::Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Option<T>, E> {
            Err(wrong("an object", &Json::Bool(v)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Option<T>, E> {
            Err(wrong("an object", &Json::U64(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Option<T>, E> {
            Err(wrong("an object", &Json::I64(v)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Option<T>, E> {
            Err(wrong("an object", &Json::F64(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Option<T>, E> {
            Err(wrong("an object", &Json::Str(v.to_owned())))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Option<T>, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Err(wrong("an object", &Json::Array))
        }
    }
    deserializer.deserialize_any(ObjectVisitor(std::marker::PhantomData))
}

#[cfg(feature = "redis")]
fn text<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<String>, D::Error> {
    match Json::deserialize(deserializer)? {
        Json::Null => Ok(None),
        Json::Str(s) => Ok(Some(s)),
        other => Err(wrong("a string", &other)),
    }
}

/// A string that must not be shown: a value of the wrong type is described by its type only.
#[cfg(feature = "redis")]
fn secret<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<Secret>, D::Error> {
    match Json::deserialize(deserializer)? {
        Json::Null => Ok(None),
        Json::Str(s) => Ok(Some(Secret(s))),
        other => Err(de::Error::custom(format!("expected a string, got {} (not shown: a secret)", other.kind()))),
    }
}

#[cfg(feature = "redis")]
fn port<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<u16>, D::Error> {
    let n = whole(deserializer, "a port number from 1 to 65535")?;
    u16::try_from(n)
        .ok()
        .filter(|port| *port > 0)
        .map(Some)
        .ok_or_else(|| de::Error::custom(format!("{n} is out of range; expected a port number from 1 to 65535")))
}

#[cfg(feature = "redis")]
fn db<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<u32>, D::Error> {
    let n = whole(deserializer, "a database number, 0 or more")?;
    u32::try_from(n).map(Some).map_err(|_| de::Error::custom(format!("{n} is out of range")))
}

#[cfg(feature = "redis")]
fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<u64>, D::Error> {
    whole(deserializer, "a whole number of milliseconds, more than 0").map(Some)
}

fn optional_ttl<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<Duration>, D::Error> {
    ttl(deserializer).map(Some)
}

fn positive_secs<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<Duration>, D::Error> {
    match whole(deserializer, "a whole number of seconds, more than 0")? {
        0 => Err(de::Error::custom("expected a whole number of seconds, more than 0, got 0")),
        secs => Ok(Some(Duration::from_secs(secs).min(MAX_TTL))),
    }
}

fn positive_millis<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<Duration>, D::Error> {
    match whole(deserializer, "a whole number of milliseconds, more than 0")? {
        0 => Err(de::Error::custom("expected a whole number of milliseconds, more than 0, got 0")),
        ms => Ok(Some(Duration::from_millis(ms))),
    }
}

fn fraction<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<f64>, D::Error> {
    let expected = "a fraction of the TTL between 0 and 1, such as 0.8";
    match Json::deserialize(deserializer)? {
        Json::F64(fraction) if fraction > 0.0 && fraction < 1.0 => Ok(Some(fraction)),
        other => Err(wrong(expected, &other)),
    }
}

#[cfg(feature = "redis")]
fn pool_size<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<usize>, D::Error> {
    let n = whole(deserializer, "a whole number of connections, 0 or more")?;
    usize::try_from(n).map(Some).map_err(|_| de::Error::custom(format!("{n} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
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
    fn policy_and_the_older_lru_pick_the_eviction_policy() {
        let policy_of = |params: Value| {
            let layers = build_layers(&json!([{"adapter": "memory", "params": params}])).unwrap();
            layers[0].as_memory(crate::adapter::sealed::Token(())).unwrap().policy()
        };
        assert_eq!(policy_of(json!({})), EvictionPolicy::Fifo);
        assert_eq!(policy_of(json!({"lru": true})), EvictionPolicy::Lru);
        assert_eq!(policy_of(json!({"lru": false})), EvictionPolicy::Fifo);
        for policy in EvictionPolicy::ALL {
            assert_eq!(policy_of(json!({"policy": policy.name()})), policy);
        }
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
            (json!([{"adapter": "memory", "params": {"policy": "arc"}}]), 0, "params.policy"),
            (json!([{"adapter": "memory", "params": {"max_bytes": "1GB"}}]), 0, "params.max_bytes"),
            (json!([{"adapter": "memory", "params": {"policy": true}}]), 0, "params.policy"),
            (json!([{"adapter": "memory", "params": {"policy": "lru", "lru": true}}]), 0, "params.lru"),
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
            (json!([{"adapter": "redis", "params": {"cluster": []}}]), "params.cluster"),
            (json!([{"adapter": "redis", "params": {"cluster": "a:1"}}]), "params.cluster"),
            (json!([{"adapter": "redis", "params": {"cluster": ["a:1", "b"]}}]), "params.cluster.1"),
            (json!([{"adapter": "redis", "params": {"cluster": ["a:1"], "url": "redis://b"}}]), "params.cluster"),
            (json!([{"adapter": "redis", "params": {"cluster": ["a:1"], "db": 1}}]), "params.db"),
            (json!([{"adapter": "redis", "params": {"sentinel": {"nodes": ["a:1"]}}}]), "params.sentinel"),
            (
                json!([{"adapter": "redis", "params": {"sentinel": {"master_name": "m", "nodes": []}}}]),
                "params.sentinel.nodes",
            ),
            (
                json!([{"adapter": "redis", "params": {"sentinel": {"master_name": "", "nodes": ["a:1"]}}}]),
                "params.sentinel.master_name",
            ),
            (
                json!([{"adapter": "redis", "params": {"sentinel": {"master_name": "m", "nodes": ["a:1"], "pass": "x"}}}]),
                "params.sentinel.pass",
            ),
            (
                json!([{"adapter": "redis", "params": {"cluster": ["a:1"], "sentinel": {"master_name": "m", "nodes": ["a:1"]}}}]),
                "params.cluster",
            ),
        ];
        for (config, field) in cases {
            let err = error_of(config.clone());
            assert_eq!(err.layer(), Some(0), "{config}: {err}");
            assert_eq!(err.field(), Some(field), "{config}: {err}");
        }
    }

    #[test]
    fn messages_say_what_was_expected_and_what_came() {
        let cases = [
            (
                json!([{"adapter": "memory", "ttl": -1}]),
                "layer 0, field `ttl`: expected a whole number of seconds, 0 or more, got -1",
            ),
            (
                json!([{"adapter": "memory", "params": {"maxsize": "big"}}]),
                "layer 0, field `params.maxsize`: expected a whole number of entries, 0 or more, got the string \"big\"",
            ),
            (
                json!([{"adapter": "memory", "tll": 5}]),
                "layer 0, field `tll`: unknown field `tll`, expected one of `adapter`, `namespace`, `ttl`, `stale`, `params`",
            ),
            (json!([{"adapter": "memory", "params": []}]), "layer 0, field `params`: expected an object, got an array"),
            (
                json!([{"namespace": "x"}]),
                &format!("layer 0, field `adapter`: missing; expected one of {}", ADAPTERS.join(", ")),
            ),
            (json!([5]), "layer 0: expected a layer object, got 5"),
            (
                json!([{"adapter": "memory", "params": {"policy": "LRU"}}]),
                "layer 0, field `params.policy`: unknown policy \"LRU\"; expected one of \"fifo\", \"lru\", \"s3-fifo\"",
            ),
            (
                json!([{"adapter": "memory", "ttl": MAX_TTL.as_secs() + 1}]),
                "layer 0, field `ttl`: 9000000000001 seconds is more than the largest TTL, 9000000000000 seconds (cache_tower::adapter::MAX_TTL)",
            ),
        ];
        for (config, message) in cases {
            assert_eq!(error_of(config).to_string(), message);
        }
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_mistyped_secret_is_described_by_its_type_only() {
        let err = error_of(json!([{"adapter": "redis", "params": {"password": 1234567}}]));
        assert_eq!(
            err.to_string(),
            "layer 0, field `params.password`: expected a string, got a number (not shown: a secret)"
        );
        let err = error_of(json!([{"adapter": "redis", "params": {"url": {"redis": "x"}}}]));
        assert_eq!(
            err.to_string(),
            "layer 0, field `params.url`: expected a string, got an object (not shown: a secret)"
        );
        let err = error_of(json!([{"adapter": "redis", "params": {"cluster": ["a:1", 1234567]}}]));
        assert_eq!(
            err.to_string(),
            "layer 0, field `params.cluster.1`: expected a node (\"host:port\" or a URL), got a number (not shown: it may hold a secret)"
        );
        let sentinel = json!([{"adapter": "redis", "params": {"sentinel": {"master_name": "m", "nodes": ["a:1"], "password": 1234567}}}]);
        let err = error_of(sentinel);
        assert_eq!(err.field(), Some("params.sentinel.password"));
        assert!(!err.to_string().contains("1234567"), "{err}");
        let err = error_of(json!([{"adapter": "redis", "params": {"cluster": ["redis://:pa#ss@h:1"]}}]));
        assert_eq!(err.field(), Some("params.cluster.0"));
        assert!(!format!("{err} {err:?}").contains("pa#ss"), "{err:?}");
    }

    #[cfg(all(feature = "cluster", feature = "sentinel"))]
    #[test]
    fn reads_cluster_and_sentinel_layers_without_connecting() {
        let layers = build_layers(&json!([
            {"adapter": "redis", "namespace": "a:", "params": {"cluster": ["10.0.0.1:7000", "10.0.0.2:7000"], "password": "pw"}},
            {"adapter": "redis", "namespace": "b:", "params": {"sentinel": {
                "master_name": "mymaster", "nodes": ["10.0.0.1:26379"], "password": "spw"}, "db": 2}}
        ]))
        .expect("valid");
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].kind(), "redis");
        let shown = format!("{:?} {:?}", layers[0], layers[1]);
        assert!(!shown.contains("pw"), "{shown}");
    }

    #[test]
    fn errors_for_the_whole_document() {
        assert!(error_of(json!({"adapter": "memory"})).to_string().contains("JSON array"));
        assert_eq!(error_of(json!(["memory"])).layer(), Some(0));
        assert_eq!(parse_json("[{").unwrap_err().kind(), ErrorKind::Config);
    }
}
