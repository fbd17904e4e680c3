//! A Redis Cluster behind one layer (feature `cluster`): redis-rs's cluster connections, which
//! route each command by its key's hash slot, follow `MOVED` and `ASK`, and refresh their slot
//! map when the topology changes. Nothing here routes.
//!
//! * One async cluster connection is shared by every call, made on first use and remade after
//!   it fails, like the one-server async connection (`connection.rs`). It lives on a thread of
//!   the layer's own, with a one-thread tokio runtime: the tasks redis-rs spawns for the
//!   connection run there, whoever calls. Async calls await their replies from any runtime.
//! * Blocking calls of operations that are a single command (`GET`, `SET`, `UNLINK`,
//!   `GETRANGE`, `INCR`, `SET NX`, `EVALSHA` of one slot: [`Command::One`]) go out on a pool of
//!   redis-rs's *sync* cluster connections instead, on the calling thread (ADR 20): one write
//!   and one read, no thread crossed. Every other blocking call (pipelines, per-slot batches,
//!   `flush`) waits for the async connection on the calling thread ([`block_on`]). Both paths
//!   send the same commands (`ops.rs`); only the sending differs.
//! * The sync pool is a fast path that never waits for anything but the reply: its connections
//!   are made in the background (one at a time, at most `pool_size` of them, with the async
//!   connection's handshake), and a call that finds none idle, or whose command the sync
//!   connection did not settle (a redirect, a `NOSCRIPT`, a connection the server had closed, no
//!   reply in time), is sent on the async connection within what is left of its budget. A sync
//!   connection never retries, reconnects or refreshes its slot map by itself (`retries(0)`, no
//!   auto-reconnect): each call is one write and one read, each bounded by seven eighths of the
//!   layer's timeout ([`sync_timeout`]: a kernel socket timer may fire an eighth late); one that
//!   failed or whose slot map went stale (`MOVED`, `READONLY`) is dropped, and a new one made.
//! * The layer's scripts are loaded on every node when a connection (of either kind) opens
//!   (`SCRIPT LOAD` is routed to all nodes), and again on a `NOSCRIPT` (a node that joined
//!   since), by the async connection.
//! * Every call is bounded by the layer's timeout, whatever redis-rs retries inside it.
//! * Batches (`mget`, `mset`) go one pipeline per master, grouped by a hint of which slots
//!   share a master, read with `CLUSTER SLOTS` (`slot_owners.rs`); redis-rs still routes each
//!   pipeline, and when a pipeline meets a redirect its parts are sent again one by one.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisError, RedisResult, RetryMethod, Value};

use super::connection::{Connector, Shared, drive};
use super::generation::Generation;
use super::ops::{Command, Op, Progress, handshaken, is_noscript, script_sources};
use super::settings::{Secrets, scrub};
use super::slot_owners::SlotOwners;
use crate::adapter::Reply;
use crate::error::{Error, Fault, Result};

/// The shared cluster connection of a layer, the thread its tasks run on, and the blocking
/// path's sync connections.
pub(super) struct ClusterShared {
    client: ClusterClient,
    runtime: tokio::runtime::Handle,
    /// Ends the runtime's thread when the layer is dropped.
    _stop: tokio::sync::oneshot::Sender<()>,
    connection: Shared<ClusterConnection>,
    /// Which slots share a master, to batch by (`slot_owners.rs`); `None` until read, and
    /// again after a node redirected a command of a batch (read before the next batch).
    owners: Mutex<Option<Arc<SlotOwners>>>,
    /// The blocking path's sync cluster connections.
    sync: SyncClusters,
}

impl ClusterShared {
    /// Starts the layer's cluster thread; nothing connects yet. `sync_client` makes the
    /// blocking path's sync connections, at most `pool_size` of them (none: every blocking call
    /// goes through the async connection).
    pub(super) fn start(client: ClusterClient, sync_client: ClusterClient, pool_size: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name("cache-tower-cluster".into()).spawn(move || {
            // Runs the connection's tasks until the layer is gone.
            let _ = runtime.block_on(stopped);
        })?;
        Ok(Self {
            client,
            runtime: handle,
            _stop: stop,
            connection: Shared::default(),
            owners: Mutex::new(None),
            sync: SyncClusters::new(sync_client, pool_size),
        })
    }

