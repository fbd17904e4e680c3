//! One shard of a [`MemoryAdapter`](super::MemoryAdapter): its items, their eviction order and
//! their expiry times.
//!
//! The items live in the hash table itself, one cache line each (key inline when short, the value
//! handle, the expiry time, an access counter), so a FIFO or S3-FIFO hit reads the table and
//! nothing else. Each item points to its [`Record`] in [`Links`], kept apart: the eviction queues
//! (FIFO insertion order, LRU recency, or S3-FIFO's small and main queues) and an indexed
//! min-heap of expiry times, touched only by writes, evictions and LRU hits. An S3-FIFO shard
//! also keeps a [`Ghost`] queue: the hashes of keys it evicted lately from its small queue.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::Now;
use crate::adapter::{EvictionPolicy, RemovalCause};
use crate::value::{Entry, StoredValue};

/// The expiry time of an item without TTL.
pub(super) const NEVER: u64 = u64::MAX;
/// "No link" in the eviction list.
const NIL: u32 = u32::MAX;
/// Keys up to this many bytes live inside the item, saving a pointer chase on every lookup.
const INLINE_KEY: usize = 22;
/// The most an S3-FIFO access counter counts: reads beyond it say nothing more.
const MAX_FREQ: u8 = 3;

/// The hash of a key's bytes, the same for lookups and for moving items when the table grows.
#[inline]
pub(super) fn hash_key(hasher: &RandomState, key: &[u8]) -> u64 {
    hasher.hash_one(key)
}

// ===== impl Item =====

/// One cached entry, laid out to fill exactly one cache line.
#[repr(align(64))]
pub(super) struct Item {
    key: Key,
    pub(super) value: StoredValue,
    /// When it leaves the layer ([`NEVER`] without a TTL).
    pub(super) expires_at: u64,
    /// Its stale window: the last part of its life, after its TTL ran out, in which it is
    /// stale — kept for get-or-set's fail-safe, a miss for every other read.
    window: Window,
    /// What it is charged against `max_bytes` (0 without that bound), at most `u32::MAX`.
    weight: u32,
    /// Its record in [`Links`].
    link: u32,
    /// S3-FIFO: reads since it was inserted (or last passed over by the eviction), up to
    /// [`MAX_FREQ`]. Atomic because hits count it under the shard's read lock; a lost increment
    /// between two racing readers costs nothing but a slightly lower count.
    freq: AtomicU8,
    /// Whether an eager refresh of this copy was started (`LoadOptions::refresh_ahead`): each
    /// copy is refreshed ahead once at most, and a new value comes as a new copy. Set by the
    /// first hit that finds the copy due (under the shard's read lock, hence atomic), and by the
    /// fail-safe keeping a copy, whose throttle decides when the source is asked again.
    refresh_started: AtomicBool,
}

impl Item {
    pub(super) fn expired(&self, now: u64) -> bool {
        self.expires_at != NEVER && self.expires_at <= now
    }

    /// Whether a live item is still fresh. An item without a stale window is fresh as long as it
    /// lives, which the caller has checked: no clock read.
    #[inline]
    pub(super) fn fresh(&self, now: &mut Now<'_>) -> bool {
        self.window.is_none() || self.fresh_until() > now.get()
    }

    /// When its TTL runs out.
    fn fresh_until(&self) -> u64 {
        self.expires_at.saturating_sub(self.window.nanos())
    }

    /// The entry as a read returns it: the value and the time it has left, fresh or stale
    /// ([`Entry::stale`]).
    pub(super) fn entry(&self, now: &mut Now<'_>) -> Entry {
        if !self.fresh(now) {
            // Saturating: the clock may have moved past the expiry since the caller checked it.
            return Entry::stale(self.value.clone(), Duration::from_nanos(self.expires_at.saturating_sub(now.get())));
        }
        Entry::new(self.value.clone(), self.entry_ttl(now))
    }

