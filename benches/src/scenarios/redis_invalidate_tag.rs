//! `redis/invalidate-tag`: `invalidate_tag` of a tag covering [`TAGGED`] entries (10,000, in
//! both modes: the size the bar is stated for) in a memory-over-Redis tower, against
//! `delete_many` of the same keys, the call a user without tags would write; how soon another
//! instance's memory layer follows; and what a hit on an untagged entry costs once tags are in
//! use. Modelled on `redis/clear` (whose helpers it uses). The bars:
//!
//! * "`invalidate_tag` covering 10,000 entries: ≤ 2 round trips";
//! * "every instance's memory layer misses them within 2 ms p99";
//! * "a hit on an untagged entry costs what it costs today (≤ 1.05x in the same run)".
//!
//! What runs, in order:
//!
//! * **Untagged memory hit** (no Redis needed: it runs even when the Redis part is skipped).
//!   Two memory-only towers (FIFO, bound [`HIT_BOUND`]) each hold the 10,000 users (untagged)
//!   and 10,000 more entries `item:<n>`: in one, written with `set_with` under two tags each
//!   (`tenant:<n % 100>` and [`TAG`]; one tenant then invalidated and written again), in the
//!   other, untagged (a tower that never saw a tag). `get` of a user, interleaved as every
//!   memory scenario is.
//! * **The namespace** [`NAMESPACE`] holds the users (untagged, one `mset`) and the entries
//!   `item:<n>` under [`TAG`], written once with `set_with` in a loop while the tag has no
//!   record (version 0). `invalidate_tag` writes a new version into the tag's record and removes
//!   the entries from the memory layer; the Redis copies stay (a miss by their version). So every
//!   timed call covers 10,000 live entries without writing one again: before each call
//!   (untimed), a `DEL` of the record moves the tag back to version 0, where the entries are,
//!   the tower's listener follows (it forgets the version and removes the tag's entries from the
//!   memory layer: waited for), and one `mget` of the 10,000 keys reads them back into the
//!   memory layer (every one found in Redis and current; their tags come with them).
//! * **The peer**, a tower of the same shape on [`PEER_NAMESPACE`] holding the users and the same
//!   10,000 keys untagged (one `mset` before each call, untimed), calls `delete_many` of the
//!   keys (one `UNLINK`, and the memory layer's deletes). Ours and the peer are sampled in the
//!   same rounds, one call each per round, the order rotating (the harness's `per_op_with_setup`
//!   over one index).
//! * **Untagged Redis hit**: `get` of a user that misses the memory layer (deleted from it
//!   first, untimed) and is found in Redis, in our namespace (10,000 tagged entries, in Redis and
//!   in the memory layer) against the same in the peer's (no entry there has a tags header).
//! * **Another instance**: a second tower (its own memory layer over its own Redis adapter, same
//!   namespace, subscribed) holds copies of the 10,000 tagged entries and of the 10,000 users in
//!   its memory layer (planted straight into it, as the first tower's); after each of
//!   [`Settings::followed_invalidations`] invalidations by the first tower, a watcher thread
//!   stamps the moment the second memory layer misses the tagged copies (three of them read,
//!   first, middle and last: the memory layer marks a tag invalidated in one step, so all miss
//!   together), which the bar is held to; then the runner checks that only the users are left
//!   once the layer has reclaimed what it hid (`len()` reclaims), each removal told to its
//!   `on_removal` listener as `Invalidated`.
//! * **Costs** are counted through the relay, outside the timed runs, each contender with only
//!   its own clients alive: [`COUNTED_CALLS`] calls of the call alone (listener off), of the
//!   call with the listener on, and of `delete_many` of the keys, and `COUNTED_OPS` of each
//!   untagged Redis hit. The resets (the record's `DEL`, the peer's `mset`) go through
//!   connections that bypass the relay; the entries are planted straight into the counted
//!   towers' memory layers.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_tower::adapter::{CacheAdapter, Entry, EvictionPolicy, RemovalCause, StoredValue};
use cache_tower::{CacheTower, LoadOptions, MemoryAdapter};

use super::caches::{self, BOUND};
use super::redis_clear::{
    FOLLOW_WITHIN, Followed, GIVE_UP, LISTENER_STOP, ROUND_TRIPS_BAR, gone_within, round_trips, round_trips_verdict,
    subscribed, thousands, tower_of, warm,
};
use super::redis_support::{self, COUNTED_OPS, Counter, Failures, Raw, namespaced_layer, warn};
use super::staleness::{percentile, sorted};
use super::{BoxResult, Measured, Scenario, measure_micros_per_op, measure_ns_per_op, versus};
use crate::data::{Dataset, User};
use crate::harness::{Contender, Settings};
use crate::report::{Outcome, Row, Trips};
use crate::services::{Redis, Services};

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "redis/invalidate-tag", run };

/// The namespace of our towers.
const NAMESPACE: &str = "bench-tag:";

