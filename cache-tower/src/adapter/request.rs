//! [`Request`] and [`Reply`]: one call to a layer, described as data.
//!
//! The tower's plans (`tower/plan.rs`) say what to ask of which layer as a `Request`; the
//! blocking driver carries it out with the adapter's blocking methods ([`Request::run`]), the
//! async driver with [`AsyncCacheAdapter::call`](crate::adapter::AsyncCacheAdapter::call) when the
//! adapter does I/O. So each operation is described once, whichever way it is sent.

use crate::adapter::CacheAdapter;
use crate::error::{Error, Fault, Result};
use crate::value::{Entry, StoredValue};

/// One call to a layer: each variant is one method of [`CacheAdapter`], with its arguments.
///
/// ```
/// use cache_tower::{MemoryAdapter, adapter::{Reply, Request}};
///
/// let memory = MemoryAdapter::new();
/// assert!(matches!(Request::Exists("k").run(&memory)?, Reply::Exists(false)));
/// # Ok::<(), cache_tower::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Request<'a> {
    /// [`CacheAdapter::get`]: the entry and the time it has left; answered by [`Reply::Entry`].
    Get(&'a str),
    /// [`CacheAdapter::get_value`]: the value alone; answered by [`Reply::Value`].
    GetValue(&'a str),
    /// [`CacheAdapter::get_stale`]: the entry, fresh or stale; answered by [`Reply::Entry`].
    GetStale(&'a str),
    /// [`CacheAdapter::mget`]; answered by [`Reply::Entries`], one per key in order.
    Mget(&'a [&'a str]),
    /// [`CacheAdapter::mget_values`]; answered by [`Reply::Values`], one per key in order.
    MgetValues(&'a [&'a str]),
    /// [`CacheAdapter::set`]; answered by [`Reply::Done`].
    Set(&'a str, &'a Entry),
    /// [`CacheAdapter::mset`]; answered by [`Reply::Done`].
    Mset(&'a [(&'a str, Entry)]),
    /// [`CacheAdapter::delete`]; answered by [`Reply::Done`].
    Delete(&'a str),
    /// [`CacheAdapter::delete_many`]; answered by [`Reply::Done`].
    DeleteMany(&'a [&'a str]),
    /// [`CacheAdapter::exists`]; answered by [`Reply::Exists`].
    Exists(&'a str),
    /// [`CacheAdapter::flush`]; answered by [`Reply::Done`].
    Flush,
    /// [`CacheAdapter::clear`]; answered by [`Reply::Done`].
    Clear,
    /// [`CacheAdapter::invalidate_tag`] of a tag; answered by [`Reply::Done`].
    InvalidateTag(&'a str),
    /// [`CacheAdapter::lock`] of a key with an owner token for a time; answered by
    /// [`Reply::Locked`].
    Lock {
        /// The tower key whose lock it is.
        key: &'a str,
        /// The owner's token, which [`Request::Unlock`] must give.
        token: &'a str,
        /// How long the lock lasts unless released.
        ttl: std::time::Duration,
    },
    /// [`CacheAdapter::unlock`]; answered by [`Reply::Done`].
    Unlock {
        /// The tower key whose lock it is.
        key: &'a str,
        /// The owner's token.
        token: &'a str,
    },
}

/// A layer's answer to a [`Request`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Reply {
    /// To [`Request::Get`].
    Entry(Option<Entry>),
    /// To [`Request::GetValue`].
    Value(Option<StoredValue>),
    /// To [`Request::Mget`].
    Entries(Vec<Option<Entry>>),
    /// To [`Request::MgetValues`].
    Values(Vec<Option<StoredValue>>),
    /// To [`Request::Exists`].
    Exists(bool),
    /// To a write ([`Request::Set`], [`Request::Mset`], [`Request::Delete`], [`Request::DeleteMany`], [`Request::Flush`],
    /// [`Request::Clear`], [`Request::InvalidateTag`]) or [`Request::Unlock`].
    Done,
    /// To [`Request::Lock`]: whether the lock was taken.
    Locked(bool),
}

