//! [`RedisAdapter`]: a shared layer on Redis (feature `redis`).
//!
//! Values are stored as their JSON text under `namespace + key`, so other programs can read
//! them. Every operation is one round trip with one reply (a Lua script where a value and its
//! remaining TTL are read together, or many keys are written with their TTLs), every wait is
//! bounded by the adapter's timeout, and a broken connection is replaced on the next call.

#[cfg(feature = "tokio")]
mod changes;
mod commands;
mod connection;
mod settings;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use redis::Client;

use self::commands::{Commands, parse_get_with_ttl, parse_mget_with_ttl, values};
use self::connection::{Connector, SyncPool};
use self::settings::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT, Settings};
use crate::adapter::CacheAdapter;
use crate::error::{Error, Result};
use crate::value::{Entry, StoredValue};

/// A layer on a Redis server.
///
/// Build it with [`RedisAdapter::builder`]; nothing connects until the first operation, so a
/// service starts even while Redis is down (its reads are misses until Redis answers).
///
/// * Values are JSON text under `namespace + key`; the TTL is per layer (`PX`, none when zero).
/// * `get`, `mget` and `mset` are one round trip each (one command, or one Lua script where the
///   value and its remaining TTL are needed); `mset` is atomic.
/// * `flush` deletes only the keys under the namespace (`SCAN MATCH` with the namespace's glob
///   characters escaped, then `UNLINK` in batches of 1,000). **An empty namespace means the whole
///   database**: `flush` then removes every key of the database.
/// * Each operation waits at most [`timeout`](RedisAdapterBuilder::timeout) (250 ms by default),
///   connecting included. Sync operations use a pool of connections (16 idle ones kept by
///   default); async ones (feature `tokio`) share one multiplexed connection and need a tokio
///   runtime with its timer enabled (`#[tokio::main]` has it).
/// * Passwords never appear in `Debug` output, errors or logs.
///
/// ```no_run
/// use std::time::Duration;
/// use cache_tower::{CacheTower, MemoryAdapter, RedisAdapter};
///
/// let tower = CacheTower::new();
/// tower.add_layer(MemoryAdapter::builder().maxsize(1024).ttl(Duration::from_secs(60)).build());
/// tower.add_layer(
///     RedisAdapter::builder()
///         .url("redis://127.0.0.1:6379/0")
///         .namespace("session:")
///         .ttl(Duration::from_secs(300))
///         .build()?,
/// );
/// tower.set("key", "value".to_string())?;
/// # Ok::<(), cache_tower::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisAdapter {
    inner: Arc<Inner>,
}

struct Inner {
    namespace: String,
    ttl: Option<Duration>,
    commands: Commands,
    connector: Connector,
    pool: SyncPool,
    #[cfg(feature = "tokio")]
    shared: connection::AsyncShared,
    /// A RESP3 client for the invalidation listener; `None` when invalidation is off.
    #[cfg(feature = "tokio")]
    changes: Option<Client>,
}

/// Builds a [`RedisAdapter`].
///
/// Give the server either as a URL ([`url`](Self::url), [`url_env`](Self::url_env)) or as parts
/// ([`host`](Self::host), [`port`](Self::port), [`db`](Self::db), [`username`](Self::username),
/// [`password`](Self::password) or [`password_env`](Self::password_env), [`tls`](Self::tls));
/// with neither, it is `redis://127.0.0.1:6379/0`.
///
/// ```
/// use std::time::Duration;
/// use cache_tower::RedisAdapter;
///
/// let redis = RedisAdapter::builder()
///     .host("127.0.0.1")
///     .port(6379)
///     .db(1)
///     .password("s3cret")
///     .namespace("users:")
///     .ttl(Duration::from_secs(300))
///     .timeout(Duration::from_millis(100))
///     .build()?;
/// assert!(!format!("{redis:?}").contains("s3cret"));
/// # Ok::<(), cache_tower::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisAdapterBuilder {
    settings: Settings,
    namespace: String,
    ttl: Option<Duration>,
    timeout: Duration,
    connect_timeout: Duration,
    pool_size: usize,
    invalidation: bool,
}

impl Default for RedisAdapterBuilder {
    fn default() -> Self {
        Self {
            settings: Settings::default(),
            namespace: String::new(),
            ttl: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
            invalidation: true,
        }
    }
}

