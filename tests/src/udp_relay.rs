//! A UDP relay that sits on the path between QUIC endpoints so that a test
//! can cut a validator off from the others and heal the cut again, with no
//! root privileges and no change to the node: the node's configuration simply
//! names the relay's address instead of the peer's.
//!
//! Each relay forwards datagrams arriving at its front address to one
//! target; replies go back to whichever source sent first. One upstream
//! socket per source keeps sessions apart, so the target sees every source as
//! a distinct peer (QUIC identifies peers by connection id and certificate,
//! not by address). While [`Relay::set_blocked`] is on, every datagram in
//! either direction is dropped, as by a cut cable.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a relay thread blocks on a socket before it looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Largest datagram relayed (QUIC datagrams stay under 1,500 bytes on loopback
/// by default; anything up to the UDP maximum still passes).
const MAX_DATAGRAM: usize = 65_535;

/// A running relay; dropping it stops its threads.
pub struct Relay {
    front: SocketAddr,
    blocked: Arc<AtomicBool>,
    replies_blocked: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    /// Starts a relay listening on `front` (port 0 picks a free one) that
    /// forwards to `target`.
    pub fn start(front: SocketAddr, target: SocketAddr) -> io::Result<Relay> {
        let socket = Arc::new(UdpSocket::bind(front)?);
        socket.set_read_timeout(Some(POLL))?;
        let front = socket.local_addr()?;
        let blocked = Arc::new(AtomicBool::new(false));
        let replies_blocked = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let flags = Flags {
            blocked: blocked.clone(),
            replies_blocked: replies_blocked.clone(),
            stop: stop.clone(),
        };
        let t = threads.clone();
        let main = std::thread::spawn(move || forward_loop(socket, target, flags, t));
        lock(&threads).push(main);
        Ok(Relay {
            front,
            blocked,
            replies_blocked,
            stop,
            threads,
        })
    }

    /// The address peers should send to.
    pub fn front(&self) -> SocketAddr {
        self.front
    }

    /// Drops (true) or passes (false) every datagram from now on.
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::SeqCst);
    }

    /// Drops (true) or passes (false) every datagram from the target back to
    /// the sources from now on: the sources then look, to the target, like
    /// senders of spoofed addresses (their packets arrive, answers go
    /// nowhere).
    pub fn set_replies_blocked(&self, blocked: bool) {
        self.replies_blocked.store(blocked, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // The main thread may still add a session thread while we join, so
        // take the handles in rounds until none is left.
        loop {
            let handles: Vec<JoinHandle<()>> = lock(&self.threads).drain(..).collect();
            if handles.is_empty() {
                break;
            }
            for h in handles {
                let _ = h.join();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The switches every relay thread reads.
#[derive(Clone)]
struct Flags {
    blocked: Arc<AtomicBool>,
    replies_blocked: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// Front socket → target, opening one upstream socket (and one reply
/// thread) per source address.
fn forward_loop(
    front: Arc<UdpSocket>,
    target: SocketAddr,
    flags: Flags,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    let Flags { blocked, stop, .. } = flags.clone();
    let mut sessions: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::SeqCst) {
        let (n, src) = match front.recv_from(&mut buf) {
            Ok(x) => x,
            // Timeouts (and transient errors such as ICMP port unreachable
            // reported on the socket) just mean: look at the flags again.
            Err(_) => continue,
        };
        if blocked.load(Ordering::SeqCst) {
            continue;
        }
        let up = match sessions.get(&src) {
            Some(u) => u.clone(),
            None => {
                let Ok(u) = open_upstream(target) else {
                    continue;
                };
                let u = Arc::new(u);
                sessions.insert(src, u.clone());
                let (f, uu, fl) = (front.clone(), u.clone(), flags.clone());
                let h = std::thread::spawn(move || reply_loop(uu, f, src, fl));
                lock(&threads).push(h);
                u
            }
        };
        let _ = up.send(&buf[..n]);
    }
}

fn open_upstream(target: SocketAddr) -> io::Result<UdpSocket> {
    let bind: SocketAddr = if target.is_ipv4() {
        "127.0.0.1:0".parse().expect("literal address")
    } else {
        "[::1]:0".parse().expect("literal address")
    };
    let u = UdpSocket::bind(bind)?;
    u.connect(target)?;
    u.set_read_timeout(Some(POLL))?;
    Ok(u)
}

/// Target → the source that opened this session.
fn reply_loop(up: Arc<UdpSocket>, front: Arc<UdpSocket>, src: SocketAddr, flags: Flags) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !flags.stop.load(Ordering::SeqCst) {
        let Ok(n) = up.recv(&mut buf) else { continue };
        if flags.blocked.load(Ordering::SeqCst) || flags.replies_blocked.load(Ordering::SeqCst) {
            continue;
        }
        let _ = front.send_to(&buf[..n], src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> (SocketAddr, Arc<AtomicBool>, JoinHandle<()>) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(POLL)).unwrap();
        let addr = s.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let h = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::SeqCst) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(&buf[..n], from);
                }
            }
        });
        (addr, stop, h)
    }

    /// Sends `msg` through the relay and returns the echo, if one comes back
    /// within a second.
    fn roundtrip(client: &UdpSocket, relay: &Relay, msg: &[u8]) -> Option<Vec<u8>> {
        client.send_to(msg, relay.front()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        let mut buf = [0u8; 2048];
        while std::time::Instant::now() < deadline {
            if let Ok((n, _)) = client.recv_from(&mut buf) {
                return Some(buf[..n].to_vec());
            }
        }
        None
    }

    #[test]
    fn relays_both_ways_and_blocks_on_demand() {
        let (echo, stop, h) = echo_server();
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), echo).unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        for c in [&a, &b] {
            c.set_read_timeout(Some(POLL)).unwrap();
        }
        assert_eq!(roundtrip(&a, &relay, b"one").as_deref(), Some(&b"one"[..]));
        assert_eq!(roundtrip(&b, &relay, b"two").as_deref(), Some(&b"two"[..]));
        relay.set_blocked(true);
        assert_eq!(roundtrip(&a, &relay, b"cut"), None);
        relay.set_blocked(false);
        assert_eq!(
            roundtrip(&a, &relay, b"healed").as_deref(),
            Some(&b"healed"[..])
        );
        relay.set_replies_blocked(true);
        assert_eq!(roundtrip(&b, &relay, b"spoofed"), None);
        relay.set_replies_blocked(false);
        assert_eq!(
            roundtrip(&b, &relay, b"back").as_deref(),
            Some(&b"back"[..])
        );
        drop(relay);
        stop.store(true, Ordering::SeqCst);
        h.join().unwrap();
    }
}