    /// How long a fresh item stays fresh; `None` without a TTL.
    pub(super) fn entry_ttl(&self, now: &mut Now<'_>) -> Option<Duration> {
        (self.expires_at != NEVER).then(|| Duration::from_nanos(self.fresh_until().saturating_sub(now.get())))
    }

    #[inline]
    fn is(&self, key: &str) -> bool {
        self.key.as_bytes() == key.as_bytes()
    }

    /// Counts an access, up to [`MAX_FREQ`]. A hot item has reached it, so its hits only read
    /// the counter and never write its cache line.
    #[inline]
    fn touch(&self) {
        let freq = self.freq.load(Ordering::Relaxed);
        if freq < MAX_FREQ {
            self.freq.store(freq + 1, Ordering::Relaxed);
        }
    }

    /// Why this item leaves when removed for `cause`: as expired if it already was.
    fn removal_cause(&self, cause: RemovalCause, now: &mut Now<'_>) -> RemovalCause {
        if self.expired(now.get_if(self.expires_at)) { RemovalCause::Expired } else { cause }
    }

    fn freq(&self) -> u8 {
        self.freq.load(Ordering::Relaxed)
    }

    /// Whether an eager refresh of this copy was started.
    #[inline]
    pub(super) fn refresh_started(&self) -> bool {
        self.refresh_started.load(Ordering::Relaxed)
    }

    /// Marks an eager refresh of this copy started; `true` for the one caller that did so first.
    pub(super) fn start_refresh(&self) -> bool {
        // A plain load first, so that hits on a copy being refreshed write nothing.
        !self.refresh_started() && !self.refresh_started.swap(true, Ordering::Relaxed)
    }
}

/// An item's stale window in 32 bits (so that an item still fills one cache line): whole
/// milliseconds below 2³¹ ms (about 24.8 days), whole seconds with the top bit set above, up to
/// 2³¹ − 1 s (68 years: a longer window is that long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window(u32);

impl Window {
    pub(super) const NONE: Window = Window(0);
    const SECONDS: u32 = 1 << 31;

    pub(super) fn new(window: Duration) -> Self {
        match u32::try_from(window.as_millis()) {
            Ok(ms) if ms < Self::SECONDS => Window(ms),
            _ => Window(Self::SECONDS | u32::try_from(window.as_secs()).unwrap_or(u32::MAX).min(Self::SECONDS - 1)),
        }
    }

    /// The shortest window at least `nanos` long (rounded up, so that an item given it is stale
    /// at once: see [`Shard::demote_all`]).
    fn covering(nanos: u64) -> Self {
        let ms = nanos.div_ceil(1_000_000);
        match u32::try_from(ms) {
            Ok(ms) if ms < Self::SECONDS => Window(ms),
            _ => Window(
                Self::SECONDS | u32::try_from(nanos.div_ceil(1_000_000_000)).unwrap_or(u32::MAX).min(Self::SECONDS - 1),
            ),
        }
    }

    pub(super) fn is_none(self) -> bool {
        self.0 == 0
    }

    /// Its length in nanoseconds.
    pub(super) fn nanos(self) -> u64 {
        match self.0 & Self::SECONDS {
            0 => u64::from(self.0) * 1_000_000,
            _ => u64::from(self.0 & !Self::SECONDS) * 1_000_000_000,
        }
    }
}

/// A stored key: inline when short (most cache keys are), on the heap otherwise.
pub(super) enum Key {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<str>),
}

impl Key {
    fn new(key: &str) -> Self {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= INLINE_KEY => {
                let mut bytes = [0; INLINE_KEY];
                bytes[..key.len()].copy_from_slice(key.as_bytes());
                Key::Inline { len, bytes }
            }
            _ => Key::Heap(key.into()),
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(key) => key.as_bytes(),
        }
    }
}

