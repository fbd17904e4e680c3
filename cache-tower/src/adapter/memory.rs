//! [`MemoryAdapter`]: the in-process layer.
//!
//! # How it is built
//!
//! Keys are spread over a fixed number of *shards* by hash, each guarded by its own lock
//! (`memory/shard.rs`). Within a shard:
//!
//! * the items live in the hash table itself, one cache line each, so a FIFO hit reads one line;
//! * intrusive doubly linked lists keep the eviction order ([`EvictionPolicy`]): insertion order
//!   (FIFO), recency (LRU), or S3-FIFO's small and main queues, with a ghost queue of the hashes
//!   of keys the small queue evicted; the head is evicted first;
//! * an indexed binary min-heap orders the entries that have a TTL by expiry time. A `set`
//!   (or each key of an `mset`), an LRU read and a read that finds an expired entry at the top of
//!   its shard's heap first remove up to [`PURGE_BATCH`] expired entries from the top of the heap,
//!   and every `set`, `mset` and `delete` also sweeps one other shard (round robin, only if its
//!   lock is free). So expired entries are reclaimed without being read, with bounded
//!   work per operation and no background thread.
//!
//! Values are kept typed ([`StoredValue`]): a hit clones the stored value, it never parses.
//!
//! `maxsize` and `max_bytes` bound the whole adapter: shared counters hold the number of entries
//! and their weight, and a write that takes either past its bound evicts until both hold again —
//! from the shard it wrote to while that shard has other entries, else from the next shards. Small
//! caches (under 2 × [`MIN_SLOTS_PER_SHARD`] entries) use a single shard, so their eviction order
//! is exact across the whole cache; larger ones evict the entry the policy picks *in a shard*,
//! each S3-FIFO shard sizing its queues by its own entry count. See
//! `docs/adr/0002-sharded-memory-adapter.md` and `docs/adr/0011-memory-policies.md`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use foldhash::fast::RandomState;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::adapter::{AdapterStats, CacheAdapter};
use crate::clock::{Clock, saturating_nanos};
use crate::error::Result;
use crate::value::{Entry, StoredValue, effective_ttl};

mod shard;
mod tag_index;

use self::shard::{Found, NEVER, Removals, Shard, Window, hash_key};
use self::tag_index::TagIndex;

/// Why an entry left a [`MemoryAdapter`], as its removal listener hears it
/// ([`MemoryAdapterBuilder::on_removal`]) and its [`stats`](CacheAdapter::stats) count it.
///
/// ```
/// use cache_tower::adapter::RemovalCause;
///
/// assert_eq!(RemovalCause::Evicted.to_string(), "evicted");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Removed to make room: a write took the cache past `maxsize` or `max_bytes` (a new key, or
    /// with `max_bytes` a heavier value). Also a written entry that weighs more than the whole
    /// `max_bytes` and so was never kept.
    Evicted,
    /// Its TTL ran out (reclaimed when read, written near, swept or purged).
    Expired,
    /// A write gave the key a new value (the old one is gone). A write whose entry has no time
    /// left (a zero TTL), or weighs more than the whole `max_bytes`, removes the key's old value
    /// for this cause too.
    Replaced,
    /// The tower removed it because the value changed in a shared layer below (another process,
    /// or anyone, wrote the key in Redis), because the tower lost sight of such changes and
    /// emptied the layer, or because the tower was cleared (`clear`, here or in another process).
    Invalidated,
    /// Removed on request: `delete`, `flush`, or the tower's own `delete` and `flush`.
    Removed,
}

impl RemovalCause {
    /// How many causes there are.
    pub(crate) const COUNT: usize = 5;

    /// The cause in a word: `"evicted"`, `"expired"`, `"replaced"`, `"invalidated"`, `"removed"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Evicted => "evicted",
            Self::Expired => "expired",
            Self::Replaced => "replaced",
            Self::Invalidated => "invalidated",
            Self::Removed => "removed",
        }
    }
}

impl fmt::Display for RemovalCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a removal listener is: see [`MemoryAdapterBuilder::on_removal`].
type ListenerFn = dyn Fn(&str, RemovalCause) + Send + Sync;

/// A removal listener: see [`MemoryAdapterBuilder::on_removal`].
#[derive(Clone)]
struct RemovalListener(Arc<ListenerFn>);

impl fmt::Debug for RemovalListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RemovalListener")
    }
}

/// What a weigher is: see [`MemoryAdapterBuilder::weigher`].
type WeigherFn = dyn Fn(&str, &StoredValue) -> usize + Send + Sync;

/// A value weigher: see [`MemoryAdapterBuilder::weigher`].
#[derive(Clone)]
struct Weigher(Arc<WeigherFn>);

impl fmt::Debug for Weigher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Weigher")
    }
}

/// What a memory layer with `max_bytes` charges each entry for its own structures, besides the
/// key's length and the value's weight: the entry's line in the hash table (64 bytes), its record
/// in the eviction queues and expiry heap (32), the table's control byte and spare room (the
/// table is at most 7/8 full), and the reused-record list.
///
/// The process's memory also holds what the allocator keeps around the values (rounding,
/// fragmentation from values of many sizes coming and going), which no charge can see: the
/// benchmark runner's `memory/bounded-rss` scenario measures how far above `max_bytes` the
/// resident memory grows (BENCHMARKS.md); leave that much room.
pub const ENTRY_OVERHEAD: usize = 128;

/// Which entry a full [`MemoryAdapter`] evicts to make room for a new key.
///
/// Which to choose: [`S3Fifo`](Self::S3Fifo) keeps the most useful entries when some keys are
/// read far more than others (most caches) and when one-off reads (a scan, a batch job) pass
/// through; its hits cost what FIFO hits do. [`Fifo`](Self::Fifo), the default (the original
/// library's), and [`Lru`](Self::Lru) keep the orders of their names — exactly across the cache
/// when it has one shard (`maxsize` under 128), within each shard otherwise; an LRU hit takes its
/// shard's write lock to reorder.
///
/// ```
/// use cache_tower::{MemoryAdapter, adapter::EvictionPolicy};
///
/// let memory = MemoryAdapter::builder().maxsize(10_000).policy(EvictionPolicy::S3Fifo).build();
/// assert_eq!(memory.policy(), EvictionPolicy::S3Fifo);
/// assert_eq!("s3-fifo".parse(), Ok(EvictionPolicy::S3Fifo));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum EvictionPolicy {
    /// First in, first out: the oldest entry goes. Reads and overwrites keep an entry's place.
    #[default]
    Fifo,
    /// Least recently used: `get`, `mget` and `set` make a key the most recent; `exists` does
    /// not.
    Lru,
    /// S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP 2023): new
    /// keys enter a small FIFO queue (3% of the entries); those read again before they
    /// reach its end move to the main queue, the others leave, remembered by a ghost queue so
    /// that a key soon wanted again goes straight to the main queue. The main queue is a FIFO
    /// that gives each entry read since its last turn another round (a CLOCK, counting up to
    /// three reads). A hit counts the read in the entry itself, under the shard's read lock.
    S3Fifo,
}

impl EvictionPolicy {
    /// The policy's name in a configuration: `"fifo"`, `"lru"` or `"s3-fifo"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fifo => "fifo",
            Self::Lru => "lru",
            Self::S3Fifo => "s3-fifo",
        }
    }

    /// Every policy, in the order the documentation lists them.
    pub const ALL: [EvictionPolicy; 3] = [Self::Fifo, Self::Lru, Self::S3Fifo];
}

impl fmt::Display for EvictionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EvictionPolicy {
    type Err = String;