/// The namespace of the peer's towers (`delete_many`, and the header-free Redis hit).
const PEER_NAMESPACE: &str = "bench-tag-peer:";

/// The tag invalidated.
const TAG: &str = "tenant:1";

/// Entries carrying [`TAG`]: the size the bar is stated for, in both modes.
const TAGGED: usize = 10_000;

/// Calls per counted contender (each needs its 10,000 entries back first).
const COUNTED_CALLS: usize = 50;

/// A key no tower reads, planted (tagged) in a memory layer to see its listener follow the tag.
const SENTINEL: &str = "\u{0}bench-tag:sentinel";

/// How long a memory layer must keep what it was given before a timed call: no late news of an
/// earlier change of the tag (or of the peer's own writes) is on its way.
const SETTLE: Duration = Duration::from_millis(5);

/// Times a reset is tried again when late news took entries from the memory layer.
const READY_TRIES: usize = 20;

/// The bar of another instance's p99.
const FOLLOW_BAR: Duration = Duration::from_millis(2);

/// The bar of an untagged hit: ours / the tower that never saw a tag.
const HIT_RATIO_BAR: f64 = 1.05;

/// The bound of both towers of the untagged memory hit: the users and the 10,000 entries, with
/// the same room to spare as [`BOUND`] gives the users alone.
const HIT_BOUND: usize = 2 * BOUND;

/// Tenants of the tagged tower of the untagged memory hit (each entry carries one, and [`TAG`]).
const HIT_TENANTS: usize = 100;

/// The key of tagged entry number `n`.
fn item(n: usize) -> String {
    format!("item:{n}")
}

/// The Redis key of [`TAG`]'s record in [`NAMESPACE`].
fn record() -> String {
    format!("{NAMESPACE}\0tag\0{TAG}")
}

/// Puts `key` into `memory` with `value`, tagged with [`TAG`], bypassing any tower.
fn plant_tagged(memory: &MemoryAdapter, key: &str, value: u64) -> cache_tower::Result<()> {
    memory.set(key, &Entry::new(StoredValue::new(value).with_tags([TAG]), None))
}

/// The 10,000 entries as `(key, value)` pairs for an `mset`.
fn items_with_values(items: &[String]) -> impl Iterator<Item = (&str, u64)> {
    items.iter().zip(0u64..).map(|(key, n)| (key.as_str(), n))
}

/// `met` or `MISSED`.
fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

// ===== the untagged memory hit =====

/// The row of the untagged memory-layer hit, tagged tower against the tower that never saw a
/// tag, and its verdict note.
fn memory_hit(data: &Dataset, settings: &Settings, notes: &mut Vec<String>) -> BoxResult<Vec<Row>> {
    let plain_memory = caches::memory(HIT_BOUND, EvictionPolicy::Fifo);
    let plain = caches::tower(plain_memory.clone(), data, notes)?;
    let tagged_memory = caches::memory(HIT_BOUND, EvictionPolicy::Fifo);
    let tagged = caches::tower(tagged_memory.clone(), data, notes)?;
    let tenant = |n: usize| format!("tenant:{}", n % HIT_TENANTS);
    let write_tagged =
        |n: usize| tagged.set_with(&item(n), n as u64, &LoadOptions::new().tags([tenant(n), TAG.to_string()]));
    for n in 0..TAGGED {
        plain.set(&item(n), n as u64)?;
        write_tagged(n)?;
    }
    // A tower that has used its index, not only filled it.
    tagged.invalidate_tag(&tenant(0))?;
    for n in (0..TAGGED).step_by(HIT_TENANTS) {
        write_tagged(n)?;
    }
    let held = TAGGED + data.keys.len();
    let carries = |n: usize| tagged_memory.get(&item(n)).ok().flatten().is_some_and(|entry| entry.value().has_tag(TAG));
    if plain_memory.len() != held || tagged_memory.len() != held || !carries(0) || !carries(TAGGED - 1) {
        warn(
            notes,
            format!(
                "warning: {}: the memory towers hold {} and {} entries (not {held}), or the tagged one lost a tag",
                SCENARIO.id,
                tagged_memory.len(),
                plain_memory.len()
            ),
        );
    }
    let keys = &data.keys;
    let contenders = [
        Contender::per_op(
            format!(
                "cache-tower `get` of an untagged entry, the memory layer also holding {} tagged entries",
                thousands(TAGGED)
            ),
            |i| {
                black_box(tagged.get::<User>(&keys[i]));
            },
        ),
        Contender::per_op(
            format!(
                "cache-tower `get` of the same entry in a tower that never saw a tag (the same {} entries untagged)",
                thousands(TAGGED)
            ),
            |i| {
                black_box(plain.get::<User>(&keys[i]));
            },
        ),
    ];
    let measured = measure_ns_per_op(&contenders, data, settings);
    let rows = versus(
        &format!(
            "get hit of an untagged entry, 1 thread, FIFO, bound {} entries, holding {} untagged + {} tagged entries \
             (ns/op, lower is better)",
            thousands(HIT_BOUND),
            thousands(keys.len()),
            thousands(TAGGED)
        ),
        &measured[0],
        &measured[1..],
    );
    notes.push(hit_verdict(
        "the memory-layer hit of an untagged entry in a tower whose memory layer holds tagged entries, against the \
         same hit in a tower that never saw a tag",
        &measured[0],
        &measured[1],
    ));
    Ok(rows)
}

