//! [`RedisAdapter`]: a shared layer on Redis (feature `redis`).
//!
//! Values are stored as their JSON text under `namespace + key`, so other programs can read
//! them. Every operation is one round trip with one reply (a Lua script where a value and its
//! remaining TTL are read together, or many keys are written with their TTLs), every wait is
//! bounded by the adapter's timeout, and a broken connection is replaced on the next call.
//!
//! `ops.rs` says what each operation sends and how its reply is read, without I/O;
//! `connection.rs` sends it, with one function for the sync pool and one for the shared async
//! connection. ADR 7 says why these connections are ours rather than redis-rs's
//! `ConnectionManager` or r2d2 pool.

#[cfg(feature = "tokio")]
mod changes;
#[cfg(feature = "cluster")]
mod cluster;
mod connection;
mod generation;
mod ops;
mod settings;
#[cfg(feature = "cluster")]
mod slot_owners;
mod tags;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use redis::Client;

use self::connection::{Connector, Source, SyncPool};
use self::ops::Ops;
use self::settings::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT, Settings};
use crate::adapter::{CacheAdapter, Reply, Request};
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
///   connecting included (`flush`: each of its steps). Sync operations use a pool of connections
///   (16 idle ones kept by default); async ones (feature `tokio`) share one multiplexed
///   connection and need a tokio runtime with its timer enabled (`#[tokio::main]` has it).
/// * The Lua scripts are loaded when a connection opens (one pipelined round trip, part of
///   connecting), so even the first `get`, `mget` or `mset` on a fresh server is one command.
/// * A connection the server closed while it was idle (its `timeout` setting, `CLIENT KILL`, a
///   proxy, a failover) costs nothing: the command that finds it closed (end of file, broken
///   pipe, reset) is sent once more on a fresh connection, within the same timeout. Every
///   command of this layer may be sent twice safely: `GET`, `MGET`, `GETRANGE`, `SCAN` and the
///   read scripts only read; `SET`, `DEL`, `UNLINK` and the `mset` script write the same values
///   again. A refused connection or a timeout is not retried: it is reported.
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
    ops: Ops,
    connector: Connector,
    backend: Backend,
    /// What the invalidation listener watches; `None` when invalidation is off.
    #[cfg(feature = "tokio")]
    changes: Option<changes::Watched>,
}

/// How operations reach Redis.
enum Backend {
    /// One server (or the master Sentinel names): a pool of sync connections and one shared
    /// async connection.
    Node {
        pool: SyncPool,
        #[cfg(feature = "tokio")]
        shared: connection::AsyncShared,
    },
    /// A Redis Cluster: one cluster connection for both paths.
    #[cfg(feature = "cluster")]
    Cluster(Box<cluster::ClusterShared>),
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
    stale: Duration,
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
            stale: Duration::ZERO,
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

