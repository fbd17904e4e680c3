//! A throwaway Redis Sentinel set-up for tests: a master, two replicas and three sentinels
//! watching them, on free loopback ports, without persistence, stopped (and their files removed)
//! when dropped. Tests can kill the master and wait for the sentinels to promote a replica.

use std::process::{Child, Command};
use std::time::Duration;

use crate::redis_cluster::{
    ScratchDir, free_ports, info_field, kill_child, log_tail, query, role_is_master, spawn_and_wait, wait_until,
};
use crate::redis_server::RedisServer;

/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "mymaster";

/// How many sentinels must agree that the master is down before a failover.
pub const QUORUM: u32 = 2;

/// `sentinel down-after-milliseconds`: how long the master may go unanswered before a sentinel
/// thinks it down. Short, so a failover takes seconds, not the default thirty.
pub const DOWN_AFTER_MS: u64 = 1000;

/// `sentinel failover-timeout`, in milliseconds: how long a failover may take before it is
/// abandoned (and, doubled, how long before the same master is failed over again).
pub const FAILOVER_TIMEOUT_MS: u64 = 5000;

/// `sentinel parallel-syncs`: how many replicas resync with a new master at once.
pub const PARALLEL_SYNCS: u32 = 1;

/// How many replicas [`TestSentinel::start`] gives the master.
pub const REPLICAS: usize = 2;

/// How many sentinels [`TestSentinel::start`] starts.
pub const SENTINELS: usize = 3;

/// How long [`TestSentinel::start`] waits for the replicas to sync and the sentinels to agree.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// How many start attempts a sentinel gets, each on a fresh port, before the start-up panics.
const START_ATTEMPTS: usize = 5;

/// A master with [`REPLICAS`] replicas and [`SENTINELS`] sentinels monitoring it as
/// [`MASTER_NAME`], all started by this test.
#[derive(Debug)]
pub struct TestSentinel {
    data: Vec<DataNode>,
    sentinels: Vec<SentinelNode>,
    password: Option<String>,
}

/// A master or replica, with its working directory.
#[derive(Debug)]
struct DataNode {
    // Declared first: the server is killed before its directory is removed.
    server: RedisServer,
    dir: ScratchDir,
}

/// A sentinel's process and its directory (which holds the config file it rewrites).
#[derive(Debug)]
struct SentinelNode {
    port: u16,
    child: Option<Child>,
    // Declared last: dropped after `Drop` has killed the process.
    dir: ScratchDir,
}

impl TestSentinel {
    /// Starts the master and its replicas, waits until both replicas report
    /// `master_link_status:up`, then starts the sentinels and waits (up to 30 s) until each one
    /// names the master, lists both replicas, and knows the other sentinels.
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// [`TestSentinel::start`] with `password` everywhere: the master and replicas have
    /// `requirepass` and `masterauth`, the sentinels have `requirepass` (clients must `AUTH`),
    /// `sentinel auth-pass` (to reach the data nodes) and `sentinel sentinel-pass` (to reach each
    /// other). The password must be a plain word: no whitespace, quotes or backslashes.
    pub fn start_with_auth(password: &str) -> Self {
        let plain = !password.is_empty() && !password.contains(|c: char| c.is_whitespace() || "\"'\\".contains(c));
        assert!(plain, "the test sentinel password must be a plain word");
        Self::start_inner(Some(password.to_owned()))
    }

    fn start_inner(password: Option<String>) -> Self {
        let master = DataNode::start(None, password.as_deref());
        let master_port = master.server.port();
        let mut data = vec![master];
        for _ in 0..REPLICAS {
            data.push(DataNode::start(Some(master_port), password.as_deref()));
        }
        let mut set_up = Self { data, sentinels: Vec::new(), password };
        wait_until(READY_WITHIN, "the replicas to sync", || set_up.replicas_synced(), || set_up.logs());
        for _ in 0..SENTINELS {
            let sentinel = SentinelNode::start(master_port, set_up.password.as_deref());
            set_up.sentinels.push(sentinel);
        }
        wait_until(
            READY_WITHIN,
            "the sentinels to agree on the master, replicas and sentinels",
            || set_up.sentinels_agree(master_port),
            || set_up.logs(),
        );
        set_up
    }

    /// `127.0.0.1:<port>` of every sentinel.
    pub fn sentinels(&self) -> Vec<String> {
        self.sentinels.iter().map(|sentinel| format!("127.0.0.1:{}", sentinel.port)).collect()
    }

