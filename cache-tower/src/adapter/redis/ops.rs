//! What each operation sends to Redis and how its reply is read, with no I/O: a [`Request`]
//! becomes an [`Op`], which names the next command to send and takes its reply, until it is done.
//! The sync and async connections each have one function that drives any `Op` (`SyncPool::send`,
//! `AsyncShared::send`), so every operation is described here once and both paths send exactly
//! the same thing.
//!
//! Every operation is one round trip, and a hung server costs at most one read timeout. A read
//! of values with their remaining TTL (what a backfill needs) is a pipeline, as a careful
//! hand-written client would send it: `GET` + `PTTL` for one key, `MGET` + one `PTTL` per key
//! for many — cheap commands, where a Lua script doing the same costs the server about twice as
//! much. (A key written between the two commands can pair a value with its successor's TTL; with
//! invalidation on, that write evicts the copy anyway; see `docs/adr/0012-backfill-reads-as-pipelines.md`.
//! A key deleted between them reads as absent.) Many `SET`s with a TTL each run in a Lua script (`EVALSHA`), which Redis executes
//! atomically, so no key is briefly immortal; the script is loaded when a connection opens
//! ([`load_scripts`]), so the first `EVALSHA` finds it. `flush` is the one operation of several
//! steps: `SCAN`, `UNLINK` of what it found, and again until the cursor is back at zero.
//!
//! Every command here may be sent twice (twice leaves Redis as once would, or as good), which
//! is what lets the connections resend one on a fresh connection when the one it went out on
//! turns out to have been closed by the server: `GET`, `MGET`, `PTTL`, `GETRANGE` and `SCAN` only
//! read; `SET`, `DEL`, `UNLINK` and the `mset` script write the same values again; `clear`'s
//! `INCR` sent twice moves the generation by two, which is as good as one
//! (each entry's TTL is carried as a duration computed before the first send, so a resend at
//! most restarts it a few milliseconds later).

use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, Pipeline, RedisError, Script, Value};

use super::generation::{self, Generation, Learnt};
use super::tags::{self, TagVersions, Versions};

use crate::adapter::{Reply, Request};
use crate::error::{Error, Fault, Result};
use crate::value::{Entry, StoredValue, effective_ttl};

/// `SET` of every key with its own TTL, atomically. `ARGV` holds `value, ttl` pairs: a TTL of
/// `-1` means none, `0` means the entry has no time left (the key is deleted), more is `PX`.
const MSET_WITH_TTL: &str = r"
for i, key in ipairs(KEYS) do
  local value, ttl = ARGV[2 * i - 1], tonumber(ARGV[2 * i])
  if ttl < 0 then
    redis.call('SET', key, value)
  elseif ttl == 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, value, 'PX', ttl)
  end
end
return #KEYS
";

/// Releases a lock (`KEYS[1]`) if it still holds the owner token `ARGV[1]`: compare and delete,
/// atomically, so a lock that expired and was taken by another instance is left alone.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The scripts of this module, as a connection loads them when it opens.
const SCRIPTS: [&str; 2] = [MSET_WITH_TTL, UNLOCK];

/// What a lock's Redis key has between the namespace and the tower key: a lock of `user:1`
/// under namespace `app:` is `app:\0lock\0user:1`, inside the namespace (so `flush` removes it)
/// and unlike any key a tower writes.
const LOCK_INFIX: &[u8] = b"\0lock\0";

/// The source of every script of this module (a cluster loads each on every node).
#[cfg(feature = "cluster")]
pub(super) fn script_sources() -> [&'static str; 2] {
    SCRIPTS
}

/// `SCRIPT LOAD` of every script, pipelined: one round trip when a connection opens, so that no
/// operation ever meets `NOSCRIPT` (unless someone runs `SCRIPT FLUSH`; then the connection
/// loads them again and resends, see [`is_noscript`]).
pub(super) fn load_scripts() -> redis::Pipeline {
    let mut pipeline = redis::pipe();
    for source in SCRIPTS {
        pipeline.cmd("SCRIPT").arg("LOAD").arg(source).ignore();
    }
    pipeline
}

/// What a connection sends when it opens, in one round trip: the scripts
/// ([`load_scripts`]), then a read of the generation record, whose reply goes to [`handshaken`].
pub(super) fn handshake(generation: &Generation) -> redis::Pipeline {
    let mut pipeline = load_scripts();
    pipeline.add_command(generation.read());
    pipeline
}

/// Takes in the reply of a [`handshake`]: the generation the record holds. A record that holds
/// no generation number is logged and the known generation kept (`clear` then fails, naming it).
pub(super) fn handshaken(generation: &Generation, replies: &[Value]) {
    let Some(reply) = replies.last() else { return };
    match generation::parse(reply) {
        Ok(number) => {
            generation.learn(number, Learnt::Read);
        }
        Err(what) => tracing::warn!(record = %String::from_utf8_lossy(generation.record()), problem = %what,
            "the cache namespace's generation record holds no generation number; keeping the one known"),
    }
}

/// Whether a reply says the script is not loaded on the server (`SCRIPT FLUSH` since the
/// connection loaded it, or a failover to a replica that never had it).
pub(super) fn is_noscript(err: &RedisError) -> bool {
    err.code() == Some("NOSCRIPT")
}

/// Keys under a namespace, and the operations over them.
#[derive(Debug, Clone)]
pub(super) struct Ops {
    namespace: Vec<u8>,
    /// The namespace's generation: every data key is under its prefix (`generation.rs`).
    generation: Arc<Generation>,
    /// The versions of the namespace's tags (`tags.rs`).
    tags: Arc<TagVersions>,
    /// Whether the keys live in a Redis Cluster: commands of many keys are then split by hash
    /// slot, and `flush` scans every master.
    #[cfg(feature = "cluster")]
    cluster: bool,
    ttl: Option<Duration>,
    /// The layer's stale window: entries are written for their TTL plus this, and a key with no
    /// more than this left is stale (see [`Window`]).
    stale: Duration,
    mset_with_ttl: String,
    unlock: String,
}

/// How a read tells fresh from stale: a key with no more than the stale window left (in `PTTL`)
/// is stale, returned as [`Entry::stale`] when `stale_too`, else a miss.
#[derive(Debug, Clone, Copy)]
struct Window {
    stale: Duration,
    stale_too: bool,
}

/// What an operation sends in one round trip: a command, or a pipeline of them.
#[derive(Debug)]
pub(super) enum Command {
    One(Cmd),
    /// Its reply is an array of every command's reply, an error reply among them as a
    /// [`Value::ServerError`] (the pipeline ignores errors, so the parser decides).
    Pipeline(Pipeline),
    /// Cluster only: one command per hash slot (a single command or a pipeline), those of one
    /// master sent to it in one pipeline, every master's at once (`slot_owners.rs`); the reply
    /// is an array of their replies, in order.
    #[cfg(feature = "cluster")]
    PerSlot(Vec<(redis::cluster_routing::Slot, Command)>),
    /// Cluster only: a command for every master; the reply maps each master's `host:port` to
    /// its reply.
    #[cfg(feature = "cluster")]
    AllMasters(Cmd),
    /// Cluster only: a command for one node, by address.
    #[cfg(feature = "cluster")]
    OnNode {
        host: String,
        port: u16,
        cmd: Cmd,
    },
}

