//! Tags in Redis: a version per tag, checked when a tagged entry is read, so that
//! [`CacheTower::invalidate_tag`](crate::CacheTower::invalidate_tag) costs one round trip
//! whatever the number of entries (`docs/adr/0019-groups-of-entries-tags-clear-and-batches.md`,
//! §3).
//!
//! * **The record.** `<namespace>\0tag\0<tag>` holds the tag's version, a random 64-bit number
//!   in decimal; no record means version 0. `invalidate_tag` is one `SET` of a new version, for
//!   the layer's TTL plus its stale window (no entry lives longer, so an expired record's
//!   version is carried by no live entry). A record holding something else than a number has,
//!   as its version, a hash of what it holds: it still changes when it is overwritten.
//! * **A tagged entry** is its JSON after one header line that names the versions its tags had
//!   when it was written: `#ct-tags {"<tag>":"<version>",...}\n<json>`. JSON never starts with
//!   `#`, so an untagged entry (the plain JSON) is told apart by its first byte: untagged reads
//!   cost what they cost before tags existed.
//! * **A read** of a tagged entry is a hit only while every version in its header is current; a
//!   header that does not parse is a miss (logged). The current versions come from
//!   [`TagVersions`]: while the layer's invalidation listener is subscribed, the versions it has
//!   read are kept (the listener forgets a tag when its record changes, and everything when it
//!   loses its subscription); otherwise the records are read (one `MGET`) by every operation
//!   that needs them.
//! * **A write** of a tagged entry needs the current versions of its tags in the same way.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use foldhash::fast::RandomState;
use parking_lot::Mutex;

use crate::adapter::{Reply, Request};
use crate::value::{Entry, StoredValue};

/// What a tag record's Redis key has between the namespace and the tag.
pub(super) const TAG_INFIX: &[u8] = b"\0tag\0";

/// The most versions kept (`TagVersions`): past it they are all forgotten and read again, so a
/// process that meets millions of distinct tags keeps a bounded map.
const MAX_KEPT: usize = 100_000;

/// How a tagged entry's bytes start.
const HEADER: &[u8] = b"#ct-tags ";

/// How many of a value's first bytes `exists` reads: its header must fit (see
/// [`MAX_HEADER`]).
pub(super) const PEEK: usize = 65_536;

/// The longest header a tagged entry may have, its line end included: a value with more tags
/// than fit is refused with an error.
const MAX_HEADER: usize = PEEK - 1;

/// The versions of tags, as an operation uses them: `(tag, version)`.
pub(super) type Versions = Vec<(Box<str>, u64)>;

/// The versions this instance knows, and whether it may trust them (see the module docs).
#[derive(Debug)]
pub(super) struct TagVersions {
    /// The namespace, then [`TAG_INFIX`]: what every record's key starts with.
    prefix: Vec<u8>,
    known: Mutex<HashMap<Box<str>, u64, RandomState>>,
    /// Whether a subscribed listener forgets what changes (else nothing is kept).
    followed: AtomicBool,
    /// How many times something was forgotten: a read that began before a forget keeps nothing.
    forgets: AtomicU64,
}

/// What [`TagVersions::lookup`] found: the versions known, the tags to read, and the count of
/// forgets when it looked.
pub(super) struct Lookup<'t> {
    pub(super) known: Versions,
    pub(super) missing: Vec<&'t str>,
    forgets: u64,
}

impl TagVersions {
    pub(super) fn new(namespace: &[u8]) -> Self {
        Self {
            prefix: [namespace, TAG_INFIX].concat(),
            known: Mutex::default(),
            followed: AtomicBool::new(false),
            forgets: AtomicU64::new(0),
        }
    }

