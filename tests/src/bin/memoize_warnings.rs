//! A program whose standard error the memoize-setup tests read (`tests/memoize_setup.rs`): the
//! warnings a memoized function gives when it cannot cache, or when it blocks a tokio runtime.
//!
//! ```text
//! memoize_warnings unregistered            # a function naming a tower nobody registered
//! memoize_warnings unregistered-traced     # the same, with a tracing subscriber on stdout
//! memoize_warnings blocking <redis-url>    # a blocking memoized call inside a tokio runtime
//! memoize_warnings async <redis-url>       # the async form inside a runtime: no warning
//! ```
//!
//! Each mode calls its function three times, with three keys, and prints `ran <n>` (how often
//! the body ran) on stdout.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_tower::{CacheTower, cached_tower, registry};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached_tower(config = "nobody_registered_this", key = "unregistered:{id}")]
fn unregistered(id: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[cached_tower(config = "remote", key = "blocking:{id}")]
fn blocking(id: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[cached_tower(config = "remote", key = "async:{id}")]
async fn non_blocking(id: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

fn register_remote(url: &str) -> Result<(), String> {
    let json = format!(
        r#"[{{"adapter": "memory"}}, {{"adapter": "redis", "namespace": "warnings:", "params": {{"url": "{url}"}}}}]"#
    );
    let tower = CacheTower::from_json(&json).map_err(|err| err.to_string())?;
    tower.flush().map_err(|err| err.to_string())?;
    registry::register("remote", tower);
    Ok(())
}

fn run(mode: &str, url: Option<&str>) -> Result<(), String> {
    let runtime = || tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build();
    match (mode, url) {
        ("unregistered", None) => (0..3).for_each(|id| assert_eq!(unregistered(id), id)),
        ("unregistered-traced", None) => {
            tracing_subscriber::fmt().with_writer(std::io::stdout).with_ansi(false).init();
            (0..3).for_each(|id| assert_eq!(unregistered(id), id));
        }
        ("blocking", Some(url)) => {
            register_remote(url)?;
            let runtime = runtime().map_err(|err| err.to_string())?;
            runtime.block_on(async { (0..3).for_each(|id| assert_eq!(blocking(id), id)) });
        }
        ("async", Some(url)) => {
            register_remote(url)?;
            let runtime = runtime().map_err(|err| err.to_string())?;
            runtime.block_on(async {
                for id in 0..3 {
                    non_blocking(id).await;
                }
            });
        }
        _ => return Err(format!("unknown mode {mode:?} (see the file's docs)")),
    }
    println!("ran {}", RUNS.load(Ordering::SeqCst));
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or_default();
    match run(mode, args.get(1).map(String::as_str)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("memoize_warnings: {err}");
            ExitCode::FAILURE
        }
    }
}