impl Key {
    /// The key as text. The bytes were copied from a `&str`, so they are valid UTF-8 (the empty
    /// fallback is never taken).
    pub(super) fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// Removals made under a shard's lock, told to the adapter's listener once it is released.
pub(super) type Removals = Vec<(Key, RemovalCause)>;

/// What a read of one key found.
pub(super) enum Found<'a> {
    Live(&'a Item),
    Expired,
    Absent,
}

// ===== impl Shard =====

/// S3-FIFO's small queue, in percent of the shard's entries: past it, the small queue gives up
/// its oldest entry at the next eviction. (Evictions happen when the cache is full, so this is a
/// share of the capacity, whether the bound is in entries or in bytes.) The paper's 10% keeps
/// fewer of the right entries on Zipf-distributed keys than 2–5% (measured:
/// `docs/adr/0011-memory-policies.md`).
const SMALL_PERCENT: usize = 3;
/// S3-FIFO's ghost queue, in percent of the shard's entries (the paper: as long as the main
/// queue; half that measured better, see the ADR).
const GHOST_PERCENT: usize = 50;

pub(super) struct Shard {
    /// The adapter's hasher (the same in every shard: the shard is chosen by the hash too).
    hasher: RandomState,
    items: HashTable<Item>,
    links: Links,
    policy: EvictionPolicy,
    /// S3-FIFO: keys evicted lately from the small queue, which come back into the main one.
    ghost: Ghost,
    pub(super) len: usize,
    /// The sum of the items' weights.
    pub(super) bytes: usize,
    /// Entries removed, by [`RemovalCause`].
    pub(super) removed: [u64; RemovalCause::COUNT],
    /// When the adapter has a listener: the removals not yet told to it.
    pending: Option<Removals>,
}

impl Shard {
    /// `listened`: whether removals are kept for a listener ([`take_removals`](Self::take_removals)).
    pub(super) fn new(hasher: RandomState, policy: EvictionPolicy, listened: bool) -> Self {
        Self {
            hasher,
            items: HashTable::new(),
            links: Links::default(),
            policy,
            ghost: Ghost::default(),
            len: 0,
            bytes: 0,
            removed: [0; RemovalCause::COUNT],
            pending: listened.then(Vec::new),
        }
    }

    /// The removals made since the last call, for the listener (empty, without allocating,
    /// when there is none).
    pub(super) fn take_removals(&mut self) -> Removals {
        match &mut self.pending {
            Some(pending) if !pending.is_empty() => std::mem::take(pending),
            _ => Vec::new(),
        }
    }

    /// Counts a removal, and keeps it for the listener. `key` is only built when there is one.
    fn note(&mut self, cause: RemovalCause, key: impl FnOnce() -> Key) {
        self.removed[cause as usize] += 1;
        if let Some(pending) = &mut self.pending {
            pending.push((key(), cause));
        }
    }