    /// Carries out `op` on this thread (the blocking path): an operation of single commands on
    /// a sync connection when one is idle, anything else on the async connection, waited for.
    pub(super) fn send_blocking(&self, connector: &Connector, op: Op<'_>) -> Result<Reply> {
        if op.command().is_some_and(|cmd| !matches!(cmd, Command::One(_))) {
            // Timers made inside belong to the layer's runtime, which drives them.
            let _runtime = self.runtime.enter();
            return block_on(self.send(connector, op));
        }
        let name = op.name();
        drive!(connector, op, |cmd| self.query_blocking(connector, name, cmd)?)
    }

    /// Carries out `op`: each of its commands within `connector.timeout`.
    pub(super) async fn send(&self, connector: &Connector, op: Op<'_>) -> Result<Reply> {
        let name = op.name();
        drive!(connector, op, |cmd| self.query(connector, name, cmd, connector.timeout).await?)
    }

    /// Sends one command and reads its reply on this thread, within `connector.timeout`: on a
    /// sync connection if it can, else on the async connection with what is left of the time.
    fn query_blocking(&self, connector: &Connector, operation: &str, cmd: &Command) -> Result<RedisResult<Value>> {
        let started = Instant::now();
        if let Command::One(one) = cmd
            && let Some(reply) = self.sync.query(connector, operation, one)?
        {
            return Ok(reply);
        }
        let Some(left) = connector.timeout.checked_sub(started.elapsed()).filter(|left| !left.is_zero()) else {
            return Err(connector.timed_out(operation));
        };
        let _runtime = self.runtime.enter();
        block_on(self.query(connector, operation, cmd, left))
    }

    /// Sends one command and reads its reply on the async connection, within `within`.
    async fn query(
        &self,
        connector: &Connector,
        operation: &str,
        cmd: &Command,
        within: Duration,
    ) -> Result<RedisResult<Value>> {
        let work = async {
            let (number, mut connection) = self.connection(connector).await?;
            let owners = match cmd {
                Command::PerSlot(_) => self.owners(&mut connection).await,
                _ => None,
            };
            let mut redirected = false;
            let mut reply = cmd.query_cluster(&mut connection, owners.as_deref(), &mut redirected).await;
            if reply.as_ref().is_err_and(is_noscript) {
                // A node that joined (or was flushed) since the scripts were loaded.
                load_scripts(&mut connection).await?;
                reply = cmd.query_cluster(&mut connection, owners.as_deref(), &mut redirected).await;
            }
            if redirected {
                self.owners.lock().take();
            }
            Ok::<_, RedisError>((number, reply))
        };
        match tokio::time::timeout(within, work).await {
            Ok(Ok((number, Err(err)))) if err.is_unrecoverable_error() => {
                self.connection.forget(number);
                Err(connector.error(operation, &err))
            }
            Ok(Ok((_, reply))) => Ok(reply),
            Ok(Err(err)) => {
                self.connection.reset();
                Err(if err.is_timeout() { connector.timed_out(operation) } else { connector.error(operation, &err) })
            }
            Err(_elapsed) => Err(connector.timed_out(operation)),
        }
    }

    /// The shared connection and its number, made (on the layer's thread) if there is none.
    async fn connection(&self, connector: &Connector) -> RedisResult<(u64, ClusterConnection)> {
        let make = || async {
            let client = self.client.clone();
            let config = redis::cluster::ClusterConfig::new()
                .set_connection_timeout(connector.connect_timeout.min(connector.timeout))
                .set_response_timeout(connector.timeout);
            let generation = Arc::clone(&connector.generation);
            let made = self.runtime.spawn(async move {
                let mut connection = client.get_async_connection_with_config(config).await?;
                load_scripts(&mut connection).await?;
                // The generation record lives on one slot's master: a read of its own.
                let record: Value = generation.read().query_async(&mut connection).await?;
                handshaken(&generation, std::slice::from_ref(&record));
                Ok::<_, RedisError>(connection)
            });
            let connection = match made.await {
                Ok(made) => made?,
                Err(_) => return Err(RedisError::from(std::io::Error::other("the cluster connect task failed"))),
            };
            // A new connection may follow a topology change: read the owners again.
            self.owners.lock().take();
            Ok(connection)
        };
        let (number, connection, _) = self.connection.get_or_make(make).await?;
        Ok((number, connection))
    }

    /// Which slots share a master, read (`CLUSTER SLOTS`, one round trip) when not known. When
    /// they cannot be read, batches go per slot, which is slower but as correct.
    async fn owners(&self, connection: &mut ClusterConnection) -> Option<Arc<SlotOwners>> {
        if let Some(owners) = self.owners.lock().clone() {
            return Some(owners);
        }
        let read = match SlotOwners::command().query_async::<Value>(connection).await {
            Ok(reply) => SlotOwners::parse(reply),
            Err(err) => Err(format!("CLUSTER SLOTS failed: {}", err.category())),
        };
        match read {
            Ok(owners) => {
                let owners = Arc::new(owners);
                *self.owners.lock() = Some(Arc::clone(&owners));
                Some(owners)
            }
            Err(reason) => {
                tracing::debug!(reason, "redis cluster: batches go per slot (which slots share a master is unknown)");
                None
            }
        }
    }
}

