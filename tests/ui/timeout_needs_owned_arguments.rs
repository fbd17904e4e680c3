use cache_tower::cached_tower;

#[cached_tower(config = "rates", key = "rate:{pair}", soft_timeout = "100ms", hard_timeout = "1s")]
fn exchange_rate(pair: &str) -> u32 {
    pair.len() as u32
}

struct Rates;

impl Rates {
    #[cached_tower(config = "rates", key = "rate:{pair}", refresh_ahead = 0.8)]
    fn rate(&self, pair: String) -> Result<u32, String> {
        Ok(pair.len() as u32)
    }
}

#[cached_tower(config = "rates", key = "rate:{pair}", refresh_ahead = 1.5)]
fn bad_fraction(pair: String) -> u32 {
    pair.len() as u32
}

fn main() {
    let _ = exchange_rate("EURUSD");
    let _ = Rates.rate("EURUSD".to_owned());
    let _ = bad_fraction("EURUSD".to_owned());
}
