//! Tags against a model: random sequences of tagged and untagged writes, reads, deletes and tag
//! invalidations over a few keys and tags, on three stacks:
//!
//! * two memory layers (the memory layer's index of tags, the tower's write path);
//! * memory over a real Redis (the header, the version check, the version cache the listener
//!   keeps, backfills of tagged entries into memory);
//! * the same memory-over-Redis tower plus a second instance, Redis alone on the same namespace
//!   without invalidation (the records read on every tagged read), which must agree at once.
//!
//! The model is the definition: an entry is a hit iff it exists (written and not deleted
//! since) and none of its tags was invalidated after it was written. A write replaces the key's
//! tags with its own (none for a plain `set`).

use std::collections::{BTreeSet, HashMap};

use cache_tower::{CacheTower, LoadOptions, MemoryAdapter, RedisAdapter, adapter::CacheAdapter};
use cache_tower_tests::redis_server::{RedisServer, unique_namespace};
use cache_tower_tests::tracking::subscribed_tower;
use proptest::prelude::*;

const KEYS: [&str; 5] = ["a", "b", "c", "d", "e"];
const TAGS: [&str; 4] = ["t0", "t1", "user:{1}", "tenant acme"];

#[derive(Debug, Clone)]
enum Op {
    /// Writes a key with the tags whose indices are given (none: a plain `set`).
    Set {
        key: usize,
        tags: Vec<usize>,
    },
    /// `get_or_set_with` with tags: computes only on a miss.
    GetOrSet {
        key: usize,
        tags: Vec<usize>,
    },
    Get(usize),
    Exists(usize),
    Mget,
    Delete(usize),
    Invalidate(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let tags = proptest::collection::vec(0..TAGS.len(), 0..3);
    prop_oneof![
        3 => (key.clone(), tags.clone()).prop_map(|(key, tags)| Op::Set { key, tags }),
        2 => (key.clone(), tags).prop_map(|(key, tags)| Op::GetOrSet { key, tags }),
        3 => key.clone().prop_map(Op::Get),
        1 => key.clone().prop_map(Op::Exists),
        1 => Just(Op::Mget),
        1 => key.prop_map(Op::Delete),
        2 => (0..TAGS.len()).prop_map(Op::Invalidate),
    ]
}

/// Key → (value, tags) of the entries that are hits.
#[derive(Default)]
struct Model {
    entries: HashMap<&'static str, (u64, BTreeSet<usize>)>,
}

impl Model {
    fn write(&mut self, key: usize, value: u64, tags: &[usize]) {
        self.entries.insert(KEYS[key], (value, tags.iter().copied().collect()));
    }

    fn get(&self, key: usize) -> Option<u64> {
        self.entries.get(KEYS[key]).map(|(value, _)| *value)
    }

    fn invalidate(&mut self, tag: usize) {
        self.entries.retain(|_, (_, tags)| !tags.contains(&tag));
    }
}

fn options(tags: &[usize]) -> LoadOptions {
    LoadOptions::new().tags(tags.iter().map(|&tag| TAGS[tag]))
}

/// Runs `ops` on `tower` (and checks `others`, instances of the same namespace, on every read),
/// against the model; returns the model.
fn check(tower: &CacheTower, others: &[&CacheTower], ops: &[Op]) -> Result<Model, TestCaseError> {
    let mut model = Model::default();
    let mut next = 0u64;
    for (at, op) in ops.iter().enumerate() {
        match op {
            Op::Set { key, tags } => {
                next += 1;
                match tags.is_empty() {
                    true => tower.set(KEYS[*key], next).unwrap(),
                    false => tower.set_with(KEYS[*key], next, &options(tags)).unwrap(),
                }
                model.write(*key, next, tags);
            }
            Op::GetOrSet { key, tags } => {
                next += 1;
                let got = tower.get_or_set_with(KEYS[*key], &options(tags), || next);
                match model.get(*key) {
                    Some(value) => prop_assert_eq!(got, value, "op {}: {:?} hits", at, op),
                    None => {
                        prop_assert_eq!(got, next, "op {}: {:?} computes", at, op);
                        model.write(*key, next, tags);
                    }
                }
            }
            Op::Get(key) => {
                for (n, instance) in std::iter::once(tower).chain(others.iter().copied()).enumerate() {
                    prop_assert_eq!(
                        instance.get::<u64>(KEYS[*key]),
                        model.get(*key),
                        "op {}: {:?} on instance {}",
                        at,
                        op,
                        n
                    );
                }
            }
            Op::Exists(key) => {
                for (n, instance) in std::iter::once(tower).chain(others.iter().copied()).enumerate() {
                    prop_assert_eq!(
                        instance.exists(KEYS[*key]),
                        model.get(*key).is_some(),
                        "op {}: {:?} on instance {}",
                        at,
                        op,
                        n
                    );
                }
            }
            Op::Mget => {
                let expected: Vec<Option<u64>> = (0..KEYS.len()).map(|key| model.get(key)).collect();
                for (n, instance) in std::iter::once(tower).chain(others.iter().copied()).enumerate() {
                    let got: Vec<Option<u64>> = instance.mget::<u64, _>(&KEYS).into_values().collect();
                    prop_assert_eq!(&got, &expected, "op {}: mget on instance {}", at, n);
                }
            }
            Op::Delete(key) => {
                tower.delete(KEYS[*key]).unwrap();
                model.entries.remove(KEYS[*key]);
            }
            Op::Invalidate(tag) => {
                tower.invalidate_tag(TAGS[*tag]).unwrap();
                model.invalidate(*tag);
            }
        }
    }
    Ok(model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn two_memory_layers_follow_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let tower = CacheTower::new();
        tower.add_layer(MemoryAdapter::new());
        // A bounded lower layer evicts; the unbounded top layer keeps the model's view.
        tower.add_layer(MemoryAdapter::builder().maxsize(3).build());
        check(&tower, &[], &ops)?;
    }
}

/// Memory over a real Redis, and a second instance on Redis alone: one redis-server for every
/// case (this test's own, stopped when it ends), a namespace per case.
#[test]
fn memory_over_redis_and_another_instance_follow_the_model() {
    let server = RedisServer::start();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 48, ..ProptestConfig::default() });
    let result = runner.run(&proptest::collection::vec(op(), 1..30), |ops| {
        let namespace = unique_namespace("tags-model");
        let memory = MemoryAdapter::new();
        let redis = RedisAdapter::builder().url(server.url()).namespace(namespace.as_str()).build().unwrap();
        let tower = subscribed_tower(&memory, &redis);
        let other = CacheTower::new();
        other.add_layer(
            RedisAdapter::builder()
                .url(server.url())
                .namespace(namespace.as_str())
                .invalidation(false)
                .build()
                .unwrap(),
        );
        let model = check(&tower, &[&other], &ops)?;
        // What Redis holds follows the model too: read every key again with memory emptied.
        memory.flush().unwrap();
        for (at, key) in KEYS.iter().enumerate() {
            prop_assert_eq!(tower.get::<u64>(key), model.get(at), "{} from Redis at the end", key);
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
