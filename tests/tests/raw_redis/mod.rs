//! A plain redis-rs connection to a test's server, for what the tests do behind the towers' backs:
//! external writes, reading what is stored, and finding and killing the invalidation connections.
//!
//! Shared by several test files (`mod raw_redis;`); each uses only some of it.
#![allow(dead_code)]

use std::time::Duration;

/// A connection, and the namespace its key arguments are put under.
pub(crate) struct Raw {
    pub(crate) connection: redis::Connection,
    namespace: String,
}

impl Raw {
    pub(crate) fn connect(url: &str, namespace: &str) -> Self {
        let client = redis::Client::open(url).expect("a valid URL");
        let connection =
            client.get_connection_with_timeout(Duration::from_secs(5)).expect("connecting to the test redis");
        Self { connection, namespace: namespace.to_owned() }
    }

    /// The Redis key of tower key `key`.
    pub(crate) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.namespace)
    }

    /// Runs `command` on `key` (namespaced) with more arguments.
    pub(crate) fn on_key(&mut self, command: &str, key: &str, args: &[&[u8]]) {
        let mut cmd = redis::cmd(command);
        cmd.arg(self.key(key));
        for arg in args {
            cmd.arg(*arg);
        }
        cmd.exec(&mut self.connection).unwrap_or_else(|err| panic!("{command} {key:?}: {err}"));
    }

    /// `SET key text`, namespaced.
    pub(crate) fn set(&mut self, key: &str, text: &str) {
        self.on_key("SET", key, &[text.as_bytes()]);
    }

    /// `GET key`, namespaced.
    pub(crate) fn get(&mut self, key: &str) -> Option<String> {
        redis::cmd("GET").arg(self.key(key)).query(&mut self.connection).expect("raw GET")
    }

    /// Runs a command without a key.
    pub(crate) fn run(&mut self, args: &[&str]) {
        redis::cmd(args[0]).arg(&args[1..]).exec(&mut self.connection).unwrap_or_else(|err| panic!("{args:?}: {err}"));
    }

    /// A numeric field of `INFO section`.
    pub(crate) fn info_field(&mut self, section: &str, name: &str) -> u64 {
        let info: String = redis::cmd("INFO").arg(section).query(&mut self.connection).expect("INFO");
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("INFO {section} has no {name}: {info}"))
    }

    /// The ids of the connections with client tracking on (the invalidation listeners).
    pub(crate) fn tracking_clients(&mut self) -> Vec<u64> {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut self.connection).expect("CLIENT LIST");
        list.lines()
            .filter(|line| field(line, "flags").is_some_and(|flags| flags.contains('t')))
            .filter_map(|line| field(line, "id")?.parse().ok())
            .collect()
    }
}

/// A `name=value` field of a `CLIENT LIST` line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(' ').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}
