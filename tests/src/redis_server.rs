//! Throwaway `redis-server` processes for tests: each on a free loopback port, without
//! persistence, stopped when dropped. Tests can kill, freeze (SIGSTOP), thaw and restart them.
//!
//! Tests never touch a Redis they did not start, unless `REDIS_URL` is set: then
//! [`TestRedis::new`] hands out that URL instead (the fault tests, which must kill and freeze
//! their server, always start their own).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to get redis-server when it is missing.
const INSTALL_HINT: &str = "redis-server was not found on PATH. Install it (Debian: `apt-get install redis-server`) or run the \
     suite with `bash scripts/test.sh`, which installs it; or set REDIS_URL to a server you manage.";

/// A redis-server this test started.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    frozen: bool,
}

impl RedisServer {
    /// Starts a server with default settings.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments, such as `["--requirepass", "pw"]`.
    pub fn start_with(extra: &[&str]) -> Self {
        let args: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut server = Self { child: None, port, args: args.clone(), frozen: false };
            match server.spawn() {
                Ok(()) => return server,
                Err(err) => last_error = err,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL): connections drop, the port refuses.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.frozen {
                signal(child.id(), "-CONT");
                self.frozen = false;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(err) if Instant::now() > deadline => panic!("could not restart redis-server: {err}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers.
    pub fn freeze(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, "-STOP");
            self.frozen = true;
        }
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, "-CONT");
            self.frozen = false;
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = std::env::temp_dir();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(&self.args);
        self.child = Some(spawn_and_wait(command, self.port, None)?);
        Ok(())
    }
}

/// Spawns `command` (a redis-server) and waits up to 10 s until it answers on `port`. `Err` when
/// it exits (the port may be taken; the tail of its `log` file, when it has one, is in the
/// message) or never answers; then it is not left running.
pub(crate) fn spawn_and_wait(mut command: Command, port: u16, log: Option<&Path>) -> Result<Child, String> {
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
        Err(err) => return Err(format!("spawning redis-server: {err}")),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let log =
                log.map(|log| format!("\n{}", crate::redis_cluster::log_tail("its log", log))).unwrap_or_default();
            return Err(format!("redis-server exited at start-up ({status}); port {port} may be taken{log}"));
        }
        if answers_ping(port) {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("redis-server on port {port} did not answer within 10s"))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis for behaviour tests: `REDIS_URL` when set, otherwise a server of the test's own.
#[derive(Debug)]
pub struct TestRedis {
    url: String,
    _server: Option<RedisServer>,
}

impl TestRedis {
    /// `REDIS_URL`, or a fresh server.
    pub fn new() -> Self {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => Self { url, _server: None },
            _ => {
                let server = RedisServer::start();
                Self { url: server.url(), _server: Some(server) }
            }
        }
    }

    /// The URL to connect to.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

/// A namespace no other test uses, so tests sharing a server (under `REDIS_URL`) never meet.
pub fn unique_namespace(test: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("test:{}:{test}:{}:", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a free loopback port")
}

/// Whether something on 127.0.0.1:`port` answers `PING` (any reply counts: `-NOAUTH` too).
pub(crate) fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 16];
    matches!(stream.read(&mut reply), Ok(n) if n > 0)
}

fn signal(pid: u32, which: &str) {
    let _ = Command::new("kill").args([which, &pid.to_string()]).status();
}
