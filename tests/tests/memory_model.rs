//! MemoryAdapter against a reference model: random sequences of set/get/delete/mget/mset/exists/
//! flush and clock moves over a few keys, with every [`EvictionPolicy`], maxsize 0..=4, a byte
//! bound (`max_bytes`, with a weigher) or none, a TTL, and a removal listener.
//!
//! The model keeps its entries in eviction order, the front evicted first, expired entries
//! included until the adapter would reclaim them:
//!
//! * FIFO keeps insertion order (an overwrite keeps its place); LRU moves a key to the back on
//!   `get`, `mget` and `set`, never on `exists`.
//! * S3-FIFO keeps a small and a main queue and a ghost queue of keys. Each entry counts its
//!   reads (`get`, `mget`, an overwrite; not `exists`) up to 3. A new key enters the small queue,
//!   or the main one when the ghost remembers it. To make room, while the small queue holds more
//!   than `max(1, 3% of the entries)` its oldest entry leaves it: into the main queue (count reset)
//!   if it was read, else out of the cache, remembered by the ghost (of capacity 50% of the
//!   entries). Otherwise the main queue's oldest entry goes if its count is 0, or goes round to
//!   the back with its count one lower. `keys()` lists the main queue, then the small one.
//!   The ghost is a FIFO: remembering first drops its oldest entries down to below its
//!   capacity. A key it remembers is forgotten when written again, but its entry stays, stale,
//!   counting towards the ghost's length until it leaves the front (as does an older entry of a
//!   key remembered twice, which must not take the newer with it). A flush empties the ghost.
//! * Every write (a new key, or an overwrite: with a byte bound a heavier value can go over it)
//!   evicts while the adapter holds more than `maxsize` entries or `max_bytes` bytes, never the
//!   entry just written. An entry weighing more than `max_bytes` alone is not stored: its key's
//!   old value goes (replaced) and the listener hears the new one evicted.
//! * An entry is expired once the clock reaches its expiry, and an expired entry is absent: never
//!   returned, never counted, never evicted in place of a live one. It is reclaimed (told as
//!   expired) by a write or a read of its shard, by `len()`, or when it is deleted, flushed or
//!   overwritten.
//!
//! Every removal must reach the listener exactly once with its cause, in the operation the model
//! says (compared as a multiset per operation), and `stats()` must count what was told.
//!
//! With maxsize 1..=4 the adapter has a single shard, so its order is exact and `keys()` must
//! equal the model's order. With maxsize 0 it is sharded: keys are compared as a set, expired
//! entries of other shards may be reclaimed at any later operation (the model accepts the
//! adapter's expiry notices for its expired entries), and with a byte bound the model follows the
//! adapter's choice of victims (each must be live, not the key just written, and evicted while
//! the adapter was over its bound), writing one key per call so each eviction is checked against
//! the write that caused it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_tower::{
    MemoryAdapter,
    adapter::{CacheAdapter, ENTRY_OVERHEAD, Entry, EvictionPolicy, RemovalCause, StoredValue},
    clock::ManualClock,
};
use proptest::prelude::*;

const KEYS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
const SECOND: u64 = 1_000_000_000;
/// What an S3-FIFO read counter counts up to.
const MAX_FREQ: u8 = 3;

/// What the test's weigher says a value weighs: 0 to 240 bytes, varying from one write to the
/// next (values are numbered in the order they are written).
fn value_weight(value: u64) -> usize {
    usize::try_from(value % 7).unwrap() * 40
}

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

/// No byte bound, or one of about one to ten entries' worth (an entry weighs 129 to 369 bytes),
/// sometimes so small that some or all writes are refused.
fn max_bytes() -> impl Strategy<Value = usize> {
    prop_oneof![2 => Just(0), 3 => 129usize..=1500, 1 => 1usize..=400]
}

fn policy() -> impl Strategy<Value = EvictionPolicy> {
    prop::sample::select(EvictionPolicy::ALL.to_vec())
}

#[derive(Debug, Clone, Copy)]
struct Config {
    policy: EvictionPolicy,
    maxsize: usize,
    /// `0`: no byte bound.
    max_bytes: usize,
    /// The layer's TTL in seconds; 0 = none.
    layer_ttl: u64,
}

