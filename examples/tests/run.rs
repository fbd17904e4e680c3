//! The examples (the bins of `cache-tower-examples`) run to exit code 0 and print the same lines
//! twice in a row, timings aside, in each of three environments: `REDIS_URL` unset, set to a
//! live server this test starts, and set to a loopback port where nothing listens (Redis down).
//! A cache must never make the app less available, and an example whose output changes from run
//! to run teaches nothing.
//!
//! # Timings
//!
//! Every example prints a timing in one form only, `(took 12.345 ms)`, and the test masks
//! exactly that form (to `(took …)`) before comparing. Any other timing left in the output
//! (a number followed by `ms`, `µs` or `ns`) fails the test: it would not be masked.
//!
//! # The binaries
//!
//! This test belongs to the examples' own package, so cargo builds the example binaries with it,
//! in the same build, and hands over their paths (`CARGO_BIN_EXE_<name>`): nothing is rebuilt
//! or searched for.
//!
//! Each example gets a test of its own and a Redis server of its own; the two runs of one
//! environment are back to back, so the second starts with what the first left in Redis (each
//! example empties its own namespace first). Each run has a budget of [`RUN_BUDGET`]: past it,
//! the example is killed and the test fails with what it printed.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cache_tower_tests::redis_server::RedisServer;

/// The longest one run of an example may take.
const RUN_BUDGET: Duration = Duration::from_secs(60);

#[test]
fn quickstart() {
    check("quickstart");
}

#[test]
fn two_level() {
    check("two_level");
}

#[test]
fn memoize() {
    check("memoize");
}

#[test]
fn registry_file() {
    check("registry_file");
}

#[test]
fn axum_handler() {
    check("axum_handler");
}

#[test]
fn manual() {
    check("manual");
}

/// Runs `example` twice in each environment and compares the runs.
fn check(example: &str) {
    let binary = &binary(example);
    let server = RedisServer::start();
    let environments = [
        ("REDIS_URL unset", None),
        ("REDIS_URL set to a live server", Some(server.url())),
        ("REDIS_URL set to a port where nothing listens", Some(format!("redis://127.0.0.1:{}", dead_port()))),
    ];
    for (environment, url) in &environments {
        let (first, _) = run_twice(binary, "REDIS_URL", url.as_deref(), &format!("{example}, {environment}"));
        // The environment is the one intended: the example did reach the live server, and did
        // try the dead port (quickstart never uses Redis).
        let refused = first.stdout.contains("Connection refused");
        match url {
            Some(url) if url == &server.url() => {
                assert!(!refused, "{example}, {environment}: it could not reach the live server:\n{}", first.stdout)
            }
            Some(_) if example != "quickstart" => {
                assert!(refused, "{example}, {environment}: it never said Redis was down:\n{}", first.stdout)
            }
            _ => {}
        }
    }
}

/// The cluster example, twice in each environment: `REDIS_CLUSTER_NODES` unset, naming a live
/// 3-master cluster this test starts, and naming a port where nothing listens.
#[test]
fn cluster() {
    let binary = &binary("cluster");
    let cluster = cache_tower_tests::redis_cluster::TestCluster::start();
    let environments = [
        ("REDIS_CLUSTER_NODES unset", None),
        ("REDIS_CLUSTER_NODES naming a live cluster", Some(cluster.seeds().join(","))),
        ("REDIS_CLUSTER_NODES naming a port where nothing listens", Some(format!("127.0.0.1:{}", dead_port()))),
    ];
    for (index, (environment, nodes)) in environments.iter().enumerate() {
        let (first, _) = run_twice(binary, "REDIS_CLUSTER_NODES", nodes.as_deref(), &format!("cluster, {environment}"));
        let refused = first.stdout.contains("Connection refused");
        let found_all = first.stdout.contains("1000 found");
        match index {
            0 => assert!(first.stdout.contains("memory only"), "{environment}:\n{}", first.stdout),
            1 => assert!(found_all && !refused, "{environment}: it did not read the batches back:\n{}", first.stdout),
            _ => assert!(refused, "{environment}: it never said the cluster was down:\n{}", first.stdout),
        }
    }
}

/// Runs `binary` twice with `variable` set to `value` (or removed) and checks that both runs
/// printed the same, timings masked; the two outputs.
fn run_twice(binary: &Path, variable: &str, value: Option<&str>, what: &str) -> (Output, Output) {
    let first = run(binary, variable, value, &format!("{what}, first run"));
    let second = run(binary, variable, value, &format!("{what}, second run"));
    for (stream, a, b) in [("stdout", &first.stdout, &second.stdout), ("stderr", &first.stderr, &second.stderr)] {
        if let Some(line) = first_difference(a, b) {
            panic!(
                "{what}: the two runs printed different {stream} (timings masked), first at line {line}\n\
                 --- first run ---\n{a}\n--- second run ---\n{b}"
            );
        }
    }
    (first, second)
}

/// A run's output, timings masked.
struct Output {
    stdout: String,
    stderr: String,
}