    /// Reads `key` without changing anything (`exists`, and reads that found something expired).
    pub(super) fn read(&self, hash: u64, key: &str, now: &mut Now<'_>) -> Found<'_> {
        match self.items.find(hash, |item| item.is(key)) {
            None => Found::Absent,
            Some(item) if item.expired(now.get_if(item.expires_at)) => Found::Expired,
            Some(item) => Found::Live(item),
        }
    }

    /// The item of `key` if it is present — live, for a caller that has checked that nothing in
    /// the shard has expired ([`top_expired`](Self::top_expired)), so no clock read. Counts the
    /// read as an access (S3-FIFO).
    #[inline]
    pub(super) fn live(&self, hash: u64, key: &str) -> Option<&Item> {
        let item = self.items.find(hash, |item| item.is(key))?;
        self.accessed(item);
        Some(item)
    }

    /// Counts a hit on `item`, for the policies that count them.
    #[inline]
    pub(super) fn accessed(&self, item: &Item) {
        if self.policy == EvictionPolicy::S3Fifo {
            item.touch();
        }
    }

    /// Reads `key` as an LRU hit: reclaims it if expired, else makes it the most recently used.
    pub(super) fn read_lru(&mut self, hash: u64, key: &str, now: &mut Now<'_>) -> Option<&Item> {
        self.purge_expired_lazily(now);
        let item = self.items.find(hash, |item| item.is(key))?;
        let link = item.link;
        if item.expired(now.get_if(item.expires_at)) {
            self.remove(link, RemovalCause::Expired);
            return None;
        }
        self.links.move_to_back(link, Queue::Main);
        self.items.find(hash, |item| item.link == link)
    }

    /// Writes `value`, charged `weight`, under `key`: replaces the value of a present key, or
    /// inserts a new one. Returns the item's record (the adapter then evicts if it is over its
    /// bounds, sparing that one).
    ///
    /// An overwrite keeps the key's place (FIFO), makes it the most recently used (LRU), or
    /// counts as an access (S3-FIFO). A new key goes to the back of the queue; with S3-FIFO, to
    /// the small queue, or to the main one when the ghost queue remembers it.
    pub(super) fn upsert(
        &mut self,
        key: &str,
        hash: u64,
        value: StoredValue,
        (expires_at, window): (u64, Window),
        weight: u32,
        now: &mut Now<'_>,
    ) -> u32 {
        if let Some(item) = self.items.find_mut(hash, |item| item.is(key)) {
            let link = item.link;
            let cause = item.removal_cause(RemovalCause::Replaced, now);
            self.bytes = self.bytes - item.weight as usize + weight as usize;
            item.weight = weight;
            item.value = value;
            item.expires_at = expires_at;
            item.window = window;
            *item.refresh_started.get_mut() = false;
            self.links.set_expiry(item.link, expires_at);
            match self.policy {
                EvictionPolicy::Fifo => {}
                EvictionPolicy::Lru => self.links.move_to_back(item.link, Queue::Main),
                EvictionPolicy::S3Fifo => item.touch(),
            }
            self.note(cause, || Key::new(key));
            return link;
        }
        let queue = match self.policy {
            EvictionPolicy::S3Fifo if !self.ghost.take(hash) => Queue::Small,
            _ => Queue::Main,
        };
        let link = self.links.acquire(hash, expires_at, queue);
        let hasher = &self.hasher;
        let item = Item {
            key: Key::new(key),
            value,
            expires_at,
            window,
            weight,
            link,
            freq: AtomicU8::new(0),
            refresh_started: AtomicBool::new(false),
        };
        self.items.insert_unique(hash, item, |item| hash_key(hasher, item.key.as_bytes()));
        self.len += 1;
        self.bytes += weight as usize;
        link
    }

    /// Gives the item of `key` a new life (fresh until, leaving at), if it still holds `same`
    /// (the very value, not an equal one): so a value another write replaced meanwhile is never
    /// brought back. Returns whether it did. Counts as no access and no replacement; the kept copy
    /// is not refreshed ahead.
    pub(super) fn keep(
        &mut self,
        hash: u64,
        key: &str,
        same: &StoredValue,
        (expires_at, window): (u64, Window),
    ) -> bool {
        let Some(item) = self.items.find_mut(hash, |item| item.is(key)) else { return false };
        if !item.value.is_same(same) {
            return false;
        }
        item.window = window;
        item.expires_at = expires_at;
        // The fail-safe's throttle, not an eager refresh, says when the source is asked again.
        *item.refresh_started.get_mut() = true;
        self.links.set_expiry(item.link, expires_at);
        true
    }

    /// Makes every live item stale from `now` on, for what it has left but at most `cap`
    /// nanoseconds (an item without a TTL: `cap`): what the tower does to a memory layer with a
    /// stale window when it loses sight of the changes below it. Nothing is removed or told.
    pub(super) fn demote_all(&mut self, now: u64, cap: u64) {
        let limit = now.saturating_add(cap).min(NEVER - 1);
        for item in self.items.iter_mut() {
            if item.expires_at <= now {
                continue; // expired already: reclaimed as such
            }
            let expires_at = item.expires_at.min(limit);
            item.window = Window::covering(expires_at - now);
            if expires_at != item.expires_at {
                item.expires_at = expires_at;
                self.links.set_expiry(item.link, expires_at);
            }
        }
    }

    /// Refuses a write of `key` whose entry weighs more than the whole `max_bytes`: the old value
    /// goes (replaced), and the new one is told to the listener as evicted at once.
    pub(super) fn refuse(&mut self, hash: u64, key: &str, now: &mut Now<'_>) {
        self.remove_key(hash, key, RemovalCause::Replaced, now);
        self.note(RemovalCause::Evicted, || Key::new(key));
    }

    /// Removes `key` if present, for `cause` — or as expired, if it was.
    pub(super) fn remove_key(&mut self, hash: u64, key: &str, cause: RemovalCause, now: &mut Now<'_>) {
        self.remove_key_if(hash, key, cause, now, |_| true);
    }

    /// Removes `key` if present and its value passes `remove` (one lookup).
    pub(super) fn remove_key_if(
        &mut self,
        hash: u64,
        key: &str,
        cause: RemovalCause,
        now: &mut Now<'_>,
        remove: impl FnOnce(&StoredValue) -> bool,
    ) {
        let Some(item) = self.items.find(hash, |item| item.is(key)) else { return };
        if !remove(&item.value) {
            return;
        }
        let cause = item.removal_cause(cause, now);
        self.remove(item.link, cause);
    }

    /// Removes `key` if present and expired (a reader saw it expire).
    pub(super) fn expire_key(&mut self, hash: u64, key: &str, now: u64) {
        let expired = self.items.find(hash, |item| item.is(key)).filter(|item| item.expired(now)).map(|item| item.link);
        if let Some(link) = expired {
            self.remove(link, RemovalCause::Expired);
        }
    }

    /// Frees one place: an expired item if there is one, else the item the policy picks, never
    /// `spare` (the item a write just added). Returns whether it removed anything.
    pub(super) fn evict_one(&mut self, now: &mut Now<'_>, spare: Option<u32>) -> bool {
        if let Some((top, expires_at)) = self.links.soonest() {
            if expires_at <= now.get() && Some(top) != spare {
                self.remove(top, RemovalCause::Expired);
                return true;
            }
        }
        let evicted = match self.policy {
            EvictionPolicy::Fifo | EvictionPolicy::Lru => self.links.first(Queue::Main, spare),
            EvictionPolicy::S3Fifo => self.s3_fifo_victim(spare),
        };
        let Some(victim) = evicted else { return false };
        self.remove(victim, RemovalCause::Evicted);
        true
    }

    /// S3-FIFO's choice (Yang et al., SOSP 2023). While the small queue is over its share, its
    /// oldest item leaves it: into the main queue if it was read since it came in, else out of
    /// the cache, its hash remembered by the ghost queue. Otherwise the main queue's oldest item
    /// goes, unless it was read since it came in or was last passed over: then its count drops
    /// by one and it goes round to the back (a CLOCK).
    fn s3_fifo_victim(&mut self, spare: Option<u32>) -> Option<u32> {
        loop {
            let small_over = self.links.len(Queue::Small) > (self.len * SMALL_PERCENT / 100).max(1);
            let main = self.links.first(Queue::Main, spare);
            let small = self.links.first(Queue::Small, spare);
            let (queue, id) = match (small, main) {
                (Some(id), _) if small_over || main.is_none() => (Queue::Small, id),
                (_, Some(id)) => (Queue::Main, id),
                _ => return None,
            };
            let hash = self.links.records[id as usize].hash;
            let item = self.items.find(hash, |item| item.link == id)?;
            let freq = item.freq();
            match queue {
                Queue::Small if freq > 0 => {
                    item.freq.store(0, Ordering::Relaxed);
                    self.links.move_to_back(id, Queue::Main);
                }
                Queue::Small => {
                    self.ghost.remember(hash, self.len * GHOST_PERCENT / 100);
                    return Some(id);
                }
                Queue::Main if freq > 0 => {
                    item.freq.store(freq - 1, Ordering::Relaxed);
                    self.links.move_to_back(id, Queue::Main);
                }
                Queue::Main => return Some(id),
            }
        }
    }

    /// Removes up to `limit` expired items; returns how many.
    pub(super) fn purge_expired(&mut self, now: u64, limit: usize) -> usize {
        let mut purged = 0;
        while purged < limit {
            match self.links.soonest() {
                Some((top, expires_at)) if expires_at <= now => {
                    self.remove(top, RemovalCause::Expired);
                    purged += 1;
                }
                _ => break,
            }
        }
        purged
    }

    /// [`purge_expired`](Self::purge_expired) with the batch limit, reading the clock only when
    /// some item has a TTL.
    pub(super) fn purge_expired_lazily(&mut self, now: &mut Now<'_>) {
        if self.links.has_expiring() {
            self.purge_expired(now.get(), super::PURGE_BATCH);
        }
    }

    /// Whether some item has a TTL (so the clock is worth reading).
    #[inline]
    pub(super) fn has_expiring(&self) -> bool {
        self.links.has_expiring()
    }

    /// Whether the item closest to expiry has expired.
    pub(super) fn top_expired(&self, now: &mut Now<'_>) -> bool {
        self.links.soonest().is_some_and(|(_, expires_at)| expires_at <= now.get())
    }

    /// The live keys, in the order the policy would evict them were nothing read: FIFO and LRU
    /// oldest first; S3-FIFO the main queue, then the small one.
    pub(super) fn keys(&self, now: u64) -> Vec<String> {
        let mut keys = Vec::with_capacity(self.len);
        for queue in [Queue::Main, Queue::Small] {
            let mut link = self.links.first(queue, None);
            while let Some(id) = link {
                let hash = self.links.records[id as usize].hash;
                if let Some(item) = self.items.find(hash, |item| item.link == id) {
                    if !item.expired(now) {
                        keys.push(item.key.as_str().to_owned());
                    }
                }
                link = self.links.next(id);
            }
        }
        keys
    }

    /// Removes every item, for `cause` — or as expired, those that were.
    pub(super) fn clear(&mut self, cause: RemovalCause, now: &mut Now<'_>) {
        let emptied = Self::new(self.hasher.clone(), self.policy, self.pending.is_some());
        let old = std::mem::replace(self, emptied);
        self.removed = old.removed;
        self.pending = old.pending;
        for item in old.items {
            let cause = item.removal_cause(cause, now);
            self.note(cause, || item.key);
        }
    }

    /// How many link records were ever needed (records are reused).
    #[cfg(test)]
    pub(super) fn records(&self) -> usize {
        self.links.records.len()
    }

    fn remove(&mut self, link: u32, cause: RemovalCause) {
        let hash = self.links.release(link);
        if let Ok(entry) = self.items.find_entry(hash, |item| item.link == link) {
            let (item, _) = entry.remove();
            self.len -= 1;
            self.bytes -= item.weight as usize;
            self.note(cause, || item.key);
        }
    }
}

// ===== impl Ghost =====

/// The hashes of keys S3-FIFO evicted lately from its small queue, oldest first, with a set to
/// ask it in one probe. A key written again while remembered goes straight to the main queue:
/// it was wanted twice within about one cache's worth of insertions.
#[derive(Default)]
struct Ghost {
    /// Each hash with the number it was remembered under.
    order: VecDeque<(u64, u64)>,
    /// Hash → the number it was last remembered under; an older entry of `order` for the same
    /// hash is stale.
    members: hashbrown::HashMap<u64, u64, foldhash::fast::FixedState>,
    next: u64,
}

impl Ghost {
    fn remember(&mut self, hash: u64, capacity: usize) {
        if capacity == 0 {
            return;
        }
        while self.order.len() >= capacity {
            if let Some((old, number)) = self.order.pop_front() {
                // One probe: forgotten only if not remembered again since.
                if let hashbrown::hash_map::Entry::Occupied(member) = self.members.entry(old) {
                    if *member.get() == number {
                        member.remove();
                    }
                }
            }
        }
        self.order.push_back((hash, self.next));
        self.members.insert(hash, self.next);
        self.next += 1;
    }

