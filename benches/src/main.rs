//! The benchmark runner: cache-tower against its peers (moka, quick_cache, cached) in one run,
//! on the same data and the same key sequences, reported as ratios in a markdown table.
//!
//! ```text
//! cargo run --release -p cache-tower-benches -- [--quick] [--filter <substring>]
//! ```
//!
//! The table goes to stdout; progress and per-contender spreads go to stderr.

mod cli;
mod data;
mod harness;
mod machine;
mod report;
mod scenarios;

use std::process::ExitCode;
use std::time::Instant;

use crate::data::{Dataset, ENTRIES};
use crate::harness::Settings;

/// Threads of the multi-threaded scenarios (one read sequence each).
const THREADS: usize = 2;

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1)) {
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
    let (mut rows, mut notes) = (Vec::new(), Vec::new());
    for scenario in &scenarios {
        eprintln!("{} ...", scenario.id);
        match (scenario.run)(&data, &settings) {
            Ok(outcome) => {
                rows.extend(outcome.rows);
                notes.extend(outcome.notes);
            }
            Err(err) => {
                eprintln!("error: scenario {} failed: {err}", scenario.id);
                return ExitCode::FAILURE;
            }
        }
    }

    println!("## cache-tower against its peers ({mode} run)\n");
    println!("{}", machine::Machine::detect());
    println!(
        "* method: {ENTRIES} entries (`user:{{n}}` -> 10-field `User`), uniformly random reads; per contender \
         {} warm-up round(s), then the median of {} samples of {} ops (per thread), contenders interleaved\n",
        settings.warmup_rounds, settings.samples, settings.ops_per_sample
    );
    print!("{}", report::markdown_table(&rows));
    if !notes.is_empty() {
        println!();
        for note in &notes {
            println!("* {note}");
        }
    }
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}
