//! Named towers, registered at start-up and found by name — what `#[cached_tower(config = "…")]`
//! names.
//!
//! The registry is process-wide. Lookups are cheap and never block one another: the map of towers
//! is replaced whole on every change (copy on write) and read without locks, so a lookup sees a
//! change — all the towers of one [`register_json`] — entirely or not at all. Memoized functions
//! do not even look their tower's name up on every call: each keeps the name's *binding* (a slot
//! holding its tower, updated by every change) after its first call.
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

use crate::adapter::memory::MemoryAdapter;
use crate::config;
use crate::error::{Error, Result};
use crate::tower::CacheTower;

/// The name `#[cached_tower]` uses when it is given no `config`.
///
/// A tower of this name is always there until you register your own under it (which replaces
/// it) or [`remove`] it: one [`MemoryAdapter`] layer holding at most
/// [`DEFAULT_TOWER_MAXSIZE`] entries, first in first out, with no TTL. So a memoized function
/// caches from its first call with no set-up at all, in this process's memory only.
///
/// ```
/// use cache_tower::{registry, CacheTower};
///
/// let default = registry::get(registry::DEFAULT_TOWER).expect("there from the start");
/// assert_eq!(default.get_layers()[0].kind(), "memory");
///
/// // Your own default: memoized functions without a `config` now use it.
/// registry::register_json(r#"{"default": [{"adapter": "memory", "ttl": 300, "params": {"maxsize": 50000}}]}"#)?;
/// # Ok::<(), cache_tower::Error>(())
/// ```
pub const DEFAULT_TOWER: &str = "default";

/// How many entries the built-in [`DEFAULT_TOWER`] holds.
pub const DEFAULT_TOWER_MAXSIZE: usize = 10_000;

/// The built-in tower registered as [`DEFAULT_TOWER`].
fn built_in_default() -> Arc<CacheTower> {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::builder().maxsize(DEFAULT_TOWER_MAXSIZE).build());
    Arc::new(tower)
}

/// One name's binding in the registry, for memoized functions: the tower registered under that
/// name, if any.
///
/// A binding is made by the first call of a memoized function naming it, and never taken out of the
/// registry (removing a tower empties its binding), so the function keeps its binding and later calls
/// skip the name lookup: they only load the binding's tower. Only the names in `#[cached_tower]`
/// attributes get bindings, so there are as many as the program has such names.
#[derive(Debug)]
pub(crate) struct Binding {
    tower: ArcSwapOption<CacheTower>,
}

impl Binding {
    /// The tower in this binding, without touching its reference count.
    #[inline]
    pub(crate) fn tower(&self) -> arc_swap::Guard<Option<Arc<CacheTower>>> {
        self.tower.load()
    }
}

/// Looked up by name, so hashed with foldhash rather than SipHash.
type Towers = HashMap<String, Arc<CacheTower>, foldhash::fast::RandomState>;

/// The registry's two views:
///
/// * `towers`, the registered towers by name, replaced whole by every change, so `get` and
///   `names` see a change (all the towers of a [`register_config`]) entirely or not at all;
/// * the bindings, one per name a call site uses, kept behind the writers' lock: they are read
///   only on a call site's first call and by writers, who bring them in step with `towers`.
struct Registry {
    towers: ArcSwap<Towers>,
    /// Serializes writers, so no change is lost; readers of `towers` never take it.
    writer: Mutex<HashMap<String, Arc<Binding>>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut towers = Towers::default();
    towers.insert(DEFAULT_TOWER.to_owned(), built_in_default());
    Registry { towers: ArcSwap::from(Arc::new(towers)), writer: Mutex::default() }
});

/// The binding of `name`, made on the first call of a call site naming it (holding its tower, if
/// registered).
pub(crate) fn binding(name: &str) -> Arc<Binding> {
    let mut bindings = REGISTRY.writer.lock();
    let binding = bindings
        .entry(name.to_owned())
        .or_insert_with(|| Arc::new(Binding { tower: ArcSwapOption::new(REGISTRY.towers.load().get(name).cloned()) }));
    Arc::clone(binding)
}

/// Registers (`Some`) or removes (`None`) towers by name, as one change; returns the towers they
/// replaced, in the same order (dropped by the caller, after the writer lock is released).
fn publish(changes: Vec<(String, Option<Arc<CacheTower>>)>) -> Vec<Option<Arc<CacheTower>>> {
    let bindings = REGISTRY.writer.lock();
    let mut towers = Towers::clone(&REGISTRY.towers.load());
    let replaced: Vec<_> = changes
        .iter()
        .map(|(name, tower)| match tower {
            Some(tower) => towers.insert(name.clone(), Arc::clone(tower)),
            None => towers.remove(name),
        })
        .collect();
    REGISTRY.towers.store(Arc::new(towers));
    for (name, tower) in changes {
        if let Some(binding) = bindings.get(&name) {
            binding.tower.store(tower);
        }
    }
    replaced
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
    publish(vec![(name.into(), Some(tower.into()))]).pop().flatten()
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
    REGISTRY.towers.load().get(name).cloned()
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
    publish(vec![(name.to_owned(), None)]).pop().flatten()
}