    /// A Redis Cluster instead of one server (feature `cluster`): its seed nodes, each
    /// `"host:port"` or a `redis://` / `rediss://` URL (one live node is enough; redis-rs finds
    /// the rest and follows the topology from then on). The node list replaces [`url`](Self::url)
    /// and [`host`](Self::host) / [`port`](Self::port); [`username`](Self::username),
    /// [`password`](Self::password) (or [`password_env`](Self::password_env)) and
    /// [`tls`](Self::tls) apply to every node (a node URL with credentials of its own keeps
    /// them). A cluster has database 0 only.
    ///
    /// * `get`, `set`, `delete`, `exists` go to the node owning the key's slot; `mget` and
    ///   `mset` are split by slot, each master's share sent in one pipeline, every master at
    ///   once (one round trip per node, in parallel), results in request order. Which slots
    ///   share a master is read with `CLUSTER SLOTS` and used only to group: each pipeline is
    ///   routed by redis-rs, and a part a node redirects is sent again on its own.
    /// * `mset` is atomic per slot, not across slots: a reader may see some keys of a batch
    ///   written and others not yet. A namespace holding a hash tag (`"{users}:"`) puts every key
    ///   of the layer on one slot, so `mset` is atomic again and `mget` is one command, at the
    ///   price of putting the whole layer on one master (no sharding).
    /// * `flush` scans every master for the namespace's keys.
    /// * Invalidation subscribes on every master, and again when the masters change (a
    ///   failover, a node added): the memory layers above are cleared then.
    ///
    /// ```
    /// use cache_tower::RedisAdapter;
    ///
    /// let redis = RedisAdapter::builder()
    ///     .cluster(["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"])
    ///     .password("s3cret")
    ///     .namespace("users:")
    ///     .build()?;
    /// assert_eq!(redis.endpoint(), "cluster 10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000");
    ///
    /// // A node list and a URL name the servers twice: an error naming the field.
    /// let err = RedisAdapter::builder().cluster(["a:7000"]).url("redis://b:6379").build().unwrap_err();
    /// assert_eq!(err.field(), Some("cluster"));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn cluster<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.cluster = Some(nodes.into_iter().map(Into::into).collect());
        self
    }

    /// A master found through Redis Sentinel instead of a fixed server (feature `sentinel`):
    /// the name Sentinel monitors it by, and the sentinels, each `"host:port"` or a URL.
    ///
    /// Every new connection asks the sentinels for the current master (and checks that it is
    /// one), so after a failover the layer resumes on the new master without a restart: the
    /// old master's connections fail or answer `READONLY`, and the call is sent again on a new
    /// connection. The invalidation listener follows the master too (it checks `ROLE` with
    /// its health check) and the memory layers above are cleared at the switch.
    /// [`username`](Self::username), [`password`](Self::password), [`db`](Self::db) and
    /// [`tls`](Self::tls) are the data nodes'; the sentinels' own credentials are
    /// [`sentinel_password`](Self::sentinel_password) and
    /// [`sentinel_username`](Self::sentinel_username).
    ///
    /// ```
    /// use cache_tower::RedisAdapter;
    ///
    /// let redis = RedisAdapter::builder()
    ///     .sentinel("mymaster", ["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"])
    ///     .sentinel_password("sentinel-secret")
    ///     .password("data-secret")
    ///     .build()?;
    /// assert!(!format!("{redis:?}").contains("secret"));
    /// # Ok::<(), cache_tower::Error>(())
    /// ```
    pub fn sentinel<I, S>(mut self, master_name: impl Into<String>, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let sentinel = self.settings.sentinel.get_or_insert_with(Default::default);
        sentinel.master_name = master_name.into();
        sentinel.nodes = nodes.into_iter().map(Into::into).collect();
        self
    }

    /// The sentinels' ACL user name (their `requirepass` set-up's user), if they need one.
    pub fn sentinel_username(mut self, username: impl Into<String>) -> Self {
        self.settings.sentinel.get_or_insert_with(Default::default).username = Some(username.into());
        self
    }

    /// The sentinels' password (`requirepass` in their configuration), if they need one.
    pub fn sentinel_password(mut self, password: impl Into<String>) -> Self {
        self.settings.sentinel.get_or_insert_with(Default::default).password = Some(password.into());
        self
    }

    /// Reads the sentinels' password from the environment variable `name` when the adapter is
    /// built.
    pub fn sentinel_password_env(mut self, name: impl Into<String>) -> Self {
        self.settings.sentinel.get_or_insert_with(Default::default).password_env = Some(name.into());
        self
    }

    /// The prefix of every key of this layer (default empty: the whole database).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long entries live; `Duration::ZERO` (the default) means no expiry. At most
    /// [`MAX_TTL`](crate::adapter::MAX_TTL): a longer one is an error of [`build`](Self::build), since
    /// Redis would refuse every write.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = (!ttl.is_zero()).then_some(ttl);
        self
    }

    /// How long an entry is kept past its TTL as a *stale* value (default zero: none), for
    /// get-or-set's fail-safe ([`LoadOptions`](crate::LoadOptions)); plain reads treat it as
    /// absent. Redis holds the value's plain JSON with an expiry of TTL + stale window, and a key
    /// with no more than the window left (its `PTTL`) is stale. So every read asks for that time
    /// (`GET` + `PTTL` in one round trip, `PTTL` for `exists`), and the window is the layer's for
    /// every entry (an entry's own, [`Entry::with_stale_window`], applies to memory layers only).
    /// At most [`MAX_TTL`](crate::adapter::MAX_TTL), an error of [`build`](Self::build) otherwise.
    pub fn stale(mut self, stale: Duration) -> Self {
        self.stale = stale;
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
    ///
    /// On a cluster ([`cluster`](Self::cluster)) it is how many sync cluster connections (each
    /// one connection to every node) the blocking path may have: they are made in the
    /// background as blocking callers need them, and a blocking call that finds none idle goes
    /// through the layer's async connection (with 0, every blocking call does).
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
    /// [`ErrorKind::Config`](crate::error::ErrorKind::Config), naming the field: a malformed URL,
    /// conflicting settings (a URL and a host, say), an environment variable that is not set, an
    /// unreadable CA file, a zero timeout, a TTL over [`MAX_TTL`](crate::adapter::MAX_TTL), a `rediss://`
    /// URL without the `tls` feature. No error quotes a password or a URL as given.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_tower::{RedisAdapter, adapter::MAX_TTL};
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
        crate::config::check_ttl(self.stale).map_err(|message| Error::config(None, Some("stale"), message))?;
        if let Some(ttl) = self.ttl {
            crate::config::check_ttl(ttl).map_err(|message| Error::config(None, Some("ttl"), message))?;
        }
        let target = self.settings.resolve()?;
        let tls_field = if self.settings.tls { "tls" } else { "url" };
        let client_error = |err: redis::RedisError| {
            // A CA file the TLS library refuses, or TLS without the `tls` feature.
            let field = if target.root_cert.is_some() { "tls_ca_file" } else { tls_field };
            Error::config(None, Some(field), format!("the redis client cannot connect to {}", target.redacted))
                .with_source(settings::Scrubbed::new(&err, &target.secrets))
        };
        let open = |protocol| open_client(&target.info, target.root_cert.clone(), protocol).map_err(client_error);
        #[cfg_attr(not(feature = "cluster"), allow(unused_mut))]
        let mut ops = Ops::new(&self.namespace, self.ttl).with_stale(self.stale);
        let node_backend = || Backend::Node {
            pool: SyncPool::new(self.pool_size),
            #[cfg(feature = "tokio")]
            shared: connection::AsyncShared::default(),
        };
        // Where connections go, what the listener watches, and how operations are sent.
        #[cfg_attr(not(feature = "tokio"), allow(unused_variables))]
        let (source, watched, backend) = match &target.topology {
            settings::Topology::Single => {
                #[cfg(feature = "tokio")]
                let watched = changes::Watched::Node(Source::Client(open(redis::ProtocolVersion::RESP3)?));
                #[cfg(not(feature = "tokio"))]
                let watched = ();
                (Source::Client(open(redis::ProtocolVersion::RESP2)?), watched, node_backend())
            }
            #[cfg(feature = "sentinel")]
            settings::Topology::Sentinel { master_name, sentinels } => {
                let source = |protocol| {
                    let mut node = redis::sentinel::SentinelNodeConnectionInfo::default()
                        .set_redis_connection_info(node_settings(&target.info, protocol));
                    if let redis::ConnectionAddr::TcpTls { insecure, .. } = target.info.addr() {
                        node = node.set_tls_mode(if *insecure {
                            redis::TlsMode::Insecure
                        } else {
                            redis::TlsMode::Secure
                        });
                    }
                    Source::Sentinel(connection::SentinelSource {
                        sentinels: sentinels.clone(),
                        master_name: master_name.clone(),
                        node,
                    })
                };
                #[cfg(feature = "tokio")]
                let watched = changes::Watched::Node(source(redis::ProtocolVersion::RESP3));
                #[cfg(not(feature = "tokio"))]
                let watched = ();
                (source(redis::ProtocolVersion::RESP2), watched, node_backend())
            }
            #[cfg(feature = "cluster")]
            settings::Topology::Cluster(nodes) => {
                let seeds: Vec<redis::ConnectionInfo> = nodes
                    .iter()
                    .map(|node| node.clone().set_redis_settings(node_settings(node, redis::ProtocolVersion::RESP2)))
                    .collect();
                // `sync`: for the blocking path's sync connections, which never retry (each call
                // is one write and one read, what they cannot settle goes to the async
                // connection) and time out a little early (`cluster.rs`, ADR 20).
                let cluster_client = |sync: bool| {
                    let builder = redis::cluster::ClusterClient::builder(seeds.clone())
                        .use_protocol(redis::ProtocolVersion::RESP2)
                        .connection_timeout(self.connect_timeout.min(self.timeout));
                    let builder = if sync {
                        builder.retries(0).response_timeout(cluster::sync_timeout(self.timeout))
                    } else {
                        builder.response_timeout(self.timeout)
                    };
                    builder.build().map_err(client_error)
                };
                ops = ops.on_cluster();
                let shared =
                    cluster::ClusterShared::start(cluster_client(false)?, cluster_client(true)?, self.pool_size)
                        .map_err(|err| cluster::cannot_start(&err))?;
                let watched = changes::Watched::Cluster(Box::new(changes::ClusterWatch {
                    client: cluster_client(false)?,
                    node: node_settings(&nodes[0], redis::ProtocolVersion::RESP3),
                    tls: matches!(nodes[0].addr(), redis::ConnectionAddr::TcpTls { .. }),
                }));
                let source = Source::Client(Client::open(seeds[0].clone()).map_err(client_error)?);
                (source, watched, Backend::Cluster(Box::new(shared)))
            }
            #[allow(unreachable_patterns)]
            _ => {
                let (field, feature) = match &target.topology {
                    settings::Topology::Cluster(_) => ("cluster", "cluster"),
                    _ => ("sentinel", "sentinel"),
                };
                return Err(Error::config(
                    None,
                    Some(field),
                    format!("needs cache-tower's `{feature}` feature, which this build does not have"),
                ));
            }
        };
        let generation = Arc::clone(ops.generation());
        Ok(RedisAdapter {
            inner: Arc::new(Inner {
                ops,
                namespace: self.namespace,
                ttl: self.ttl,
                connector: Connector {
                    source,
                    endpoint: target.redacted,
                    secrets: target.secrets,
                    timeout: self.timeout,
                    connect_timeout: self.connect_timeout,
                    generation,
                },
                backend,
                #[cfg(feature = "tokio")]
                changes: self.invalidation.then_some(watched),
            }),
        })
    }
}