impl Command {
    /// Sends it and reads its reply.
    pub(super) fn query(&self, connection: &mut redis::Connection) -> redis::RedisResult<Value> {
        match self {
            #[cfg(feature = "cluster")]
            Command::PerSlot(_) | Command::AllMasters(_) | Command::OnNode { .. } => {
                Err(redis::RedisError::from(std::io::Error::other("a cluster command on a connection to one server")))
            }
            Command::One(cmd) => cmd.query(connection),
            Command::Pipeline(pipeline) => {
                // redis-rs's own pipeline goes on reading the replies after a read timed out,
                // each read waiting the whole timeout again (a pipeline of n commands to a frozen
                // server would take n timeouts): read them here, stopping at the first failure.
                connection.send_packed_command(&pipeline.get_packed_pipeline())?;
                let replies: redis::RedisResult<Vec<Value>> =
                    (0..pipeline.len()).map(|_| connection.recv_response()).collect();
                replies.map(Value::Array)
            }
        }
    }

    /// Sends it and reads its reply, on an async connection.
    #[cfg(feature = "tokio")]
    pub(super) async fn query_async(
        &self,
        connection: &mut impl redis::aio::ConnectionLike,
    ) -> redis::RedisResult<Value> {
        match self {
            Command::One(cmd) => cmd.query_async(connection).await,
            Command::Pipeline(pipeline) => pipeline.query_async(connection).await,
            #[cfg(feature = "cluster")]
            Command::PerSlot(_) | Command::AllMasters(_) | Command::OnNode { .. } => {
                Err(redis::RedisError::from(std::io::Error::other("a cluster command on a connection to one server")))
            }
        }
    }

    /// Sends it and reads its reply, on a cluster connection: each command routed by redis-rs
    /// (by its key's slot, or as `AllMasters` / `OnNode` say); the parts of `PerSlot` grouped
    /// by master as `owners` says, so each master gets its share in one round trip, all masters
    /// in parallel (without `owners`, each part goes alone). `redirected` is set when a node
    /// redirected a part: `owners` is out of date.
    #[cfg(feature = "cluster")]
    pub(super) async fn query_cluster(
        &self,
        connection: &mut redis::cluster_async::ClusterConnection,
        owners: Option<&super::slot_owners::SlotOwners>,
        redirected: &mut bool,
    ) -> redis::RedisResult<Value> {
        use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
        match self {
            Command::One(cmd) => cmd.query_async(connection).await,
            Command::Pipeline(pipeline) => pipeline.query_async(connection).await,
            Command::PerSlot(parts) => {
                let sent = super::slot_owners::send(connection, parts, owners).await?;
                *redirected |= sent.redirected;
                Ok(Value::Array(sent.replies))
            }
            Command::AllMasters(cmd) => {
                connection
                    .route_command(cmd.clone(), RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)))
                    .await
            }
            Command::OnNode { host, port, cmd } => {
                let route = SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port };
                connection.route_command(cmd.clone(), RoutingInfo::SingleNode(route)).await
            }
        }
    }

    /// The bytes it sends, for tests.
    #[cfg(test)]
    fn packed(&self) -> String {
        String::from_utf8(match self {
            Command::One(cmd) => cmd.get_packed_command(),
            #[cfg(feature = "cluster")]
            Command::AllMasters(cmd) | Command::OnNode { cmd, .. } => cmd.get_packed_command(),
            Command::Pipeline(pipeline) => pipeline.get_packed_pipeline(),
            #[cfg(feature = "cluster")]
            Command::PerSlot(parts) => {
                parts.iter().map(|(_, command)| command.packed().into_bytes()).collect::<Vec<_>>().concat()
            }
        })
        .expect("commands of text")
    }
}

/// A tower key as a command argument: the prefix (the namespace, and the generation past 0),
/// then the key, as one argument.
struct RedisKey<'a> {
    prefix: &'a [u8],
    /// Between the two: empty, or [`LOCK_INFIX`].
    infix: &'a [u8],
    key: &'a str,
}

impl redis::ToRedisArgs for RedisKey<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write as _;
        let mut arg = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        let _ = arg
            .write_all(self.prefix)
            .and_then(|()| arg.write_all(self.infix))
            .and_then(|()| arg.write_all(self.key.as_bytes()));
    }
}

/// Keys a single SCAN step asks for, and a single UNLINK removes at most.
const SCAN_BATCH: usize = 1000;

/// One operation in progress: the command to send next ([`command`](Self::command)) and what to
/// make of its reply ([`feed`](Self::feed)).
#[derive(Debug)]
pub(super) struct Op<'a> {
    ops: &'a Ops,
    /// What the operation is, for messages (`"get"`, `"mset"`, ...).
    name: &'static str,
    state: State,
    /// A cluster `flush`: the masters still to scan, the one being scanned first.
    #[cfg(feature = "cluster")]
    masters: Vec<(String, u16)>,
}

#[derive(Debug)]
enum State {
    /// One command or pipeline; its reply is read by the parser.
    Once(Command, Parse),
    /// A cluster's [`Command::PerSlot`]: group `i` of `groups` holds the indices (in the
    /// request) of the keys its command carries; each reply is read by the parser and put back
    /// in request order, `total` in all.
    #[cfg(feature = "cluster")]
    PerSlot { command: Command, groups: SlotGroups, total: usize, parse: Parse },
    /// A cluster's `flush`, waiting for the list of masters.
    #[cfg(feature = "cluster")]
    Masters(Command),
    /// Answered without asking Redis (an `mget` of no keys, say).
    Ready(Option<Reply>),
    /// `flush`, waiting for a `SCAN` reply.
    Scanning(Command),
    /// `flush`, waiting for an `UNLINK` reply; then `SCAN` from `next`, or done when it is 0.
    Unlinking(Command, u64),
}

/// How the reply of a one-command operation becomes a [`Reply`].
#[derive(Debug, Clone, Copy)]
enum Parse {
    /// `GET` + `PTTL`: the entry (or the value alone, when `value_only`).
    GetWithTtl {
        window: Window,
        value_only: bool,
    },
    GetValue,
    /// `MGET` + a `PTTL` per key: the entries (or values alone).
    MgetWithTtl {
        count: usize,
        window: Window,
        values_only: bool,
    },
    MgetValues,
    /// `GETRANGE` of a value's first bytes (for `exists`): the bytes as a value, `None` for no
    /// key (or one of another type).
    Peek,
    /// `SET NX`: `OK` when the lock was taken, nil when somebody holds it.
    Locked,
    /// A read or `INCR` of the generation record: the layer learns the generation (`generation.rs`).
    Generation(Learnt),
    Done,
}

/// The keys of a request grouped by hash slot, flat (no allocation per slot): group `g` is
/// `order[ends[g - 1]..ends[g]]`, indices into the request, in request order within a group;
/// groups in the order their slots first appear.
#[cfg(feature = "cluster")]
#[derive(Debug)]
struct SlotGroups {
    slots: Vec<redis::cluster_routing::Slot>,
    order: Vec<usize>,
    ends: Vec<usize>,
}

