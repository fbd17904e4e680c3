//! A service instance for the cross-process tests (`tests/coherence.rs`): a memory layer over a
//! Redis layer, driven by line commands on stdin, one answer line each on stdout.
//!
//! ```text
//! tower_peer <redis-url> <namespace> [--memory-namespace <ns>] [--timeout-ms <ms>] [--no-invalidation]
//! ```
//!
//! The tower is built from the JSON configuration (so `"invalidation": false` is the switch the
//! tests exercise). Once the invalidation listener has subscribed — the tower clears the memory
//! layer when it does — the peer prints `ready`; with invalidation off, at once.
//!
//! | command | answer |
//! |---|---|
//! | `get <key>` | `hit <value as a JSON string>` or `miss` |
//! | `set <key> <value>` | `ok` or `err <message>` |
//! | `mset <k> <v> [<k> <v>]...` | `ok` or `err <message>` |
//! | `delete <key>` | `ok` or `err <message>` |
//! | `flush` | `ok` or `err <message>` |
//! | `clear` | `ok` or `err <message>` |
//! | `tagged <key> <value> <tag> [<tag>]...` | `ok` or `err <message>`: `set_with` the tags |
//! | `invalidate-tag <tag>` | `ok` or `err <message>` |
//! | `l0 <key>` | `yes` or `no`: whether the memory layer holds the key |
//! | `stampede <key> <callers> <work_ms> <lock_ms>` | `ok <slowest caller's ms> <values>`: that many threads call `get_or_set` of the key at once with the distributed lock (`lock_ms`), the computation counting itself with `INCR stampede:<namespace><key>` in Redis, then taking `work_ms` |
//! | `ping` | `pong` |
//! | `quit` | `bye`, then the peer exits |
//!
//! Keys and values are single words, or JSON strings (`"a key\nwith a newline"`) for anything
//! else. Values are stored as JSON strings. Bad input gets `err <message>`, never a panic.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;

use cache_tower::{CacheTower, adapter::CacheAdapter};
use cache_tower_tests::tracking::{SENTINEL, SUBSCRIBE_WITHIN, plant_sentinel, sentinel_cleared_within};

