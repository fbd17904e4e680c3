//! How to reach Redis: the builder's settings, the redis client's connection info they make,
//! and keeping secrets out of `Debug`, `Display`, errors and logs.
//!
//! Secrets are kept out by structure, not by editing text: a URL is parsed once, by the redis
//! client, into a [`ConnectionInfo`]; settings given as parts go straight into one. Every text
//! shown about the server (the [`endpoint`]) is rendered from that structure with the password
//! left out, and no message ever quotes the URL as given (a URL that does not parse has no
//! structure to render, so it is not shown at all).

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use crate::error::{Error, Result};

/// Default bound on one operation, connecting included.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default bound on opening a connection.
pub(super) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default number of idle sync connections kept for reuse.
pub(super) const DEFAULT_POOL_SIZE: usize = 16;

/// The error of a TLS setting in a build without TLS: it names the feature to enable.
pub(super) const NEEDS_TLS_FEATURE: &str = "TLS needs cache-tower's `tls` feature, which this build does not have: \
     enable it in Cargo.toml (cache-tower = { version = \"0.1\", features = [\"tls\"] })";

/// What stands for a password in every text shown.
const REDACTED: &str = "***";

/// The connection settings gathered by [`RedisAdapterBuilder`](super::RedisAdapterBuilder).
#[derive(Clone, Default)]
pub(super) struct Settings {
    /// The URL given to [`url`](super::RedisAdapterBuilder::url), parsed when given.
    pub(super) url: Option<ParsedUrl>,
    pub(super) url_env: Option<String>,
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) db: Option<u32>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) tls: bool,
    pub(super) tls_ca_file: Option<PathBuf>,
    /// Seed nodes of a Redis Cluster, as given to [`cluster`](super::RedisAdapterBuilder::cluster).
    pub(super) cluster: Option<Vec<String>>,
    /// The Sentinel set-up, as given to [`sentinel`](super::RedisAdapterBuilder::sentinel).
    pub(super) sentinel: Option<SentinelSettings>,
}

/// Where Sentinel runs and which master it watches; the credentials here are the sentinels'
/// own (`requirepass` in their configuration), not the data nodes'.
#[derive(Clone, Default)]
pub(super) struct SentinelSettings {
    pub(super) master_name: String,
    pub(super) nodes: Vec<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_env: Option<String>,
}

/// The secrets of a layer's settings (the data nodes' password, the sentinels' password), to
/// scrub from any text of the redis client that might echo one.
#[derive(Clone, Default)]
pub(super) struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, secret: Option<&str>) {
        if let Some(secret) = secret.filter(|secret| !secret.is_empty() && !self.0.iter().any(|known| known == secret))
        {
            self.0.push(secret.to_owned());
        }
    }
}

/// Which servers a layer talks to, resolved.
pub(super) enum Topology {
    /// One server: [`Target::info`].
    Single,
    /// A Redis Cluster, reached through these seed nodes (each with the data nodes' credentials).
    Cluster(Vec<ConnectionInfo>),
    /// The master Sentinel names `master_name`, asked of these sentinels; the data nodes'
    /// credentials and database are [`Target::info`]'s.
    Sentinel { master_name: String, sentinels: Vec<ConnectionInfo> },
}

/// A URL as the redis client understands it, or why it cannot be used. The text of the URL is
/// not kept: what is kept is the structure (which redacts itself) or a message without the URL.
#[derive(Clone)]
pub(super) struct ParsedUrl(std::result::Result<ConnectionInfo, UrlProblem>);

/// Why a URL cannot be used, in words that do not quote the URL, and the redis client's error
/// (scrubbed) when it was the one to refuse.
#[derive(Clone)]
pub(super) struct UrlProblem {
    message: &'static str,
    cause: Option<Scrubbed>,
}

impl ParsedUrl {
    pub(super) fn parse(url: &str) -> Self {
        Self(parse_url(url))
    }
}

/// The URL schemes the redis client accepts, by the kind of address they name.
const TCP_SCHEMES: &[&str] = &["redis", "rediss", "valkey", "valkeys"];
const UNIX_SCHEMES: &[&str] = &["redis+unix", "valkey+unix", "unix"];

