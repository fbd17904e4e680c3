//! `memory/bounded-rss`: a bounded memory layer keeps the process's memory bounded.
//!
//! Each contender runs `Settings::rss_ops` operations (1,000,000; `--quick`: 300,000) on random
//! keys from a space of 10 million (`key:{n}`, SplitMix64), 80% `get_or_set` and 20% `set`, the
//! same keys and the same mix for all. Bounded in entries, each value a 200-byte `String`:
//!
//! * cache-tower: a tower of one `MemoryAdapter` with maxsize 100,000 (`get_or_set`, `set`);
//! * moka: `moka::sync::Cache<String, String>` with max_capacity 100,000 (`get_with`, `insert`);
//! * cache-tower with a TTL of 1 s and maxsize 0 (unbounded): expiry alone must reclaim memory,
//!   with no background thread and no reads of the expired keys. This run is paced to 100,000
//!   operations per second (unpaced, the whole run would fit in the TTL), so about 100,000
//!   entries are alive at any moment once the first second has passed.
//!
//! Bounded in bytes ([`BYTES_BOUND`], 64 MiB), each value a `String` of mixed length: from
//! [`MIN_MIXED`] (16 B) up to [`MAX_MIXED`] (16 KiB), log-uniform (as many values of 16–32 B as of
//! 8–16 KiB; 2.3 KiB on average), drawn from the key's number, so a key always has the same
//! length ([`mixed_value`]):
//!
//! * cache-tower: `MemoryAdapter::builder().max_bytes(BYTES_BOUND)`, no weigher (the built-in
//!   estimate, [`StoredValue::weight`]), FIFO (the default) and S3-FIFO;
//! * moka: a `weigher` and `max_capacity(BYTES_BOUND)` (its default policy, TinyLFU);
//! * quick_cache: `Cache::with_weighter(.., BYTES_BOUND, ..)`.
//!
//! The peers' weighers charge each entry what cache-tower's layer charges it: `key.len() +
//! value.len()` plus [`peer_entry_charge`] (cache-tower's [`ENTRY_OVERHEAD`] plus what the
//! built-in estimate adds to a string's length: the `Arc`, the typed value's allocation and the
//! two quotes of its JSON; 194 bytes). So the three hold about as many entries under the same
//! bound, and their RSS compares what each spends on the same content; whether a peer's own
//! structures cost more or less than that figure shows in its growth over the bound.
//!
//! RSS never shrinks much after memory is freed, so each contender runs in a fresh process of its
//! own (the runner's binary re-executed with `--rss-child <contender> <ops>`, see
//! [`super::child`]), which prints its `VmRSS` and `VmHWM` (from `/proc/self/status`) before
//! building its cache and after every 100,000 operations. The figure is the peak RSS growth:
//! the last `VmHWM` minus the `VmRSS` before the cache was built. For the byte-bounded contenders
//! the report adds that growth divided by the bound, and the overhead: growth − bound.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cache_tower::adapter::{ENTRY_OVERHEAD, EvictionPolicy, StoredValue};
use cache_tower::{CacheTower, MemoryAdapter};

use super::child::Child;
use super::{BoxResult, Scenario};
use crate::data::Dataset;
use crate::harness::Settings;
use crate::report::{Figure, Outcome, Row};
use crate::services::Services;

/// See the module docs.
pub(super) const SCENARIO: Scenario = Scenario { id: "memory/bounded-rss", run };

/// Distinct keys the operations draw from.
const KEY_SPACE: u64 = 10_000_000;
/// The bound of the bounded caches.
const MAXSIZE: usize = 100_000;
/// Bytes of each value.
const VALUE_BYTES: usize = 200;
/// The bound of the byte-bounded caches: 64 MiB.
const BYTES_BOUND: usize = 64 * 1024 * 1024;
/// The shortest mixed value, in bytes.
const MIN_MIXED: usize = 16;
/// The mixed values are shorter than this, in bytes.
const MAX_MIXED: usize = 16 * 1024;
/// Operations between two samples.
const EVERY: usize = 100_000;
/// Operations per second of the TTL contender.
const TTL_PACE: f64 = 100_000.0;
/// MiB, in bytes.
const MIB: f64 = 1024.0 * 1024.0;