    /// Whether `hash` is remembered; forgets it.
    fn take(&mut self, hash: u64) -> bool {
        self.members.remove(&hash).is_some()
    }
}

// ===== impl Links =====

/// The eviction queue a record is in. FIFO and LRU use the main queue alone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Queue {
    Main = 0,
    Small = 1,
}

/// An item's place in its eviction queue and the expiry heap.
#[derive(Clone, Copy)]
struct Record {
    /// The item's hash, to find it in the table from here.
    hash: u64,
    expires_at: u64,
    prev: u32,
    next: u32,
    /// Position in the expiry heap, `NIL` when the item has no TTL.
    heap_pos: u32,
    queue: Queue,
}

/// One doubly linked queue of records: the head is evicted first.
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    len: usize,
}

/// The eviction queues and the min-heap of expiry times, over records that are reused through a
/// free list.
struct Links {
    records: Vec<Record>,
    free: Vec<u32>,
    lists: [List; 2],
    heap: Vec<u32>,
}

impl Default for Links {
    fn default() -> Self {
        let empty = List { head: NIL, tail: NIL, len: 0 };
        Self { records: Vec::new(), free: Vec::new(), lists: [empty; 2], heap: Vec::new() }
    }
}

impl Links {
    /// A record for a new item, at the back of `queue` and in the heap if it expires.
    fn acquire(&mut self, hash: u64, expires_at: u64, queue: Queue) -> u32 {
        let record = Record { hash, expires_at, prev: NIL, next: NIL, heap_pos: NIL, queue };
        let id = match self.free.pop() {
            Some(id) => {
                self.records[id as usize] = record;
                id
            }
            None => {
                // u32 record ids: a shard holds at most 4 billion items.
                let id = u32::try_from(self.records.len()).unwrap_or(NIL);
                assert!(id != NIL, "a memory shard cannot hold more than 2^32 - 1 entries");
                self.records.push(record);
                id
            }
        };
        self.push_back(id);
        self.heap_update(id);
        id
    }

