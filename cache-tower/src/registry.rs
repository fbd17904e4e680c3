//! Named towers, registered at start-up and found by name — what `#[cached_tower(config = "…")]`
//! names.
//!
//! The registry is process-wide. Lookups are cheap and never block one another: each name has a
//! place holding its tower, swapped atomically; the map of places is copied on write and read
//! without locks, and a memoized function keeps its place after the first call, so its calls do
//! not look the name up at all.
//!
//! The registry is meant for the towers of a program's configuration, registered at start-up: it
//! keeps a small place for every name ever used (removing a tower empties its place), so do not
//! register towers under names made up per request.
//!
//! ```
//! use cache_tower::{registry, CacheTower};
//!
//! registry::register_json(r#"{
//!     "doc_users":    [{"adapter": "memory", "ttl": 60, "params": {"maxsize": 1000}}],
//!     "doc_sessions": [{"adapter": "memory", "ttl": 900}]
//! }"#)?;
//! let users = registry::get("doc_users").expect("registered above");
//! users.set("user:1", "Ada".to_string())?;
//!
//! registry::register("doc_reports", CacheTower::new()); // or build one in code
//! assert!(registry::remove("doc_reports").is_some());
//! # Ok::<(), cache_tower::Error>(())
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;
use serde_json::Value;

use crate::config;
use crate::error::{Error, Result};
use crate::tower::CacheTower;

/// The name `#[cached_tower]` uses when it is given no `config`.
pub const DEFAULT_TOWER: &str = "default";

/// One name's place in the registry: the tower registered under that name, if any.
///
/// Places are never taken out of the registry (removing a tower empties its place), so a
/// memoized function keeps its place after the first call and later calls skip the name lookup:
/// they only load the place's tower. The cost is one small place per distinct name ever used.
#[derive(Debug, Default)]
pub(crate) struct Place {
    tower: ArcSwapOption<CacheTower>,
}

impl Place {
    /// The tower in this place, without touching its reference count.
    #[inline]
    pub(crate) fn tower(&self) -> arc_swap::Guard<Option<Arc<CacheTower>>> {
        self.tower.load()
    }
}

/// Looked up by name, so hashed with foldhash rather than SipHash.
type Places = HashMap<String, Arc<Place>, foldhash::fast::RandomState>;

struct Registry {
    places: ArcSwap<Places>,
    /// Serializes writers, so no change is lost; readers never take it.
    writer: Mutex<()>,
}

static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry { places: ArcSwap::from_pointee(Places::default()), writer: Mutex::new(()) });

/// The place of `name`, made (empty) if the name was never used.
pub(crate) fn place(name: &str) -> Arc<Place> {
    if let Some(place) = REGISTRY.places.load().get(name) {
        return Arc::clone(place);
    }
    let _writer = REGISTRY.writer.lock();
    place_locked(name)
}

/// [`place`] for a caller that holds the writer lock.
fn place_locked(name: &str) -> Arc<Place> {
    let places = REGISTRY.places.load();
    if let Some(place) = places.get(name) {
        return Arc::clone(place);
    }
    let mut grown = Places::clone(&places);
    let place = Arc::new(Place::default());
    grown.insert(name.to_owned(), Arc::clone(&place));
    REGISTRY.places.store(Arc::new(grown));
    place
}

/// Puts `tower` (or nothing) in the place of `name`; returns what was there.
fn put(name: &str, tower: Option<Arc<CacheTower>>) -> Option<Arc<CacheTower>> {
    let _writer = REGISTRY.writer.lock();
    place_locked(name).tower.swap(tower)
}

/// Registers `tower` under `name`, replacing (and returning) any tower of that name.
///
/// ```
/// use cache_tower::{registry, CacheTower};
///
/// assert!(registry::register("doc_register", CacheTower::new()).is_none());
/// assert!(registry::register("doc_register", CacheTower::new()).is_some(), "replaced");
/// ```
pub fn register(name: impl Into<String>, tower: impl Into<Arc<CacheTower>>) -> Option<Arc<CacheTower>> {
    put(&name.into(), Some(tower.into()))
}