    /// A policy from its [`name`](Self::name); the error lists the names.
    fn from_str(name: &str) -> std::result::Result<Self, String> {
        Self::ALL.into_iter().find(|policy| policy.name() == name).ok_or_else(|| {
            let names: Vec<String> = Self::ALL.iter().map(|policy| format!("{:?}", policy.name())).collect();
            format!("unknown policy {name:?}; expected one of {}", names.join(", "))
        })
    }
}

/// A shard locked for a lookup: see [`MemoryAdapter::lock_for_lookup`].
pub(crate) struct Lookup<'a> {
    shard: RwLockReadGuard<'a, Shard>,
    key: &'a str,
    hash: u64,
    clock: &'a Clock,
    tags: &'a TagIndex,
}

impl Lookup<'_> {
    /// The value stored under the key the shard was locked for, if it is live and fresh.
    #[inline]
    pub(crate) fn value(&self) -> Option<&StoredValue> {
        self.item().filter(|item| item.fresh(&mut Now::new(self.clock))).map(|item| &item.value)
    }

    /// The copy under the key, if live and fresh, with what an eager refresh asks of it.
    #[inline]
    pub(crate) fn fresh_copy(&self) -> Option<FreshCopy<'_>> {
        let item = self.item()?;
        item.fresh(&mut Now::new(self.clock)).then_some(FreshCopy { item, clock: self.clock })
    }

    /// The item stored under the key the shard was locked for, if it is live (and, tagged,
    /// none of its tags was invalidated since: `memory/tag_index.rs`).
    #[inline]
    fn item(&self) -> Option<&shard::Item> {
        self.shard.live(self.hash, self.key).filter(|item| self.tags.is_current(&item.value))
    }
}

/// A fresh copy found by a [`Lookup`], for the get-or-load fast lanes and their eager refresh.
pub(crate) struct FreshCopy<'a> {
    item: &'a shard::Item,
    // Only the clock, not the freshness check's `Now`: carrying that made a memoized hit on a
    // copy being refreshed 1.10x–1.16x a plain hit instead of 1.01x–1.04x (filtered runs of
    // `memoize/refreshing-hit`). A second clock read happens only with a stale window.
    clock: &'a Clock,
}

impl<'a> FreshCopy<'a> {
    /// The stored value.
    #[inline]
    pub(crate) fn value(&self) -> &'a StoredValue {
        &self.item.value
    }

    /// How long the copy stays fresh; `None` without a TTL.
    #[inline]
    pub(crate) fn fresh_left(&self) -> Option<Duration> {
        self.item.entry_ttl(&mut Now::new(self.clock))
    }

    /// Whether an eager refresh of this copy was started (or the fail-safe kept it): it is not
    /// refreshed ahead again, a new value comes as a new copy.
    #[inline]
    pub(crate) fn refresh_started(&self) -> bool {
        self.item.refresh_started()
    }

    /// Marks an eager refresh of this copy started: `true` for the first caller only, who then
    /// starts it.
    pub(crate) fn start_refresh(&self) -> bool {
        self.item.start_refresh()
    }
}

/// Expired entries removed at most per operation, so no single call pays for a mass expiry.
const PURGE_BATCH: usize = 8;
/// Keys an invalidated tag hid that a write reclaims at most (see `memory/tag_index.rs`).
const RECLAIM_BATCH: usize = 32;
/// What an entry is assumed to weigh when only `max_bytes` says how many there will be (to choose
/// the number of shards): generous, so that large values do not leave shards nearly empty.
const BYTES_PER_ENTRY_GUESS: usize = 4096;
/// A shard is only worth having when it holds at least this many entries.
const MIN_SLOTS_PER_SHARD: usize = 64;

/// The in-process layer: a bounded or unbounded map of typed values, FIFO, LRU or S3-FIFO, with
/// a TTL.
///
/// Cloning a `MemoryAdapter` shares its storage, so one adapter can sit in several towers and a
/// test can keep a handle on a layer it gave away.
///
/// * `maxsize`: the most entries kept (`0`, the default: no limit). Writing a new key into a full
///   cache evicts one entry, the one the policy picks; never the key just written. Overwriting
///   a present key never evicts.
/// * `policy` ([`EvictionPolicy`]): FIFO (the default) evicts the oldest entry, LRU the least
///   recently used, S3-FIFO the one least likely to be read again, judged by how often entries
///   are read. `lru(true)` is the original library's spelling of the LRU policy.
/// * `ttl`: how long an entry lives (`None` or zero: forever). An expired entry is absent for
///   every operation and is reclaimed without having to be read.
/// * `namespace`: reported to the tower and to stats. Keys are stored as given: the prefix is the
///   same for every key of an adapter, so adding it would only cost a copy per operation.
///
/// ```
/// use std::time::Duration;
/// use cache_tower::{CacheTower, MemoryAdapter};
///
/// let memory = MemoryAdapter::builder()
///     .maxsize(2)
///     .lru(true)
///     .ttl(Duration::from_secs(60))
///     .namespace("session:")
///     .build();
/// let tower = CacheTower::new();
/// tower.add_layer(memory);
/// tower.set("a", 1)?;
/// tower.set("b", 2)?;
/// tower.get::<i32>("a");    // "a" is now the most recently used
/// tower.set("c", 3)?;        // evicts "b"
/// assert_eq!(tower.get::<i32>("b"), None);
/// assert_eq!(tower.get::<i32>("a"), Some(1));
/// # Ok::<(), cache_tower::Error>(())
/// ```
#[derive(Clone)]
pub struct MemoryAdapter {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Padded<RwLock<Shard>>]>,
    shard_mask: usize,
    hasher: RandomState,
    namespace: String,
    ttl: Option<Duration>,
    /// How long an entry is kept past its TTL as a stale value (unless it has a window of its own).
    stale: Duration,
    maxsize: usize,
    /// The most bytes kept (`0`: no limit).
    max_bytes: usize,
    weigher: Option<Weigher>,
    policy: EvictionPolicy,
    clock: Clock,
    listener: Option<RemovalListener>,
    /// Whether the listener panicked once (the first panic is logged).
    listener_panicked: AtomicBool,
    /// The sum of the entries' weights, in every shard.
    bytes: AtomicUsize,
    /// Entries stored, in every shard (expired ones included until reclaimed).
    len: AtomicUsize,
    /// Whether an entry with a TTL was ever written (else there is nothing to sweep).
    expiring: AtomicBool,
    /// Which shard the next write sweeps for expired entries.
    sweep_cursor: AtomicUsize,
    /// The keys of the entries carrying each tag (`memory/tag_index.rs`).
    tags: TagIndex,
}

/// Keeps each shard's lock on its own cache lines, so threads on different shards do not slow
/// each other down.
#[repr(align(128))]
struct Padded<T>(T);

/// Builds a [`MemoryAdapter`]. Every setting is optional.
///
/// ```
/// use cache_tower::MemoryAdapter;
///
/// let memory = MemoryAdapter::builder().maxsize(10_000).build();
/// assert_eq!(memory.maxsize(), 10_000);
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct MemoryAdapterBuilder {
    namespace: String,
    ttl: Option<Duration>,
    stale: Duration,
    maxsize: usize,
    max_bytes: usize,
    weigher: Option<Weigher>,
    policy: EvictionPolicy,
    clock: Clock,
    listener: Option<RemovalListener>,
}

impl MemoryAdapterBuilder {
    /// The most entries kept; `0` (the default) means no limit.
    pub fn maxsize(mut self, maxsize: usize) -> Self {
        self.maxsize = maxsize;
        self
    }