#[cfg(feature = "cluster")]
impl SlotGroups {
    /// Groups `keys` (under `namespace`) by the hash slot of their Redis key.
    fn new(namespace: &[u8], keys: &[&str]) -> Self {
        use redis::cluster_routing::Slot;
        let mut numbers: std::collections::HashMap<Slot, usize> = std::collections::HashMap::with_capacity(keys.len());
        let mut slots = Vec::new();
        let mut sizes: Vec<usize> = Vec::new();
        let mut group_of = Vec::with_capacity(keys.len());
        let mut full = Vec::with_capacity(namespace.len() + 32);
        for key in keys {
            full.clear();
            full.extend_from_slice(namespace);
            full.extend_from_slice(key.as_bytes());
            let slot = Slot::for_key(&full);
            let group = *numbers.entry(slot).or_insert_with(|| {
                slots.push(slot);
                sizes.push(0);
                slots.len() - 1
            });
            sizes[group] += 1;
            group_of.push(group);
        }
        let mut ends = Vec::with_capacity(sizes.len());
        let mut next = Vec::with_capacity(sizes.len());
        let mut end = 0;
        for size in sizes {
            next.push(end);
            end += size;
            ends.push(end);
        }
        let mut order = vec![0; keys.len()];
        for (index, group) in group_of.into_iter().enumerate() {
            order[next[group]] = index;
            next[group] += 1;
        }
        Self { slots, order, ends }
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    /// Each group's slot and key indices.
    fn iter(&self) -> impl Iterator<Item = (redis::cluster_routing::Slot, &[usize])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.slots.iter().zip(starts.zip(&self.ends)).map(|(slot, (start, &end))| (*slot, &self.order[start..end]))
    }
}

/// Where an operation stands after a reply.
#[derive(Debug)]
pub(super) enum Progress {
    /// Another command is to be sent ([`Op::command`]).
    Next,
    /// The operation's answer.
    Done(Reply),
}

/// Why an operation failed on a reply.
#[derive(Debug)]
pub(super) enum Failed {
    /// Redis answered with an error (or the connection failed); the connection turns it into a
    /// message without secrets.
    Redis(RedisError),
    /// The reply made no sense for the command.
    Reply(Error),
}

impl Ops {
    pub(super) fn new(namespace: &str, ttl: Option<Duration>) -> Self {
        let hash = |source| Script::new(source).get_hash().to_owned();
        Self {
            namespace: namespace.as_bytes().to_vec(),
            generation: Arc::new(Generation::new(namespace.as_bytes())),
            tags: Arc::new(TagVersions::new(namespace.as_bytes())),
            #[cfg(feature = "cluster")]
            cluster: false,
            ttl,
            stale: Duration::ZERO,
            mset_with_ttl: hash(MSET_WITH_TTL),
            unlock: hash(UNLOCK),
        }
    }

    /// The same operations for a layer that keeps entries `stale` past their TTL.
    pub(super) fn with_stale(mut self, stale: Duration) -> Self {
        self.stale = stale;
        self
    }

    /// The same operations on a Redis Cluster.
    #[cfg(feature = "cluster")]
    pub(super) fn on_cluster(mut self) -> Self {
        self.cluster = true;
        self
    }

    /// The layer's stale window.
    pub(super) fn stale(&self) -> Duration {
        self.stale
    }

    /// The namespace's generation, as the layer's connections and listener share it.
    pub(super) fn generation(&self) -> &Arc<Generation> {
        &self.generation
    }

    /// The versions of the namespace's tags, as the layer's operations and listener share them.
    pub(super) fn tags(&self) -> &Arc<TagVersions> {
        &self.tags
    }

