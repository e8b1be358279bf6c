//! Answers that wait on their client: how long each of a connection's
//! answers has been ready to go while the client gave it no room, so that a
//! client that asks and never reads loses its connection, and with it the
//! places its answers held (`answer_places`).
//!
//! Places are held until an answer is *sent*. A client that keeps its
//! connection alive (it answers the server's pings) but never opens its
//! stream windows kept them for as long as the connection lived: at most
//! its address's share, but for good. An answer's body records when it
//! handed hyper a piece ([`StallMark::waiting`]); hyper asks for the next
//! piece only once h2 has sent that one, which waits on the client's
//! window (or on its reading the socket), and the body records the next
//! ask ([`StallMark::moving`]). A body waiting on its own source (a
//! certificate stream between blocks) is not waiting on the client. The
//! connection ([`super::conn_limit::LimitedConn`]) fails its reads once
//! its oldest waiting answer has waited `stalled_answer` (30 s by
//! default), and hyper then drops the connection and every body on it.
//!
//! Connections are found by the client's socket address, the one thing
//! both the connection and a request's extensions (tonic's connect info)
//! know: [`StallBook`] maps each open connection's address to its
//! [`Stalls`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;

use tokio::time::Instant;

/// One connection's answers waiting on its client, and the connection's
/// reader to wake when the first starts waiting (so its timer is armed).
#[derive(Debug, Default)]
pub struct Stalls {
    inner: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    /// Since when each waiting answer waits, by answer number. At most one
    /// entry per answer being sent on the connection (bounded by
    /// `max_requests_per_connection`).
    since: HashMap<u64, Instant>,
    next: u64,
    reader: Option<Waker>,
}

impl Stalls {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A mark for one more answer on this connection.
    pub fn mark(self: &Arc<Self>) -> StallMark {
        let mut w = self.lock();
        let id = w.next;
        w.next += 1;
        StallMark {
            owner: self.clone(),
            id,
            is_waiting: false,
        }
    }

    /// Since when the answer that has waited longest waits, if any does.
    pub fn oldest(&self) -> Option<Instant> {
        self.lock().since.values().min().copied()
    }

    /// Remembers the connection's reader, woken when an answer starts
    /// waiting while none did.
    pub fn set_reader(&self, waker: &Waker) {
        let mut w = self.lock();
        if !w.reader.as_ref().is_some_and(|r| r.will_wake(waker)) {
            w.reader = Some(waker.clone());
        }
    }
}

/// One answer's record in its connection's [`Stalls`]; gone on drop.
#[derive(Debug)]
pub struct StallMark {
    owner: Arc<Stalls>,
    id: u64,
    /// Whether the record is in the connection's waiting set (so that an
    /// answer handed out piece after piece locks the set only when it
    /// changes).
    is_waiting: bool,
}

impl StallMark {
    /// The answer handed out a piece and waits for hyper to ask again.
    pub fn waiting(&mut self) {
        if self.is_waiting {
            return;
        }
        self.is_waiting = true;
        let mut w = self.owner.lock();
        w.since.insert(self.id, Instant::now());
        // The reader arms its timer for the oldest waiting answer; a younger
        // one changes nothing, so only the first needs to wake it (one wake
        // per stall, not one per piece).
        if w.since.len() == 1
            && let Some(reader) = w.reader.take()
        {
            reader.wake();
        }
    }

    /// hyper asked for the answer's next piece.
    pub fn moving(&mut self) {
        if self.is_waiting {
            self.is_waiting = false;
            self.owner.lock().since.remove(&self.id);
        }
    }
}

impl Drop for StallMark {
    fn drop(&mut self) {
        self.moving();
    }
}

/// The [`Stalls`] of every open connection, by client socket address.
#[derive(Debug, Default)]
pub struct StallBook {
    by_client: Mutex<HashMap<SocketAddr, Weak<Stalls>>>,
}

impl StallBook {
    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Weak<Stalls>>> {
        self.by_client.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of a new connection from `client` (replacing a closed
    /// one's; entries of connections gone are dropped on the way, so the
    /// book holds about the open connections).
    pub fn open(&self, client: SocketAddr) -> Arc<Stalls> {
        let stalls = Arc::new(Stalls::default());
        let mut book = self.lock();
        book.retain(|_, s| s.strong_count() > 0);
        book.insert(client, Arc::downgrade(&stalls));
        stalls
    }

    /// The record of the open connection from `client`, if any.
    pub fn of(&self, client: SocketAddr) -> Option<Arc<Stalls>> {
        self.lock().get(&client).and_then(Weak::upgrade)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiting_answer_is_tracked_until_it_moves_or_goes() {
        let book = StallBook::default();
        let client: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let stalls = book.open(client);
        let (mut a, mut b) = (stalls.mark(), stalls.mark());
        assert_eq!(stalls.oldest(), None);
        a.waiting();
        let first = stalls.oldest().expect("a waits");
        b.waiting();
        a.waiting();
        assert_eq!(
            stalls.oldest(),
            Some(first),
            "waiting again keeps the start"
        );
        a.moving();
        assert!(stalls.oldest().expect("b waits") >= first);
        drop(b);
        assert_eq!(stalls.oldest(), None);
        assert!(book.of(client).is_some());
        drop((stalls, a));
        assert!(
            book.of(client).is_none(),
            "a closed connection is not found"
        );
    }
}
