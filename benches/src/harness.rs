//! Timing: warm-up, interleaved samples, medians.
//!
//! A *contender* is one cache doing one kind of operation. It is given as a batch function that
//! runs the operation once per key index of a sequence, so the clock is read twice per batch,
//! never per operation, and the operation is inlined in its loop (no dynamic call per op).
//!
//! An operation that needs a fresh state before each call (a key that must be absent from the
//! memory layer, say) uses [`Contender::per_op_with_setup`] instead: the setup runs outside the
//! clock, and the clock is read around each operation. Those reads cost tens of nanoseconds, so
//! this is for operations that take microseconds (a network round trip).
//!
//! Contenders of one scenario are measured in rounds: each round takes one sample of every
//! contender, in an order that rotates from round to round. Noise from the machine (other
//! processes, frequency changes) then falls on all of them alike, and the median of the samples
//! discards the rounds it spoiled.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// How much to measure.
///
/// Many short samples rather than a few long ones: on a shared machine the noise comes in bursts
/// (a neighbour's compile, memory bandwidth), and the median of many samples steps over them.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Samples kept per contender; the median is reported.
    pub samples: usize,
    /// Rounds run first and thrown away (caches, branch predictors and CPU clocks settle).
    pub warmup_rounds: usize,
    /// Operations per sample (per thread in multi-threaded scenarios).
    pub ops_per_sample: usize,
    /// Operations per sample of the scenarios whose operations are network round trips (tens
    /// of microseconds each rather than hundreds of nanoseconds); batch operations of many
    /// keys take a tenth of it.
    pub io_ops_per_sample: usize,
    /// Writes timed per kind of write in `coherence/staleness`.
    pub staleness_writes: usize,
    /// Operations of each contender's run in `memory/bounded-rss`.
    pub rss_ops: usize,
    /// Keys of the namespace `redis/clear` clears (its bar is for 1,000,000).
    pub clear_entries: usize,
    /// Clears after which `redis/clear` times how long another instance keeps its memory copy.
    pub followed_clears: usize,
    /// Invalidations of a tag after which `redis/invalidate-tag` times how long another
    /// instance keeps its memory copies of the tag's entries.
    pub followed_invalidations: usize,
}

impl Settings {
    /// A fast run, for checking that everything works and for rough figures.
    pub fn quick() -> Self {
        Self {
            samples: 15,
            warmup_rounds: 2,
            ops_per_sample: 50_000,
            io_ops_per_sample: 500,
            staleness_writes: 200,
            rss_ops: 300_000,
            clear_entries: 100_000,
            followed_clears: 200,
            followed_invalidations: 200,
        }
    }

    /// A longer run, for figures stable enough to publish.
    pub fn full() -> Self {
        Self {
            samples: 41,
            warmup_rounds: 2,
            ops_per_sample: 200_000,
            io_ops_per_sample: 2_000,
            staleness_writes: 1_000,
            rss_ops: 1_000_000,
            clear_entries: 1_000_000,
            followed_clears: 1_000,
            followed_invalidations: 1_000,
        }
    }
}

/// Runs one operation per key index; shared by the threads of a throughput sample. Returns the
/// time the operations took when it measured them itself (setup excluded), `None` when the
/// caller's clock around the whole batch is the measure.
type Batch<'a> = Box<dyn Fn(&[u32]) -> Option<Duration> + Sync + 'a>;

/// One cache doing one kind of operation, as a batch over key indices.
pub struct Contender<'a> {
    name: String,
    batch: Batch<'a>,
}

impl<'a> Contender<'a> {
    /// A contender that runs `op(index)` for each key index of a batch. Wrap what `op` computes in
    /// [`std::hint::black_box`] so the compiler cannot drop the work.
    pub fn per_op(name: impl Into<String>, op: impl Fn(usize) + Sync + 'a) -> Self {
        let batch = move |indices: &[u32]| {
            for &index in indices {
                op(index as usize);
            }
            None
        };
        Self { name: name.into(), batch: Box::new(batch) }
    }

    /// A contender that runs `setup(index)` then `op(index)` for each key index of a batch, and
    /// times only the `op` calls (the clock is read around each one). Single-threaded scenarios
    /// only ([`ns_per_op`]); a throughput sample would count the setup as well.
    pub fn per_op_with_setup(
        name: impl Into<String>,
        setup: impl Fn(usize) + Sync + 'a,
        op: impl Fn(usize) + Sync + 'a,
    ) -> Self {
        let batch = move |indices: &[u32]| {
            let mut timed = Duration::ZERO;
            for &index in indices {
                setup(index as usize);
                let started = Instant::now();
                op(index as usize);
                timed += started.elapsed();
            }
            Some(timed)
        };
        Self { name: name.into(), batch: Box::new(batch) }
    }

    /// Runs the operation once per index, untimed (for counting what it costs the server).
    pub fn run(&self, indices: &[u32]) {
        (self.batch)(indices);
    }

    /// The contender's name, as shown in the table.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The samples of one contender, in its unit (ns/op or Mops/s).
#[derive(Debug, Clone)]
pub struct Samples(Vec<f64>);

impl From<Vec<f64>> for Samples {
    fn from(samples: Vec<f64>) -> Self {
        Self(samples)
    }
}

impl Samples {
    /// The median sample.
    pub fn median(&self) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }

    /// The smallest and the largest sample.
    pub fn min_max(&self) -> (f64, f64) {
        let min = self.0.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (min, max)
    }

