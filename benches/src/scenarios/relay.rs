//! A loopback TCP relay that counts round trips between clients and a server.
//!
//! A round trip is counted each time a client sends bytes after having received some (or for
//! the first time on its connection): a request, however many socket writes and server reads it
//! spans, followed by the wait for its reply. A pipeline of 100 commands is one round trip; 100
//! commands each awaited are 100. The server's own `total_reads_processed` cannot tell these
//! apart once a request exceeds its 16 KiB read buffer, which is why this exists.
//!
//! Only the counting runs go through the relay; the timed runs connect directly.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

/// A running relay; it stops accepting when dropped (open connections end with their clients).
#[derive(Debug)]
pub(super) struct Relay {
    address: SocketAddr,
    round_trips: Arc<AtomicU64>,
    stopping: Arc<AtomicBool>,
}

impl Relay {
    /// Listens on a free loopback port and relays every connection to `target`.
    pub(super) fn start(target: impl ToSocketAddrs) -> std::io::Result<Self> {
        let target = target
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("the relay's target has no address"))?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let round_trips = Arc::new(AtomicU64::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let (counter, stop) = (Arc::clone(&round_trips), Arc::clone(&stopping));
        thread::Builder::new().name("relay-accept".into()).spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(client) = client {
                    let counter = Arc::clone(&counter);
                    // A connection that cannot be relayed is dropped: its client sees an error.
                    let _ = relay(client, target, counter);
                }
            }
        })?;
        Ok(Self { address, round_trips, stopping })
    }

    /// The port clients connect to instead of the server's.
    pub(super) fn port(&self) -> u16 {
        self.address.port()
    }

    /// Round trips counted so far, over every connection.
    pub(super) fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and ends.
        let _ = TcpStream::connect(self.address);
    }
}

/// Relays one connection in both directions, each on its own thread.
fn relay(client: TcpStream, target: SocketAddr, round_trips: Arc<AtomicU64>) -> std::io::Result<()> {
    let server = TcpStream::connect(target)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    // Whether the last bytes went from the server to the client: the next bytes from the client
    // then start a new round trip. True at first, so a connection's first request counts.
    let server_spoke_last = Arc::new(AtomicBool::new(true));
    let (client_in, server_out) = (client.try_clone()?, server.try_clone()?);
    let spoke = Arc::clone(&server_spoke_last);
    thread::Builder::new().name("relay-up".into()).spawn(move || {
        pump(client_in, server_out, |_| {
            if spoke.swap(false, Ordering::SeqCst) {
                round_trips.fetch_add(1, Ordering::SeqCst);
            }
        });
    })?;
    thread::Builder::new().name("relay-down".into()).spawn(move || {
        // Marked before the reply is passed on, so the client's next request sees the mark.
        pump(server, client, |_| server_spoke_last.store(true, Ordering::SeqCst));
    })?;
    Ok(())
}

/// Copies `from` to `to` until either end closes, calling `seen` before passing on each chunk.
fn pump(mut from: TcpStream, mut to: TcpStream, seen: impl Fn(usize)) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen(n);
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server: each request is answered with the same bytes.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || {
                    let mut stream = stream;
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buffer) {
                        if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        address
    }

    #[test]
    fn counts_each_request_awaited_as_one_round_trip() {
        let relay = Relay::start(echo_server()).unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", relay.port())).unwrap();
        for _ in 0..3 {
            client.write_all(b"abcd").unwrap();
            let mut reply = [0u8; 4];
            client.read_exact(&mut reply).unwrap();
        }
        assert_eq!(relay.round_trips(), 3);
    }
}