/// One contender: as `--rss-child` names it, what the report calls it, and whether its bound is
/// [`BYTES_BOUND`] (else [`MAXSIZE`] entries, or the TTL).
struct Contender {
    id: &'static str,
    name: &'static str,
    bytes: bool,
}

/// The contenders, in the order they run and the section lists them.
const CONTENDERS: [Contender; 7] = [
    Contender { id: "tower", name: "cache-tower, one `MemoryAdapter`, maxsize 100,000", bytes: false },
    Contender { id: "moka", name: "moka 0.12 `sync::Cache`, max_capacity 100,000", bytes: false },
    Contender {
        id: "tower-ttl",
        name: "cache-tower, one `MemoryAdapter`, TTL 1 s, maxsize 0, paced to 100k ops/s",
        bytes: false,
    },
    Contender {
        id: "tower-bytes",
        name: "cache-tower, one `MemoryAdapter`, max_bytes 64 MiB, FIFO, built-in weight",
        bytes: true,
    },
    Contender {
        id: "tower-bytes-s3-fifo",
        name: "cache-tower, one `MemoryAdapter`, max_bytes 64 MiB, S3-FIFO, built-in weight",
        bytes: true,
    },
    Contender { id: "moka-bytes", name: "moka 0.12 `sync::Cache`, weigher, max_capacity 64 MiB", bytes: true },
    Contender { id: "quick-bytes", name: "quick_cache 0.7 `sync::Cache::with_weighter`, 64 MiB", bytes: true },
];
/// Where the contenders the rows name are in [`CONTENDERS`].
const TOWER: usize = 0;
const MOKA: usize = 1;
const TOWER_BYTES: usize = 3;
const TOWER_BYTES_S3_FIFO: usize = 4;
const MOKA_BYTES: usize = 5;
const QUICK_BYTES: usize = 6;

/// One sample of a child: after `ops` operations.
struct Sample {
    ops: usize,
    /// VmRSS, KiB.
    rss_kib: u64,
    /// VmHWM, KiB.
    hwm_kib: u64,
    entries: usize,
    /// What the entries weigh together as the cache charges them (bytes; 0 when the bound is not
    /// in bytes).
    charged: u64,
}

/// What one child reported.
struct Report {
    /// VmRSS before the cache was built, in KiB.
    baseline_kib: u64,
    samples: Vec<Sample>,
    seconds: f64,
}

impl Report {
    fn peak_growth_mib(&self) -> f64 {
        let hwm = self.samples.iter().map(|s| s.hwm_kib).max().unwrap_or(0);
        hwm.saturating_sub(self.baseline_kib) as f64 / 1024.0
    }

    fn rss_at(&self, ops: usize) -> Option<u64> {
        self.samples.iter().find(|s| s.ops == ops).map(|s| s.rss_kib)
    }

    /// Last sample's RSS / the RSS at 200,000 operations.
    fn flatness(&self) -> f64 {
        match (self.samples.last(), self.rss_at(2 * EVERY)) {
            (Some(last), Some(at)) => last.rss_kib as f64 / at as f64,
            _ => f64::NAN,
        }
    }

    /// Entries held at the last sample.
    fn entries(&self) -> usize {
        self.samples.last().map_or(0, |s| s.entries)
    }

    /// What the cache charged its entries at the last sample, in MiB.
    fn charged_mib(&self) -> f64 {
        self.samples.last().map_or(0, |s| s.charged) as f64 / MIB
    }

    /// Peak growth / [`BYTES_BOUND`].
    fn growth_over_bound(&self) -> f64 {
        self.peak_growth_mib() / bound_mib()
    }

    /// Peak growth − [`BYTES_BOUND`], in MiB and in % of the bound.
    fn overhead(&self) -> (f64, f64) {
        let over = self.peak_growth_mib() - bound_mib();
        (over, over / bound_mib() * 100.0)
    }

    /// The growth beyond what the cache charged, per entry held, in bytes.
    fn unaccounted_per_entry(&self) -> f64 {
        (self.peak_growth_mib() - self.charged_mib()) * MIB / self.entries().max(1) as f64
    }
}

/// [`BYTES_BOUND`] in MiB.
fn bound_mib() -> f64 {
    BYTES_BOUND as f64 / MIB
}