    /// Drops a record from its queue and the heap; returns its item's hash.
    fn release(&mut self, id: u32) -> u64 {
        self.unlink(id);
        if self.records[id as usize].heap_pos != NIL {
            self.heap_remove(id);
        }
        self.free.push(id);
        self.records[id as usize].hash
    }

    fn set_expiry(&mut self, id: u32, expires_at: u64) {
        self.records[id as usize].expires_at = expires_at;
        self.heap_update(id);
    }

    fn len(&self, queue: Queue) -> usize {
        self.lists[queue as usize].len
    }

    /// The head of `queue`, or the record after it when the head is `spare`.
    fn first(&self, queue: Queue, spare: Option<u32>) -> Option<u32> {
        let head = self.lists[queue as usize].head;
        match head {
            NIL => None,
            head if Some(head) == spare => self.next(head),
            head => Some(head),
        }
    }

    fn next(&self, id: u32) -> Option<u32> {
        let next = self.records[id as usize].next;
        (next != NIL).then_some(next)
    }

    fn has_expiring(&self) -> bool {
        !self.heap.is_empty()
    }

    /// The record that expires first, and when.
    fn soonest(&self) -> Option<(u32, u64)> {
        self.heap.first().map(|&id| (id, self.records[id as usize].expires_at))
    }

