//! The README's code blocks, checked the way a newcomer uses them: each Rust block pasted into a
//! new crate with the README's `Cargo.toml`, built, and run.
//!
//! Every ```` ```rust ```` block of `README.md` is a program of this package,
//! `src/bin/<NN>_<slug>.rs` (see the library's documentation, `src/lib.rs`). Being bins of a
//! workspace member, a block that does not compile breaks the build of this test (and of the
//! workspace), with the compiler's message at the block's line in its file.
//!
//! * [`src_bin_holds_the_readme_rust_blocks`]: `src/bin/` holds exactly those files, with exactly
//!   that text, and every block is fit to paste (a Rust block is a complete program marked just
//!   `rust`; every other block is marked with its language). After changing the README, rewrite
//!   `src/bin/` with
//!
//!   ```sh
//!   UPDATE_README_BLOCKS=1 cargo test -p readme-blocks --lib
//!   ```
//!
//!   which does not build the programs, so it works even when one does not compile; then run
//!   this test again. (With the variable set, this test rewrites them too.)
//! * [`the_programs_use_the_readme_cargo_toml`]: the `[dependencies]` of this package are those
//!   of the README's first ```` ```toml ```` block (its `Cargo.toml`), line for line, except that
//!   cache-tower comes from this workspace instead of the README's path to a clone. (Cargo
//!   unifies a dependency's features across what one build needs, so a block could still use a
//!   feature the README's line does not ask for but another crate of the build turns on; a
//!   newcomer's build has cache-tower's own share too, such as tokio's `rt`, `time` and `sync`.)
//! * [`json_blocks_are_json`]: every ```` ```json ```` block parses, and each list of layers
//!   loads as a tower.
//! * [`every_rust_block_runs`]: every program runs to success within [`BUDGET`], with
//!   `REDIS_URL` pointing at a `redis-server` this test starts on a free loopback port
//!   (`redis-server` must be installed: `bash scripts/test.sh` installs it). Its output is
//!   printed when it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use cache_tower::CacheTower;
use cache_tower_tests::redis_server::RedisServer;
use readme_blocks::{
    UPDATE_COMMAND, check_bin_dir, dependencies, manifest_dir, readme_blocks, rust_programs, updating, without_entry,
};

/// One program of `src/bin/`, as built for this test (listed by `build.rs`).
struct Bin {
    name: &'static str,
    /// The path of the built program.
    exe: &'static str,
    /// The text of its source file when it was built.
    source: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/bins.rs"));

/// The longest one program may run.
const BUDGET: Duration = Duration::from_secs(60);

// ===== src/bin/ is the README's Rust blocks =====

#[test]
fn src_bin_holds_the_readme_rust_blocks() {
    if let Err(report) = check_bin_dir(updating()) {
        panic!("{report}");
    }
}

// ===== the README's Cargo.toml =====

#[test]
fn the_programs_use_the_readme_cargo_toml() {
    let blocks = readme_blocks();
    let cargo_toml = blocks
        .iter()
        .find(|block| block.info == "toml")
        .expect("README.md shows a Cargo.toml: its first ```toml block");
    let readme = dependencies(&cargo_toml.text);
    assert!(
        readme.contains_key("cache-tower"),
        "README.md line {}: the Cargo.toml block has no [dependencies] with cache-tower",
        cargo_toml.line
    );

    let manifest_path = manifest_dir().join("Cargo.toml");
    let manifest = fs::read_to_string(&manifest_path).expect("reading readme-blocks/Cargo.toml");
    let ours = dependencies(&manifest);

    let names = |deps: &BTreeMap<String, String>| deps.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(
        names(&ours),
        names(&readme),
        "readme-blocks/Cargo.toml (left) must have exactly the [dependencies] of the Cargo.toml block at README.md \
         line {} (right)",
        cargo_toml.line
    );
    for (name, spec) in &readme {
        let (wanted, have) = if name == "cache-tower" {
            // The README points at a clone by path; this package takes the workspace's copy.
            (without_entry(spec, "path"), without_entry(&ours[name], "workspace"))
        } else {
            (spec.clone(), ours[name].clone())
        };
        assert_eq!(
            have, wanted,
            "readme-blocks/Cargo.toml (left): `{name}` is not as the Cargo.toml block at README.md line {} (right) has it",
            cargo_toml.line
        );
    }
}

// ===== the JSON blocks =====

#[test]
fn json_blocks_are_json() {
    for block in readme_blocks().iter().filter(|block| block.info == "json") {
        let value: serde_json::Value = serde_json::from_str(&block.text)
            .unwrap_or_else(|err| panic!("README.md line {}: the JSON block does not parse: {err}", block.line));
        if value.is_array() {
            // A list of layers: it loads (nothing connects until a tower is used).
            if let Err(err) = CacheTower::from_config(&value) {
                panic!("README.md line {}: the list of layers does not load: {err}", block.line);
            }
        }
    }
}

// ===== running the programs =====

/// How one program ended.
struct Run {
    /// `None` when it was killed for running past [`BUDGET`].
    status: Option<ExitStatus>,
    took: Duration,
    stdout: String,
    stderr: String,
}

/// Runs `bin` with `REDIS_URL` set, killing it after [`BUDGET`].
fn run(bin: &Bin, redis_url: &str) -> Run {
    let started = Instant::now();
    let mut child = Command::new(bin.exe)
        .env("REDIS_URL", redis_url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("starting {}: {err}", bin.exe));
    // Read both pipes while it runs, so a talkative program never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|pipe| Box::new(pipe) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|pipe| Box::new(pipe) as Box<dyn Read + Send>));
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a program") {
            break Some(status);
        }
        if started.elapsed() > BUDGET {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let took = started.elapsed();
    Run { status, took, stdout: stdout.join().expect("reading stdout"), stderr: stderr.join().expect("reading stderr") }
}

#[test]
fn every_rust_block_runs() {
    let blocks = readme_blocks();
    let programs = rust_programs(&blocks);
    let redis = RedisServer::start();
    let mut failures = Vec::new();
    let mut not_built = Vec::new();
    for (name, block) in &programs {
        let Some(bin) = BINS.iter().find(|bin| bin.name == name && bin.source == block.text) else {
            not_built.push(format!("{name} (README.md line {})", block.line));
            continue;
        };
        let run = run(bin, &redis.url());
        let outcome = match run.status {
            Some(status) if status.success() => {
                println!("{name}: ok in {:.2?}", run.took);
                continue;
            }
            Some(status) => format!("{status}"),
            None => format!("killed after {BUDGET:?}"),
        };
        failures.push(format!(
            "{name} (the block at README.md line {}): {outcome} after {:.2?}\n--- stdout ---\n{}--- stderr ---\n{}",
            block.line, run.took, run.stdout, run.stderr
        ));
    }
    assert!(failures.is_empty(), "README blocks that failed:\n\n{}", failures.join("\n"));
    assert!(
        not_built.is_empty(),
        "no program was built from the current text of these README blocks:\n{}\n\n{}",
        not_built.join("\n"),
        if updating() {
            "src/bin/ was just rewritten from README.md: run the test again, without UPDATE_README_BLOCKS".to_owned()
        } else {
            format!("rewrite src/bin/ with\n    {UPDATE_COMMAND}\nthen run the test again")
        }
    );
}
