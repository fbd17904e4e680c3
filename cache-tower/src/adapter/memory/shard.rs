//! One shard of a [`MemoryAdapter`](super::MemoryAdapter): its items, their eviction order and
//! their expiry times.
//!
//! The items live in the hash table itself, one cache line each (key inline when short, the value
//! handle, the expiry time), so a FIFO hit reads the table and nothing else. Each item points to
//! its [`Record`] in [`Links`], kept apart: the eviction list (FIFO insertion order, or LRU
//! recency) and an indexed min-heap of expiry times, touched only by writes and LRU hits.

use std::fmt;
use std::hash::BuildHasher;
use std::time::Duration;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::Now;
use crate::value::{Entry, StoredValue};

/// The expiry time of an item without TTL.
pub(super) const NEVER: u64 = u64::MAX;
/// "No link" in the eviction list.
const NIL: u32 = u32::MAX;
/// Keys up to this many bytes live inside the item, saving a pointer chase on every lookup.
const INLINE_KEY: usize = 22;

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
    pub(super) expires_at: u64,
    /// Its record in [`Links`].
    link: u32,
}

impl Item {
    pub(super) fn expired(&self, now: u64) -> bool {
        self.expires_at != NEVER && self.expires_at <= now
    }

    /// The entry as a read returns it: the value and the time it has left.
    pub(super) fn entry(&self, now: &mut Now<'_>) -> Entry {
        let ttl = (self.expires_at != NEVER).then(|| Duration::from_nanos(self.expires_at - now.get()));
        Entry::new(self.value.clone(), ttl)
    }

    #[inline]
    fn is(&self, key: &str) -> bool {
        self.key.as_bytes() == key.as_bytes()
    }
}

/// A stored key: inline when short (most cache keys are), on the heap otherwise.
enum Key {
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

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The bytes were copied from a `&str`, so they are valid UTF-8.
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// What a read of one key found.
pub(super) enum Found<'a> {
    Live(&'a Item),
    Expired,
    Absent,
}

// ===== impl Shard =====

pub(super) struct Shard {
    /// The adapter's hasher (the same in every shard: the shard is chosen by the hash too).
    hasher: RandomState,
    items: HashTable<Item>,
    links: Links,
    pub(super) len: usize,
    pub(super) evictions: u64,
    pub(super) expirations: u64,
}

impl Shard {
    pub(super) fn new(hasher: RandomState) -> Self {
        Self { hasher, items: HashTable::new(), links: Links::default(), len: 0, evictions: 0, expirations: 0 }
    }