/// Parses `url` with the redis client, stricter than it on what it would silently ignore: a
/// fragment other than `#insecure` on a TLS URL, and query parameters it does not read. Both
/// usually mean a password holding an unencoded `#` or `?`, which would otherwise connect to a
/// host and port made of the start of the password.
fn parse_url(url: &str) -> std::result::Result<ConnectionInfo, UrlProblem> {
    let problem = |message| UrlProblem { message, cause: None };
    let scheme = url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
    let Some(scheme) = scheme.filter(|s| TCP_SCHEMES.contains(&s.as_str()) || UNIX_SCHEMES.contains(&s.as_str()))
    else {
        return Err(problem("expected a redis://, rediss://, redis+unix:// or unix:// URL"));
    };
    let Some(parsed) = redis::parse_redis_url(url) else {
        return Err(problem(
            "the URL does not parse (a `#`, `/`, `?` or `@` in the user name or password must be \
             percent-encoded: %23, %2F, %3F, %40)",
        ));
    };
    let unix = UNIX_SCHEMES.contains(&scheme.as_str());
    let known: &[&str] = if unix { &["db", "user", "pass", "protocol"] } else { &["protocol"] };
    if parsed.query_pairs().any(|(key, _)| !known.contains(&key.as_ref())) {
        return Err(problem(if unix {
            "unexpected URL query parameter (a redis+unix:// URL takes db, user, pass and protocol; \
             a `?` in a password must be percent-encoded as %3F)"
        } else {
            "unexpected URL query parameter (only protocol is read; a `?` in the user name or \
             password must be percent-encoded as %3F)"
        }));
    }
    let tls = matches!(scheme.as_str(), "rediss" | "valkeys");
    if tls && cfg!(not(feature = "tls")) {
        return Err(problem(NEEDS_TLS_FEATURE));
    }
    if parsed.fragment().is_some_and(|fragment| !(tls && fragment == "insecure")) {
        return Err(problem(
            "unexpected URL fragment (only #insecure, on a rediss:// URL; a `#` in the user name \
             or password must be percent-encoded as %23)",
        ));
    }
    parsed.into_connection_info().map_err(|err| UrlProblem {
        message: "the redis client cannot use this URL",
        // No structure came out, so the password is not known here; the client's errors about
        // a URL name what is wrong with it, never its text.
        cause: Some(Scrubbed::new(&err, &Secrets::default())),
    })
}

/// Where the adapter connects, resolved from the settings.
pub(super) struct Target {
    /// The connection info, secrets included: only ever handed to the redis client.
    pub(super) info: ConnectionInfo,
    /// The server as a URL with the password replaced by `***`, for messages ([`endpoint`]).
    pub(super) redacted: String,
    /// The passwords, to scrub from any message of the redis client that might echo one.
    pub(super) secrets: Secrets,
    /// PEM root certificates to trust, from `tls_ca_file`.
    pub(super) root_cert: Option<Vec<u8>>,
    /// One server, a cluster, or a master found through Sentinel.
    pub(super) topology: Topology,
}

impl Settings {
    /// Resolves the settings into connection info, reading environment variables and files
    /// they name.
    pub(super) fn resolve(&self) -> Result<Target> {
        if cfg!(not(feature = "tls")) {
            if self.tls {
                return Err(Error::config(None, Some("tls"), NEEDS_TLS_FEATURE));
            }
            if self.tls_ca_file.is_some() {
                return Err(Error::config(None, Some("tls_ca_file"), NEEDS_TLS_FEATURE));
            }
        }
        if self.cluster.is_some() || self.sentinel.is_some() {
            return self.resolve_topology();
        }
        let from_parts = self.host.is_some()
            || self.port.is_some()
            || self.db.is_some()
            || self.username.is_some()
            || self.password.is_some()
            || self.password_env.is_some()
            || self.tls;
        let url = match (&self.url, &self.url_env) {
            (Some(_), Some(_)) => return Err(conflict("url", "give either url or url_env, not both")),
            (Some(url), None) => Some((url.clone(), "url")),
            (None, Some(name)) => Some((ParsedUrl::parse(&env_var(name, "url_env")?), "url_env")),
            (None, None) => None,
        };
        let info = match url {
            Some((_, field)) if from_parts => {
                return Err(conflict(
                    field,
                    "a URL already names host, port, db, credentials and TLS; give either a URL or those settings",
                ));
            }
            Some((ParsedUrl(Ok(info)), _)) => info,
            Some((ParsedUrl(Err(problem)), field)) => {
                let err = Error::config(None, Some(field), problem.message);
                return Err(match problem.cause {
                    Some(cause) => err.with_source(cause),
                    None => err,
                });
            }
            None => self.info_from_parts()?,
        };
        let mut secrets = Secrets::default();
        secrets.add(info.redis_settings().password());
        Ok(Target {
            redacted: endpoint(&info),
            info,
            secrets,
            root_cert: self.root_cert()?,
            topology: Topology::Single,
        })
    }

