//! A throwaway Redis Cluster for tests: three masters, each with one replica, on free loopback
//! ports, without persistence, stopped (and its files removed) when dropped. Tests can kill a
//! node, wait for its replica to take over, and move a slot between masters while the cluster
//! serves.
//!
//! Tests use a cluster the user manages instead when `REDIS_CLUSTER_NODES` is set (see
//! [`cluster_from_env`]), as they use `REDIS_URL` for a single server.
//!
//! This module also holds the small process and connection helpers that [`crate::redis_sentinel`]
//! shares (`pub(crate)`).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `cluster-node-timeout` of every node, in milliseconds: how long a node may go unanswered
/// before the others suspect it. Short, so a failover takes a couple of seconds, not the default
/// fifteen.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// How many hash slots a Redis Cluster has.
pub const SLOTS: u16 = 16384;

/// How many masters [`TestCluster::start`] creates (each gets one replica).
pub const MASTERS: usize = 3;

/// How many nodes [`TestCluster::start`] creates: the masters and one replica of each.
pub const NODES: usize = MASTERS * 2;

/// How long [`TestCluster::start`] waits for the cluster to be formed and agreed.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// How long `redis-cli --cluster create` may take before it is killed.
const CREATE_WITHIN: Duration = Duration::from_secs(30);

/// How long [`TestCluster::migrate_slot`] waits for every node to learn the slot's new owner.
const MIGRATED_WITHIN: Duration = Duration::from_secs(15);

/// How many start attempts a node gets, each on fresh ports, before the start-up panics.
const START_ATTEMPTS: usize = 5;

/// How many keys [`TestCluster::migrate_slot`] moves per `MIGRATE`.
const MIGRATE_BATCH: usize = 100;

/// The environment variable naming a cluster the user manages: comma-separated `host:port`.
pub const CLUSTER_NODES_ENV: &str = "REDIS_CLUSTER_NODES";

/// How to get redis-server when it is missing.
const INSTALL_HINT: &str = "redis-server (or redis-cli) was not found on PATH. Install it (Debian: `apt-get install \
     redis-server`) or run the suite with `bash scripts/test.sh`, which installs it; or set REDIS_CLUSTER_NODES to a \
     cluster you manage.";

/// The seeds (`host:port`) of a cluster the user manages, from `REDIS_CLUSTER_NODES`
/// (comma-separated `host:port`); `None` when it is unset or empty.
pub fn cluster_from_env() -> Option<Vec<String>> {
    let value = std::env::var(CLUSTER_NODES_ENV).ok()?;
    let seeds: Vec<String> =
        value.split(',').map(str::trim).filter(|seed| !seed.is_empty()).map(str::to_owned).collect();
    (!seeds.is_empty()).then_some(seeds)
}

/// A Redis Cluster this test started: [`MASTERS`] masters with one replica each.
#[derive(Debug)]
pub struct TestCluster {
    nodes: Vec<ClusterNode>,
    killed: HashMap<u16, Killed>,
}

/// One node's process and files.
#[derive(Debug)]
struct ClusterNode {
    port: u16,
    child: Option<Child>,
    // Declared last: dropped after `Drop` has killed the process.
    dir: ScratchDir,
}

/// What [`TestCluster::kill_node`] learnt about a node just before killing it.
#[derive(Debug)]
struct Killed {
    at: Instant,
    /// Its replica, when it was a master.
    replica: Option<u16>,
    /// The slots it served, when it was a master.
    slots: Vec<(u16, u16)>,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeLine {
    id: String,
    port: u16,
    flags: Vec<String>,
    master_id: Option<String>,
    /// Slot ranges it serves, both ends included (importing/migrating markers are left out).
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Known to be down, or suspected to be.
    fn failed(&self) -> bool {
        self.has_flag("fail") || self.has_flag("fail?")
    }

    /// A master that is not failed and serves at least one slot.
    fn serving_master(&self) -> bool {
        self.has_flag("master") && !self.failed() && !self.slots.is_empty()
    }

    fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(first, last)| first <= slot && slot <= last)
    }
}

