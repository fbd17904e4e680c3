//! # cache-tower
//!
//! A multilevel cache for Rust services: a stack of layers — in-process memory on top, Redis
//! below — that reads top down, backfills the faster layers on the way back up, and writes
//! everywhere. A memory hit is a clone of the stored value, never a parse; a layer that fails is
//! a miss, never an outage; many callers missing the same key at once compute it once.
//!
//! ## Start here
//!
//! ```toml
//! [dependencies]
//! cache-tower = "0.1" # not on crates.io yet: until then, a path to a clone (see the README)
//! serde = { version = "1", features = ["derive"] }
//! # for the async operations and `async fn`s under #[cached_tower]:
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! There are three ways in, from the least set-up to the most control:
//!
//! 1. **The [`cached_tower`] attribute** memoizes a function (sync or `async`) through a tower:
//!    `#[cached_tower(key = "user:{id}")]` caches in the built-in `"default"` tower (memory
//!    only) with no set-up at all; `config = "users"` names a tower of the registry.
//! 2. **The [`registry`]** holds named towers, registered at start-up from JSON
//!    ([`registry::register_file`]) and found by name ([`registry::get`]);
//!    [`registry::require`] checks that the names your functions use are there.
//! 3. **A [`CacheTower`]** of your own: [`CacheTower::from_json`] or layer by layer with
//!    [`CacheTower::add_layer`]; then `get`, `set`, `get_or_set` and the rest, each with an
//!    `*_async` twin.
//!
//! ```
//! use cache_tower::{CacheTower, cached_tower};
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct User {
//!     id: u64,
//!     name: String,
//! }
//!
//! #[cached_tower(key = "user:{id}")] // the built-in "default" tower: nothing to set up
//! fn load_user(id: u64) -> User {
//!     User { id, name: format!("user {id}") } // a database query in real life
//! }
//!
//! fn main() -> cache_tower::Result<()> {
//!     assert_eq!(load_user(7).name, "user 7"); // runs the body, caches under "user:7"
//!     assert_eq!(load_user(7).name, "user 7"); // a memory hit
//!
//!     let tower = CacheTower::from_json(r#"[{"adapter": "memory", "ttl": 60, "params": {"maxsize": 1024}}]"#)?;
//!     tower.set("user:1", User { id: 1, name: "Ada".into() })?;
//!     assert_eq!(tower.get::<User>("user:1").map(|user| user.name), Some("Ada".to_string()));
//!     let user = tower.get_or_set("user:2", || User { id: 2, name: "Grace".into() }); // computed once
//!     assert_eq!(user.id, 2);
//!     Ok(())
//! }
//! ```
//!
//! ## The layers
//!
//! * [`MemoryAdapter`]: the in-process layer (`maxsize`, FIFO or LRU, TTL). A hit is a clone of
//!   the stored value.
//! * [`RedisAdapter`] (feature `redis`): the shared layer. Values are JSON text under
//!   `namespace + key`, readable by any program; one round trip for each `get`, `mget`, `set`,
//!   `mset`, `delete` and `exists`; bounded timeouts; a circuit breaker in the tower. With memory
//!   above Redis, a change made by any process evicts the stale copies from every process's
//!   memory layer (Redis client tracking).
//! * Your own layer kind: implement [`adapter::CacheAdapter`].
//!
//! Reads (`get`, `mget`, `exists`) return plain values: a layer that fails is a miss, counted in
//! [`CacheTower::stats`] ([`LayerStats`]) and logged. Writes return [`Result`]: the [`Error`] of
//! the topmost layer that failed, every other layer still written.
//!
//! ## Modules
//!
//! * [`registry`]: named towers.
//! * [`adapter`]: for authors of layer kinds and for tests — the [`adapter::CacheAdapter`] trait
//!   and its async twin, the [`adapter::Request`]s a tower sends, [`adapter::Entry`] and
//!   [`adapter::StoredValue`], the adapters' builders, [`adapter::MAX_TTL`].
//! * [`error`]: what kind of error ([`error::ErrorKind`]) and which layer fault ([`error::Fault`]).
//! * [`clock`]: the time source of memory layers, and a manual clock for tests.
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
//! | `macros` | yes | the [`cached_tower`] attribute |
//! | `redis` | yes | [`RedisAdapter`] and the `"redis"` configuration adapter |
//! | `tokio` | yes | the `*_async` operations and `async fn` memoization; Redis's async connection |
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
mod load_options;
mod memoize;
pub mod registry;
mod stats;
mod sync_shim;
mod tower;
mod value;

pub use adapter::memory::MemoryAdapter;
#[cfg(feature = "redis")]
pub use adapter::redis::RedisAdapter;
#[doc(inline)]
pub use error::{Error, Result};
pub use load_options::LoadOptions;
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
///   `"default"`, [`registry::DEFAULT_TOWER`], a memory-only tower that is there with no set-up
///   until you register your own under that name). If no tower of the name is registered when
///   the function runs, it runs uncached and warns once — to `tracing` when a subscriber is
///   installed, else to standard error; it never panics. Check the names at start-up with
///   [`registry::require`].
/// * `key = "template"`: the cache key, built from the parameters: `"user:{id}"`,
///   `"{tenant.id}:{page}"`, `"{self.region}:{id}"`, with `format!` specs (`"{id:08}"`); `{{`
///   and `}}` are literal braces. A placeholder that names no parameter is a compile error.
///   Without `key`, the key is the function's module path and name followed by its arguments as a
///   JSON array (`my_app::users::load_user:[7]`): stable across processes and builds as long as
///   the path and the arguments' JSON are, and every argument must be `Serialize`. The receiver is
///   not part of the default key — give methods a `key` (two methods of the same name in one
///   module would otherwise share keys).
/// * `tags = ["user:{id}", "tenant:{tenant}"]`: tags stored with each result the body computes,
///   each a template like `key` (the same placeholders; a tag template that does not parse or
///   names no parameter is the same compile error, at that tag). [`CacheTower::invalidate_tag`]
///   (or [`invalidate_tag_async`](CacheTower::invalidate_tag_async)) of any of them makes every
///   result carrying it a miss in every layer, so its next call runs the body again (see below).
///   Tags are written with a result, not checked against a call: a hit returns the cached result
///   whatever tags the call's arguments make ([`LoadOptions::tags`]). `tags = []` is a compile
///   error (leave `tags` out for none), and so is an element that is not a string literal. Not
///   taken with `many`.
/// * `result = true` / `option = true`: treat the return type as a `Result` / `Option` when it is
///   an alias the macro cannot recognise by name. A return type whose name ends in `Result`
///   (`MyResult<T>`) without `result = …` (or `option = …`) is a compile error, since caching it
///   whole would cache its `Err` values: say `result = true`, or `result = false` for a type that
///   only has the name.
/// * `cache_none = true`: cache `None` results of an `Option` function too.
/// * `ttl = "30s"`: the results' own TTL, each layer keeping them for the shorter of it and its
///   own TTL (as [`CacheTower::set_with_ttl`]); numbers with units `ms`, `s`, `m`, `h`, `d`
///   (`"500ms"`, `"5m"`, `"1h30m"`). Without it, each layer's TTL applies.
/// * `stale = "1h"`, `fail_safe = "30s"`: the results' stale window in memory layers, and the
///   fail-safe with its throttle period ([`LoadOptions::stale`], [`LoadOptions::fail_safe`]): a
///   failing (`Err`) or panicking body is answered with the stale result when there is one.
/// * `soft_timeout = "100ms"`, `hard_timeout = "2s"`, `refresh_ahead = 0.8`
///   ([`LoadOptions::soft_timeout`], [`LoadOptions::hard_timeout`],
///   [`LoadOptions::refresh_ahead`]): the body runs as a background load
///   ([`CacheTower::try_get_or_load`]) that may outlive the call, so the function must own its
///   arguments (no `&str`, no `&self`: a compile error at the parameter says so); `hard_timeout`
///   needs a `Result` function whose error type is `From<cache_tower::Error>` (`String` is), and
///   `Option` functions take none of the three.
///
/// Unset load options are the tower's ([`CacheTower::set_load_options`]).
///
/// # Tags
///
/// A key names one result; a tag names a group of them, to forget together:
///
/// ```
/// use cache_tower::{cached_tower, registry};
///
/// #[cached_tower(config = "doc_orders", key = "orders:{user}:{page}", tags = ["user:{user}"])]
/// fn orders(user: u64, page: u32) -> Vec<String> {
///     vec![format!("order of user {user}, page {page}")] // a query in real life
/// }
///
/// registry::register_json(r#"{"doc_orders": [{"adapter": "memory"}]}"#)?;
/// orders(1, 0);
/// orders(1, 1);
/// orders(2, 0);
/// let tower = registry::get("doc_orders").expect("registered");
/// tower.invalidate_tag("user:1")?; // every page of user 1: their next calls run the body
/// assert!(!tower.exists("orders:1:0") && !tower.exists("orders:1:1"));
/// assert!(tower.exists("orders:2:0")); // another user's result stays cached
/// # Ok::<(), cache_tower::Error>(())
/// ```
///
/// # Batch functions: `many = "ids"`
///
/// A function that takes a collection of ids and returns a map from id to value is memoized per
/// element with `many = "<the collection parameter>"`: in the key template, `{ids}` is one
/// element (`"user:{ids}"`, `"{tenant}:{ids.id}"`). A call reads every element's key through the
/// stack in one pass ([`CacheTower::get_or_set_many`]: one read per layer), runs the body once
/// with the elements no layer had, stores what it returns (one write per layer), and returns a
/// map with every element that has a value. Single flight is per element, shared with
/// single-key functions and `get_or_set` callers of the same keys.
///
/// ```
/// use std::collections::HashMap;
/// use cache_tower::{cached_tower, registry};
///
/// #[cached_tower(config = "doc_names", key = "name:{ids}", many = "ids")]
/// fn names(ids: &[u64]) -> HashMap<u64, String> {
///     ids.iter().map(|id| (*id, format!("user {id}"))).collect() // one query for all of them
/// }
///
/// registry::register_json(r#"{"doc_names": [{"adapter": "memory"}]}"#)?;
/// assert_eq!(names(&[1, 2])[&2], "user 2"); // the body runs once, for 1 and 2
/// assert_eq!(names(&[2, 3]).len(), 2);       // the body runs for 3 only
/// names_invalidate(&[1, 2, 3])?;             // forgets each element's entry
/// # Ok::<(), cache_tower::Error>(())
/// ```
///
/// * The collection may be `&[K]`, `&C` or an owned `C` (`Vec`, `HashSet`, `BTreeSet`, …),
///   with `K: Clone`; the body is handed the elements to load as the same type (a `&Vec<K>`
///   for `&[K]`, else collected with `FromIterator`). The return type is a `…Map<K, V>` with
///   `V: Cacheable` (any map that is `FromIterator<(K, V)>` and iterates over `(K, V)`), or a
///   `Result` of one: an `Err` is returned and nothing is cached. An element the body returns
///   no value for is left out of the result and not cached.
/// * The body may run a second time in one call, for the elements whose loading by another
///   caller failed meanwhile: owned arguments other than the collection are cloned for it
///   (they must be `Clone`), and a method takes `&self`.
/// * Load options (`ttl`, `stale`, `fail_safe`, timeouts, `lock`) and `option`/`cache_none` are
///   not taken with `many` (a compile error says so): each layer keeps the values for its own TTL.
///   Nor is `tags` (a compile error too): a batch's values are stored without tags; forget them
///   with `name_invalidate`.
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
/// executor on I/O; a blocking memoized `fn` called on a tokio runtime thread whose tower reads
/// over the network warns once, pointing at the `async fn` form and `spawn_blocking`), free functions, methods taking `&self` or `self`, associated functions, and
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
/// called `key`, `tags`, `body` or `SITE` means what the function says.
///
/// # Compile errors
///
/// Wrong arguments, a parameter that is not a plain name, `&mut self`, a key or tag template that
/// does not parse or names no parameter, or a `many` function whose parameter, key or return type
/// does not fit (see above) are compile errors at the tokens that are wrong; the function
/// and its companions are still defined, uncached, so that those errors are the only ones. A result
/// that is not [`Cacheable`] is one error at its type, a placeholder whose value is not `Display`
/// one error at its template (key or tag), and an argument of a default key that is not `Serialize` one error
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
