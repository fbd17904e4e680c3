//! The Redis commands each operation sends, and how their replies become entries. Shared by the
//! sync and async paths, so both send exactly the same thing.
//!
//! Every operation is one command with one reply: one round trip, and a hung server costs at
//! most one read timeout. Where an operation needs several steps — a value *and* its remaining
//! TTL, or many `SET`s with a TTL each — they run in a Lua script (`EVALSHA`), which Redis
//! executes atomically.

use std::time::Duration;

use redis::{Cmd, Script, ScriptInvocation, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::value::{Entry, StoredValue, effective_ttl};

/// `GET` and `PTTL` of one key: `{value, pttl}`, or `{false, -2}` when it is absent or holds
/// another type than a string (read as absent, as `MGET` does).
const GET_WITH_TTL: &str = r"
local value = redis.pcall('GET', KEYS[1])
if type(value) ~= 'string' then return {false, -2} end
return {value, redis.call('PTTL', KEYS[1])}
";

/// `GET` and `PTTL` of every key, flattened: `{value1, pttl1, value2, pttl2, ...}`. A key that
/// holds another type than a string reads as absent, as it does with `MGET`.
const MGET_WITH_TTL: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local value = redis.pcall('GET', key)
  if type(value) == 'string' then
    out[2 * i - 1] = value
    out[2 * i] = redis.call('PTTL', key)
  else
    out[2 * i - 1] = false
    out[2 * i] = -2
  end
end
return out
";

/// `SET` of every key with its own TTL, atomically. `ARGV` holds `value, ttl` pairs: a TTL of
/// `-1` means none, `0` means the entry has no time left (the key is deleted), more is `PX`.
const MSET_WITH_TTL: &str = r"
for i, key in ipairs(KEYS) do
  local value, ttl = ARGV[2 * i - 1], tonumber(ARGV[2 * i])
  if ttl < 0 then
    redis.call('SET', key, value)
  elseif ttl == 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, value, 'PX', ttl)
  end
end
return #KEYS
";

/// Keys under a namespace, and the commands over them.
#[derive(Debug, Clone)]
pub(super) struct Commands {
    namespace: Vec<u8>,
    ttl: Option<Duration>,
    get_with_ttl: Script,
    mget_with_ttl: Script,
    mset_with_ttl: Script,
}

/// Keys a single SCAN step asks for, and a single UNLINK removes at most.
const SCAN_BATCH: usize = 1000;

impl Commands {
    pub(super) fn new(namespace: &str, ttl: Option<Duration>) -> Self {
        Self {
            namespace: namespace.as_bytes().to_vec(),
            ttl,
            get_with_ttl: Script::new(GET_WITH_TTL),
            mget_with_ttl: Script::new(MGET_WITH_TTL),
            mset_with_ttl: Script::new(MSET_WITH_TTL),
        }
    }

    /// The Redis key of a tower key: the namespace, then the key.
    fn key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.namespace.len() + key.len());
        full.extend_from_slice(&self.namespace);
        full.extend_from_slice(key.as_bytes());
        full
    }

    /// `GET`: the value alone.
    pub(super) fn get(&self, key: &str) -> Cmd {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(key));
        cmd
    }

    /// The value and the time it has left, in one script call.
    pub(super) fn get_with_ttl(&self, key: &str) -> ScriptInvocation<'_> {
        let mut invocation = self.get_with_ttl.prepare_invoke();
        invocation.key(self.key(key));
        invocation
    }

    /// `MGET` of every key.
    pub(super) fn mget(&self, keys: &[&str]) -> Cmd {
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.key(key));
        }
        cmd
    }

    /// Every key's value and the time it has left, in one script call.
    pub(super) fn mget_with_ttl(&self, keys: &[&str]) -> ScriptInvocation<'_> {
        let mut invocation = self.mget_with_ttl.prepare_invoke();
        for key in keys {
            invocation.key(self.key(key));
        }
        invocation
    }

    /// `SET` with the entry's TTL (`PX`), or `DEL` when it has no time left.
    pub(super) fn set(&self, key: &str, entry: &Entry) -> Result<Cmd> {
        let full = self.key(key);
        match self.ttl_millis(entry) {
            Some(0) => {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(full);
                Ok(cmd)
            }
            ttl => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(full).arg(entry.value().json()?);
                if let Some(ms) = ttl {
                    cmd.arg("PX").arg(ms);
                }
                Ok(cmd)
            }
        }
    }

    /// Every `SET` in one atomic script call, each key with its own TTL from the start (never
    /// briefly immortal).
    pub(super) fn mset(&self, items: &[(&str, Entry)]) -> Result<ScriptInvocation<'_>> {
        let mut invocation = self.mset_with_ttl.prepare_invoke();
        for (key, entry) in items {
            let ttl = self.ttl_millis(entry).map_or(-1, |ms| i64::try_from(ms).unwrap_or(i64::MAX));
            invocation.key(self.key(key)).arg(entry.value().json()?).arg(ttl);
        }
        Ok(invocation)
    }
    /// `UNLINK` of one key (non-blocking delete).
    pub(super) fn delete(&self, key: &str) -> Cmd {
        let mut cmd = redis::cmd("UNLINK");
        cmd.arg(self.key(key));
        cmd
    }

    /// `EXISTS` of one key.
    pub(super) fn exists(&self, key: &str) -> Cmd {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.key(key));
        cmd
    }

    /// One `SCAN` step over the namespace's keys.
    pub(super) fn scan(&self, cursor: u64) -> Cmd {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("MATCH").arg(scan_pattern(&self.namespace)).arg("COUNT").arg(SCAN_BATCH);
        cmd
    }

    /// `UNLINK` of keys found by [`scan`](Self::scan).
    pub(super) fn unlink(keys: &[Vec<u8>]) -> Cmd {
        let mut cmd = redis::cmd("UNLINK");
        for key in keys {
            cmd.arg(key);
        }
        cmd
    }

    /// The TTL to write an entry with, in milliseconds (`None`: no expiry; `Some(0)`: expired).
    fn ttl_millis(&self, entry: &Entry) -> Option<u64> {
        effective_ttl(self.ttl, entry.ttl()).map(|ttl| {
            // Round up, so an entry with under a millisecond left is not written as expired.
            let ms = ttl.as_millis() + u128::from(ttl.subsec_nanos() % 1_000_000 != 0);
            u64::try_from(ms).unwrap_or(u64::MAX)
        })
    }
}