impl Config {
    fn new(policy: EvictionPolicy, maxsize: usize) -> Self {
        Self { policy, maxsize, max_bytes: 0, layer_ttl: 0 }
    }

    fn max_bytes(self, max_bytes: usize) -> Self {
        Self { max_bytes, ..self }
    }

    fn layer_ttl(self, layer_ttl: u64) -> Self {
        Self { layer_ttl, ..self }
    }

    /// Whether the adapter has several shards (then orders are not exact).
    fn sharded(&self) -> bool {
        self.maxsize == 0
    }

    /// Whether the model follows the adapter's choice of victims: sharded, with a byte bound.
    fn follows_evictions(&self) -> bool {
        self.sharded() && self.max_bytes > 0
    }
}

/// A removal as the listener hears it.
type Event = (String, RemovalCause);

// ===== the model =====

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Main,
    Small,
}

#[derive(Debug, Clone, PartialEq)]
struct ModelEntry {
    key: &'static str,
    value: u64,
    /// Nanoseconds; `None` = never expires.
    expires_at: Option<u64>,
    /// What it is charged against `max_bytes` (0 without the bound).
    weight: usize,
    /// S3-FIFO: reads since it came in or was last passed over, up to [`MAX_FREQ`].
    freq: u8,
}

#[derive(Debug)]
struct Model {
    config: Config,
    now: u64,
    /// FIFO and LRU: the one list. S3-FIFO: the main queue. The front is evicted first.
    main: Vec<ModelEntry>,
    /// S3-FIFO: the small queue (empty for FIFO and LRU).
    small: Vec<ModelEntry>,
    /// S3-FIFO's ghost: keys evicted from the small queue, oldest first, each with the number it
    /// was remembered under; an entry whose number is not its key's in `ghost_members` is stale.
    ghost: VecDeque<(&'static str, u64)>,
    ghost_members: HashMap<&'static str, u64>,
    ghost_next: u64,
    /// The sum of the entries' weights (expired ones included until reclaimed).
    bytes: usize,
    /// The removals the current operation must tell.
    expected: Vec<Event>,
}

impl Model {
    fn new(config: Config) -> Self {
        Self {
            config,
            now: 0,
            main: Vec::new(),
            small: Vec::new(),
            ghost: VecDeque::new(),
            ghost_members: HashMap::new(),
            ghost_next: 0,
            bytes: 0,
            expected: Vec::new(),
        }
    }

    fn queue(&self, queue: Queue) -> &Vec<ModelEntry> {
        match queue {
            Queue::Main => &self.main,
            Queue::Small => &self.small,
        }
    }

    fn queue_mut(&mut self, queue: Queue) -> &mut Vec<ModelEntry> {
        match queue {
            Queue::Main => &mut self.main,
            Queue::Small => &mut self.small,
        }
    }

    /// Entries held, expired ones included (what the adapter counts against `maxsize`).
    fn len(&self) -> usize {
        self.main.len() + self.small.len()
    }

    fn live(&self, entry: &ModelEntry) -> bool {
        entry.expires_at.is_none_or(|at| self.now < at)
    }

    /// Where the entry of `key` is, live or expired.
    fn find(&self, key: &str) -> Option<(Queue, usize)> {
        [Queue::Main, Queue::Small]
            .into_iter()
            .find_map(|queue| self.queue(queue).iter().position(|e| e.key == key).map(|index| (queue, index)))
    }

    fn find_live(&self, key: &str) -> Option<(Queue, usize)> {
        self.find(key).filter(|&(queue, index)| self.live(&self.queue(queue)[index]))
    }

    fn take(&mut self, queue: Queue, index: usize) -> ModelEntry {
        let entry = self.queue_mut(queue).remove(index);
        self.bytes -= entry.weight;
        entry
    }

    /// Removes an entry for `cause`, or as expired if it was, and expects it told.
    fn remove(&mut self, queue: Queue, index: usize, cause: RemovalCause) {
        let entry = self.take(queue, index);
        let cause = if self.live(&entry) { cause } else { RemovalCause::Expired };
        self.expected.push((entry.key.to_owned(), cause));
    }

    fn remove_key(&mut self, key: &str, cause: RemovalCause) {
        if let Some((queue, index)) = self.find(key) {
            self.remove(queue, index, cause);
        }
    }

