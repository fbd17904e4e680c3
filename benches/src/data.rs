//! The data every scenario shares: the cached value, the keys, and the pre-computed random read
//! sequences. Everything here is built before any clock starts.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// How many entries every cache holds, and how many distinct keys are read.
pub const ENTRIES: usize = 10_000;

/// The cached value: a user record of 10 fields, the shape of what services cache in practice
/// (several strings, a list, numbers, a flag). Cloning it allocates, as it would in a real service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Numeric identifier, the `n` of the key `user:{n}`.
    pub id: u64,
    /// Login name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Name shown to others.
    pub display_name: String,
    /// Country code.
    pub country: String,
    /// Roles granted to the user.
    pub roles: Vec<String>,
    /// Age in years.
    pub age: u32,
    /// Number of logins so far.
    pub login_count: u64,
    /// Reputation score.
    pub rating: f64,
    /// Whether the e-mail address is verified.
    pub verified: bool,
}

impl User {
    /// The user record for id `n`; the same `n` always gives the same record.
    pub fn sample(n: u64) -> Self {
        const COUNTRIES: [&str; 4] = ["FR", "DE", "JP", "BR"];
        Self {
            id: n,
            username: format!("user{n:05}"),
            email: format!("user{n:05}@example.com"),
            display_name: format!("User Number {n}"),
            country: COUNTRIES[(n % 4) as usize].to_string(),
            roles: vec!["reader".to_string(), "writer".to_string(), format!("team-{}", n % 16)],
            age: 18 + (n % 60) as u32,
            login_count: n * 7,
            rating: (n % 500) as f64 / 100.0,
            verified: n % 3 != 0,
        }
    }
}

/// The cache key of user `n`.
pub fn key(n: usize) -> String {
    format!("user:{n}")
}

/// How many times [`load_user`] ran: a cache that hits never calls it.
static LOADS: AtomicU64 = AtomicU64::new(0);

/// What a memoized function computes on a miss: the user for `key` (`user:{n}`). Every call is
/// counted, so a scenario that should only hit can prove it did.
pub fn load_user(key: &str) -> User {
    LOADS.fetch_add(1, Ordering::Relaxed);
    let n = key.strip_prefix("user:").and_then(|n| n.parse().ok()).unwrap_or(0);
    User::sample(n)
}

/// The number of [`load_user`] calls so far.
pub fn loads() -> u64 {
    LOADS.load(Ordering::Relaxed)
}

/// The keys and values every cache is filled with, and the read sequences.
#[derive(Debug)]
pub struct Dataset {
    /// `user:{n}` for n in `0..ENTRIES`, formatted once so formatting is never timed.
    pub keys: Vec<String>,
    /// `users[n]` is the value of `keys[n]`.
    pub users: Vec<User>,
    /// One sequence of uniformly random key indices per thread, each `ops_per_sample` long.
    pub reads: Vec<Vec<u32>>,
}

impl Dataset {
    /// Builds the keys, the values and `threads` read sequences of `ops_per_sample` indices each.
    /// The sequences are deterministic (fixed seeds), so every run and every contender reads the
    /// same keys in the same order.
    pub fn new(ops_per_sample: usize, threads: usize) -> Self {
        let keys = (0..ENTRIES).map(key).collect();
        let users = (0..ENTRIES as u64).map(User::sample).collect();
        let reads = (0..threads as u64).map(|thread| read_sequence(ops_per_sample, 0x5EED + thread)).collect();
        Self { keys, users, reads }
    }

    /// The read sequence of thread `thread` (thread 0 for single-threaded scenarios).
    pub fn reads(&self, thread: usize) -> &[u32] {
        &self.reads[thread]
    }
}

/// `len` key indices drawn uniformly from `0..ENTRIES`.
fn read_sequence(len: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64(seed);
    (0..len).map(|_| rng.below(ENTRIES) as u32).collect()
}

/// SplitMix64: a tiny, good-enough PRNG; its only job is a reproducible uniform sequence.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw from `[0, 1)` (the top 53 bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform draw from `0..n`, by multiply-shift (no division).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// `0..n` in a fixed shuffled order (Fisher–Yates driven by `seed`).
pub fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64(seed);
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cover_the_keys_uniformly_and_reproducibly() {
        let reads = read_sequence(100_000, 1);
        assert_eq!(reads, read_sequence(100_000, 1));
        let mut counts = vec![0u32; ENTRIES];
        for &i in &reads {
            counts[i as usize] += 1;
        }
        // 10 reads per key on average; a uniform draw leaves few keys unread.
        assert!(counts.iter().filter(|&&c| c == 0).count() < ENTRIES / 100);
    }

    #[test]
    fn load_user_matches_the_stored_value() {
        assert_eq!(load_user(&key(42)), User::sample(42));
    }
}