    /// The read of the records of `tags` (one `MGET`; per hash slot on a cluster): its reply's
    /// values go to [`TagVersions::learn`].
    pub(super) fn read_tag_records<'a>(&'a self, tags: &[&str]) -> Result<Op<'a>> {
        let state = self.read_values(self.tags.prefix(), tags)?;
        Ok(self.bookkeeping("tag versions", state))
    }

    /// `MGET` of `keys` under `prefix`, answered by [`Reply::Values`] (per hash slot on a
    /// cluster, a slot's lone key read with `GET`).
    fn read_values(&self, prefix: &[u8], keys: &[&str]) -> Result<State> {
        #[cfg(feature = "cluster")]
        if self.cluster {
            return self.per_slot(prefix, keys, Parse::MgetValues, |group| {
                Ok(Command::One(self.slot_read(prefix, group.iter().map(|&index| keys[index]))))
            });
        }
        Ok(State::Once(Command::One(self.keyed(prefix, "MGET", keys.iter().copied())), Parse::MgetValues))
    }

    /// The read of the generation record, when it is due (`Generation::is_due`): its reply moves
    /// the layer to the generation the record holds.
    pub(super) fn read_generation(&self) -> Op<'_> {
        let read = self.generation.read();
        self.bookkeeping("generation", State::Once(Command::One(read), Parse::Generation(Learnt::Read)))
    }

    fn bookkeeping(&self, name: &'static str, state: State) -> Op<'_> {
        Op {
            ops: self,
            name,
            state,
            #[cfg(feature = "cluster")]
            masters: Vec::new(),
        }
    }

    fn window(&self, stale_too: bool) -> Window {
        Window { stale: self.stale, stale_too }
    }

    /// [`op`](Self::op) of a request that writes no tagged entry.
    #[cfg(test)]
    fn untagged_op<'a>(&'a self, request: Request<'_>) -> Result<Op<'a>> {
        self.op(request, &Versions::new())
    }

    /// The operation that carries out `request`; tagged entries are written with `versions`,
    /// the current versions of their tags (`tags.rs`).
    ///
    /// # Errors
    /// An entry to write whose value cannot be encoded.
    pub(super) fn op<'a>(&'a self, request: Request<'_>, versions: &Versions) -> Result<Op<'a>> {
        let once = |cmd, parse| State::Once(Command::One(cmd), parse);
        // One generation for the whole operation, even if a `clear` moves it meanwhile.
        let prefix = self.generation.prefix_of(self.generation.current());
        let prefix = &*prefix;
        // With a stale window, only the time a key has left tells fresh from stale: every read
        // asks for it.
        let keeps_stale = !self.stale.is_zero();
        let get = |key, stale_too, value_only| {
            let parse = Parse::GetWithTtl { window: self.window(stale_too), value_only };
            State::Once(self.with_ttls(prefix, self.keyed(prefix, "GET", [key]), [key]), parse)
        };
        let mget = |keys: &[&str], values_only| {
            let parse = Parse::MgetWithTtl { count: keys.len(), window: self.window(false), values_only };
            #[cfg(feature = "cluster")]
            if self.cluster {
                return self.per_slot(prefix, keys, parse, |group| {
                    let group = || group.iter().map(|&index| keys[index]);
                    Ok(self.with_ttls(prefix, self.slot_read(prefix, group()), group()))
                });
            }
            let read = self.keyed(prefix, "MGET", keys.iter().copied());
            Ok(State::Once(self.with_ttls(prefix, read, keys.iter().copied()), parse))
        };
        let state = match request {
            Request::Get(key) => get(key, false, false),
            Request::GetStale(key) => get(key, true, false),
            Request::GetValue(key) if keeps_stale => get(key, false, true),
            Request::GetValue(key) => once(self.keyed(prefix, "GET", [key]), Parse::GetValue),
            Request::Mget([]) => State::Ready(Some(Reply::Entries(Vec::new()))),
            Request::Mget(keys) => mget(keys, false)?,
            Request::MgetValues([]) => State::Ready(Some(Reply::Values(Vec::new()))),
            Request::MgetValues(keys) if keeps_stale => mget(keys, true)?,
            Request::MgetValues(keys) => self.read_values(prefix, keys)?,
            Request::Set(key, entry) => once(self.set(prefix, key, entry, versions)?, Parse::Done),
            Request::Mset([]) => State::Ready(Some(Reply::Done)),
            #[cfg(feature = "cluster")]
            Request::Mset(items) if self.cluster => {
                let keys: Vec<&str> = items.iter().map(|(key, _)| *key).collect();
                self.per_slot(prefix, &keys, Parse::Done, |group| {
                    Ok(Command::One(match group {
                        // One key: a plain `SET` (or `DEL`) is atomic, and cheaper for the node
                        // than the script.
                        [index] => self.set(prefix, items[*index].0, &items[*index].1, versions)?,
                        _ => self.mset(prefix, group.iter().map(|&index| &items[index]), versions)?,
                    }))
                })?
            }
            Request::Mset(items) => once(self.mset(prefix, items.iter(), versions)?, Parse::Done),
            Request::Delete(key) => once(self.keyed(prefix, "UNLINK", [key]), Parse::Done),
            Request::DeleteMany([]) => State::Ready(Some(Reply::Done)),
            #[cfg(feature = "cluster")]
            Request::DeleteMany(keys) if self.cluster => self.per_slot(prefix, keys, Parse::Done, |group| {
                Ok(Command::One(self.keyed(prefix, "UNLINK", group.iter().map(|&index| keys[index]))))
            })?,
            Request::DeleteMany(keys) => once(self.keyed(prefix, "UNLINK", keys.iter().copied()), Parse::Done),
            // `exists` reads the value's first bytes (with its time left when that tells fresh
            // from stale), answered as a value: a tagged one must be checked like a read (see
            // `under_generation!`, which turns the value into `Reply::Exists`).
            Request::Exists(key) if keeps_stale => {
                let parse = Parse::GetWithTtl { window: self.window(false), value_only: true };
                State::Once(self.with_ttls(prefix, self.peek(prefix, key), [key]), parse)
            }
            Request::Exists(key) => once(self.peek(prefix, key), Parse::Peek),
            #[cfg(feature = "cluster")]
            Request::Flush if self.cluster => State::Masters(Command::AllMasters(redis::cmd("PING"))),
            Request::Flush => State::Scanning(Command::One(self.scan(0))),
            Request::Clear => {
                let mut cmd = redis::cmd("INCR");
                cmd.arg(self.generation.record());
                once(cmd, Parse::Generation(Learnt::Incremented))
            }
            Request::InvalidateTag(tag) => {
                // A new version, kept as long as an entry can live (see `tags.rs`).
                let mut cmd = redis::cmd("SET");
                cmd.arg(Self::key(self.tags.prefix(), tag)).arg(tags::new_version().to_string());
                if let Some(ms) = self.ttl_millis(&Entry::new(StoredValue::new(()), None)) {
                    cmd.arg("PX").arg(ms.max(1));
                }
                once(cmd, Parse::Done)
            }
            Request::Lock { key, token, ttl } => {
                // `SET NX PX`: taken only if free, and it expires if its holder dies.
                let mut cmd = redis::cmd("SET");
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                cmd.arg(self.lock_key(key)).arg(token).arg("NX").arg("PX").arg(ms);
                once(cmd, Parse::Locked)
            }
            Request::Unlock { key, token } => {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(&self.unlock).arg(1).arg(self.lock_key(key)).arg(token);
                once(cmd, Parse::Done)
            }
            // `Request` is non-exhaustive: a request this adapter does not know is not a fault
            // of the server.
            #[allow(unreachable_patterns)]
            other => {
                return Err(Error::layer_fault(Fault::Other, format!("redis layer cannot carry out {}", other.name())));
            }
        };
        Ok(self.bookkeeping(request.name(), state))
    }

    #[cfg(feature = "cluster")]
    /// A command per hash slot of `keys` (made by `command` from that slot's keys), sent at
    /// once; the replies are read by `parse` and put back in request order.
    fn per_slot(
        &self,
        prefix: &[u8],
        keys: &[&str],
        parse: Parse,
        command: impl Fn(&[usize]) -> Result<Command>,
    ) -> Result<State> {
        let groups = SlotGroups::new(prefix, keys);
        let parts = groups.iter().map(|(slot, group)| Ok((slot, command(group)?))).collect::<Result<Vec<_>>>()?;
        Ok(State::PerSlot { command: Command::PerSlot(parts), groups, total: keys.len(), parse })
    }

    /// The Redis key of a tower key: the prefix of the operation's generation, then the key,
    /// written straight into the command (no allocation of its own).
    fn key<'a>(prefix: &'a [u8], key: &'a str) -> RedisKey<'a> {
        RedisKey { prefix, infix: b"", key }
    }

    /// The Redis key of the lock of tower key `key` (see [`LOCK_INFIX`]).
    fn lock_key<'a>(&'a self, key: &'a str) -> RedisKey<'a> {
        RedisKey { prefix: &self.namespace, infix: LOCK_INFIX, key }
    }

    /// `name` with every key as an argument (its buffers sized once).
    fn keyed<'k, I>(&self, prefix: &[u8], name: &str, keys: I) -> Cmd
    where
        I: IntoIterator<Item = &'k str>,
        I::IntoIter: Clone,
    {
        let keys = keys.into_iter();
        let (count, bytes) =
            keys.clone().fold((1, name.len()), |(count, bytes), key| (count + 1, bytes + prefix.len() + key.len()));
        let mut cmd = Cmd::with_capacity(count, bytes);
        cmd.arg(name);
        for key in keys {
            cmd.arg(Self::key(prefix, key));
        }
        cmd
    }

    /// The read of one hash slot's keys on a cluster: `MGET`, or `GET` for a slot's lone key
    /// (most slots of a spread batch), cheaper for the node and for the reply's parser. The
    /// parser tells the two apart by the group's size (`scatter`).
    #[cfg(feature = "cluster")]
    fn slot_read<'k, I>(&self, prefix: &[u8], keys: I) -> Cmd
    where
        I: ExactSizeIterator<Item = &'k str> + Clone,
    {
        self.keyed(prefix, if keys.len() == 1 { "GET" } else { "MGET" }, keys)
    }

    /// `GETRANGE` of the first [`tags::PEEK`] bytes of `key`'s value: enough for `exists` to
    /// tell a plain value from a tagged one and read its tags.
    fn peek(&self, prefix: &[u8], key: &str) -> Cmd {
        let mut cmd = redis::cmd("GETRANGE");
        cmd.arg(Self::key(prefix, key)).arg(0).arg(tags::PEEK - 1);
        cmd
    }

    /// `read`, then a `PTTL` of each of `keys`, pipelined.
    fn with_ttls<'k, I>(&self, prefix: &[u8], read: Cmd, keys: I) -> Command
    where
        I: IntoIterator<Item = &'k str>,
        I::IntoIter: Clone,
    {
        let keys = keys.into_iter();
        let mut pipeline = redis::Pipeline::with_capacity(keys.clone().count() + 1);
        pipeline.ignore_errors().add_command(read);
        for key in keys {
            pipeline.add_command(self.keyed(prefix, "PTTL", [key]));
        }
        Command::Pipeline(pipeline)
    }

    /// `SET` with the entry's TTL (`PX`), or `DEL` when it has no time left.
    fn set(&self, prefix: &[u8], key: &str, entry: &Entry, versions: &Versions) -> Result<Cmd> {
        let full = Self::key(prefix, key);
        match self.ttl_millis(entry) {
            Some(0) => {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(full);
                Ok(cmd)
            }
            ttl => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(full).arg(&*tags::stored_bytes(entry.value(), versions)?);
                if let Some(ms) = ttl {
                    cmd.arg("PX").arg(ms);
                }
                Ok(cmd)
            }
        }
    }

    /// Every `SET` in one atomic script call, each key with its own TTL from the start (never
    /// briefly immortal).
    fn mset<'i>(
        &self,
        prefix: &[u8],
        items: impl Iterator<Item = &'i (&'i str, Entry)> + Clone,
        versions: &Versions,
    ) -> Result<Cmd> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.mset_with_ttl).arg(items.clone().count());
        for (key, _) in items.clone() {
            cmd.arg(Self::key(prefix, key));
        }
        for (_, entry) in items {
            let ttl = self.ttl_millis(entry).map_or(-1, |ms| i64::try_from(ms).unwrap_or(i64::MAX));
            cmd.arg(&*tags::stored_bytes(entry.value(), versions)?).arg(ttl);
        }
        Ok(cmd)
    }

    /// One `SCAN` step over the namespace's keys.
    fn scan(&self, cursor: u64) -> Cmd {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("MATCH").arg(scan_pattern(&self.namespace)).arg("COUNT").arg(SCAN_BATCH);
        cmd
    }

    /// The TTL to write an entry with, in milliseconds (`None`: no expiry; `Some(0)`: expired):
    /// the shorter of the layer's and the entry's, plus the layer's stale window (at most
    /// [`MAX_TTL`](crate::adapter::MAX_TTL) in all).
    fn ttl_millis(&self, entry: &Entry) -> Option<u64> {
        effective_ttl(self.ttl, entry.ttl()).map(|ttl| {
            if ttl.is_zero() {
                return 0;
            }
            let ttl = ttl.saturating_add(self.stale).min(crate::config::MAX_TTL);
            // Round up, so an entry with under a millisecond left is not written as expired.
            let ms = ttl.as_millis() + u128::from(ttl.subsec_nanos() % 1_000_000 != 0);
            u64::try_from(ms).unwrap_or(u64::MAX)
        })
    }
}

