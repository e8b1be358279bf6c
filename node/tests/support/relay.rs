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
//!
//! A copy of `tests/src/udp_relay.rs` of the `agora-tests` crate (node
//! tests cannot depend on that crate).

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
        let stop = Arc::new(AtomicBool::new(false));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let (b, s, t) = (blocked.clone(), stop.clone(), threads.clone());
        let main = std::thread::spawn(move || forward_loop(socket, target, b, s, t));
        lock(&threads).push(main);
        Ok(Relay {
            front,
            blocked,
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

/// Front socket → target, opening one upstream socket (and one reply
/// thread) per source address.
fn forward_loop(
    front: Arc<UdpSocket>,
    target: SocketAddr,
    blocked: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
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
                let (f, uu, b, s) = (front.clone(), u.clone(), blocked.clone(), stop.clone());
                let h = std::thread::spawn(move || reply_loop(uu, f, src, b, s));
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
fn reply_loop(
    up: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    src: SocketAddr,
    blocked: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::SeqCst) {
        let Ok(n) = up.recv(&mut buf) else { continue };
        if blocked.load(Ordering::SeqCst) {
            continue;
        }
        let _ = front.send_to(&buf[..n], src);
    }
}