    // ----- eviction queues -----

    fn unlink(&mut self, id: u32) {
        let Record { prev, next, queue, .. } = self.records[id as usize];
        let list = &mut self.lists[queue as usize];
        list.len -= 1;
        if prev == NIL {
            list.head = next
        } else {
            self.records[prev as usize].next = next
        }
        if next == NIL {
            list.tail = prev
        } else {
            self.records[next as usize].prev = prev
        }
        let record = &mut self.records[id as usize];
        record.prev = NIL;
        record.next = NIL;
    }

    /// Appends a record that is in no list to its queue.
    fn push_back(&mut self, id: u32) {
        let queue = self.records[id as usize].queue;
        let list = &mut self.lists[queue as usize];
        let tail = list.tail;
        list.len += 1;
        list.tail = id;
        if tail == NIL {
            list.head = id
        } else {
            self.records[tail as usize].next = id
        }
        let record = &mut self.records[id as usize];
        record.prev = tail;
        record.next = NIL;
    }

    /// Moves a record to the back of `queue` (its own or the other).
    fn move_to_back(&mut self, id: u32, queue: Queue) {
        let record = self.records[id as usize];
        if record.queue == queue && self.lists[queue as usize].tail == id {
            return;
        }
        self.unlink(id);
        self.records[id as usize].queue = queue;
        self.push_back(id);
    }

