//! The generation of a Redis namespace: what [`CacheTower::clear`](crate::CacheTower::clear)
//! moves on, so that clearing costs one round trip whatever the namespace holds
//! (`docs/adr/0019-groups-of-entries-tags-clear-and-batches.md`, §2).
//!
//! * The record `<namespace>\0generation` holds the namespace's generation, an integer; no
//!   record means 0. `clear` is one `INCR` of it.
//! * The data keys of generation 0 are `<namespace><key>` (the layout of a tower that was never
//!   cleared); those of generation `N` are `<namespace>\0g<N>\0<key>`. The keys of older
//!   generations are never read again: their TTL or the next `flush` removes them.
//! * Every instance learns the generation when a connection opens (pipelined with the script
//!   loading), from its invalidation listener when the record changes (the listener then empties
//!   the memory layers above), and, while no listener follows the record (invalidation off, or
//!   the listener not subscribed), by reading the record again before an operation once its last
//!   read is over [`REREAD_AFTER`] old.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::Value;

/// What the generation record's Redis key has after the namespace.
pub(super) const RECORD_SUFFIX: &[u8] = b"\0generation";

/// How old the last read of the record may be before an operation reads it again, while no
/// listener follows it: the longest another instance's `clear` takes to reach this one then.
pub(super) const REREAD_AFTER: Duration = Duration::from_secs(1);

/// A namespace's generation as this instance knows it, shared by the layer's operations, its
/// connections and its listener.
#[derive(Debug)]
pub(super) struct Generation {
    namespace: Vec<u8>,
    /// The record's Redis key.
    record: Vec<u8>,
    current: AtomicU64,
    /// When the record was last read, in milliseconds since `epoch`, plus one (0: never).
    read_at: AtomicU64,
    epoch: Instant,
    /// Whether a subscribed listener follows the record (then it is not read before operations).
    followed: AtomicBool,
}

/// How a generation number was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Learnt {
    /// Read from the record (a connection's handshake, the listener, a re-read): what the record
    /// holds now, taken as it is, even lower (the record was deleted: `FLUSHDB`).
    Read,
    /// The reply to this instance's own `INCR`: the generation moves up to it, never down (a
    /// listener may have read a later one already).
    Incremented,
}

impl Generation {
    pub(super) fn new(namespace: &[u8]) -> Self {
        Self {
            namespace: namespace.to_vec(),
            record: [namespace, RECORD_SUFFIX].concat(),
            current: AtomicU64::new(0),
            read_at: AtomicU64::new(0),
            epoch: Instant::now(),
            followed: AtomicBool::new(false),
        }
    }

    /// The record's Redis key.
    pub(super) fn record(&self) -> &[u8] {
        &self.record
    }

    /// The read of the record: `GETRANGE <record> 0 -1`, the whole value (empty for no record).
    /// Not `GET`, so that `INFO commandstats` counts the layer's bookkeeping apart from its
    /// reads of data (a new connection sends it in its handshake; see the tests of round trips).
    pub(super) fn read(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("GETRANGE");
        cmd.arg(&self.record).arg(0).arg(-1);
        cmd
    }

    /// The generation keys are read and written under now.
    pub(super) fn current(&self) -> u64 {
        self.current.load(Ordering::Acquire)
    }

    /// What every data key of generation `generation` starts with: the namespace, then (past
    /// generation 0) `\0g<N>\0`.
    pub(super) fn prefix_of(&self, generation: u64) -> Cow<'_, [u8]> {
        if generation == 0 {
            return Cow::Borrowed(&self.namespace);
        }
        let mut prefix = Vec::with_capacity(self.namespace.len() + 24);
        prefix.extend_from_slice(&self.namespace);
        prefix.extend_from_slice(b"\0g");
        prefix.extend_from_slice(generation.to_string().as_bytes());
        prefix.push(0);
        Cow::Owned(prefix)
    }

    /// Takes in a generation number; whether it changed the current one.
    pub(super) fn learn(&self, generation: u64, how: Learnt) -> bool {
        self.read_at.store(self.millis() + 1, Ordering::Release);
        let before = match how {
            Learnt::Read => self.current.swap(generation, Ordering::AcqRel),
            Learnt::Incremented => self.current.fetch_max(generation, Ordering::AcqRel),
        };
        before != generation && (how == Learnt::Read || before < generation)
    }

    /// Whether the record should be read before the next operation: nobody follows it, and the
    /// last read is over [`REREAD_AFTER`] old.
    pub(super) fn is_due(&self) -> bool {
        if self.followed.load(Ordering::Acquire) {
            return false;
        }
        // Never read: no connection is open yet, and the one the operation opens reads it.
        let read_at = self.read_at.load(Ordering::Acquire);
        read_at != 0 && (self.millis() + 1).saturating_sub(read_at) > REREAD_AFTER.as_millis() as u64
    }

    /// Whether a subscribed listener follows the record from now on.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn set_followed(&self, followed: bool) {
        self.followed.store(followed, Ordering::Release);
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }
}

