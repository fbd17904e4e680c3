//! The value and entry types that a tower and its layers exchange.
//!
//! A [`StoredValue`] is a cheap, shareable handle on one cached value. It holds the value either
//! *typed* (as the Rust value the caller stored, so an in-process layer hands back a clone and
//! never parses), *encoded* (the JSON bytes a shared layer such as Redis returned), or both. Each
//! form is produced from the other on demand, at most once.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::error::Result;

/// What a value must be to be cached: serializable for shared layers, cloneable for in-process
/// hits, and shareable between threads.
///
/// It is implemented for every type that qualifies; you never implement it by hand.
///
/// ```
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct User { id: u64, name: String }
///
/// fn assert_cacheable<T: cache_tower::Cacheable>() {}
/// assert_cacheable::<User>();
/// assert_cacheable::<Vec<String>>();
/// ```
pub trait Cacheable: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Cacheable for T {}

/// One cached value, as layers store and return it. Cloning it shares it (one reference count).
///
/// ```
/// use cache_tower::adapter::StoredValue;
///
/// let typed = StoredValue::new(vec![1, 2, 3]);
/// assert_eq!(typed.json().unwrap(), b"[1,2,3]");
/// assert_eq!(typed.decode::<Vec<i32>>().unwrap(), vec![1, 2, 3]);
///
/// let encoded = StoredValue::from_json(b"[4,5]".to_vec());
/// assert_eq!(encoded.decode::<Vec<i32>>().unwrap(), vec![4, 5]);
/// ```
#[derive(Clone)]
pub struct StoredValue {
    inner: Arc<Shared<dyn Erased>>,
}

/// A value's tags beside the value itself: a read of the tags (every memory hit checks them) is
/// a field at a fixed offset, not a call through the value's vtable.
struct Shared<E: ?Sized> {
    tags: TagList,
    value: E,
}

/// The object-safe face of the two representations.
trait Erased: Send + Sync {
    /// The typed value, when this value has one.
    fn typed(&self) -> Option<&(dyn Any + Send + Sync)>;
    /// The JSON bytes, encoded on first use.
    fn json(&self) -> Result<&[u8]>;
    /// About how many bytes of memory the value holds: see [`StoredValue::weight`].
    fn weight(&self) -> usize;
    /// The JSON bytes this value arrived as, moved out (it is not used afterwards); `None` for
    /// a typed value.
    fn take_json(&mut self) -> Option<Vec<u8>>;
    /// A copy of this value carrying `tags` (for a value held elsewhere too).
    fn retagged(&self, tags: TagList) -> Arc<Shared<dyn Erased>>;
}

/// The tags of a value: `None` for an untagged one (most values), so they cost one word.
pub(crate) type TagList = Option<Arc<TagSet>>;

/// Tag names, as options carry them before they are given to a value.
pub(crate) type TagNames = Option<Arc<[Box<str>]>>;

/// A tagged value's tags, and when they were given to it.
#[derive(Debug)]
pub(crate) struct TagSet {
    names: Arc<[Box<str>]>,
    /// [`tag_clock::now`] when the value got its tags: a memory layer misses it once one of the
    /// tags is invalidated there later (`adapter/memory/tag_index.rs`).
    stamp: u64,
}

impl TagSet {
    /// When the value got its tags.
    pub(crate) fn stamp(&self) -> u64 {
        self.stamp
    }

    /// The names.
    pub(crate) fn names(&self) -> &[Box<str>] {
        &self.names
    }
}

/// The process-wide count of tag invalidations in memory layers: what stamps tagged values and
/// marks invalidated tags, so that "invalidated after it was tagged" is one comparison.
pub(crate) mod tag_clock {
    use std::sync::atomic::{AtomicU64, Ordering};

    static INVALIDATIONS: AtomicU64 = AtomicU64::new(0);

    /// The count now: a value tagged now carries it.
    pub(crate) fn now() -> u64 {
        INVALIDATIONS.load(Ordering::Acquire)
    }

    /// Counts one invalidation and returns its number: every value tagged before it carries a
    /// lower stamp.
    pub(crate) fn advance() -> u64 {
        INVALIDATIONS.fetch_add(1, Ordering::AcqRel) + 1
    }
}

