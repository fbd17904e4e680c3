//! Cross-process invalidation: a listener that learns of every change under the namespace from
//! Redis itself, through server-assisted client tracking in broadcast mode
//! (`CLIENT TRACKING ON BCAST PREFIX <namespace> NOLOOP` on a RESP3 connection, which then
//! receives an `invalidate` push for every key under the prefix that anyone writes, deletes or
//! lets expire, and `invalidate null` on FLUSHDB/FLUSHALL).
//!
//! The listener runs on a thread of its own with a small single-threaded tokio runtime, so it
//! works the same whatever runtime, if any, the application uses.
//!
//! # Guarantee
//!
//! While the listener is subscribed, every change is reported within the push latency (well
//! under a millisecond on loopback). When it subscribes it reports [`Change::All`] (the tower
//! clears the local layers above: what changed before is unknown). When its connection is lost
//! or stops answering (a ping every [`HEALTH_CHECK`], bounded by the adapter's timeout), it
//! reports [`Change::Lost`]: the tower clears the local layers and, until the listener
//! subscribes again (reconnecting with back-off, 50 ms to 1 s), keeps local copies for one
//! second at most. So a local copy can outlive its change by at most the time it takes to notice
//! a dead connection (about `HEALTH_CHECK` + timeout), or by one second while the listener is
//! not subscribed (including before its first subscription).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::{Client, PushInfo, PushKind, Value};

use super::connection::{Source, in_words};
use super::generation::{self, Generation, Learnt, RECORD_SUFFIX};
use super::settings::{Secrets, scrub};
use super::tags::TagVersions;
use crate::adapter::{Change, ChangeSink, ChangeWatch};

/// How often an idle listener checks that its connection still answers (and whether to stop).
pub(super) const HEALTH_CHECK: Duration = Duration::from_millis(250);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Which servers a listener subscribes on.
// One per layer, cloned once per listener: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(super) enum Watched {
    /// One server, or the master Sentinel names (its client speaks RESP3).
    Node(Source),
    /// Every master of a Redis Cluster.
    #[cfg(feature = "cluster")]
    Cluster(Box<ClusterWatch>),
}

/// How a listener finds a cluster's masters (through redis-rs's own view of the cluster) and
/// connects to each.
#[cfg(feature = "cluster")]
#[derive(Clone)]
pub(super) struct ClusterWatch {
    pub(super) client: redis::cluster::ClusterClient,
    /// The nodes' credentials, speaking RESP3.
    pub(super) node: redis::RedisConnectionInfo,
    pub(super) tls: bool,
}

/// What a listener needs: what to watch, the namespace, the timeout and where to report.
pub(super) struct Listener {
    pub(super) watched: Watched,
    pub(super) namespace: String,
    pub(super) timeout: Duration,
    pub(super) endpoint: String,
    /// The passwords, to scrub from any error text of the redis client that might echo one.
    pub(super) secrets: Secrets,
    pub(super) sink: ChangeSink,
    /// The namespace's generation, which the listener follows while subscribed: when the
    /// record changes (a `clear`), it reads it and, if it moved, reports [`Change::All`].
    pub(super) generation: Arc<Generation>,
    /// The versions of the namespace's tags, which the layer keeps while the listener is
    /// subscribed: it forgets a tag whose record changes (and reports [`Change::Tags`]).
    pub(super) tags: Arc<TagVersions>,
}

/// The servers of one subscription, and (on a cluster) what tells that the masters changed.
struct Nodes {
    clients: Vec<Client>,
    #[cfg(feature = "cluster")]
    cluster: Option<(redis::cluster_async::ClusterConnection, Vec<String>)>,
}

