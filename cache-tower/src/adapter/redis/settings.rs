//! How to reach Redis: the builder's settings, the URL they make, and keeping secrets out of
//! `Debug`, `Display`, errors and logs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// Default bound on one operation, connecting included.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default bound on opening a connection.
pub(super) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default number of idle sync connections kept for reuse.
pub(super) const DEFAULT_POOL_SIZE: usize = 16;

/// The connection settings gathered by [`RedisAdapterBuilder`](super::RedisAdapterBuilder).
#[derive(Clone, Default)]
pub(super) struct Settings {
    pub(super) url: Option<String>,
    pub(super) url_env: Option<String>,
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) db: Option<u32>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) tls: bool,
    pub(super) tls_ca_file: Option<PathBuf>,
}

/// Where the adapter connects, resolved from the settings.
pub(super) struct Target {
    /// The URL, secrets included: only ever handed to the redis client.
    pub(super) url: String,
    /// The URL with its password replaced by `***`, for messages.
    pub(super) redacted: String,
    /// The password, to scrub from any message that might echo it.
    pub(super) secret: Option<String>,
    /// PEM root certificates to trust, from `tls_ca_file`.
    pub(super) root_cert: Option<Vec<u8>>,
}

impl Settings {
    /// Resolves the settings into a URL, reading environment variables and files they name.
    pub(super) fn resolve(&self) -> Result<Target> {
        let from_parts = self.host.is_some()
            || self.port.is_some()
            || self.db.is_some()
            || self.username.is_some()
            || self.password.is_some()
            || self.password_env.is_some()
            || self.tls;
        let url = match (&self.url, &self.url_env) {
            (Some(_), Some(_)) => return Err(conflict("url", "give either url or url_env, not both")),
            (Some(url), None) => Some(url.clone()),
            (None, Some(name)) => Some(env_var(name, "url_env")?),
            (None, None) => None,
        };
        let url = match url {
            Some(_) if from_parts => {
                return Err(conflict(
                    if self.url.is_some() { "url" } else { "url_env" },
                    "a URL already names host, port, db, credentials and TLS; give either a URL or those settings",
                ));
            }
            Some(url) => url,
            None => self.url_from_parts()?,
        };
        if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix://")) {
            return Err(conflict("url", "expected a redis://, rediss:// or redis+unix:// URL"));
        }
        let secret = password_in_url(&url).filter(|p| !p.is_empty());
        let root_cert = match &self.tls_ca_file {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|err| {
                Error::config(None, Some("tls_ca_file"), format!("cannot read {}", path.display())).with_source(err)
            })?),
        };
        Ok(Target { redacted: redact_url(&url), url, secret, root_cert })
    }

    fn url_from_parts(&self) -> Result<String> {
        let password = match (&self.password, &self.password_env) {
            (Some(_), Some(_)) => return Err(conflict("password", "give either password or password_env, not both")),
            (Some(password), None) => Some(password.clone()),
            (None, Some(name)) => Some(env_var(name, "password_env")?),
            (None, None) => None,
        };
        let scheme = if self.tls { "rediss" } else { "redis" };
        let credentials = match (&self.username, &password) {
            (None, None) => String::new(),
            (Some(user), None) => format!("{}@", percent_encode(user)),
            (user, Some(password)) => {
                format!("{}:{}@", percent_encode(user.as_deref().unwrap_or("")), percent_encode(password))
            }
        };
        let host = self.host.as_deref().unwrap_or("127.0.0.1");
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(conflict("host", "expected a host name or IP address"));
        }
        let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_owned() };
        let port = self.port.unwrap_or(6379);
        let db = self.db.unwrap_or(0);
        Ok(format!("{scheme}://{credentials}{host}:{port}/{db}"))
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("url_env", &self.url_env)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("password_env", &self.password_env)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

fn conflict(field: &str, message: &str) -> Error {
    Error::config(None, Some(field), message)
}

fn env_var(name: &str, field: &str) -> Result<String> {
    std::env::var(name).map_err(|_| {
        Error::config(None, Some(field), format!("environment variable {name} is not set (or not valid UTF-8)"))
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for credentials in a URL.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The user-info part of a URL (`user:password` before `@`), if any.
fn userinfo(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    let at = url[start..authority_end].rfind('@')? + start;
    Some((start, at))
}

/// The password of a URL, as written (still percent-encoded).
fn password_in_url(url: &str) -> Option<String> {
    let (start, at) = userinfo(url)?;
    let info = &url[start..at];
    info.find(':').map(|colon| info[colon + 1..].to_owned())
}

/// The URL with its password (if any) replaced by `***`.
pub(super) fn redact_url(url: &str) -> String {
    let Some((start, at)) = userinfo(url) else { return url.to_owned() };
    let info = &url[start..at];
    match info.find(':') {
        Some(colon) => format!("{}{}:***{}", &url[..start], &info[..colon], &url[at..]),
        None => url.to_owned(),
    }
}

/// `text` with every occurrence of the secret (raw or percent-encoded) replaced by `***`.
pub(super) fn scrub(text: &str, secret: Option<&str>) -> String {
    let Some(secret) = secret else { return text.to_owned() };
    let mut text = text.replace(secret, "***");
    let decoded = percent_decode(secret);
    if !decoded.is_empty() {
        text = text.replace(&decoded, "***");
    }
    text
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_from_parts_encodes_credentials() {
        let settings = Settings {
            host: Some("cache.local".into()),
            port: Some(6380),
            db: Some(2),
            username: Some("app".into()),
            password: Some("p@ss:w/rd".into()),
            ..Settings::default()
        };
        let target = settings.resolve().unwrap();
        assert_eq!(target.url, "redis://app:p%40ss%3Aw%2Frd@cache.local:6380/2");
        assert_eq!(target.redacted, "redis://app:***@cache.local:6380/2");
        assert_eq!(scrub("echo p@ss:w/rd and p%40ss%3Aw%2Frd", target.secret.as_deref()), "echo *** and ***");
    }

    #[test]
    fn defaults_to_local_redis() {
        assert_eq!(Settings::default().resolve().unwrap().url, "redis://127.0.0.1:6379/0");
        let tls = Settings { tls: true, ..Settings::default() };
        assert_eq!(tls.resolve().unwrap().url, "rediss://127.0.0.1:6379/0");
    }

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(redact_url("redis://:secret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("rediss://u:secret@h/0"), "rediss://u:***@h/0");
        assert_eq!(redact_url("redis://u@h/0"), "redis://u@h/0");
        assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
    }

    #[test]
    fn rejects_conflicting_or_bad_settings() {
        let both = Settings { url: Some("redis://h".into()), host: Some("h".into()), ..Settings::default() };
        assert_eq!(both.resolve().err().unwrap().field(), Some("url"));
        let bad = Settings { url: Some("http://h".into()), ..Settings::default() };
        assert_eq!(bad.resolve().err().unwrap().field(), Some("url"));
        let unset = Settings { url_env: Some("CACHE_TOWER_TEST_SURELY_UNSET".into()), ..Settings::default() };
        assert_eq!(unset.resolve().err().unwrap().field(), Some("url_env"));
        let host = Settings { host: Some("a/b".into()), ..Settings::default() };
        assert_eq!(host.resolve().err().unwrap().field(), Some("host"));
    }
}