struct Options {
    url: String,
    namespace: String,
    memory_namespace: String,
    timeout_ms: u64,
    invalidation: bool,
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("tower_peer: {message}");
            eprintln!(
                "usage: tower_peer <redis-url> <namespace> [--memory-namespace <ns>] [--timeout-ms <ms>] [--no-invalidation]"
            );
            return ExitCode::from(2);
        }
    };
    let (tower, memory) = match build(&options) {
        Ok(built) => built,
        Err(err) => {
            eprintln!("tower_peer: cannot build the tower: {err}");
            return ExitCode::from(1);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let subscribed = options.invalidation && sentinel_cleared_within(&*memory, SUBSCRIBE_WITHIN);
    let _ = memory.delete(SENTINEL);
    let ready = if options.invalidation && !subscribed { "ready unsubscribed" } else { "ready" };
    if answer(&mut out, ready).is_err() {
        return ExitCode::from(1);
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (reply, quit) = match parse_command(&line) {
            Ok(Command::Quit) => ("bye".to_owned(), true),
            Ok(command) => (run(&tower, &*memory, &options, command), false),
            Err(message) => (format!("err {message}"), false),
        };
        if answer(&mut out, &reply).is_err() || quit {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let url = args.next().ok_or("missing the Redis URL")?;
    let namespace = args.next().ok_or("missing the namespace")?;
    let mut options =
        Options { url, memory_namespace: namespace.clone(), namespace, timeout_ms: 1000, invalidation: true };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--memory-namespace" => options.memory_namespace = args.next().ok_or("--memory-namespace needs a value")?,
            "--timeout-ms" => {
                let value = args.next().ok_or("--timeout-ms needs a value")?;
                options.timeout_ms =
                    value.parse().map_err(|_| format!("--timeout-ms: {value:?} is not a number of milliseconds"))?;
            }
            "--no-invalidation" => options.invalidation = false,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

/// The tower, and its memory layer (to answer `l0`). Each layer comes from the JSON
/// configuration; they are stacked only once a sentinel is in the memory layer, so that the
/// listener's clearing of it on subscribing is seen (see `cache_tower_tests::tracking`).
fn build(options: &Options) -> Result<(CacheTower, Arc<dyn CacheAdapter>), String> {
    let memory = only_layer(serde_json::json!([{"adapter": "memory", "namespace": options.memory_namespace}]))?;
    let redis = only_layer(serde_json::json!([
        {"adapter": "redis", "namespace": options.namespace, "params": {
            "url": options.url,
            "timeout_ms": options.timeout_ms,
            "connect_timeout_ms": options.timeout_ms,
            "invalidation": options.invalidation,
        }},
    ]))?;
    plant_sentinel(&*memory).map_err(|err| err.to_string())?;
    let tower = CacheTower::new();
    // Stacking the layers starts the invalidation listener.
    tower.set_layers([Arc::clone(&memory), redis]);
    Ok((tower, memory))
}

/// The one layer a one-layer configuration describes.
fn only_layer(config: serde_json::Value) -> Result<Arc<dyn CacheAdapter>, String> {
    let tower = CacheTower::from_config(&config).map_err(|err| err.to_string())?;
    tower.get_layers().into_iter().next().ok_or_else(|| "the configuration has no layer".to_owned())
}

fn answer(out: &mut impl Write, reply: &str) -> std::io::Result<()> {
    writeln!(out, "{reply}")?;
    out.flush()
}

enum Command {
    Get(String),
    Set(String, String),
    Mset(Vec<(String, String)>),
    Delete(String),
    Flush,
    Clear,
    Tagged(String, String, Vec<String>),
    InvalidateTag(String),
    L0(String),
    Stampede { key: String, callers: usize, work_ms: u64, lock_ms: u64 },
    Ping,
    Quit,
}

fn parse_command(line: &str) -> Result<Command, String> {
    let words = words(line)?;
    let Some((name, args)) = words.split_first() else { return Err("empty command".to_owned()) };
    let arity = |count: usize| {
        if args.len() == count { Ok(()) } else { Err(format!("{name} takes {count} argument(s), got {}", args.len())) }
    };
    match name.as_str() {
        "get" => arity(1).map(|()| Command::Get(args[0].clone())),
        "set" => arity(2).map(|()| Command::Set(args[0].clone(), args[1].clone())),
        "mset" if args.is_empty() || args.len() % 2 != 0 => {
            Err(format!("mset takes key value pairs, got {} argument(s)", args.len()))
        }
        "mset" => Ok(Command::Mset(args.chunks(2).map(|pair| (pair[0].clone(), pair[1].clone())).collect())),
        "delete" => arity(1).map(|()| Command::Delete(args[0].clone())),
        "flush" => arity(0).map(|()| Command::Flush),
        "clear" => arity(0).map(|()| Command::Clear),
        "tagged" if args.len() < 3 => {
            Err(format!("tagged takes a key, a value and tags, got {} argument(s)", args.len()))
        }
        "tagged" => Ok(Command::Tagged(args[0].clone(), args[1].clone(), args[2..].to_vec())),
        "invalidate-tag" => arity(1).map(|()| Command::InvalidateTag(args[0].clone())),
        "l0" => arity(1).map(|()| Command::L0(args[0].clone())),
        "stampede" => {
            arity(4)?;
            let number = |word: &String| word.parse::<u64>().map_err(|_| format!("{word:?} is not a number"));
            let callers = usize::try_from(number(&args[1])?).map_err(|_| "too many callers".to_owned())?;
            Ok(Command::Stampede {
                key: args[0].clone(),
                callers,
                work_ms: number(&args[2])?,
                lock_ms: number(&args[3])?,
            })
        }
        "ping" => arity(0).map(|()| Command::Ping),
        "quit" => arity(0).map(|()| Command::Quit),
        other => {
            Err(format!("unknown command {other:?} (get, set, mset, delete, flush, clear, l0, stampede, ping, quit)"))
        }
    }
}

/// Splits a line into words: runs of non-blank characters, or JSON strings.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if rest.starts_with('"') {
            let mut strings = serde_json::Deserializer::from_str(rest).into_iter::<String>();
            match strings.next() {
                Some(Ok(word)) => words.push(word),
                Some(Err(err)) => return Err(format!("bad JSON string in {rest:?}: {err}")),
                None => return Err(format!("bad JSON string in {rest:?}")),
            }
            let end = strings.byte_offset();
            rest = &rest[end..];
            if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
                return Err(format!("a JSON string must be followed by a blank, not {rest:?}"));
            }
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            words.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Ok(words)
}

/// `callers` threads calling `get_or_set` of `key` at once with the distributed lock: the
/// slowest call's milliseconds, and the distinct values they got.
fn stampede(tower: &CacheTower, options: &Options, key: &str, callers: usize, work_ms: u64, lock_ms: u64) -> String {
    let counter = format!("stampede:{}{key}", options.namespace);
    let load_options = cache_tower::LoadOptions::new().lock(std::time::Duration::from_millis(lock_ms));
    let barrier = std::sync::Barrier::new(callers);
    let results: Vec<(u128, String)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..callers)
            .map(|_| {
                let (counter, barrier, load_options) = (&counter, &barrier, &load_options);
                scope.spawn(move || {
                    barrier.wait();
                    let started = std::time::Instant::now();
                    let value = tower.get_or_set_with(key, load_options, || {
                        // Bounded, so that a frozen server delays the count, not the test.
                        let timeout = std::time::Duration::from_millis(options.timeout_ms);
                        let counted = redis::Client::open(options.url.as_str())
                            .and_then(|client| client.get_connection_with_timeout(timeout))
                            .and_then(|mut connection| {
                                connection.set_read_timeout(Some(timeout))?;
                                redis::cmd("INCR").arg(counter).query::<i64>(&mut connection)
                            });
                        if let Err(err) = counted {
                            eprintln!("tower_peer: counting a load: {err}");
                        }
                        std::thread::sleep(std::time::Duration::from_millis(work_ms));
                        format!("loaded by {}", std::process::id())
                    });
                    (started.elapsed().as_millis(), value)
                })
            })
            .collect();
        threads.into_iter().filter_map(|thread| thread.join().ok()).collect()
    });
    let slowest = results.iter().map(|(ms, _)| *ms).max().unwrap_or_default();
    let mut values: Vec<&str> = results.iter().map(|(_, value)| value.as_str()).collect();
    values.sort_unstable();
    values.dedup();
    format!("ok {slowest} {}", serde_json::Value::from(values))
}