    /// The most bytes the entries may weigh together; `0` (the default) means no limit. Each
    /// entry is charged its key's length, [`ENTRY_OVERHEAD`] for the layer's own structures, and
    /// its value's weight: what the [`weigher`](Self::weigher) says, or else the estimate of
    /// [`StoredValue::weight`] (about what the value holds; it costs about an encode per write).
    /// A write that takes the total past `max_bytes` evicts (the policy picks, never the entry just
    /// written — though two threads writing large entries into different shards at once may each
    /// evict the other's), so with this bound an overwrite by a heavier value can evict other
    /// keys. An entry weighing more than `max_bytes` by itself is not kept: the write removes the
    /// key's old value and the listener hears the new one evicted (so a `max_bytes` under
    /// [`ENTRY_OVERHEAD`] keeps nothing). A weight is taken when the entry is written; an entry
    /// is charged at most 4 GiB (`u32::MAX` bytes), what its slot in the table keeps.
    ///
    /// With both `maxsize` and `max_bytes`, both hold.
    ///
    /// ```
    /// use cache_tower::{CacheTower, MemoryAdapter};
    ///
    /// let memory = MemoryAdapter::builder().max_bytes(64 * 1024 * 1024).build();
    /// let tower = CacheTower::new();
    /// tower.add_layer(memory.clone());
    /// tower.set("page", "x".repeat(100_000))?;
    /// assert!(memory.bytes() > 100_000);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Weighs each value for [`max_bytes`](Self::max_bytes) with `weigher` (given the key and the
    /// value) instead of the estimate of [`StoredValue::weight`]: say, the length of a string you
    /// know every value is, read through [`StoredValue::typed`]. The key's length and
    /// [`ENTRY_OVERHEAD`] are added to what it returns. It runs on every write, outside the
    /// shard's lock.
    ///
    /// ```
    /// use cache_tower::{CacheTower, MemoryAdapter};
    ///
    /// let memory = MemoryAdapter::builder()
    ///     .max_bytes(1_000_000)
    ///     .weigher(|_key, value| value.typed::<String>().map_or_else(|| value.weight(), String::capacity))
    ///     .build();
    /// let tower = CacheTower::new();
    /// tower.add_layer(memory.clone());
    /// tower.set("k", String::from("value"))?;
    /// assert_eq!(memory.bytes(), "k".len() + cache_tower::adapter::ENTRY_OVERHEAD + 5);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn weigher(mut self, weigher: impl Fn(&str, &StoredValue) -> usize + Send + Sync + 'static) -> Self {
        self.weigher = Some(Weigher(Arc::new(weigher)));
        self
    }

    /// The original library's switch: `true` is [`EvictionPolicy::Lru`], `false`
    /// [`EvictionPolicy::Fifo`] (the default). The later of `lru` and [`policy`](Self::policy)
    /// wins.
    pub fn lru(mut self, lru: bool) -> Self {
        self.policy = if lru { EvictionPolicy::Lru } else { EvictionPolicy::Fifo };
        self
    }

    /// Which entry a full cache evicts (default: [`EvictionPolicy::Fifo`]).
    pub fn policy(mut self, policy: EvictionPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long entries live; `Duration::ZERO` (the default) means they never expire.
    ///
    /// A TTL over [`MAX_TTL`](crate::adapter::MAX_TTL) (about 285,000 years) is clamped to it, so that
    /// [`build`](Self::build) cannot fail: no entry could tell the difference, and entries
    /// backfilled from this layer into a Redis layer stay within what Redis accepts. (The JSON
    /// configuration rejects such a TTL instead, as a mistake in the file.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_tower::{MemoryAdapter, adapter::{CacheAdapter, MAX_TTL}};
    ///
    /// let memory = MemoryAdapter::builder().ttl(Duration::MAX).build();
    /// assert_eq!(memory.ttl(), Some(MAX_TTL));
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = (!ttl.is_zero()).then_some(ttl.min(crate::config::MAX_TTL));
        self
    }

    /// How long an entry is kept past its TTL as a *stale* value (default: zero, none): plain
    /// reads (`get`, `mget`, `exists`, the fast lane) treat a stale entry as absent, while
    /// get-or-set with a fail-safe ([`LoadOptions`](crate::LoadOptions)) returns it when the
    /// computation fails. Only entries with a TTL have a stale window. An entry written with a
    /// window of its own ([`Entry::with_stale_window`]) keeps that one. Clamped to
    /// [`MAX_TTL`](crate::adapter::MAX_TTL).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_tower::{MemoryAdapter, adapter::{CacheAdapter, Entry, StoredValue}};
    /// use cache_tower::clock::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let memory = MemoryAdapter::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .stale(Duration::from_secs(600))
    ///     .clock(clock.clone())
    ///     .build();
    /// memory.set("k", &Entry::new(StoredValue::new(1), None))?;
    /// clock.advance(Duration::from_secs(61));
    /// assert!(memory.get("k")?.is_none(), "stale: a miss for plain reads");
    /// assert!(memory.get_stale("k")?.is_some_and(|entry| entry.is_stale()));
    /// clock.advance(Duration::from_secs(600));
    /// assert!(memory.get_stale("k")?.is_none(), "past its stale window: gone");
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn stale(mut self, stale: Duration) -> Self {
        self.stale = stale.min(crate::config::MAX_TTL);
        self
    }

    /// The layer's namespace (default: empty).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Calls `listener` with the key and the [`RemovalCause`] of every entry that leaves the
    /// layer, and of every value a write replaces: exactly once each, after the operation that
    /// removed it has released the shard's lock, on the thread of that operation (a `set` that
    /// evicts, a `get` that finds an entry expired, a `flush`...). A listener may use the adapter
    /// itself.
    ///
    /// A panic in the listener is caught, so that the operation that removed the entry finishes
    /// (a `flush` empties every shard, an `mset` writes every key) and every other removal is
    /// still told. The first such panic of an adapter is logged as a `tracing` warning; the
    /// listener keeps being called.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use cache_tower::{MemoryAdapter, adapter::{CacheAdapter, Entry, RemovalCause, StoredValue}};
    ///
    /// let heard = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&heard);
    /// let memory = MemoryAdapter::builder()
    ///     .maxsize(1)
    ///     .on_removal(move |key, cause| log.lock().unwrap().push((key.to_owned(), cause)))
    ///     .build();
    /// let one = Entry::new(StoredValue::new(1), None);
    /// memory.set("a", &one)?;
    /// memory.set("a", &one)?;
    /// memory.set("b", &one)?;
    /// memory.delete("b")?;
    /// assert_eq!(*heard.lock().unwrap(), [
    ///     ("a".to_owned(), RemovalCause::Replaced),
    ///     ("a".to_owned(), RemovalCause::Evicted),
    ///     ("b".to_owned(), RemovalCause::Removed),
    /// ]);
    /// assert_eq!(memory.stats().evictions, 1);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn on_removal(mut self, listener: impl Fn(&str, RemovalCause) + Send + Sync + 'static) -> Self {
        self.listener = Some(RemovalListener(Arc::new(listener)));
        self
    }

    /// The clock TTLs are measured with (default: the system's monotonic clock).
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Builds the adapter.
    pub fn build(self) -> MemoryAdapter {
        let shard_count = shard_count(self.maxsize, self.max_bytes);
        let hasher = RandomState::default();
        let listened = self.listener.is_some();
        let shards =
            (0..shard_count).map(|_| Padded(RwLock::new(Shard::new(hasher.clone(), self.policy, listened)))).collect();
        MemoryAdapter {
            inner: Arc::new(Inner {
                shards,
                shard_mask: shard_count - 1,
                hasher,
                namespace: self.namespace,
                ttl: self.ttl,
                stale: self.stale,
                maxsize: self.maxsize,
                max_bytes: self.max_bytes,
                weigher: self.weigher,
                policy: self.policy,
                clock: self.clock,
                listener: self.listener,
                listener_panicked: AtomicBool::new(false),
                bytes: AtomicUsize::new(0),
                len: AtomicUsize::new(0),
                expiring: AtomicBool::new(false),
                sweep_cursor: AtomicUsize::new(0),
                tags: TagIndex::default(),
            }),
        }
    }
}