impl RedisAdapterBuilder {
    /// The server as a URL, parsed by the redis client: `redis://[user[:password]@]host[:port][/db]`,
    /// `rediss://` for TLS (`#insecure` to skip the host name check), or a Unix socket:
    /// `redis+unix:///path?db=0&user=…&pass=…` (also `unix://`; and `valkey…` for each).
    ///
    /// A `#`, `/`, `?` or `@` in the user name or password must be percent-encoded (`%23`,
    /// `%2F`, `%3F`, `%40`); a URL that does not parse, or holds what the client would ignore (a
    /// stray fragment or query parameter, which usually means an unencoded `#` or `?`), is an
    /// error of [`build`](Self::build) that does not quote it. Give a password with such
    /// characters through [`password`](Self::password) instead: it needs no encoding.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.settings.url = Some(settings::ParsedUrl::parse(&url.into()));
        self
    }

    /// Reads the URL from the environment variable `name` when the adapter is built, so the
    /// secret stays out of configuration files.
    pub fn url_env(mut self, name: impl Into<String>) -> Self {
        self.settings.url_env = Some(name.into());
        self
    }

    /// The server's host name or IP address (default `127.0.0.1`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.settings.host = Some(host.into());
        self
    }

    /// The server's port (default 6379).
    pub fn port(mut self, port: u16) -> Self {
        self.settings.port = Some(port);
        self
    }

    /// The database number (default 0).
    pub fn db(mut self, db: u32) -> Self {
        self.settings.db = Some(db);
        self
    }

    /// The ACL user name to authenticate as.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.settings.username = Some(username.into());
        self
    }

    /// The password (`requirepass`, or the ACL user's).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.settings.password = Some(password.into());
        self
    }

    /// Reads the password from the environment variable `name` when the adapter is built.
    pub fn password_env(mut self, name: impl Into<String>) -> Self {
        self.settings.password_env = Some(name.into());
        self
    }

    /// Connects with TLS (`rediss://`) when the server is given as parts.
    pub fn tls(mut self, tls: bool) -> Self {
        self.settings.tls = tls;
        self
    }

    /// A PEM file of root certificates to trust for TLS, instead of the system's (feature `tls`).
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.tls_ca_file = Some(path.into());
        self
    }

    /// The prefix of every key of this layer (default empty: the whole database).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long entries live; `Duration::ZERO` (the default) means no expiry. At most
    /// [`MAX_TTL`](crate::MAX_TTL): a longer one is an error of [`build`](Self::build), since
    /// Redis would refuse every write.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = (!ttl.is_zero()).then_some(ttl);
        self
    }

    /// The longest any one operation may take, connecting included (default 250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest opening a connection may take (default 250 ms; never more than `timeout`).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many idle sync connections to keep for reuse (default 16). More may be open at once
    /// under load; the extra ones are closed after use.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Whether a tower with in-process layers above this one keeps them coherent across
    /// processes (default `true`): every change under the namespace, by anyone, evicts the key
    /// from those layers (Redis client tracking; needs the `tokio` feature). See the README's
    /// "Many instances, one Redis".
    pub fn invalidation(mut self, invalidation: bool) -> Self {
        self.invalidation = invalidation;
        self
    }

    /// Builds the adapter. It does not connect yet.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config), naming the field: a malformed URL,
    /// conflicting settings (a URL and a host, say), an environment variable that is not set, an
    /// unreadable CA file, a zero timeout, a TTL over [`MAX_TTL`](crate::MAX_TTL), a `rediss://`
    /// URL without the `tls` feature. No error quotes a password or a URL as given.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_tower::{MAX_TTL, RedisAdapter};
    ///
    /// assert!(RedisAdapter::builder().ttl(MAX_TTL).build().is_ok());
    /// let err = RedisAdapter::builder().ttl(MAX_TTL + Duration::from_secs(1)).build().unwrap_err();
    /// assert_eq!(err.field(), Some("ttl"));
    ///
    /// let err = RedisAdapter::builder().url("redis://:pa#ss@cache:6379/0").build().unwrap_err();
    /// assert_eq!(err.field(), Some("url"));
    /// assert!(!format!("{err} {err:?}").contains("pa#ss"));
    /// ```
    pub fn build(self) -> Result<RedisAdapter> {
        if self.timeout.is_zero() {
            return Err(Error::config(None, Some("timeout"), "must be more than zero"));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::config(None, Some("connect_timeout"), "must be more than zero"));
        }
        if let Some(ttl) = self.ttl {
            crate::config::check_ttl(ttl).map_err(|message| Error::config(None, Some("ttl"), message))?;
        }
        let target = self.settings.resolve()?;
        let tls_field = if self.settings.tls { "tls" } else { "url" };
        let client_error = |err: redis::RedisError| {
            // A CA file the TLS library refuses, or TLS without the `tls` feature.
            let field = if target.root_cert.is_some() { "tls_ca_file" } else { tls_field };
            Error::config(None, Some(field), format!("the redis client cannot connect to {}", target.redacted))
                .with_source(settings::Scrubbed::new(&err, target.secret.as_deref()))
        };
        let client =
            open_client(&target.info, target.root_cert.clone(), redis::ProtocolVersion::RESP2).map_err(client_error)?;
        #[cfg(feature = "tokio")]
        let changes = if self.invalidation {
            Some(
                open_client(&target.info, target.root_cert.clone(), redis::ProtocolVersion::RESP3)
                    .map_err(client_error)?,
            )
        } else {
            None
        };
        Ok(RedisAdapter {
            inner: Arc::new(Inner {
                commands: Commands::new(&self.namespace, self.ttl),
                namespace: self.namespace,
                ttl: self.ttl,
                connector: Connector {
                    client,
                    endpoint: target.redacted,
                    secret: target.secret,
                    timeout: self.timeout,
                    connect_timeout: self.connect_timeout,
                },
                pool: SyncPool::new(self.pool_size),
                #[cfg(feature = "tokio")]
                shared: connection::AsyncShared::default(),
                #[cfg(feature = "tokio")]
                changes,
            }),
        })
    }
}

