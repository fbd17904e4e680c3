use cache_tower::cached_tower;

#[cached_tower(config = "sums", key = "sum")]
fn sum((a, b): (u64, u64)) -> u64 {
    a + b
}

fn main() {
    sum((1, 2));
    // The companions exist even so: no second error for them.
    sum_uncached((1, 2));
    let _ = sum_invalidate((1, 2));
}