/// How many shards: enough that threads rarely meet on one lock, but never so many that a
/// shard holds fewer than [`MIN_SLOTS_PER_SHARD`] entries. Always a power of two. A bound in
/// bytes alone is read as entries of [`BYTES_PER_ENTRY_GUESS`] each, so that a small byte bound
/// does not spread a handful of entries over many shards (evictions are chosen within a shard).
fn shard_count(maxsize: usize, max_bytes: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(4, usize::from);
    let wanted = (cores * 8).next_power_of_two().clamp(16, 256);
    let maxsize = match (maxsize, max_bytes) {
        (0, 0) => return wanted,
        (0, bytes) => (bytes / BYTES_PER_ENTRY_GUESS).max(1),
        (entries, 0) => entries,
        (entries, bytes) => entries.min((bytes / BYTES_PER_ENTRY_GUESS).max(1)),
    };
    let most = (maxsize / MIN_SLOTS_PER_SHARD).max(1);
    // The largest power of two not above `most`.
    let most = 1usize << (usize::BITS - 1 - most.leading_zeros());
    wanted.min(most)
}

impl Default for MemoryAdapter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryAdapter {
    /// An unbounded FIFO adapter with no TTL and an empty namespace.
    ///
    /// ```
    /// let memory = cache_tower::MemoryAdapter::new();
    /// assert_eq!(memory.maxsize(), 0);
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to set maxsize, policy, TTL, namespace and clock.
    pub fn builder() -> MemoryAdapterBuilder {
        MemoryAdapterBuilder::default()
    }

    /// The most entries kept (`0`: no limit).
    pub fn maxsize(&self) -> usize {
        self.inner.maxsize
    }

    /// The most bytes the entries may weigh together (`0`: no limit): see
    /// [`MemoryAdapterBuilder::max_bytes`].
    pub fn max_bytes(&self) -> usize {
        self.inner.max_bytes
    }

    /// What the entries weigh together, as [`MemoryAdapterBuilder::max_bytes`] charges them (`0`
    /// without that bound: nothing is weighed). Expired entries count until reclaimed.
    pub fn bytes(&self) -> usize {
        self.inner.bytes.load(Ordering::Acquire)
    }

    /// Which entry a full cache evicts.
    pub fn policy(&self) -> EvictionPolicy {
        self.inner.policy
    }

    /// Whether the policy is [`EvictionPolicy::Lru`] (the original library's `lru` setting).
    pub fn is_lru(&self) -> bool {
        self.inner.policy == EvictionPolicy::Lru
    }