    fn root_cert(&self) -> Result<Option<Vec<u8>>> {
        let Some(path) = &self.tls_ca_file else { return Ok(None) };
        std::fs::read(path).map(Some).map_err(|err| {
            Error::config(None, Some("tls_ca_file"), format!("cannot read {}", path.display())).with_source(err)
        })
    }

    /// The target of a cluster or a Sentinel set-up: the node list replaces `url` and `host` /
    /// `port`, while `username`, `password` (or `password_env`), `tls` and (Sentinel only) `db`
    /// apply to every data node.
    fn resolve_topology(&self) -> Result<Target> {
        let field = if self.cluster.is_some() { "cluster" } else { "sentinel" };
        if self.cluster.is_some() && self.sentinel.is_some() {
            return Err(conflict("cluster", "give either cluster or sentinel, not both"));
        }
        if self.url.is_some() || self.url_env.is_some() || self.host.is_some() || self.port.is_some() {
            return Err(conflict(
                field,
                "the node list names the servers: give it instead of url, url_env, host and port, not beside them",
            ));
        }
        if self.tls_ca_file.is_some() {
            return Err(conflict(
                "tls_ca_file",
                "a CA file is supported for one server only; with a cluster or Sentinel, TLS trusts the system's roots",
            ));
        }
        // The data nodes' credentials, database and TLS, as for one server given as parts.
        let base = self.info_from_parts()?;
        let mut secrets = Secrets::default();
        secrets.add(base.redis_settings().password());
        let topology = if let Some(nodes) = &self.cluster {
            if self.db.is_some_and(|db| db != 0) {
                return Err(conflict("db", "a Redis Cluster has database 0 only"));
            }
            Topology::Cluster(node_list(nodes, "cluster", &base, &mut secrets)?)
        } else {
            let sentinel = self.sentinel.as_ref().expect("cluster or sentinel");
            if sentinel.master_name.is_empty() {
                return Err(conflict("sentinel.master_name", "must name the master Sentinel watches"));
            }
            let password = match (&sentinel.password, &sentinel.password_env) {
                (Some(_), Some(_)) => {
                    return Err(conflict("sentinel.password", "give either password or password_env, not both"));
                }
                (Some(password), None) => Some(password.clone()),
                (None, Some(name)) => Some(env_var(name, "sentinel.password_env")?),
                (None, None) => None,
            };
            secrets.add(password.as_deref());
            let mut auth = RedisConnectionInfo::default();
            if let Some(username) = &sentinel.username {
                auth = auth.set_username(username);
            }
            if let Some(password) = &password {
                auth = auth.set_password(password);
            }
            let tls = matches!(base.addr(), ConnectionAddr::TcpTls { .. });
            let sentinel_base = base_address(tls)
                .into_connection_info()
                .map_err(|_| conflict("sentinel", "the redis client cannot use this address"))?;
            let sentinel_base = sentinel_base.set_redis_settings(auth);
            let sentinels = node_list(&sentinel.nodes, "sentinel.nodes", &sentinel_base, &mut secrets)?;
            Topology::Sentinel { master_name: sentinel.master_name.clone(), sentinels }
        };
        let redacted = match &topology {
            Topology::Cluster(nodes) => format!("cluster {}", addresses(nodes)),
            Topology::Sentinel { master_name, sentinels } => {
                format!("master {master_name:?} of sentinels {}", addresses(sentinels))
            }
            Topology::Single => unreachable!("resolved above"),
        };
        Ok(Target { info: base, redacted, secrets, root_cert: self.root_cert()?, topology })
    }

