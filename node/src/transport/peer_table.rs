//! The table of connected peers: one [`PeerEntry`] per peer, which
//! connection is kept when there are two ([`Transport::register`]), and
//! taking a peer out once its connection closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::budget::PeerBudget;
use super::handshake::Handshaken;
use super::hello::PeerIdentity;
use super::outbound::write_loop;
use super::{PeerId, Transport, TransportEvent, close_code, lock};

/// A connected peer: its connection, what it proved, and its outbound queue
/// and budgets.
pub(super) struct PeerEntry {
    pub(super) conn: quinn::Connection,
    pub(super) identity: PeerIdentity,
    pub(super) remote: SocketAddr,
    pub(super) outbound: bool,
    initiator: PeerId,
    /// The peer process's Hello incarnation (new on each restart).
    incarnation: u64,
    /// The incarnation whose live connection this one superseded, if any.
    /// A process that restarted never comes back under its old
    /// incarnation, so that one connecting again proves two processes
    /// present the peer's identity.
    superseded: Option<u64>,
    queue: mpsc::Sender<Arc<Vec<u8>>>,
    /// Bytes in `queue` (and not yet handed to QUIC).
    queued: Arc<AtomicUsize>,
    /// Its budgets for expensive work.
    pub(super) budget: PeerBudget,
}

impl PeerEntry {
    /// Queues a frame if the peer's queue has room in frames and bytes.
    pub(super) fn enqueue(&self, frame: Arc<Vec<u8>>, max_bytes: usize) -> bool {
        let len = frame.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > max_bytes || self.queue.try_send(frame).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }
}

impl Transport {
    /// The peer whose live connection comes from `addr`, if any.
    pub(super) fn connected_at(&self, addr: SocketAddr) -> Option<PeerId> {
        lock(&self.inner.peers)
            .iter()
            .find(|(_, e)| e.remote == addr && e.conn.close_reason().is_none())
            .map(|(id, _)| *id)
    }

    /// Whether `id` has a live connection.
    pub(super) fn is_connected(&self, id: &PeerId) -> bool {
        lock(&self.inner.peers)
            .get(id)
            .is_some_and(|e| e.conn.close_reason().is_none())
    }