    /// The `p`-th percentile (`p` in 0..=100), by linear interpolation between the two nearest
    /// ranks of the sorted samples.
    pub fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
        let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
        sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
    }

    /// The 10th and 90th percentiles.
    pub fn p10_p90(&self) -> (f64, f64) {
        (self.percentile(10.0), self.percentile(90.0))
    }

    /// The samples, in the order they were taken (round after round).
    pub fn values(&self) -> &[f64] {
        &self.0
    }

    /// Each sample mapped through `f` (a change of unit).
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Self {
        Self(self.0.iter().copied().map(f).collect())
    }

    /// `self[r] / other[r]` for every round `r`: the ratio of two contenders measured in the same
    /// rounds, one per round, so the spread of a ratio is not the spread of two independent
    /// figures.
    pub fn ratios(&self, other: &Self) -> Self {
        Self(self.0.iter().zip(&other.0).map(|(a, b)| a / b).collect())
    }
}

/// Nanoseconds per operation of each contender, on one thread, reading `indices` per sample.
pub fn ns_per_op(contenders: &[Contender<'_>], indices: &[u32], settings: &Settings) -> Vec<Samples> {
    interleave(contenders.len(), settings, |c| {
        let started = Instant::now();
        let timed = (contenders[c].batch)(indices);
        let elapsed = timed.unwrap_or_else(|| started.elapsed());
        elapsed.as_nanos() as f64 / indices.len() as f64
    })
}

/// [`ns_per_op`] with a sequence of its own for every round: round `r` (warm-up rounds
/// included) reads `rounds[r % rounds.len()]`, the same for every contender of the round. For
/// workloads whose history matters (a cache that learns which keys are popular), so no contender
/// sees the same keys twice in the same order.
pub fn ns_per_op_by_round(contenders: &[Contender<'_>], rounds: &[Vec<u32>], settings: &Settings) -> Vec<Samples> {
    interleave_rounds(contenders.len(), settings, |c, round| {
        let indices = &rounds[round % rounds.len()];
        let started = Instant::now();
        let timed = (contenders[c].batch)(indices);
        let elapsed = timed.unwrap_or_else(|| started.elapsed());
        elapsed.as_nanos() as f64 / indices.len() as f64
    })
}

/// Total throughput (millions of operations per second, all threads together) of each contender,
/// with one thread per sequence of `per_thread`, all started together. A sample lasts from the
/// first thread's start to the last thread's end, so a thread that lags is not hidden.
pub fn throughput(contenders: &[Contender<'_>], per_thread: &[&[u32]], settings: &Settings) -> Vec<Samples> {
    let total_ops: usize = per_thread.iter().map(|indices| indices.len()).sum();
    interleave(contenders.len(), settings, |c| {
        let batch = &contenders[c].batch;
        let start_line = Barrier::new(per_thread.len());
        let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
            let workers: Vec<_> = per_thread
                .iter()
                .map(|indices| {
                    let start_line = &start_line;
                    scope.spawn(move || {
                        start_line.wait();
                        let started = Instant::now();
                        batch(indices);
                        (started, Instant::now())
                    })
                })
                .collect();
            // A worker that panicked has already printed why; there is no figure to report.
            workers.into_iter().map(|worker| worker.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        let first = spans.iter().map(|span| span.0).min();
        let last = spans.iter().map(|span| span.1).max();
        let elapsed = match (first, last) {
            (Some(first), Some(last)) => last - first,
            _ => Duration::ZERO,
        };
        total_ops as f64 / elapsed.as_secs_f64() / 1e6
    })
}

/// Runs `sample(contender)` for every contender, round after round, rotating the order; keeps
/// the samples of the rounds after the warm-up.
fn interleave(contenders: usize, settings: &Settings, mut sample: impl FnMut(usize) -> f64) -> Vec<Samples> {
    interleave_rounds(contenders, settings, |contender, _| sample(contender))
}

/// [`interleave`], telling `sample` the round too.
fn interleave_rounds(
    contenders: usize,
    settings: &Settings,
    mut sample: impl FnMut(usize, usize) -> f64,
) -> Vec<Samples> {
    let mut kept = vec![Vec::with_capacity(settings.samples); contenders];
    for round in 0..settings.warmup_rounds + settings.samples {
        for turn in 0..contenders {
            let contender = (turn + round) % contenders;
            let value = sample(contender, round);
            if round >= settings.warmup_rounds {
                kept[contender].push(value);
            }
        }
    }
    kept.into_iter().map(Samples).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(Samples(vec![3.0, 1.0, 2.0]).median(), 2.0);
        assert_eq!(Samples(vec![4.0, 1.0, 3.0, 2.0]).median(), 2.5);
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let samples = Samples((1..=11).map(f64::from).collect());
        assert_eq!(samples.p10_p90(), (2.0, 10.0));
        assert_eq!(samples.min_max(), (1.0, 11.0));
        assert_eq!(Samples(vec![1.0, 2.0]).percentile(50.0), 1.5);
        let paired = Samples(vec![2.0, 6.0]).ratios(&Samples(vec![1.0, 3.0]));
        assert_eq!(paired.values(), &[2.0, 2.0]);
    }

    #[test]
    fn every_contender_gets_every_sample() {
        let settings = Settings {
            samples: 3,
            warmup_rounds: 2,
            ops_per_sample: 0,
            io_ops_per_sample: 0,
            staleness_writes: 0,
            rss_ops: 0,
            clear_entries: 0,
            followed_clears: 0,
            followed_invalidations: 0,
        };
        let mut calls = vec![0; 4];
        let samples = interleave(4, &settings, |c| {
            calls[c] += 1;
            c as f64
        });
        assert_eq!(calls, vec![5; 4]);
        assert!(samples.iter().enumerate().all(|(c, s)| s.0 == vec![c as f64; 3]));
    }
}