    // ----- expiry heap -----

    fn expires_at(&self, heap_index: usize) -> u64 {
        self.records[self.heap[heap_index] as usize].expires_at
    }

    fn heap_set(&mut self, heap_index: usize, id: u32) {
        self.heap[heap_index] = id;
        // Heap positions fit in u32: the heap holds at most as many ids as there are records.
        self.records[id as usize].heap_pos = heap_index as u32;
    }

    /// Puts `id` where its (possibly changed) expiry belongs: in, out of, or moved within the heap.
    fn heap_update(&mut self, id: u32) {
        let Record { heap_pos, expires_at, .. } = self.records[id as usize];
        match (heap_pos == NIL, expires_at == NEVER) {
            (true, true) => {}
            (false, true) => self.heap_remove(id),
            (true, false) => {
                self.heap.push(id);
                let last = self.heap.len() - 1;
                self.heap_set(last, id);
                self.sift_up(last);
            }
            (false, false) => {
                self.sift_up(heap_pos as usize);
                let pos = self.records[id as usize].heap_pos as usize;
                self.sift_down(pos);
            }
        }
    }

    fn heap_remove(&mut self, id: u32) {
        let pos = self.records[id as usize].heap_pos as usize;
        self.records[id as usize].heap_pos = NIL;
        let last = self.heap.len() - 1;
        let moved = self.heap[last];
        self.heap.pop();
        if pos != last {
            self.heap_set(pos, moved);
            self.sift_up(pos);
            let pos = self.records[moved as usize].heap_pos as usize;
            self.sift_down(pos);
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.expires_at(parent) <= self.expires_at(i) {
                break;
            }
            self.heap_swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (left, right) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if left < self.heap.len() && self.expires_at(left) < self.expires_at(smallest) {
                smallest = left;
            }
            if right < self.heap.len() && self.expires_at(right) < self.expires_at(smallest) {
                smallest = right;
            }
            if smallest == i {
                break;
            }
            self.heap_swap(i, smallest);
            i = smallest;
        }
    }

    fn heap_swap(&mut self, a: usize, b: usize) {
        let (id_a, id_b) = (self.heap[a], self.heap[b]);
        self.heap_set(a, id_b);
        self.heap_set(b, id_a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_fills_one_cache_line() {
        assert_eq!(std::mem::size_of::<Item>(), 64);
        assert_eq!(std::mem::align_of::<Item>(), 64);
    }
}