impl Op<'_> {
    /// The operation's name, for messages.
    pub(super) fn name(&self) -> &'static str {
        self.name
    }

    /// The command to send next; `None` when the operation needs no (more) round trips: then
    /// [`feed`](Self::feed) without a reply gives its answer.
    pub(super) fn command(&self) -> Option<&Command> {
        match &self.state {
            State::Once(cmd, _) | State::Scanning(cmd) | State::Unlinking(cmd, _) => Some(cmd),
            #[cfg(feature = "cluster")]
            State::PerSlot { command: cmd, .. } | State::Masters(cmd) => Some(cmd),
            State::Ready(_) => None,
        }
    }

    /// Takes the reply to [`command`](Self::command) (`None` when there was no command).
    ///
    /// # Errors
    /// Redis's error reply (except `WRONGTYPE` from a plain `GET`, a miss), or a reply that makes
    /// no sense for the command.
    pub(super) fn feed(&mut self, reply: Option<redis::RedisResult<Value>>) -> Result<Progress, Failed> {
        let state = std::mem::replace(&mut self.state, State::Ready(None));
        let Some(reply) = reply else {
            return match state {
                State::Ready(Some(answer)) => Ok(Progress::Done(answer)),
                _ => Err(Failed::Reply(mismatch("no reply to a command that was to be sent"))),
            };
        };
        match state {
            State::Once(_, Parse::Generation(how)) => {
                let corrupt = |what: String| {
                    let record = String::from_utf8_lossy(self.ops.generation.record()).into_owned();
                    Failed::Reply(mismatch(&format!(
                        "redis {}: the generation record {record:?} holds {what}",
                        self.name
                    )))
                };
                let reply = match reply {
                    // `INCR` of a record that holds no integer.
                    Err(err) if err.code().is_some() => return Err(corrupt(format!("no generation number ({err})"))),
                    reply => reply.map_err(Failed::Redis)?,
                };
                let number = generation::parse(&reply).map_err(corrupt)?;
                self.ops.generation.learn(number, how);
                Ok(Progress::Done(Reply::Done))
            }
            State::Once(_, parse) => parse.reply(reply).map(Progress::Done),
            #[cfg(feature = "cluster")]
            State::PerSlot { groups, total, parse, .. } => {
                let replies: Vec<Value> = decode(reply.map_err(Failed::Redis)?)?;
                if replies.len() != groups.len() {
                    return Err(Failed::Reply(mismatch("redis answered fewer slots than were asked")));
                }
                scatter(&groups, total, replies, parse).map(Progress::Done)
            }
            #[cfg(feature = "cluster")]
            State::Masters(_) => {
                let Value::Map(masters) = reply.map_err(Failed::Redis)? else {
                    return Err(Failed::Reply(mismatch("expected a reply per master")));
                };
                for (address, reply) in masters {
                    reply_or_error(reply)?;
                    let address: String = decode(address)?;
                    let (host, port) = address
                        .rsplit_once(':')
                        .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)))
                        .ok_or_else(|| Failed::Reply(mismatch("a master address without a port")))?;
                    self.masters.push((host, port));
                }
                self.masters.sort();
                Ok(self.scan_master())
            }
            State::Scanning(_) => {
                let (next, mut keys): (u64, Vec<Vec<u8>>) = decode(reply.map_err(Failed::Redis)?)?;
                // The generation record stays: a generation never goes back, or an instance that
                // missed the flush would go on with its own. So do the tag records (they expire
                // by their TTL): a missing record is version 0, which an entry written before
                // the tag's first invalidation, and not yet unlinked by this flush, still carries.
                let tag_records = self.ops.tags.prefix();
                keys.retain(|key| key.as_slice() != self.ops.generation.record() && !key.starts_with(tag_records));
                if !keys.is_empty() {
                    let mut unlink = redis::cmd("UNLINK");
                    unlink.arg(keys);
                    self.state = State::Unlinking(Command::One(unlink), next);
                    return Ok(Progress::Next);
                }
                Ok(self.scan_from(next))
            }
            State::Unlinking(_, next) => {
                reply.map_err(Failed::Redis)?;
                Ok(self.scan_from(next))
            }
            State::Ready(_) => Err(Failed::Reply(mismatch("a reply to no command"))),
        }
    }

    /// After a `SCAN` step that ended at `next`: another `SCAN`, or done at cursor 0 (on a
    /// cluster, with this master: on to the next one).
    fn scan_from(&mut self, next: u64) -> Progress {
        #[cfg(feature = "cluster")]
        if self.ops.cluster {
            return self.scan_master_from(next);
        }
        if next == 0 {
            return Progress::Done(Reply::Done);
        }
        self.state = State::Scanning(Command::One(self.ops.scan(next)));
        Progress::Next
    }

    /// [`scan_from`](Self::scan_from) on a cluster: the next `SCAN` of this master, or the
    /// first of the next one.
    #[cfg(feature = "cluster")]
    fn scan_master_from(&mut self, next: u64) -> Progress {
        if next != 0 {
            let (host, port) = self.masters[0].clone();
            self.state = State::Scanning(Command::OnNode { host, port, cmd: self.ops.scan(next) });
            return Progress::Next;
        }
        self.masters.remove(0);
        self.scan_master()
    }

    /// A cluster `flush`: the first `SCAN` of the next master, or done when none is left.
    #[cfg(feature = "cluster")]
    fn scan_master(&mut self) -> Progress {
        let Some((host, port)) = self.masters.first().cloned() else {
            return Progress::Done(Reply::Done);
        };
        self.state = State::Scanning(Command::OnNode { host, port, cmd: self.ops.scan(0) });
        Progress::Next
    }
}

