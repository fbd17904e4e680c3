//! `memory/bounded-rss`: a bounded memory layer keeps the process's memory bounded.
//!
//! One run of `Settings::rss_ops` operations (1,000,000; `--quick`: 300,000) on random keys
//! from a space of 10 million (`key:{n}`, SplitMix64), 80% `get_or_set` and 20% `set`, each
//! value a 200-byte `String`, against:
//!
//! * cache-tower: a tower of one `MemoryAdapter` with maxsize 100,000 (`get_or_set`, `set`);
//! * moka: `moka::sync::Cache<String, String>` with max_capacity 100,000 (`get_with`, `insert`);
//! * cache-tower with a TTL of 1 s and maxsize 0 (unbounded): expiry alone must reclaim memory,
//!   with no background thread and no reads of the expired keys. This run is paced to 100,000
//!   operations per second (unpaced, the whole run would fit in the TTL), so about 100,000
//!   entries are alive at any moment once the first second has passed.
//!
//! RSS never shrinks much after memory is freed, so each contender runs in a fresh process of its
//! own (the runner's binary re-executed with `--rss-child <contender> <ops>`, see
//! [`super::child`]), which prints its `VmRSS` and `VmHWM` (from `/proc/self/status`) before
//! building its cache and after every 100,000 operations. The figure is the peak RSS growth:
//! the last `VmHWM` minus the `VmRSS` before the cache was built.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
/// Operations between two samples.
const EVERY: usize = 100_000;
/// Operations per second of the TTL contender.
const TTL_PACE: f64 = 100_000.0;

/// The contenders, as `--rss-child` names them, with what the report calls them.
const CONTENDERS: [(&str, &str); 3] = [
    ("tower", "cache-tower, one `MemoryAdapter`, maxsize 100,000"),
    ("moka", "moka 0.12 `sync::Cache`, max_capacity 100,000"),
    ("tower-ttl", "cache-tower, one `MemoryAdapter`, TTL 1 s, maxsize 0, paced to 100k ops/s"),
];

/// What one child reported.
struct Report {
    /// VmRSS before the cache was built, in KiB.
    baseline_kib: u64,
    /// (operations done, VmRSS KiB, VmHWM KiB, entries held).
    samples: Vec<(usize, u64, u64, usize)>,
    seconds: f64,
}

impl Report {
    fn peak_growth_mib(&self) -> f64 {
        let hwm = self.samples.iter().map(|s| s.2).max().unwrap_or(0);
        hwm.saturating_sub(self.baseline_kib) as f64 / 1024.0
    }

    fn rss_at(&self, ops: usize) -> Option<u64> {
        self.samples.iter().find(|s| s.0 == ops).map(|s| s.1)
    }

    /// Last sample's RSS / the RSS at 200,000 operations.
    fn flatness(&self) -> f64 {
        match (self.samples.last(), self.rss_at(2 * EVERY)) {
            (Some(last), Some(at)) => last.1 as f64 / at as f64,
            _ => f64::NAN,
        }
    }
}

