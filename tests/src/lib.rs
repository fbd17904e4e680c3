//! Support code for the behaviour tests of cache-tower: sample value types and helpers.
//!
//! The tests themselves live in `tests/` beside this file, one file per subject.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_tower::{
    CacheTower, MemoryAdapter,
    adapter::{CacheAdapter, Entry, StoredValue},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value shaped like a typical cached record: several strings, a list, integers, a float, a bool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub country: String,
    pub tags: Vec<String>,
    pub age: u32,
    pub logins: u64,
    pub score: f64,
    pub active: bool,
    pub bio: String,
}

impl User {
    /// A user whose fields are derived from `id`.
    pub fn sample(id: u64) -> Self {
        Self {
            id,
            name: format!("user {id}"),
            email: format!("user{id}@example.com"),
            country: "PT".to_owned(),
            tags: vec!["a".to_owned(), format!("t{}", id % 7)],
            age: 20 + (id % 50) as u32,
            logins: id * 3,
            score: id as f64 / 3.0,
            active: id % 2 == 0,
            bio: "likes caches".to_owned(),
        }
    }
}

/// How many times [`Counted`] has been deserialized, process wide.
pub static DESERIALIZE_CALLS: AtomicUsize = AtomicUsize::new(0);

/// How many times [`Counted`] has been serialized, process wide.
pub static SERIALIZE_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A value whose `Deserialize` and `Serialize` count their calls in [`DESERIALIZE_CALLS`] and
/// [`SERIALIZE_CALLS`]: it proves which reads parse or write JSON and which are clones.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted(pub String);

impl Serialize for Counted {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SERIALIZE_CALLS.fetch_add(1, Ordering::SeqCst);
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DESERIALIZE_CALLS.fetch_add(1, Ordering::SeqCst);
        String::deserialize(deserializer).map(Counted)
    }
}

/// Writes `value` straight into one adapter, bypassing the tower (to set up a layer's contents).
pub fn put<T: cache_tower::Cacheable>(layer: &dyn CacheAdapter, key: &str, value: T) {
    layer.set(key, &Entry::new(StoredValue::new(value), None)).expect("writing to a test layer");
}

/// Reads `key` straight from one adapter, bypassing the tower.
pub fn peek<T: cache_tower::Cacheable>(layer: &dyn CacheAdapter, key: &str) -> Option<T> {
    layer.get(key).expect("reading a test layer").map(|entry| entry.value().decode().expect("decoding"))
}

/// Writes raw JSON text straight into one adapter, as a shared layer (Redis) would return it.
pub fn put_json(layer: &dyn CacheAdapter, key: &str, json: &str) {
    let entry = Entry::new(StoredValue::from_json(json.as_bytes().to_vec()), None);
    layer.set(key, &entry).expect("writing to a test layer");
}

/// `count` unbounded memory adapters without TTL.
pub fn memory_layers(count: usize) -> Vec<MemoryAdapter> {
    (0..count).map(|_| MemoryAdapter::new()).collect()
}

/// A tower whose layers are `layers`, top first. The adapters are cloned, so the caller's handles
/// share their storage with the tower's layers.
pub fn tower_of(layers: &[MemoryAdapter]) -> CacheTower {
    let tower = CacheTower::new();
    for layer in layers {
        tower.add_layer(layer.clone());
    }
    tower
}

pub mod commandstats;
pub mod logs;
pub mod memoized;
pub mod peer;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;
pub mod tls_server;
pub mod tracking;