impl Parse {
    fn reply(self, reply: redis::RedisResult<Value>) -> Result<Reply, Failed> {
        let value = match reply {
            Ok(value) => value,
            // `WRONGTYPE` from a plain `GET`: the key holds a hash, list, ... rather than a
            // string. That is a value this layer cannot read, like a corrupt one, not a fault of
            // the server: a miss. (`MGET` reads such a key as nil.)
            Err(err) if matches!(self, Parse::GetValue | Parse::Peek) && err.code() == Some("WRONGTYPE") => {
                tracing::debug!("redis key holds a non-string value; treated as a miss");
                return Ok(Reply::Value(None));
            }
            Err(err) => return Err(Failed::Redis(err)),
        };
        Ok(match self {
            Parse::GetWithTtl { window, value_only } => {
                let [value, pttl] = pipeline_replies::<2>(value)?;
                let entry = entry(string_or_miss(value)?, decode(reply_or_error(pttl)?)?, window);
                if value_only { Reply::Value(entry.map(|entry| entry.into_parts().0)) } else { Reply::Entry(entry) }
            }
            Parse::GetValue => Reply::Value(decode::<Option<Vec<u8>>>(value)?.map(StoredValue::from_json)),
            Parse::MgetWithTtl { count, window, values_only } => {
                let entries = parse_mget_with_ttl(decode(value)?, count, window)?;
                if values_only {
                    Reply::Values(entries.into_iter().map(|entry| entry.map(|entry| entry.into_parts().0)).collect())
                } else {
                    Reply::Entries(entries)
                }
            }

            Parse::MgetValues => Reply::Values(
                decode::<Vec<Option<Vec<u8>>>>(value)?.into_iter().map(|v| v.map(StoredValue::from_json)).collect(),
            ),
            // `GETRANGE` of no key is empty (a stored value never is: JSON is not empty).
            Parse::Peek => Reply::Value(
                decode::<Option<Vec<u8>>>(value)?.filter(|bytes| !bytes.is_empty()).map(StoredValue::from_json),
            ),
            Parse::Locked => Reply::Locked(!matches!(value, Value::Nil)),
            Parse::Generation(_) | Parse::Done => Reply::Done,
        })
    }
}

/// The replies of a per-slot command, each read by `parse` for its group's keys, put back in
/// request order. An error reply arrives as a value ([`Value::ServerError`]) and is read here
/// (`WRONGTYPE` from a lone key's `GET` is a miss; any other is the operation's error).
#[cfg(feature = "cluster")]
fn scatter(groups: &SlotGroups, total: usize, replies: Vec<Value>, parse: Parse) -> Result<Reply, Failed> {
    let groups = groups.iter().map(|(_, group)| group).zip(replies);
    match parse {
        Parse::MgetValues => {
            // Read straight into place: a value per key, no list per slot.
            let mut values: Vec<Option<StoredValue>> = Vec::new();
            values.resize_with(total, || None);
            for (group, reply) in groups {
                if let [index] = group {
                    // A lone key's `GET`: its value, or a miss (`WRONGTYPE` too, as `MGET` reads it).
                    values[*index] = string_or_miss(reply)?.map(StoredValue::from_json);
                    continue;
                }
                let Value::Array(items) = reply_or_error(reply)? else {
                    return Err(Failed::Reply(mismatch("redis answered MGET with something else than a list")));
                };
                if items.len() != group.len() {
                    return Err(Failed::Reply(mismatch("redis answered MGET with another number of values")));
                }
                for (&index, item) in group.iter().zip(items) {
                    values[index] = string_or_miss(item)?.map(StoredValue::from_json);
                }
            }
            Ok(Reply::Values(values))
        }
        Parse::MgetWithTtl { window, values_only, .. } => {
            let mut entries: Vec<Option<Entry>> = Vec::new();
            entries.resize_with(total, || None);
            for (group, reply) in groups {
                if let [index] = group {
                    // A lone key's `GET` + `PTTL`.
                    let lone = Parse::GetWithTtl { window, value_only: false };
                    if let Reply::Entry(entry) = lone.reply(Ok(reply))? {
                        entries[*index] = entry;
                    }
                    continue;
                }
                let group_entries = parse_mget_with_ttl(decode(reply)?, group.len(), window)?;
                for (&index, entry) in group.iter().zip(group_entries) {
                    entries[index] = entry;
                }
            }
            Ok(if values_only {
                Reply::Values(entries.into_iter().map(|entry| entry.map(|entry| entry.into_parts().0)).collect())
            } else {
                Reply::Entries(entries)
            })
        }
        parse => {
            for (_, reply) in groups {
                parse.reply(Ok(reply_or_error(reply)?))?;
            }
            Ok(Reply::Done)
        }
    }
}

/// `KEYS`/`SCAN` glob matching every key that starts with `namespace`: its glob characters are
/// escaped, so a namespace such as `a*[b]?` matches only itself. An empty namespace matches every
/// key of the database.
fn scan_pattern(namespace: &[u8]) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(namespace.len() * 2 + 1);
    for &byte in namespace {
        if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(byte);
    }
    pattern.push(b'*');
    pattern
}

/// An entry from a value and its `PTTL` reply; `None` when the key is gone, or stale and not
/// asked for. The last `window.stale` of a key's time left is its stale window: a fresh entry's
/// TTL is the time left before it; within it the entry is stale.
fn entry(value: Option<Vec<u8>>, pttl: i64, window: Window) -> Option<Entry> {
    let value = value?;
    let left = match pttl {
        -2 => return None, // deleted between GET and PTTL
        ms if ms < 0 => return Some(Entry::new(StoredValue::from_json(value), None)),
        ms => Duration::from_millis(ms.unsigned_abs()),
    };
    match left.checked_sub(window.stale) {
        Some(fresh) if !fresh.is_zero() || window.stale.is_zero() => {
            Some(Entry::new(StoredValue::from_json(value), Some(fresh)))
        }
        _ if window.stale_too => Some(Entry::stale(StoredValue::from_json(value), left)),
        _ => None,
    }
}

/// Parses the replies of `MGET` then `count` `PTTL`s.
fn parse_mget_with_ttl(replies: Vec<Value>, count: usize, window: Window) -> Result<Vec<Option<Entry>>, Failed> {
    if replies.len() != count + 1 {
        return Err(Failed::Reply(mismatch(&format!(
            "redis answered {} replies to MGET and {count} PTTL (expected {})",
            replies.len(),
            count + 1
        ))));
    }
    let mut replies = replies.into_iter();
    let values: Vec<Option<Vec<u8>>> = decode(reply_or_error(replies.next().unwrap_or(Value::Nil))?)?;
    if values.len() != count {
        return Err(Failed::Reply(mismatch(&format!("redis answered {} values for {count} keys", values.len()))));
    }
    values
        .into_iter()
        .zip(replies)
        .map(|(value, pttl)| Ok(entry(value, decode(reply_or_error(pttl)?)?, window)))
        .collect()
}

