//! What a test's redis-server has run: the calls of each command (`INFO commandstats`), for the
//! tests that count what an operation sends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Calls of each command on the server, without the `INFO` itself.
pub fn command_calls(raw: &mut redis::Connection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(raw).unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|field| field.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .filter(|(name, _)| name != "info")
        .collect()
}

/// The calls of each command once the server has been idle for 100 ms (a listener's read-back
/// of an own write, on its own thread, has come and gone); at most 10 s of waiting.
pub fn settled_calls(raw: &mut redis::Connection) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = command_calls(raw);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = command_calls(raw);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}
