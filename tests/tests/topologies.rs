//! The test topologies themselves: a Redis Cluster of three masters and three replicas, and a
//! master with two replicas watched by three sentinels. Each starts formed and agreed, fails over
//! when its master is killed (keeping the keys written before), a cluster moves a slot with its
//! keys, and nothing of either is left running once it is dropped.

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use cache_tower_tests::redis_cluster::{MASTERS, NODES, TestCluster};
use cache_tower_tests::redis_sentinel::{MASTER_NAME, REPLICAS, SENTINELS, TestSentinel};

fn connect(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("a valid URL");
    let connection = client.get_connection_with_timeout(Duration::from_secs(5)).expect("connecting");
    connection.set_read_timeout(Some(Duration::from_secs(5))).expect("setting a read timeout");
    connection
}

fn node(port: u16) -> redis::Connection {
    connect(&format!("redis://127.0.0.1:{port}"))
}

fn get(connection: &mut redis::Connection, key: &str) -> redis::RedisResult<Option<String>> {
    redis::cmd("GET").arg(key).query(connection)
}

fn set(connection: &mut redis::Connection, key: &str, value: &str) {
    redis::cmd("SET").arg(key).arg(value).exec(connection).expect("SET");
}

/// Waits until `replicas` replicas have the writes made so far on `connection`.
fn wait_replicated(connection: &mut redis::Connection, replicas: usize) {
    let acknowledged: usize = redis::cmd("WAIT").arg(replicas).arg(5000).query(connection).expect("WAIT");
    assert!(acknowledged >= replicas, "only {acknowledged} replicas acknowledged the write");
}

fn role(connection: &mut redis::Connection) -> String {
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(connection).expect("ROLE");
    redis::from_redis_value_ref(&role[0]).expect("ROLE names a role")
}

fn port_of(address: &str) -> u16 {
    address.rsplit(':').next().and_then(|port| port.parse().ok()).expect("host:port")
}

/// No process of `pids` exists and nothing answers on `ports`.
fn assert_gone(pids: &[u32], ports: &[u16]) {
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} still exists");
    }
    for port in ports {
        assert!(TcpStream::connect(("127.0.0.1", *port)).is_err(), "port {port} still accepts connections");
    }
}

#[test]
fn a_cluster_fails_over_to_the_replica_which_keeps_the_keys() {
    let started = Instant::now();
    let mut cluster = TestCluster::start();
    eprintln!("cluster started in {:?}", started.elapsed());
    assert_eq!(cluster.seeds().len(), NODES);
    assert!(cluster.seed_urls().iter().all(|url| url.starts_with("redis://127.0.0.1:")));
    let masters = cluster.masters();
    assert_eq!(masters.len(), MASTERS);

    let key = "topologies:failover";
    let master = cluster.master_of_key(key);
    let slot = cluster.slot_of_key(key);
    assert!(masters.contains(&master));
    let mut owner = node(master);
    set(&mut owner, key, "kept");
    wait_replicated(&mut owner, 1);
    assert_eq!(get(&mut owner, key).unwrap().as_deref(), Some("kept"));
    let other = masters.iter().copied().find(|&port| port != master).unwrap();
    let moved = get(&mut node(other), key).expect_err("a master that does not own the slot redirects");
    assert_eq!(moved.redirect_node(), Some((format!("127.0.0.1:{master}").as_str(), slot)), "{moved}");

    let replica = cluster.replica_of(master);
    assert_eq!(role(&mut node(replica)), "slave");
    cluster.kill_node(master);
    let took = cluster.wait_for_failover(master, Duration::from_secs(20));
    eprintln!("cluster failover took {took:?}");

    assert_eq!(cluster.master_of_key(key), replica);
    assert_eq!(role(&mut node(replica)), "master");
    assert_eq!(get(&mut node(replica), key).unwrap().as_deref(), Some("kept"));
    let now = cluster.masters();
    assert_eq!(now.len(), MASTERS);
    assert!(now.contains(&replica) && !now.contains(&master), "{now:?}");

    let pids = cluster.pids();
    assert_eq!(pids.len(), NODES - 1);
    let ports: Vec<u16> = cluster.seeds().iter().map(|seed| port_of(seed)).collect();
    drop(cluster);
    assert_gone(&pids, &ports);
}

