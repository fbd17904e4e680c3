use cache_tower::cached_tower;

#[cached_tower(config = "rates", key = "rate:{pair}", ttl = "5 minutes")]
fn exchange_rate(pair: &str) -> u32 {
    pair.len() as u32
}

fn main() {
    let _ = exchange_rate("EURUSD");
}
