//! Zipf-distributed key indices: the skewed popularity of real cache traffic, where a few keys
//! take most of the reads.
//!
//! Rank `k` (1-based, of `n`) is drawn with probability `k^-s / H(n, s)`. The generator
//! precomputes the cumulative distribution once (`n` floats) and draws by binary search on a
//! uniform number from a seeded [`SplitMix64`], so a sequence is the same in every run. Ranks are
//! then mapped onto key indices through a fixed permutation, so the most popular keys are not
//! `user:0`, `user:1`, ... (nothing here depends on that, but a cache might on key order).

use crate::data::{SplitMix64, permutation};

/// The cumulative distribution of a Zipf law over `n` ranks with exponent `s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    /// `cdf[k]` is P(rank <= k + 1); the last one is 1.
    cdf: Vec<f64>,
}

impl Zipf {
    /// The law over ranks `1..=n` with exponent `s` (`n` > 0, `s` > 0).
    pub fn new(n: usize, s: f64) -> Self {
        assert!(n > 0 && s > 0.0, "Zipf needs n > 0 and s > 0");
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n {
            total += (rank as f64).powf(-s);
            cdf.push(total);
        }
        for p in &mut cdf {
            *p /= total;
        }
        Self { cdf }
    }

    /// The 0-based rank whose cumulative probability first reaches `u` (`u` in `[0, 1)`).
    pub fn rank(&self, u: f64) -> usize {
        self.cdf.partition_point(|&p| p <= u).min(self.cdf.len() - 1)
    }

    /// The probability of the `k` most popular ranks together: the hit ratio of a cache that held
    /// exactly those keys forever.
    pub fn top_share(&self, k: usize) -> f64 {
        if k == 0 { 0.0 } else { self.cdf[(k - 1).min(self.cdf.len() - 1)] }
    }

    /// `len` key indices in `0..n`: Zipf ranks drawn with `seed`, mapped through a permutation of
    /// the keys fixed by `seed` too.
    pub fn sequence(&self, len: usize, seed: u64) -> Vec<u32> {
        let key_of_rank = permutation(self.cdf.len(), seed ^ 0x2F1F);
        let mut rng = SplitMix64(seed);
        (0..len).map(|_| key_of_rank[self.rank(rng.next_f64())]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_the_law() {
        let zipf = Zipf::new(1_000, 1.0);
        let mut rng = SplitMix64(7);
        let draws = 200_000;
        let mut counts = vec![0u32; 1_000];
        for _ in 0..draws {
            counts[zipf.rank(rng.next_f64())] += 1;
        }
        // P(rank 1) = 1 / H(1000, 1) ~ 0.1336; P(rank 2) half of it.
        let first = f64::from(counts[0]) / f64::from(draws);
        assert!((first - 0.1336).abs() < 0.005, "{first}");
        let ratio = f64::from(counts[0]) / f64::from(counts[1]);
        assert!((ratio - 2.0).abs() < 0.1, "{ratio}");
        assert!((zipf.top_share(1) - 0.1336).abs() < 0.001);
        assert_eq!(zipf.top_share(1_000), 1.0);
    }

    #[test]
    fn sequences_are_reproducible_and_in_range() {
        let zipf = Zipf::new(100_000, 0.9);
        let a = zipf.sequence(10_000, 42);
        assert_eq!(a, zipf.sequence(10_000, 42));
        assert_ne!(a, zipf.sequence(10_000, 43));
        assert!(a.iter().all(|&i| i < 100_000));
        assert_eq!(zipf.rank(0.0), 0);
        assert_eq!(zipf.rank(0.999_999_999_999), 99_999);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut order = permutation(1_000, 3);
        order.sort_unstable();
        assert_eq!(order, (0..1_000).collect::<Vec<_>>());
    }
}