/// Checks that a tower is registered under each of `names`: call it at start-up, after
/// registering, with the `config` names of your `#[cached_tower]` functions, so that a missing
/// tower stops the program there instead of leaving those functions uncached.
///
/// ```
/// use cache_tower::registry;
///
/// registry::register_json(r#"{"doc_require_users": [{"adapter": "memory"}]}"#)?;
/// registry::require(&["doc_require_users", "default"])?;
///
/// let err = registry::require(&["doc_require_users", "doc_require_typo"]).unwrap_err();
/// assert!(err.to_string().contains("doc_require_typo"), "{err}");
/// # Ok::<(), cache_tower::Error>(())
/// ```
///
/// # Errors
/// [`ErrorKind::Config`](crate::error::ErrorKind::Config) naming every missing tower and the
/// registered ones.
pub fn require(names: &[&str]) -> Result<()> {
    let registered = self::names();
    let mut missing: Vec<&str> = names.iter().copied().filter(|name| !registered.iter().any(|r| r == name)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort_unstable();
    missing.dedup();
    let quote = |names: &[&str]| names.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ");
    let registered: Vec<&str> = registered.iter().map(String::as_str).collect();
    Err(Error::config(
        None,
        None,
        format!(
            "no cache tower is registered under {}; registered: {} (register them with \
             registry::register_json, register_file or register before this check)",
            quote(&missing),
            if registered.is_empty() { "none".to_owned() } else { quote(&registered) },
        ),
    ))
}

/// The names of the registered towers, sorted.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = REGISTRY.towers.load().keys().cloned().collect();
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
/// [`ErrorKind::Config`](crate::error::ErrorKind::Config) for invalid JSON, a document that is not an
/// object of named towers, or any invalid tower.
pub fn register_json(json: &str) -> Result<Vec<String>> {
    register_config(&config::parse_json(json)?)
}

/// [`register_json`] for a JSON file.
///
/// # Errors
/// As [`register_json`], and [`ErrorKind::Config`](crate::error::ErrorKind::Config) when the file cannot
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
    publish(built.into_iter().map(|(name, tower)| (name, Some(tower))).collect());
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

    #[test]
    fn readers_see_a_register_config_whole_or_not_at_all() {
        let batch: serde_json::Map<String, Value> =
            (0..300).map(|i| (format!("unit_batch_{i}"), serde_json::json!([{"adapter": "memory"}]))).collect();
        let batch = Value::Object(batch);
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut partial = 0;
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    let seen = names().iter().filter(|name| name.starts_with("unit_batch_")).count();
                    partial += usize::from(seen != 0 && seen != 300);
                }
                partial
            });
            register_config(&batch).unwrap();
            done.store(true, std::sync::atomic::Ordering::Release);
            assert_eq!(reader.join().unwrap(), 0, "a reader saw part of the batch");
        });
        assert_eq!(names().iter().filter(|name| name.starts_with("unit_batch_")).count(), 300);
    }

    #[test]
    fn a_binding_follows_registration_replacement_and_removal() {
        let binding = binding("unit_binding_lifecycle");
        assert!(binding.tower().is_none(), "a binding made before its tower is registered is empty");
        let first = Arc::new(CacheTower::new());
        register("unit_binding_lifecycle", Arc::clone(&first));
        assert!(Arc::ptr_eq(binding.tower().as_ref().unwrap(), &first));
        let second = Arc::new(CacheTower::new());
        let replaced = register("unit_binding_lifecycle", Arc::clone(&second)).unwrap();
        assert!(Arc::ptr_eq(&replaced, &first));
        assert!(Arc::ptr_eq(binding.tower().as_ref().unwrap(), &second));
        assert!(Arc::ptr_eq(&remove("unit_binding_lifecycle").unwrap(), &second));
        assert!(binding.tower().is_none() && get("unit_binding_lifecycle").is_none());
        assert!(!names().contains(&"unit_binding_lifecycle".to_owned()));
        assert!(Arc::ptr_eq(&super::binding("unit_binding_lifecycle"), &binding), "one binding per name");
    }

    #[test]
    fn a_binding_made_after_registration_holds_the_tower() {
        let tower = Arc::new(CacheTower::new());
        register("unit_binding_late", Arc::clone(&tower));
        assert!(Arc::ptr_eq(binding("unit_binding_late").tower().as_ref().unwrap(), &tower));
    }
}