// ===== the blocking path's sync connections =====

/// How long after a sync connection could not be made the next attempt waits: meanwhile (a node
/// down, a failover under way) blocking calls go through the async connection, as they would
/// with no sync connections at all.
const RETRY_MAKING_AFTER: Duration = Duration::from_secs(1);

/// How long a sync connection may take to be made before another may be started beside it:
/// every step of making one is bounded by the layer's timeouts, so only a node that stops
/// answering at a moment redis-rs sends without a timeout (the `PING` after connecting) holds
/// it longer.
const MAKING_STUCK_AFTER: Duration = Duration::from_secs(10);

/// The read and write timeouts of the blocking path's sync connections, for a layer timeout of
/// `timeout`: seven eighths of it. A socket's timeout is a kernel timer, which the kernel's timer
/// wheel lets fire up to an eighth late (a 250 ms read timeout fires between 250 and 282 ms, on a
/// kernel of 250 ticks a second); one of seven eighths fires by the layer's timeout, and the
/// call then has what is left of it on the async connection, whose timer is exact.
pub(super) fn sync_timeout(timeout: Duration) -> Duration {
    (timeout / 8 * 7).max(Duration::from_millis(1))
}

/// redis-rs's sync cluster connections for the blocking path (see the module docs): at most
/// `max`, made in the background, each used by one call at a time.
struct SyncClusters {
    /// Makes them: built like the async connection's client, but with no retries (see
    /// [`SyncClusters::query`]).
    client: ClusterClient,
    pool: Arc<SyncPool>,
}

/// The idle sync connections and the count of all of them.
struct SyncPool {
    idle: Mutex<Vec<redis::cluster::ClusterConnection>>,
    /// How many exist: idle, in use, or being made. Never more than `max`.
    open: AtomicUsize,
    max: usize,
    making: Mutex<Making>,
}

/// Whether a sync connection is being made, and when the last attempt failed.
#[derive(Default)]
struct Making {
    since: Option<Instant>,
    failed_at: Option<Instant>,
}

/// A sync connection taken from the pool: given back when healthy, else dropped (and no longer
/// counted).
struct Taken<'a> {
    connection: Option<redis::cluster::ClusterConnection>,
    pool: &'a SyncPool,
}