    /// The number of live entries. Expired entries are reclaimed first, so they do not count.
    ///
    /// ```
    /// let memory = cache_tower::MemoryAdapter::new();
    /// assert_eq!(memory.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.purge_expired();
        self.inner.len.load(Ordering::Acquire)
    }

    /// Whether no live entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every expired entry now, and returns how many there were; also removes (not
    /// counted in the return) every entry an invalidated tag hides ([`CacheAdapter::invalidate_tag`]). Expired entries are
    /// reclaimed anyway as the adapter is used; call this to free their memory when the adapter
    /// sits idle.
    ///
    /// ```
    /// let memory = cache_tower::MemoryAdapter::new();
    /// assert_eq!(memory.purge_expired(), 0);
    /// ```
    pub fn purge_expired(&self) -> usize {
        self.reclaim(usize::MAX);
        let now = self.inner.clock.now_nanos();
        (0..self.inner.shards.len())
            .map(|index| self.write_shard(index, |shard| shard.purge_expired(now, usize::MAX)))
            .sum()
    }

    /// The keys of the live entries of every shard, within each shard in the order the policy
    /// would evict them were nothing read (FIFO and LRU: oldest or least recently used first;
    /// S3-FIFO: its main queue, then its small one). Meant for tests and debugging: it locks each
    /// shard in turn.
    pub fn keys(&self) -> Vec<String> {
        self.reclaim(usize::MAX);
        let now = self.inner.clock.now_nanos();
        self.inner.shards.iter().flat_map(|shard| shard.0.read().keys(now)).collect()
    }

    /// Removes `key`, for `cause` (a `delete`, or the tower's invalidation).
    pub(crate) fn remove(&self, key: &str, cause: RemovalCause) {
        self.remove_unless(key, cause, |_| false);
    }

    /// Removes `key` for `cause`, unless it holds a live value that `keep` accepts — checked
    /// and removed under one lock (the tower keeps a copy that still equals the shared value).
    pub(crate) fn remove_unless(&self, key: &str, cause: RemovalCause, keep: impl FnOnce(&StoredValue) -> bool) {
        let hash = self.hash(key);
        let mut now = Now::new(&self.inner.clock);
        self.write_shard(self.shard_index(hash), |shard| {
            if let Found::Live(item) = shard.read(hash, key, &mut now)
                && keep(&item.value)
            {
                return;
            }
            shard.remove_key(hash, key, cause, &mut now);
        });
        self.sweep_another_shard();
    }

    /// Removes every entry, for `cause` (a `flush`, or the tower's invalidation).
    pub(crate) fn remove_all(&self, cause: RemovalCause) {
        for index in 0..self.inner.shards.len() {
            self.write_shard(index, |shard| shard.clear(cause, &mut Now::new(&self.inner.clock)));
        }
        self.inner.tags.clear();
    }

    /// Removes, of up to `most` keys that invalidations queued, the entries no longer current
    /// (a tag of theirs was invalidated since they got it); the listener hears
    /// [`RemovalCause::Invalidated`]. The keys are taken shard by shard, each shard locked once.
    fn reclaim(&self, most: usize) {
        if !self.inner.tags.has_to_reclaim() {
            return;
        }
        let keys = self.inner.tags.take_to_reclaim(most);
        let mut placed: Vec<(usize, u64, &str)> = keys
            .iter()
            .map(|key| {
                let hash = self.hash(key);
                (self.shard_index(hash), hash, &**key)
            })
            .collect();
        placed.sort_unstable_by_key(|(index, ..)| *index);
        let tags = &self.inner.tags;
        let mut removals = Removals::new();
        let mut now = Now::new(&self.inner.clock);
        for group in placed.chunk_by(|a, b| a.0 == b.0) {
            let mut shard = self.inner.shards[group[0].0].0.write();
            let before = (shard.len, shard.bytes);
            for &(_, hash, key) in group {
                shard.remove_key_if(hash, key, RemovalCause::Invalidated, &mut now, |value| !tags.is_current(value));
            }
            removals.extend(self.settle_untold(shard, before));
        }
        tags.reclaimed(keys.len());
        self.tell(removals);
    }

    /// Whether the entry of `key` (live or not yet reclaimed) carries `tag`; a plain lookup
    /// under the shard's read lock, which changes no order.
    fn carries(&self, key: &str, tag: &str) -> bool {
        let hash = self.hash(key);
        let mut now = Now::new(&self.inner.clock);
        let shard = self.shard(hash).read();
        matches!(shard.read(hash, key, &mut now), Found::Live(item) if item.value.has_tag(tag))
    }

    #[inline]
    fn hash(&self, key: &str) -> u64 {
        hash_key(&self.inner.hasher, key.as_bytes())
    }

    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        // hashbrown uses the lowest and the highest bits of the hash; take the shard from the
        // middle so the two do not correlate.
        (hash >> 32) as usize & self.inner.shard_mask
    }

    #[inline]
    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        &self.inner.shards[self.shard_index(hash)].0
    }

    /// Runs `edit` under shard `index`'s write lock; see [`settle`](Self::settle).
    fn write_shard<R>(&self, index: usize, edit: impl FnOnce(&mut Shard) -> R) -> R {
        let mut shard = self.inner.shards[index].0.write();
        let before = (shard.len, shard.bytes);
        let outcome = edit(&mut shard);
        self.settle(shard, before);
        outcome
    }

    /// Ends a write to a shard that held `before` entries and bytes: keeps the adapter's counts
    /// in step, releases the lock, then tells the listener what the write removed.
    fn settle(&self, shard: RwLockWriteGuard<'_, Shard>, before: (usize, usize)) {
        let removals = self.settle_untold(shard, before);
        self.tell(removals);
    }

    /// [`settle`](Self::settle), returning what the listener is to be told instead of telling it.
    fn settle_untold(&self, mut shard: RwLockWriteGuard<'_, Shard>, before: (usize, usize)) -> Removals {
        count(&self.inner.len, before.0, shard.len);
        count(&self.inner.bytes, before.1, shard.bytes);
        shard.take_removals()
    }

    /// Tells the listener of `removals`, every one even if a call panics (see
    /// [`MemoryAdapterBuilder::on_removal`]).
    fn tell(&self, removals: Removals) {
        let Some(RemovalListener(listener)) = &self.inner.listener else { return };
        for (key, cause) in removals {
            let told = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| listener(key.as_str(), cause)));
            if let Err(payload) = told {
                if !self.inner.listener_panicked.swap(true, Ordering::Relaxed) {
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::warn!(
                        namespace = %self.inner.namespace,
                        cause = cause.name(),
                        panic = %message,
                        "a memory layer's removal listener panicked (caught; later panics are not logged)"
                    );
                }
            }
        }
    }

    /// Whether the adapter holds more than `maxsize` entries or `max_bytes` bytes, counting
    /// changes a locked shard has not added to the shared counts yet.
    fn over_bounds(&self, len_change: isize, bytes_change: isize) -> bool {
        let Inner { maxsize, max_bytes, .. } = *self.inner;
        let over = |bound: usize, total: &AtomicUsize, change: isize| {
            bound > 0 && total.load(Ordering::Acquire).saturating_add_signed(change) > bound
        };
        over(maxsize, &self.inner.len, len_change) || over(max_bytes, &self.inner.bytes, bytes_change)
    }

    /// After a write of the entry of record `written` at shard `start`: while the adapter is over
    /// its bounds, evict one entry (an expired one when the shard has one), from `start` when it
    /// has another entry than the one written, else from the next shard that has any.
    fn evict_over_limit(&self, start: usize, written: u32) {
        let mut now = Now::new(&self.inner.clock);
        while self.over_bounds(0, 0) {
            let shards = self.inner.shards.len();
            let evicted = (0..shards).any(|offset| {
                let index = (start + offset) & self.inner.shard_mask;
                // In `start`, spare the entry just written.
                let spare = (offset == 0).then_some(written);
                self.write_shard(index, |shard| shard.evict_one(&mut now, spare))
            });
            if !evicted {
                return;
            }
        }
    }

    /// What the entry of `key` holding `value` is charged against `max_bytes` (`0` without it).
    fn weigh(&self, key: &str, value: &StoredValue) -> usize {
        if self.inner.max_bytes == 0 {
            return 0;
        }
        let value = match &self.inner.weigher {
            Some(Weigher(weigher)) => weigher(key, value),
            None => value.weight(),
        };
        key.len().saturating_add(ENTRY_OVERHEAD).saturating_add(value)
    }

    /// When an entry written now leaves (its TTL, then its stale window, from now), and its
    /// stale window; `None` when it is already expired.
    fn expiry(&self, entry: &Entry, now: &mut Now<'_>) -> Option<(u64, Window)> {
        match effective_ttl(self.inner.ttl, entry.ttl()) {
            None => Some((NEVER, Window::NONE)),
            Some(ttl) if ttl.is_zero() => None,
            Some(ttl) => Some(self.life(ttl, entry.stale_window().unwrap_or(self.inner.stale), now)),
        }
    }

    /// The expiry time and stale window of an entry fresh for `ttl` from now, then stale for
    /// `window`.
    fn life(&self, ttl: Duration, window: Duration, now: &mut Now<'_>) -> (u64, Window) {
        let window = Window::new(window);
        let fresh_until = now.get().saturating_add(saturating_nanos(ttl)).min(NEVER - 1);
        (fresh_until.saturating_add(window.nanos()).min(NEVER - 1), window)
    }

    /// Makes the entry of `key` fresh for `fresh_for` more, then stale for `window`, if it still
    /// holds `same` (see `Shard::keep`): how get-or-set's fail-safe keeps the stale value it
    /// served from asking the failing source again at once. Returns whether it did.
    pub(crate) fn keep(&self, key: &str, same: &StoredValue, fresh_for: Duration, window: Duration) -> bool {
        let life = self.life(fresh_for, window, &mut Now::new(&self.inner.clock));
        let hash = self.hash(key);
        if !self.inner.expiring.load(Ordering::Relaxed) {
            self.inner.expiring.store(true, Ordering::Relaxed);
        }
        self.write_shard(self.shard_index(hash), |shard| shard.keep(hash, key, same, life))
    }

    /// Makes every entry stale now, for what it has left but at most the layer's stale window
    /// (an entry without a TTL: the window): plain reads miss them from now on, get-or-set's
    /// fail-safe may still fall back on them. The tower does this instead of clearing the layer
    /// when it loses sight of the changes of a shared layer below (docs/architecture.md §15).
    pub(crate) fn demote(&self) {
        let now = self.inner.clock.now_nanos();
        let cap = saturating_nanos(self.inner.stale);
        self.inner.expiring.store(true, Ordering::Relaxed);
        for index in 0..self.inner.shards.len() {
            self.write_shard(index, |shard| shard.demote_all(now, cap));
        }
    }

    /// Sweeps expired entries of one shard after a write, if nobody holds its lock.
    fn sweep_another_shard(&self) {
        if self.inner.shards.len() == 1 || !self.inner.expiring.load(Ordering::Relaxed) {
            return;
        }
        let index = self.inner.sweep_cursor.fetch_add(1, Ordering::Relaxed) & self.inner.shard_mask;
        if let Some(mut shard) = self.inner.shards[index].0.try_write() {
            if shard.has_expiring() {
                let before = (shard.len, shard.bytes);
                shard.purge_expired(self.inner.clock.now_nanos(), PURGE_BATCH);
                self.settle(shard, before);
            }
        }
    }

    fn write_one(&self, key: &str, entry: &Entry) {
        let mut now = Now::new(&self.inner.clock);
        let hash = self.hash(key);
        let index = self.shard_index(hash);
        let expiry = self.expiry(entry, &mut now);
        let weight = self.weigh(key, entry.value());
        if expiry.is_some_and(|(expires_at, _)| expires_at != NEVER) && !self.inner.expiring.load(Ordering::Relaxed) {
            self.inner.expiring.store(true, Ordering::Relaxed);
        }
        let tag_set = entry.value().tag_set();
        if let Some(tag_set) = tag_set {
            // Noted before it is stored: an invalidation from now on queues the key.
            let entries = self.inner.len.load(Ordering::Acquire);
            self.inner.tags.add(key, tag_set.names(), entries, |key, tag| self.carries(key, tag));
        }
        let mut shard = self.inner.shards[index].0.write();
        let before = (shard.len, shard.bytes);
        shard.purge_expired_lazily(&mut now);
        // A value whose tag was invalidated since it was tagged is not stored (it replaces the
        // key's old value by nothing), checked under the shard's lock.
        let invalidated = tag_set.is_some_and(|tag_set| {
            !self.inner.tags.may_write(tag_set.stamp()) || !self.inner.tags.is_current(entry.value())
        });
        let written = match expiry {
            Some(_) if invalidated => {
                shard.remove_key(hash, key, RemovalCause::Replaced, &mut now);
                None
            }
            Some(_) if weight > self.inner.max_bytes && self.inner.max_bytes > 0 => {
                shard.refuse(hash, key, &mut now);
                None
            }
            Some(life) => {
                // An item keeps its weight in 32 bits: one over 4 GiB is charged 4 GiB.
                let weight = u32::try_from(weight).unwrap_or(u32::MAX);
                Some(shard.upsert(key, hash, entry.value().clone(), life, weight, &mut now))
            }
            None => {
                shard.remove_key(hash, key, RemovalCause::Replaced, &mut now);
                None
            }
        };
        if let Some(written) = written {
            // Make room in this shard under the same lock, as long as it has other entries: the
            // common case of a full cache costs one lock and no change of the shared counts.
            while self.over_bounds(shard.len as isize - before.0 as isize, shard.bytes as isize - before.1 as isize)
                && shard.evict_one(&mut now, Some(written))
            {}
        }
        self.settle(shard, before);
        if self.inner.tags.has_to_reclaim() {
            self.reclaim(RECLAIM_BATCH);
        }
        if let Some(written) = written {
            self.evict_over_limit(index, written);
        }
    }

    /// Locks the shard of `key` for a plain lookup, when that is all a read of it takes: a FIFO
    /// or S3-FIFO adapter whose shard has nothing expired (an LRU hit must reorder, and an expired
    /// entry must be reclaimed, under the write lock: `None`, and the caller reads the normal
    /// way).
    ///
    /// Every FIFO and S3-FIFO read starts here, and the guard lets the tower clone a hit straight into its
    /// caller's return value, the one copy a hit has to make.
    #[inline]
    pub(crate) fn lock_for_lookup<'a>(&'a self, key: &'a str) -> Option<Lookup<'a>> {
        if self.is_lru() {
            return None;
        }
        self.lookup_at(key, self.hash(key))
    }

    /// [`lock_for_lookup`](Self::lock_for_lookup) of a FIFO or S3-FIFO adapter, the hash known.
    #[inline(always)]
    fn lookup_at<'a>(&'a self, key: &'a str, hash: u64) -> Option<Lookup<'a>> {
        let shard = self.shard(hash).read();
        if shard.top_expired(&mut Now::new(&self.inner.clock)) {
            return None;
        }
        Some(Lookup { shard, key, hash, clock: &self.inner.clock, tags: &self.inner.tags })
    }

    /// Reads `key` and hands its item to `found` (under the shard's lock), for live entries:
    /// fresh ones only, unless `stale_too`.
    fn read<R>(&self, key: &str, stale_too: bool, found: impl FnOnce(&shard::Item, &mut Now<'_>) -> R) -> Option<R> {
        self.read_live(key, |item, now| (stale_too || item.fresh(now)).then(|| found(item, now))).flatten()
    }

    /// Reads `key` and hands its item to `found` (under the shard's lock), for live entries,
    /// fresh or stale.
    fn read_live<R>(&self, key: &str, found: impl FnOnce(&shard::Item, &mut Now<'_>) -> R) -> Option<R> {
        let hash = self.hash(key);
        let lru = self.is_lru();
        let mut now = Now::new(&self.inner.clock);
        if !lru {
            // FIFO and S3-FIFO reads change no order: a plain lookup under the read lock (S3-FIFO
            // counts the hit in the item), unless something in the shard has expired.
            if let Some(lookup) = self.lookup_at(key, hash) {
                return lookup.item().map(|item| found(item, &mut now));
            }
        }
        // An LRU hit reorders, and expired entries are reclaimed: under the write lock.
        self.write_shard(self.shard_index(hash), |shard| {
            let tags = &self.inner.tags;
            if lru {
                let item = shard.read_lru(hash, key, &mut now).filter(|item| tags.is_current(&item.value))?;
                return Some(found(item, &mut now));
            }
            shard.purge_expired_lazily(&mut now);
            match shard.read(hash, key, &mut now) {
                // A tag of it was invalidated: a miss (the invalidation reclaims it).
                Found::Live(item) if !tags.is_current(&item.value) => None,
                Found::Live(item) => {
                    shard.accessed(item);
                    Some(found(item, &mut now))
                }
                Found::Expired => {
                    shard.expire_key(hash, key, now.get());
                    None
                }
                Found::Absent => None,
            }
        })
    }
}

impl fmt::Debug for MemoryAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryAdapter")
            .field("namespace", &self.inner.namespace)
            .field("ttl", &self.inner.ttl)
            .field("maxsize", &self.inner.maxsize)
            .field("max_bytes", &self.inner.max_bytes)
            .field("policy", &self.inner.policy)
            .field("shards", &self.inner.shards.len())
            .finish()
    }
}