/// The note of an untagged hit's bar (≤ [`HIT_RATIO_BAR`]). `ours` and `peer` were sampled in
/// the same rounds, back to back: the verdict is on the median of the per-round ratios, which a
/// burst of noise from the machine moves far less than it moves either median (and so the ratio
/// of the medians, the table's ratio, also given).
fn hit_verdict(what: &str, ours: &Measured, peer: &Measured) -> String {
    let per_round = ours.samples.ratios(&peer.samples);
    let (median, (p10, p90)) = (per_round.median(), per_round.p10_p90());
    format!(
        "{}: {what}: {median:.2}x (the median of the per-round ratios; p10–p90 {p10:.2}–{p90:.2}; the ratio of the \
         medians, as in the table: {:.2}x, {} against {}) against the bar of ≤ {HIT_RATIO_BAR:.2}x in the same run: \
         {}.",
        SCENARIO.id,
        ours.figure.value() / peer.figure.value(),
        ours.figure,
        peer.figure,
        verdict(median <= HIT_RATIO_BAR)
    )
}

// ===== the tag's entries in Redis =====

/// The tag's record and the tagged keys, through the setup's own connection (never through the
/// relay).
struct Tagged {
    con: Raw,
    items: Vec<String>,
}

impl Tagged {
    /// Moves [`TAG`] back to version 0, where the entries are (`DEL` of its record), and waits
    /// until the listener of each tower whose memory layer is in `followers` has followed
    /// (removed the tag's entries from that memory layer).
    fn back_to_live(&self, followers: &[&MemoryAdapter]) -> BoxResult<()> {
        for memory in followers {
            plant_tagged(memory, SENTINEL, 0)?;
        }
        let deleted: usize = redis::cmd("DEL").arg(record()).query(&mut *redis_support::lock(&self.con))?;
        if deleted == 0 {
            // Version 0 already: nothing for a listener to follow.
            for memory in followers {
                memory.delete(SENTINEL)?;
            }
            return Ok(());
        }
        for memory in followers {
            if !gone_within(memory, SENTINEL, FOLLOW_WITHIN) {
                return Err(
                    format!("a listener did not follow the tag back to version 0 within {FOLLOW_WITHIN:?}").into()
                );
            }
        }
        Ok(())
    }

    /// Puts the 10,000 entries into `memory`, tagged, bypassing any tower.
    fn plant_all(&self, memory: &MemoryAdapter) -> BoxResult<()> {
        for (n, key) in (0u64..).zip(&self.items) {
            plant_tagged(memory, key, n)?;
        }
        Ok(())
    }

    /// The entries live again ([`back_to_live`](Self::back_to_live)) and put into `memory` by
    /// `fill`, until `memory` holds them and `kept` other entries, [`SETTLE`] later.
    fn ready(
        &self,
        memory: &MemoryAdapter,
        followers: &[&MemoryAdapter],
        kept: usize,
        fill: impl Fn() -> BoxResult<()>,
    ) -> BoxResult<()> {
        for _ in 0..READY_TRIES {
            self.back_to_live(followers)?;
            fill()?;
            std::thread::sleep(SETTLE);
            if memory.len() == kept + self.items.len() {
                return Ok(());
            }
        }
        Err(format!("the memory layer kept losing the tag's entries before the call ({READY_TRIES} tries)").into())
    }
}

/// `peer`'s memory layer (and Redis) given the 10,000 keys again, untagged (one `mset`), until
/// `memory` holds them and `kept` other entries, [`SETTLE`] later.
fn ready_peer(peer: &CacheTower, memory: &MemoryAdapter, items: &[String], kept: usize) -> BoxResult<()> {
    for _ in 0..READY_TRIES {
        peer.mset(items_with_values(items))?;
        std::thread::sleep(SETTLE);
        if memory.len() == kept + items.len() {
            return Ok(());
        }
    }
    Err(format!("the peer's memory layer kept losing its entries before the call ({READY_TRIES} tries)").into())
}

/// After a call that must have removed the 10,000 entries: what is wrong, unless `memory` holds
/// only the `kept` users, a user is still there, and the first and last entries miss through
/// `tower` (both layers).
fn not_removed(
    tower: &CacheTower,
    memory: &MemoryAdapter,
    items: &[String],
    kept: usize,
    user: &str,
) -> Option<String> {
    let held = memory.len();
    if held != kept {
        Some(format!("the memory layer held {held} entries afterwards, not {kept}"))
    } else if !memory.exists(user).unwrap_or(false) {
        Some("a user was gone from the memory layer afterwards".to_string())
    } else if tower.get::<u64>(&items[0]).is_some() || tower.get::<u64>(&items[items.len() - 1]).is_some() {
        Some("an entry was still readable afterwards".to_string())
    } else {
        None
    }
}