/// Runs `binary` with `variable` set to `value` (or removed), within [`RUN_BUDGET`]; fails
/// unless it exits 0 and prints only maskable timings.
fn run(binary: &Path, variable: &str, value: Option<&str>, what: &str) -> Output {
    let mut command = Command::new(binary);
    match value {
        Some(value) => command.env(variable, value),
        None => command.env_remove(variable),
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{what}: cannot start {}: {err}", binary.display()));
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + RUN_BUDGET;
    let status = loop {
        match child.try_wait().unwrap_or_else(|err| panic!("{what}: waiting for it: {err}")) {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let (stdout, stderr) = (stdout.join().expect("reading stdout"), stderr.join().expect("reading stderr"));
    let printed = format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    match status {
        None => panic!("{what}: still running after {RUN_BUDGET:?}, killed\n{printed}"),
        Some(status) if !status.success() => panic!("{what}: exited with {status}\n{printed}"),
        Some(_) => {}
    }
    let output = Output { stdout: mask_timings(&stdout), stderr: mask_timings(&stderr) };
    for text in [&output.stdout, &output.stderr] {
        if let Some(line) = text.lines().find(|line| has_unmasked_timing(line)) {
            panic!("{what}: a timing not in the form `(took 12.345 ms)`, which is not masked: {line:?}\n{printed}");
        }
    }
    output
}

/// Reads a pipe to its end on a thread of its own (so a full pipe never blocks the child).
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Replaces every `(took <digits>.<digits> ms)` with `(took …)`: the one form of timing the
/// examples print.
fn mask_timings(text: &str) -> String {
    const OPEN: &str = "(took ";
    const CLOSE: &str = " ms)";
    let mut masked = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let number = after.find(CLOSE).map(|end| &after[..end]);
        masked.push_str(&rest[..start]);
        match number.filter(|number| is_decimal(number)) {
            Some(number) => {
                masked.push_str("(took …)");
                rest = &after[number.len() + CLOSE.len()..];
            }
            None => {
                masked.push_str(OPEN);
                rest = after;
            }
        }
    }
    masked.push_str(rest);
    masked
}

/// `12.345`: digits, a point, digits.
fn is_decimal(text: &str) -> bool {
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    text.split_once('.').is_some_and(|(whole, fraction)| all_digits(whole) && all_digits(fraction))
}

/// Whether `line` still holds a timing: a digit, then optionally a space, then `ms`, `µs` or
/// `ns` ending the word.
fn has_unmasked_timing(line: &str) -> bool {
    let chars: Vec<char> = line.chars().collect();
    (0..chars.len()).any(|i| {
        if !chars[i].is_ascii_digit() {
            return false;
        }
        let unit = if chars.get(i + 1) == Some(&' ') { i + 2 } else { i + 1 };
        let is_unit = matches!(chars.get(unit), Some('m' | 'µ' | 'n')) && chars.get(unit + 1) == Some(&'s');
        is_unit && !chars.get(unit + 2).is_some_and(|c| c.is_alphanumeric())
    })
}

/// The number (from 1) of the first line where `a` and `b` differ.
fn first_difference(a: &str, b: &str) -> Option<usize> {
    if a == b {
        return None;
    }
    let (mut a_lines, mut b_lines) = (a.lines(), b.lines());
    let mut number = 1;
    loop {
        match (a_lines.next(), b_lines.next()) {
            (Some(x), Some(y)) if x == y => number += 1,
            (None, None) => return Some(number), // they differ in line endings only
            _ => return Some(number),
        }
    }
}

/// A loopback port where nothing listens: one the system just gave out, released.
fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free loopback port");
    listener.local_addr().expect("the listener's address").port()
}

/// The path of an example's binary, built by cargo for this test.
fn binary(example: &str) -> PathBuf {
    PathBuf::from(match example {
        "quickstart" => env!("CARGO_BIN_EXE_quickstart"),
        "two_level" => env!("CARGO_BIN_EXE_two_level"),
        "memoize" => env!("CARGO_BIN_EXE_memoize"),
        "registry_file" => env!("CARGO_BIN_EXE_registry_file"),
        "axum_handler" => env!("CARGO_BIN_EXE_axum_handler"),
        "manual" => env!("CARGO_BIN_EXE_manual"),
        "cluster" => env!("CARGO_BIN_EXE_cluster"),
        other => panic!("no example named {other:?}"),
    })
}

#[test]
fn the_mask_covers_the_timing_form_and_nothing_else() {
    assert_eq!(mask_timings("round 1: 42 (took 30.123 ms)\nx (took 0.002 ms)"), "round 1: 42 (took …)\nx (took …)");
    assert_eq!(mask_timings("(took a while ms) (took 1 ms)"), "(took a while ms) (took 1 ms)");
    assert!(has_unmasked_timing("in 12.3ms"));
    assert!(has_unmasked_timing("took 28.052µs"));
    assert!(has_unmasked_timing("(took 1 ms)"));
    assert!(!has_unmasked_timing("round 1 (took …)"));
    assert!(!has_unmasked_timing("TTL 30 seconds, 2 misses, 5 minutes"));
}