/// `KEYS`/`SCAN` glob matching every key that starts with `namespace`: its glob characters are
/// escaped, so a namespace such as `a*[b]?` matches only itself. An empty namespace matches every
/// key of the database.
pub(super) fn scan_pattern(namespace: &[u8]) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(namespace.len() * 2 + 1);
    for &byte in namespace {
        if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(byte);
    }
    pattern.push(b'*');
    pattern
}

/// An entry from a value and its `PTTL` reply; `None` when the key is gone.
fn entry(value: Option<Vec<u8>>, pttl: i64) -> Option<Entry> {
    let value = value?;
    let ttl = match pttl {
        -2 => return None, // deleted between GET and PTTL
        ms if ms < 0 => None,
        ms => Some(Duration::from_millis(ms.unsigned_abs())),
    };
    Some(Entry::new(StoredValue::from_json(value), ttl))
}

/// Parses the reply of [`Commands::get_with_ttl`].
pub(super) fn parse_get_with_ttl((value, pttl): (Option<Vec<u8>>, i64)) -> Option<Entry> {
    entry(value, pttl)
}

/// Parses the reply of [`Commands::mget_with_ttl`] for `count` keys.
pub(super) fn parse_mget_with_ttl(replies: Vec<Value>, count: usize) -> Result<Vec<Option<Entry>>> {
    if replies.len() != 2 * count {
        return Err(Error::new(
            ErrorKind::Layer,
            format!("redis answered {} items for {count} keys (expected {})", replies.len(), 2 * count),
        ));
    }
    let mut replies = replies.into_iter();
    let mut entries = Vec::with_capacity(count);
    while let (Some(value), Some(pttl)) = (replies.next(), replies.next()) {
        let value: Option<Vec<u8>> = redis::from_redis_value(value).map_err(unexpected)?;
        let pttl: i64 = redis::from_redis_value(pttl).map_err(unexpected)?;
        entries.push(entry(value, pttl));
    }
    Ok(entries)
}

/// Values of an `MGET` reply as stored values.
pub(super) fn values(replies: Vec<Option<Vec<u8>>>) -> Vec<Option<StoredValue>> {
    replies.into_iter().map(|value| value.map(StoredValue::from_json)).collect()
}

fn unexpected(err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(ErrorKind::Layer, "unexpected reply from redis").with_source(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_pattern_escapes_glob_characters() {
        assert_eq!(scan_pattern(b"users:"), b"users:*");
        assert_eq!(scan_pattern(b"a*b?c[d]e\\"), b"a\\*b\\?c\\[d\\]e\\\\*");
        assert_eq!(scan_pattern(b""), b"*");
    }

    #[test]
    fn ttl_is_the_shorter_rounded_up_to_a_millisecond() {
        let commands = Commands::new("", Some(Duration::from_secs(60)));
        let ms = |ttl| commands.ttl_millis(&Entry::new(StoredValue::new(1), ttl));
        assert_eq!(ms(None), Some(60_000));
        assert_eq!(ms(Some(Duration::from_secs(5))), Some(5_000));
        assert_eq!(ms(Some(Duration::from_micros(1))), Some(1));
        assert_eq!(ms(Some(Duration::ZERO)), Some(0));
        assert_eq!(Commands::new("", None).ttl_millis(&Entry::new(StoredValue::new(1), None)), None);
    }

    #[test]
    fn pttl_replies_become_ttls() {
        assert!(entry(Some(b"1".to_vec()), -2).is_none());
        assert_eq!(entry(Some(b"1".to_vec()), -1).unwrap().ttl(), None);
        assert_eq!(entry(Some(b"1".to_vec()), 1500).unwrap().ttl(), Some(Duration::from_millis(1500)));
        assert!(entry(None, 1500).is_none());
    }
}