    /// The connection info of settings given as parts, built field by field (nothing is
    /// formatted into a URL and parsed back, so no character of a password needs encoding).
    fn info_from_parts(&self) -> Result<ConnectionInfo> {
        let password = match (&self.password, &self.password_env) {
            (Some(_), Some(_)) => return Err(conflict("password", "give either password or password_env, not both")),
            (Some(password), None) => Some(password.clone()),
            (None, Some(name)) => Some(env_var(name, "password_env")?),
            (None, None) => None,
        };
        let host = self.host.as_deref().unwrap_or("127.0.0.1");
        // `[::1]` as in a URL is `::1` to the redis client.
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() || host.contains(['/', '@', '[', ']']) || host.contains(char::is_whitespace) {
            return Err(conflict("host", "expected a host name or IP address"));
        }
        let port = self.port.unwrap_or(6379);
        let addr = if self.tls {
            ConnectionAddr::TcpTls { host: host.to_owned(), port, insecure: false, tls_params: None }
        } else {
            ConnectionAddr::Tcp(host.to_owned(), port)
        };
        let mut redis = RedisConnectionInfo::default().set_db(i64::from(self.db.unwrap_or(0)));
        if let Some(username) = &self.username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &password {
            redis = redis.set_password(password);
        }
        let info = addr.into_connection_info().map_err(|err| {
            Error::config(None, Some("host"), "the redis client cannot use this address").with_source(Scrubbed::new(
                &err,
                &{
                    let mut secrets = Secrets::default();
                    secrets.add(password.as_deref());
                    secrets
                },
            ))
        })?;
        Ok(info.set_redis_settings(redis))
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url)
            .field("url_env", &self.url_env)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("password_env", &self.password_env)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("cluster", &self.cluster)
            .field("sentinel", &self.sentinel)
            .finish()
    }
}

impl fmt::Debug for SentinelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelSettings")
            .field("master_name", &self.master_name)
            .field("nodes", &self.nodes.len())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("password_env", &self.password_env)
            .finish()
    }
}

impl fmt::Debug for ParsedUrl {
    /// The URL rendered from its structure, password redacted; a URL that did not parse, which
    /// has no structure to render, is not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(info) => f.write_str(&endpoint(info)),
            Err(problem) => write!(f, "<a URL that cannot be used (not shown): {}>", problem.message),
        }
    }
}

/// A placeholder address carrying only whether TLS is on (a node list gives the real ones).
fn base_address(tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls { host: "127.0.0.1".to_owned(), port: 6379, insecure: false, tls_params: None }
    } else {
        ConnectionAddr::Tcp("127.0.0.1".to_owned(), 6379)
    }
}

/// The nodes of `field` as connection infos: each `host:port` (with `base`'s credentials,
/// database and TLS) or a URL (its own credentials, else `base`'s). An entry is never quoted in
/// an error (a URL may hold a password): the error names its index (`cluster.2`).
fn node_list(
    nodes: &[String],
    field: &str,
    base: &ConnectionInfo,
    secrets: &mut Secrets,
) -> Result<Vec<ConnectionInfo>> {
    if nodes.is_empty() {
        return Err(conflict(field, "needs at least one node (`host:port` or a URL)"));
    }
    let tls = matches!(base.addr(), ConnectionAddr::TcpTls { .. });
    nodes
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let at = format!("{field}.{index}");
            let info = if node.contains("://") {
                match parse_url(node) {
                    Ok(info)
                        if info.redis_settings().password().is_none() && info.redis_settings().username().is_none() =>
                    {
                        let settings = base.redis_settings().clone().set_db(info.redis_settings().db());
                        info.set_redis_settings(settings)
                    }
                    Ok(info) => info,
                    Err(problem) => return Err(Error::config(None, Some(&at), problem.message)),
                }
            } else {
                let (host, port) = node
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host, port.parse::<u16>().ok().filter(|port| *port > 0)?)))
                    .ok_or_else(|| conflict(&at, "expected `host:port` (a port from 1 to 65535) or a redis:// URL"))?;
                let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
                if host.is_empty() || host.contains(['/', '@', '[', ']']) || host.contains(char::is_whitespace) {
                    return Err(conflict(&at, "expected `host:port` with a host name or IP address"));
                }
                let addr = match base_address(tls) {
                    ConnectionAddr::TcpTls { insecure, tls_params, .. } => {
                        ConnectionAddr::TcpTls { host: host.to_owned(), port, insecure, tls_params }
                    }
                    _ => ConnectionAddr::Tcp(host.to_owned(), port),
                };
                addr.into_connection_info()
                    .map_err(|_| conflict(&at, "the redis client cannot use this address"))?
                    .set_redis_settings(base.redis_settings().clone())
            };
            if !matches!(info.addr(), ConnectionAddr::Tcp(..) | ConnectionAddr::TcpTls { .. }) {
                return Err(conflict(&at, "expected a TCP node (`host:port`, redis:// or rediss://)"));
            }
            secrets.add(info.redis_settings().password());
            Ok(info)
        })
        .collect()
}