    /// Reads `key` without changing anything (FIFO hits, `exists`).
    pub(super) fn read(&self, hash: u64, key: &str, now: &mut Now<'_>) -> Found<'_> {
        match self.items.find(hash, |item| item.is(key)) {
            None => Found::Absent,
            Some(item) if item.expired(now.get_if(item.expires_at)) => Found::Expired,
            Some(item) => Found::Live(item),
        }
    }

    /// The item of `key` if it is present — live, for a caller that has checked that nothing in
    /// the shard has expired ([`top_expired`](Self::top_expired)), so no clock read.
    #[inline]
    pub(super) fn live(&self, hash: u64, key: &str) -> Option<&Item> {
        self.items.find(hash, |item| item.is(key))
    }

    /// Reads `key` as an LRU hit: reclaims it if expired, else makes it the most recently used.
    pub(super) fn read_lru(&mut self, hash: u64, key: &str, now: &mut Now<'_>) -> Option<&Item> {
        self.purge_expired_lazily(now);
        let entry = self.items.find_entry(hash, |item| item.is(key)).ok()?;
        if entry.get().expired(now.get_if(entry.get().expires_at)) {
            let (item, _) = entry.remove();
            self.links.release(item.link);
            self.len -= 1;
            self.expirations += 1;
            return None;
        }
        self.links.move_to_back(entry.get().link);
        Some(entry.into_mut())
    }

    /// Writes `value` under `key`: replaces the value of a present key, or inserts a new one.
    /// Returns whether it added an item (the adapter then evicts if it is over `maxsize`).
    pub(super) fn upsert(&mut self, key: &str, hash: u64, value: StoredValue, expires_at: u64, lru: bool) -> bool {
        if let Some(item) = self.items.find_mut(hash, |item| item.is(key)) {
            item.value = value;
            item.expires_at = expires_at;
            self.links.set_expiry(item.link, expires_at);
            if lru {
                self.links.move_to_back(item.link);
            }
            return false;
        }
        let link = self.links.acquire(hash, expires_at);
        let hasher = &self.hasher;
        let item = Item { key: Key::new(key), value, expires_at, link };
        self.items.insert_unique(hash, item, |item| hash_key(hasher, item.key.as_bytes()));
        self.len += 1;
        true
    }

    /// Removes `key` if present.
    pub(super) fn remove_key(&mut self, hash: u64, key: &str) {
        if let Some(link) = self.items.find(hash, |item| item.is(key)).map(|item| item.link) {
            self.remove(link);
        }
    }

    /// Removes `key` if present and expired (a reader saw it expire).
    pub(super) fn expire_key(&mut self, hash: u64, key: &str, now: u64) {
        let expired = self.items.find(hash, |item| item.is(key)).filter(|item| item.expired(now)).map(|item| item.link);
        if let Some(link) = expired {
            self.remove(link);
            self.expirations += 1;
        }
    }

    /// Frees one place: an expired item if there is one, else the head of the order. Returns
    /// whether it removed anything.
    pub(super) fn evict_one(&mut self, now: &mut Now<'_>) -> bool {
        if let Some((top, expires_at)) = self.links.soonest() {
            if expires_at <= now.get() {
                self.remove(top);
                self.expirations += 1;
                return true;
            }
        }
        let Some(head) = self.links.head() else { return false };
        self.remove(head);
        self.evictions += 1;
        true
    }

    /// Removes up to `limit` expired items; returns how many.
    pub(super) fn purge_expired(&mut self, now: u64, limit: usize) -> usize {
        let mut purged = 0;
        while purged < limit {
            match self.links.soonest() {
                Some((top, expires_at)) if expires_at <= now => {
                    self.remove(top);
                    self.expirations += 1;
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

    /// The live keys, oldest (or least recently used) first.
    pub(super) fn keys(&self, now: u64) -> Vec<String> {
        let mut keys = Vec::with_capacity(self.len);
        let mut link = self.links.head();
        while let Some(id) = link {
            let hash = self.links.records[id as usize].hash;
            if let Some(item) = self.items.find(hash, |item| item.link == id) {
                if !item.expired(now) {
                    keys.push(item.key.to_string());
                }
            }
            link = self.links.next(id);
        }
        keys
    }

    pub(super) fn clear(&mut self) {
        *self = Self { evictions: self.evictions, expirations: self.expirations, ..Self::new(self.hasher.clone()) };
    }

    /// How many link records were ever needed (records are reused).
    #[cfg(test)]
    pub(super) fn records(&self) -> usize {
        self.links.records.len()
    }

    fn remove(&mut self, link: u32) {
        let hash = self.links.release(link);
        if let Ok(entry) = self.items.find_entry(hash, |item| item.link == link) {
            entry.remove();
            self.len -= 1;
        }
    }
}

// ===== impl Links =====

/// An item's place in the eviction list and the expiry heap.
#[derive(Clone, Copy)]
struct Record {
    /// The item's hash, to find it in the table from here.
    hash: u64,
    expires_at: u64,
    prev: u32,
    next: u32,
    /// Position in the expiry heap, `NIL` when the item has no TTL.
    heap_pos: u32,
}

/// The eviction list (head: evicted first) and the min-heap of expiry times, over records that
/// are reused through a free list.
struct Links {
    records: Vec<Record>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    heap: Vec<u32>,
}

impl Default for Links {
    fn default() -> Self {
        Self { records: Vec::new(), free: Vec::new(), head: NIL, tail: NIL, heap: Vec::new() }
    }
}

impl Links {
    /// A record for a new item, at the back of the list and in the heap if it expires.
    fn acquire(&mut self, hash: u64, expires_at: u64) -> u32 {
        let record = Record { hash, expires_at, prev: NIL, next: NIL, heap_pos: NIL };
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

    /// Drops a record from the list and the heap; returns its item's hash.
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

    fn head(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
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

    // ----- eviction list -----

    fn unlink(&mut self, id: u32) {
        let Record { prev, next, .. } = self.records[id as usize];
        if prev == NIL {
            self.head = next
        } else {
            self.records[prev as usize].next = next
        }
        if next == NIL {
            self.tail = prev
        } else {
            self.records[next as usize].prev = prev
        }
        let record = &mut self.records[id as usize];
        record.prev = NIL;
        record.next = NIL;
    }

    fn push_back(&mut self, id: u32) {
        let tail = self.tail;
        let record = &mut self.records[id as usize];
        record.prev = tail;
        record.next = NIL;
        if tail == NIL {
            self.head = id
        } else {
            self.records[tail as usize].next = id
        }
        self.tail = id;
    }

    fn move_to_back(&mut self, id: u32) {
        if self.tail != id {
            self.unlink(id);
            self.push_back(id);
        }
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