impl TestCluster {
    /// Starts [`NODES`] redis-servers in cluster mode, joins them with `redis-cli --cluster
    /// create ... --cluster-replicas 1`, and waits (up to 30 s) until every node reports
    /// `cluster_state:ok` with all 16384 slots assigned, every master's replica has its link up,
    /// and every node sees the same masters, slots and replicas.
    pub fn start() -> Self {
        let nodes = (0..NODES).map(|_| ClusterNode::start()).collect();
        let cluster = Self { nodes, killed: HashMap::new() };
        cluster.create();
        wait_until(READY_WITHIN, "the test cluster to be formed", || cluster.ready(), || cluster.logs());
        cluster
    }

    /// `127.0.0.1:<port>` of every node (killed ones too), in start order.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(|node| format!("127.0.0.1:{}", node.port)).collect()
    }

    /// `redis://127.0.0.1:<port>` of every node (killed ones too), in start order.
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|node| format!("redis://127.0.0.1:{}", node.port)).collect()
    }

    /// The process ids of the nodes still running.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(|node| node.child.as_ref().map(Child::id)).collect()
    }

    /// The ports of the current masters (not failed, serving slots), sorted, as a live node sees
    /// them in `CLUSTER NODES`.
    pub fn masters(&self) -> Vec<u16> {
        let mut ports: Vec<u16> =
            self.view().iter().filter(|line| line.serving_master()).map(|line| line.port).collect();
        ports.sort_unstable();
        ports
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of_key(&self, key: &str) -> u16 {
        let slot: i64 = self.ask(&["CLUSTER", "KEYSLOT", key]);
        u16::try_from(slot).expect("CLUSTER KEYSLOT answers a slot")
    }

    /// The port of the master serving `slot`, as a live node sees it. Panics when no live
    /// master serves it (during a failover, say).
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        let view = self.view();
        match view.iter().find(|line| line.serving_master() && line.serves(slot)) {
            Some(line) => line.port,
            None => panic!("no live master serves slot {slot}; CLUSTER NODES: {view:?}"),
        }
    }

    /// The port of the master serving `key`'s slot (`CLUSTER KEYSLOT`, then the slot's owner).
    pub fn master_of_key(&self, key: &str) -> u16 {
        self.master_of_slot(self.slot_of_key(key))
    }

    /// The port of the (live) replica of the master on `master_port`. Panics when it has none.
    pub fn replica_of(&self, master_port: u16) -> u16 {
        let view = self.view();
        replica_in(&view, master_port)
            .unwrap_or_else(|| panic!("the node on port {master_port} has no live replica; CLUSTER NODES: {view:?}"))
    }

    /// Kills the node on `port` (SIGKILL); it stays down. When it was a master, its replica and
    /// slots are noted first, for [`TestCluster::wait_for_failover`].
    pub fn kill_node(&mut self, port: u16) {
        let view = self.view();
        let line = view.iter().find(|line| line.port == port);
        let was_master = line.is_some_and(NodeLine::serving_master);
        let replica = if was_master { replica_in(&view, port) } else { None };
        let slots = if was_master { line.map(|line| line.slots.clone()).unwrap_or_default() } else { Vec::new() };
        self.node_mut(port).kill();
        self.killed.insert(port, Killed { at: Instant::now(), replica, slots });
    }

    /// Freezes the node on `port` (SIGSTOP): its connections stay open but nothing answers, and
    /// new connections are accepted by the kernel but never served. [`TestCluster::thaw_node`]
    /// resumes it; a frozen node is still killed when the cluster is dropped.
    pub fn freeze_node(&mut self, port: u16) {
        self.node_mut(port).signal("-STOP");
    }

    /// Resumes the node on `port` after [`TestCluster::freeze_node`] (SIGCONT).
    pub fn thaw_node(&mut self, port: u16) {
        self.node_mut(port).signal("-CONT");
    }

    /// Waits (up to `within`) until, on every live node, the cluster is `cluster_state:ok` again
    /// and the slots the master on `dead_master_port` served belong to its former replica, which
    /// answers `ROLE` as a master. Returns the time from [`TestCluster::kill_node`] until then.
    /// Panics when `dead_master_port` was not a master with a replica when it was killed.
    pub fn wait_for_failover(&self, dead_master_port: u16, within: Duration) -> Duration {
        let killed = self
            .killed
            .get(&dead_master_port)
            .unwrap_or_else(|| panic!("the node on port {dead_master_port} was not killed with kill_node"));
        let Some(heir) = killed.replica else {
            panic!("the node on port {dead_master_port} was not a master with a replica when it was killed");
        };
        let what = format!("the replica on port {heir} to take over from the master on port {dead_master_port}");
        wait_until(within, &what, || self.took_over(heir, &killed.slots), || self.logs());
        killed.at.elapsed()
    }

    /// Moves `slot` and all its keys from its current master to the master on `to_master_port`
    /// while the cluster serves, by the resharding protocol: `CLUSTER SETSLOT <slot> IMPORTING`
    /// on the target, `MIGRATING` on the source, `CLUSTER GETKEYSINSLOT` + `MIGRATE ... KEYS`
    /// until the slot is empty, then `CLUSTER SETSLOT <slot> NODE <target>` on the target, the
    /// source and the other masters. Returns once every live node sees the target as the owner.
    pub fn migrate_slot(&self, slot: u16, to_master_port: u16) {
        assert!(slot < SLOTS, "slot {slot} is out of range");
        let source = self.master_of_slot(slot);
        if source == to_master_port {
            return;
        }
        let masters = self.masters();
        assert!(masters.contains(&to_master_port), "port {to_master_port} is not a live master ({masters:?})");
        let source_id: String = expect_ok(query(source, None, &["CLUSTER", "MYID"]), "CLUSTER MYID on the source");
        let target_id: String =
            expect_ok(query(to_master_port, None, &["CLUSTER", "MYID"]), "CLUSTER MYID on the target");
        let slot_arg = slot.to_string();
        let setslot = |port: u16, state: &str, id: &str| {
            let _: () = expect_ok(
                query(port, None, &["CLUSTER", "SETSLOT", &slot_arg, state, id]),
                &format!("CLUSTER SETSLOT {slot} {state} on port {port}"),
            );
        };
        setslot(to_master_port, "IMPORTING", &source_id);
        setslot(source, "MIGRATING", &target_id);
        loop {
            let keys: Vec<Vec<u8>> = expect_ok(
                query(source, None, &["CLUSTER", "GETKEYSINSLOT", &slot_arg, &MIGRATE_BATCH.to_string()]),
                "CLUSTER GETKEYSINSLOT",
            );
            if keys.is_empty() {
                break;
            }
            let mut migrate = redis::cmd("MIGRATE");
            migrate.arg("127.0.0.1").arg(to_master_port).arg("").arg(0).arg(5000).arg("KEYS").arg(&keys);
            let _: () = expect_ok(run(source, None, &migrate), &format!("MIGRATE of slot {slot}"));
        }
        // The target first, so that it owns the slot before the source stops redirecting to it.
        setslot(to_master_port, "NODE", &target_id);
        setslot(source, "NODE", &target_id);
        for master in masters.into_iter().filter(|&port| port != source && port != to_master_port) {
            setslot(master, "NODE", &target_id);
        }
        let what = format!("every node to see slot {slot} on port {to_master_port}");
        wait_until(MIGRATED_WITHIN, &what, || self.all_see_owner(slot, to_master_port), || self.logs());
    }

    /// Runs `redis-cli --cluster create` over all nodes.
    fn create(&self) {
        let mut command = Command::new("redis-cli");
        command.arg("--cluster").arg("create");
        command.args(self.seeds());
        command.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let output = self.nodes[0].dir.path().join("cluster-create.log");
        let (ok, log) = run_bounded(command, &output, CREATE_WITHIN);
        assert!(ok, "redis-cli --cluster create failed:\n{log}\n{}", self.logs());
    }

    /// `Ok` once the cluster is formed and every node agrees on it; otherwise what is missing.
    fn ready(&self) -> Result<(), String> {
        let mut agreed: Option<Topology> = None;
        for node in &self.nodes {
            let info = cluster_info(node.port)?;
            for (field, wanted) in
                [("cluster_state", "ok"), ("cluster_slots_assigned", "16384"), ("cluster_known_nodes", "6")]
            {
                if info_field(&info, field) != Some(wanted) {
                    return Err(format!("port {}: {field} is {:?}, not {wanted}", node.port, info_field(&info, field)));
                }
            }
            let view = cluster_nodes(node.port)?;
            if let Some(line) = view.iter().find(|line| line.failed() || line.has_flag("handshake")) {
                return Err(format!("port {} sees {line:?}", node.port));
            }
            let topology = topology(&view);
            let slots: u32 = topology.values().flat_map(|(ranges, _)| ranges).map(|&(a, b)| u32::from(b - a) + 1).sum();
            if topology.len() != MASTERS || slots != u32::from(SLOTS) {
                return Err(format!("port {} sees masters {topology:?}", node.port));
            }
            if let Some((master, _)) = topology.iter().find(|(_, (_, replicas))| replicas.len() != 1) {
                return Err(format!("port {} sees master {master} without exactly one replica", node.port));
            }
            match &agreed {
                None => agreed = Some(topology),
                Some(first) if *first != topology => {
                    return Err(format!("nodes disagree: {first:?} against {topology:?} on port {}", node.port));
                }
                Some(_) => {}
            }
        }
        let replicas = agreed.iter().flat_map(|t| t.values()).flat_map(|(_, replicas)| replicas.iter().copied());
        for replica in replicas {
            let info: String = query(replica, None, &["INFO", "replication"]).map_err(|e| e.to_string())?;
            if info_field(&info, "master_link_status") != Some("up") {
                return Err(format!("the replica on port {replica} has its master link down"));
            }
        }
        Ok(())
    }

    /// `Ok` once every live node is `cluster_state:ok` and sees `heir` as a master serving
    /// `slots`, and `heir` answers `ROLE` as a master.
    fn took_over(&self, heir: u16, slots: &[(u16, u16)]) -> Result<(), String> {
        if !role_is_master(heir, None)? {
            return Err(format!("port {heir} does not answer ROLE as master yet"));
        }
        for port in self.live_ports() {
            let info = cluster_info(port)?;
            if info_field(&info, "cluster_state") != Some("ok") {
                return Err(format!("port {port} is not cluster_state:ok yet"));
            }
            let view = cluster_nodes(port)?;
            let serves_all = view.iter().find(|line| line.port == heir).is_some_and(|line| {
                line.serving_master() && slots.iter().all(|&(a, b)| (a..=b).all(|s| line.serves(s)))
            });
            if !serves_all {
                return Err(format!("port {port} does not see port {heir} serving {slots:?} yet"));
            }
        }
        Ok(())
    }

    /// `Ok` once every live node sees `owner` serving `slot`.
    fn all_see_owner(&self, slot: u16, owner: u16) -> Result<(), String> {
        for port in self.live_ports() {
            let view = cluster_nodes(port)?;
            let seen = view.iter().find(|line| line.serving_master() && line.serves(slot)).map(|line| line.port);
            if seen != Some(owner) {
                return Err(format!("port {port} sees slot {slot} on {seen:?}"));
            }
        }
        Ok(())
    }

    /// `CLUSTER NODES` as the first live node that answers sees it.
    fn view(&self) -> Vec<NodeLine> {
        let text: String = self.ask(&["CLUSTER", "NODES"]);
        parse_cluster_nodes(&text)
    }

    /// Sends `args` to each live node in turn; the first answer wins. Panics when none answers.
    fn ask<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut errors = Vec::new();
        for port in self.live_ports() {
            match query(port, None, args) {
                Ok(answer) => return answer,
                Err(err) => errors.push(format!("port {port}: {err}")),
            }
        }
        panic!("no live cluster node answered {args:?}: {errors:?}");
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes.iter().filter(|node| node.child.is_some()).map(|node| node.port).collect()
    }

    fn node_mut(&mut self, port: u16) -> &mut ClusterNode {
        match self.nodes.iter_mut().find(|node| node.port == port) {
            Some(node) => node,
            None => panic!("no node of this cluster listens on port {port}"),
        }
    }

    /// The end of every node's log, for panic messages.
    fn logs(&self) -> String {
        self.nodes.iter().map(|node| log_tail(&format!("node {}", node.port), &node.dir.log())).collect()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

impl ClusterNode {
    /// Starts one cluster-mode redis-server on a free port (and a free cluster bus port),
    /// trying fresh ports when one turns out to be taken.
    fn start() -> Self {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let ports = free_ports(2);
            let dir = ScratchDir::new("cluster-node");
            let port = ports[0].to_string();
            let mut command = redis_server_command(&port, &dir);
            command
                .args(["--cluster-enabled", "yes", "--cluster-port", &ports[1].to_string()])
                .arg("--cluster-config-file")
                .arg(dir.path().join("nodes.conf"))
                .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()]);
            match spawn_and_wait(command, ports[0], &dir) {
                Ok(child) => return Self { port: ports[0], child: Some(child), dir },
                Err(err) => last_error = err,
            }
        }
        panic!("could not start a cluster node: {last_error}");
    }

    fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            kill_child(child);
        }
    }

    /// Sends `which` (`-STOP`, `-CONT`) to the node's process, when it runs.
    fn signal(&self, which: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill").args([which, &child.id().to_string()]).status();
            assert!(status.is_ok_and(|status| status.success()), "kill {which} of the node on port {}", self.port);
        }
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The port of the live replica of the master on `master_port`, in `view`.
fn replica_in(view: &[NodeLine], master_port: u16) -> Option<u16> {
    let master = view.iter().find(|line| line.port == master_port)?;
    view.iter()
        .find(|line| line.master_id.as_deref() == Some(master.id.as_str()) && !line.failed())
        .map(|line| line.port)
}

