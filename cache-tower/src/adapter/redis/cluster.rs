//! A Redis Cluster behind one layer (feature `cluster`): redis-rs's async cluster connection,
//! which routes each command by its key's hash slot, follows `MOVED` and `ASK`, and refreshes
//! its slot map when the topology changes. Nothing here routes.
//!
//! * One cluster connection is shared by every call, made on first use and remade after it
//!   fails, like the one-server async connection (`connection.rs`).
//! * It lives on a thread of the layer's own, with a one-thread tokio runtime: the tasks redis-rs
//!   spawns for the connection run there, whoever calls. Async calls await their replies from
//!   any runtime; blocking calls wait for the same future on the calling thread
//!   ([`block_on`]), so both paths send exactly the same thing (`ops.rs`).
//! * The layer's scripts are loaded on every node when the connection opens (`SCRIPT LOAD` is
//!   routed to all nodes), and again on a `NOSCRIPT` (a node that joined since).
//! * Every call is bounded by the layer's timeout, whatever redis-rs retries inside it.
//! * Batches (`mget`, `mset`) go one pipeline per master, grouped by a hint of which slots
//!   share a master, read with `CLUSTER SLOTS` (`slot_owners.rs`); redis-rs still routes each
//!   pipeline, and when a pipeline meets a redirect its parts are sent again one by one.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{RedisError, RedisResult, Value};

use super::connection::{Connector, Shared};
use super::ops::{Command, Failed, Op, Progress, handshaken, is_noscript, script_sources};
use super::slot_owners::SlotOwners;
use crate::adapter::Reply;
use crate::error::{Error, Fault, Result};

/// The shared cluster connection of a layer, and the thread its tasks run on.
pub(super) struct ClusterShared {
    client: ClusterClient,
    runtime: tokio::runtime::Handle,
    /// Ends the runtime's thread when the layer is dropped.
    _stop: tokio::sync::oneshot::Sender<()>,
    connection: Shared<ClusterConnection>,
    /// Which slots share a master, to batch by (`slot_owners.rs`); `None` until read, and
    /// again after a node redirected a command of a batch (read before the next batch).
    owners: Mutex<Option<Arc<SlotOwners>>>,
}

impl ClusterShared {
    /// Starts the layer's cluster thread; nothing connects yet.
    pub(super) fn start(client: ClusterClient) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name("cache-tower-cluster".into()).spawn(move || {
            // Runs the connection's tasks until the layer is gone.
            let _ = runtime.block_on(stopped);
        })?;
        Ok(Self { client, runtime: handle, _stop: stop, connection: Shared::default(), owners: Mutex::new(None) })
    }

    /// Carries out `op` and waits for it on this thread (the blocking path).
    pub(super) fn send_blocking(&self, connector: &Connector, op: Op<'_>) -> Result<Reply> {
        // Timers made inside belong to the layer's runtime, which drives them.
        let _runtime = self.runtime.enter();
        block_on(self.send(connector, op))
    }

    /// Carries out `op`: each of its commands within `connector.timeout`.
    pub(super) async fn send(&self, connector: &Connector, mut op: Op<'_>) -> Result<Reply> {
        let name = op.name();
        loop {
            let reply = match op.command() {
                Some(cmd) => Some(self.query(connector, name, cmd).await?),
                None => None,
            };
            match op.feed(reply) {
                Ok(Progress::Done(reply)) => break Ok(reply),
                Ok(Progress::Next) => {}
                Err(Failed::Redis(err)) => break Err(connector.error(name, &err)),
                Err(Failed::Reply(err)) => break Err(err),
            }
        }
    }

    /// Sends one command and reads its reply, within `connector.timeout`.
    async fn query(&self, connector: &Connector, operation: &str, cmd: &Command) -> Result<RedisResult<Value>> {
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
        match tokio::time::timeout(connector.timeout, work).await {
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