impl Taken<'_> {
    fn give_back(mut self) {
        if let Some(connection) = self.connection.take() {
            self.pool.idle.lock().push(connection);
        }
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if self.connection.is_some() {
            self.pool.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl SyncClusters {
    fn new(client: ClusterClient, max: usize) -> Self {
        let pool = SyncPool {
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            max,
            making: Mutex::new(Making::default()),
        };
        Self { client, pool: Arc::new(pool) }
    }

    /// Sends `cmd` on an idle sync connection and reads its reply (`Ok(Err)`: Redis answered
    /// with an error the operation reads). `Ok(None)`: not sent here, or not answered in a way
    /// that settles it; the caller sends it on the async connection, with what is left of the
    /// time:
    ///
    /// * no connection idle (one is then made in the background, if there is room);
    /// * a redirect or a cluster in transition (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`,
    ///   `READONLY`...): the async connection follows it; after `MOVED` or `READONLY` this
    ///   connection's slot map is stale, and it is dropped;
    /// * `NOSCRIPT` (a node that joined, or a `SCRIPT FLUSH`): the async connection loads the
    ///   scripts on every node and sends again;
    /// * the connection failed (closed by the server while idle, a node killed), or no reply
    ///   came within its (shortened, see [`sync_timeout`]) timeout: it is dropped, and the
    ///   command sent once more, there, so that the call ends by the layer's timeout to the
    ///   millisecond, as on the async path. (Every command of the layer may be sent twice, see
    ///   `ops.rs`.)
    fn query(&self, connector: &Connector, operation: &str, cmd: &Cmd) -> Result<Option<RedisResult<Value>>> {
        let Some(connection) = self.pool.idle.lock().pop() else {
            self.make_in_background(connector);
            return Ok(None);
        };
        let mut taken = Taken { connection: Some(connection), pool: &self.pool };
        let Some(connection) = taken.connection.as_mut() else { return Ok(None) };
        let err = match cmd.query::<Value>(connection) {
            Ok(reply) => {
                taken.give_back();
                return Ok(Some(Ok(reply)));
            }
            Err(err) => err,
        };
        if err.code().is_some() {
            let resend = is_noscript(&err)
                || match err.retry_method() {
                    RetryMethod::MovedRedirect | RetryMethod::RefreshSlotsAndRetry => {
                        drop(taken);
                        return Ok(None);
                    }
                    RetryMethod::AskRedirect | RetryMethod::WaitAndRetry => true,
                    _ => false,
                };
            taken.give_back();
            return Ok(if resend { None } else { Some(Err(err)) });
        }
        drop(taken);
        tracing::debug!(operation, error = %scrub(&err.to_string(), &connector.secrets),
            "redis cluster: a sync connection failed; sending on the async connection");
        Ok(None)
    }

    /// Starts making a sync connection on a thread of its own, unless one is being made, the
    /// pool is full, or the last attempt failed less than [`RETRY_MAKING_AFTER`] ago.
    fn make_in_background(&self, connector: &Connector) {
        let pool = &self.pool;
        let mut making = pool.making.lock();
        let now = Instant::now();
        if making.since.is_some_and(|since| now.duration_since(since) < MAKING_STUCK_AFTER)
            || making.failed_at.is_some_and(|failed| now.duration_since(failed) < RETRY_MAKING_AFTER)
            || pool.open.load(Ordering::Acquire) >= pool.max
        {
            return;
        }
        making.since = Some(now);
        pool.open.fetch_add(1, Ordering::AcqRel);
        drop(making);

        let (client, pool) = (self.client.clone(), Arc::clone(&self.pool));
        let generation = Arc::clone(&connector.generation);
        let (timeout, secrets) = (connector.timeout, connector.secrets.clone());
        let spawned = std::thread::Builder::new().name("cache-tower-cluster-connect".into()).spawn({
            let pool = Arc::clone(&pool);
            move || {
                let made = make_sync(&client, timeout, &generation);
                pool.made(made, &secrets);
            }
        });
        if let Err(err) = spawned {
            pool.made(Err(RedisError::from(err)), &connector.secrets);
        }
    }
}

impl SyncPool {
    /// Takes in the outcome of making a sync connection.
    fn made(&self, made: RedisResult<redis::cluster::ClusterConnection>, secrets: &Secrets) {
        let mut making = self.making.lock();
        making.since = None;
        match made {
            Ok(connection) => {
                making.failed_at = None;
                self.idle.lock().push(connection);
            }
            Err(err) => {
                making.failed_at = Some(Instant::now());
                self.open.fetch_sub(1, Ordering::AcqRel);
                tracing::debug!(error = %scrub(&err.to_string(), secrets),
                    "redis cluster: cannot make a sync connection; blocking calls go through the async one meanwhile");
            }
        }
    }
}

/// A sync cluster connection with the handshake of the async one: the scripts loaded on every
/// node (`SCRIPT LOAD` is routed to all nodes, so a node that cannot be reached fails it), and
/// the generation record read. Its writes are bounded like its reads (the client's response
/// timeout, [`sync_timeout`] of the layer's); it never reconnects by itself.
fn make_sync(
    client: &ClusterClient,
    timeout: Duration,
    generation: &Generation,
) -> RedisResult<redis::cluster::ClusterConnection> {
    let mut connection = client.get_connection()?;
    connection.set_auto_reconnect(false);
    connection.set_write_timeout(Some(sync_timeout(timeout)))?;
    for source in script_sources() {
        redis::cmd("SCRIPT").arg("LOAD").arg(source).exec(&mut connection)?;
    }
    let record: Value = generation.read().query(&mut connection)?;
    handshaken(generation, std::slice::from_ref(&record));
    Ok(connection)
}

/// `SCRIPT LOAD` of every script of the layer on every node (redis-rs routes it to all nodes).
async fn load_scripts(connection: &mut ClusterConnection) -> RedisResult<()> {
    for source in script_sources() {
        redis::cmd("SCRIPT").arg("LOAD").arg(source).exec_async(connection).await?;
    }
    Ok(())
}

/// The error of a cluster layer that cannot start its thread.
pub(super) fn cannot_start(err: &std::io::Error) -> Error {
    Error::layer_fault(Fault::Other, format!("redis cluster layer: cannot start its thread: {err}"))
}

/// Runs `future` to completion on this thread, parking it between polls: the blocking path's
/// wait for a reply that the layer's thread delivers.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}