    /// Reclaims every expired entry.
    fn reclaim_all(&mut self) {
        for queue in [Queue::Main, Queue::Small] {
            let mut index = 0;
            while index < self.queue(queue).len() {
                if self.live(&self.queue(queue)[index]) {
                    index += 1;
                } else {
                    self.remove(queue, index, RemovalCause::Expired);
                }
            }
        }
    }

    /// What a write or a read of `key` reclaims first: every expired entry of its shard. With a
    /// single shard that is all of them (the adapter purges up to 8 per operation; there are 6
    /// keys); sharded, surely the key's own, the others when the adapter tells them (`settle`).
    fn reclaim_for(&mut self, key: &str) {
        if !self.config.sharded() {
            self.reclaim_all();
        } else if let Some((queue, index)) = self.find(key) {
            if !self.live(&self.queue(queue)[index]) {
                self.remove(queue, index, RemovalCause::Expired);
            }
        }
    }

    /// The value and time left (ns) of a live key; counts the read (S3-FIFO), makes it the most
    /// recent (LRU).
    fn get(&mut self, key: &str) -> Option<(u64, Option<u64>)> {
        self.reclaim_for(key);
        let (queue, index) = self.find_live(key)?;
        let now = self.now;
        let entry = &mut self.queue_mut(queue)[index];
        entry.freq = (entry.freq + 1).min(MAX_FREQ);
        let found = (entry.value, entry.expires_at.map(|at| at - now));
        if self.config.policy == EvictionPolicy::Lru {
            let entry = self.main.remove(index);
            self.main.push(entry);
        }
        Some(found)
    }

    fn exists(&self, key: &str) -> bool {
        self.find_live(key).is_some()
    }

    fn set(&mut self, key: &'static str, value: u64, entry_ttl: Option<u64>) {
        self.reclaim_for(key);
        let ttl = match (self.config.layer_ttl, entry_ttl) {
            (0, entry) => entry,
            (layer, None) => Some(layer),
            (layer, Some(entry)) => Some(layer.min(entry)),
        };
        if ttl == Some(0) {
            // Not stored, and any older value goes; nothing is weighed (so a zero TTL is never
            // told as a refused, evicted entry, however heavy its value).
            self.remove_key(key, RemovalCause::Replaced);
            return;
        }
        let expires_at = ttl.map(|secs| self.now + secs * SECOND);
        let max_bytes = self.config.max_bytes;
        let weight = if max_bytes > 0 { key.len() + ENTRY_OVERHEAD + value_weight(value) } else { 0 };
        if max_bytes > 0 && weight > max_bytes {
            // Too heavy to keep at all: the old value goes, the new one is told evicted.
            self.remove_key(key, RemovalCause::Replaced);
            self.expected.push((key.to_owned(), RemovalCause::Evicted));
            return;
        }
        // `reclaim_for` took the key's entry if it had expired: a present entry is live.
        if let Some((queue, index)) = self.find(key) {
            let entry = &mut self.queue_mut(queue)[index];
            let old_weight = std::mem::replace(&mut entry.weight, weight);
            entry.value = value;
            entry.expires_at = expires_at;
            entry.freq = (entry.freq + 1).min(MAX_FREQ);
            self.bytes = self.bytes - old_weight + weight;
            if self.config.policy == EvictionPolicy::Lru {
                let entry = self.main.remove(index);
                self.main.push(entry);
            }
            self.expected.push((key.to_owned(), RemovalCause::Replaced));
        } else {
            let queue = match self.config.policy {
                EvictionPolicy::S3Fifo if self.ghost_members.remove(key).is_none() => Queue::Small,
                _ => Queue::Main,
            };
            self.queue_mut(queue).push(ModelEntry { key, value, expires_at, weight, freq: 0 });
            self.bytes += weight;
        }
        self.evict_over_bounds(key);
    }

    fn over_bounds(&self) -> bool {
        let Config { maxsize, max_bytes, .. } = self.config;
        (maxsize > 0 && self.len() > maxsize) || (max_bytes > 0 && self.bytes > max_bytes)
    }