/// Each master's port with its slot ranges and its replicas' ports.
type Topology = BTreeMap<u16, (Vec<(u16, u16)>, Vec<u16>)>;

/// The serving masters of `view` by port, with their slots and replicas (sorted).
fn topology(view: &[NodeLine]) -> Topology {
    view.iter()
        .filter(|line| line.serving_master())
        .map(|master| {
            let mut replicas: Vec<u16> = view
                .iter()
                .filter(|line| line.master_id.as_deref() == Some(master.id.as_str()))
                .map(|line| line.port)
                .collect();
            replicas.sort_unstable();
            (master.port, (master.slots.clone(), replicas))
        })
        .collect()
}

/// Parses `CLUSTER NODES`: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent>
/// <pong-recv> <config-epoch> <link-state> <slot> <slot> ...`.
fn parse_cluster_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let address = fields[1].split(['@', ',']).next()?;
            let port = address.rsplit(':').next()?.parse().ok()?;
            let slots = fields[8..]
                .iter()
                .filter(|slot| !slot.starts_with('['))
                .filter_map(|slot| match slot.split_once('-') {
                    Some((first, last)) => Some((first.parse().ok()?, last.parse().ok()?)),
                    None => slot.parse().ok().map(|single| (single, single)),
                })
                .collect();
            Some(NodeLine {
                id: fields[0].to_owned(),
                port,
                flags: fields[2].split(',').map(str::to_owned).collect(),
                master_id: (fields[3] != "-").then(|| fields[3].to_owned()),
                slots,
            })
        })
        .collect()
}