/// `host:port` of each node, comma-separated, for messages (never credentials).
fn addresses(nodes: &[ConnectionInfo]) -> String {
    let address = |info: &ConnectionInfo| match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
        other => other.to_string(),
    };
    nodes.iter().map(address).collect::<Vec<_>>().join(",")
}

fn conflict(field: &str, message: &str) -> Error {
    Error::config(None, Some(field), message)
}

fn env_var(name: &str, field: &str) -> Result<String> {
    std::env::var(name).map_err(|_| {
        Error::config(None, Some(field), format!("environment variable {name} is not set (or not valid UTF-8)"))
    })
}

/// The server of `info` as a URL for messages, the password replaced by `***`:
/// `redis://[user][:***@]host:port/db`, `rediss://…` (with `#insecure` when so),
/// `redis+unix:///path?db=…[&user=…][&pass=***]`.
///
/// Rendered from the structure, so what the password holds, and how it was written, cannot
/// matter. It is a label, not a URL to connect with: the user name is shown as it is.
pub(super) fn endpoint(info: &ConnectionInfo) -> String {
    let redis = info.redis_settings();
    let user = redis.username().unwrap_or("");
    let has_password = redis.password().is_some();
    let credentials = match (user, has_password) {
        ("", false) => String::new(),
        (user, false) => format!("{user}@"),
        (user, true) => format!("{user}:{REDACTED}@"),
    };
    let host = |host: &str| if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    let db = redis.db();
    match info.addr() {
        ConnectionAddr::Tcp(name, port) => format!("redis://{credentials}{}:{port}/{db}", host(name)),
        ConnectionAddr::TcpTls { host: name, port, insecure, .. } => {
            let fragment = if *insecure { "#insecure" } else { "" };
            format!("rediss://{credentials}{}:{port}/{db}{fragment}", host(name))
        }
        ConnectionAddr::Unix(path) => {
            let mut text = format!("redis+unix://{}?db={db}", path.display());
            if !user.is_empty() {
                text.push_str(&format!("&user={user}"));
            }
            if has_password {
                text.push_str(&format!("&pass={REDACTED}"));
            }
            text
        }
        // An address kind added by a later redis client: its own rendering, which has no
        // credentials in it.
        other => other.to_string(),
    }
}

/// `text` with every occurrence of the secret replaced by `***`: for the text of an error of the
/// redis client, which never quotes a password as far as is known, as a second line of defence.
pub(super) fn scrub(text: &str, secrets: &Secrets) -> String {
    let mut text = text.to_owned();
    for secret in &secrets.0 {
        text = text.replace(secret.as_str(), REDACTED);
    }
    text
}

/// A redis client error as the source of one of ours: its kind, its server error code and its
/// text with the password scrubbed. The original is not kept: its `Display`, `Debug` and
/// sources are outside our control.
#[derive(Clone)]
pub(super) struct Scrubbed {
    kind: redis::ErrorKind,
    code: Option<String>,
    text: String,
}

impl Scrubbed {
    pub(super) fn new(err: &redis::RedisError, secrets: &Secrets) -> Self {
        Self { kind: err.kind(), code: err.code().map(str::to_owned), text: scrub(&err.to_string(), secrets) }
    }
}

impl fmt::Display for Scrubbed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Scrubbed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisError")
            .field("kind", &self.kind)
            .field("code", &self.code)
            .field("text", &self.text)
            .finish()
    }
}