/// Distinct tag names (repeats count once); `None` for none.
pub(crate) fn tag_names<I, S>(tags: I) -> TagNames
where
    I: IntoIterator<Item = S>,
    S: Into<Box<str>>,
{
    let mut list: Vec<Box<str>> = Vec::new();
    for tag in tags {
        let tag = tag.into();
        if !list.contains(&tag) {
            list.push(tag);
        }
    }
    (!list.is_empty()).then(|| list.into())
}

/// What an `Arc` adds to the value it holds: its two counts.
const ARC_COUNTS: usize = 2 * std::mem::size_of::<usize>();

/// Counts the bytes written to it, keeping none.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A value stored from Rust; its JSON is made on first demand and kept.
struct Typed<T> {
    value: T,
    json: OnceLock<Vec<u8>>,
}

/// A value that arrived as bytes from a shared layer (kept as received: no copy to shrink it).
struct Encoded {
    json: Vec<u8>,
}

impl<T: Cacheable> Erased for Typed<T> {
    fn typed(&self) -> Option<&(dyn Any + Send + Sync)> {
        Some(&self.value)
    }

    fn json(&self) -> Result<&[u8]> {
        if let Some(json) = self.json.get() {
            return Ok(json);
        }
        // Two threads may both encode the first time; one result is kept, both are equal.
        let encoded = codec::encode(&self.value)?;
        Ok(self.json.get_or_init(|| encoded))
    }

    fn weight(&self) -> usize {
        let encoded = match self.json.get() {
            Some(json) => json.len(),
            None => {
                let mut count = ByteCount(0);
                // A value that cannot be encoded is weighed by its inline size alone.
                let _ = serde_json::to_writer(&mut count, &self.value);
                count.0
            }
        };
        // The JSON length stands for what the value holds on the heap (text in strings, one
        // or a few bytes a number); the JSON kept once encoded counts too.
        ARC_COUNTS + std::mem::size_of::<Shared<Self>>() + encoded + self.json.get().map_or(0, Vec::capacity)
    }

    fn take_json(&mut self) -> Option<Vec<u8>> {
        None
    }

    fn retagged(&self, tags: TagList) -> Arc<Shared<dyn Erased>> {
        Arc::new(Shared { tags, value: Typed { value: self.value.clone(), json: self.json.clone() } })
    }
}

/// What a value's tags add to its weight: the list and the names.
fn tags_weight(tags: &TagList) -> usize {
    tags.as_ref().map_or(0, |tags| {
        2 * ARC_COUNTS
            + std::mem::size_of::<TagSet>()
            + tags.names.iter().map(|tag| std::mem::size_of::<Box<str>>() + tag.len()).sum::<usize>()
    })
}

impl Erased for Encoded {
    fn typed(&self) -> Option<&(dyn Any + Send + Sync)> {
        None
    }

    fn json(&self) -> Result<&[u8]> {
        Ok(&self.json)
    }

    fn weight(&self) -> usize {
        ARC_COUNTS + std::mem::size_of::<Shared<Self>>() + self.json.capacity()
    }

    fn take_json(&mut self) -> Option<Vec<u8>> {
        Some(std::mem::take(&mut self.json))
    }

    fn retagged(&self, tags: TagList) -> Arc<Shared<dyn Erased>> {
        Arc::new(Shared { tags, value: Encoded { json: self.json.clone() } })
    }
}

impl StoredValue {
    /// Wraps a Rust value. Nothing is encoded until a layer asks for [`json`](Self::json).
    pub fn new<T: Cacheable>(value: T) -> Self {
        Self { inner: Arc::new(Shared { tags: None, value: Typed { value, json: OnceLock::new() } }) }
    }

    /// Wraps JSON bytes read from a shared layer. They are decoded when a caller asks for a type.
    pub fn from_json(json: impl Into<Vec<u8>>) -> Self {
        Self { inner: Arc::new(Shared { tags: None, value: Encoded { json: json.into() } }) }
    }

