//! A service instance in a process of its own: the `tower_peer` binary (`src/bin/tower_peer.rs`,
//! a memory layer over a Redis layer), driven through its stdin and stdout. Integration tests
//! pass its path, `env!("CARGO_BIN_EXE_tower_peer")`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a change may take to reach a peer before a test fails. Generous: the push itself
/// takes well under a millisecond on loopback; tests measure and print the latency.
pub const DELIVERY: Duration = Duration::from_secs(2);
/// How often a peer is asked while waiting for a change.
pub const POLL: Duration = Duration::from_millis(1);
/// How long a copy that must not be evicted is watched.
pub const STAYS: Duration = Duration::from_millis(500);
/// How long a peer may take to answer one command before the test gives up on it.
pub const REPLY: Duration = Duration::from_secs(10);

/// A `tower_peer` child process. Dropping it kills the process and waits for it.
#[derive(Debug)]
pub struct Peer {
    name: String,
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::Receiver<String>,
}

impl Peer {
    /// Starts the peer binary at `binary` on `url`, Redis namespace `namespace`, and waits until
    /// it is ready: its invalidation listener has subscribed, unless `extra` turns it off
    /// (`--no-invalidation`; also `--memory-namespace <ns>`, `--timeout-ms <ms>`).
    pub fn start(binary: &str, name: &str, url: &str, namespace: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(binary)
            .arg(url)
            .arg(namespace)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("starting {binary}: {err}"));
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, replies) = mpsc::channel();
        // A reader thread, so that a peer that stops answering fails the test instead of hanging it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = Self { name: name.to_owned(), child, stdin, replies };
        let ready = peer.reply("(start-up)");
        assert_eq!(ready, "ready", "{name} did not start cleanly");
        peer
    }

    /// The process id, to signal it (`kill -9` mid-load).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name given at start, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn reply(&mut self, command: &str) -> String {
        match self.replies.recv_timeout(REPLY) {
            Ok(line) => line,
            Err(err) => {
                let status = self.child.try_wait();
                panic!("{} gave no answer to {command:?} within {REPLY:?} ({err}); process: {status:?}", self.name)
            }
        }
    }

    /// Sends one command — its first word as is, the others JSON-quoted so that any key or value
    /// goes through — and returns the answer line.
    pub fn call(&mut self, words: &[&str]) -> String {
        let mut line = words.first().copied().unwrap_or_default().to_owned();
        for word in words.iter().skip(1) {
            line.push(' ');
            line.push_str(&json(word));
        }
        if let Err(err) = writeln!(self.stdin, "{line}").and_then(|()| self.stdin.flush()) {
            panic!("{} no longer takes commands ({err}); process: {:?}", self.name, self.child.try_wait());
        }
        self.reply(&line)
    }

    /// `get key`: the value, or `None` for a miss.
    pub fn get(&mut self, key: &str) -> Option<String> {
        let reply = self.call(&["get", key]);
        match reply.strip_prefix("hit ") {
            Some(value) => Some(serde_json::from_str(value).unwrap_or_else(|err| panic!("{reply:?}: {err}"))),
            None if reply == "miss" => None,
            None => panic!("{}: get {key:?} answered {reply:?}", self.name),
        }
    }

    /// Runs a write command, which must answer `ok`.
    pub fn must(&mut self, words: &[&str]) {
        let reply = self.call(words);
        assert_eq!(reply, "ok", "{}: {words:?}", self.name);
    }

    /// `set key value`, which must succeed.
    pub fn set(&mut self, key: &str, value: &str) {
        self.must(&["set", key, value]);
    }

    /// Whether the peer's memory layer holds `key`.
    pub fn holds(&mut self, key: &str) -> bool {
        match self.call(&["l0", key]).as_str() {
            "yes" => true,
            "no" => false,
            other => panic!("{}: l0 {key:?} answered {other:?}", self.name),
        }
    }

    /// Reads `key` (which must be `expected`) until the memory layer holds it, and still holds it
    /// a moment later: the news of the write that stored it has come and gone, so whatever
    /// evicts it from now on is a later change.
    pub fn prime(&mut self, key: &str, expected: &str) {
        let deadline = Instant::now() + DELIVERY;
        loop {
            assert_eq!(self.get(key).as_deref(), Some(expected), "{}: reading {key:?} before the change", self.name);
            if self.holds(key) {
                std::thread::sleep(Duration::from_millis(20));
                if self.holds(key) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{}: a read of {key:?} never left it in memory", self.name);
        }
    }

    /// Polls `get key` every [`POLL`] until it answers `expected`, and returns how long that
    /// took (also printed). Fails, naming what it read and when, after [`DELIVERY`].
    pub fn await_value(&mut self, key: &str, expected: Option<&str>, change: &str) -> Duration {
        let since = Instant::now();
        loop {
            let got = self.get(key);
            let took = since.elapsed();
            if got.as_deref() == expected {
                eprintln!("{change}: {} read {key:?} = {expected:?} after {took:?}", self.name);
                return took;
            }
            assert!(
                took < DELIVERY,
                "{change}: {} still read {key:?} = {got:?} after {took:?}, expected {expected:?}",
                self.name
            );
            std::thread::sleep(POLL);
        }
    }

    /// Asserts that the memory layer keeps `key` = `value` for [`STAYS`]. Memory is asked first
    /// in each round, so a read from Redis cannot hide an eviction.
    pub fn keeps(&mut self, key: &str, value: &str, why: &str) {
        let until = Instant::now() + STAYS;
        while Instant::now() < until {
            assert!(self.holds(key), "{why}: {} lost {key:?} from memory", self.name);
            assert_eq!(self.get(key).as_deref(), Some(value), "{why}: {}", self.name);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` as a JSON string.
pub fn json(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}