    /// After a write of `spared`: evicts while over the bounds, never `spared`.
    fn evict_over_bounds(&mut self, spared: &str) {
        if self.config.sharded() {
            // Only a byte bound, over shards: the model follows the adapter (`settle`).
            return;
        }
        while self.over_bounds() {
            let victim = match self.config.policy {
                EvictionPolicy::S3Fifo => self.s3_fifo_victim(spared),
                _ => self.candidate(Queue::Main, spared).map(|index| (Queue::Main, index)),
            };
            let Some((queue, index)) = victim else { break };
            self.remove(queue, index, RemovalCause::Evicted);
        }
    }

    /// A queue's candidate for eviction: its front, or the entry after it if the front is
    /// `spared`.
    fn candidate(&self, queue: Queue, spared: &str) -> Option<usize> {
        let entries = self.queue(queue);
        match entries.first() {
            None => None,
            Some(front) if front.key == spared => (entries.len() > 1).then_some(1),
            Some(_) => Some(0),
        }
    }

    fn s3_fifo_victim(&mut self, spared: &str) -> Option<(Queue, usize)> {
        loop {
            let len = self.len();
            let small_over = self.small.len() > (len * 3 / 100).max(1);
            let small = self.candidate(Queue::Small, spared);
            let main = self.candidate(Queue::Main, spared);
            let (queue, index) = match (small, main) {
                (Some(index), _) if small_over || main.is_none() => (Queue::Small, index),
                (_, Some(index)) => (Queue::Main, index),
                _ => return None,
            };
            match (queue, self.queue(queue)[index].freq) {
                (Queue::Small, 0) => {
                    let key = self.small[index].key;
                    self.remember(key, len * 50 / 100);
                    return Some((queue, index));
                }
                (Queue::Small, _) => {
                    let mut entry = self.small.remove(index);
                    entry.freq = 0;
                    self.main.push(entry);
                }
                (Queue::Main, 0) => return Some((queue, index)),
                (Queue::Main, freq) => {
                    let mut entry = self.main.remove(index);
                    entry.freq = freq - 1;
                    self.main.push(entry);
                }
            }
        }
    }

    /// The ghost remembers `key`, after forgetting its oldest entries down to below `capacity`.
    fn remember(&mut self, key: &'static str, capacity: usize) {
        if capacity == 0 {
            return;
        }
        while self.ghost.len() >= capacity {
            if let Some((old, number)) = self.ghost.pop_front() {
                if self.ghost_members.get(old) == Some(&number) {
                    self.ghost_members.remove(old);
                }
            }
        }
        self.ghost.push_back((key, self.ghost_next));
        self.ghost_members.insert(key, self.ghost_next);
        self.ghost_next += 1;
    }

    fn delete(&mut self, key: &str) {
        self.remove_key(key, RemovalCause::Removed);
    }

    /// Empties the cache, its S3-FIFO ghost too (a flushed shard starts afresh).
    fn flush(&mut self) {
        for queue in [Queue::Main, Queue::Small] {
            while !self.queue(queue).is_empty() {
                self.remove(queue, 0, RemovalCause::Removed);
            }
        }
        self.ghost.clear();
        self.ghost_members.clear();
    }

    /// The live keys as the adapter lists them: the main queue, then the small one.
    fn keys(&self) -> Vec<&'static str> {
        self.main.iter().chain(&self.small).filter(|e| self.live(e)).map(|e| e.key).collect()
    }

    /// Checks what the adapter told in an operation (in the order told) against what the model
    /// expects. Besides, a sharded adapter may tell expired entries of other shards, and choose
    /// its own victims over a byte bound: each must be live, not `written`, and evicted while the
    /// adapter was over its bound.
    fn settle(&mut self, told: &[Event], written: Option<&str>) -> Result<(), TestCaseError> {
        let mut expected = std::mem::take(&mut self.expected);
        for (key, cause) in told {
            if let Some(index) = expected.iter().position(|(k, c)| k == key && c == cause) {
                expected.swap_remove(index);
                continue;
            }
            let found = self.find(key);
            prop_assert!(
                self.config.sharded() && found.is_some(),
                "told ({}, {:?}), not expected; expected {:?}",
                key,
                cause,
                expected
            );
            let (queue, index) = found.unwrap();
            let live = self.live(&self.queue(queue)[index]);
            match cause {
                RemovalCause::Expired => prop_assert!(!live, "told {} expired, it is live", key),
                RemovalCause::Evicted => {
                    prop_assert!(self.config.follows_evictions(), "told {} evicted with no bound to meet", key);
                    prop_assert!(live, "told {} evicted, it had expired", key);
                    prop_assert!(Some(key.as_str()) != written, "evicted {}, the key just written", key);
                    prop_assert!(self.over_bounds(), "evicted {} within the bounds ({} bytes)", key, self.bytes);
                }
                _ => prop_assert!(false, "told ({}, {:?}), not expected; expected {:?}", key, cause, expected),
            }
            self.take(queue, index);
        }
        prop_assert!(expected.is_empty(), "not told: {:?} (told {:?})", expected, told);
        Ok(())
    }
}