impl CacheAdapter for MemoryAdapter {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    fn ttl(&self) -> Option<Duration> {
        self.inner.ttl
    }

    fn stale(&self) -> Duration {
        self.inner.stale
    }

    fn is_process_local(&self) -> bool {
        true
    }

    fn as_memory(&self, _: crate::adapter::sealed::Token) -> Option<&MemoryAdapter> {
        Some(self)
    }

    fn get(&self, key: &str) -> Result<Option<Entry>> {
        Ok(self.read(key, false, |item, now| item.entry(now)))
    }

    fn get_stale(&self, key: &str) -> Result<Option<Entry>> {
        Ok(self.read(key, true, |item, now| item.entry(now)))
    }

    fn get_value(&self, key: &str) -> Result<Option<StoredValue>> {
        Ok(self.read(key, false, |item, _| item.value.clone()))
    }

    fn set(&self, key: &str, entry: &Entry) -> Result<()> {
        self.write_one(key, entry);
        self.sweep_another_shard();
        Ok(())
    }

    fn mset(&self, items: &[(&str, Entry)]) -> Result<()> {
        for (key, entry) in items {
            self.write_one(key, entry);
        }
        self.sweep_another_shard();
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.remove(key, RemovalCause::Removed);
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let hash = self.hash(key);
        let mut now = Now::new(&self.inner.clock);
        let shard = self.shard(hash).read();
        Ok(matches!(shard.read(hash, key, &mut now),
            Found::Live(item) if item.fresh(&mut now) && self.inner.tags.is_current(&item.value)))
    }

    fn flush(&self) -> Result<()> {
        self.remove_all(RemovalCause::Removed);
        Ok(())
    }

