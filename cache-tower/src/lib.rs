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
//! assert_eq!(tower.get::<User>("user:1").map(|u| u.name), Some("Ada".to_string()));
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
//!   round trip for each `get`, `mget`, `set`, `mset`, `delete` and `exists` (`flush` scans the
//!   namespace in batches), bounded timeouts, a circuit breaker in the tower.
//! * [`CacheAdapter`]: the trait to implement for a layer kind of your own.
//! * Configuration: [`CacheTower::from_json`] takes the list-of-layers format; the
//!   [`registry`] holds named towers, which `#[cached_tower(config = "name")]` uses.
//! * Many processes: with memory over Redis, a change made anywhere evicts the stale copies
//!   from every process's memory layers (Redis client tracking).
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
//! | `macros` | yes | the [`cached_tower`] attribute (memoize a function through a named tower) |
//! | `redis` | yes | [`RedisAdapter`] and the `"redis"` configuration adapter |
//! | `tokio` | yes | the `*_async` operations and [`AsyncCacheAdapter`]; Redis's async connection |
//! | `tls` | no | `rediss://` URLs and `tls_ca_file` for the Redis layer (rustls) |

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod adapter;
mod breaker;
mod change_log;
pub mod clock;
mod codec;
mod config;
pub mod error;
mod flight;
mod memoize;
pub mod registry;
mod stats;
mod sync_shim;
mod tower;
mod value;

pub use adapter::memory::MemoryAdapter;
#[cfg(feature = "redis")]
pub use adapter::redis::RedisAdapter;
pub use error::{Error, Result};
pub use stats::LayerStats;
pub use tower::CacheTower;
pub use value::Cacheable;

/// Memoizes a function through a registered [`CacheTower`]: the result is looked up by key through
/// the whole stack, and on a miss the body runs once (however many callers miss the same key at
/// once) and its result is stored in every layer.
///
/// ```
/// use cache_tower::{cached_tower, registry};
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// # struct User { id: u64, name: String }
///
/// #[cached_tower(config = "doc_users", key = "user:{id}")]
/// fn load_user(id: u64) -> User {
///     User { id, name: format!("user {id}") } // an expensive query in real life
/// }
///
/// registry::register_json(r#"{"doc_users": [{"adapter": "memory", "ttl": 60}]}"#)?;
/// assert_eq!(load_user(7).name, "user 7");      // runs the body, caches under "user:7"
/// assert_eq!(load_user(7).name, "user 7");      // a memory hit
/// load_user_invalidate(7)?;                      // forget it
/// let fresh = load_user_uncached(7);             // always runs the body, caches nothing
/// # let _ = fresh;
/// # Ok::<(), cache_tower::Error>(())
/// ```
///
/// # Arguments
///
/// * `config = "name"`: the [`registry`] name of the tower to use (default:
///   `"default"`, [`registry::DEFAULT_TOWER`]). If no tower of
///   that name is registered when the function runs, it runs uncached and a warning is logged
///   once; it never panics.
/// * `key = "template"`: the cache key, built from the parameters: `"user:{id}"`,
///   `"{tenant.id}:{page}"`, `"{self.region}:{id}"`, with `format!` specs (`"{id:08}"`); `{{`
///   and `}}` are literal braces. A placeholder that names no parameter is a compile error.
///   Without `key`, the key is the function's module path and name followed by its arguments as a
///   JSON array (`my_app::users::load_user:[7]`): stable across processes and builds as long as
///   the path and the arguments' JSON are, and every argument must be `Serialize`. The receiver is
///   not part of the default key — give methods a `key` (two methods of the same name in one
///   module would otherwise share keys).
/// * `result = true` / `option = true`: treat the return type as a `Result` / `Option` when it is
///   an alias the macro cannot recognise by name.
/// * `cache_none = true`: cache `None` results of an `Option` function too.
///
/// # What is cached
///
/// * A plain `T` is always cached; `T` must be [`Cacheable`] (a compile error at the return type
///   says so otherwise).
/// * `Result<T, E>`: only `Ok(T)` is cached; an `Err` is returned to its caller and not stored.
/// * `Option<T>`: only `Some(T)`, unless `cache_none = true`.
///
/// # Where it works
///
/// `fn` and `async fn` (the async form uses the `*_async` operations: no blocking of the
/// executor on I/O), free functions, methods taking `&self` or `self`, associated functions, and
/// generic functions whose bounds make the result [`Cacheable`]. Concurrent callers of the same
/// key share one call, sync or async; a panic in the body, or a dropped future, releases the
/// waiting callers (one of them runs the body instead). A cache fault never becomes the
/// function's error: at worst the body runs.
///
/// The macro sees the function but not the `impl` around it. It takes a function for a method or
/// an associated function when it has a receiver or says `Self` (in its signature or body), and
/// for a free function otherwise; an associated function without `self` that never says `Self`
/// fails to compile with "cannot find function `name_uncached`": say `Self` in it (`-> Self`,
/// `Self::LIMIT`), or move it out of the `impl`.
///
/// # Companions
///
/// Next to `name`, the macro defines `name_uncached` (same signature: runs the body, bypassing
/// the cache) and `name_invalidate` (same parameters, returns `cache_tower::Result<()>`: removes
/// the entry for those arguments from every layer). Both are `async` when `name` is. The body is
/// compiled once, as `name_uncached`, which `name` calls on a miss.
///
/// The names the expansion uses for its own locals and items are hygienic: a parameter or local
/// called `key`, `body` or `SITE` means what the function says.
///
/// # Compile errors
///
/// Wrong arguments, a parameter that is not a plain name, `&mut self`, or a key template that does
/// not parse or names no parameter are compile errors at the tokens that are wrong; the function
/// and its companions are still defined, uncached, so that those errors are the only ones. A result
/// that is not [`Cacheable`] is one error at its type, a placeholder whose value is not `Display`
/// one error at the template, and an argument of a default key that is not `Serialize` one error
/// at that parameter.
///
/// The generated code names the runtime as `::cache_tower`, so depend on it under that name.
#[cfg(feature = "macros")]
pub use cache_tower_macros::cached_tower;

/// What `#[cached_tower]` expands to calls. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::memoize::*;
}