impl StdError for Scrubbed {}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(settings: Settings) -> Target {
        settings.resolve().unwrap()
    }

    #[test]
    fn parts_go_into_the_connection_info_as_they_are() {
        let settings = Settings {
            host: Some("cache.local".into()),
            port: Some(6380),
            db: Some(2),
            username: Some("app".into()),
            password: Some("p@ss:w/rd#?".into()),
            ..Settings::default()
        };
        let target = resolved(settings);
        assert_eq!(target.info.addr(), &ConnectionAddr::Tcp("cache.local".into(), 6380));
        let redis = target.info.redis_settings();
        assert_eq!((redis.username(), redis.password(), redis.db()), (Some("app"), Some("p@ss:w/rd#?"), 2));
        assert_eq!(target.redacted, "redis://app:***@cache.local:6380/2");
        assert_eq!(target.secrets.0, ["p@ss:w/rd#?"]);
        assert_eq!(scrub("echo p@ss:w/rd#? twice p@ss:w/rd#?", &target.secrets), "echo *** twice ***");
    }

    #[test]
    fn defaults_to_local_redis() {
        assert_eq!(resolved(Settings::default()).redacted, "redis://127.0.0.1:6379/0");
        if cfg!(feature = "tls") {
            let tls = resolved(Settings { tls: true, ..Settings::default() });
            assert!(matches!(tls.info.addr(), ConnectionAddr::TcpTls { port: 6379, insecure: false, .. }));
            assert_eq!(tls.redacted, "rediss://127.0.0.1:6379/0");
        }
        let v6 = resolved(Settings { host: Some("[::1]".into()), ..Settings::default() });
        assert_eq!(v6.info.addr(), &ConnectionAddr::Tcp("::1".into(), 6379));
        assert_eq!(v6.redacted, "redis://[::1]:6379/0");
    }

    #[test]
    fn a_url_is_parsed_once_and_rendered_from_its_structure() {
        let url = |text: &str| resolved(Settings { url: Some(ParsedUrl::parse(text)), ..Settings::default() });
        assert_eq!(url("redis://:secret@h:1/0").redacted, "redis://:***@h:1/0");
        assert_eq!(url("redis://u:secret@h/3").redacted, "redis://u:***@h:6379/3");
        assert_eq!(url("redis://u@h/0").redacted, "redis://u@h:6379/0");
        assert_eq!(url("redis://h:1").redacted, "redis://h:1/0");
        assert_eq!(url("redis://:se%23cr%2Fet@h:1/0").secrets.0, ["se#cr/et"]);
        assert_eq!(
            url("redis+unix:///tmp/r.sock?db=2&user=u&pass=secret").redacted,
            "redis+unix:///tmp/r.sock?db=2&user=u&pass=***"
        );
        assert_eq!(url("unix:///tmp/r.sock?pass=secret").secrets.0, ["secret"]);
    }

    #[test]
    fn rejects_conflicting_or_bad_settings() {
        let url = |text: &str| Some(ParsedUrl::parse(text));
        let both = Settings { url: url("redis://h"), host: Some("h".into()), ..Settings::default() };
        assert_eq!(both.resolve().err().unwrap().field(), Some("url"));
        for bad in ["http://h", "redis://:a#b@h/0", "redis://:12#b@h/0", "redis://:12?b@h/0", "redis://h/x"] {
            let err = Settings { url: url(bad), ..Settings::default() }.resolve().err().unwrap();
            assert_eq!(err.field(), Some("url"), "{bad}");
        }
        let unset = Settings { url_env: Some("CACHE_TOWER_TEST_SURELY_UNSET".into()), ..Settings::default() };
        assert_eq!(unset.resolve().err().unwrap().field(), Some("url_env"));
        let host = Settings { host: Some("a/b".into()), ..Settings::default() };
        assert_eq!(host.resolve().err().unwrap().field(), Some("host"));
    }

    #[test]
    fn a_node_list_takes_the_data_nodes_credentials_and_names_its_bad_entries() {
        let cluster = |nodes: &[&str]| Settings {
            cluster: Some(nodes.iter().map(|node| (*node).to_owned()).collect()),
            username: Some("app".into()),
            password: Some("s3cret".into()),
            ..Settings::default()
        };
        let target = resolved(cluster(&["10.0.0.1:7000", "redis://:own%23pw@10.0.0.2:7001", "[::1]:7002"]));
        assert_eq!(target.redacted, "cluster 10.0.0.1:7000,10.0.0.2:7001,::1:7002");
        let Topology::Cluster(nodes) = &target.topology else { panic!("a cluster") };
        assert_eq!(nodes[0].redis_settings().password(), Some("s3cret"));
        assert_eq!(nodes[0].redis_settings().username(), Some("app"));
        assert_eq!(nodes[1].redis_settings().password(), Some("own#pw"), "a node URL keeps its own credentials");
        assert_eq!(target.secrets.0, ["s3cret", "own#pw"]);
        for (nodes, field) in [
            (&[][..], "cluster"),
            (&["10.0.0.1"][..], "cluster.0"),
            (&["a:7000", "b:0"][..], "cluster.1"),
            (&["a:7000", "redis://:pa#ss@b:1/0"][..], "cluster.1"),
            (&["redis+unix:///tmp/r.sock"][..], "cluster.0"),
        ] {
            let err = cluster(nodes).resolve().err().expect("refused");
            assert_eq!(err.field(), Some(field), "{nodes:?}");
            assert!(!format!("{err} {err:?}").contains("pa#ss"), "{err:?}");
        }
        let both = Settings { host: Some("h".into()), ..cluster(&["a:1"]) };
        assert_eq!(both.resolve().err().unwrap().field(), Some("cluster"));
        let db = Settings { db: Some(2), ..cluster(&["a:1"]) };
        assert_eq!(db.resolve().err().unwrap().field(), Some("db"));
    }

    #[test]
    fn sentinel_settings_are_checked_and_both_passwords_are_secrets() {
        let sentinel = |name: &str, nodes: &[&str]| Settings {
            sentinel: Some(SentinelSettings {
                master_name: name.to_owned(),
                nodes: nodes.iter().map(|node| (*node).to_owned()).collect(),
                password: Some("sentinel-pw".into()),
                ..SentinelSettings::default()
            }),
            password: Some("data-pw".into()),
            db: Some(3),
            ..Settings::default()
        };
        let target = resolved(sentinel("mymaster", &["10.0.0.1:26379", "10.0.0.2:26379"]));
        assert_eq!(target.redacted, r#"master "mymaster" of sentinels 10.0.0.1:26379,10.0.0.2:26379"#);
        assert_eq!(target.secrets.0, ["data-pw", "sentinel-pw"]);
        assert_eq!((target.info.redis_settings().password(), target.info.redis_settings().db()), (Some("data-pw"), 3));
        let Topology::Sentinel { sentinels, .. } = &target.topology else { panic!("sentinel") };
        assert_eq!(sentinels[0].redis_settings().password(), Some("sentinel-pw"));
        assert_eq!(sentinel("", &["a:1"]).resolve().err().unwrap().field(), Some("sentinel.master_name"));
        assert_eq!(sentinel("m", &[]).resolve().err().unwrap().field(), Some("sentinel.nodes"));
        let both = Settings { cluster: Some(vec!["a:1".into()]), ..sentinel("m", &["a:1"]) };
        assert_eq!(both.resolve().err().unwrap().field(), Some("cluster"));
        let debug = format!("{:?}", sentinel("m", &["a:1"]));
        assert!(!debug.contains("sentinel-pw") && !debug.contains("data-pw"), "{debug}");
    }

    /// Run by `scripts/test.sh` in a build without the `tls` feature.
    #[test]
    #[cfg(not(feature = "tls"))]
    fn without_the_tls_feature_every_tls_setting_names_the_feature() {
        let cases = [
            (Settings { tls: true, ..Settings::default() }, "tls"),
            (Settings { tls_ca_file: Some("ca.pem".into()), ..Settings::default() }, "tls_ca_file"),
            (Settings { url: Some(ParsedUrl::parse("rediss://:secret@h:6380/0")), ..Settings::default() }, "url"),
            (Settings { url: Some(ParsedUrl::parse("valkeys://h")), ..Settings::default() }, "url"),
        ];
        for (settings, field) in cases {
            let err = settings.resolve().err().expect("refused");
            assert_eq!(err.field(), Some(field));
            assert!(err.to_string().contains("cache-tower's `tls` feature"), "{err}");
            assert!(err.to_string().contains(r#"features = ["tls"]"#), "{err}");
            assert!(!format!("{err} {err:?}").contains("secret"), "{err:?}");
        }
    }
}
