use cache_tower::cached_tower;

// Everything a cached value needs but `Serialize`.
#[derive(Clone, serde::Deserialize)]
struct Report {
    total: u64,
}

#[cached_tower(config = "reports", key = "report:{id}")]
fn load_report(id: u64) -> Report {
    Report { total: id }
}

fn main() {
    load_report(1);
}