    /// Adds a connection to the peer table (or drops it as a duplicate) and
    /// starts its reader and writer. Returns whether it was kept.
    ///
    /// Two live connections to one peer arise when both sides dial at once;
    /// the one initiated by the lower id wins, so both sides keep the same
    /// one. A connection from a new incarnation (the peer restarted) always
    /// wins: the old one is dead even if it has not timed out yet, and if
    /// it is not, it belongs to a copy of the peer, which the
    /// `SUPERSEDED` close tells (`note_superseded`).
    pub(super) fn register(&self, h: Handshaken, outbound: bool) -> bool {
        let Handshaken {
            conn,
            peer,
            identity,
            incarnation,
        } = h;
        let initiator = if outbound { self.inner.local_id } else { peer };
        let (queue, rx) = mpsc::channel(self.inner.cfg.outbound_queue.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let mut superseded = None;
        {
            let mut peers = lock(&self.inner.peers);
            let stranger = !outbound && !self.is_configured(conn.remote_address());
            if stranger
                && !peers.contains_key(&peer)
                && let Err(why) = self.stranger_slot_free(&peers, conn.remote_address())
            {
                self.inner.cfg.metrics.budget_drop(why);
                conn.close(close_code::FULL.into(), b"full");
                return false;
            }
            if let Some(old) = peers.get(&peer)
                && old.conn.close_reason().is_none()
            {
                match self.settle_second(old, peer, &identity, (initiator, incarnation)) {
                    Second::Dropped => {
                        conn.close(close_code::DUPLICATE.into(), b"duplicate");
                        return false;
                    }
                    Second::ReplacesDuplicate => {}
                    Second::Supersedes => superseded = Some(old.incarnation),
                }
            }
            peers.insert(
                peer,
                PeerEntry {
                    conn: conn.clone(),
                    identity: identity.clone(),
                    remote: conn.remote_address(),
                    outbound,
                    initiator,
                    incarnation,
                    superseded,
                    queue,
                    queued: queued.clone(),
                    budget: PeerBudget::new(&self.inner.cfg.budget, Instant::now()),
                },
            );
        }
        info!(%peer, remote = %conn.remote_address(), ?identity, outbound, "peer connected");
        self.inner.changes.send_modify(|g| *g += 1);
        let _ = self.inner.events.try_send(TransportEvent::Connected {
            peer,
            identity: identity.clone(),
            remote: conn.remote_address(),
        });
        tokio::spawn(write_loop(conn.clone(), rx, queued));
        tokio::spawn(self.clone().read_loop(conn, peer, identity));
        true
    }

    /// A second live connection to `peer`, made by `initiator` from
    /// `incarnation`, meets `old`: closes `old` unless the new one is the
    /// one to drop (the caller closes that), and warns when the peer's
    /// incarnations keep taking each other's place (a copy of its home).
    fn settle_second(
        &self,
        old: &PeerEntry,
        peer: PeerId,
        identity: &PeerIdentity,
        (initiator, incarnation): (PeerId, u64),
    ) -> Second {
        let ours = (self.inner.local_id, peer);
        let verdict = on_second_connection(
            ours,
            (old.initiator, old.incarnation),
            (initiator, incarnation),
        );
        match verdict {
            Second::Dropped => {}
            Second::ReplacesDuplicate => {
                old.conn.close(close_code::DUPLICATE.into(), b"replaced");
            }
            Second::Supersedes => {
                if old.superseded == Some(incarnation) {
                    self.inner.cfg.metrics.peer_copy_seen();
                    warn!(
                        %peer,
                        ?identity,
                        "two processes present this peer's TLS identity and take each other's place here: a copy of its home is running; its operator should stop one"
                    );
                }
                old.conn
                    .close(close_code::SUPERSEDED.into(), b"another incarnation");
            }
        }
        verdict
    }

    /// Takes `peer` out of the table if `conn` is still its connection (a
    /// newer one may have replaced it), and reports it disconnected.
    pub(super) async fn unregister(&self, conn: &quinn::Connection, peer: PeerId) {
        let removed = {
            let mut peers = lock(&self.inner.peers);
            let same = peers
                .get(&peer)
                .is_some_and(|e| e.conn.stable_id() == conn.stable_id());
            if same {
                peers.remove(&peer);
            }
            same
        };
        if is_superseded(conn) {
            self.note_superseded(peer);
        }
        if removed {
            info!(%peer, reason = ?conn.close_reason(), "peer disconnected");
            self.inner.changes.send_modify(|g| *g += 1);
            let _ = self
                .inner
                .events
                .send(TransportEvent::Disconnected { peer })
                .await;
        }
    }
}

/// What becomes of a second live connection to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Second {
    /// Both sides dialled at once and the first one is the keeper.
    Dropped,
    /// Both sides dialled at once and the second one is the keeper.
    ReplacesDuplicate,
    /// The peer restarted: its new incarnation's connection always wins.
    Supersedes,
}

/// The duplicate rule of [`Transport::register`], for connections given as
/// (initiator, the peer's incarnation) between `ends` = (us, the peer).
/// Within one incarnation the connection initiated by the lower id is kept,
/// so that both ends keep the same one whichever order their handshakes
/// finish in (the acceptor's ends half a round trip before the dialler's).
fn on_second_connection(
    ends: (PeerId, PeerId),
    first: (PeerId, u64),
    second: (PeerId, u64),
) -> Second {
    if first.1 != second.1 {
        return Second::Supersedes;
    }
    let keeper = ends.0.min(ends.1);
    if first.0 != second.0 && first.0 == keeper {
        Second::Dropped
    } else {
        Second::ReplacesDuplicate
    }
}

/// Whether the peer closed `conn` because a connection presenting our
/// identity from another process took its place.
fn is_superseded(conn: &quinn::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(ref c))
            if c.error_code == quinn::VarInt::from_u32(close_code::SUPERSEDED)
    )
}

/// Notes that `peer` superseded a connection of ours at `now`, forgetting
/// what is older than `keep` (so the map holds only the peers that did so
/// within `keep`); true if it had not done so within `keep` before.
fn record_superseded(
    at: &mut HashMap<PeerId, Instant>,
    peer: PeerId,
    now: Instant,
    keep: Duration,
) -> bool {
    at.retain(|_, t| now.duration_since(*t) < keep);
    at.insert(peer, now).is_none()
}