/// The timed rounds: `invalidate_tag` against `delete_many`, one call of each per round.
struct Timed<'a> {
    tagged: &'a Tagged,
    tower: &'a CacheTower,
    memory: &'a MemoryAdapter,
    peer: &'a CacheTower,
    peer_memory: &'a MemoryAdapter,
    /// The untagged entries each memory layer keeps (the users), and one of them.
    kept: usize,
    user: &'a str,
    /// A call whose outcome is still to be checked (ours, the peer's).
    pending: [AtomicBool; 2],
    /// What went wrong with calls that did not start from, or did not leave, the state they
    /// should (ours, the peer's).
    problems: Mutex<Vec<String>>,
}

impl Timed<'_> {
    fn check_pending(&self) {
        let sides = [("ours", self.tower, self.memory), ("the peer's", self.peer, self.peer_memory)];
        for (side, (name, tower, memory)) in sides.into_iter().enumerate() {
            if !self.pending[side].swap(false, Ordering::Relaxed) {
                continue;
            }
            if let Some(problem) = not_removed(tower, memory, &self.tagged.items, self.kept, self.user) {
                caches::lock(&self.problems).push(format!("{name}: {problem}"));
            }
        }
    }

    fn failed(&self, name: &str, result: BoxResult<()>) {
        if let Err(err) = result {
            caches::lock(&self.problems).push(format!("{name}: {err}"));
        }
    }

    fn contenders(&self) -> Vec<Contender<'_>> {
        vec![
            Contender::per_op_with_setup(
                format!("cache-tower `invalidate_tag` of a tag covering {} entries", thousands(TAGGED)),
                |_| {
                    self.check_pending();
                    let read_back = || warm(self.tower, &self.tagged.items);
                    self.failed("ours", self.tagged.ready(self.memory, &[self.memory], self.kept, read_back));
                },
                |_| {
                    self.failed("ours", self.tower.invalidate_tag(TAG).map_err(Into::into));
                    self.pending[0].store(true, Ordering::Relaxed);
                },
            ),
            Contender::per_op_with_setup(
                format!(
                    "cache-tower `delete_many` of the same {} keys (untagged, in a namespace of their own; one \
                     `UNLINK` and the memory layer's deletes), what a user without tags writes",
                    thousands(TAGGED)
                ),
                |_| {
                    self.check_pending();
                    self.failed("the peer's", ready_peer(self.peer, self.peer_memory, &self.tagged.items, self.kept));
                },
                |_| {
                    self.failed("the peer's", self.peer.delete_many(&self.tagged.items).map_err(Into::into));
                    self.pending[1].store(true, Ordering::Relaxed);
                },
            ),
        ]
    }
}

/// The name of the untagged Redis hit through our tower (`ours`) or the peer's.
fn redis_hit_name(ours: bool) -> String {
    if ours {
        format!(
            "cache-tower `get` of an untagged entry, memory miss, Redis hit, backfill; the namespace and the memory \
             layer also holding {} tagged entries",
            thousands(TAGGED)
        )
    } else {
        "cache-tower `get` of the same entry in a namespace without tags headers (the peer's)".to_string()
    }
}

/// The untagged Redis hit (memory miss, Redis hit, backfill) through `tower`, whose memory layer
/// is `memory`: the key is deleted from it first, untimed.
fn redis_hit<'a>(
    name: String,
    data: &'a Dataset,
    tower: &'a CacheTower,
    memory: &'a MemoryAdapter,
    failures: &'a Failures,
) -> Contender<'a> {
    let keys = &data.keys;
    Contender::per_op_with_setup(
        name,
        move |i| {
            if memory.delete(&keys[i]).is_err() {
                failures.add();
            }
        },
        move |i| {
            if black_box(tower.get::<User>(&keys[i])).is_none() {
                failures.add();
            }
        },
    )
}

// ===== another instance =====

