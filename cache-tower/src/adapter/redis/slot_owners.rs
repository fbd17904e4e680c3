//! Per-node batching on a cluster (feature `cluster`): an `mget` or `mset` of many keys is one
//! command per hash slot ([`Command::PerSlot`]); the commands whose slots one master serves go
//! to it in **one pipeline**, every master's at once. A thousand keys spread over three masters
//! are then three round trips in parallel, not a thousand requests (which is what redis-rs's own
//! split of a multi-slot command sends; it costs 2.4x the per-node pipelines on this kind of
//! machine, see `docs/adr/0018-per-node-batching-on-a-cluster.md`).
//!
//! [`SlotOwners`] says which slots share a master, as `CLUSTER SLOTS` said when last asked. It
//! is a **hint for grouping, never a route**: each pipeline is still routed by redis-rs, to the
//! master redis-rs's own slot map gives for the pipeline's first slot. When the hint is out of
//! date (a failover, a slot migration), a command reaches a node that no longer serves its slot
//! and that node answers `MOVED` or `ASK` for it. redis-rs then resends the whole pipeline
//! where the redirect points, where the other commands are redirected back, until it gives up
//! on the pipeline; then each of its parts is sent on its own, through redis-rs's normal
//! routing (which follows redirects one command at a time), and the hint is read again before
//! the next batch. A stale hint costs round trips, never a wrong answer.

use std::collections::HashMap;

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{RedisError, RedisResult, ServerErrorKind, Value};

use super::ops::Command;

/// How many hash slots a Redis Cluster has.
const SLOTS: usize = 16_384;

/// The master of each hash slot, as a small number (the same number: the same master), as
/// `CLUSTER SLOTS` said when it was read.
#[derive(Debug)]
pub(super) struct SlotOwners {
    /// Keyed by redis-rs's `Slot`, which has no public number to index by.
    owner: HashMap<Slot, u16>,
}

impl SlotOwners {
    /// The command that reads them.
    pub(super) fn command() -> redis::Cmd {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        cmd
    }

    /// Reads a `CLUSTER SLOTS` reply: ranges `[first, last, [host, port, id, ...], replicas...]`.
    /// A master is told apart by its node id (by `host:port` when the reply has no id).
    ///
    /// # Errors
    /// A reply of another shape (named, for the log: the hint is then left out).
    pub(super) fn parse(reply: Value) -> Result<Self, String> {
        let Value::Array(ranges) = reply else {
            return Err("CLUSTER SLOTS did not answer an array".to_owned());
        };
        let mut owner = HashMap::with_capacity(SLOTS);
        let mut masters: Vec<Vec<u8>> = Vec::new();
        for range in ranges {
            let Value::Array(range) = range else {
                return Err("a CLUSTER SLOTS range is not an array".to_owned());
            };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
                (range.first(), range.get(1), range.get(2))
            else {
                return Err("a CLUSTER SLOTS range lacks its bounds or its master".to_owned());
            };
            let identity = master_identity(master).ok_or("a CLUSTER SLOTS master has no address")?;
            let number = match masters.iter().position(|known| *known == identity) {
                Some(number) => number,
                None => {
                    masters.push(identity);
                    masters.len() - 1
                }
            };
            let number = u16::try_from(number).map_err(|_| "more masters than slots".to_owned())?;
            let slots = u16::try_from(*first).ok().zip(u16::try_from(*last).ok());
            let Some((first, last)) = slots.filter(|(first, last)| first <= last && Slot::new(*last).is_some()) else {
                return Err(format!("a CLUSTER SLOTS range {first}-{last} is not within 0-16383"));
            };
            for slot in (first..=last).filter_map(Slot::new) {
                owner.insert(slot, number);
            }
        }
        Ok(Self { owner })
    }

    /// The master that served `slot`, if one did.
    fn owner(&self, slot: Slot) -> Option<u16> {
        self.owner.get(&slot).copied()
    }
}

/// A master's identity in a `CLUSTER SLOTS` range: its node id, or `host:port`.
fn master_identity(master: &[Value]) -> Option<Vec<u8>> {
    match master {
        [_, _, Value::BulkString(id), ..] => Some(id.clone()),
        [Value::BulkString(host), Value::Int(port), ..] => {
            Some([host.as_slice(), b":", port.to_string().as_bytes()].concat())
        }
        _ => None,
    }
}

/// What sending the per-slot commands found: their replies in order, and whether a node
/// redirected one (then the owners are out of date).
pub(super) struct Sent {
    pub(super) replies: Vec<Value>,
    pub(super) redirected: bool,
}

