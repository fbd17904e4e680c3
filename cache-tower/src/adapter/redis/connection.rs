//! Connections to Redis with bounded waits: a pool of sync connections, and one shared
//! multiplexed async connection (feature `tokio`). A connection that fails is dropped and a new
//! one is made on the next call, so the adapter recovers by itself once Redis is back.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::{Client, Connection, RedisError, RedisResult};

use super::settings::scrub;
use crate::error::{Error, ErrorKind, Result};

/// How a connection is made and how long calls may wait.
pub(super) struct Connector {
    pub(super) client: Client,
    /// The URL with its password redacted, for messages.
    pub(super) endpoint: String,
    pub(super) secret: Option<String>,
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
}

impl Connector {
    /// An error for a failed operation, naming it and the server, never the password.
    pub(super) fn error(&self, operation: &str, err: &RedisError) -> Error {
        let detail = scrub(&err.to_string(), self.secret.as_deref());
        Error::new(ErrorKind::Layer, format!("redis {operation} on {} failed: {detail}", self.endpoint))
    }

    /// Opens a sync connection within the connect timeout.
    ///
    /// The redis client bounds each *read* of the connection handshake (AUTH, SELECT) by the
    /// timeout, not the handshake as a whole, so a hung server could hold it for a multiple of
    /// it. The handshake therefore runs on a helper thread that we stop waiting for at the
    /// deadline; it ends by itself shortly after, its connection dropped.
    fn connect(&self, operation: &str) -> Result<Connection> {
        let within = self.connect_timeout.min(self.timeout);
        let client = self.client.clone();
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new().name("cache-tower-redis-connect".into()).spawn(move || {
            let _ = sender.send(client.get_connection_with_timeout(within));
        });
        if let Err(err) = spawned {
            return Err(Error::new(ErrorKind::Layer, format!("redis {operation}: cannot start a connect thread"))
                .with_source(err));
        }
        match receiver.recv_timeout(within) {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(err)) => Err(self.error(operation, &err)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Error::new(
                ErrorKind::Layer,
                format!("redis {operation} on {}: connecting timed out after {within:?}", self.endpoint),
            )),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(Error::new(
                ErrorKind::Layer,
                format!("redis {operation} on {}: the connect thread failed (it panicked)", self.endpoint),
            )),
        }
    }

    pub(super) fn timed_out(&self, operation: &str) -> Error {
        Error::new(
            ErrorKind::Layer,
            format!("redis {operation} on {} timed out after {:?}", self.endpoint, self.timeout),
        )
    }
}

/// Whether an error means the connection itself is unusable (rather than one command failing).
fn breaks_connection(err: &RedisError) -> bool {
    err.is_io_error() || err.is_timeout() || err.is_connection_dropped() || err.is_unrecoverable_error()
}

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

    /// Runs `call` on a connection, within `connector.timeout` in all (connecting included).
    pub(super) fn run<T>(
        &self,
        connector: &Connector,
        operation: &str,
        call: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        let started = Instant::now();
        let pooled = self.idle.lock().pop();
        let fresh = pooled.is_none();
        let mut connection = match pooled {
            Some(connection) => connection,
            None => {
                let connection = connector.connect(operation)?;
                // Whatever is left of the call's budget bounds this first use.
                let left = connector.timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
                set_timeouts(&connection, left).map_err(|err| connector.error(operation, &err))?;
                connection
            }
        };
        // A new connection carries a shortened timeout: it gets the full one once, when kept.
        let keep = |connection: Connection| {
            if !fresh || set_timeouts(&connection, connector.timeout).is_ok() {
                self.give_back(connection);
            }
        };
        match call(&mut connection) {
            Ok(value) => {
                keep(connection);
                Ok(value)
            }
            Err(err) if breaks_connection(&err) => {
                // The server is probably gone or restarted: the other idle connections are as
                // dead as this one, so drop them all rather than fail once per connection.
                self.idle.lock().clear();
                Err(if err.is_timeout() { connector.timed_out(operation) } else { connector.error(operation, &err) })
            }
            Err(err) => {
                keep(connection);
                Err(connector.error(operation, &err))
            }
        }
    }

    /// Keeps a healthy connection (with the full timeout set) for reuse, if there is room.
    fn give_back(&self, connection: Connection) {
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

/// One multiplexed async connection shared by every task, made on first use and remade after
/// it breaks.
#[cfg(feature = "tokio")]
#[derive(Default)]
pub(super) struct AsyncShared {
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// Held by the one task making the connection: the others wait for it (within their own
    /// timeout) instead of each opening a connection of its own, all but one thrown away.
    connecting: tokio::sync::Mutex<()>,
}

#[cfg(feature = "tokio")]
impl AsyncShared {
    /// Runs `call` on the shared connection, within `connector.timeout` in all.
    pub(super) async fn run<T, F, Fut>(&self, connector: &Connector, operation: &str, call: F) -> Result<T>
    where
        F: FnOnce(redis::aio::MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let work = async {
            let connection = self.connection(connector).await?;
            call(connection).await
        };
        match tokio::time::timeout(connector.timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                if breaks_connection(&err) {
                    self.reset();
                }
                Err(if err.is_timeout() { connector.timed_out(operation) } else { connector.error(operation, &err) })
            }
            Err(_elapsed) => {
                // A hung server: start afresh next time rather than queue behind it.
                self.reset();
                Err(connector.timed_out(operation))
            }
        }
    }

    async fn connection(&self, connector: &Connector) -> RedisResult<redis::aio::MultiplexedConnection> {
        if let Some(connection) = self.connection.lock().clone() {
            return Ok(connection);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(connection) = self.connection.lock().clone() {
            return Ok(connection); // made by the task we waited for
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connector.connect_timeout.min(connector.timeout)))
            .set_response_timeout(Some(connector.timeout));
        let connection = connector.client.get_multiplexed_async_connection_with_config(&config).await?;
        *self.connection.lock() = Some(connection.clone());
        Ok(connection)
    }

    fn reset(&self) {
        self.connection.lock().take();
    }
}