/// The redis client for `info`, speaking `protocol` (see [`node_settings`]).
fn open_client(
    info: &redis::ConnectionInfo,
    root_cert: Option<Vec<u8>>,
    protocol: redis::ProtocolVersion,
) -> redis::RedisResult<Client> {
    with_tls(info.clone().set_redis_settings(node_settings(info, protocol)), root_cert)
}

/// `info`'s credentials and database, speaking `protocol`, without `CLIENT SETINFO` when
/// connecting: one reply less to wait for, which keeps connection set-up within the connect
/// timeout.
fn node_settings(info: &redis::ConnectionInfo, protocol: redis::ProtocolVersion) -> redis::RedisConnectionInfo {
    info.redis_settings().clone().set_skip_set_lib_name().set_protocol(protocol)
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

    /// Carries out `request` on the blocking path.
    fn send(&self, request: Request<'_>) -> Result<Reply> {
        under_generation!(self, request, |op| match &self.inner.backend {
            Backend::Node { pool, .. } => pool.send(&self.inner.connector, op),
            #[cfg(feature = "cluster")]
            Backend::Cluster(cluster) => cluster.send_blocking(&self.inner.connector, op),
        })
    }
}

/// Carries out a request under the namespace's current generation (`generation.rs`) and with
/// its tags checked (`tags.rs`), sending each op with `$send` (blocking or awaited: both paths
/// run this once-written logic):
///
/// * a request of data keys first reads the generation record when that is due (nobody follows
///   it, and the last read is over a second old); a failed read fails the request, so an
///   unreachable server costs one timeout, not two;
/// * a write of tagged entries first takes the current versions of their tags (kept ones, or
///   one read of their records), which the entries are written with;
/// * a request of data keys that learnt of another generation while it ran (the handshake of
///   the connection it opened, or the listener hearing a `clear`) runs once more under it;
/// * a read that found tagged values checks them against the current versions of their tags
///   (kept ones, or one read of their records): a value whose tag was invalidated is a miss.
macro_rules! under_generation {
    ($adapter:expr, $request:expr, |$op:ident| $send:expr) => {{
        let adapter: &RedisAdapter = $adapter;
        let request: Request<'_> = $request;
        let ops = &adapter.inner.ops;
        let generation = ops.generation();
        let of_data = generation::of_data_keys(&request);
        let mut reply = Ok(Reply::Done);
        if of_data && generation.is_due() {
            let $op = ops.read_generation();
            reply = $send;
        }
        let written = tags::written(&request);
        let mut versions = tags::Versions::new();
        if reply.is_ok() && !written.is_empty() {
            match current_versions!(ops, &written, |$op| $send) {
                Ok(current) => versions = current,
                Err(err) => reply = Err(err),
            }
        }
        // What a tagged value read now is stamped with (`tags::checked`).
        let stamp = crate::value::tag_clock::now();
        if reply.is_ok() {
            for attempt in 0..2 {
                let seen = generation.current();
                let $op = ops.op(request, &versions)?;
                reply = $send;
                if !of_data || attempt == 1 || generation.current() == seen {
                    break;
                }
                tracing::debug!(
                    operation = request.name(),
                    "the cache namespace moved to a new generation meanwhile; running again under it"
                );
            }
        }
        if let Request::InvalidateTag(tag) = request {
            ops.tags().forget(tag);
        }
        let reply = match reply {
            Ok(found) => match tags::read(&found) {
                None => Ok(found),
                Some(read) => {
                    let read: Vec<&str> = read.iter().map(String::as_str).collect();
                    current_versions!(ops, &read, |$op| $send).map(|current| tags::checked(found, &current, stamp))
                }
            },
            Err(err) => Err(err),
        };
        // `exists` read the value's first bytes (`ops.rs`): whether one is left after the check.
        match (request, reply) {
            (Request::Exists(_), Ok(Reply::Value(value))) => Ok(Reply::Exists(value.is_some())),
            (_, reply) => reply,
        }
    }};
}
use under_generation;

