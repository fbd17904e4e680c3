//! The registry of named towers: register, get, replace, remove, names; whole configurations
//! from JSON text or a file, registered all or nothing; configuration errors that say which
//! tower, which layer and which field; lookups that stay valid while towers are replaced.
//!
//! The registry is process-wide and tests run in parallel, so every test uses tower names of
//! its own (prefixed with the test's name).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use cache_tower::{CacheTower, MemoryAdapter, error::ErrorKind, registry};

/// A tower with one memory layer holding `generation` under the key "generation".
fn tower_of_generation(generation: u64) -> CacheTower {
    let tower = CacheTower::new();
    tower.add_layer(MemoryAdapter::new());
    tower.set("generation", generation).expect("writing to a memory layer");
    tower
}

fn generation_of(tower: &CacheTower) -> Option<u64> {
    tower.get::<u64>("generation")
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn with_contents(name: &str, contents: &str) -> Self {
        let path = std::env::temp_dir().join(format!("cache-tower-registry-{}-{name}.json", std::process::id()));
        std::fs::write(&path, contents).expect("writing a temporary file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ===== register, get, replace, remove, names =====

#[test]
fn a_registered_tower_is_found_by_name_and_shares_its_storage() {
    let tower = Arc::new(tower_of_generation(1));
    assert!(registry::register("reg_get", Arc::clone(&tower)).is_none(), "nothing was registered under this name");

    let found = registry::get("reg_get").expect("registered above");

    assert!(Arc::ptr_eq(&found, &tower), "get returns the registered tower itself");
    found.set("written-through-registry", 5u8).unwrap();
    assert_eq!(tower.get::<u8>("written-through-registry"), Some(5));
}

#[test]
fn an_unknown_name_is_none() {
    assert!(registry::get("reg_never_registered").is_none());
    assert!(registry::remove("reg_never_registered").is_none());
}

#[test]
fn registering_a_name_again_replaces_the_tower_and_returns_the_old_one() {
    let old = Arc::new(tower_of_generation(1));
    let new = Arc::new(tower_of_generation(2));
    registry::register("reg_replace", Arc::clone(&old));

    let replaced = registry::register("reg_replace", Arc::clone(&new)).expect("a tower was registered before");

    assert!(Arc::ptr_eq(&replaced, &old), "the old tower is returned");
    let current = registry::get("reg_replace").unwrap();
    assert!(Arc::ptr_eq(&current, &new), "lookups now find the new tower");
    assert_eq!(generation_of(&current), Some(2));
}

#[test]
fn removing_a_tower_returns_it_and_forgets_the_name() {
    let tower = Arc::new(tower_of_generation(1));
    registry::register("reg_remove", Arc::clone(&tower));

    let removed = registry::remove("reg_remove").expect("registered above");

    assert!(Arc::ptr_eq(&removed, &tower));
    assert!(registry::get("reg_remove").is_none());
    assert!(!registry::names().contains(&"reg_remove".to_owned()));
    assert!(registry::remove("reg_remove").is_none(), "already removed");
}

#[test]
fn names_lists_every_registered_tower_sorted() {
    for name in ["reg_names_c", "reg_names_a", "reg_names_b"] {
        registry::register(name, CacheTower::new());
    }

    let names = registry::names();

    let mine: Vec<&str> = names.iter().map(String::as_str).filter(|name| name.starts_with("reg_names_")).collect();
    assert_eq!(mine, ["reg_names_a", "reg_names_b", "reg_names_c"]);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "the whole list is sorted");
}

// ===== register_json, register_file =====

#[test]
fn register_json_registers_every_named_tower() {
    let names = registry::register_json(
        r#"{
            "reg_json_users": [
                {"adapter": "memory", "namespace": "user:", "ttl": 60, "params": {"maxsize": 100, "lru": true}},
                {"adapter": "memory", "ttl": 600}
            ],
            "reg_json_sessions": [{"adapter": "memory", "ttl": 900}]
        }"#,
    )
    .expect("a valid configuration");

    assert_eq!(names, ["reg_json_sessions", "reg_json_users"], "the names registered, sorted");
    let users = registry::get("reg_json_users").expect("registered");
    let sessions = registry::get("reg_json_sessions").expect("registered");
    assert_eq!(users.get_layers().len(), 2);
    assert_eq!(users.get_layers()[0].namespace(), "user:");
    assert_eq!(sessions.get_layers().len(), 1);
    users.set("user:1", "Ada".to_owned()).unwrap();
    assert_eq!(users.get::<String>("user:1").as_deref(), Some("Ada"));
    assert!(!sessions.exists("user:1"), "each tower has its own storage");
}

#[test]
fn register_json_replaces_towers_of_the_same_name() {
    let old = Arc::new(tower_of_generation(1));
    registry::register("reg_json_replace", Arc::clone(&old));

    registry::register_json(r#"{"reg_json_replace": [{"adapter": "memory"}]}"#).unwrap();

    let current = registry::get("reg_json_replace").unwrap();
    assert!(!Arc::ptr_eq(&current, &old));
    assert_eq!(generation_of(&current), None, "a fresh, empty tower");
}

#[test]
fn register_file_reads_a_json_file() {
    let file = TempFile::with_contents(
        "register_file",
        r#"{"reg_file_users": [{"adapter": "memory", "ttl": 60}],
            "reg_file_sessions": [{"adapter": "memory", "ttl": 900}, {"adapter": "memory"}]}"#,
    );

    let names = registry::register_file(&file.0).expect("a valid configuration file");

    assert_eq!(names, ["reg_file_sessions", "reg_file_users"]);
    assert_eq!(registry::get("reg_file_users").expect("registered").get_layers().len(), 1);
    assert_eq!(registry::get("reg_file_sessions").expect("registered").get_layers().len(), 2);
}

#[test]
fn register_file_of_a_missing_file_is_a_config_error() {
    let missing = std::env::temp_dir().join("cache-tower-registry-surely-missing-file.json");

    let err = registry::register_file(&missing).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(std::error::Error::source(&err).is_some(), "the I/O error is kept as the source");
    assert!(err.to_string().contains("surely-missing-file"), "the message names the file: {err}");
}

#[test]
fn register_file_reports_errors_like_register_json() {
    let file = TempFile::with_contents(
        "file_error",
        r#"{"reg_file_a_ok": [{"adapter": "memory"}], "reg_file_bad": [{"adapter": "memory", "ttl": "soon"}]}"#,
    );

    let err = registry::register_file(&file.0).unwrap_err();

    assert_eq!((err.tower(), err.layer(), err.field()), (Some("reg_file_bad"), Some(0), Some("ttl")));
    assert!(registry::get("reg_file_a_ok").is_none(), "nothing was registered");
}

// ===== all or nothing =====

#[test]
fn a_bad_tower_registers_nothing_and_keeps_the_towers_already_registered() {
    let old = Arc::new(tower_of_generation(1));
    registry::register("reg_atomic_existing", Arc::clone(&old));

    let err = registry::register_json(
        r#"{
            "reg_atomic_existing": [{"adapter": "memory"}],
            "reg_atomic_new": [{"adapter": "memory"}],
            "reg_atomic_wrong": [{"adapter": "memory"}, {"adapter": "memory", "ttl": -1}]
        }"#,
    )
    .unwrap_err();

    assert_eq!(err.tower(), Some("reg_atomic_wrong"));
    assert!(registry::get("reg_atomic_new").is_none(), "the valid new tower was not registered");
    assert!(registry::get("reg_atomic_wrong").is_none());
    let existing = registry::get("reg_atomic_existing").expect("still registered");
    assert!(Arc::ptr_eq(&existing, &old), "the existing tower was not replaced");
}