#[test]
fn a_cluster_migrates_a_slot_with_its_keys() {
    let cluster = TestCluster::start();
    let keys = ["{topologies:slot}:a", "{topologies:slot}:b", "{topologies:slot}:c"];
    let slot = cluster.slot_of_key(keys[0]);
    let source = cluster.master_of_key(keys[0]);
    let mut owner = node(source);
    for key in keys {
        set(&mut owner, key, key);
    }
    let target = cluster.masters().into_iter().find(|&port| port != source).unwrap();

    cluster.migrate_slot(slot, target);

    assert_eq!(cluster.master_of_slot(slot), target);
    assert!(keys.iter().all(|key| cluster.master_of_key(key) == target));
    let mut new_owner = node(target);
    for key in keys {
        assert_eq!(get(&mut new_owner, key).unwrap().as_deref(), Some(key));
        let moved = get(&mut node(source), key).expect_err("the former owner redirects");
        assert_eq!(moved.redirect_node(), Some((format!("127.0.0.1:{target}").as_str(), slot)), "{moved}");
    }
    let count: i64 = redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot).query(&mut node(source)).unwrap();
    assert_eq!(count, 0);
    // The other keys stay where they were.
    let elsewhere = "topologies:elsewhere";
    let master = cluster.master_of_key(elsewhere);
    set(&mut node(master), elsewhere, "here");
    assert_eq!(get(&mut node(master), elsewhere).unwrap().as_deref(), Some("here"));

    let pids = cluster.pids();
    let ports: Vec<u16> = cluster.seeds().iter().map(|seed| port_of(seed)).collect();
    drop(cluster);
    assert_gone(&pids, &ports);
}

#[test]
fn sentinels_promote_a_replica_which_keeps_the_keys() {
    let started = Instant::now();
    let mut set_up = TestSentinel::start();
    eprintln!("sentinel set-up started in {:?}", started.elapsed());
    assert_eq!(set_up.sentinels().len(), SENTINELS);
    assert_eq!(set_up.sentinel_urls().len(), SENTINELS);
    let master = set_up.master_port();
    let replicas = set_up.replica_ports();
    assert_eq!(replicas.len(), REPLICAS);
    assert_eq!(role(&mut node(master)), "master");
    for replica in &replicas {
        assert_eq!(role(&mut node(*replica)), "slave");
    }
    let mut sentinel = connect(&set_up.sentinel_urls()[0]);
    let named: Vec<String> =
        redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(MASTER_NAME).query(&mut sentinel).unwrap();
    assert_eq!(named, ["127.0.0.1".to_owned(), master.to_string()]);

    let mut writer = node(master);
    set(&mut writer, "topologies:sentinel", "kept");
    wait_replicated(&mut writer, REPLICAS);

    let ports: Vec<u16> =
        set_up.sentinels().iter().map(|s| port_of(s)).chain([master]).chain(replicas.clone()).collect();
    let killed_at = Instant::now();
    let old = set_up.kill_master();
    assert_eq!(old, master);
    let new = set_up.wait_for_failover(old, Duration::from_secs(25));
    eprintln!("sentinel failover took {:?}", killed_at.elapsed());

    assert!(replicas.contains(&new), "{new} is not one of the replicas {replicas:?}");
    assert_eq!(set_up.master_port(), new);
    assert_eq!(role(&mut node(new)), "master");
    assert_eq!(get(&mut node(new), "topologies:sentinel").unwrap().as_deref(), Some("kept"));
    assert!(!set_up.replica_ports().contains(&new));

    let pids = set_up.pids();
    assert_eq!(pids.len(), SENTINELS + REPLICAS);
    drop(set_up);
    assert_gone(&pids, &ports);
}

#[test]
fn sentinels_with_a_password_fail_over_too() {
    let password = "s3cret";
    let mut set_up = TestSentinel::start_with_auth(password);
    assert_eq!(set_up.password(), Some(password));
    let sentinel = set_up.sentinels()[0].clone();
    let refused = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(MASTER_NAME)
        .query::<Vec<String>>(&mut connect(&format!("redis://{sentinel}")))
        .expect_err("a sentinel with requirepass refuses a client without AUTH");
    assert!(refused.to_string().contains("NOAUTH"), "{refused}");
    let master = set_up.master_port();
    let refused = get(&mut node(master), "k").expect_err("the master refuses a client without AUTH");
    assert!(refused.to_string().contains("NOAUTH"), "{refused}");
    let mut writer = connect(&format!("redis://:{password}@127.0.0.1:{master}"));
    set(&mut writer, "topologies:auth", "kept");
    wait_replicated(&mut writer, REPLICAS);

    let ports: Vec<u16> = set_up.sentinels().iter().map(|s| port_of(s)).chain([master]).collect();
    let old = set_up.kill_master();
    let new = set_up.wait_for_failover(old, Duration::from_secs(25));
    let mut promoted = connect(&format!("redis://:{password}@127.0.0.1:{new}"));
    assert_eq!(role(&mut promoted), "master");
    assert_eq!(get(&mut promoted, "topologies:auth").unwrap().as_deref(), Some("kept"));

    let pids = set_up.pids();
    drop(set_up);
    assert_gone(&pids, &ports);
}
