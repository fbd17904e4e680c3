use cache_tower::cached_tower;

struct Counter {
    calls: u64,
}

impl Counter {
    #[cached_tower(config = "counters", key = "count:{id}")]
    fn count(&mut self, id: u64) -> u64 {
        self.calls += 1;
        id + self.calls
    }
}

fn main() {
    let mut counter = Counter { calls: 0 };
    counter.count(1);
    // The companions exist even so: no second error for them.
    counter.count_uncached(1);
    let _ = counter.count_invalidate(1);
}
