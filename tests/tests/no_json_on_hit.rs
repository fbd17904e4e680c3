//! A memory (layer 0) hit is a clone of the stored value, never a JSON parse or encoding; a value
//! backfilled from a layer that only has JSON is parsed once, on the way up.
//!
//! [`DESERIALIZE_CALLS`] and [`SERIALIZE_CALLS`] are process wide and tests run on parallel
//! threads, so every test in this file holds [`SERIAL`] while it counts, and this file is the only
//! one that uses [`Counted`].

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use cache_tower::{
    MemoryAdapter,
    adapter::{CacheAdapter, StoredValue},
};
use cache_tower_tests::{Counted, DESERIALIZE_CALLS, SERIALIZE_CALLS, memory_layers, peek, put_json, tower_of};

static SERIAL: Mutex<()> = Mutex::new(());

/// How many times `Counted` is deserialized while `run` runs.
fn parses_during(run: impl FnOnce()) -> usize {
    let before = DESERIALIZE_CALLS.load(Ordering::SeqCst);
    run();
    DESERIALIZE_CALLS.load(Ordering::SeqCst) - before
}

/// How many times `Counted` is serialized while `run` runs.
fn encodings_during(run: impl FnOnce()) -> usize {
    let before = SERIALIZE_CALLS.load(Ordering::SeqCst);
    run();
    SERIALIZE_CALLS.load(Ordering::SeqCst) - before
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn a_layer_zero_hit_never_parses_json() {
    let _serial = serial();
    for lru in [false, true] {
        let tower = tower_of(&[MemoryAdapter::builder().maxsize(16).lru(lru).build(), MemoryAdapter::new()]);
        tower.set("k", Counted("hello".into())).unwrap();
        let mut parses = 0;
        let encodings = encodings_during(|| {
            parses = parses_during(|| {
                for _ in 0..1000 {
                    assert_eq!(tower.get::<Counted>("k"), Some(Counted("hello".into())));
                    assert_eq!(tower.get_or_set("k", || Counted("other".into())), Counted("hello".into()));
                }
            });
        });
        assert_eq!(parses, 0, "lru {lru}: 2000 layer 0 hits parsed JSON {parses} times");
        assert_eq!(encodings, 0, "lru {lru}: 2000 layer 0 hits wrote JSON {encodings} times");
    }
}

#[test]
fn a_layer_zero_mget_hit_never_parses_json() {
    let _serial = serial();
    let tower = tower_of(&memory_layers(2));
    tower.mset([("a", Counted("1".into())), ("b", Counted("2".into()))]).unwrap();
    let mut parses = 0;
    let encodings = encodings_during(|| {
        parses = parses_during(|| {
            for _ in 0..100 {
                let values = tower.mget::<Counted, _>(&["a", "b"]);
                assert_eq!(values["b"], Some(Counted("2".into())));
            }
        });
    });
    assert_eq!((parses, encodings), (0, 0));
}

#[test]
fn a_backfill_from_json_parses_once_and_the_next_read_parses_nothing() {
    let _serial = serial();
    let layers = memory_layers(2);
    let tower = tower_of(&layers);
    put_json(&layers[1], "k", r#""from below""#);

    let first = parses_during(|| assert_eq!(tower.get::<Counted>("k"), Some(Counted("from below".into()))));
    assert_eq!(first, 1, "the value found as JSON in layer 1 is parsed exactly once");

    let again = parses_during(|| {
        for _ in 0..100 {
            assert_eq!(tower.get::<Counted>("k"), Some(Counted("from below".into())));
        }
        assert_eq!(peek::<Counted>(&layers[0], "k"), Some(Counted("from below".into())));
    });
    assert_eq!(again, 0, "layer 0 holds the decoded value after the backfill");
    let stored = layers[0].get("k").unwrap().expect("backfilled");
    assert!(stored.value().is::<Counted>(), "layer 0 keeps the typed value, so its hits are clones");
}

#[test]
fn an_mget_backfill_from_json_parses_once_per_key() {
    let _serial = serial();
    let layers = memory_layers(3);
    let tower = tower_of(&layers);
    put_json(&layers[2], "a", r#""a""#);
    put_json(&layers[1], "b", r#""b""#);

    let first = parses_during(|| {
        let values = tower.mget::<Counted, _>(&["a", "b", "missing"]);
        assert_eq!(values["a"], Some(Counted("a".into())));
        assert_eq!(values["b"], Some(Counted("b".into())));
    });
    assert_eq!(first, 2, "one parse per key found as JSON, however many layers it is backfilled into");

    let again = parses_during(|| {
        tower.mget::<Counted, _>(&["a", "b"]);
        tower.get::<Counted>("a");
        assert_eq!(peek::<Counted>(&layers[1], "a"), Some(Counted("a".into())), "layer 1 got the typed value too");
    });
    assert_eq!(again, 0);
}

#[test]
fn json_only_values_are_stored_as_json_until_read() {
    let _serial = serial();
    let value = StoredValue::from_json(br#""x""#.to_vec());
    assert!(!value.is::<Counted>());
    let parses = parses_during(|| assert_eq!(value.decode::<Counted>().unwrap(), Counted("x".into())));
    assert_eq!(parses, 1);
}