/// `calls` invalidations by `tower` (its memory layer holding the 10,000 entries), with a second
/// tower (its own memory layer and Redis adapter) holding copies of them and of the users: when
/// the second memory layer missed the copies, and how long each call took, µs.
fn follow_invalidations(
    tagged: &Tagged,
    url: &str,
    data: &Dataset,
    tower: &CacheTower,
    memory: &MemoryAdapter,
    calls: usize,
) -> BoxResult<(Followed, Vec<f64>)> {
    // Counts the entries the second instance's memory layer reclaims.
    let invalidated = Arc::new(AtomicUsize::new(0));
    let heard = Arc::clone(&invalidated);
    let other_memory = MemoryAdapter::builder()
        .on_removal(move |_, cause| {
            if cause == RemovalCause::Invalidated {
                heard.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build();
    let other = subscribed(&other_memory, namespaced_layer(url, NAMESPACE, true)?)?;
    for (key, user) in data.keys.iter().zip(&data.users) {
        other_memory.set(key, &Entry::new(StoredValue::new(user.clone()), None))?;
    }
    let probes: Vec<String> = [0, TAGGED / 2, TAGGED - 1].into_iter().map(item).collect();
    let kept = data.keys.len();
    let mut missed = Followed::new(calls);
    let mut took = Vec::with_capacity(calls);
    for _ in 0..calls {
        tagged.back_to_live(&[memory, &other_memory])?;
        // The copies, kept 1 ms: no late news of the reset is on its way.
        let mut tries = 0;
        loop {
            tagged.plant_all(memory)?;
            tagged.plant_all(&other_memory)?;
            std::thread::sleep(Duration::from_millis(1));
            if other_memory.len() == kept + TAGGED && memory.len() == kept + TAGGED {
                break;
            }
            tries += 1;
            if tries == 100 {
                return Err("the memory layers keep losing their copies before the invalidation".into());
            }
        }
        invalidated.store(0, Ordering::Relaxed);
        let watching = AtomicBool::new(true);
        let (called, returned, missed_at) = std::thread::scope(|scope| {
            // Reads the probes until all miss (a `yield_now` between looks).
            let watcher = scope.spawn(|| {
                while watching.load(Ordering::Acquire) {
                    if probes.iter().all(|key| other_memory.get_value(key).is_ok_and(|value| value.is_none())) {
                        return Some(Instant::now());
                    }
                    std::thread::sleep(Duration::from_micros(20));
                }
                None
            });
            let called = Instant::now();
            let result = tower.invalidate_tag(TAG);
            let returned = Instant::now();
            let give_up = returned + GIVE_UP;
            while !watcher.is_finished() && Instant::now() < give_up {
                std::thread::yield_now();
            }
            watching.store(false, Ordering::Release);
            let missed_at = watcher.join().ok().flatten();
            result.map(|()| (called, returned, missed_at))
        })?;
        took.push(returned.duration_since(called).as_secs_f64() * 1e6);
        missed.record_stamped(called, returned, || missed_at);
        // `len()` reclaims what the invalidation hid.
        if other_memory.len() != kept || !memory.exists(&data.keys[0])? {
            return Err("an invalidation left tagged copies, or took untagged ones".into());
        }
        if invalidated.load(Ordering::Relaxed) != TAGGED {
            return Err("the second memory layer did not reclaim every invalidated copy".into());
        }
    }
    if other.get::<u64>(&item(0)).is_some() {
        return Err("the second instance still reads an invalidated entry from Redis".into());
    }
    if data.keys.iter().any(|key| !other_memory.exists(key).unwrap_or(false)) {
        return Err("the second instance lost untagged entries to the invalidations".into());
    }
    Ok((missed, took))
}

/// The markdown section of the second instance's figures; `calls`: how long each of the first
/// tower's calls took, µs.
fn followed_section(followed: &Followed, calls: &[f64]) -> String {
    let mut section = format!(
        "### Another instance follows an invalidation (`{}`)\n\n\
         Two towers in this process on this run's redis-server over loopback, each a memory layer \
         (`MemoryAdapter`, unbounded) over a Redis adapter of its own on namespace `{NAMESPACE}` (invalidation on, \
         both listeners subscribed). Before each invalidation, the tag `{TAG}` is back at the version its {} \
         entries in Redis were written with (see the notes), and both memory layers hold copies of those entries, \
         tagged, and of the {} users, untagged (planted straight into them, kept 1 ms). The first tower calls \
         `invalidate_tag(\"{TAG}\")` (the layers are written bottom up: one `SET` of the tag's record, then its own \
         memory layer marks the tag invalidated: from then on every copy carrying it misses, and the layer \
         reclaims them as it is used); the second tower's listener hears the record change (client tracking), \
         forgets the version and marks the tag invalidated in its memory layer, on the listener's thread. A \
         watcher thread reads three of the tagged copies (first, middle, last) from the second memory layer, \
         sleeping 20 µs between looks, and stamps the moment all three miss. Afterwards the runner has the layer \
         reclaim what it hid (`len()`) and checks that it holds exactly the users and that its `on_removal` \
         listener heard the {} copies removed as `Invalidated`. A stamp before the call returned counts 0 µs \
         from the return. Copies still there after {} s count as {} s. The first tower's call itself took {} \
         (p50 / p99 / max), its own memory layer's marking of the {} entries included: its own memory layer \
         misses them when it returns.\n\n",
        SCENARIO.id,
        thousands(TAGGED),
        thousands(crate::data::ENTRIES),
        thousands(TAGGED),
        GIVE_UP.as_secs(),
        GIVE_UP.as_secs(),
        spread(calls),
        thousands(TAGGED)
    );
    section.push_str(&followed.table("`invalidate_tag`", "invalidations"));
    section
}

/// `p50 / p99 / max` of `micros`.
fn spread(micros: &[f64]) -> String {
    let sorted = sorted(micros);
    format!(
        "{:.0} / {:.0} / {:.0} µs",
        percentile(&sorted, 50.0),
        percentile(&sorted, 99.0),
        sorted.last().copied().unwrap_or(f64::NAN)
    )
}

/// The verdict note of the second instance against [`FOLLOW_BAR`].
fn followed_verdict(followed: &Followed) -> String {
    let p99 = |micros: &[f64]| percentile(&sorted(micros), 99.0);
    let (from_call, from_return) = (p99(&followed.since_call), p99(&followed.since_return));
    let bar = FOLLOW_BAR.as_secs_f64() * 1e6;
    format!(
        "{}: another instance's memory layer misses the {} entries {from_call:.0} µs p99 after `invalidate_tag` is \
         called ({from_return:.0} µs after it returns; {} invalidations, {} timeouts), against the bar of {} ms \
         p99: {} from the call, {} from its return (see the section below).",
        SCENARIO.id,
        thousands(TAGGED),
        followed.since_call.len(),
        followed.timeouts,
        FOLLOW_BAR.as_millis(),
        verdict(from_call <= bar),
        verdict(from_return <= bar)
    )
}

// ===== costs =====

/// The cost counts, through the relay: the call alone (the bar), with the listener on,
/// `delete_many`, and the two untagged Redis hits. The resets bypass the relay.
fn count(redis: &Redis, data: &Dataset, tagged: &Tagged, notes: &mut Vec<String>) -> BoxResult<Vec<Trips>> {
    let mut counter = Counter::new(redis, true)?;
    let relayed = counter.url().to_string();
    let indices = redis_support::indices(data, COUNTED_CALLS);
    let entries = thousands(TAGGED);
    let calls = indices.len();
    let failures = Failures::default();
    let failed = |result: BoxResult<()>| {
        if result.is_err() {
            failures.add();
        }
    };
    let invalidate = |tower: &CacheTower| failed(tower.invalidate_tag(TAG).map_err(Into::into));
    let mut trips = Vec::new();

    // The call alone: listener off; before each call the entries live again in Redis (the
    // record's `DEL` on the setup's connection, which bypasses the relay) and in the memory layer
    // (planted straight into it: what it holds costs Redis nothing).
    {
        let memory = MemoryAdapter::new();
        let tower = tower_of(&memory, namespaced_layer(&relayed, NAMESPACE, false)?);
        let alone = Contender::per_op_with_setup(
            format!(
                "cache-tower `invalidate_tag` of a tag covering {entries} entries, memory over Redis, invalidation \
                 listener off (the call alone), {calls} calls; before each, `DEL` of the tag's record on a \
                 connection that bypasses the relay (the server counts its `del`) and the entries planted into the \
                 memory layer"
            ),
            |_| failed(tagged.ready(&memory, &[], 0, || tagged.plant_all(&memory))),
            |_| invalidate(&tower),
        );
        let mut counted = counter.count(SCENARIO.id, &alone, indices)?;
        counted.contender = format!(
            "{} (bar ≤ {ROUND_TRIPS_BAR:.0} round trips/op: {})",
            counted.contender,
            round_trips_verdict(&counted)
        );
        trips.push(counted);
    }

    // With the listener on, as timed: it hears the record change (its own `SET`, and the reset's
    // `DEL`) and forgets the version, reading nothing.
    {
        let memory = MemoryAdapter::new();
        let tower = subscribed(&memory, namespaced_layer(&relayed, NAMESPACE, true)?)?;
        let listening = Contender::per_op_with_setup(
            format!(
                "cache-tower `invalidate_tag`, invalidation listener on (as timed), {calls} calls, the same reset \
                 before each (the listener's following of the reset's `DEL` is counted too)"
            ),
            |_| failed(tagged.ready(&memory, &[&memory], 0, || tagged.plant_all(&memory))),
            |_| invalidate(&tower),
        );
        trips.push(counter.count(SCENARIO.id, &listening, indices)?);
    }
    std::thread::sleep(LISTENER_STOP);

    // `delete_many` of the same keys, written again (untagged) before each call through a tower
    // on the same memory layer that bypasses the relay.
    {
        let memory = MemoryAdapter::new();
        let tower = tower_of(&memory, namespaced_layer(&relayed, PEER_NAMESPACE, false)?);
        let writer = tower_of(&memory, namespaced_layer(&redis.url, PEER_NAMESPACE, false)?);
        let delete = Contender::per_op_with_setup(
            format!(
                "cache-tower `delete_many` of the same {entries} keys (untagged), listener off, {calls} calls; before \
                 each, an `mset` of them on a connection that bypasses the relay (the server counts its script's \
                 `set`s)"
            ),
            |_| failed(ready_peer(&writer, &memory, &tagged.items, 0)),
            |_| failed(tower.delete_many(&tagged.items).map_err(Into::into)),
        );
        trips.push(counter.count(SCENARIO.id, &delete, indices)?);
    }

    // The untagged Redis hits, each tower alone (listener on, as timed).
    let hit_indices = redis_support::indices(data, COUNTED_OPS);
    for namespace in [NAMESPACE, PEER_NAMESPACE] {
        let memory = MemoryAdapter::new();
        let tower = subscribed(&memory, namespaced_layer(&relayed, namespace, true)?)?;
        let contender = redis_hit(redis_hit_name(namespace == NAMESPACE), data, &tower, &memory, &failures);
        trips.push(counter.count(SCENARIO.id, &contender, hit_indices)?);
        drop(contender);
        drop(tower);
        std::thread::sleep(LISTENER_STOP);
    }
    failures.report(&format!("{} (cost count)", SCENARIO.id), notes);
    Ok(trips)
}

// ===== the run =====

fn run(data: &Dataset, settings: &Settings, services: &Services) -> BoxResult<Outcome> {
    let mut notes = Vec::new();
    let mut rows = memory_hit(data, settings, &mut notes)?;
    let redis = match services.redis() {
        Ok(redis) => redis,
        Err(reason) => {
            let mut outcome = redis_support::skipped(SCENARIO.id, reason);
            outcome.rows = rows;
            outcome.notes.extend(notes);
            return Ok(outcome);
        }
    };
    let tagged = Tagged { con: redis_support::raw(&redis.url)?, items: (0..TAGGED).map(item).collect() };
    let empty_namespaces = || -> BoxResult<()> {
        for namespace in [NAMESPACE, PEER_NAMESPACE] {
            let tower = CacheTower::new();
            tower.add_layer(namespaced_layer(&redis.url, namespace, false)?);
            tower.flush()?;
        }
        redis::cmd("DEL").arg(record()).query::<()>(&mut *redis_support::lock(&tagged.con))?;
        Ok(())
    };
    // Whatever an earlier run left there.
    empty_namespaces()?;
    let users = || data.keys.iter().map(String::as_str).zip(data.users.iter().cloned());
    let kept = data.keys.len();

    // Ours: the users, then the tagged entries with `set_with` (the tag has no record: version 0).
    let memory = MemoryAdapter::new();
    let tower = subscribed(&memory, namespaced_layer(&redis.url, NAMESPACE, true)?)?;
    tower.mset(users())?;
    let started = Instant::now();
    let options = LoadOptions::new().tags([TAG]);
    for (key, n) in items_with_values(&tagged.items) {
        tower.set_with(key, n, &options)?;
    }
    let written = started.elapsed();
    eprintln!("  wrote {} tagged entries with `set_with` in {:.2} s", thousands(TAGGED), written.as_secs_f64());
    if memory.len() != kept + TAGGED {
        return Err(
            format!("the memory layer holds {} entries after the writes, not {}", memory.len(), kept + TAGGED).into()
        );
    }
    // The peer: the users (its 10,000 keys are written before each call).
    let peer_memory = MemoryAdapter::new();
    let peer = subscribed(&peer_memory, namespaced_layer(&redis.url, PEER_NAMESPACE, true)?)?;
    peer.mset(users())?;

    let timed = Timed {
        tagged: &tagged,
        tower: &tower,
        memory: &memory,
        peer: &peer,
        peer_memory: &peer_memory,
        kept,
        user: &data.keys[0],
        pending: [AtomicBool::new(false), AtomicBool::new(false)],
        problems: Mutex::default(),
    };
    let measured = measure_micros_per_op(&timed.contenders(), &[0], settings);
    timed.check_pending();
    let problems = caches::lock(&timed.problems).clone();
    if !problems.is_empty() {
        let mut distinct: Vec<&String> = problems.iter().collect();
        distinct.sort();
        distinct.dedup();
        let listed: Vec<&str> = distinct.iter().map(|problem| problem.as_str()).collect();
        warn(
            &mut notes,
            format!(
                "warning: {}: {} timed calls did not start with their {} entries in memory, failed, or did not leave \
                 the state they should ({}); their figures are included",
                SCENARIO.id,
                problems.len(),
                thousands(TAGGED),
                listed.join("; ")
            ),
        );
    }
    let (ours, delete_many) = (&measured[0], &measured[1]);

    // The untagged Redis hit: ours with the tagged entries in Redis and in memory again.
    tagged.ready(&memory, &[&memory], kept, || warm(&tower, &tagged.items))?;
    ready_peer(&peer, &peer_memory, &tagged.items, kept)?;
    let failures = Failures::default();
    let hit_contenders = [
        redis_hit(redis_hit_name(true), data, &tower, &memory, &failures),
        redis_hit(redis_hit_name(false), data, &peer, &peer_memory, &failures),
    ];
    let hits =
        measure_micros_per_op(&hit_contenders, redis_support::indices(data, redis_support::ops(settings, 1)), settings);
    drop(hit_contenders);
    failures.report(&format!("{} (untagged Redis hit)", SCENARIO.id), &mut notes);
    if memory.len() != kept + TAGGED {
        warn(
            &mut notes,
            format!("warning: {}: the tagged entries left the memory layer during the Redis hits", SCENARIO.id),
        );
    }

    eprintln!("  {} invalidations followed by another instance ...", settings.followed_invalidations);
    let (followed, took) =
        follow_invalidations(&tagged, &redis.url, data, &tower, &memory, settings.followed_invalidations)?;
    super::staleness::log_spread(&followed.since_call, followed.timeouts);
    for (name, tower) in [("ours", &tower), ("the peer", &peer)] {
        redis_support::check_tower(&format!("{} ({name})", SCENARIO.id), tower, false, &mut notes);
    }
    // Their listeners would be counted against the counted contenders (the server's side of them).
    drop((tower, peer));
    std::thread::sleep(LISTENER_STOP);

    let trips = count(redis, data, &tagged, &mut notes)?;
    empty_namespaces()?;

    let (alone, listening, deleted) = (&trips[0], &trips[1], &trips[2]);
    notes.push(format!(
        "{}: one `invalidate_tag` of a tag covering {} entries: {} against the bar of ≤ {ROUND_TRIPS_BAR:.0} Redis \
         round trips (the call alone, counted through the relay with the Redis layer's invalidation listener off, \
         the entries live in Redis and in the memory layer before every counted call). With the listener on: {} in \
         all (its health-check `PING`s included; a `del` count above 1.00 is resets tried again, when the \
         listener's news of the previous call came after a reset began). `delete_many` of the same keys: {}.",
        SCENARIO.id,
        thousands(TAGGED),
        round_trips_verdict(alone),
        round_trips(listening),
        round_trips(deleted)
    ));
    let ratios = ours.samples.ratios(&delete_many.samples);
    let (p10, p90) = ratios.p10_p90();
    notes.push(format!(
        "{}: invalidate_tag / delete_many = {:.2}x (per-round p10–p90 {p10:.2}–{p90:.2}): {} against {} per call, \
         medians of {} calls each.",
        SCENARIO.id,
        ours.figure.value() / delete_many.figure.value(),
        ours.figure,
        delete_many.figure,
        settings.samples
    ));
    notes.push(format!(
        "{}: the namespace `{NAMESPACE}` holds the {} users (untagged, one `mset`; they must survive every call, \
         checked) and {} entries `item:<n>` tagged `{TAG}`, written once with `set_with` in a loop ({:.2} s) while \
         the tag had no record (version 0). An invalidation leaves the Redis copies in place (a miss by their \
         version), so each timed call covered {} live entries without writing one again: before it, untimed, a \
         `DEL` of the tag's record `{NAMESPACE}\\0tag\\0{TAG}` moved the tag back to version 0, where the entries \
         are; the tower's invalidation listener followed (it forgot the version and removed the tag's entries from \
         the memory layer; waited for, with a tagged sentinel), one `mget` of the {} keys read them all back into \
         the memory layer (`MemoryAdapter`, unbounded; found in Redis and current, their tags with them), and the \
         layer was left {} ms to settle. Then `invalidate_tag` was timed ({} warm-up calls, then {} samples, the \
         Redis layer's invalidation listener on, the default); afterwards the memory layer held only the users, and \
         reads of the first and last entries missed both layers. The peer: a tower of the same shape on \
         `{PEER_NAMESPACE}` holding the users, the same {} keys written untagged with one `mset` before each call \
         (untimed, the same settling), then `delete_many` of them timed; sampled in the same rounds as ours, the \
         order rotating.",
        SCENARIO.id,
        thousands(kept),
        thousands(TAGGED),
        written.as_secs_f64(),
        thousands(TAGGED),
        thousands(TAGGED),
        SETTLE.as_millis(),
        settings.warmup_rounds,
        settings.samples,
        thousands(TAGGED)
    ));
    rows.extend(versus(
        &format!(
            "Redis `invalidate_tag` of a tag covering {} entries (and {} untagged entries kept), memory over Redis, 1 \
             thread (µs per call, lower is better)",
            thousands(TAGGED),
            thousands(kept)
        ),
        ours,
        std::slice::from_ref(delete_many),
    ));
    let hit_rows = versus(
        &format!(
            "Redis get of an untagged entry, memory miss + backfill, 1 thread, memory unbounded; ours: {} tagged \
             entries in the namespace and the memory layer (µs/op, lower is better)",
            thousands(TAGGED)
        ),
        &hits[0],
        &hits[1..],
    );
    notes.push(hit_verdict(
        "the Redis hit of an untagged entry (memory miss, Redis hit, backfill) in a namespace whose memory layer and \
         Redis hold tagged entries, against the same in a namespace without tags headers",
        &hits[0],
        &hits[1],
    ));
    rows.extend(hit_rows);
    notes.push(followed_verdict(&followed));
    Ok(Outcome { rows, notes, trips, sections: vec![followed_section(&followed, &took)] })
}
