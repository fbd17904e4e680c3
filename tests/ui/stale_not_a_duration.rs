use cache_tower::cached_tower;

#[cached_tower(config = "rates", key = "rate:{pair}", stale = "an hour", fail_safe = "0s")]
fn exchange_rate(pair: &str) -> u32 {
    pair.len() as u32
}

fn main() {
    let _ = exchange_rate("EURUSD");
}