    /// Removes every entry, as [`flush`](CacheAdapter::flush) does, but the listener hears
    /// [`RemovalCause::Invalidated`]: the entries went because the tower was cleared.
    fn clear(&self) -> Result<()> {
        self.remove_all(RemovalCause::Invalidated);
        Ok(())
    }

    /// Makes every entry carrying `tag` a miss at once, whatever their number (one mark, see
    /// `memory/tag_index.rs`), and reclaims them as the layer is used: a batch after each write,
    /// all of them on [`len`](MemoryAdapter::len), [`keys`](MemoryAdapter::keys) and
    /// [`purge_expired`](MemoryAdapter::purge_expired), as expired entries are (the listener
    /// hears [`RemovalCause::Invalidated`] then). The layer keeps an index from each tag to its
    /// keys, so reclaiming costs what the tag covers, not what the layer holds.
    ///
    /// ```
    /// use cache_tower::{MemoryAdapter, adapter::{CacheAdapter, Entry, StoredValue}};
    ///
    /// let memory = MemoryAdapter::new();
    /// memory.set("a", &Entry::new(StoredValue::new(1).with_tags(["team:7"]), None))?;
    /// memory.set("b", &Entry::new(StoredValue::new(2), None))?;
    /// memory.invalidate_tag("team:7")?;
    /// assert!(!memory.exists("a")? && memory.exists("b")?);
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    fn invalidate_tag(&self, tag: &str) -> Result<()> {
        self.inner.tags.invalidate(tag);
        // A batch reclaimed here too, so that an instance that only hears invalidations (no
        // writes) still drains its queue, and its marks can be forgotten.
        self.reclaim(RECLAIM_BATCH);
        Ok(())
    }

    fn stats(&self) -> AdapterStats {
        let mut removed = [0; RemovalCause::COUNT];
        for shard in self.inner.shards.iter() {
            for (total, count) in removed.iter_mut().zip(shard.0.read().removed) {
                *total += count;
            }
        }
        let count = |cause: RemovalCause| removed[cause as usize];
        AdapterStats {
            evictions: count(RemovalCause::Evicted),
            expirations: count(RemovalCause::Expired),
            replacements: count(RemovalCause::Replaced),
            invalidations: count(RemovalCause::Invalidated),
            removals: count(RemovalCause::Removed),
        }
    }
}

/// Adds `after - before` to `total`.
fn count(total: &AtomicUsize, before: usize, after: usize) {
    if after > before {
        total.fetch_add(after - before, Ordering::AcqRel);
    } else if after < before {
        total.fetch_sub(before - after, Ordering::AcqRel);
    }
}

/// The current time, read from the clock at most once per operation and only when needed: an
/// operation on entries without TTL never reads the clock.
struct Now<'a> {
    clock: &'a Clock,
    nanos: Option<u64>,
}

impl<'a> Now<'a> {
    fn new(clock: &'a Clock) -> Self {
        Self { clock, nanos: None }
    }

    fn get(&mut self) -> u64 {
        *self.nanos.get_or_insert_with(|| self.clock.now_nanos())
    }