    /// What every record's key starts with.
    pub(super) fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The versions of `tags` that can be used without reading their records, and the tags
    /// whose records must be read.
    pub(super) fn lookup<'t>(&self, tags: &[&'t str]) -> Lookup<'t> {
        let forgets = self.forgets.load(Ordering::Acquire);
        if !self.followed.load(Ordering::Acquire) {
            return Lookup { known: Versions::new(), missing: tags.to_vec(), forgets };
        }
        let known = self.known.lock();
        let mut found = Versions::with_capacity(tags.len());
        let mut missing = Vec::new();
        for &tag in tags {
            match known.get(tag) {
                Some(&version) => found.push((tag.into(), version)),
                None => missing.push(tag),
            }
        }
        Lookup { known: found, missing, forgets }
    }

    /// Takes in the records of `lookup.missing` (the values of their `MGET`, in order): the
    /// versions of every tag looked up. They are kept when a listener follows the records and
    /// nothing was forgotten since the lookup.
    pub(super) fn learn(&self, lookup: Lookup<'_>, records: &[Option<StoredValue>]) -> Versions {
        let Lookup { mut known, missing, forgets } = lookup;
        let read: Versions = missing
            .iter()
            .zip(records.iter().map(|record| record.as_ref().and_then(|record| record.json().ok())))
            .map(|(tag, record)| ((*tag).into(), record.map_or(0, version_of)))
            .collect();
        if self.followed.load(Ordering::Acquire) {
            let mut kept = self.known.lock();
            if self.forgets.load(Ordering::Acquire) == forgets {
                if kept.len() + read.len() > MAX_KEPT {
                    kept.clear();
                }
                kept.extend(read.iter().cloned());
            }
        }
        known.extend(read);
        known
    }

    /// Forgets `tag`'s version (its record changed).
    pub(super) fn forget(&self, tag: &str) {
        let mut known = self.known.lock();
        self.forgets.fetch_add(1, Ordering::AcqRel);
        known.remove(tag);
    }

    /// Forgets every version (anything may have changed: a flush, a new subscription).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn forget_all(&self) {
        let mut known = self.known.lock();
        self.forgets.fetch_add(1, Ordering::AcqRel);
        known.clear();
    }

    /// Forgets every version, and keeps versions from now on only if `followed` (a listener
    /// subscribed and forgets what changes).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn set_followed(&self, followed: bool) {
        self.forget_all();
        self.followed.store(followed, Ordering::Release);
    }

    /// The tag whose record `rest` (a Redis key with the namespace taken off) is.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn tag_of(rest: &[u8]) -> Option<&str> {
        std::str::from_utf8(rest.strip_prefix(TAG_INFIX)?).ok()
    }
}

/// A new random version (never 0, the version of a tag never invalidated).
pub(super) fn new_version() -> u64 {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    // A hasher with keys random to this process, over a count and the time: unpredictable
    // enough that two instances never pick the same version.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNT.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.finish().max(1)
}

/// The version a record holds: its number, or for anything else a hash of its bytes.
fn version_of(record: &[u8]) -> u64 {
    if let Some(number) = std::str::from_utf8(record).ok().and_then(|text| text.parse().ok()) {
        return number;
    }
    // FNV-1a: the same everywhere, so every instance reads the same version.
    record.iter().fold(0xcbf2_9ce4_8422_2325, |hash: u64, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3))
}

/// The distinct tags of the entries `request` writes (none for other requests).
pub(super) fn written<'r>(request: &Request<'r>) -> Vec<&'r str> {
    let mut tags: Vec<&str> = Vec::new();
    let mut add = |entry: &'r Entry| {
        for tag in entry.value().tags() {
            if !tags.contains(&&**tag) {
                tags.push(tag);
            }
        }
    };
    match *request {
        Request::Set(_, entry) => add(entry),
        Request::Mset(items) => items.iter().for_each(|(_, entry)| add(entry)),
        _ => {}
    }
    tags
}