    /// This value, carrying `tags` (instead of any it carried): [`CacheTower::invalidate_tag`](crate::CacheTower::invalidate_tag)
    /// of any of them makes it a miss in every layer. Repeated names count once; no tags makes
    /// the value untagged.
    ///
    /// A layer that stores bytes must keep a value's tags beside them and give them back on a
    /// read, or tag invalidation cannot reach what it holds: see
    /// [`CacheAdapter::invalidate_tag`](crate::adapter::CacheAdapter::invalidate_tag).
    ///
    /// ```
    /// use cache_tower::adapter::StoredValue;
    ///
    /// let value = StoredValue::new(7).with_tags(["user:1", "tenant:acme", "user:1"]);
    /// assert_eq!(value.tags().len(), 2);
    /// assert!(value.has_tag("tenant:acme"));
    /// assert!(!value.has_tag("user:2"));
    /// assert!(StoredValue::new(7).tags().is_empty());
    /// ```
    #[must_use]
    pub fn with_tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        self.set_tag_names(tag_names(tags));
        self
    }

    /// Gives the value these tags (none: untagged), stamped now; in place when this handle is
    /// the only one, else on a copy.
    pub(crate) fn set_tag_names(&mut self, names: TagNames) {
        self.set_tags_stamped(names, tag_clock::now());
    }

    /// Gives the value these tags with an earlier stamp: a value read from a shared layer is
    /// stamped when the read was sent, so an invalidation in memory while it was under way
    /// still hides it.
    pub(crate) fn set_tags_stamped(&mut self, names: TagNames, stamp: u64) {
        let tags = names.map(|names| Arc::new(TagSet { names, stamp }));
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.tags = tags,
            None => self.inner = self.inner.value.retagged(tags),
        }
    }

    /// The tags the value carries (none for most values).
    pub fn tags(&self) -> &[Box<str>] {
        self.inner.tags.as_ref().map_or(&[], |tags| tags.names())
    }

    /// Whether the value carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags().iter().any(|own| &**own == tag)
    }

    /// The value's tags and their stamp; `None` for an untagged value.
    #[inline]
    pub(crate) fn tag_set(&self) -> Option<&TagSet> {
        self.inner.tags.as_deref()
    }

    /// This value known in both forms: `value` was just decoded from it. Its JSON goes along,
    /// moved when this handle was the only one (as a value just read from a shared layer is),
    /// else copied; a value with no JSON becomes `value` alone. Its tags go along.
    pub(crate) fn with_typed<T: Cacheable>(mut self, value: T) -> Self {
        let tags = self.inner.tags.clone();
        let json = match Arc::get_mut(&mut self.inner).and_then(|inner| inner.value.take_json()) {
            Some(json) => OnceLock::from(json),
            None => match self.inner.value.json() {
                Ok(json) => OnceLock::from(json.to_vec()),
                Err(_) => OnceLock::new(),
            },
        };
        Self { inner: Arc::new(Shared { tags, value: Typed { value, json } }) }
    }

    /// Whether `other` is this very value (a clone of the same handle), not merely an equal one.
    pub(crate) fn is_same(&self, other: &StoredValue) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.inner), Arc::as_ptr(&other.inner))
    }

    /// The value as JSON bytes, for layers that store bytes.
    ///
    /// # Errors
    /// [`ErrorKind::Encode`](crate::error::ErrorKind::Encode) when the typed value cannot be written as
    /// JSON (for example a map whose keys are not strings).
    pub fn json(&self) -> Result<&[u8]> {
        self.inner.value.json()
    }

    /// Whether this value holds a typed `T`, so [`decode`](Self::decode) is a clone, not a parse.
    pub fn is<T: Cacheable>(&self) -> bool {
        self.inner.value.typed().is_some_and(|any| any.is::<T>())
    }

    /// The value as a `T`: a clone when it holds a typed `T`, otherwise a JSON decode.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`](crate::error::ErrorKind::Decode) when the stored value is not a valid `T`
    /// (for example a struct whose shape changed since the value was written).
    pub fn decode<T: Cacheable>(&self) -> Result<T> {
        if let Some(value) = self.typed::<T>() {
            return Ok(value.clone());
        }
        codec::decode(self.inner.value.json()?)
    }

    /// The typed `T` this value holds, if it holds one (no clone, no parse): `None` for a value
    /// of another type, or one that is JSON only (made by [`from_json`](Self::from_json); a
    /// value the tower decoded from a shared layer to backfill a memory layer holds its type).
    ///
    /// ```
    /// use cache_tower::adapter::StoredValue;
    ///
    /// let value = StoredValue::new(String::from("text"));
    /// assert_eq!(value.typed::<String>().map(String::len), Some(4));
    /// assert_eq!(value.typed::<u32>(), None);
    /// ```
    #[inline]
    pub fn typed<T: Cacheable>(&self) -> Option<&T> {
        self.inner.value.typed().and_then(|any| any.downcast_ref::<T>())
    }

    /// About how many bytes of memory the value holds, as a memory layer with `max_bytes` weighs
    /// it when it has no weigher of its own: its allocation, plus the length of its JSON (which
    /// stands for what it holds on the heap: a string's text, a vector's items), plus the JSON
    /// itself once it was encoded. A value that arrived as JSON weighs its bytes.
    ///
    /// Weighing a typed value that was never encoded writes it as JSON into a byte counter (no
    /// allocation), so it costs about an encode.
    ///
    /// ```
    /// use cache_tower::adapter::StoredValue;
    ///
    /// let short = StoredValue::new("a".repeat(10));
    /// let long = StoredValue::new("a".repeat(10_000));
    /// assert!(long.weight() - short.weight() >= 9_990);
    /// ```
    pub fn weight(&self) -> usize {
        self.inner.value.weight() + tags_weight(&self.inner.tags)
    }
}

