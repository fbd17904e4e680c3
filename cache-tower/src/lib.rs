//! # cache-tower
//!
//! A multilevel cache: a stack of layers (in-process memory on top, shared stores below) that
//! reads top down, backfills upward and writes everywhere.
//!
//! ```
//! use std::time::Duration;
//! use cache_tower::{CacheTower, MemoryAdapter};
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct User { id: u64, name: String }
//!
//! let tower = CacheTower::from_json(r#"[{"adapter": "memory", "ttl": 60, "params": {"maxsize": 1024}}]"#)?;
//! tower.set("user:1", User { id: 1, name: "Ada".into() })?;
//! assert_eq!(tower.get::<User>("user:1")?.map(|u| u.name), Some("Ada".to_string()));
//! let user = tower.get_or_set("user:2", || User { id: 2, name: "Grace".into() }); // computed once
//! # assert_eq!(user.id, 2);
//! # Ok::<(), cache_tower::Error>(())
//! ```
//!
//! * [`CacheTower`]: the stack; `get`/`mget` read top down and backfill the layers above a hit,
//!   `set`/`mset`/`delete`/`flush` write every layer, `exists` never backfills, `get_or_set`
//!   computes a missing value once however many threads ask.
//! * [`MemoryAdapter`]: the in-process layer (maxsize, FIFO or LRU, TTL). A hit is a clone of
//!   the stored value; it never parses JSON.
//! * `RedisAdapter` (feature `redis`): the shared layer; JSON text under `namespace + key`, one
//!   round trip per operation, bounded timeouts, a circuit breaker in the tower.
//! * [`CacheAdapter`]: the trait to implement for a layer kind of your own.
//! * Configuration: [`CacheTower::from_json`] takes the list-of-layers format.
//! * [`CacheTower::stats`]: per-layer hits, misses, backfills, errors, evictions, expirations.
//!
//! ## Failure model
//!
//! A cache must never make the application less available than it would be without it. A layer
//! that fails is a miss for reads and is skipped for writes (the write still returns its error).
//! After three failures in a row a layer is skipped for a second, then probed and used again.
//! A stored value that does not decode as the requested type is a miss, never a panic.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `redis` | yes | [`RedisAdapter`] and the `"redis"` configuration adapter |
//! | `tokio` | yes | the `*_async` operations and [`AsyncCacheAdapter`]; Redis's async connection |
//! | `tls` | no | `rediss://` URLs and `tls_ca_file` for the Redis layer (rustls) |

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod adapter;
mod breaker;
mod clock;
mod codec;
mod config;
mod error;
mod flight;
mod memoize;
pub mod registry;
mod stats;
mod tower;
mod value;

pub use adapter::memory::{MemoryAdapter, MemoryAdapterBuilder};
#[cfg(feature = "redis")]
pub use adapter::redis::{RedisAdapter, RedisAdapterBuilder};
pub use adapter::{AdapterStats, CacheAdapter, IntoAdapter};
#[cfg(feature = "tokio")]
pub use adapter::{AsyncCacheAdapter, BoxFuture};
pub use clock::{Clock, ManualClock};
pub use error::{Error, ErrorKind, Result};
pub use stats::LayerStats;
pub use tower::CacheTower;
pub use value::{Cacheable, Entry, StoredValue};

/// What `#[cached_tower]` expands to calls. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::memoize::*;
}

/// The README's Rust examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
