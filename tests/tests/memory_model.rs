//! MemoryAdapter against a reference model: random sequences of set/get/delete/mget/mset/exists/
//! flush and clock moves over a few keys, with maxsize 0..=4, FIFO or LRU, and a TTL.
//!
//! The model is an ordered list of entries, evicted from the front: FIFO keeps insertion order
//! (an overwrite keeps its place), LRU moves a key to the back on `get`, `mget` and `set`, never
//! on `exists`. An entry is expired once the clock reaches its expiry, and an expired entry is
//! absent: it is never returned, never counted, never evicted in place of a live one.
//!
//! With maxsize 1..=4 the adapter has a single shard, so its order is exact and `keys()` must
//! equal the model's order; an unbounded adapter (maxsize 0) is sharded and is compared as a set.

use std::collections::HashMap;
use std::time::Duration;

use cache_tower::{
    MemoryAdapter,
    adapter::{CacheAdapter, Entry, StoredValue},
    clock::ManualClock,
};
use proptest::prelude::*;

const KEYS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
const SECOND: u64 = 1_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// Writes `key` with a value; the entry's own TTL (seconds) is `None` or 0..=3.
    Set {
        key: usize,
        ttl: Option<u64>,
    },
    Get(usize),
    Delete(usize),
    Exists(usize),
    Mget(Vec<usize>),
    Mset(Vec<(usize, Option<u64>)>),
    Flush,
    Advance(u64),
    Len,
}

fn entry_ttl() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![3 => Just(None), 1 => (0u64..=3).prop_map(Some)]
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        6 => (key.clone(), entry_ttl()).prop_map(|(key, ttl)| Op::Set { key, ttl }),
        5 => key.clone().prop_map(Op::Get),
        2 => key.clone().prop_map(Op::Delete),
        2 => key.clone().prop_map(Op::Exists),
        2 => prop::collection::vec(key.clone(), 0..5).prop_map(Op::Mget),
        2 => prop::collection::vec((key, entry_ttl()), 0..4).prop_map(Op::Mset),
        1 => Just(Op::Flush),
        3 => (0u64..=3).prop_map(Op::Advance),
        1 => Just(Op::Len),
    ]
}

// ===== the model =====

#[derive(Debug, Clone, PartialEq)]
struct ModelEntry {
    key: &'static str,
    value: u64,
    /// Nanoseconds; `None` = never expires.
    expires_at: Option<u64>,
}

#[derive(Debug)]
struct Model {
    /// Eviction order: the front is evicted first.
    entries: Vec<ModelEntry>,
    maxsize: usize,
    lru: bool,
    /// The layer's TTL in seconds; 0 = none.
    layer_ttl: u64,
    now: u64,
}

impl Model {
    fn live(&self, entry: &ModelEntry) -> bool {
        entry.expires_at.is_none_or(|at| self.now < at)
    }

    fn drop_expired(&mut self) {
        let now = self.now;
        self.entries.retain(|e| e.expires_at.is_none_or(|at| now < at));
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.key == key && self.live(e))
    }

    /// The value and time left (ns) of a live key, moving it to the back in LRU mode.
    fn get(&mut self, key: &str) -> Option<(u64, Option<u64>)> {
        let index = self.position(key)?;
        let found = (self.entries[index].value, self.entries[index].expires_at.map(|at| at - self.now));
        if self.lru {
            let entry = self.entries.remove(index);
            self.entries.push(entry);
        }
        Some(found)
    }

    fn exists(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    fn set(&mut self, key: &'static str, value: u64, entry_ttl: Option<u64>) {
        self.drop_expired();
        let ttl = match (self.layer_ttl, entry_ttl) {
            (0, entry) => entry,
            (layer, None) => Some(layer),
            (layer, Some(entry)) => Some(layer.min(entry)),
        };
        if ttl == Some(0) {
            // Not stored, and any older value goes.
            self.delete(key);
            return;
        }
        let expires_at = ttl.map(|secs| self.now + secs * SECOND);
        if let Some(index) = self.position(key) {
            let entry = &mut self.entries[index];
            entry.value = value;
            entry.expires_at = expires_at;
            if self.lru {
                let entry = self.entries.remove(index);
                self.entries.push(entry);
            }
            return;
        }
        if self.maxsize > 0 && self.entries.len() >= self.maxsize {
            self.entries.remove(0);
        }
        self.entries.push(ModelEntry { key, value, expires_at });
    }

    fn delete(&mut self, key: &str) {
        self.entries.retain(|e| e.key != key);
    }

    fn keys(&self) -> Vec<&'static str> {
        self.entries.iter().filter(|e| self.live(e)).map(|e| e.key).collect()
    }
}

// ===== the run =====

fn read(entry: Option<Entry>) -> Option<(u64, Option<u64>)> {
    entry.map(|e| {
        let left = e.ttl().map(|t| u64::try_from(t.as_nanos()).unwrap());
        (e.value().decode::<u64>().unwrap(), left)
    })
}

