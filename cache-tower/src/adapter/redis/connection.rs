//! Connections to Redis with bounded waits: a pool of sync connections, and one shared
//! multiplexed async connection (feature `tokio`), each with one function that carries out any
//! [`Op`] (`SyncPool::send`, `AsyncShared::send`).
//!
//! * A new connection loads the layer's scripts and reads the namespace's generation before its
//!   first use ([`handshake`], one pipelined round trip within the connect timeout), so every
//!   operation is one round trip from the first call.
//! * A connection that fails is dropped and a new one is made on the next call, so the adapter
//!   recovers by itself once Redis is back.
//! * A connection the server had already closed while it sat idle (the server's `timeout`,
//!   `CLIENT KILL`, a proxy, a failover) is noticed by the first command sent on it, which fails
//!   at once with end-of-file, a broken pipe or a reset. That command is sent once more on a fresh
//!   connection, within what is left of the operation's timeout, instead of failing the call (and
//!   counting against the tower's circuit breaker). Only commands sent on a connection that
//!   existed before the call are resent, once: a fresh connection that fails so means the server
//!   is going away, and that is reported. Resending is safe because every command of the layer
//!   is idempotent (see `ops.rs`): even if the first copy did reach Redis before the connection
//!   broke, the second one leaves the same state.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::{Client, Connection, RedisError, RedisResult, Value};

use super::generation::Generation;
use super::ops::{Command, Failed, Op, Progress, handshake, handshaken, is_noscript, load_scripts};
use super::settings::{Scrubbed, Secrets, scrub};
use crate::adapter::Reply;
use crate::error::{Error, Fault, Result};

/// Which server a new connection goes to.
#[derive(Clone)]
pub(super) enum Source {
    /// Always this one.
    Client(Client),
    /// The master Sentinel names at the time (feature `sentinel`).
    #[cfg(feature = "sentinel")]
    Sentinel(SentinelSource),
}

/// A master found through Sentinel: asked of the sentinels each time a connection opens, so a
/// connection made after a failover goes to the new master.
#[cfg(feature = "sentinel")]
#[derive(Clone)]
pub(super) struct SentinelSource {
    pub(super) sentinels: Vec<redis::ConnectionInfo>,
    pub(super) master_name: String,
    /// The data nodes' credentials, database, protocol and TLS.
    pub(super) node: redis::sentinel::SentinelNodeConnectionInfo,
}

impl Source {
    /// The client of the server to connect to now.
    pub(super) fn client(&self) -> RedisResult<Client> {
        match self {
            Source::Client(client) => Ok(client.clone()),
            #[cfg(feature = "sentinel")]
            Source::Sentinel(source) => redis::sentinel::Sentinel::build(source.sentinels.clone())?
                .master_for(&source.master_name, Some(&source.node)),
        }
    }

    /// [`client`](Self::client), without blocking the task.
    #[cfg(feature = "tokio")]
    pub(super) async fn client_async(&self) -> RedisResult<Client> {
        match self {
            Source::Client(client) => Ok(client.clone()),
            #[cfg(feature = "sentinel")]
            Source::Sentinel(source) => {
                redis::sentinel::Sentinel::build(source.sentinels.clone())?
                    .async_master_for(&source.master_name, Some(&source.node))
                    .await
            }
        }
    }

    /// Whether connections from it can end up on a replica after a failover (Sentinel), so a
    /// server that stops being the master means "connect again".
    pub(super) fn follows_failover(&self) -> bool {
        !matches!(self, Source::Client(_))
    }
}

/// How a connection is made and how long calls may wait.
pub(super) struct Connector {
    pub(super) source: Source,
    /// The URL with its password redacted, for messages.
    pub(super) endpoint: String,
    pub(super) secrets: Secrets,
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
    /// The namespace's generation, which a new connection reads in its handshake.
    pub(super) generation: std::sync::Arc<Generation>,
}

impl Connector {
    /// An error for a failed operation, naming it and the server, never the password.
    pub(super) fn error(&self, operation: &str, err: &RedisError) -> Error {
        let fault = if err.is_timeout() {
            Fault::Timeout
        } else if err.code().is_some() {
            Fault::Reply
        } else if err.is_io_error() || err.is_connection_dropped() || err.is_unrecoverable_error() {
            Fault::Connection
        } else {
            Fault::Other
        };
        // The cause stays an error of its own (its text scrubbed), for a reporter that walks
        // `source()`; `Error::report` shows both on one line.
        let mut message = format!("redis {operation} on {} failed", self.endpoint);
        if let Some(words) = in_words(err) {
            message = format!("{message}: {words}");
        }
        Error::layer_fault(fault, message).with_source(Scrubbed::new(err, &self.secrets))
    }