/// Stops the listener when the watch is dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Listener {
    /// Starts listening on a thread of its own until the returned watch is dropped.
    pub(super) fn spawn(self) -> ChangeWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let spawned = std::thread::Builder::new().name("cache-tower-invalidation".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(self.run(&thread_stop)),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot start the cache invalidation listener; local layers are not kept coherent");
                }
            }
        });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cannot start the cache invalidation thread; local layers are not kept coherent");
        }
        ChangeWatch::new(StopOnDrop(stop))
    }

    async fn run(self, stop: &AtomicBool) {
        let mut backoff = FIRST_BACKOFF;
        let mut warned = false;
        while !stop.load(Ordering::Acquire) {
            let mut subscribed = false;
            let ended = self.session(stop, &mut subscribed).await;
            // Unsubscribed: operations read the generation and tag records themselves again.
            self.generation.set_followed(false);
            self.tags.set_followed(false);
            let Err(err) = ended else { return };
            if subscribed {
                // Changes may be missed from now on: the tower drops its local copies and keeps
                // new ones only briefly until the listener subscribes again.
                (self.sink)(Change::Lost);
                backoff = FIRST_BACKOFF;
                warned = false;
            }
            if !warned {
                tracing::warn!(endpoint = %self.endpoint, error = %err,
                    "cache invalidation connection lost or refused; local layers cleared, reconnecting");
                warned = true;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One subscription's life: subscribe on every watched server (setting `subscribed`), then
    /// deliver changes until a connection fails or the servers change (an `Err`), or the
    /// listener is stopped (`Ok`).
    async fn session(&self, stop: &AtomicBool, subscribed: &mut bool) -> Result<(), String> {
        let (sender, mut pushes) = tokio::sync::mpsc::unbounded_channel::<PushInfo>();
        #[cfg_attr(not(feature = "cluster"), allow(unused_mut))]
        let mut nodes = match tokio::time::timeout(self.timeout, self.nodes()).await {
            Ok(nodes) => nodes?,
            Err(_) => return Err(format!("finding the servers timed out after {:?}", self.timeout)),
        };
        let mut connections = Vec::with_capacity(nodes.clients.len());
        for client in &nodes.clients {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout))
                .set_push_sender(sender.clone());
            let connect = client.get_multiplexed_async_connection_with_config(&config);
            let mut connection = match tokio::time::timeout(self.timeout, connect).await {
                Ok(Ok(connection)) => connection,
                Ok(Err(err)) => return Err(self.described(&err)),
                Err(_) => return Err(format!("connecting timed out after {:?}", self.timeout)),
            };
            let mut tracking = redis::cmd("CLIENT");
            tracking.arg("TRACKING").arg("ON").arg("BCAST");
            if !self.namespace.is_empty() {
                tracking.arg("PREFIX").arg(&self.namespace);
            }
            tracking.arg("NOLOOP");
            tracking.query_async::<()>(&mut connection).await.map_err(|err| self.described(&err))?;
            connections.push(connection);
        }
        // Subscribed from now on; what changed before is unknown, the generation included.
        self.read_generation(&mut connections, &mut nodes).await?;
        self.generation.set_followed(true);
        self.tags.set_followed(true);
        *subscribed = true;
        (self.sink)(Change::All);
        tracing::debug!(endpoint = %self.endpoint, namespace = %self.namespace, servers = connections.len(), "cache invalidation subscribed");

        let mut health = tokio::time::interval(HEALTH_CHECK);
        loop {
            tokio::select! {
                push = pushes.recv() => match push {
                    Some(PushInfo { kind: PushKind::Invalidate, data }) => {
                        if self.deliver(data) && self.read_generation(&mut connections, &mut nodes).await? {
                            // A `clear`: every key changed.
                            (self.sink)(Change::All);
                        }
                    }
                    Some(PushInfo { kind: PushKind::Disconnection, .. }) | None => {
                        return Err("the connection closed".to_owned());
                    }
                    Some(_) => {}
                },
                _ = health.tick() => {
                    if stop.load(Ordering::Acquire) {
                        return Ok(());
                    }
                    for connection in &mut connections {
                        self.check(connection).await?;
                    }
                    #[cfg(feature = "cluster")]
                    if let Some((cluster, masters)) = &mut nodes.cluster {
                        if masters_of(cluster).await.map_err(|err| self.described(&err))? != *masters {
                            return Err("the cluster's masters changed".to_owned());
                        }
                    }
                }
            }
        }
    }

    /// The servers to subscribe on now: the one server, the master Sentinel names now, or
    /// every master of the cluster as redis-rs sees it.
    async fn nodes(&self) -> Result<Nodes, String> {
        match &self.watched {
            Watched::Node(source) => Ok(Nodes {
                clients: vec![source.client_async().await.map_err(|err| self.described(&err))?],
                #[cfg(feature = "cluster")]
                cluster: None,
            }),
            #[cfg(feature = "cluster")]
            Watched::Cluster(watch) => {
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(self.timeout);
                let described = |err: redis::RedisError| self.described(&err);
                let mut cluster = watch.client.get_async_connection_with_config(config).await.map_err(described)?;
                let masters = masters_of(&mut cluster).await.map_err(described)?;
                let clients = masters
                    .iter()
                    .map(|address| {
                        let (host, port) = address
                            .rsplit_once(':')
                            .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
                            .ok_or_else(|| "a master address without a port".to_owned())?;
                        let addr = if watch.tls {
                            redis::ConnectionAddr::TcpTls { host, port, insecure: false, tls_params: None }
                        } else {
                            redis::ConnectionAddr::Tcp(host, port)
                        };
                        let info = redis::IntoConnectionInfo::into_connection_info(addr)
                            .map_err(described)?
                            .set_redis_settings(watch.node.clone());
                        Client::open(info).map_err(described)
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Ok(Nodes { clients, cluster: Some((cluster, masters)) })
            }
        }
    }

    /// Checks that a subscribed connection still answers, and (with Sentinel) that its server is
    /// still the master: after a failover the listener subscribes on the new one.
    async fn check(&self, connection: &mut redis::aio::MultiplexedConnection) -> Result<(), String> {
        let follows_failover = matches!(&self.watched, Watched::Node(source) if source.follows_failover());
        if !follows_failover {
            return redis::cmd("PING").query_async::<()>(connection).await.map_err(|err| self.described(&err));
        }
        let role: Value = redis::cmd("ROLE").query_async(connection).await.map_err(|err| self.described(&err))?;
        match role {
            Value::Array(parts) if matches!(parts.first(), Some(Value::BulkString(role)) if role == b"master") => {
                Ok(())
            }
            _ => Err("the server is no longer the master (a failover); subscribing on the new one".to_owned()),
        }
    }

    /// A redis error as the listener logs it: in words when it is a refusal the user can fix (see
    /// [`in_words`]), else the client's own text with the password scrubbed.
    fn described(&self, err: &redis::RedisError) -> String {
        in_words(err).map_or_else(|| scrub(&err.to_string(), &self.secrets), str::to_owned)
    }

    /// Reads the generation record (one read, on the server that holds it) and moves the layer
    /// to the generation it holds: whether that changed it.
    async fn read_generation(
        &self,
        connections: &mut [redis::aio::MultiplexedConnection],
        nodes: &mut Nodes,
    ) -> Result<bool, String> {
        let get = self.generation.read();
        #[cfg(feature = "cluster")]
        let cluster = nodes.cluster.as_mut().map(|(cluster, _)| cluster);
        #[cfg(not(feature = "cluster"))]
        let cluster: Option<&mut redis::aio::MultiplexedConnection> = {
            let _ = nodes;
            None
        };
        let read = async {
            match (cluster, connections.first_mut()) {
                (Some(cluster), _) => get.query_async::<Value>(cluster).await,
                (None, Some(connection)) => get.query_async::<Value>(connection).await,
                (None, None) => Ok(Value::Nil),
            }
        };
        let reply = match tokio::time::timeout(self.timeout, read).await {
            Ok(reply) => reply.map_err(|err| self.described(&err))?,
            Err(_) => return Err(format!("reading the generation record timed out after {:?}", self.timeout)),
        };
        match generation::parse(&reply) {
            Ok(number) => Ok(self.generation.learn(number, Learnt::Read)),
            Err(what) => {
                tracing::warn!(record = %String::from_utf8_lossy(self.generation.record()), problem = %what,
                    "the cache namespace's generation record holds no generation number; keeping the one known");
                Ok(false)
            }
        }
    }

    /// Reports an `invalidate` push: the keys under the namespace (as tower keys, whatever
    /// their generation), or everything for `invalidate null` (a flush). Whether the generation
    /// record may have changed (then the caller reads it).
    fn deliver(&self, data: Vec<Value>) -> bool {
        let keys = match data.into_iter().next() {
            Some(Value::Array(keys) | Value::Set(keys)) => keys,
            _ => {
                self.tags.forget_all();
                (self.sink)(Change::All);
                return true;
            }
        };
        let mut record_changed = false;
        let mut tags: Vec<String> = Vec::new();
        let namespace = self.namespace.as_bytes();
        let keys: Vec<String> = keys
            .into_iter()
            .filter_map(|key| {
                let mut bytes = match key {
                    Value::BulkString(bytes) => bytes,
                    Value::SimpleString(text) => text.into_bytes(),
                    _ => return None,
                };
                if !bytes.starts_with(namespace) {
                    return None;
                }
                let rest = &bytes[namespace.len()..];
                if rest == RECORD_SUFFIX {
                    record_changed = true;
                }
                if let Some(tag) = TagVersions::tag_of(rest) {
                    self.tags.forget(tag);
                    tags.push(tag.to_owned());
                    return None;
                }
                // The namespace (and generation) come off in place: one buffer per key, the
                // one received. The layer's own bookkeeping keys (locks, records) are no keys.
                let start = bytes.len() - generation::tower_key(rest)?.len();
                bytes.drain(..start);
                String::from_utf8(bytes).ok()
            })
            .collect();
        if !keys.is_empty() {
            (self.sink)(Change::Keys(&keys));
        }
        if !tags.is_empty() {
            (self.sink)(Change::Tags(&tags));
        }
        record_changed
    }
}

/// The `host:port` of every master of the cluster, sorted, as redis-rs's routing sees them.
#[cfg(feature = "cluster")]
async fn masters_of(cluster: &mut redis::cluster_async::ClusterConnection) -> redis::RedisResult<Vec<String>> {
    use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
    let all_masters = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    let Value::Map(replies) = cluster.route_command(redis::cmd("PING"), all_masters).await? else {
        return Err(redis::RedisError::from(std::io::Error::other("expected a reply per master")));
    };
    let mut masters = Vec::with_capacity(replies.len());
    for (address, reply) in replies {
        if let Value::ServerError(err) = reply {
            return Err(err.into());
        }
        masters.push(redis::from_redis_value::<String>(address)?);
    }
    masters.sort();
    Ok(masters)
}