fn run(_: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let ops = settings.rss_ops.to_string();
    let mut reports = Vec::new();
    for Contender { id, name, bytes } in &CONTENDERS {
        let mut child = Child::spawn(name, &["--rss-child", id, &ops])?;
        let mut report = Report { baseline_kib: 0, samples: Vec::new(), seconds: 0.0 };
        loop {
            let (_, line) = child.recv(Duration::from_secs(300))?;
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                ["baseline", rss, _hwm] => report.baseline_kib = rss.parse()?,
                ["sample", ops, rss, hwm, entries, charged] => report.samples.push(Sample {
                    ops: ops.parse()?,
                    rss_kib: rss.parse()?,
                    hwm_kib: hwm.parse()?,
                    entries: entries.parse()?,
                    charged: charged.parse()?,
                }),
                ["done", seconds] => {
                    report.seconds = seconds.parse()?;
                    break;
                }
                _ => return Err(format!("{name}: unexpected line {line:?}").into()),
            }
        }
        eprintln!(
            "  {name:<52} peak RSS growth {:.1} MiB, last / 200k {:.2}, {} entries, {:.1} s",
            report.peak_growth_mib(),
            report.flatness(),
            report.entries(),
            report.seconds
        );
        if *bytes {
            let (over, percent) = report.overhead();
            eprintln!(
                "  {:<52} growth / bound {:.3}, growth - bound {over:+.1} MiB ({percent:+.1}% of the bound), \
                 charged {:.1} MiB, RSS beyond the charge {:.0} B per entry",
                "",
                report.growth_over_bound(),
                report.charged_mib(),
                report.unaccounted_per_entry()
            );
        }
        reports.push(report);
    }

    let growth = |at: usize| Figure::MiB(reports[at].peak_growth_mib());
    let mut rows = vec![Row::single(
        format!(
            "peak RSS growth, {} ops on 10M random keys, bound 100,000 entries (MiB, lower is better)",
            settings.rss_ops
        ),
        growth(TOWER),
        format!("{} (`get_with`, `insert`)", CONTENDERS[MOKA].name),
        growth(MOKA),
    )];
    let mixed = format!("{} ops on 10M random keys, values 16 B–16 KiB log-uniform", settings.rss_ops);
    for (ours, policy) in [(TOWER_BYTES_S3_FIFO, "S3-FIFO"), (TOWER_BYTES, "FIFO")] {
        rows.push(Row::single(
            format!(
                "peak RSS growth against the byte bound, {mixed}, cache-tower {policy}, max_bytes 64 MiB \
                 (MiB, ratio = growth / bound)"
            ),
            growth(ours),
            "the bound itself, 64 MiB",
            Figure::MiB(bound_mib()),
        ));
        for (peer, call) in
            [(MOKA_BYTES, "`get_with_by_ref`, `insert`"), (QUICK_BYTES, "`get_or_insert_with`, `insert`")]
        {
            rows.push(Row::single(
                format!("peak RSS growth, {mixed}, {policy}, byte bound 64 MiB (MiB, lower is better)"),
                growth(ours),
                format!("{} ({call})", CONTENDERS[peer].name),
                growth(peer),
            ));
        }
    }

    let mut section = format!(
        "### Memory stays bounded (`memory/bounded-rss`)\n\n\
         {} operations on keys drawn uniformly from 10 million (`key:{{n}}`), 80% `get_or_set` / 20% `set`; \
         each contender in a fresh process of its own (the runner re-executed), so that one's freed memory \
         does not hide the next one's growth. `VmRSS` (MiB) before the cache is built and after every {EVERY} \
         operations, from `/proc/self/status`; peak growth is the last `VmHWM` minus the first `VmRSS`.\n\n\
         The first three contenders store values of {VALUE_BYTES} bytes (`String`): 100,000 entries of them \
         and ~12-byte keys are about {:.0} MiB of payload. The last four are bounded to 64 MiB \
         (`max_bytes`, or a weigher and a byte capacity) and store `String`s of 16 B up to 16 KiB, \
         log-uniform per key (2.3 KiB on average); cache-tower weighs them with its built-in estimate \
         (no weigher), moka's weigher and quick_cache's weighter charge `key.len() + value.len() + {}`, \
         what cache-tower charges each entry beyond its key and its text (`ENTRY_OVERHEAD` {ENTRY_OVERHEAD}, \
         and the value's `Arc`, allocation and JSON quotes), so that all hold about as many entries. \
         \"charged\" is what each cache says its entries weigh at the end (`bytes()`, `weighted_size()`, \
         `weight()`).\n\n| operations |",
        settings.rss_ops,
        (MAXSIZE * (VALUE_BYTES + 12)) as f64 / MIB,
        peer_entry_charge(),
    );
    for contender in &CONTENDERS {
        section.push_str(&format!(" {} |", contender.name));
    }
    section.push_str(&format!("\n|---:|{}\n| 0 (before the cache) |", "---:|".repeat(CONTENDERS.len())));
    for report in &reports {
        section.push_str(&format!(" {:.1} |", report.baseline_kib as f64 / 1024.0));
    }
    section.push('\n');
    let counts: Vec<usize> = reports[0].samples.iter().map(|s| s.ops).collect();
    for ops in counts {
        section.push_str(&format!("| {ops} |"));
        for report in &reports {
            match report.samples.iter().find(|s| s.ops == ops) {
                Some(sample) => {
                    section.push_str(&format!(" {:.1} ({} entries) |", sample.rss_kib as f64 / 1024.0, sample.entries));
                }
                None => section.push_str(" - |"),
            }
        }
        section.push('\n');
    }
    // One line of the table; `bytes_only`: "-" for the contenders not bounded in bytes.
    let line = |label: &str, bytes_only: bool, value: &dyn Fn(&Report) -> String| {
        let mut out = format!("| {label} |");
        for (contender, report) in CONTENDERS.iter().zip(&reports) {
            let cell = if bytes_only && !contender.bytes { "-".to_owned() } else { value(report) };
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
        out
    };
    section.push_str(&line("peak growth (last `VmHWM` - first `VmRSS`)", false, &|r| {
        format!("{:.1} MiB", r.peak_growth_mib())
    }));
    section.push_str(&line("peak growth / byte bound", true, &|r| format!("{:.3}", r.growth_over_bound())));
    section.push_str(&line("overhead: peak growth - byte bound", true, &|r| {
        let (over, percent) = r.overhead();
        format!("{over:+.1} MiB ({percent:+.1}%)")
    }));
    section.push_str(&line("charged at the end", true, &|r| format!("{:.1} MiB", r.charged_mib())));
    section.push_str(&line("growth beyond the charge, per entry held", true, &|r| {
        format!("{:.0} B", r.unaccounted_per_entry())
    }));
    section.push_str(&line("last sample / sample at 200,000", false, &|r| format!("{:.2}", r.flatness())));
    section.push_str(&line("wall time of the run", false, &|r| format!("{:.1} s", r.seconds)));

    let notes = CONTENDERS
        .iter()
        .zip(&reports)
        .map(|(contender, report)| {
            let mut note = format!(
                "memory/bounded-rss, {}: peak RSS growth {:.1} MiB, last sample / sample at 200,000 ops {:.2}, \
                 {} entries at the end",
                contender.name,
                report.peak_growth_mib(),
                report.flatness(),
                report.entries()
            );
            if contender.bytes {
                let (over, percent) = report.overhead();
                note.push_str(&format!(
                    "; growth / bound {:.3}, overhead (growth - bound) {over:+.1} MiB ({percent:+.1}% of the bound)",
                    report.growth_over_bound()
                ));
            }
            note
        })
        .collect();
    Ok(Outcome { rows, notes, sections: vec![section], ..Outcome::default() })
}