    pub(super) fn timed_out(&self, operation: &str) -> Error {
        Error::layer_fault(
            Fault::Timeout,
            format!("redis {operation} on {} timed out after {:?}", self.endpoint, self.timeout),
        )
    }

    /// The error of an operation whose reply failed it.
    pub(super) fn failed(&self, operation: &str, failed: Failed) -> Error {
        match failed {
            Failed::Redis(err) => self.error(operation, &err),
            Failed::Reply(err) => err,
        }
    }

    /// Opens a sync connection and loads the scripts on it, within `within`.
    ///
    /// The redis client bounds each *read* of the connection handshake (AUTH, SELECT) by the
    /// timeout, not the handshake as a whole, so a hung server could hold it for a multiple of
    /// it. The handshake therefore runs on a helper thread that we stop waiting for at the
    /// deadline; it ends by itself shortly after, its connection dropped.
    fn connect(&self, operation: &str, within: Duration) -> Result<Connection> {
        let within = within.min(self.connect_timeout).max(Duration::from_millis(1));
        let source = self.source.clone();
        let generation = std::sync::Arc::clone(&self.generation);
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new().name("cache-tower-redis-connect".into()).spawn(move || {
            let started = Instant::now();
            let opened = source.client().and_then(|client| client.get_connection_with_timeout(within)).and_then(
                |mut connection| {
                    set_timeouts(&connection, within.saturating_sub(started.elapsed()).max(Duration::from_millis(1)))?;
                    let replies: Vec<Value> = handshake(&generation).query(&mut connection)?;
                    handshaken(&generation, &replies);
                    Ok(connection)
                },
            );
            let _ = sender.send(opened);
        });
        if let Err(err) = spawned {
            return Err(Error::layer_fault(Fault::Other, format!("redis {operation}: cannot start a connect thread"))
                .with_source(err));
        }
        match receiver.recv_timeout(within) {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(err)) => Err(self.error(operation, &err)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Error::layer_fault(
                Fault::Timeout,
                format!("redis {operation} on {}: connecting timed out after {within:?}", self.endpoint),
            )),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(Error::layer_fault(
                Fault::Other,
                format!("redis {operation} on {}: the connect thread failed (it panicked)", self.endpoint),
            )),
        }
    }
}

/// What a refusal a user can fix means, in a sentence naming the setting to change, for the
/// errors whose raw text speaks of commands the user never sent (`NOAUTH … HELLO … AUTH`).
pub(super) fn in_words(err: &RedisError) -> Option<&'static str> {
    const REFUSED: &str = "the server refused the user name or password: check `username` and `password`";
    if err.kind() == redis::ErrorKind::AuthenticationFailed {
        return Some(REFUSED);
    }
    if err.is_connection_refusal() {
        return Some("nothing accepts connections there: is Redis running, and are the host and port right?");
    }
    // A refusal of the scripts loaded with the connection's first commands is a pipeline's.
    let first_of_pipeline = || err.clone().into_server_errors()?.first().map(|(_, refusal)| refusal.code().to_owned());
    let code = err.code().map(str::to_owned).or_else(first_of_pipeline)?;
    Some(match code.as_str() {
        "NOAUTH" => {
            "the server requires a password and none was given: set `password` (or `password_env`, \
             or put it in the URL)"
        }
        "WRONGPASS" => REFUSED,
        "NOPERM" => "the server's ACL does not let this user run this command or use these keys: grant them",
        _ => return None,
    })
}

/// Whether an error means the connection itself is unusable (rather than one command failing).
fn breaks_connection(err: &RedisError) -> bool {
    err.is_io_error() || err.is_timeout() || err.is_connection_dropped() || err.is_unrecoverable_error()
}

/// Whether an error shows that the connection had been closed before the command could be
/// answered: end of file, a broken pipe, a reset (not a refusal, not a timeout: a server that
/// is down or hung is reported, not retried).
fn was_closed(err: &RedisError) -> bool {
    err.is_connection_dropped() && !err.is_connection_refusal() && !err.is_timeout()
}

/// Whether the server answered that it is a replica now (`READONLY`): with Sentinel, a failover
/// demoted the master this connection went to, and a new connection finds the new one.
fn was_demoted(connector: &Connector, err: &RedisError) -> bool {
    connector.source.follows_failover() && err.code() == Some("READONLY")
}