/// The `N` replies of a pipeline.
fn pipeline_replies<const N: usize>(reply: Value) -> Result<[Value; N], Failed> {
    let replies: Vec<Value> = decode(reply)?;
    let count = replies.len();
    replies.try_into().map_err(|_| Failed::Reply(mismatch(&format!("redis answered {count} replies, expected {N}"))))
}

/// One reply of a pipeline, an error reply as the error.
fn reply_or_error(reply: Value) -> Result<Value, Failed> {
    match reply {
        Value::ServerError(err) => Err(Failed::Redis(err.into())),
        reply => Ok(reply),
    }
}

/// A `GET` reply of a pipeline: the bytes, `None` for a missing key or one that holds another
/// type than a string (`WRONGTYPE`: a value this layer cannot read, a miss, as `MGET` reads it).
fn string_or_miss(reply: Value) -> Result<Option<Vec<u8>>, Failed> {
    match reply {
        Value::ServerError(err) if err.code() == "WRONGTYPE" => Ok(None),
        reply => decode(reply_or_error(reply)?),
    }
}

/// A reply as the type it should have.
fn decode<T: redis::FromRedisValue>(value: Value) -> Result<T, Failed> {
    redis::from_redis_value(value)
        .map_err(|err| Failed::Reply(Error::layer_fault(Fault::Reply, "unexpected reply from redis").with_source(err)))
}