// ===== child mode =====

/// `--rss-child <contender> <ops>`: runs one contender's workload in this (fresh) process and
/// prints `baseline <VmRSS> <VmHWM>`, `sample <ops> <VmRSS> <VmHWM> <entries> <charged bytes>`
/// every 100,000 operations (KiB), and `done <seconds>`.
pub fn child_main(args: &[String]) -> ExitCode {
    let [contender, ops] = args else {
        let ids: Vec<&str> = CONTENDERS.iter().map(|c| c.id).collect();
        eprintln!("usage: <runner> --rss-child <{}> <ops>", ids.join("|"));
        return ExitCode::from(2);
    };
    let Ok(ops) = ops.parse::<usize>() else {
        eprintln!("--rss-child: {ops:?} is not a number of operations");
        return ExitCode::from(2);
    };
    let (rss, hwm) = status();
    println!("baseline {rss} {hwm}");
    let started = Instant::now();
    match contender.as_str() {
        "tower" | "tower-ttl" | "tower-bytes" | "tower-bytes-s3-fifo" => {
            let memory = match contender.as_str() {
                "tower" => MemoryAdapter::builder().maxsize(MAXSIZE).build(),
                "tower-ttl" => MemoryAdapter::builder().ttl(Duration::from_secs(1)).build(),
                "tower-bytes" => MemoryAdapter::builder().max_bytes(BYTES_BOUND).build(),
                _ => MemoryAdapter::builder().max_bytes(BYTES_BOUND).policy(EvictionPolicy::S3Fifo).build(),
            };
            let tower = CacheTower::new();
            tower.add_layer(memory.clone());
            let pace = (contender == "tower-ttl").then_some(TTL_PACE);
            let make = if memory.max_bytes() > 0 { mixed_value } else { value };
            workload(
                ops,
                pace,
                |key, n| {
                    black_box(tower.get_or_set(key, || make(n)));
                },
                |key, n| {
                    black_box(tower.set(key, make(n)).ok());
                },
                || (memory.len(), memory.bytes() as u64),
            );
        }
        "moka" | "moka-bytes" => {
            let cache: moka::sync::Cache<String, String> = if contender == "moka" {
                moka::sync::Cache::new(MAXSIZE as u64)
            } else {
                let per_entry = peer_entry_charge();
                moka::sync::Cache::builder()
                    .max_capacity(BYTES_BOUND as u64)
                    .weigher(move |key: &String, value: &String| {
                        u32::try_from(key.len() + value.len() + per_entry).unwrap_or(u32::MAX)
                    })
                    .build()
            };
            let make = if contender == "moka" { value } else { mixed_value };
            let bytes = contender == "moka-bytes";
            workload(
                ops,
                None,
                |key, n| {
                    black_box(cache.get_with_by_ref(key, || make(n)));
                },
                |key, n| cache.insert(key.to_owned(), make(n)),
                || {
                    cache.run_pending_tasks();
                    (cache.entry_count() as usize, if bytes { cache.weighted_size() } else { 0 })
                },
            );
        }
        "quick-bytes" => {
            let per_entry = peer_entry_charge();
            let estimated = BYTES_BOUND / (mean_mixed_len() + "key:5000000".len() + per_entry);
            let cache: quick_cache::sync::Cache<String, String, ByteWeighter> =
                quick_cache::sync::Cache::with_weighter(estimated, BYTES_BOUND as u64, ByteWeighter(per_entry as u64));
            workload(
                ops,
                None,
                |key, n| {
                    black_box(cache.get_or_insert_with(key, || Ok::<_, std::convert::Infallible>(mixed_value(n))).ok());
                },
                |key, n| cache.insert(key.to_owned(), mixed_value(n)),
                || (cache.len(), cache.weight()),
            );
        }
        other => {
            eprintln!("--rss-child: unknown contender {other:?}");
            return ExitCode::from(2);
        }
    }
    println!("done {:.3}", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}

/// What the peers' weighers charge each entry besides `key.len() + value.len()`: what
/// cache-tower's memory layer charges a `String` entry besides them, [`ENTRY_OVERHEAD`] and the
/// built-in estimate's share that is not the text (the `Arc` counts, the typed value's
/// allocation, the two quotes of the JSON; the mixed values are digits, which JSON writes as
/// they are).
fn peer_entry_charge() -> usize {
    ENTRY_OVERHEAD + StoredValue::new(String::new()).weight()
}

/// quick_cache's weighter for the byte-bounded run: `key.len() + value.len()` plus the same
/// per-entry charge as moka's ([`peer_entry_charge`]).
#[derive(Clone)]
struct ByteWeighter(u64);

impl quick_cache::Weighter<String, String> for ByteWeighter {
    fn weight(&self, key: &String, value: &String) -> u64 {
        (key.len() + value.len()) as u64 + self.0
    }
}

/// Runs the operations, at most `pace` per second when given.
fn workload(
    ops: usize,
    pace: Option<f64>,
    get_or_set: impl Fn(&str, u64),
    set: impl Fn(&str, u64),
    held: impl Fn() -> (usize, u64),
) {
    let started = Instant::now();
    let mut state = 0x5EED_u64;
    let mut key = String::with_capacity(16);
    for done in 1..=ops {
        let r = splitmix64(&mut state);
        let n = r % KEY_SPACE;
        key.clear();
        std::fmt::Write::write_fmt(&mut key, format_args!("key:{n}")).ok();
        if (r >> 40) % 10 < 8 {
            get_or_set(&key, n);
        } else {
            set(&key, n);
        }
        if let Some(pace) = pace.filter(|_| done % 1_000 == 0) {
            let due = started + Duration::from_secs_f64(done as f64 / pace);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        if done % EVERY == 0 {
            let (entries, charged) = held();
            let (rss, hwm) = status();
            println!("sample {done} {rss} {hwm} {entries} {charged}");
        }
    }
}

/// The 200-byte value of key `n`.
fn value(n: u64) -> String {
    format!("{n:0>width$}", width = VALUE_BYTES)
}

/// The length of key `n`'s mixed value: log-uniform from [`MIN_MIXED`] up to (not including)
/// [`MAX_MIXED`], drawn from `n` alone.
fn mixed_len(n: u64) -> usize {
    let mut state = n ^ 0x00B1_7E5A_11CE;
    let unit = (splitmix64(&mut state) >> 11) as f64 / (1_u64 << 53) as f64;
    let len = MIN_MIXED as f64 * (MAX_MIXED as f64 / MIN_MIXED as f64).powf(unit);
    (len as usize).clamp(MIN_MIXED, MAX_MIXED - 1)
}

/// The mean of [`mixed_len`], in bytes: (max − min) / ln(max / min), about 2,362.
fn mean_mixed_len() -> usize {
    ((MAX_MIXED - MIN_MIXED) as f64 / (MAX_MIXED as f64 / MIN_MIXED as f64).ln()) as usize
}

/// Key `n`'s mixed value: its number, zero-padded to [`mixed_len`] digits, in a `String` of
/// exactly that capacity (so `value.len()` is what it holds).
fn mixed_value(n: u64) -> String {
    let len = mixed_len(n);
    let mut value = String::with_capacity(len);
    std::fmt::Write::write_fmt(&mut value, format_args!("{n:0>len$}")).ok();
    value
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// (VmRSS, VmHWM) of this process in KiB; 0 when /proc cannot be read.
fn status() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_values_span_the_range_log_uniformly() {
        let lens: Vec<usize> = (0..100_000).map(mixed_len).collect();
        assert!(lens.iter().all(|&len| (MIN_MIXED..MAX_MIXED).contains(&len)));
        assert_eq!(mixed_value(42).len(), mixed_len(42));
        assert_eq!(mixed_value(42), mixed_value(42));
        // Log-uniform over 10 doublings: about a tenth in each, the first and the last alike.
        let (first, last) = (
            lens.iter().filter(|&&len| len < 2 * MIN_MIXED).count(),
            lens.iter().filter(|&&len| len >= MAX_MIXED / 2).count(),
        );
        assert!((9_000..11_000).contains(&first), "{first}");
        assert!((9_000..11_000).contains(&last), "{last}");
        let mean = lens.iter().sum::<usize>() / lens.len();
        assert!(mean.abs_diff(mean_mixed_len()) < 50, "{mean} vs {}", mean_mixed_len());
    }

    /// The peers' weighers charge an entry exactly what cache-tower's layer charges it.
    #[test]
    fn peers_are_charged_as_cache_tower_charges_itself() {
        let memory = MemoryAdapter::builder().max_bytes(BYTES_BOUND).build();
        let tower = CacheTower::new();
        tower.add_layer(memory.clone());
        let (key, n) = ("key:1234567", 1_234_567);
        tower.set(key, mixed_value(n)).unwrap();
        assert_eq!(memory.bytes(), key.len() + mixed_len(n) + peer_entry_charge());
        assert_eq!(
            quick_cache::Weighter::weight(&ByteWeighter(peer_entry_charge() as u64), &key.to_owned(), &mixed_value(n)),
            memory.bytes() as u64
        );
    }
}
