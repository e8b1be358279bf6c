//! Admission of gRPC connections: at most so many in total and so many
//! from one client address (an IPv4 address or an IPv6 /64, `client_addr`),
//! so a client that opens sockets and never uses them
//! (or a flood of them) cannot take every slot, and every accepted socket
//! gets TCP_NODELAY.
//!
//! A connection that sends nothing for `silent_client` (60 s by default) is
//! closed: before, a socket opened and left without a word held its place
//! for good (the server waits for the HTTP/2 preface without a clock), so
//! a few addresses could keep every place taken at no cost. A live client
//! always speaks within the bound: the server pings an idle one every third
//! of it (`ServerLimits::keepalive`), and the ping's answer is a read.
//!
//! An answer that waits on its client (ready, no room in the client's
//! window) for `stalled_answer` (30 s by default) closes the connection too
//! (`stalls`): answering pings keeps a connection alive, and its unread
//! answers held their places for good.
//!
//! A refused connection is closed at once, before any HTTP/2 or TLS work.
//! Each accepted connection carries a [`Slot`] that frees its place when
//! the connection is dropped, whoever drops it (hyper at the end of the
//! connection, or tonic's TLS layer on a failed handshake).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::client_addr::{AddressPlace, AddressShares, ClientAddr};
use super::stalls::{StallBook, Stalls};

/// Counts of open connections, in total and per client address.
#[derive(Debug)]
pub struct ConnLimiter {
    max_total: usize,
    total: Mutex<usize>,
    shares: Arc<AddressShares>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_total` connections are open.
    Full,
    /// `max_per_ip` connections from that address are open.
    PerIp,
}

impl ConnLimiter {
    /// A limiter for at most `max_total` connections, `max_per_ip` from one
    /// address (both at least one).
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total: max_total.max(1),
            total: Mutex::new(0),
            shares: AddressShares::new(max_per_ip),
        })
    }

    /// Takes a place for a connection from `ip`, or says why not (a full
    /// server first).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut total = self.total.lock().unwrap_or_else(|e| e.into_inner());
        if *total >= self.max_total {
            return Err(Refusal::Full);
        }
        let share = self
            .shares
            .take(ClientAddr::from(ip))
            .ok_or(Refusal::PerIp)?;
        *total += 1;
        debug_assert!(*total <= self.max_total);
        Ok(Slot {
            limiter: self.clone(),
            _share: share,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        *self.total.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One connection's place; freed on drop (its address's share with it).
#[derive(Debug)]
pub struct Slot {
    limiter: Arc<ConnLimiter>,
    _share: AddressPlace,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut total = self.limiter.total.lock().unwrap_or_else(|e| e.into_inner());
        debug_assert!(*total > 0, "released more slots than taken");
        *total = total.saturating_sub(1);
    }
}

/// How long a client may keep the server waiting before its connection is
/// closed.
#[derive(Debug, Clone, Copy)]
pub struct ClientClocks {
    /// Sending nothing at all.
    pub silent: Duration,
    /// Giving no room to an answer ready to go (`stalls`).
    pub stalled_answer: Duration,
}

/// An admitted TCP connection: the socket and its [`Slot`].
#[derive(Debug)]
pub struct LimitedConn {
    io: TcpStream,
    _slot: Slot,
    clocks: ClientClocks,
    /// When the client last sent bytes. A read only records it: the timer
    /// is moved on when it fires, not at every read (a timer-wheel update
    /// per read of a busy connection is work the hot path need not do).
    last_read: Instant,
    /// Fires `clocks.silent` after `last_read` at the earliest.
    silence: Pin<Box<Sleep>>,
    /// This connection's answers waiting on the client.
    stalls: Arc<Stalls>,
    /// Fires `clocks.stalled_answer` after the oldest waiting answer began
    /// to wait, once one does.
    stall: Pin<Box<Sleep>>,
}

impl LimitedConn {
    /// Admits `io` under `limiter` (setting TCP_NODELAY), or refuses it;
    /// the connection is closed once the client sends nothing for
    /// `clocks.silent`, or leaves an answer waiting for
    /// `clocks.stalled_answer`; its answers find it in `book`. Must be
    /// called within a tokio runtime (its timers).
    pub fn admit(
        io: TcpStream,
        limiter: &Arc<ConnLimiter>,
        clocks: ClientClocks,
        book: &StallBook,
    ) -> Result<Self, Refusal> {
        let peer = io
            .peer_addr()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let slot = limiter.admit(peer.ip())?;
        // Small responses must not wait for the client's delayed ACK
        // (Nagle): without TCP_NODELAY every store-backed query took ~40 ms.
        let _ = io.set_nodelay(true);
        Ok(Self {
            io,
            _slot: slot,
            clocks,
            last_read: Instant::now(),
            silence: Box::pin(tokio::time::sleep(clocks.silent)),
            stalls: book.open(peer),
            stall: Box::pin(tokio::time::sleep(clocks.stalled_answer)),
        })
    }
}

impl Connected for LimitedConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for LimitedConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.last_read = Instant::now();
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.poll_silence(cx) {
                Poll::Pending => this.poll_stall(cx),
                closed => closed,
            },
            other => other,
        }
    }
}

impl LimitedConn {
    /// While the read is pending: an error once the client has been silent
    /// for `silent_limit`, else the timer armed for that moment (its waker
    /// is this task's, so the read is polled again when it fires).
    fn poll_silence(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.silence.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let runs_out = self.last_read + self.clocks.silent;
            if runs_out <= Instant::now() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("client sent nothing for {:?}", self.clocks.silent),
                )));
            }
            self.silence.as_mut().reset(runs_out);
        }
    }

    /// While the read is pending: an error once an answer has waited on the
    /// client for `clocks.stalled_answer`, else the timer armed for the
    /// oldest waiting answer (none while none waits: the first answer that
    /// starts to wait wakes this task, see [`Stalls::set_reader`]).
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stalls.set_reader(cx.waker());
        loop {
            let Some(since) = self.stalls.oldest() else {
                return Poll::Pending;
            };
            let runs_out = since + self.clocks.stalled_answer;
            if runs_out <= Instant::now() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "an answer waited {:?} for the client to read",
                        self.clocks.stalled_answer
                    ),
                )));
            }
            if self.stall.deadline() != runs_out {
                self.stall.as_mut().reset(runs_out);
            }
            if self.stall.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl AsyncWrite for LimitedConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_in_total_and_per_address_and_freed_on_drop() {
        let l = ConnLimiter::new(3, 2);
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let c = IpAddr::from([10, 0, 0, 3]);
        let a1 = l.admit(a).expect("a1");
        let _a2 = l.admit(a).expect("a2");
        assert_eq!(l.admit(a).err(), Some(Refusal::PerIp));
        let _b1 = l.admit(b).expect("b1");
        assert_eq!(l.admit(c).err(), Some(Refusal::Full));
        assert_eq!(l.open(), 3);
        drop(a1);
        assert_eq!(l.open(), 2);
        let _c1 = l.admit(c).expect("a freed slot is reused");
        assert_eq!(l.admit(a).err(), Some(Refusal::Full));
    }

    #[test]
    fn the_hosts_of_one_ipv6_network_share_its_slots() {
        let l = ConnLimiter::new(8, 1);
        let host = |s: &str| s.parse::<IpAddr>().expect("address");
        let _one = l.admit(host("2001:db8:5:6::1")).expect("first host");
        assert_eq!(
            l.admit(host("2001:db8:5:6::2")).err(),
            Some(Refusal::PerIp),
            "another host of the same /64"
        );
        l.admit(host("2001:db8:5:7::1")).expect("another network");
    }
}