fn run(_: &Dataset, settings: &Settings, _: &Services) -> BoxResult<Outcome> {
    let ops = settings.rss_ops.to_string();
    let mut reports = Vec::new();
    for (contender, name) in CONTENDERS {
        let mut child = Child::spawn(name, &["--rss-child", contender, &ops])?;
        let mut report = Report { baseline_kib: 0, samples: Vec::new(), seconds: 0.0 };
        loop {
            let (_, line) = child.recv(Duration::from_secs(300))?;
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                ["baseline", rss, _hwm] => report.baseline_kib = rss.parse()?,
                ["sample", ops, rss, hwm, entries] => {
                    report.samples.push((ops.parse()?, rss.parse()?, hwm.parse()?, entries.parse()?));
                }
                ["done", seconds] => {
                    report.seconds = seconds.parse()?;
                    break;
                }
                _ => return Err(format!("{name}: unexpected line {line:?}").into()),
            }
        }
        eprintln!(
            "  {name:<52} peak RSS growth {:.1} MiB, last / 200k {:.2}, {:.1} s",
            report.peak_growth_mib(),
            report.flatness(),
            report.seconds
        );
        reports.push(report);
    }

    let rows = vec![Row::single(
        format!(
            "peak RSS growth, {} ops on 10M random keys, bound 100,000 entries (MiB, lower is better)",
            settings.rss_ops
        ),
        Figure::MiB(reports[0].peak_growth_mib()),
        format!("{} (`get_with`, `insert`)", CONTENDERS[1].1),
        Figure::MiB(reports[1].peak_growth_mib()),
    )];

    let mut section = format!(
        "### Memory stays bounded (`memory/bounded-rss`)\n\n\
         {} operations on keys drawn uniformly from 10 million (`key:{{n}}`), 80% `get_or_set` / 20% `set`, \
         values of {VALUE_BYTES} bytes (`String`); each contender in a fresh process of its own (the runner \
         re-executed), so that one's freed memory does not hide the next one's growth. `VmRSS` (MiB) \
         before the cache is built and after every {EVERY} operations, from `/proc/self/status`; \
         peak growth is the last `VmHWM` minus the first `VmRSS`. 100,000 entries of {VALUE_BYTES}-byte values \
         and ~12-byte keys are about {:.0} MiB of payload.\n\n| operations |",
        settings.rss_ops,
        (MAXSIZE * (VALUE_BYTES + 12)) as f64 / 1024.0 / 1024.0
    );
    for (_, name) in CONTENDERS {
        section.push_str(&format!(" {name} |"));
    }
    section.push_str(&format!("\n|---:|{}\n| 0 (before the cache) |", "---:|".repeat(CONTENDERS.len())));
    for report in &reports {
        section.push_str(&format!(" {:.1} |", report.baseline_kib as f64 / 1024.0));
    }
    section.push('\n');
    let counts: Vec<usize> = reports[0].samples.iter().map(|s| s.0).collect();
    for ops in counts {
        section.push_str(&format!("| {ops} |"));
        for report in &reports {
            match report.samples.iter().find(|s| s.0 == ops) {
                Some(sample) => section.push_str(&format!(" {:.1} ({} entries) |", sample.1 as f64 / 1024.0, sample.3)),
                None => section.push_str(" - |"),
            }
        }
        section.push('\n');
    }
    let line = |label: &str, value: &dyn Fn(&Report) -> String| {
        let mut out = format!("| {label} |");
        for report in &reports {
            out.push_str(&format!(" {} |", value(report)));
        }
        out.push('\n');
        out
    };
    section
        .push_str(&line("peak growth (last `VmHWM` - first `VmRSS`)", &|r| format!("{:.1} MiB", r.peak_growth_mib())));
    section.push_str(&line("last sample / sample at 200,000", &|r| format!("{:.2}", r.flatness())));
    section.push_str(&line("wall time of the run", &|r| format!("{:.1} s", r.seconds)));

    let notes = CONTENDERS
        .iter()
        .zip(&reports)
        .map(|((_, name), report)| {
            format!(
                "memory/bounded-rss, {name}: peak RSS growth {:.1} MiB, last sample / sample at 200,000 ops {:.2}",
                report.peak_growth_mib(),
                report.flatness()
            )
        })
        .collect();
    Ok(Outcome { rows, notes, sections: vec![section], ..Outcome::default() })
}

// ===== child mode =====

/// `--rss-child <contender> <ops>`: runs one contender's workload in this (fresh) process and
/// prints `baseline <VmRSS> <VmHWM>`, `sample <ops> <VmRSS> <VmHWM> <entries>` every 100,000
/// operations (KiB), and `done <seconds>`.
pub fn child_main(args: &[String]) -> ExitCode {
    let [contender, ops] = args else {
        eprintln!("usage: <runner> --rss-child <tower|moka|tower-ttl> <ops>");
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
        "tower" | "tower-ttl" => {
            let memory = if contender == "tower" {
                MemoryAdapter::builder().maxsize(MAXSIZE).build()
            } else {
                MemoryAdapter::builder().ttl(Duration::from_secs(1)).build()
            };
            let tower = CacheTower::new();
            tower.add_layer(memory.clone());
            let pace = (contender == "tower-ttl").then_some(TTL_PACE);
            workload(
                ops,
                pace,
                |key, n| {
                    black_box(tower.get_or_set(key, || value(n)));
                },
                |key, n| {
                    black_box(tower.set(key, value(n)).ok());
                },
                || memory.len(),
            );
        }
        "moka" => {
            let cache: moka::sync::Cache<String, String> = moka::sync::Cache::new(MAXSIZE as u64);
            workload(
                ops,
                None,
                |key, n| {
                    black_box(cache.get_with_by_ref(key, || value(n)));
                },
                |key, n| cache.insert(key.to_owned(), value(n)),
                || {
                    cache.run_pending_tasks();
                    cache.entry_count() as usize
                },
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

/// Runs the operations, at most `pace` per second when given.
fn workload(
    ops: usize,
    pace: Option<f64>,
    get_or_set: impl Fn(&str, u64),
    set: impl Fn(&str, u64),
    entries: impl Fn() -> usize,
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
            let held = entries();
            let (rss, hwm) = status();
            println!("sample {done} {rss} {hwm} {held}");
        }
    }
}

/// The 200-byte value of key `n`.
fn value(n: u64) -> String {
    format!("{n:0>width$}", width = VALUE_BYTES)
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