/// Sends `parts` (a command per slot), those of one master (by `owners`) in one pipeline, all
/// masters at once; a group a node redirected is sent again part by part, routed by redis-rs. The
/// replies are in the order of `parts`: a single command's value (an error reply as a
/// [`Value::ServerError`]), a pipeline's array.
///
/// # Errors
/// A pipeline that failed (a node down: redis-rs has then tried again as its settings say).
pub(super) async fn send(
    connection: &ClusterConnection,
    parts: &[(Slot, Command)],
    owners: Option<&SlotOwners>,
) -> RedisResult<Sent> {
    // Each group: the parts one pipeline carries. Parts of no known master go alone.
    let mut groups: indexmap::IndexMap<Option<u16>, Vec<usize>> = indexmap::IndexMap::new();
    let mut alone = Vec::new();
    for (index, (slot, _)) in parts.iter().enumerate() {
        match owners.and_then(|owners| owners.owner(*slot)) {
            Some(owner) => groups.entry(Some(owner)).or_default().push(index),
            None => alone.push(vec![index]),
        }
    }
    let groups = groups.into_values().chain(alone);
    let sends = groups.map(|group| {
        let mut connection = connection.clone();
        async move {
            let replies = send_group(&mut connection, parts, &group).await?;
            Ok::<_, RedisError>((group, replies))
        }
    });
    let mut replies: Vec<Option<Value>> = vec![None; parts.len()];
    let mut redirected = false;
    for sent in futures_util::future::join_all(sends).await {
        let (group, group_replies) = sent?;
        for (index, (reply, was_redirected)) in group.into_iter().zip(group_replies) {
            replies[index] = Some(reply);
            redirected |= was_redirected;
        }
    }
    let replies: Vec<Value> = replies.into_iter().map(|reply| reply.unwrap_or(Value::Nil)).collect();
    // A script a node does not have: the error of the whole batch, so that the layer loads its
    // scripts and sends the batch again (`cluster.rs`).
    let missing_script = replies.iter().find_map(|reply| match reply {
        Value::ServerError(err) if err.kind() == Some(ServerErrorKind::NoScript) => Some(err.clone()),
        _ => None,
    });
    if let Some(err) = missing_script {
        return Err(err.into());
    }
    Ok(Sent { replies, redirected })
}

/// Sends the parts of `group` in one pipeline (one part: as it is). When the owners turn out to
/// be out of date, each part of the group is sent again on its own (see [`send_each`]); the
/// `bool` of each reply says so.
async fn send_group(
    connection: &mut ClusterConnection,
    parts: &[(Slot, Command)],
    group: &[usize],
) -> RedisResult<Vec<(Value, bool)>> {
    let [first, ..] = group else { return Ok(Vec::new()) };
    if group.len() == 1 {
        return Ok(vec![(send_alone(connection, &parts[*first].1).await?, false)]);
    }
    let commands = group.iter().map(|&index| match &parts[index].1 {
        Command::Pipeline(inner) => inner.len(),
        _ => 1,
    });
    let mut pipeline = redis::Pipeline::with_capacity(commands.sum());
    pipeline.ignore_errors();
    let mut counts = Vec::with_capacity(group.len());
    for &index in group {
        counts.push(append(&mut pipeline, &parts[index].1));
    }
    let route = SingleNodeRoutingInfo::SpecificNode(Route::with_slot(parts[*first].0, SlotAddr::Master));
    let length = pipeline.len();
    let values = match connection.route_pipeline(pipeline, 0, length, route).await {
        // redis-rs resends a whole pipeline where a redirect points, so with owners out of date
        // the pipeline bounces between nodes until redis-rs gives up on it (an error), or comes
        // back with a redirect in it.
        Ok(values) if !values.iter().any(is_redirect) => values,
        Ok(_) => return send_each(connection, parts, group).await,
        Err(err) if is_cluster_state(&err) => return send_each(connection, parts, group).await,
        Err(err) => return Err(err),
    };
    let mut values = values.into_iter();
    let mut replies = Vec::with_capacity(group.len());
    for (&index, count) in group.iter().zip(counts) {
        let reply = match &parts[index].1 {
            Command::One(_) => values.next(),
            _ => Some(Value::Array(values.by_ref().take(count).collect())),
        };
        let Some(reply) =
            reply.filter(|reply| count == 1 || matches!(reply, Value::Array(part) if part.len() == count))
        else {
            return Err(RedisError::from(std::io::Error::other("a node answered a pipeline with too few replies")));
        };
        replies.push((reply, false));
    }
    Ok(replies)
}

/// Sends every part of `group` on its own, all at once, through redis-rs's normal routing (which
/// follows redirects one command at a time, with its refreshed slot map).
async fn send_each(
    connection: &ClusterConnection,
    parts: &[(Slot, Command)],
    group: &[usize],
) -> RedisResult<Vec<(Value, bool)>> {
    let alone = group.iter().map(|&index| {
        let mut connection = connection.clone();
        async move { send_alone(&mut connection, &parts[index].1).await.map(|reply| (reply, true)) }
    });
    futures_util::future::join_all(alone).await.into_iter().collect()
}

/// Sends a part on its own, routed by redis-rs (which follows `MOVED` and `ASK`). An error reply
/// stays a value ([`Value::ServerError`]), as in a pipeline, for the parser.
async fn send_alone(connection: &mut ClusterConnection, command: &Command) -> RedisResult<Value> {
    use redis::aio::ConnectionLike as _;
    match command {
        Command::One(cmd) => connection.req_packed_command(cmd).await,
        Command::Pipeline(pipeline) => pipeline.query_async(connection).await,
        _ => Err(RedisError::from(std::io::Error::other("a per-slot part of another kind"))),
    }
}