impl Request<'_> {
    /// The operation's name, for logs and errors (`"get"`, `"mset"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Get(_) | Request::GetValue(_) | Request::GetStale(_) => "get",
            Request::Mget(_) | Request::MgetValues(_) => "mget",
            Request::Set(..) => "set",
            Request::Mset(_) => "mset",
            Request::Delete(_) => "delete",
            Request::DeleteMany(_) => "delete_many",
            Request::Exists(_) => "exists",
            Request::Flush => "flush",
            Request::Clear => "clear",
            Request::InvalidateTag(_) => "invalidate_tag",
            Request::Lock { .. } => "lock",
            Request::Unlock { .. } => "unlock",
        }
    }

    /// Carries the request out with the adapter's blocking methods.
    ///
    /// # Errors
    /// The adapter's error.
    // Inlined, so that each call site's request (of a variant it knows) skips the dispatch: with
    // the lock's variants the function grew past the compiler's own inlining threshold, which
    // cost an evicting `set` about 40 instructions.
    #[inline]
    pub fn run<A: CacheAdapter + ?Sized>(self, adapter: &A) -> Result<Reply> {
        Ok(match self {
            Request::Get(key) => Reply::Entry(adapter.get(key)?),
            Request::GetValue(key) => Reply::Value(adapter.get_value(key)?),
            Request::GetStale(key) => Reply::Entry(adapter.get_stale(key)?),
            Request::Mget(keys) => Reply::Entries(adapter.mget(keys)?),
            Request::MgetValues(keys) => Reply::Values(adapter.mget_values(keys)?),
            Request::Set(key, entry) => {
                adapter.set(key, entry)?;
                Reply::Done
            }
            Request::Mset(items) => {
                adapter.mset(items)?;
                Reply::Done
            }
            Request::Delete(key) => {
                adapter.delete(key)?;
                Reply::Done
            }
            Request::DeleteMany(keys) => {
                adapter.delete_many(keys)?;
                Reply::Done
            }
            Request::Exists(key) => Reply::Exists(adapter.exists(key)?),
            Request::Flush => {
                adapter.flush()?;
                Reply::Done
            }
            Request::Clear => {
                adapter.clear()?;
                Reply::Done
            }
            Request::InvalidateTag(tag) => {
                adapter.invalidate_tag(tag)?;
                Reply::Done
            }
            Request::Lock { key, token, ttl } => Reply::Locked(adapter.lock(key, token, ttl)?),
            Request::Unlock { key, token } => {
                adapter.unlock(key, token)?;
                Reply::Done
            }
        })
    }
}

impl Reply {
    /// The entry of a [`Reply::Entry`]. Strict: a [`Reply::Value`] is refused, since it lacks the
    /// time the entry has left (a backfill must never outlive its source).
    ///
    /// # Errors
    /// A [`Fault::Reply`] layer error when the reply is of another kind: the adapter answered the wrong
    /// question.
    pub fn into_entry(self) -> Result<Option<Entry>> {
        match self {
            Reply::Entry(entry) => Ok(entry),
            other => Err(other.mismatch("an entry")),
        }
    }

    /// The value of a [`Reply::Value`] (or of a [`Reply::Entry`], its TTL dropped).
    ///
    /// # Errors
    /// As [`into_entry`](Self::into_entry).
    pub fn into_value(self) -> Result<Option<StoredValue>> {
        match self {
            Reply::Value(value) => Ok(value),
            Reply::Entry(entry) => Ok(entry.map(|entry| entry.into_parts().0)),
            other => Err(other.mismatch("a value")),
        }
    }

    /// The entries of a [`Reply::Entries`]; strict, as [`into_entry`](Self::into_entry).
    ///
    /// # Errors
    /// As [`into_entry`](Self::into_entry).
    pub fn into_entries(self) -> Result<Vec<Option<Entry>>> {
        match self {
            Reply::Entries(entries) => Ok(entries),
            other => Err(other.mismatch("entries")),
        }
    }

    /// The values of a [`Reply::Values`] (or of a [`Reply::Entries`], their TTLs dropped).
    ///
    /// # Errors
    /// As [`into_entry`](Self::into_entry).
    pub fn into_values(self) -> Result<Vec<Option<StoredValue>>> {
        match self {
            Reply::Values(values) => Ok(values),
            Reply::Entries(entries) => Ok(entries.into_iter().map(|e| e.map(|e| e.into_parts().0)).collect()),
            other => Err(other.mismatch("values")),
        }
    }

    /// The answer of a [`Reply::Exists`].
    ///
    /// # Errors
    /// As [`into_entry`](Self::into_entry).
    pub fn into_exists(self) -> Result<bool> {
        match self {
            Reply::Exists(exists) => Ok(exists),
            other => Err(other.mismatch("a yes or no")),
        }
    }

    /// The answer of a [`Reply::Locked`].
    ///
    /// # Errors
    /// As [`into_entry`](Self::into_entry).
    pub fn into_locked(self) -> Result<bool> {
        match self {
            Reply::Locked(locked) => Ok(locked),
            other => Err(other.mismatch("whether a lock was taken")),
        }
    }

    /// `Ok` for a [`Reply::Done`].
    ///
    /// # Errors
    /// As [`into_entry`](Self::into_entry).
    pub fn into_done(self) -> Result<()> {
        match self {
            Reply::Done => Ok(()),
            other => Err(other.mismatch("an acknowledgement")),
        }
    }

    #[cold]
    fn mismatch(&self, expected: &str) -> Error {
        let got = match self {
            Reply::Entry(_) => "an entry",
            Reply::Value(_) => "a value",
            Reply::Entries(_) => "entries",
            Reply::Values(_) => "values",
            Reply::Exists(_) => "a yes or no",
            Reply::Done => "an acknowledgement",
            Reply::Locked(_) => "whether a lock was taken",
        };
        Error::layer_fault(Fault::Reply, format!("the adapter answered with {got} where {expected} was asked for"))
    }
}