fn run(tower: &CacheTower, memory: &dyn CacheAdapter, options: &Options, command: Command) -> String {
    let done = |result: cache_tower::Result<()>| match result {
        Ok(()) => "ok".to_owned(),
        Err(err) => format!("err {}", one_line(&err.to_string())),
    };
    match command {
        Command::Get(key) => match tower.get::<String>(&key) {
            Some(value) => format!("hit {}", serde_json::Value::String(value)),
            None => "miss".to_owned(),
        },
        Command::Set(key, value) => done(tower.set(&key, value)),
        Command::Mset(items) => done(tower.mset(items)),
        Command::Delete(key) => done(tower.delete(&key)),
        Command::Flush => done(tower.flush()),
        Command::Clear => done(tower.clear()),
        Command::Tagged(key, value, tags) => {
            done(tower.set_with(&key, value, &cache_tower::LoadOptions::new().tags(tags)))
        }
        Command::InvalidateTag(tag) => done(tower.invalidate_tag(&tag)),
        Command::L0(key) => match memory.exists(&key) {
            Ok(true) => "yes".to_owned(),
            Ok(false) => "no".to_owned(),
            Err(err) => format!("err {}", one_line(&err.to_string())),
        },
        Command::Stampede { key, callers, work_ms, lock_ms } => {
            stampede(tower, options, &key, callers, work_ms, lock_ms)
        }
        Command::Ping => "pong".to_owned(),
        Command::Quit => "bye".to_owned(),
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_and_json_strings() {
        assert_eq!(words("  set k  v ").unwrap(), ["set", "k", "v"]);
        assert_eq!(words(r#"set "a key\nwith newline" "ü v""#).unwrap(), ["set", "a key\nwith newline", "ü v"]);
        assert!(words(r#"get "unterminated"#).is_err());
        assert!(words(r#"get "a"b"#).is_err());
    }

    #[test]
    fn rejects_bad_commands_without_panicking() {
        for line in ["", "get", "get a b", "mset a", "mset", "flush now", "frobnicate", "set \"x"] {
            assert!(parse_command(line).is_err(), "{line:?}");
        }
        assert!(matches!(parse_command("mset a 1 b 2"), Ok(Command::Mset(items)) if items.len() == 2));
    }
}