/// Carries out `op` with `send`, which sends one command and gives its reply (`Ok(Err)`: Redis
/// answered with an error) or fails the operation (`Err`).
macro_rules! drive {
    ($connector:expr, $op:expr, |$cmd:ident| $send:expr) => {{
        let connector: &Connector = $connector;
        let mut op: Op<'_> = $op;
        loop {
            let reply = match op.command() {
                Some($cmd) => Some($send),
                None => None,
            };
            match op.feed(reply) {
                Ok(Progress::Done(reply)) => break Ok(reply),
                Ok(Progress::Next) => {}
                Err(failed) => break Err(connector.failed(op.name(), failed)),
            }
        }
    }};
}
#[cfg(feature = "cluster")]
pub(super) use drive;

// ===== impl SyncPool =====

/// Idle sync connections, reused by later calls.
pub(super) struct SyncPool {
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl SyncPool {
    pub(super) fn new(max_idle: usize) -> Self {
        Self { idle: Mutex::new(Vec::new()), max_idle }
    }

    /// Carries out `op`: each of its commands on a connection, within `connector.timeout` each
    /// (connecting and one resend included).
    pub(super) fn send(&self, connector: &Connector, op: Op<'_>) -> Result<Reply> {
        let name = op.name();
        drive!(connector, op, |cmd| self.query(connector, name, cmd)?)
    }

    /// Sends one command and reads its reply.
    fn query(&self, connector: &Connector, operation: &str, cmd: &Command) -> Result<RedisResult<Value>> {
        let started = Instant::now();
        let left = || connector.timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
        let mut pooled = self.idle.lock().pop();
        loop {
            let reused = pooled.is_some();
            let mut connection = match pooled.take() {
                Some(connection) => connection,
                None => {
                    let connection = connector.connect(operation, left())?;
                    // Whatever is left of the call's budget bounds this first use.
                    set_timeouts(&connection, left()).map_err(|err| connector.error(operation, &err))?;
                    connection
                }
            };
            let mut reply = cmd.query(&mut connection);
            if reply.as_ref().is_err_and(is_noscript) {
                // `SCRIPT FLUSH` since this connection loaded the scripts: load them again.
                reply = load_scripts().exec(&mut connection).and_then(|()| cmd.query(&mut connection));
            }
            match reply {
                Err(err) if reused && (was_closed(&err) || was_demoted(connector, &err)) => {
                    // The server closed this connection while it was idle, and likely the other
                    // idle ones too (or, with Sentinel, it is a replica now): drop them, and send
                    // the command again on a fresh one.
                    tracing::debug!(error = %scrub(&err.to_string(), &connector.secrets), "redis connection was closed by the server; resending on a new one");
                    self.idle.lock().clear();
                }
                Err(err) if breaks_connection(&err) => {
                    // The server is probably gone or restarted: the other idle connections are as
                    // dead as this one, so drop them all rather than fail once per connection.
                    self.idle.lock().clear();
                    return Err(if err.is_timeout() {
                        connector.timed_out(operation)
                    } else {
                        connector.error(operation, &err)
                    });
                }
                reply => {
                    self.give_back(connector, connection, reused);
                    return Ok(reply);
                }
            }
        }
    }

    /// Keeps a healthy connection for reuse, if there is room. A new connection carries a
    /// shortened timeout: it gets the full one once, when kept.
    fn give_back(&self, connector: &Connector, connection: Connection, reused: bool) {
        if !reused && set_timeouts(&connection, connector.timeout).is_err() {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(connection);
        }
    }
}

fn set_timeouts(connection: &Connection, timeout: Duration) -> RedisResult<()> {
    connection.set_read_timeout(Some(timeout))?;
    connection.set_write_timeout(Some(timeout))
}

// ===== impl AsyncShared =====

/// One async connection shared by every task (a multiplexed connection to one server, or a
/// cluster connection), made on first use and remade after it breaks.
#[cfg(feature = "tokio")]
pub(super) struct Shared<C> {
    /// The connection, numbered: a task that found its connection broken forgets it only if it
    /// is still the shared one, not the new one another task has made since.
    connection: Mutex<Option<(u64, C)>>,
    /// The number of the next connection made.
    made: std::sync::atomic::AtomicU64,
    /// Held by the one task making the connection: the others wait for it (within their own
    /// timeout) instead of each opening a connection of its own, all but one thrown away.
    connecting: tokio::sync::Mutex<()>,
}

#[cfg(feature = "tokio")]
impl<C> Default for Shared<C> {
    fn default() -> Self {
        Self { connection: Mutex::new(None), made: Default::default(), connecting: Default::default() }
    }
}

#[cfg(feature = "tokio")]
impl<C: Clone> Shared<C> {
    /// The shared connection, its number, and whether it existed before this call (`false`:
    /// just made, by `make` or by the task this one waited for).
    pub(super) async fn get_or_make<F>(&self, make: impl FnOnce() -> F) -> RedisResult<(u64, C, bool)>
    where
        F: std::future::Future<Output = RedisResult<C>>,
    {
        if let Some((number, connection)) = self.connection.lock().clone() {
            return Ok((number, connection, true));
        }
        let _connecting = self.connecting.lock().await;
        if let Some((number, connection)) = self.connection.lock().clone() {
            return Ok((number, connection, false));
        }
        let connection = make().await?;
        let number = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self.connection.lock() = Some((number, connection.clone()));
        Ok((number, connection, false))
    }

