//! Child processes of the runner: the runner re-executes its own binary
//! (`std::env::current_exe()`) with a hidden first argument, so that a scenario can put a tower
//! in a process of its own without building another package's binary.
//!
//! ```text
//! <runner> --peer <role> <redis-url> <namespace>     coherence/staleness: a tower serving line commands
//!                                                    (coherence/cluster-staleness: <redis-url> is
//!                                                    cluster:<host:port>,...)
//! <runner> --stampede-peer <redis-url> <namespace> <callers> <loader-ms> <lock-ms>
//!                                                    redis/distributed-stampede: one process of callers
//! <runner> --rss-child <contender> <ops>             memory/bounded-rss: one contender's workload
//! ```
//!
//! A child talks through its stdin and stdout, one line per message; its stderr is the runner's.
//! The runner reads each child's stdout on a thread of its own that stamps every line with the
//! moment it arrived ([`Instant`], the runner's one monotonic clock), so that timings between two
//! children never compare two processes' clocks.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child as Process, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::BoxResult;

/// Runs the child mode named by the first argument, if any: `None` when this is the runner.
pub fn dispatch(args: &[String]) -> Option<ExitCode> {
    match args.first().map(String::as_str) {
        Some("--peer") => Some(super::staleness::peer_main(&args[1..])),
        Some("--stampede-peer") => Some(super::distributed_stampede::peer_main(&args[1..])),
        Some("--rss-child") => Some(super::bounded_rss::child_main(&args[1..])),
        _ => None,
    }
}

/// A child process of the runner. Dropping it kills the process (if it still runs) and waits.
pub(super) struct Child {
    name: String,
    process: Process,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Child {
    /// Starts the runner's own binary with `args`.
    pub(super) fn spawn(name: &str, args: &[&str]) -> BoxResult<Self> {
        let exe = std::env::current_exe()?;
        let mut process = Command::new(&exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|err| format!("starting {} {args:?}: {err}", exe.display()))?;
        let stdin = process.stdin.take();
        let stdout = process.stdout.take().ok_or("the child's stdout is not piped")?;
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Stamped here, the moment the line is read, before anything else is done with it.
                if sender.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Self { name: name.to_string(), process, stdin, lines })
    }

    /// Sends one line.
    pub(super) fn send(&mut self, line: &str) -> BoxResult<()> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).map_err(|err| format!("{}: {err}", self.name))?;
        Ok(())
    }

    /// The next line and when it arrived; an error after `within`, or when the child has gone.
    pub(super) fn recv(&mut self, within: Duration) -> BoxResult<(Instant, String)> {
        self.lines.recv_timeout(within).map_err(|err| {
            let status = self.process.try_wait();
            format!("{} gave no line within {within:?} ({err}); process: {status:?}", self.name).into()
        })
    }

    /// The next line, which must be `expected`.
    pub(super) fn expect(&mut self, expected: &str, within: Duration) -> BoxResult<Instant> {
        let (at, line) = self.recv(within)?;
        if line == expected {
            Ok(at)
        } else {
            Err(format!("{}: expected {expected:?}, got {line:?}", self.name).into())
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Closing stdin ends a peer's command loop; kill in case it does not.
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