impl fmt::Debug for StoredValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may hold personal data; show only the form, never the content.
        let form = if self.inner.value.typed().is_some() { "typed" } else { "encoded" };
        f.debug_struct("StoredValue").field("form", &form).finish_non_exhaustive()
    }
}

/// A value together with how long it may still live: what a layer returns from a read, and what
/// it is given to write.
///
/// On a read, [`ttl`](Self::ttl) is the time the entry has left in that layer (`None`: no expiry).
/// On a write, it is the longest the entry may live: a layer stores it for the shorter of that and
/// its own TTL. This is how a backfilled entry never outlives the copy it was made from.
///
/// ```
/// use cache_tower::adapter::{Entry, StoredValue};
/// use std::time::Duration;
///
/// let entry = Entry::new(StoredValue::new("v".to_string()), Some(Duration::from_secs(5)));
/// assert_eq!(entry.ttl(), Some(Duration::from_secs(5)));
/// assert_eq!(entry.value().decode::<String>().unwrap(), "v");
/// ```
#[derive(Debug, Clone)]
pub struct Entry {
    value: StoredValue,
    ttl: Option<Duration>,
    staleness: Staleness,
}

/// What an entry says about staleness.
#[derive(Debug, Clone, Copy)]
enum Staleness {
    /// Nothing: fresh, and written with the layer's stale window.
    Plain,
    /// On a write: the stale window the entry is kept for after its TTL.
    Window(Duration),
    /// On a read: stale, and usable as such for this long.
    Stale(Duration),
}

impl Entry {
    /// An entry of `value` that lives at most `ttl` (`None`: as long as the layer keeps entries).
    pub fn new(value: StoredValue, ttl: Option<Duration>) -> Self {
        Self { value, ttl, staleness: Staleness::Plain }
    }

    /// A stale entry, as a layer returns it from [`CacheAdapter::get_stale`](crate::adapter::CacheAdapter::get_stale):
    /// its TTL has run out, and it may still be served as a fallback for `left` (the rest of its
    /// stale window). Its [`ttl`](Self::ttl) is zero, so it is never backfilled.
    ///
    /// ```
    /// use cache_tower::adapter::{Entry, StoredValue};
    /// use std::time::Duration;
    ///
    /// let entry = Entry::stale(StoredValue::new(1), Duration::from_secs(30));
    /// assert!(entry.is_stale());
    /// assert_eq!(entry.ttl(), Some(Duration::ZERO));
    /// assert_eq!(entry.stale_left(), Some(Duration::from_secs(30)));
    /// ```
    pub fn stale(value: StoredValue, left: Duration) -> Self {
        Self { value, ttl: Some(Duration::ZERO), staleness: Staleness::Stale(left) }
    }

    /// This entry, to be written with a stale window of its own: a layer that keeps stale
    /// entries per entry (the memory layer) keeps it for `window` past its TTL instead of the
    /// layer's window. A layer that derives freshness from the time left (Redis) uses its own.
    ///
    /// ```
    /// use cache_tower::adapter::{Entry, StoredValue};
    /// use std::time::Duration;
    ///
    /// let entry = Entry::new(StoredValue::new(1), Some(Duration::from_secs(60)))
    ///     .with_stale_window(Duration::from_secs(600));
    /// assert_eq!(entry.stale_window(), Some(Duration::from_secs(600)));
    /// assert!(!entry.is_stale());
    /// ```
    #[must_use]
    pub fn with_stale_window(mut self, window: Duration) -> Self {
        self.staleness = Staleness::Window(window);
        self
    }