/// Whether `request` reads or writes data keys (whose Redis keys depend on the generation).
pub(super) fn of_data_keys(request: &crate::adapter::Request<'_>) -> bool {
    use crate::adapter::Request;
    matches!(
        request,
        Request::Get(_)
            | Request::GetValue(_)
            | Request::GetStale(_)
            | Request::Mget(_)
            | Request::MgetValues(_)
            | Request::Set(..)
            | Request::Mset(_)
            | Request::Delete(_)
            | Request::DeleteMany(_)
            | Request::Exists(_)
    )
}

/// The generation a reply of [`Generation::read`] or of `INCR` of the record says; `Err` with what is wrong when
/// the record holds something else than a generation number.
pub(super) fn parse(reply: &Value) -> Result<u64, String> {
    let text = match reply {
        Value::Nil => return Ok(0),
        Value::BulkString(bytes) if bytes.is_empty() => return Ok(0),
        Value::Int(number) => return u64::try_from(*number).map_err(|_| format!("a negative generation ({number})")),
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes),
        Value::SimpleString(text) => Cow::Borrowed(text.as_str()),
        other => return Err(format!("an unexpected reply ({other:?})")),
    };
    text.parse::<u64>()
        .map_err(|_| format!("{:?}, which is not a generation number", text.chars().take(40).collect::<String>()))
}

/// The tower key of a data key's Redis key with the namespace taken off (`rest`), whatever its
/// generation: `Some(key)` for a data key, `None` for the generation record, a lock or a tag
/// record (keys of the layer's own bookkeeping, all starting with `\0`).
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(super) fn tower_key(rest: &[u8]) -> Option<&[u8]> {
    let Some(inner) = rest.strip_prefix(b"\0") else { return Some(rest) };
    let after_g = inner.strip_prefix(b"g")?;
    let digits = after_g.iter().take_while(|byte| byte.is_ascii_digit()).count();
    match after_g.get(digits) {
        Some(0) if digits > 0 => Some(&after_g[digits + 1..]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_zero_is_the_plain_namespace_and_later_ones_add_an_infix() {
        let generation = Generation::new(b"app:");
        assert_eq!(generation.record(), b"app:\0generation");
        assert_eq!(&*generation.prefix_of(0), b"app:");
        assert_eq!(&*generation.prefix_of(12), b"app:\0g12\0");
    }

    #[test]
    fn a_read_is_taken_as_it_is_and_an_increment_only_moves_up() {
        let generation = Generation::new(b"");
        assert!(generation.learn(3, Learnt::Incremented));
        assert!(!generation.learn(2, Learnt::Incremented));
        assert_eq!(generation.current(), 3);
        assert!(!generation.learn(3, Learnt::Read));
        assert!(generation.learn(0, Learnt::Read), "a deleted record is generation 0");
        assert_eq!(generation.current(), 0);
    }

    #[test]
    fn the_record_is_read_again_only_when_nobody_follows_it_and_the_last_read_is_old() {
        let mut generation = Generation::new(b"");
        assert!(!generation.is_due(), "never read: the handshake of the first connection reads it");
        generation.learn(0, Learnt::Read);
        assert!(!generation.is_due(), "just read");
        // As if the layer had been made two seconds ago and the record read at its start.
        let Some(earlier) = Instant::now().checked_sub(2 * REREAD_AFTER) else { return };
        generation.epoch = earlier;
        generation.read_at.store(1, Ordering::Release);
        generation.followed.store(true, Ordering::Release);
        assert!(!generation.is_due(), "a listener follows it");
        generation.set_followed(false);
        assert!(generation.is_due(), "nobody follows it and the last read is over a second old");
    }

    #[test]
    fn record_values_parse_or_say_what_is_wrong() {
        assert_eq!(parse(&Value::Nil), Ok(0));
        assert_eq!(parse(&Value::BulkString(Vec::new())), Ok(0), "GETRANGE of no record");
        assert_eq!(parse(&Value::Int(7)), Ok(7));
        assert_eq!(parse(&Value::BulkString(b"42".to_vec())), Ok(42));
        let err = parse(&Value::BulkString(b"forty".to_vec())).unwrap_err();
        assert!(err.contains("\"forty\"") && err.contains("not a generation number"), "{err}");
        assert!(parse(&Value::Int(-1)).is_err());
    }

    #[test]
    fn data_keys_of_every_generation_map_to_tower_keys_and_bookkeeping_keys_to_none() {
        assert_eq!(tower_key(b"user:1"), Some(&b"user:1"[..]));
        assert_eq!(tower_key(b"\0g3\0user:1"), Some(&b"user:1"[..]));
        assert_eq!(tower_key(b"\0generation"), None);
        assert_eq!(tower_key(b"\0lock\0user:1"), None);
        assert_eq!(tower_key(b"\0tag\0t"), None);
        assert_eq!(tower_key(b"\0g\0x"), None);
    }
}
