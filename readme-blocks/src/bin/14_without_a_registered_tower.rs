use cache_tower::{cached_tower, registry};

#[cached_tower(config = "reports", key = "report:{day}")]
fn daily_report(day: u32) -> String {
    format!("report for day {day}") // a slow aggregation in real life
}

fn main() -> cache_tower::Result<()> {
    // No tower "reports" yet: the body runs uncached, and a warning says so, once.
    assert_eq!(daily_report(1), "report for day 1");

    // The start-up check that catches it: an error naming every missing tower.
    let missing = registry::require(&["reports"]).unwrap_err();
    println!("{missing}");

    registry::register_json(r#"{"reports": [{"adapter": "memory"}]}"#)?;
    registry::require(&["reports"])?;
    assert_eq!(daily_report(1), "report for day 1"); // cached from now on
    assert!(registry::get("reports").is_some_and(|reports| reports.exists("report:1")));
    Ok(())
}