// ===== the run =====

fn read(entry: Option<Entry>) -> Option<(u64, Option<u64>)> {
    entry.map(|e| {
        let left = e.ttl().map(|t| u64::try_from(t.as_nanos()).unwrap());
        (e.value().decode::<u64>().unwrap(), left)
    })
}

/// What a run leaves, for the spelled-out cases to check beyond the model.
#[derive(Debug)]
struct Outcome {
    /// `keys()` after the last of the given operations.
    keys: Vec<String>,
    /// Every removal told, in order (the final reads included).
    told: Vec<Event>,
}

struct Run {
    config: Config,
    clock: ManualClock,
    memory: MemoryAdapter,
    heard: Arc<Mutex<Vec<Event>>>,
    model: Model,
    next_value: u64,
    told: Vec<Event>,
}

impl Run {
    fn new(config: Config) -> Self {
        let clock = ManualClock::new();
        let heard: Arc<Mutex<Vec<Event>>> = Arc::default();
        let log = Arc::clone(&heard);
        let memory = MemoryAdapter::builder()
            .maxsize(config.maxsize)
            .policy(config.policy)
            .max_bytes(config.max_bytes)
            .weigher(|_key, value| value.typed::<u64>().map_or(0, |v| value_weight(*v)))
            .on_removal(move |key, cause| log.lock().unwrap().push((key.to_owned(), cause)))
            .ttl(Duration::from_secs(config.layer_ttl))
            .clock(&clock)
            .build();
        Self { config, clock, memory, heard, model: Model::new(config), next_value: 0, told: Vec::new() }
    }

    fn adapter(&self) -> &dyn CacheAdapter {
        &self.memory
    }