/// The tower registered under `name`.
///
/// ```
/// use cache_tower::{registry, CacheTower};
///
/// registry::register("doc_get", CacheTower::new());
/// assert!(registry::get("doc_get").is_some());
/// assert!(registry::get("doc_never_registered").is_none());
/// ```
pub fn get(name: &str) -> Option<Arc<CacheTower>> {
    REGISTRY.places.load().get(name).and_then(|place| place.tower.load_full())
}

/// Removes the tower registered under `name`, returning it.
///
/// ```
/// use cache_tower::{registry, CacheTower};
///
/// registry::register("doc_remove", CacheTower::new());
/// assert!(registry::remove("doc_remove").is_some());
/// assert!(registry::get("doc_remove").is_none());
/// ```
pub fn remove(name: &str) -> Option<Arc<CacheTower>> {
    let _writer = REGISTRY.writer.lock();
    REGISTRY.places.load().get(name).and_then(|place| place.tower.swap(None))
}

/// The names of the registered towers, sorted.
pub fn names() -> Vec<String> {
    let places = REGISTRY.places.load();
    let mut names: Vec<String> =
        places.iter().filter(|(_, place)| place.tower.load().is_some()).map(|(name, _)| name.clone()).collect();
    names.sort();
    names
}

/// Registers every tower of a JSON object of named towers, `{"name": [layer, …], …}`, each in
/// the list-of-layers format of [`CacheTower::from_config`]. Returns the names, sorted.
///
/// All or nothing: if any tower is wrong, none is registered, and the error names the tower, the
/// layer index and the field.
///
/// ```
/// use cache_tower::registry;
///
/// let err = registry::register_json(r#"{"doc_ok": [{"adapter": "memory"}],
///                                       "doc_bad": [{"adapter": "memory"}, {"adapter": "memory", "ttl": -1}]}"#)
///     .unwrap_err();
/// assert_eq!((err.tower(), err.layer(), err.field()), (Some("doc_bad"), Some(1), Some("ttl")));
/// assert!(registry::get("doc_ok").is_none(), "nothing was registered");
/// ```
///
/// # Errors
/// [`ErrorKind::Config`](crate::ErrorKind::Config) for invalid JSON, a document that is not an
/// object of named towers, or any invalid tower.
pub fn register_json(json: &str) -> Result<Vec<String>> {
    register_config(&config::parse_json(json)?)
}

/// [`register_json`] for a JSON file.
///
/// # Errors
/// As [`register_json`], and [`ErrorKind::Config`](crate::ErrorKind::Config) when the file cannot
/// be read.
pub fn register_file(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|err| Error::config(None, None, format!("cannot read {}", path.display())).with_source(err))?;
    register_json(&text)
}

/// [`register_json`] for an already parsed document.
///
/// # Errors
/// As [`register_json`].
pub fn register_config(config: &Value) -> Result<Vec<String>> {
    let named = config.as_object().ok_or_else(|| {
        Error::config(None, None, "expected a JSON object of named towers: {\"name\": [layer, ...], ...}")
    })?;
    let mut built = Vec::with_capacity(named.len());
    for (name, layers) in named {
        let tower = CacheTower::from_config(layers).map_err(|err| err.in_tower(name))?;
        built.push((name.clone(), Arc::new(tower)));
    }
    let mut names: Vec<String> = built.iter().map(|(name, _)| name.clone()).collect();
    names.sort();
    let _writer = REGISTRY.writer.lock();
    for (name, tower) in built {
        place_locked(&name).tower.store(Some(tower));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_registrations_are_not_lost() {
        std::thread::scope(|scope| {
            for t in 0..8 {
                scope.spawn(move || {
                    for i in 0..50 {
                        register(format!("unit_concurrent_{t}_{i}"), CacheTower::new());
                    }
                });
            }
        });
        let names = names();
        assert_eq!(names.iter().filter(|n| n.starts_with("unit_concurrent_")).count(), 400);
    }

    #[test]
    fn register_config_rejects_non_objects() {
        let err = register_config(&serde_json::json!([{"adapter": "memory"}])).unwrap_err();
        assert!(err.to_string().contains("named towers"), "{err}");
    }
}
