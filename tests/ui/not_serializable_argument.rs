use cache_tower::cached_tower;

// Everything but `Serialize`: it cannot be written into the default key.
#[derive(Clone, Debug)]
struct Query {
    text: String,
}

#[cached_tower(config = "search")]
fn search(limit: u32, query: Query) -> Vec<String> {
    vec![query.text; limit as usize]
}

fn main() {
    search(1, Query { text: "x".to_owned() });
}