// ===== errors name the tower, the layer and the field =====

#[test]
fn an_unknown_adapter_names_tower_layer_and_field() {
    let err =
        registry::register_json(r#"{"reg_err_adapter": [{"adapter": "memory"}, {"adapter": "memcached", "ttl": 5}]}"#)
            .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!((err.tower(), err.layer(), err.field()), (Some("reg_err_adapter"), Some(1), Some("adapter")));
    let text = err.to_string();
    assert!(text.contains("reg_err_adapter") && text.contains("layer 1") && text.contains("adapter"), "{text}");
    assert!(text.contains("memcached"), "the message quotes the unknown adapter: {text}");
}

#[test]
fn a_bad_ttl_names_tower_layer_and_field() {
    for ttl in ["-1", "1.5", "\"60\"", "null"] {
        let json = format!(
            r#"{{"reg_err_ttl": [{{"adapter": "memory"}}, {{"adapter": "memory"}}, {{"adapter": "memory", "ttl": {ttl}}}]}}"#
        );

        let err = registry::register_json(&json).unwrap_err();

        assert_eq!(err.kind(), ErrorKind::Config, "ttl {ttl}");
        assert_eq!((err.tower(), err.layer(), err.field()), (Some("reg_err_ttl"), Some(2), Some("ttl")), "ttl {ttl}");
        let text = err.to_string();
        assert!(text.contains("reg_err_ttl") && text.contains("layer 2") && text.contains("ttl"), "{text}");
    }
    assert!(registry::get("reg_err_ttl").is_none());
}

#[test]
fn an_unknown_field_names_tower_layer_and_field() {
    let err = registry::register_json(r#"{"reg_err_field": [{"adapter": "memory", "tll": 60}]}"#).unwrap_err();

    assert_eq!((err.tower(), err.layer(), err.field()), (Some("reg_err_field"), Some(0), Some("tll")));
    assert!(err.to_string().contains("tll"), "{err}");

    let err =
        registry::register_json(r#"{"reg_err_param": [{"adapter": "memory", "params": {"maxsze": 3}}]}"#).unwrap_err();

    assert_eq!((err.tower(), err.layer(), err.field()), (Some("reg_err_param"), Some(0), Some("params.maxsze")));
}

#[test]
fn a_tower_that_is_not_an_array_names_the_tower() {
    let err = registry::register_json(r#"{"reg_err_not_array": {"adapter": "memory"}}"#).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(err.tower(), Some("reg_err_not_array"));
    assert_eq!((err.layer(), err.field()), (None, None), "no layer was reached");
    let text = err.to_string();
    assert!(text.contains("reg_err_not_array") && text.contains("array"), "{text}");
    assert!(registry::get("reg_err_not_array").is_none());
}

#[test]
fn a_layer_that_is_not_an_object_names_tower_and_layer() {
    let err = registry::register_json(r#"{"reg_err_layer": [{"adapter": "memory"}, "memory"]}"#).unwrap_err();

    assert_eq!((err.tower(), err.layer()), (Some("reg_err_layer"), Some(1)));
}

#[test]
fn a_document_that_is_not_an_object_is_a_config_error() {
    for json in [r#"[{"adapter": "memory"}]"#, "\"reg_err_document\"", "42", "null"] {
        let err = registry::register_json(json).unwrap_err();

        assert_eq!(err.kind(), ErrorKind::Config, "{json}");
        assert_eq!((err.tower(), err.layer(), err.field()), (None, None, None), "{json}: no tower is concerned");
        assert!(err.to_string().contains("object"), "the message says what was expected: {err}");
    }
}

#[test]
fn invalid_json_is_a_config_error_with_its_cause() {
    let err = registry::register_json(r#"{"reg_err_syntax": [{"adapter": "memory"}"#).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!((err.tower(), err.layer(), err.field()), (None, None, None));
    assert!(std::error::Error::source(&err).is_some(), "the parser's error is kept as the source");
    assert!(err.to_string().contains("JSON"), "{err}");
    assert!(registry::get("reg_err_syntax").is_none());
}

// ===== concurrency =====

/// Sets its flag if the thread holding it panics, so the other threads stop and the test fails
/// instead of hanging.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

#[test]
fn lookups_always_see_a_valid_tower_while_it_is_replaced() {
    const READERS: usize = 8;
    const REPLACEMENTS: u64 = 2_000;
    const NAME: &str = "reg_concurrent_target";
    registry::register(NAME, tower_of_generation(0));
    let done = AtomicBool::new(false);

    let lookups: Vec<u64> = thread::scope(|scope| {
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                scope.spawn(|| {
                    let _stop = StopOnPanic(&done);
                    let (mut lookups, mut last_seen) = (0u64, 0u64);
                    // At least a few lookups even if the writers finish first.
                    while !done.load(Ordering::Acquire) || lookups < 100 {
                        let tower = registry::get(NAME).expect("the tower is always registered");
                        let generation = generation_of(&tower).expect("every registered tower holds its generation");
                        assert!(generation >= last_seen, "went back from generation {last_seen} to {generation}");
                        assert_eq!(tower.get_layers().len(), 1);
                        last_seen = generation;
                        lookups += 1;
                    }
                    lookups
                })
            })
            .collect();
        let _stop = StopOnPanic(&done);
        // Another writer changes unrelated names at the same time: no change may be lost.
        let other = scope.spawn(|| {
            for i in 0..REPLACEMENTS {
                if done.load(Ordering::Acquire) {
                    break;
                }
                let name = format!("reg_concurrent_other_{}", i % 16);
                registry::register(name.as_str(), CacheTower::new());
                if i % 3 == 0 {
                    registry::remove(&name);
                }
            }
        });
        for generation in 1..=REPLACEMENTS {
            if done.load(Ordering::Acquire) {
                break; // a reader failed; its panic is reported when the scope ends
            }
            let old = registry::register(NAME, tower_of_generation(generation)).expect("replacing a tower");
            assert_eq!(generation_of(&old), Some(generation - 1), "replace returns the tower it replaced");
        }
        other.join().expect("the other writer panicked");
        done.store(true, Ordering::Release);
        readers.into_iter().map(|reader| reader.join().expect("a reader panicked")).collect()
    });

    assert!(lookups.iter().all(|&count| count >= 100));
    assert_eq!(generation_of(&registry::get(NAME).unwrap()), Some(REPLACEMENTS), "the last replacement won");
    // The other writer's last change to each of its names stands: registered, or removed when
    // that last round was a multiple of 3.
    let names = registry::names();
    for residue in 0..16 {
        let last = (0..REPLACEMENTS).rev().find(|i| i % 16 == residue).expect("REPLACEMENTS >= 16");
        let name = format!("reg_concurrent_other_{residue}");
        assert_eq!(names.contains(&name), last % 3 != 0, "{name}: a change was lost");
    }
}
