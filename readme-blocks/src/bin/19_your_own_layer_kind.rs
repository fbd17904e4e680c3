use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cache_tower::adapter::{CacheAdapter, Entry, StoredValue};
use cache_tower::error::ErrorKind;
use cache_tower::{CacheTower, Error, MemoryAdapter, Result};

/// A layer that keeps each value's JSON text in a map: the shape of a layer over any store of
/// bytes (a file cache, memcached, a database table).
#[derive(Debug, Clone, Default)]
struct JsonMap {
    entries: Arc<Mutex<HashMap<String, Stored>>>,
}

#[derive(Debug)]
struct Stored {
    json: Vec<u8>,
    expires: Option<Instant>,
}

impl JsonMap {
    /// The entries, without the expired ones.
    fn entries(&self) -> Result<MutexGuard<'_, HashMap<String, Stored>>> {
        let mut entries = self.entries.lock().map_err(|_| Error::new(ErrorKind::Layer, "lock poisoned"))?;
        let now = Instant::now();
        entries.retain(|_, stored| stored.expires.is_none_or(|at| at > now));
        Ok(entries)
    }
}

impl CacheAdapter for JsonMap {
    fn kind(&self) -> &'static str {
        "json-map"
    }

    fn namespace(&self) -> &str {
        ""
    }

    fn ttl(&self) -> Option<Duration> {
        None // no limit of the layer's own; an entry may bring one
    }

    fn get(&self, key: &str) -> Result<Option<Entry>> {
        let entries = self.entries()?;
        Ok(entries.get(key).map(|stored| {
            let time_left = stored.expires.map(|at| at.saturating_duration_since(Instant::now()));
            Entry::new(StoredValue::from_json(stored.json.clone()), time_left)
        }))
    }

    fn set(&self, key: &str, entry: &Entry) -> Result<()> {
        let mut entries = self.entries()?;
        if entry.ttl() == Some(Duration::ZERO) {
            entries.remove(key); // an entry with no time left is not stored
            return Ok(());
        }
        let expires = entry.ttl().map(|ttl| Instant::now() + ttl);
        entries.insert(key.to_owned(), Stored { json: entry.value().json()?.to_vec(), expires });
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.entries()?.remove(key);
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.entries()?.contains_key(key))
    }

    fn flush(&self) -> Result<()> {
        self.entries()?.clear();
        Ok(())
    }
}

fn main() -> Result<()> {
    let store = JsonMap::default();
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::new());
    tower.add_layer(store.clone()); // a clone shares the map

    // Written straight into the new layer: the tower finds it there, and copies it into memory.
    store.set("answer", &Entry::new(StoredValue::new(42u32), None))?;
    assert_eq!(tower.get::<u32>("answer"), Some(42));
    assert!(tower.get_layers()[0].exists("answer")?);

    tower.set("user:1", "Ada".to_string())?; // every layer, the new one too
    let stored = store.get("user:1")?.expect("written by the tower");
    assert_eq!(stored.value().json()?, br#""Ada""#); // the JSON text of the value
    Ok(())
}