/// The current versions of the tags `$tags`: those the layer keeps, the others read from their
/// records with one op sent by `$send` (see [`under_generation!`]).
macro_rules! current_versions {
    ($ops:expr, $tags:expr, |$op:ident| $send:expr) => {{
        let lookup = $ops.tags().lookup($tags);
        if lookup.missing.is_empty() {
            Ok(lookup.known)
        } else {
            match $ops.read_tag_records(&lookup.missing) {
                Ok($op) => $send.and_then(Reply::into_values).map(|records| $ops.tags().learn(lookup, &records)),
                Err(err) => Err(err),
            }
        }
    }};
}
use current_versions;

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

    fn stale(&self) -> Duration {
        self.inner.ops.stale()
    }

    fn get_stale(&self, key: &str) -> Result<Option<Entry>> {
        self.send(Request::GetStale(key))?.into_entry()
    }

    fn can_lock(&self) -> bool {
        true
    }

    fn lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        self.send(Request::Lock { key, token, ttl })?.into_locked()
    }

    fn unlock(&self, key: &str, token: &str) -> Result<()> {
        self.send(Request::Unlock { key, token })?.into_done()
    }

    fn get(&self, key: &str) -> Result<Option<Entry>> {
        self.send(Request::Get(key))?.into_entry()
    }

    fn get_value(&self, key: &str) -> Result<Option<StoredValue>> {
        self.send(Request::GetValue(key))?.into_value()
    }

    fn mget(&self, keys: &[&str]) -> Result<Vec<Option<Entry>>> {
        self.send(Request::Mget(keys))?.into_entries()
    }

    fn mget_values(&self, keys: &[&str]) -> Result<Vec<Option<StoredValue>>> {
        self.send(Request::MgetValues(keys))?.into_values()
    }

    fn set(&self, key: &str, entry: &Entry) -> Result<()> {
        self.send(Request::Set(key, entry))?.into_done()
    }

    fn mset(&self, items: &[(&str, Entry)]) -> Result<()> {
        self.send(Request::Mset(items))?.into_done()
    }

    fn delete_many(&self, keys: &[&str]) -> Result<()> {
        self.send(Request::DeleteMany(keys))?.into_done()
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.send(Request::Delete(key))?.into_done()
    }

    fn exists(&self, key: &str) -> Result<bool> {
        self.send(Request::Exists(key))?.into_exists()
    }

    fn flush(&self) -> Result<()> {
        self.send(Request::Flush)?.into_done()
    }

    /// One `SET` of a new random version into the tag's record, `<namespace>\0tag\0<tag>`:
    /// see [`CacheTower::invalidate_tag`](crate::CacheTower::invalidate_tag).
    fn invalidate_tag(&self, tag: &str) -> Result<()> {
        self.send(Request::InvalidateTag(tag))?.into_done()
    }

    /// One `INCR` of the namespace's generation record: see
    /// [`CacheTower::clear`](crate::CacheTower::clear).
    fn clear(&self) -> Result<()> {
        self.send(Request::Clear)?.into_done()
    }

    #[cfg(feature = "tokio")]
    fn as_async(&self) -> Option<&dyn crate::adapter::AsyncCacheAdapter> {
        Some(self)
    }

    #[cfg(feature = "tokio")]
    fn watch_changes(&self, sink: crate::adapter::ChangeSink) -> Option<crate::adapter::ChangeWatch> {
        let watched = self.inner.changes.clone()?;
        let listener = changes::Listener {
            watched,
            namespace: self.inner.namespace.clone(),
            timeout: self.inner.connector.timeout,
            endpoint: self.inner.connector.endpoint.clone(),
            secrets: self.inner.connector.secrets.clone(),
            sink,
            generation: Arc::clone(self.inner.ops.generation()),
            tags: Arc::clone(self.inner.ops.tags()),
        };
        Some(listener.spawn())
    }
}

#[cfg(feature = "tokio")]
impl crate::adapter::AsyncCacheAdapter for RedisAdapter {
    fn call<'a>(&'a self, request: Request<'a>) -> crate::adapter::BoxFuture<'a, Result<Reply>> {
        Box::pin(async move {
            under_generation!(self, request, |op| match &self.inner.backend {
                Backend::Node { shared, .. } => shared.send(&self.inner.connector, op).await,
                #[cfg(feature = "cluster")]
                Backend::Cluster(cluster) => cluster.send(&self.inner.connector, op).await,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

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
