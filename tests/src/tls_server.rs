//! A throwaway `redis-server` that also speaks TLS, with a throwaway certificate authority made by
//! the `openssl` command-line tool: a CA certificate, and a server certificate it signed for
//! `127.0.0.1` and `localhost`. Everything lives in a temporary directory removed on drop.
//!
//! The server keeps its plain port too: that is how [`RedisServer`] knows it is up, and how a
//! test can look at what was stored without TLS.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::redis_server::RedisServer;

/// How to get openssl when it is missing.
const INSTALL_HINT: &str =
    "the TLS tests need the `openssl` command to make certificates. Install it (Debian: `apt-get install openssl`).";

/// A redis-server listening with TLS on [`tls_port`](Self::tls_port), trusting no client
/// certificates (`--tls-auth-clients no`).
#[derive(Debug)]
pub struct TlsRedis {
    server: RedisServer,
    tls_port: u16,
    dir: PathBuf,
}

impl TlsRedis {
    /// Makes the certificates and starts the server.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("cache-tower-tls-{}-{}", std::process::id(), next_id()));
        std::fs::create_dir_all(&dir).expect("creating a temporary directory for certificates");
        make_certificates(&dir);
        let tls_port = free_port();
        let path = |name: &str| dir.join(name).to_str().expect("a UTF-8 temporary path").to_owned();
        let server = RedisServer::start_with(&[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &path("server.crt"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("ca.crt"),
            "--tls-auth-clients",
            "no",
        ]);
        Self { server, tls_port, dir }
    }

    /// The TLS port (on 127.0.0.1).
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// `rediss://127.0.0.1:<tls port>/0`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.tls_port)
    }

    /// The same server without TLS, `redis://127.0.0.1:<port>/0`.
    pub fn plain_url(&self) -> String {
        self.server.url()
    }

    /// The PEM file of the certificate authority that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        self.server.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ca.crt`/`ca.key`, and `server.crt`/`server.key` signed by it for 127.0.0.1 and localhost.
fn make_certificates(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("writing the certificate extensions");
    let subject = "/CN=cache-tower test CA";
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", subject, "-keyout", "ca.key",
            "-out", "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "1",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
        Err(err) => panic!("running openssl {args:?}: {err}"),
    };
    assert!(output.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding a free loopback port")
}