fn run(maxsize: usize, lru: bool, layer_ttl: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let memory =
        MemoryAdapter::builder().maxsize(maxsize).lru(lru).ttl(Duration::from_secs(layer_ttl)).clock(&clock).build();
    let adapter: &dyn CacheAdapter = &memory;
    let mut model = Model { entries: Vec::new(), maxsize, lru, layer_ttl, now: 0 };
    let mut next_value = 0u64;
    let mut value = || {
        next_value += 1;
        next_value
    };
    let entry = |value: u64, ttl: Option<u64>| Entry::new(StoredValue::new(value), ttl.map(Duration::from_secs));

    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Set { key, ttl } => {
                let v = value();
                adapter.set(KEYS[*key], &entry(v, *ttl)).unwrap();
                model.set(KEYS[*key], v, *ttl);
            }
            Op::Get(key) => {
                let got = read(adapter.get(KEYS[*key]).unwrap());
                prop_assert_eq!(got, model.get(KEYS[*key]), "step {}: {:?}", step, op);
            }
            Op::Delete(key) => {
                adapter.delete(KEYS[*key]).unwrap();
                model.delete(KEYS[*key]);
            }
            Op::Exists(key) => {
                prop_assert_eq!(
                    adapter.exists(KEYS[*key]).unwrap(),
                    model.exists(KEYS[*key]),
                    "step {}: {:?}",
                    step,
                    op
                );
            }
            Op::Mget(keys) => {
                let names: Vec<&str> = keys.iter().map(|k| KEYS[*k]).collect();
                let got: Vec<_> = adapter.mget(&names).unwrap().into_iter().map(read).collect();
                let expected: Vec<_> = names.iter().map(|k| model.get(k)).collect();
                prop_assert_eq!(got, expected, "step {}: {:?}", step, op);
            }
            Op::Mset(items) => {
                let items: Vec<(&'static str, u64, Option<u64>)> =
                    items.iter().map(|(k, ttl)| (KEYS[*k], value(), *ttl)).collect();
                let entries: Vec<(&str, Entry)> = items.iter().map(|(k, v, ttl)| (*k, entry(*v, *ttl))).collect();
                adapter.mset(&entries).unwrap();
                for (k, v, ttl) in items {
                    model.set(k, v, ttl);
                }
            }
            Op::Flush => {
                adapter.flush().unwrap();
                model.entries.clear();
            }
            Op::Advance(secs) => {
                clock.advance(Duration::from_secs(*secs));
                model.now += secs * SECOND;
            }
            Op::Len => {
                prop_assert_eq!(memory.len(), model.keys().len(), "step {}: len", step);
            }
        }

        let mut actual = memory.keys();
        let mut expected: Vec<String> = model.keys().into_iter().map(str::to_owned).collect();
        if maxsize == 0 {
            // Sharded: the order is only kept within each shard.
            actual.sort();
            expected.sort();
        }
        prop_assert_eq!(actual, expected, "step {}: keys after {:?}", step, op);
    }

    // Every key reads back as the model says, and nothing was evicted in place of an expired entry.
    let got: HashMap<&str, Option<u64>> =
        KEYS.iter().map(|k| (*k, read(adapter.get(k).unwrap()).map(|(v, _)| v))).collect();
    let expected: HashMap<&str, Option<u64>> = KEYS.iter().map(|k| (*k, model.get(k).map(|(v, _)| v))).collect();
    prop_assert_eq!(got, expected, "final contents");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn memory_adapter_matches_the_model(
        maxsize in 0usize..=4,
        lru in any::<bool>(),
        layer_ttl in 0u64..=3,
        ops in prop::collection::vec(op(), 1..100),
    ) {
        run(maxsize, lru, layer_ttl, &ops)?;
    }
}

// ===== the cases the model is about, spelled out =====

#[test]
fn fifo_with_an_expired_entry_in_the_middle_evicts_nothing_live() {
    // maxsize 3: a (forever), b (1s), c (forever); after 1s, writing d takes b's place.
    let ops = [
        Op::Set { key: 0, ttl: None },
        Op::Set { key: 1, ttl: Some(1) },
        Op::Set { key: 2, ttl: None },
        Op::Advance(1),
        Op::Set { key: 3, ttl: None },
        Op::Get(0),
    ];
    run(3, false, 0, &ops).unwrap();
}

#[test]
fn lru_with_reads_overwrites_and_expiry() {
    let ops = [
        Op::Set { key: 0, ttl: None },
        Op::Set { key: 1, ttl: None },
        Op::Get(0),
        Op::Set { key: 2, ttl: None },
        Op::Exists(0),
        Op::Set { key: 3, ttl: None },
        Op::Mget(vec![2, 3, 0]),
        Op::Advance(2),
        Op::Set { key: 4, ttl: Some(1) },
        Op::Advance(1),
        Op::Len,
    ];
    run(2, true, 3, &ops).unwrap();
}

#[test]
fn a_zero_entry_ttl_deletes_and_flush_resets_order() {
    let ops = [
        Op::Set { key: 0, ttl: None },
        Op::Set { key: 1, ttl: None },
        Op::Set { key: 0, ttl: Some(0) },
        Op::Get(0),
        Op::Mset(vec![(2, None), (3, None), (2, Some(2))]),
        Op::Flush,
        Op::Set { key: 5, ttl: None },
        Op::Set { key: 4, ttl: None },
    ];
    for maxsize in 0..=4 {
        for lru in [false, true] {
            run(maxsize, lru, 0, &ops).unwrap();
        }
    }
}