    /// `redis://127.0.0.1:<port>` of every sentinel (without the password; see
    /// [`TestSentinel::password`]).
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(|sentinel| format!("redis://127.0.0.1:{}", sentinel.port)).collect()
    }

    /// The password of the data nodes and sentinels, when started with
    /// [`TestSentinel::start_with_auth`].
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The process ids of the data nodes and sentinels still running.
    pub fn pids(&self) -> Vec<u32> {
        let data = self.data.iter().filter_map(|node| node.server.pid());
        data.chain(self.sentinels.iter().filter_map(|s| s.child.as_ref().map(Child::id))).collect()
    }

    /// The port of the current master, as the first sentinel that answers names it
    /// (`SENTINEL get-master-addr-by-name`).
    pub fn master_port(&self) -> u16 {
        let mut errors = Vec::new();
        for sentinel in &self.sentinels {
            match self.master_seen_by(sentinel.port) {
                Ok(port) => return port,
                Err(err) => errors.push(err),
            }
        }
        panic!("no sentinel named the master: {errors:?}");
    }

    /// The ports of the data nodes still running other than the current master, sorted.
    pub fn replica_ports(&self) -> Vec<u16> {
        let master = self.master_port();
        let mut ports: Vec<u16> = self
            .data
            .iter()
            .filter(|node| node.server.pid().is_some() && node.server.port() != master)
            .map(|node| node.server.port())
            .collect();
        ports.sort_unstable();
        ports
    }

    /// Kills the current master (SIGKILL); it stays down. Returns its port.
    pub fn kill_master(&mut self) -> u16 {
        let port = self.master_port();
        match self.data.iter_mut().find(|node| node.server.port() == port) {
            Some(node) => node.server.kill(),
            None => panic!("the sentinels name port {port} as master, which is no node of this set-up"),
        }
        port
    }

    /// Waits (up to `within`) until every sentinel names the same new master (not
    /// `old_master_port`) and that server answers `ROLE` as master. Returns its port.
    pub fn wait_for_failover(&self, old_master_port: u16, within: Duration) -> u16 {
        let what = format!("the sentinels to fail over from port {old_master_port}");
        wait_until(within, &what, || self.failed_over(old_master_port), || self.logs())
    }

    /// `Ok` with the new master's port once every sentinel names it and it answers as master.
    fn failed_over(&self, old_master_port: u16) -> Result<u16, String> {
        let mut named = Vec::new();
        for sentinel in &self.sentinels {
            named.push(self.master_seen_by(sentinel.port)?);
        }
        let new = named[0];
        if new == old_master_port || named.iter().any(|&port| port != new) {
            return Err(format!("the sentinels name {named:?}"));
        }
        if !role_is_master(new, self.password())? {
            return Err(format!("port {new} does not answer ROLE as master yet"));
        }
        Ok(new)
    }

    /// `Ok` once every replica reports its master link up.
    fn replicas_synced(&self) -> Result<(), String> {
        for node in &self.data[1..] {
            let port = node.server.port();
            let info: String =
                query(port, self.password(), &["INFO", "replication"]).map_err(|e| format!("port {port}: {e}"))?;
            if info_field(&info, "master_link_status") != Some("up") {
                return Err(format!("the replica on port {port} has its master link down"));
            }
        }
        Ok(())
    }

    /// `Ok` once every sentinel names `master_port`, lists [`REPLICAS`] healthy replicas and
    /// knows the other sentinels.
    fn sentinels_agree(&self, master_port: u16) -> Result<(), String> {
        for sentinel in &self.sentinels {
            let port = sentinel.port;
            let named = self.master_seen_by(port)?;
            if named != master_port {
                return Err(format!("sentinel {port} names {named} as master"));
            }
            let replicas = self.sentinel_list(port, "replicas")?;
            let healthy = replicas.iter().filter(|r| field(r, "flags").is_some_and(|f| f == "slave")).count();
            if healthy != REPLICAS {
                return Err(format!("sentinel {port} lists replicas {replicas:?}"));
            }
            let others = self.sentinel_list(port, "sentinels")?;
            if others.len() != SENTINELS - 1 {
                return Err(format!("sentinel {port} knows {} other sentinels", others.len()));
            }
        }
        Ok(())
    }

    /// The master port the sentinel on `port` names.
    fn master_seen_by(&self, port: u16) -> Result<u16, String> {
        let address: Vec<String> = query(port, self.password(), &["SENTINEL", "get-master-addr-by-name", MASTER_NAME])
            .map_err(|err| format!("sentinel {port}: {err}"))?;
        address.get(1).and_then(|p| p.parse().ok()).ok_or_else(|| format!("sentinel {port} answered {address:?}"))
    }

    /// `SENTINEL <what> mymaster` on the sentinel on `port`: one flat field/value list per entry.
    fn sentinel_list(&self, port: u16, what: &str) -> Result<Vec<Vec<String>>, String> {
        query(port, self.password(), &["SENTINEL", what, MASTER_NAME])
            .map_err(|err| format!("SENTINEL {what} on sentinel {port}: {err}"))
    }

    /// The end of every process's log, for panic messages.
    fn logs(&self) -> String {
        let data = self.data.iter().map(|node| log_tail(&format!("data node {}", node.server.port()), &node.dir.log()));
        let sentinels = self.sentinels.iter().map(|s| log_tail(&format!("sentinel {}", s.port), &s.dir.log()));
        data.chain(sentinels).collect()
    }
}