    /// The time, when comparing it with `expires_at` matters; `0` for entries that never expire.
    fn get_if(&mut self, expires_at: u64) -> u64 {
        if expires_at == NEVER { 0 } else { self.get() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn entry(v: i32) -> Entry {
        Entry::new(StoredValue::new(v), None)
    }

    fn get(memory: &MemoryAdapter, key: &str) -> Option<i32> {
        memory.get(key).unwrap().map(|e| e.value().decode().unwrap())
    }

    fn tagged(v: i32, tags: &[&str]) -> Entry {
        Entry::new(StoredValue::new(v).with_tags(tags.iter().copied()), None)
    }

    #[test]
    fn the_tag_index_stays_within_a_constant_factor_of_the_entries_held() {
        let memory = MemoryAdapter::builder().maxsize(100).build();
        for n in 0..20_000 {
            memory.set(&format!("k{n}"), &tagged(n, &["a", "b"])).unwrap();
            assert!(memory.inner.tags.len() <= 2 * 2 * 100 + 1024 + 2, "pruned as it grows");
        }
        memory.invalidate_tag("a").unwrap();
        assert_eq!(memory.len(), 0, "every live entry carried the tag");
        for n in 0..5_000 {
            memory.set(&format!("t{n}"), &tagged(n, &[&format!("tag{n}")])).unwrap();
            memory.invalidate_tag(&format!("tag{n}")).unwrap();
        }
        assert!(memory.inner.tags.marks() <= 1024 + 1, "marks are forgotten once what they hid is reclaimed");
        memory.set("k", &tagged(1, &["a"])).unwrap();
        memory.flush().unwrap();
        assert_eq!(memory.inner.tags.len(), 0, "a flush empties the index");
    }

    #[test]
    fn a_value_tagged_before_an_invalidation_is_never_stored_after_it_even_once_marks_are_forgotten() {
        let memory = MemoryAdapter::new();
        for n in 0..3_000 {
            memory.invalidate_tag(&format!("x{n}")).unwrap();
        }
        assert!(memory.inner.tags.marks() <= 1024 + 2, "marks of tags with nothing cached are forgotten");
        let old = StoredValue::new(1).with_tags(["t"]);
        memory.invalidate_tag("t").unwrap();
        memory.set("k", &Entry::new(old, None)).unwrap();
        assert_eq!(get(&memory, "k"), None, "the mark just made is kept");
        let older = StoredValue::new(2).with_tags(["u"]);
        for n in 0..3_000 {
            memory.invalidate_tag(&format!("y{n}")).unwrap();
        }
        memory.set("k", &Entry::new(older, None)).unwrap();
        assert_eq!(get(&memory, "k"), None, "stamped before a forgotten mark: refused");
        memory.set("k", &tagged(3, &["u"])).unwrap();
        assert_eq!(get(&memory, "k"), Some(3));
    }

    #[test]
    fn pruning_the_index_stays_cheap_with_many_tags_per_entry() {
        let memory = MemoryAdapter::builder().maxsize(200).build();
        let tags: Vec<String> = (0..5).map(|n| format!("tag{n}")).collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let started = std::time::Instant::now();
        for n in 0..20_000 {
            memory.set(&format!("k{n}"), &tagged(n, &tags)).unwrap();
            assert!(memory.inner.tags.len() <= 2 * 5 * 200 * 2 + 1024 + 5, "bounded by the entries' names");
        }
        // Generous: a pruning on every write (the bug this guards against) takes minutes.
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    }

    #[test]
    fn writes_reclaim_what_an_invalidation_hid_a_batch_at_a_time() {
        let memory = MemoryAdapter::new();
        for n in 0..100 {
            memory.set(&format!("k{n}"), &tagged(n, &["t"])).unwrap();
        }
        memory.invalidate_tag("t").unwrap();
        let batch = RECLAIM_BATCH as u64;
        assert_eq!(memory.stats().invalidations, batch, "hidden at once, one batch reclaimed by the call");
        assert_eq!(get(&memory, "k99").or(get(&memory, "k0")), None);
        memory.set("again", &tagged(1, &["t"])).unwrap();
        assert_eq!(memory.stats().invalidations, 2 * batch, "one batch per write");
        for n in 0..3 {
            memory.set(&format!("plain{n}"), &entry(n)).unwrap();
        }
        assert_eq!(memory.stats().invalidations, 100, "every one reclaimed");
        assert_eq!(get(&memory, "again"), Some(1), "tagged after the invalidation: kept");
    }

    #[test]
    fn an_invalidated_tag_misses_at_once_on_every_read_and_a_value_tagged_later_does_not() {
        for policy in EvictionPolicy::ALL {
            let memory = MemoryAdapter::builder().policy(policy).build();
            let old = StoredValue::new(1).with_tags(["t"]);
            memory.invalidate_tag("other").unwrap();
            memory.invalidate_tag("t").unwrap();
            // Tagged before the invalidation, written after (a write racing it): a miss anyway.
            memory.set("old", &Entry::new(old, None)).unwrap();
            memory.set("new", &tagged(2, &["t"])).unwrap();
            memory.set("plain", &entry(3)).unwrap();
            assert_eq!(get(&memory, "old"), None, "{policy:?}");
            assert!(memory.get_value("old").unwrap().is_none() && memory.get_stale("old").unwrap().is_none());
            assert!(!memory.exists("old").unwrap());
            assert!(memory.lock_for_lookup("old").is_none_or(|lookup| lookup.value().is_none()));
            assert_eq!((get(&memory, "new"), get(&memory, "plain")), (Some(2), Some(3)), "{policy:?}");
        }
    }

    #[test]
    fn a_removal_listener_may_write_tagged_entries_back_while_invalidated_ones_are_reclaimed() {
        let slot: Arc<std::sync::OnceLock<MemoryAdapter>> = Arc::default();
        let inside = Arc::clone(&slot);
        let memory = MemoryAdapter::builder()
            .on_removal(move |key, cause| {
                if cause == RemovalCause::Invalidated && key == "a" {
                    let memory = inside.get().expect("set before any removal");
                    memory.set("again", &tagged(9, &["t"])).unwrap();
                }
            })
            .build();
        slot.set(memory.clone()).ok();
        memory.set("a", &tagged(1, &["t"])).unwrap();
        memory.set("b", &tagged(2, &["u"])).unwrap();
        memory.invalidate_tag("t").unwrap();
        assert_eq!(memory.len(), 2, "reclaimed: the listener heard it and wrote again");
        assert_eq!((get(&memory, "a"), get(&memory, "b"), get(&memory, "again")), (None, Some(2), Some(9)));
    }

    #[test]
    fn shard_count_is_one_for_small_caches() {
        assert_eq!(shard_count(2, 0), 1);
        assert_eq!(shard_count(MIN_SLOTS_PER_SHARD * 2 - 1, 0), 1);
        assert_eq!(shard_count(MIN_SLOTS_PER_SHARD * 2, 0), 2);
        assert!(shard_count(0, 0).is_power_of_two());
        assert!(shard_count(1_000_000, 0) >= 16);
        // A small byte bound alone: one shard; with both bounds, the smaller decides.
        assert_eq!(shard_count(0, 1_000_000), 2);
        assert_eq!(shard_count(0, 100_000), 1);
        assert_eq!(shard_count(1_000_000, 100_000), 1);
    }

    #[test]
    fn maxsize_bounds_the_whole_adapter_not_each_shard() {
        let memory = MemoryAdapter::builder().maxsize(10_000).build();
        assert!(memory.inner.shards.len() > 1);
        for i in 0..10_000 {
            memory.set(&format!("user:{i}"), &entry(i)).unwrap();
        }
        assert_eq!(memory.len(), 10_000, "all fit");
        assert_eq!(memory.stats().evictions, 0);
        memory.set("one more", &entry(0)).unwrap();
        assert_eq!(memory.len(), 10_000);
        assert_eq!(memory.stats().evictions, 1);
    }

    #[test]
    fn a_copy_is_marked_refreshed_once_until_rewritten_and_a_kept_copy_is_marked() {
        let memory = MemoryAdapter::new();
        let mark = |memory: &MemoryAdapter| {
            let lookup = memory.lock_for_lookup("k").unwrap();
            let copy = lookup.fresh_copy().unwrap();
            (copy.refresh_started(), copy.start_refresh())
        };
        memory.set("k", &entry(1)).unwrap();
        assert_eq!(mark(&memory), (false, true), "the first caller starts the refresh");
        assert_eq!(mark(&memory), (true, false), "and nobody after it");
        memory.set("k", &entry(2)).unwrap();
        assert_eq!(mark(&memory), (false, true), "a new value is a new copy");
        memory.set("k", &entry(3)).unwrap();
        let stored = memory.lock_for_lookup("k").unwrap().fresh_copy().unwrap().value().clone();
        assert!(memory.keep("k", &stored, Duration::from_secs(1), Duration::from_secs(1)));
        assert_eq!(mark(&memory), (true, false), "the fail-safe's throttle decides for a kept copy");
    }

    #[test]
    fn long_and_short_keys_are_found() {
        let memory = MemoryAdapter::new();
        let long = "k".repeat(1000);
        for key in ["", "a", "exactly-22-bytes-long!", "twenty-three bytes long", &long, "ünïcödé 🔑"] {
            memory.set(key, &entry(key.len() as i32)).unwrap();
            assert_eq!(get(&memory, key), Some(key.len() as i32), "{key}");
        }
        assert!(memory.keys().contains(&long));
    }

    #[test]
    fn heap_orders_many_expiries() {
        let clock = ManualClock::new();
        let memory = MemoryAdapter::builder().clock(&clock).build();
        // Insert with TTLs in scrambled order, then advance second by second.
        let ttls: Vec<u64> = (0..100).map(|i| (i * 37) % 100 + 1).collect();
        for (i, ttl) in ttls.iter().enumerate() {
            let e = Entry::new(StoredValue::new(i as i32), Some(Duration::from_secs(*ttl)));
            memory.set(&format!("k{i}"), &e).unwrap();
        }
        for second in 1..=100u64 {
            clock.advance(Duration::from_secs(1));
            let purged = memory.purge_expired();
            assert_eq!(purged, 1, "exactly one entry expires at second {second}");
        }
        assert_eq!(memory.len(), 0);
        assert_eq!(memory.stats().expirations, 100);
    }

    #[test]
    fn overwrite_changes_expiry_in_heap() {
        let clock = ManualClock::new();
        let memory = MemoryAdapter::builder().clock(&clock).build();
        let with_ttl = |v, s| Entry::new(StoredValue::new(v), Some(Duration::from_secs(s)));
        memory.set("a", &with_ttl(1, 10)).unwrap();
        memory.set("b", &with_ttl(2, 20)).unwrap();
        memory.set("a", &with_ttl(3, 30)).unwrap();
        memory.set("b", &entry(4)).unwrap(); // no TTL any more
        clock.advance(Duration::from_secs(25));
        assert_eq!(get(&memory, "a"), Some(3));
        assert_eq!(get(&memory, "b"), Some(4));
        clock.advance(Duration::from_secs(5));
        assert_eq!(get(&memory, "a"), None);
        assert_eq!(get(&memory, "b"), Some(4));
    }

    #[test]
    fn zero_ttl_entry_is_not_stored_and_removes_old_value() {
        let memory = MemoryAdapter::new();
        memory.set("a", &entry(1)).unwrap();
        memory.set("a", &Entry::new(StoredValue::new(2), Some(Duration::ZERO))).unwrap();
        assert_eq!(get(&memory, "a"), None);
    }

    #[test]
    fn slots_are_reused() {
        let memory = MemoryAdapter::builder().maxsize(3).build();
        for i in 0..1000 {
            memory.set(&format!("k{i}"), &entry(i)).unwrap();
        }
        // One record per kept entry, plus the one a new key takes before the oldest is evicted.
        assert_eq!(memory.inner.shards[0].0.read().records(), 4);
        assert_eq!(memory.keys(), vec!["k997", "k998", "k999"]);
    }
}