    /// The stale window this entry is written with, when it has one of its own.
    pub fn stale_window(&self) -> Option<Duration> {
        match self.staleness {
            Staleness::Window(window) => Some(window),
            Staleness::Plain | Staleness::Stale(_) => None,
        }
    }

    /// Whether this entry, as read, is past its TTL and only usable as a stale fallback.
    pub fn is_stale(&self) -> bool {
        self.stale_left().is_some()
    }

    /// For a stale entry, how much longer it may be served as a fallback.
    pub fn stale_left(&self) -> Option<Duration> {
        match self.staleness {
            Staleness::Stale(left) => Some(left),
            Staleness::Plain | Staleness::Window(_) => None,
        }
    }

    /// The value.
    pub fn value(&self) -> &StoredValue {
        &self.value
    }

    /// The time left (on reads) or the longest life allowed (on writes); `None` means no limit.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// This entry with `value` instead (its TTL and staleness kept).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn with_value(self, value: StoredValue) -> Self {
        Self { value, ..self }
    }

    /// Splits the entry into its value and TTL (its stale window and staleness dropped).
    pub fn into_parts(self) -> (StoredValue, Option<Duration>) {
        (self.value, self.ttl)
    }
}

/// The TTL a layer with TTL `layer_ttl` gives an entry written with `entry_ttl`: the shorter one.
pub(crate) fn effective_ttl(layer_ttl: Option<Duration>, entry_ttl: Option<Duration>) -> Option<Duration> {
    match (layer_ttl, entry_ttl) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_value_decodes_by_clone_and_encodes_once() {
        let value = StoredValue::new(String::from("hello"));
        assert!(value.is::<String>());
        assert!(!value.is::<u32>());
        assert_eq!(value.decode::<String>().unwrap(), "hello");
        let first = value.json().unwrap().as_ptr();
        assert_eq!(value.json().unwrap(), b"\"hello\"");
        assert_eq!(value.json().unwrap().as_ptr(), first, "json is cached");
    }

    #[test]
    fn typed_value_decodes_as_another_type_through_json() {
        let value = StoredValue::new(7u8);
        assert_eq!(value.decode::<u64>().unwrap(), 7);
        assert!(value.decode::<String>().is_err());
    }

    #[test]
    fn encoded_value_reports_bad_json_as_decode_error() {
        let value = StoredValue::from_json(b"{not json".to_vec());
        assert_eq!(value.decode::<u32>().unwrap_err().kind(), crate::error::ErrorKind::Decode);
    }

    #[test]
    fn a_value_read_as_json_keeps_its_bytes_when_it_gains_its_type() {
        let read = StoredValue::from_json(b"[1,2]".to_vec());
        let bytes = read.json().unwrap().as_ptr();
        let typed = read.with_typed(vec![1, 2]);
        assert!(typed.is::<Vec<i32>>());
        assert_eq!(typed.json().unwrap(), b"[1,2]");
        assert_eq!(typed.json().unwrap().as_ptr(), bytes, "the only handle's JSON is moved, not copied");

        let shared = StoredValue::from_json(b"[3]".to_vec());
        let other = shared.clone();
        let typed = shared.with_typed(vec![3]);
        assert_eq!(typed.json().unwrap(), b"[3]");
        assert_eq!(other.json().unwrap(), b"[3]", "a shared handle's JSON is copied and stays");
    }

    #[test]
    fn debug_does_not_show_content() {
        let value = StoredValue::new(String::from("secret"));
        assert!(!format!("{value:?}").contains("secret"));
    }

    #[test]
    fn effective_ttl_is_the_shorter() {
        let s = Duration::from_secs;
        assert_eq!(effective_ttl(None, None), None);
        assert_eq!(effective_ttl(Some(s(5)), None), Some(s(5)));
        assert_eq!(effective_ttl(None, Some(s(3))), Some(s(3)));
        assert_eq!(effective_ttl(Some(s(5)), Some(s(3))), Some(s(3)));
    }
}