/// The redis client for `info`, speaking `protocol`. It skips `CLIENT SETINFO` when connecting:
/// one reply less to wait for, which keeps connection set-up within the connect timeout.
fn open_client(
    info: &redis::ConnectionInfo,
    root_cert: Option<Vec<u8>>,
    protocol: redis::ProtocolVersion,
) -> redis::RedisResult<Client> {
    let redis_settings = info.redis_settings().clone().set_skip_set_lib_name().set_protocol(protocol);
    with_tls(info.clone().set_redis_settings(redis_settings), root_cert)
}

#[cfg(feature = "tls")]
fn with_tls(info: redis::ConnectionInfo, root_cert: Option<Vec<u8>>) -> redis::RedisResult<Client> {
    if matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
        // rustls needs a process-wide crypto provider; install ring's unless the application
        // installed one already (then this does nothing).
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    match root_cert {
        None => Client::open(info),
        Some(root_cert) => {
            Client::build_with_tls(info, redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) })
        }
    }
}

#[cfg(not(feature = "tls"))]
fn with_tls(info: redis::ConnectionInfo, root_cert: Option<Vec<u8>>) -> redis::RedisResult<Client> {
    if root_cert.is_some() || matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
        return Err(redis::RedisError::from(std::io::Error::other("TLS needs cache-tower's `tls` feature")));
    }
    Client::open(info)
}

impl RedisAdapter {
    /// A builder; see [`RedisAdapterBuilder`].
    pub fn builder() -> RedisAdapterBuilder {
        RedisAdapterBuilder::default()
    }

    /// The server this adapter talks to, with any password redacted.
    ///
    /// ```
    /// let redis = cache_tower::RedisAdapter::builder().url("redis://app:hunter2@cache:6379/0").build()?;
    /// assert_eq!(redis.endpoint(), "redis://app:***@cache:6379/0");
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn endpoint(&self) -> &str {
        &self.inner.connector.endpoint
    }

    /// Runs one sync call on a pooled connection.
    fn run<T>(&self, operation: &str, call: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>) -> Result<T> {
        self.inner.pool.run(&self.inner.connector, operation, call)
    }

    /// Runs one async call on the shared connection.
    #[cfg(feature = "tokio")]
    async fn run_async<T, F, Fut>(&self, operation: &str, call: F) -> Result<T>
    where
        F: FnOnce(redis::aio::MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.inner.shared.run(&self.inner.connector, operation, call).await
    }
}

/// `WRONGTYPE` from a plain `GET`: the key holds a hash, list, ... rather than a string. That is
/// a value this layer cannot read, like a corrupt one, not a fault of the server: a miss. (The
/// scripts that read several things check the type themselves.)
fn wrong_type_is_a_miss<T>(err: redis::RedisError) -> redis::RedisResult<Option<T>> {
    if err.code() == Some("WRONGTYPE") {
        tracing::debug!("redis key holds a non-string value; treated as a miss");
        return Ok(None);
    }
    Err(err)
}