fn cluster_info(port: u16) -> Result<String, String> {
    query(port, None, &["CLUSTER", "INFO"]).map_err(|err| format!("CLUSTER INFO on port {port}: {err}"))
}

fn cluster_nodes(port: u16) -> Result<Vec<NodeLine>, String> {
    query::<String>(port, None, &["CLUSTER", "NODES"])
        .map(|text| parse_cluster_nodes(&text))
        .map_err(|err| format!("CLUSTER NODES on port {port}: {err}"))
}

// ---- Helpers shared with `redis_sentinel` ----------------------------------------------------

/// A directory of its own under the system temp dir, removed (with its contents) when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `<temp>/cache-tower-<label>-<pid>-<n>`, unique in this process.
    pub(crate) fn new(label: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("cache-tower-{label}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|err| panic!("creating {}: {err}", path.display()));
        Self(path)
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// The server log file in it (`--logfile`).
    pub(crate) fn log(&self) -> PathBuf {
        self.0.join("redis.log")
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `redis-server` on 127.0.0.1:`port`, without persistence, in the foreground, with `dir` as its
/// working directory and its log in [`ScratchDir::log`].
fn redis_server_command(port: &str, dir: &ScratchDir) -> Command {
    let mut command = Command::new("redis-server");
    command
        .args(["--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir.path())
        .arg("--logfile")
        .arg(dir.log())
        // A replica's first sync starts at once, not after the default five seconds' wait for others.
        .args(["--repl-diskless-sync-delay", "0"]);
    command
}

/// Spawns `command` (a redis-server writing its log into `dir`) and waits until it answers on
/// `port` ([`redis_server::spawn_and_wait`](crate::redis_server)).
pub(crate) fn spawn_and_wait(command: Command, port: u16, dir: &ScratchDir) -> Result<Child, String> {
    crate::redis_server::spawn_and_wait(command, port, Some(&dir.log()))
}

/// SIGKILLs `child` and reaps it.
pub(crate) fn kill_child(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// `count` distinct free loopback ports (all bound at once, then released).
pub(crate) fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> =
        (0..count).map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free loopback port")).collect();
    listeners.iter().map(|l| l.local_addr().expect("a bound address").port()).collect()
}

/// Sends one command to 127.0.0.1:`port` on a fresh connection (authenticated with `password`),
/// with 2 s timeouts.
pub(crate) fn run<T: redis::FromRedisValue>(
    port: u16,
    password: Option<&str>,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    let url = match password {
        Some(password) => format!("redis://:{password}@127.0.0.1:{port}"),
        None => format!("redis://127.0.0.1:{port}"),
    };
    let timeout = Duration::from_secs(2);
    let mut connection = redis::Client::open(url)?.get_connection_with_timeout(timeout)?;
    connection.set_read_timeout(Some(timeout))?;
    connection.set_write_timeout(Some(timeout))?;
    cmd.query(&mut connection)
}

/// [`run`] of the command made of `args`.
pub(crate) fn query<T: redis::FromRedisValue>(
    port: u16,
    password: Option<&str>,
    args: &[&str],
) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    run(port, password, &cmd)
}

/// The answer, or a panic saying what failed.
pub(crate) fn expect_ok<T>(result: redis::RedisResult<T>, what: &str) -> T {
    result.unwrap_or_else(|err| panic!("{what}: {err}"))
}

/// Whether the server on `port` answers `ROLE` as a master.
pub(crate) fn role_is_master(port: u16, password: Option<&str>) -> Result<bool, String> {
    let role: Vec<redis::Value> =
        query(port, password, &["ROLE"]).map_err(|err| format!("ROLE on port {port}: {err}"))?;
    Ok(matches!(role.first(), Some(redis::Value::BulkString(kind)) if kind == b"master"))
}

/// The value of `field` in `INFO`-style text (`field:value` lines).
pub(crate) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| line.strip_prefix(field)?.strip_prefix(':')).map(str::trim)
}

/// Polls `check` every 50 ms until it is `Ok`, for up to `within`; then panics naming `what`,
/// the last reason `check` gave, and `diagnostics()` (server logs, say).
pub(crate) fn wait_until<T>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
    diagnostics: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(value) => return value,
            Err(reason) if Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}: {reason}\n{}", diagnostics())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The last lines of the log file at `path`, headed by `label`.
pub(crate) fn log_tail(label: &str, path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    format!("--- {label} ({}):\n{tail}\n", path.display())
}

/// Runs `command` with its output in the file `output`, killing it after `within`. Returns
/// whether it succeeded, and its output.
fn run_bounded(mut command: Command, output: &Path, within: Duration) -> (bool, String) {
    let file = File::create(output).unwrap_or_else(|err| panic!("creating {}: {err}", output.display()));
    let errors = file.try_clone().expect("cloning a file handle");
    command.stdin(Stdio::null()).stdout(file).stderr(errors);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
        Err(err) => panic!("spawning {command:?}: {err}"),
    };
    let deadline = Instant::now() + within;
    let ok = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                kill_child(child);
                break false;
            }
        }
    };
    (ok, std::fs::read_to_string(output).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_are_parsed() {
        let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host replica e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 7000 [5461->-abc]
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master,fail - 0 1426238316232 3 connected
";
        let lines = parse_cluster_nodes(text);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].port, 30004);
        assert_eq!(lines[0].master_id.as_deref(), Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"));
        assert_eq!(lines[1].slots, vec![(0, 5460), (7000, 7000)]);
        assert!(lines[1].serving_master() && lines[1].serves(7000) && !lines[1].serves(5461));
        assert!(lines[2].failed() && !lines[2].serving_master());
        assert_eq!(replica_in(&lines, 30001), Some(30004));
    }

    #[test]
    fn info_fields_are_found() {
        let info = "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n";
        assert_eq!(info_field(info, "master_link_status"), Some("up"));
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "master"), None);
    }
}