/// Adds `command`'s commands to `pipeline`; how many.
fn append(pipeline: &mut redis::Pipeline, command: &Command) -> usize {
    match command {
        Command::One(cmd) => {
            pipeline.add_command(cmd.clone());
            1
        }
        Command::Pipeline(inner) => {
            for cmd in inner.cmd_iter() {
                pipeline.add_command(cmd.clone());
            }
            inner.len()
        }
        // Parts are single commands or pipelines (`Ops::per_slot`); anything else is sent on
        // its own, and so never appended.
        _ => 0,
    }
}

/// Whether a failed pipeline failed for where its commands went (a redirect it could not
/// follow as a whole, a slot in migration, a cluster changing its mind), not for a node down.
fn is_cluster_state(err: &RedisError) -> bool {
    matches!(
        err.kind(),
        redis::ErrorKind::Server(
            ServerErrorKind::Moved | ServerErrorKind::Ask | ServerErrorKind::TryAgain | ServerErrorKind::ClusterDown
        )
    )
}

/// Whether a reply says its command went to a node that does not serve its slot now (`MOVED`,
/// `ASK`) or cannot now (`TRYAGAIN`, `CLUSTERDOWN`): the owners are out of date.
fn is_redirect(reply: &Value) -> bool {
    match reply {
        Value::ServerError(err) => matches!(
            err.kind(),
            Some(
                ServerErrorKind::Moved
                    | ServerErrorKind::Ask
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
            )
        ),
        Value::Array(replies) => replies.iter().any(is_redirect),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn range(first: i64, last: i64, host: &str, port: i64, id: &str) -> Value {
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            Value::Array(vec![bulk(host), Value::Int(port), bulk(id)]),
        ])
    }

    #[test]
    fn ranges_of_one_master_share_an_owner() {
        let reply = Value::Array(vec![
            range(0, 5000, "127.0.0.1", 7000, "a"),
            range(5001, 10000, "127.0.0.1", 7001, "b"),
            range(10001, 16383, "127.0.0.1", 7000, "a"),
        ]);
        let owners = SlotOwners::parse(reply).expect("a well-formed reply");
        let of = |slot| owners.owner(Slot::new(slot).expect("a slot"));
        assert_eq!(of(0), of(16383));
        assert_ne!(of(0), of(5001));
        assert!(of(7000).is_some());
    }

    #[test]
    fn a_slot_no_range_covers_has_no_owner() {
        let owners = SlotOwners::parse(Value::Array(vec![range(0, 100, "h", 1, "a")])).expect("well formed");
        assert_eq!(owners.owner(Slot::new(101).expect("a slot")), None);
    }

    #[test]
    fn replies_of_other_shapes_are_errors_not_panics() {
        assert!(SlotOwners::parse(Value::Nil).is_err());
        assert!(SlotOwners::parse(Value::Array(vec![Value::Int(1)])).is_err());
        assert!(SlotOwners::parse(Value::Array(vec![range(5, 1, "h", 1, "a")])).is_err());
        assert!(SlotOwners::parse(Value::Array(vec![range(0, 16384, "h", 1, "a")])).is_err());
        assert!(SlotOwners::parse(Value::Array(vec![range(-1, 2, "h", 1, "a")])).is_err());
    }

    #[test]
    fn a_master_without_an_id_is_told_apart_by_its_address() {
        let no_id = |first, last, port| {
            Value::Array(vec![
                Value::Int(first),
                Value::Int(last),
                Value::Array(vec![bulk("127.0.0.1"), Value::Int(port)]),
            ])
        };
        let owners = SlotOwners::parse(Value::Array(vec![no_id(0, 10, 7000), no_id(11, 20, 7001)])).expect("ok");
        let of = |slot| owners.owner(Slot::new(slot).expect("a slot"));
        assert_ne!(of(0), of(11));
    }

    #[test]
    fn redirects_and_transient_errors_say_the_owners_are_out_of_date_others_do_not() {
        let error = |text: &str| match redis::parse_redis_value(format!("-{text}\r\n").as_bytes()) {
            Ok(value) => value,
            Err(err) => panic!("{err}"),
        };
        assert!(is_redirect(&error("MOVED 3999 127.0.0.1:6381")));
        assert!(is_redirect(&error("ASK 3999 127.0.0.1:6381")));
        assert!(is_redirect(&error("TRYAGAIN Multiple keys request during rehashing of slot")));
        assert!(is_redirect(&Value::Array(vec![bulk("v"), error("MOVED 1 127.0.0.1:1")])));
        assert!(!is_redirect(&error("ERR wrong number of arguments")));
        assert!(!is_redirect(&error("NOSCRIPT No matching script")));
        assert!(!is_redirect(&bulk("value")));
    }
}