impl Transport {
    /// A peer closed our connection for another process presenting our
    /// identity. A restarted node never hears this (its old process is
    /// gone), so the process that does is running beside a copy of itself:
    /// said at warn level, counted, and the peer is redialled only after
    /// `backoff_max` (`superseded_wait`), where redialling at once made
    /// the two copies take each other's place at every peer several times
    /// a second (each then followed the chain by sync, signing nothing).
    /// A peer can send this close falsely; it costs us only the delay to
    /// that peer, and the warning is said once per peer and `backoff_max`
    /// (a peer that reconnects to close again gets a debug line), so the
    /// log cannot be flooded faster than connections can be made.
    pub(super) fn note_superseded(&self, peer: PeerId) {
        let now = Instant::now();
        let keep = self.inner.cfg.backoff_max;
        let first = record_superseded(&mut lock(&self.inner.superseded), peer, now, keep);
        self.inner.cfg.metrics.connection_superseded();
        if !first {
            debug!(%peer, "a connection superseded again by a copy of this node");
            return;
        }
        warn!(
            %peer,
            "the peer took a connection from another process presenting this node's TLS identity in place of ours: is a copy of this node's home running elsewhere? Redialling it in {} s",
            keep.as_secs()
        );
    }

    /// How long to hold off redialling `peer` after it superseded our
    /// connection (None: dial now).
    pub(super) fn superseded_wait(&self, peer: &PeerId) -> Option<Duration> {
        let at = *lock(&self.inner.superseded).get(peer)?;
        self.inner
            .cfg
            .backoff_max
            .checked_sub(at.elapsed())
            .filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A duplicate rule, as [`on_second_connection`].
    type Rule = fn((PeerId, PeerId), (PeerId, u64), (PeerId, u64)) -> Second;

    /// The connection one end keeps when its two handshakes finish in
    /// `order` (initiators), under `rule`.
    fn kept_by(rule: Rule, ends: (PeerId, PeerId), order: [PeerId; 2]) -> PeerId {
        match rule(ends, (order[0], 7), (order[1], 7)) {
            Second::Dropped => order[0],
            Second::ReplacesDuplicate | Second::Supersedes => order[1],
        }
    }

    /// Whether both ends keep the same connection for every order in which
    /// each end's two handshakes can finish.
    fn ends_always_agree(rule: Rule, a: PeerId, b: PeerId) -> bool {
        let orders = [[a, b], [b, a]];
        orders.iter().all(|&at_a| {
            orders
                .iter()
                .all(|&at_b| kept_by(rule, (a, b), at_a) == kept_by(rule, (b, a), at_b))
        })
    }

    #[test]
    fn both_ends_keep_the_same_one_of_two_simultaneous_connections() {
        let (low, high) = (PeerId([1; 32]), PeerId([2; 32]));
        assert!(ends_always_agree(on_second_connection, low, high));
        assert!(ends_always_agree(on_second_connection, high, low));
        // The keeper is the lower id's, whoever holds it first.
        assert_eq!(kept_by(on_second_connection, (high, low), [high, low]), low);
        // Negative control: "the newest connection wins" lets the ends
        // keep different connections, each closing the other's keeper.
        let newest_wins =
            |_: (PeerId, PeerId), _: (PeerId, u64), _: (PeerId, u64)| Second::ReplacesDuplicate;
        assert!(!ends_always_agree(newest_wins, low, high));
    }

    #[test]
    fn a_new_incarnation_supersedes_even_the_keeper() {
        let (low, high) = (PeerId([1; 32]), PeerId([2; 32]));
        // Our own dial (we hold the lower id) would win a tie-break, but the
        // peer restarted.
        let verdict = on_second_connection((low, high), (low, 7), (high, 8));
        assert_eq!(verdict, Second::Supersedes);
        assert_eq!(
            on_second_connection((low, high), (low, 7), (high, 7)),
            Second::Dropped
        );
    }

    #[test]
    fn a_superseding_peer_is_news_once_per_window_and_then_forgotten() {
        let keep = Duration::from_secs(10);
        let t0 = Instant::now();
        let (a, b) = (PeerId([1; 32]), PeerId([2; 32]));
        let mut m = HashMap::new();
        assert!(record_superseded(&mut m, a, t0, keep));
        assert!(!record_superseded(
            &mut m,
            a,
            t0 + Duration::from_secs(3),
            keep
        ));
        assert!(record_superseded(
            &mut m,
            b,
            t0 + Duration::from_secs(4),
            keep
        ));
        // Thirteen seconds on, a's last note (at 3 s) is past the window.
        assert!(record_superseded(
            &mut m,
            a,
            t0 + Duration::from_secs(13) + Duration::from_millis(1),
            keep
        ));
        // b's (at 4 s) is gone too, at the next note past its window.
        assert!(!record_superseded(
            &mut m,
            a,
            t0 + Duration::from_secs(15),
            keep
        ));
        assert_eq!(m.len(), 1);
    }
}