#[cold]
fn mismatch(what: &str) -> Error {
    Error::layer_fault(Fault::Reply, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    /// A server's error reply with `code`, as a command's result would carry it.
    fn server_error(code: &str) -> RedisError {
        let reply = redis::parse_redis_value(format!("-{code} stand-in\r\n").as_bytes()).expect("an error reply");
        reply.extract_error().expect_err("an error")
    }

    #[test]
    fn scan_pattern_escapes_glob_characters() {
        assert_eq!(scan_pattern(b"users:"), b"users:*");
        assert_eq!(scan_pattern(b"a*b?c[d]e\\"), b"a\\*b\\?c\\[d\\]e\\\\*");
        assert_eq!(scan_pattern(b""), b"*");
    }

    #[test]
    fn ttl_is_the_shorter_rounded_up_to_a_millisecond() {
        let ops = Ops::new("", Some(Duration::from_secs(60)));
        let ms = |ttl| ops.ttl_millis(&Entry::new(StoredValue::new(1), ttl));
        assert_eq!(ms(None), Some(60_000));
        assert_eq!(ms(Some(Duration::from_secs(5))), Some(5_000));
        assert_eq!(ms(Some(Duration::from_micros(1))), Some(1));
        assert_eq!(ms(Some(Duration::ZERO)), Some(0));
        assert_eq!(Ops::new("", None).ttl_millis(&Entry::new(StoredValue::new(1), None)), None);
    }

    #[test]
    fn pttl_replies_become_ttls() {
        let plain = Window { stale: Duration::ZERO, stale_too: false };
        assert!(entry(Some(b"1".to_vec()), -2, plain).is_none());
        assert_eq!(entry(Some(b"1".to_vec()), -1, plain).unwrap().ttl(), None);
        assert_eq!(entry(Some(b"1".to_vec()), 1500, plain).unwrap().ttl(), Some(Duration::from_millis(1500)));
        assert!(entry(None, 1500, plain).is_none());
    }

    #[test]
    fn the_last_stale_window_of_the_time_left_is_stale() {
        let window = |stale_too| Window { stale: Duration::from_secs(10), stale_too };
        let fresh = entry(Some(b"1".to_vec()), 10_500, window(false)).unwrap();
        assert_eq!((fresh.ttl(), fresh.is_stale()), (Some(Duration::from_millis(500)), false));
        assert!(entry(Some(b"1".to_vec()), 10_000, window(false)).is_none(), "stale: a miss for plain reads");
        let stale = entry(Some(b"1".to_vec()), 4_000, window(true)).unwrap();
        assert_eq!((stale.is_stale(), stale.stale_left()), (true, Some(Duration::from_secs(4))));
        assert!(!entry(Some(b"1".to_vec()), -1, window(true)).unwrap().is_stale(), "no TTL: always fresh");
    }

    #[test]
    fn a_stale_window_lengthens_what_redis_keeps_and_makes_reads_ask_for_ttls() {
        let ops = Ops::new("", Some(Duration::from_secs(60))).with_stale(Duration::from_secs(600));
        assert_eq!(ops.ttl_millis(&Entry::new(StoredValue::new(1), None)), Some(660_000));
        assert_eq!(ops.ttl_millis(&Entry::new(StoredValue::new(1), Some(Duration::ZERO))), Some(0));
        let packed = |request| ops.untagged_op(request).unwrap().command().unwrap().packed();
        assert!(packed(Request::GetValue("k")).contains("PTTL"));
        assert!(packed(Request::MgetValues(&["a", "b"])).contains("PTTL"));
        assert!(packed(Request::Exists("k")).contains("PTTL"));
    }

    #[test]
    fn get_pipelines_get_and_pttl_and_reads_value_and_ttl() {
        let ops = Ops::new("ns:", None);
        let mut op = ops.untagged_op(Request::Get("k")).unwrap();
        let packed = op.command().unwrap().packed();
        assert_eq!(packed, "*2\r\n$3\r\nGET\r\n$4\r\nns:k\r\n*2\r\n$4\r\nPTTL\r\n$4\r\nns:k\r\n");
        let reply = Value::Array(vec![bulk("7"), Value::Int(1500)]);
        let Ok(Progress::Done(Reply::Entry(Some(entry)))) = op.feed(Some(Ok(reply))) else { panic!("an entry") };
        assert_eq!(entry.ttl(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn a_pipelined_get_of_another_type_is_a_miss_and_other_errors_are_errors() {
        let ops = Ops::new("", None);
        let error = |code: &str| match redis::parse_redis_value(format!("-{code} stand-in\r\n").as_bytes()) {
            Ok(Value::ServerError(err)) => Value::ServerError(err),
            other => panic!("an error reply, got {other:?}"),
        };
        let mut op = ops.untagged_op(Request::Get("k")).unwrap();
        let wrong_type = Value::Array(vec![error("WRONGTYPE"), Value::Int(-1)]);
        assert!(matches!(op.feed(Some(Ok(wrong_type))), Ok(Progress::Done(Reply::Entry(None)))));
        let mut op = ops.untagged_op(Request::Get("k")).unwrap();
        let busy = Value::Array(vec![error("BUSY"), Value::Int(-1)]);
        assert!(matches!(op.feed(Some(Ok(busy))), Err(Failed::Redis(_))));
        let mut op = ops.untagged_op(Request::Mget(&["a"])).unwrap();
        let failed_pttl = Value::Array(vec![Value::Array(vec![bulk("1")]), error("ERR")]);
        assert!(matches!(op.feed(Some(Ok(failed_pttl))), Err(Failed::Redis(_))));
    }

    #[test]
    fn wrong_type_is_a_miss_for_a_plain_get_only() {
        let ops = Ops::new("", None);
        let mut get = ops.untagged_op(Request::GetValue("k")).unwrap();
        assert!(matches!(get.feed(Some(Err(server_error("WRONGTYPE")))), Ok(Progress::Done(Reply::Value(None)))));
        let mut exists = ops.untagged_op(Request::Exists("k")).unwrap();
        assert!(matches!(exists.feed(Some(Err(server_error("WRONGTYPE")))), Ok(Progress::Done(Reply::Value(None)))));
        let mut exists = ops.untagged_op(Request::Exists("k")).unwrap();
        assert!(matches!(exists.feed(Some(Ok(bulk("")))), Ok(Progress::Done(Reply::Value(None)))), "no key");
        let mut mget = ops.untagged_op(Request::MgetValues(&["k"])).unwrap();
        assert!(matches!(mget.feed(Some(Err(server_error("OOM")))), Err(Failed::Redis(_))), "other errors are errors");
    }

    #[test]
    fn mget_with_ttl_checks_the_reply_length() {
        let ops = Ops::new("", None);
        let mut op = ops.untagged_op(Request::Mget(&["a", "b"])).unwrap();
        let short = Value::Array(vec![Value::Array(vec![bulk("1"), Value::Nil]), Value::Int(-1)]);
        assert!(matches!(op.feed(Some(Ok(short))), Err(Failed::Reply(_))));
        let mut op = ops.untagged_op(Request::Mget(&["a", "b"])).unwrap();
        let full = Value::Array(vec![Value::Array(vec![bulk("1"), Value::Nil]), Value::Int(-1), Value::Int(-2)]);
        let Ok(Progress::Done(Reply::Entries(entries))) = op.feed(Some(Ok(full))) else { panic!("entries") };
        assert_eq!(entries.len(), 2);
        assert!(entries[0].as_ref().is_some_and(|e| e.ttl().is_none()) && entries[1].is_none());
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn a_cluster_mget_goes_per_slot_and_answers_in_request_order() {
        let ops = Ops::new("", None).on_cluster();
        // `{a}x` and `{a}y` share a slot; `b` has its own.
        let keys = ["{a}x", "b", "{a}y"];
        let mut op = ops.untagged_op(Request::MgetValues(&keys)).unwrap();
        let Some(Command::PerSlot(parts)) = op.command() else { panic!("per slot") };
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1.packed(), "*3\r\n$4\r\nMGET\r\n$4\r\n{a}x\r\n$4\r\n{a}y\r\n");
        // A slot's lone key is a plain `GET`.
        assert_eq!(parts[1].1.packed(), "*2\r\n$3\r\nGET\r\n$1\r\nb\r\n");
        // Each slot's reply, in the order of the parts: `{a}x` and `{a}y`, then `b`.
        let replies = Value::Array(vec![Value::Array(vec![bulk("1"), Value::Nil]), bulk("2")]);
        let Ok(Progress::Done(Reply::Values(values))) = op.feed(Some(Ok(replies))) else { panic!("values") };
        let values: Vec<Option<i64>> = values.into_iter().map(|v| v.map(|v| v.decode().unwrap())).collect();
        assert_eq!(values, [Some(1), Some(2), None]);

        // A lone key holding another type is a miss; another error reply is the operation's.
        let wrong_type = || Value::ServerError(server_error("WRONGTYPE").try_into().expect("a server error"));
        let mut op = ops.untagged_op(Request::MgetValues(&keys)).unwrap();
        let replies = Value::Array(vec![Value::Array(vec![Value::Nil, Value::Nil]), wrong_type()]);
        let Ok(Progress::Done(Reply::Values(values))) = op.feed(Some(Ok(replies))) else { panic!("values") };
        assert!(values.iter().all(Option::is_none));
        let mut op = ops.untagged_op(Request::MgetValues(&keys)).unwrap();
        let replies = Value::Array(vec![
            Value::Array(vec![Value::Nil, Value::Nil]),
            Value::ServerError(server_error("ERR").try_into().expect("a server error")),
        ]);
        assert!(matches!(op.feed(Some(Ok(replies))), Err(Failed::Redis(_))));
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn a_cluster_mset_sets_a_lone_key_plainly_and_scripts_a_slot_of_many() {
        let ops = Ops::new("", Some(Duration::from_secs(10))).on_cluster();
        let items = [
            ("{a}x", Entry::new(StoredValue::new(1), None)),
            ("b", Entry::new(StoredValue::new(2), None)),
            ("{a}y", Entry::new(StoredValue::new(3), None)),
        ];
        let mut op = ops.untagged_op(Request::Mset(&items)).unwrap();
        let Some(Command::PerSlot(parts)) = op.command() else { panic!("per slot") };
        assert!(parts[0].1.packed().contains("EVALSHA"));
        assert_eq!(parts[1].1.packed(), "*5\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n$2\r\nPX\r\n$5\r\n10000\r\n");
        // A slot answering fewer replies than it was asked is a mismatch, not a panic.
        assert!(matches!(op.feed(Some(Ok(Value::Array(vec![Value::Int(2)])))), Err(Failed::Reply(_))));
    }

    #[test]
    fn delete_many_is_one_unlink_of_every_key() {
        let ops = Ops::new("n:", None);
        let op = ops.untagged_op(Request::DeleteMany(&["a", "b"])).unwrap();
        let packed = op.command().unwrap().packed();
        assert!(packed.contains("UNLINK") && packed.contains("n:a") && packed.contains("n:b"), "{packed}");
    }

    #[test]
    fn empty_batches_need_no_round_trip() {
        let ops = Ops::new("", None);
        for request in [Request::Mget(&[]), Request::MgetValues(&[]), Request::Mset(&[]), Request::DeleteMany(&[])] {
            let mut op = ops.untagged_op(request).unwrap();
            assert!(op.command().is_none());
            assert!(matches!(op.feed(None), Ok(Progress::Done(_))));
        }
    }

    #[test]
    fn mset_passes_keys_then_value_ttl_pairs() {
        let ops = Ops::new("n:", Some(Duration::from_secs(10)));
        let items = [
            ("a", Entry::new(StoredValue::new(1), None)),
            ("b", Entry::new(StoredValue::new(2), Some(Duration::ZERO))),
        ];
        let op = ops.untagged_op(Request::Mset(&items)).unwrap();
        let Some(Command::One(cmd)) = op.command() else { panic!("one command") };
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .filter_map(|arg| match arg {
                redis::Arg::Simple(bytes) => Some(bytes.to_vec()),
                _ => None,
            })
            .collect();
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        assert_eq!(args[2..], [&b"2"[..], b"n:a", b"n:b", b"1", b"10000", b"2", b"0"]);
    }

    #[test]
    fn flush_scans_unlinks_and_stops_at_cursor_zero() {
        let ops = Ops::new("n:", None);
        let mut op = ops.untagged_op(Request::Flush).unwrap();
        let name = |op: &Op<'_>| op.command().unwrap().packed();
        assert!(name(&op).contains("SCAN"));
        // A step that found keys: UNLINK them, then SCAN on from cursor 7.
        let found = Value::Array(vec![bulk("7"), Value::Array(vec![bulk("n:a"), bulk("n:b")])]);
        assert!(matches!(op.feed(Some(Ok(found))), Ok(Progress::Next)));
        assert!(name(&op).contains("UNLINK"));
        assert!(matches!(op.feed(Some(Ok(Value::Int(2)))), Ok(Progress::Next)));
        let packed = name(&op);
        assert!(packed.contains("SCAN") && packed.contains("\r\n7\r\n"), "{packed}");
        // A last step that found nothing: done, with no UNLINK.
        let last = Value::Array(vec![bulk("0"), Value::Array(vec![])]);
        assert!(matches!(op.feed(Some(Ok(last))), Ok(Progress::Done(Reply::Done))));
    }
}