    /// Forgets connection `number` if it is still the shared one: the next call makes a new one.
    pub(super) fn forget(&self, number: u64) {
        let mut shared = self.connection.lock();
        if shared.as_ref().is_some_and(|(current, _)| *current == number) {
            shared.take();
        }
    }

    /// Forgets the shared connection, whichever it is (the server hung or could not be reached).
    pub(super) fn reset(&self) {
        self.connection.lock().take();
    }
}

/// One multiplexed async connection to the server, shared by every task.
#[cfg(feature = "tokio")]
#[derive(Default)]
pub(super) struct AsyncShared {
    connection: Shared<redis::aio::MultiplexedConnection>,
}

#[cfg(feature = "tokio")]
impl AsyncShared {
    /// Carries out `op`: each of its commands on the shared connection, within
    /// `connector.timeout` each (connecting and one resend included).
    pub(super) async fn send(&self, connector: &Connector, op: Op<'_>) -> Result<Reply> {
        let name = op.name();
        drive!(connector, op, |cmd| self.query(connector, name, cmd).await?)
    }

    /// Sends one command and reads its reply, within `connector.timeout`.
    async fn query(&self, connector: &Connector, operation: &str, cmd: &Command) -> Result<RedisResult<Value>> {
        let work = async {
            let (mut number, mut connection, mut reused) = self.connection(connector).await?;
            loop {
                let mut reply = cmd.query_async(&mut connection).await;
                if reply.as_ref().is_err_and(is_noscript) {
                    reply = match load_scripts().exec_async(&mut connection).await {
                        Ok(()) => cmd.query_async(&mut connection).await,
                        Err(err) => Err(err),
                    };
                }
                match reply {
                    Err(err) if reused && (was_closed(&err) || was_demoted(connector, &err)) => {
                        tracing::debug!(error = %scrub(&err.to_string(), &connector.secrets), "redis connection was closed by the server; resending on a new one");
                        self.connection.forget(number);
                        (number, connection, _) = self.connection(connector).await?;
                        reused = false; // resent once at most
                    }
                    reply => return Ok::<_, RedisError>((number, reply)),
                }
            }
        };
        match tokio::time::timeout(connector.timeout, work).await {
            Ok(Ok((number, Err(err)))) if breaks_connection(&err) => {
                self.connection.forget(number);
                Err(if err.is_timeout() { connector.timed_out(operation) } else { connector.error(operation, &err) })
            }
            Ok(Ok((_, reply))) => Ok(reply),
            Ok(Err(err)) => {
                self.connection.reset();
                Err(if err.is_timeout() { connector.timed_out(operation) } else { connector.error(operation, &err) })
            }
            Err(_elapsed) => {
                // A hung server: start afresh next time rather than queue behind it.
                self.connection.reset();
                Err(connector.timed_out(operation))
            }
        }
    }

    /// The shared connection, its number, and whether it existed before this call (`false`:
    /// just made).
    async fn connection(&self, connector: &Connector) -> RedisResult<(u64, redis::aio::MultiplexedConnection, bool)> {
        self.connection
            .get_or_make(|| async {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connector.connect_timeout.min(connector.timeout)))
                    .set_response_timeout(Some(connector.timeout));
                let client = connector.source.client_async().await?;
                let mut connection = client.get_multiplexed_async_connection_with_config(&config).await?;
                let replies: Vec<Value> = handshake(&connector.generation).query_async(&mut connection).await?;
                handshaken(&connector.generation, &replies);
                Ok(connection)
            })
            .await
    }
}