/// The bytes a value is stored as: its JSON, after a header of its tags' versions when it has
/// tags.
pub(super) fn stored_bytes<'v>(
    value: &'v StoredValue,
    versions: &Versions,
) -> crate::Result<std::borrow::Cow<'v, [u8]>> {
    let json = value.json()?;
    let tags = value.tags();
    if tags.is_empty() {
        return Ok(std::borrow::Cow::Borrowed(json));
    }
    let header: serde_json::Map<String, serde_json::Value> = tags
        .iter()
        .map(|tag| {
            let version = versions.iter().find(|(known, _)| known == tag).map_or(0, |(_, version)| *version);
            (tag.to_string(), serde_json::Value::String(version.to_string()))
        })
        .collect();
    let header = crate::codec::encode(&header)?;
    if HEADER.len() + header.len() + 1 > MAX_HEADER {
        return Err(crate::Error::new(
            crate::error::ErrorKind::Encode,
            format!(
                "the {} tags of this value take {} bytes in Redis, more than the {MAX_HEADER} a value's tags may take",
                tags.len(),
                header.len()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(HEADER.len() + header.len() + 1 + json.len());
    bytes.extend_from_slice(HEADER);
    bytes.extend_from_slice(&header);
    bytes.push(b'\n');
    bytes.extend_from_slice(json);
    Ok(std::borrow::Cow::Owned(bytes))
}

/// A tagged value's header, read: the versions its tags had, and where its JSON starts.
struct Header {
    versions: Vec<(String, u64)>,
    body: usize,
}

/// The header of a value's bytes: `None` for an untagged value, `Err(())` for a header that
/// does not parse.
fn header(bytes: &[u8]) -> Option<Result<Header, ()>> {
    let rest = bytes.strip_prefix(HEADER)?;
    let Some(end) = rest.iter().position(|&byte| byte == b'\n') else { return Some(Err(())) };
    let parsed =
        serde_json::from_slice::<std::collections::BTreeMap<String, String>>(&rest[..end]).map_err(|_| ()).and_then(
            |map| map.into_iter().map(|(tag, version)| Ok((tag, version.parse::<u64>().map_err(|_| ())?))).collect(),
        );
    Some(parsed.map(|versions| Header { versions, body: HEADER.len() + end + 1 }))
}

/// Hands each value of a reply, whatever its kind, to `each` (no allocation: this runs on
/// every read).
fn each_value<'r>(reply: &'r Reply, mut each: impl FnMut(&'r StoredValue)) {
    match reply {
        Reply::Entry(Some(entry)) => each(entry.value()),
        Reply::Value(Some(value)) => each(value),
        Reply::Entries(entries) => entries.iter().flatten().for_each(|entry| each(entry.value())),
        Reply::Values(values) => values.iter().flatten().for_each(each),
        _ => {}
    }
}

/// The distinct tags of the tagged values of a read's reply, whose versions [`checked`] needs;
/// `None` (and no allocation) when no value has a tags header.
pub(super) fn read(reply: &Reply) -> Option<Vec<String>> {
    let mut tags: Option<Vec<String>> = None;
    each_value(reply, |value| {
        let Ok(json) = value.json() else { return };
        if json.first() != HEADER.first() {
            return;
        }
        let Some(parsed) = header(json) else { return };
        let tags = tags.get_or_insert_with(Vec::new);
        // A header that does not parse needs no versions: `checked` makes it a miss.
        for (tag, _) in parsed.map(|header| header.versions).unwrap_or_default() {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
    });
    tags
}

/// The reply with each tagged value checked against `current`: its header taken off and its
/// tags set (stamped `stamp`, taken before the read was sent) when every version is current,
/// else a miss.
pub(super) fn checked(reply: Reply, current: &Versions, stamp: u64) -> Reply {
    let check = |value: StoredValue| -> Option<StoredValue> {
        let Ok(json) = value.json() else { return Some(value) };
        match header(json) {
            None => Some(value),
            Some(Err(())) => {
                tracing::warn!("a cached value in Redis has a tags header that does not parse; treated as a miss");
                None
            }
            Some(Ok(Header { versions, body: start })) => {
                let is_current = |(tag, version): &(String, u64)| {
                    current.iter().any(|(known, now)| **known == **tag && now == version)
                };
                if !versions.iter().all(is_current) {
                    return None;
                }
                let mut value = StoredValue::from_json(json[start..].to_vec());
                value.set_tags_stamped(crate::value::tag_names(versions.into_iter().map(|(tag, _)| tag)), stamp);
                Some(value)
            }
        }
    };
    let check_entry = |entry: Entry| {
        let value = check(entry.value().clone())?;
        Some(entry.with_value(value))
    };
    match reply {
        Reply::Entry(entry) => Reply::Entry(entry.and_then(check_entry)),
        Reply::Value(value) => Reply::Value(value.and_then(check)),
        Reply::Entries(entries) => {
            Reply::Entries(entries.into_iter().map(|entry| entry.and_then(check_entry)).collect())
        }
        Reply::Values(values) => Reply::Values(values.into_iter().map(|value| value.and_then(check)).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(json: &[u8], tags: &[&str]) -> StoredValue {
        StoredValue::from_json(json.to_vec()).with_tags(tags.iter().copied())
    }

    #[test]
    fn an_untagged_value_is_stored_as_its_json_and_a_tagged_one_after_a_header() {
        assert_eq!(&*stored_bytes(&StoredValue::new(1), &Versions::new()).unwrap(), b"1");
        let versions: Versions = vec![("a".into(), 7)];
        let value = tagged(b"[1]", &["a", "b"]);
        let bytes = stored_bytes(&value, &versions).unwrap();
        assert_eq!(&*bytes, b"#ct-tags {\"a\":\"7\",\"b\":\"0\"}\n[1]");
    }

    #[test]
    fn a_read_is_a_hit_only_while_every_version_is_current() {
        let value = tagged(b"[1]", &["a", "b\n\"odd"]);
        let bytes = stored_bytes(&value, &vec![("a".into(), 7)]).unwrap();
        let reply = || Reply::Value(Some(StoredValue::from_json(bytes.to_vec())));
        assert_eq!(read(&reply()), Some(vec!["a".to_owned(), "b\n\"odd".to_owned()]));
        let current: Versions = vec![("a".into(), 7), ("b\n\"odd".into(), 0)];
        let Reply::Value(Some(value)) = checked(reply(), &current, 0) else { panic!("a hit") };
        assert_eq!(value.json().unwrap(), b"[1]");
        assert!(value.has_tag("a") && value.has_tag("b\n\"odd"));
        let moved: Versions = vec![("a".into(), 8), ("b\n\"odd".into(), 0)];
        assert!(matches!(checked(reply(), &moved, 0), Reply::Value(None)), "a version moved: a miss");
    }

    #[test]
    fn a_header_that_does_not_parse_is_a_miss_and_plain_json_passes_untouched() {
        for broken in [&b"#ct-tags {\"a\":\"x\"}\n1"[..], b"#ct-tags {\"a\":\"1\"}", b"#ct-tags nope\n1"] {
            let reply = Reply::Values(vec![Some(StoredValue::from_json(broken.to_vec()))]);
            assert_eq!(read(&reply), Some(Vec::new()), "checked, with no versions to read");
            assert!(matches!(&checked(reply, &Versions::new(), 0), Reply::Values(values) if values[0].is_none()));
        }
        let reply = Reply::Values(vec![Some(StoredValue::from_json(b"{\"a\":1}".to_vec())), None]);
        assert_eq!(read(&reply), None);
        let Reply::Values(values) = checked(reply, &Versions::new(), 0) else { panic!() };
        assert_eq!(values[0].as_ref().unwrap().json().unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn records_read_as_versions_and_are_kept_only_while_followed() {
        assert_eq!(version_of(b"42"), 42);
        assert_eq!(version_of(b"garbage"), version_of(b"garbage"));
        assert_ne!(version_of(b"garbage"), version_of(b"garbagf"));
        let versions = TagVersions::new(b"ns:");
        assert_eq!(versions.prefix(), b"ns:\0tag\0");
        let lookup = versions.lookup(&["a"]);
        assert_eq!(lookup.missing, vec!["a"]);
        assert_eq!(versions.learn(lookup, &[Some(StoredValue::from_json(b"5".to_vec()))]), vec![("a".into(), 5)]);
        assert_eq!(versions.lookup(&["a"]).missing, vec!["a"], "not followed: nothing kept");
        versions.set_followed(true);
        let lookup = versions.lookup(&["a", "b"]);
        versions.learn(lookup, &[Some(StoredValue::from_json(b"5".to_vec())), None]);
        let lookup = versions.lookup(&["a", "b"]);
        assert!(lookup.missing.is_empty());
        assert_eq!(lookup.known, vec![("a".into(), 5), ("b".into(), 0)]);
        let racing = versions.lookup(&["c"]);
        versions.forget("a");
        versions.learn(racing, &[None]);
        assert_eq!(versions.lookup(&["a", "c"]).missing, vec!["a", "c"], "a read older than a forget keeps nothing");
        assert_eq!(TagVersions::tag_of(b"\0tag\0user:1"), Some("user:1"));
        assert_eq!(TagVersions::tag_of(b"user:1"), None);
        assert_ne!(new_version(), new_version());
    }
}
