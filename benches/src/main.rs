//! The benchmark runner: cache-tower against its peers (moka, quick_cache, cached, the raw
//! redis-rs client) in one run, on the same data and the same key sequences, reported as ratios
//! in a markdown table.
//!
//! ```text
//! cargo run --release -p cache-tower-benches -- [--quick] [--filter <substring>]
//! ```
//!
//! The table goes to stdout; progress and per-contender spreads go to stderr. The Redis
//! scenarios start a throwaway redis-server (or use `REDIS_URL`), see [`services`]. Three
//! scenarios re-execute this binary as child processes with a hidden first argument (`--peer`,
//! `--stampede-peer`, `--rss-child`), see `scenarios::child`.

mod cli;
mod data;
mod harness;
mod machine;
mod report;
mod scenarios;
mod services;
mod zipf;

use std::process::ExitCode;
use std::time::Instant;

use crate::data::{Dataset, ENTRIES};
use crate::harness::Settings;
use crate::services::Services;

/// Threads of the multi-threaded scenarios (one read sequence each).
const THREADS: usize = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A child process of a scenario (`--peer`, `--stampede-peer`, `--rss-child`): not for people to call.
    if let Some(code) = scenarios::child_mode(&args) {
        return code;
    }
    let options = match cli::parse(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if options.help {
        println!("{}", cli::USAGE);
        return ExitCode::SUCCESS;
    }

    let scenarios: Vec<_> = scenarios::all()
        .into_iter()
        .filter(|scenario| options.filter.as_deref().is_none_or(|filter| scenario.id.contains(filter)))
        .collect();
    if scenarios.is_empty() {
        let ids: Vec<_> = scenarios::all().iter().map(|scenario| scenario.id).collect();
        eprintln!("error: no scenario matches the filter; the scenarios are: {}", ids.join(", "));
        return ExitCode::from(2);
    }

    let started = Instant::now();
    let (mode, settings) = if options.quick { ("quick", Settings::quick()) } else { ("full", Settings::full()) };
    let data = Dataset::new(settings.ops_per_sample, THREADS);
    // Dropped when main returns (or unwinds): any server it started is stopped.
    let services = Services::new();
    let (mut rows, mut notes, mut trips, mut sections) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for scenario in &scenarios {
        eprintln!("{} ...", scenario.id);
        match (scenario.run)(&data, &settings, &services) {
            Ok(outcome) => {
                rows.extend(outcome.rows);
                notes.extend(outcome.notes);
                trips.extend(outcome.trips);
                sections.extend(outcome.sections);
            }
            Err(err) => {
                eprintln!("error: scenario {} failed: {err}", scenario.id);
                return ExitCode::FAILURE;
            }
        }
    }

    println!("## cache-tower against its peers ({mode} run)\n");
    println!("{}", machine::Machine::detect());
    for line in services.describe() {
        println!("* {line}");
    }
    println!(
        "* method: {ENTRIES} entries (`user:{{n}}` -> 10-field `User`), uniformly random reads (the Zipf \
         scenarios: 100,000 keys); per contender {} warm-up round(s), then the median of {} samples of {} ops \
         (per thread; insert-evict and Zipf: {} ops; Redis scenarios: {} ops, their batches of N keys {} / (N / 10): \
         {} ops of 100 keys, {} of 1,000), contenders interleaved; every contender of a row has the bound the row \
         names",
        settings.warmup_rounds,
        settings.samples,
        settings.ops_per_sample,
        settings.ops_per_sample / 10,
        settings.io_ops_per_sample,
        settings.io_ops_per_sample,
        settings.io_ops_per_sample / 10,
        settings.io_ops_per_sample / 100
    );
    println!(
        "* cells: the median, then (in parentheses) the 10th–90th percentile of the samples; the ratio is of the \
         medians, then the 10th–90th percentile of the per-round ratios (each round samples every contender once); \
         read-through rows add each contender's hit ratio\n"
    );
    if !rows.is_empty() {
        print!("{}", report::markdown_table(&rows));
    }
    if !notes.is_empty() {
        println!();
        for note in &notes {
            println!("* {note}");
        }
    }
    if !trips.is_empty() {
        println!(
            "\n### What each Redis contender costs the server\n\n\
             Counted over {} operations per contender, outside the timed runs: round trips by a relay between \
             client and server (a request sent after a reply came back; a pipeline is one), server reads \
             (`INFO stats` `total_reads_processed`: one per request of up to 16 KiB, more for a larger one within \
             the same round trip), bytes the client sent, the server process's CPU time \
             (`INFO cpu`), and calls per operation of each command (`INFO \
             commandstats`; commands run inside a Lua script count too; commands under {} per operation, \
             background traffic such as a health-check `PING`, are left out).\n",
            scenarios::COUNTED_OPS,
            scenarios::MIN_COMMANDS_PER_OP
        );
        print!("{}", report::trips_table(&trips));
    }
    for section in &sections {
        print!("\n{section}");
    }
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}
