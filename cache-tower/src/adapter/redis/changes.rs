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

use super::connection::in_words;
use super::settings::scrub;
use crate::adapter::{Change, ChangeSink, ChangeWatch};

/// How often an idle listener checks that its connection still answers (and whether to stop).
pub(super) const HEALTH_CHECK: Duration = Duration::from_millis(250);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What a listener needs: a RESP3 client, the namespace, the timeout and where to report.
pub(super) struct Listener {
    pub(super) client: Client,
    pub(super) namespace: String,
    pub(super) timeout: Duration,
    pub(super) endpoint: String,
    /// The password, to scrub from any error text of the redis client that might echo it.
    pub(super) secret: Option<String>,
    pub(super) sink: ChangeSink,
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
            let Err(err) = self.session(stop, &mut subscribed).await else { return };
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

    /// One connection's life: subscribe (setting `subscribed`), then deliver changes until the
    /// connection fails (an `Err`) or the listener is stopped (`Ok`).
    async fn session(&self, stop: &AtomicBool, subscribed: &mut bool) -> Result<(), String> {
        let (sender, mut pushes) = tokio::sync::mpsc::unbounded_channel::<PushInfo>();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_push_sender(sender);
        let connect = self.client.get_multiplexed_async_connection_with_config(&config);
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
        // Subscribed from now on; what changed before is unknown.
        *subscribed = true;
        (self.sink)(Change::All);
        tracing::debug!(endpoint = %self.endpoint, namespace = %self.namespace, "cache invalidation subscribed");

        let mut health = tokio::time::interval(HEALTH_CHECK);
        loop {
            tokio::select! {
                push = pushes.recv() => match push {
                    Some(PushInfo { kind: PushKind::Invalidate, data }) => self.deliver(data),
                    Some(PushInfo { kind: PushKind::Disconnection, .. }) | None => {
                        return Err("the connection closed".to_owned());
                    }
                    Some(_) => {}
                },
                _ = health.tick() => {
                    if stop.load(Ordering::Acquire) {
                        return Ok(());
                    }
                    redis::cmd("PING").query_async::<()>(&mut connection).await.map_err(|err| self.described(&err))?;
                }
            }
        }
    }

    /// A redis error as the listener logs it: in words when it is a refusal the user can fix (see
    /// [`in_words`]), else the client's own text with the password scrubbed.
    fn described(&self, err: &redis::RedisError) -> String {
        in_words(err).map_or_else(|| scrub(&err.to_string(), self.secret.as_deref()), str::to_owned)
    }

    /// Reports an `invalidate` push: the keys under the namespace (as tower keys), or
    /// everything for `invalidate null` (a flush).
    fn deliver(&self, data: Vec<Value>) {
        let keys = match data.into_iter().next() {
            Some(Value::Array(keys) | Value::Set(keys)) => keys,
            _ => {
                (self.sink)(Change::All);
                return;
            }
        };
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
                // The namespace comes off in place: one buffer per key, the one received.
                bytes.drain(..namespace.len());
                String::from_utf8(bytes).ok()
            })
            .collect();
        if !keys.is_empty() {
            (self.sink)(Change::Keys(&keys));
        }
    }
}