impl fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("endpoint", &self.inner.connector.endpoint)
            .field("namespace", &self.inner.namespace)
            .field("ttl", &self.inner.ttl)
            .field("timeout", &self.inner.connector.timeout)
            .finish_non_exhaustive()
    }
}

impl CacheAdapter for RedisAdapter {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    fn ttl(&self) -> Option<Duration> {
        self.inner.ttl
    }

    fn get(&self, key: &str) -> Result<Option<Entry>> {
        let script = self.inner.commands.get_with_ttl(key);
        self.run("GET", |con| script.invoke(con)).map(parse_get_with_ttl)
    }

    fn get_value(&self, key: &str) -> Result<Option<StoredValue>> {
        let cmd = self.inner.commands.get(key);
        let reply = self.run("GET", |con| cmd.query::<Option<Vec<u8>>>(con).or_else(wrong_type_is_a_miss));
        reply.map(|value| value.map(StoredValue::from_json))
    }

    fn mget(&self, keys: &[&str]) -> Result<Vec<Option<Entry>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let script = self.inner.commands.mget_with_ttl(keys);
        let replies = self.run("MGET", |con| script.invoke(con))?;
        parse_mget_with_ttl(replies, keys.len())
    }

    fn mget_values(&self, keys: &[&str]) -> Result<Vec<Option<StoredValue>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let cmd = self.inner.commands.mget(keys);
        self.run("MGET", |con| cmd.query(con)).map(values)
    }

    fn set(&self, key: &str, entry: &Entry) -> Result<()> {
        let cmd = self.inner.commands.set(key, entry)?;
        self.run("SET", |con| cmd.query(con))
    }

    fn mset(&self, items: &[(&str, Entry)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let script = self.inner.commands.mset(items)?;
        self.run("MSET", |con| script.invoke::<i64>(con)).map(drop)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let cmd = self.inner.commands.delete(key);
        self.run("UNLINK", |con| cmd.query(con))
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let cmd = self.inner.commands.exists(key);
        self.run("EXISTS", |con| cmd.query::<i64>(con)).map(|count| count > 0)
    }

    fn flush(&self) -> Result<()> {
        let mut cursor = 0;
        loop {
            let scan = self.inner.commands.scan(cursor);
            let (next, keys): (u64, Vec<Vec<u8>>) = self.run("SCAN", |con| scan.query(con))?;
            if !keys.is_empty() {
                let unlink = Commands::unlink(&keys);
                self.run("UNLINK", |con| unlink.query::<()>(con))?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    #[cfg(feature = "tokio")]
    fn as_async(&self) -> Option<&dyn crate::AsyncCacheAdapter> {
        Some(self)
    }

    #[cfg(feature = "tokio")]
    fn watch_changes(&self, sink: crate::ChangeSink) -> Option<crate::ChangeWatch> {
        let client = self.inner.changes.clone()?;
        let listener = changes::Listener {
            client,
            namespace: self.inner.namespace.clone(),
            timeout: self.inner.connector.timeout,
            endpoint: self.inner.connector.endpoint.clone(),
            sink,
        };
        Some(listener.spawn())
    }
}

#[cfg(feature = "tokio")]
impl crate::AsyncCacheAdapter for RedisAdapter {
    fn call<'a>(&'a self, request: crate::Request<'a>) -> crate::BoxFuture<'a, Result<crate::Reply>> {
        use crate::{Reply, Request};
        Box::pin(async move {
            Ok(match request {
                Request::Get(key) => Reply::Entry(self.get_async(key).await?),
                Request::GetValue(key) => Reply::Value(self.get_value_async(key).await?),
                Request::Mget(keys) => Reply::Entries(self.mget_async(keys).await?),
                Request::MgetValues(keys) => Reply::Values(self.mget_values_async(keys).await?),
                Request::Set(key, entry) => {
                    self.set_async(key, entry).await?;
                    Reply::Done
                }
                Request::Mset(items) => {
                    self.mset_async(items).await?;
                    Reply::Done
                }
                Request::Delete(key) => {
                    self.delete_async(key).await?;
                    Reply::Done
                }
                Request::Exists(key) => Reply::Exists(self.exists_async(key).await?),
                Request::Flush => {
                    self.flush_async().await?;
                    Reply::Done
                }
            })
        })
    }
}

#[cfg(feature = "tokio")]
impl RedisAdapter {
    fn get_async<'a>(&'a self, key: &'a str) -> crate::BoxFuture<'a, Result<Option<Entry>>> {
        Box::pin(async move {
            let script = self.inner.commands.get_with_ttl(key);
            let reply = self.run_async("GET", |mut con| async move { script.invoke_async(&mut con).await }).await;
            reply.map(parse_get_with_ttl)
        })
    }

    fn get_value_async<'a>(&'a self, key: &'a str) -> crate::BoxFuture<'a, Result<Option<StoredValue>>> {
        let cmd = self.inner.commands.get(key);
        Box::pin(async move {
            let reply = self
                .run_async("GET", |mut con| async move {
                    cmd.query_async::<Option<Vec<u8>>>(&mut con).await.or_else(wrong_type_is_a_miss)
                })
                .await;
            reply.map(|value| value.map(StoredValue::from_json))
        })
    }

    fn mget_async<'a>(&'a self, keys: &'a [&'a str]) -> crate::BoxFuture<'a, Result<Vec<Option<Entry>>>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let script = self.inner.commands.mget_with_ttl(keys);
            let replies = self.run_async("MGET", |mut con| async move { script.invoke_async(&mut con).await }).await?;
            parse_mget_with_ttl(replies, keys.len())
        })
    }

    fn mget_values_async<'a>(&'a self, keys: &'a [&'a str]) -> crate::BoxFuture<'a, Result<Vec<Option<StoredValue>>>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let cmd = self.inner.commands.mget(keys);
            self.run_async("MGET", |mut con| async move { cmd.query_async(&mut con).await }).await.map(values)
        })
    }

    fn set_async<'a>(&'a self, key: &'a str, entry: &'a Entry) -> crate::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let cmd = self.inner.commands.set(key, entry)?;
            self.run_async("SET", |mut con| async move { cmd.query_async(&mut con).await }).await
        })
    }

    fn mset_async<'a>(&'a self, items: &'a [(&'a str, Entry)]) -> crate::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if items.is_empty() {
                return Ok(());
            }
            let script = self.inner.commands.mset(items)?;
            self.run_async("MSET", |mut con| async move { script.invoke_async::<i64>(&mut con).await }).await.map(drop)
        })
    }

    fn delete_async<'a>(&'a self, key: &'a str) -> crate::BoxFuture<'a, Result<()>> {
        let cmd = self.inner.commands.delete(key);
        Box::pin(
            async move { self.run_async("UNLINK", |mut con| async move { cmd.query_async(&mut con).await }).await },
        )
    }

    fn exists_async<'a>(&'a self, key: &'a str) -> crate::BoxFuture<'a, Result<bool>> {
        let cmd = self.inner.commands.exists(key);
        Box::pin(async move {
            let count =
                self.run_async("EXISTS", |mut con| async move { cmd.query_async::<i64>(&mut con).await }).await?;
            Ok(count > 0)
        })
    }

    fn flush_async(&self) -> crate::BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut cursor = 0;
            loop {
                let scan = self.inner.commands.scan(cursor);
                let (next, keys): (u64, Vec<Vec<u8>>) =
                    self.run_async("SCAN", |mut con| async move { scan.query_async(&mut con).await }).await?;
                if !keys.is_empty() {
                    let unlink = Commands::unlink(&keys);
                    self.run_async("UNLINK", |mut con| async move { unlink.query_async::<()>(&mut con).await }).await?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn building_does_not_connect() {
        // Nothing listens on port 1; building must still work (connecting happens on use).
        let redis = RedisAdapter::builder().port(1).timeout(Duration::from_millis(50)).build().unwrap();
        assert_eq!(redis.endpoint(), "redis://127.0.0.1:1/0");
        let err = redis.get("k").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Layer);
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }

    #[test]
    fn zero_timeouts_are_rejected() {
        let err = RedisAdapter::builder().timeout(Duration::ZERO).build().unwrap_err();
        assert_eq!(err.field(), Some("timeout"));
    }

    #[test]
    fn password_stays_out_of_debug_and_errors() {
        let redis =
            RedisAdapter::builder().port(1).password("hunter2").timeout(Duration::from_millis(50)).build().unwrap();
        assert!(!format!("{redis:?}").contains("hunter2"));
        let err = redis.set("k", &Entry::new(StoredValue::new(1), None)).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }
}