    fn step(&mut self, step: usize, op: &Op) -> Result<(), TestCaseError> {
        let context = |e: TestCaseError| TestCaseError::fail(format!("step {step}: {op:?}: {e}"));
        self.apply(op).map_err(context)?;
        self.check().map_err(context)
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Set { key, ttl } => return self.write(&[(KEYS[*key], *ttl)], false),
            Op::Mset(items) => {
                let items: Vec<_> = items.iter().map(|(key, ttl)| (KEYS[*key], *ttl)).collect();
                if self.config.follows_evictions() {
                    // One key per call, so that each eviction is checked against its write.
                    for item in items {
                        self.write(&[item], true)?;
                    }
                    return Ok(());
                }
                return self.write(&items, true);
            }
            Op::Get(key) => {
                let got = read(self.adapter().get(KEYS[*key]).unwrap());
                prop_assert_eq!(got, self.model.get(KEYS[*key]));
            }
            Op::Delete(key) => {
                self.adapter().delete(KEYS[*key]).unwrap();
                self.model.delete(KEYS[*key]);
            }
            Op::Exists(key) => {
                prop_assert_eq!(self.adapter().exists(KEYS[*key]).unwrap(), self.model.exists(KEYS[*key]));
            }
            Op::Mget(keys) => {
                let names: Vec<&str> = keys.iter().map(|k| KEYS[*k]).collect();
                let got: Vec<_> = self.adapter().mget(&names).unwrap().into_iter().map(read).collect();
                let expected: Vec<_> = names.iter().map(|k| self.model.get(k)).collect();
                prop_assert_eq!(got, expected);
            }
            Op::Flush => {
                self.adapter().flush().unwrap();
                self.model.flush();
            }
            Op::Advance(secs) => {
                self.clock.advance(Duration::from_secs(*secs));
                self.model.now += secs * SECOND;
            }
            Op::Len => {
                let len = self.memory.len();
                self.model.reclaim_all();
                prop_assert_eq!(len, self.model.len(), "len");
                if self.config.maxsize > 0 {
                    prop_assert!(len <= self.config.maxsize, "len {} over maxsize", len);
                }
            }
        }
        self.settle(None)
    }

    /// Writes `items` (with `mset` when `many`, else `set`), new values numbered in order.
    fn write(&mut self, items: &[(&'static str, Option<u64>)], many: bool) -> Result<(), TestCaseError> {
        let items: Vec<(&'static str, u64, Option<u64>)> = items
            .iter()
            .map(|(key, ttl)| {
                self.next_value += 1;
                (*key, self.next_value, *ttl)
            })
            .collect();
        let entries: Vec<(&str, Entry)> = items
            .iter()
            .map(|(key, value, ttl)| (*key, Entry::new(StoredValue::new(*value), ttl.map(Duration::from_secs))))
            .collect();
        let overwrite = match items.as_slice() {
            [(key, _, _)] => self.model.exists(key),
            _ => false,
        };
        if many {
            self.adapter().mset(&entries).unwrap();
        } else {
            let (key, entry) = &entries[0];
            self.adapter().set(key, entry).unwrap();
        }
        for (key, value, ttl) in &items {
            self.model.set(key, *value, *ttl);
        }
        let written = match items.as_slice() {
            [(key, _, _)] => Some(*key),
            _ => None,
        };
        if overwrite && self.config.max_bytes == 0 {
            let heard = self.heard.lock().unwrap();
            prop_assert!(
                heard.iter().all(|(_, cause)| *cause != RemovalCause::Evicted),
                "an overwrite without a byte bound evicted: {:?}",
                *heard
            );
        }
        self.settle(written)
    }

    fn settle(&mut self, written: Option<&str>) -> Result<(), TestCaseError> {
        let told = std::mem::take(&mut *self.heard.lock().unwrap());
        self.model.settle(&told, written)?;
        self.told.extend(told);
        Ok(())
    }

    /// The invariants after every step.
    fn check(&self) -> Result<(), TestCaseError> {
        let mut actual = self.memory.keys();
        let mut expected: Vec<String> = self.model.keys().into_iter().map(str::to_owned).collect();
        if self.config.sharded() {
            // The order is only kept within each shard.
            actual.sort();
            expected.sort();
        }
        prop_assert_eq!(&actual, &expected, "keys");
        if self.config.maxsize > 0 {
            prop_assert!(self.model.len() <= self.config.maxsize, "the model holds {} entries", self.model.len());
        }
        let bytes = self.memory.bytes();
        prop_assert_eq!(bytes, self.model.bytes, "bytes");
        if self.config.max_bytes > 0 {
            prop_assert!(bytes <= self.config.max_bytes, "{} bytes, over max_bytes", bytes);
        }
        let count = |cause: RemovalCause| self.told.iter().filter(|(_, c)| *c == cause).count() as u64;
        let stats = self.memory.stats();
        let counted = [stats.evictions, stats.expirations, stats.replacements, stats.invalidations, stats.removals];
        let told = [
            count(RemovalCause::Evicted),
            count(RemovalCause::Expired),
            count(RemovalCause::Replaced),
            count(RemovalCause::Invalidated),
            count(RemovalCause::Removed),
        ];
        prop_assert_eq!(counted, told, "stats (evictions, expirations, replacements, invalidations, removals)");
        Ok(())
    }
}

/// Runs `ops`, then reads every key back and asks the length, checking the adapter against the
/// model after each step.
fn run(config: Config, ops: &[Op]) -> Result<Outcome, TestCaseError> {
    let mut run = Run::new(config);
    for (step, op) in ops.iter().enumerate() {
        run.step(step, op)?;
    }
    let keys = run.memory.keys();
    // Every key reads back as the model says, and nothing was evicted in place of an expired entry.
    let last = [Op::Mget((0..KEYS.len()).collect()), Op::Len];
    for (step, op) in last.iter().enumerate() {
        run.step(ops.len() + step, op)?;
    }
    Ok(Outcome { keys, told: run.told })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn memory_adapter_matches_the_model(
        policy in policy(),
        maxsize in 0usize..=4,
        max_bytes in max_bytes(),
        layer_ttl in 0u64..=3,
        ops in prop::collection::vec(op(), 1..100),
    ) {
        run(Config { policy, maxsize, max_bytes, layer_ttl }, &ops)?;
    }
}

// ===== the cases the model is about, spelled out =====

fn set(key: usize) -> Op {
    Op::Set { key, ttl: None }
}

fn events(told: &[Event]) -> Vec<(&str, RemovalCause)> {
    told.iter().map(|(key, cause)| (key.as_str(), *cause)).collect()
}

#[test]
fn fifo_with_an_expired_entry_in_the_middle_evicts_nothing_live() {
    // maxsize 3: a (forever), b (1s), c (forever); after 1s, writing d takes b's place.
    let ops = [set(0), Op::Set { key: 1, ttl: Some(1) }, set(2), Op::Advance(1), set(3), Op::Get(0)];
    let outcome = run(Config::new(EvictionPolicy::Fifo, 3), &ops).unwrap();
    assert_eq!(outcome.keys, ["a", "c", "d"]);
    assert_eq!(events(&outcome.told), [("b", RemovalCause::Expired)]);
}

#[test]
fn lru_with_reads_overwrites_and_expiry() {
    let ops = [
        set(0),
        set(1),
        Op::Get(0),
        set(2),
        Op::Exists(0),
        set(3),
        Op::Mget(vec![2, 3, 0]),
        Op::Advance(2),
        Op::Set { key: 4, ttl: Some(1) },
        Op::Advance(1),
        Op::Len,
    ];
    run(Config::new(EvictionPolicy::Lru, 2).layer_ttl(3), &ops).unwrap();
}

#[test]
fn a_zero_entry_ttl_deletes_and_flush_resets_order() {
    let ops = [
        set(0),
        set(1),
        Op::Set { key: 0, ttl: Some(0) },
        Op::Get(0),
        Op::Mset(vec![(2, None), (3, None), (2, Some(2))]),
        Op::Flush,
        set(5),
        set(4),
    ];
    for maxsize in 0..=4 {
        for policy in EvictionPolicy::ALL {
            for max_bytes in [0, 1000] {
                run(Config::new(policy, maxsize).max_bytes(max_bytes), &ops).unwrap();
            }
        }
    }
}

#[test]
fn s3_fifo_keeps_a_key_read_once_through_new_keys_that_fifo_evicts_it_for() {
    // a, b, c fill the cache; a is read once; d, e, f pass through.
    let ops = [set(0), set(1), set(2), Op::Get(0), set(3), set(4), set(5)];
    let s3_fifo = run(Config::new(EvictionPolicy::S3Fifo, 3), &ops).unwrap();
    // a moved to the main queue when the small queue gave it up; b, c, d left the small one.
    assert_eq!(s3_fifo.keys, ["a", "e", "f"]);
    let evicted = [("b", RemovalCause::Evicted), ("c", RemovalCause::Evicted), ("d", RemovalCause::Evicted)];
    assert_eq!(events(&s3_fifo.told), evicted);
    let fifo = run(Config::new(EvictionPolicy::Fifo, 3), &ops).unwrap();
    assert_eq!(fifo.keys, ["d", "e", "f"]);
}

#[test]
fn s3_fifo_sends_a_key_evicted_from_the_small_queue_and_written_again_to_the_main_queue() {
    // maxsize 2: c's write evicts a from the small queue (the ghost remembers it); a written
    // again enters the main queue, so b, then c and d leave the small queue instead.
    let ops = [set(0), set(1), set(2), set(0)];
    let outcome = run(Config::new(EvictionPolicy::S3Fifo, 2), &ops).unwrap();
    assert_eq!(outcome.keys, ["a", "c"], "main queue first");
    assert_eq!(events(&outcome.told), [("a", RemovalCause::Evicted), ("b", RemovalCause::Evicted)]);
    let ops = [set(0), set(1), set(2), set(0), set(3), set(4), set(5)];
    let outcome = run(Config::new(EvictionPolicy::S3Fifo, 2), &ops).unwrap();
    assert_eq!(outcome.keys, ["a", "f"]);
    // Without the ghost (never evicted before), the same key is just another new one.
    let ops = [set(1), set(2), set(0), set(3), set(4), set(5)];
    let outcome = run(Config::new(EvictionPolicy::S3Fifo, 2), &ops).unwrap();
    assert_eq!(outcome.keys, ["e", "f"]);
}

#[test]
fn s3_fifo_ghost_keeps_a_key_remembered_again_when_its_stale_entry_leaves() {
    // maxsize 4. e's write evicts a (the ghost: a). b deleted, a written again enters the main
    // queue (the ghost forgets it; its entry stays, stale), then is deleted and written again:
    // a new key, in the small queue. c, d, e read move to the main queue when f's write makes
    // room, and a leaves again: the ghost holds a's stale entry and the new one. b's write
    // evicts f: the stale entry of a is dropped, the new one kept, so a written again enters
    // the main queue (and c, the oldest there, goes), not the small one.
    let ops = [
        set(0),
        set(1),
        set(2),
        set(3),
        set(4),
        Op::Delete(1),
        set(0),
        Op::Delete(0),
        Op::Get(2),
        Op::Get(3),
        Op::Get(4),
        set(0),
        set(5),
        set(1),
        set(0),
    ];
    let outcome = run(Config::new(EvictionPolicy::S3Fifo, 4), &ops).unwrap();
    assert_eq!(outcome.keys, ["d", "e", "a", "b"]);
    let evicted = |key| (key, RemovalCause::Evicted);
    let removed = |key| (key, RemovalCause::Removed);
    let told = [evicted("a"), removed("b"), removed("a"), evicted("a"), evicted("f"), evicted("c")];
    assert_eq!(events(&outcome.told), told);
}

#[test]
fn s3_fifo_main_queue_gives_a_read_entry_another_round() {
    // maxsize 3: a and b, read in the small queue, move to the main one when d's write makes
    // room; c, never read, leaves and the ghost remembers it. a is read again; c written again
    // enters the main queue, and with one entry in the small queue the main one gives: a goes
    // round (its read spent), b (not read since) leaves. FIFO order in main would evict a.
    let ops = [set(0), Op::Get(0), set(1), Op::Get(1), set(2), set(3), Op::Get(0), set(2)];
    let outcome = run(Config::new(EvictionPolicy::S3Fifo, 3), &ops).unwrap();
    assert_eq!(outcome.keys, ["c", "a", "d"]);
    assert_eq!(events(&outcome.told), [("c", RemovalCause::Evicted), ("b", RemovalCause::Evicted)]);
}

#[test]
fn a_byte_bound_evicts_for_heavier_overwrites_and_refuses_an_entry_heavier_than_it() {
    // Each key is charged 1 + ENTRY_OVERHEAD + 40 × (value mod 7): values 1, 2, 3... weigh
    // 169, 209, 249, 289, 329 bytes.
    assert_eq!(ENTRY_OVERHEAD, 128);
    let (replaced, evicted) = (RemovalCause::Replaced, RemovalCause::Evicted);
    // 500 bytes: a (169) + b (209); a again (249): 458, fits; c (289): 747, over. FIFO evicts a
    // (498); LRU and S3-FIFO evict b (a was used again), then a (538 was still over). Then b
    // (329): FIFO holds b, c (618) and evicts c, though b was written first (b is spared);
    // LRU and S3-FIFO hold c, b (618) and evict c, S3-FIFO from its small queue (b, remembered
    // by the ghost, entered the main one).
    let ops = [set(0), set(1), set(0), set(2), set(1)];
    let cases = [
        (EvictionPolicy::Fifo, vec![("a", replaced), ("a", evicted), ("b", replaced), ("c", evicted)]),
        (EvictionPolicy::Lru, vec![("a", replaced), ("b", evicted), ("a", evicted), ("c", evicted)]),
        (EvictionPolicy::S3Fifo, vec![("a", replaced), ("b", evicted), ("a", evicted), ("c", evicted)]),
    ];
    for (policy, told) in cases {
        let outcome = run(Config::new(policy, 4).max_bytes(500), &ops).unwrap();
        assert_eq!(outcome.keys, ["b"], "{policy}");
        assert_eq!(events(&outcome.told), told, "{policy}");
    }

    // 300 bytes: the fifth value of a (329) is refused; its fourth goes.
    for policy in EvictionPolicy::ALL {
        let ops = [set(0), set(0), set(0), set(0), set(0)];
        let outcome = run(Config::new(policy, 4).max_bytes(300), &ops).unwrap();
        assert!(outcome.keys.is_empty(), "{policy}");
        assert_eq!(
            events(&outcome.told),
            [("a", replaced), ("a", replaced), ("a", replaced), ("a", replaced), ("a", evicted)]
        );
    }
}