impl Drop for TestSentinel {
    fn drop(&mut self) {
        // Sentinels first, so that none reconfigures a data node while it goes.
        for sentinel in &mut self.sentinels {
            sentinel.kill();
        }
        for node in &mut self.data {
            node.server.kill();
        }
    }
}

impl DataNode {
    /// A master (`replica_of` `None`) or a replica of the master on that port.
    fn start(replica_of: Option<u16>, password: Option<&str>) -> Self {
        let dir = ScratchDir::new("sentinel-data");
        let dir_arg = dir.path().to_str().expect("a UTF-8 temp dir").to_owned();
        let log_arg = dir.log().to_str().expect("a UTF-8 temp dir").to_owned();
        let mut args = vec!["--dir".to_owned(), dir_arg, "--logfile".to_owned(), log_arg];
        // A replica's first sync starts at once, not after the default five seconds' wait for others.
        args.extend(["--repl-diskless-sync-delay", "0"].map(str::to_owned));
        if let Some(master) = replica_of {
            args.extend(["--replicaof".to_owned(), "127.0.0.1".to_owned(), master.to_string()]);
        }
        if let Some(password) = password {
            args.extend(["--requirepass", password, "--masterauth", password].map(str::to_owned));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self { server: RedisServer::start_with(&args), dir }
    }
}

impl SentinelNode {
    /// Starts a sentinel monitoring the master on `master_port`, on a free port, trying fresh
    /// ports when one turns out to be taken.
    fn start(master_port: u16, password: Option<&str>) -> Self {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_ports(1)[0];
            let dir = ScratchDir::new("sentinel");
            let config = dir.path().join("sentinel.conf");
            let text = sentinel_config(port, master_port, &dir, password);
            std::fs::write(&config, text).unwrap_or_else(|err| panic!("writing {}: {err}", config.display()));
            let mut command = Command::new("redis-server");
            command.arg(&config).arg("--sentinel");
            match spawn_and_wait(command, port, &dir) {
                Ok(child) => return Self { port, child: Some(child), dir },
                Err(err) => last_error = err,
            }
        }
        panic!("could not start a sentinel: {last_error}");
    }

    fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            kill_child(child);
        }
    }
}

impl Drop for SentinelNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The config file of a sentinel on `port` watching the master on `master_port`.
fn sentinel_config(port: u16, master_port: u16, dir: &ScratchDir, password: Option<&str>) -> String {
    let mut text = format!(
        "port {port}\nbind 127.0.0.1\ndaemonize no\ndir \"{dir}\"\nlogfile \"{log}\"\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {QUORUM}\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {MASTER_NAME} {PARALLEL_SYNCS}\n",
        dir = dir.path().display(),
        log = dir.log().display(),
    );
    if let Some(password) = password {
        text.push_str(&format!(
            "requirepass {password}\nsentinel auth-pass {MASTER_NAME} {password}\nsentinel sentinel-pass {password}\n"
        ));
    }
    text
}

/// The value after `name` in a flat field/value list.
fn field<'a>(entry: &'a [String], name: &str) -> Option<&'a str> {
    entry.chunks(2).find(|pair| pair[0] == name).and_then(|pair| pair.get(1)).map(String::as_str)
}
