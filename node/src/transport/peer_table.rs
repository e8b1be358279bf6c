//! The table of connected peers: one [`PeerEntry`] per peer, which
//! connection is kept when there are two ([`Transport::register`]), and
//! taking a peer out once its connection closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::budget::PeerBudget;
use super::handshake::Handshaken;
use super::hello::PeerIdentity;
use super::outbound::write_loop;
use super::{PeerId, Transport, TransportEvent, close_code, lock};
use crate::metrics::BudgetKind;

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
    /// wins: the old one is dead even if it has not timed out yet.
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
        {
            let mut peers = lock(&self.inner.peers);
            let stranger = !outbound && !self.is_configured(conn.remote_address());
            if stranger && !peers.contains_key(&peer) && !self.stranger_slot_free(&peers) {
                self.inner.cfg.metrics.budget_drop(BudgetKind::Slots);
                conn.close(close_code::FULL.into(), b"full");
                return false;
            }
            if let Some(old) = peers.get(&peer)
                && old.conn.close_reason().is_none()
            {
                let preferred = self.inner.local_id.min(peer);
                let keep_old = old.incarnation == incarnation
                    && old.initiator != initiator
                    && old.initiator == preferred;
                if keep_old {
                    conn.close(close_code::DUPLICATE.into(), b"duplicate");
                    return false;
                }
                if old.incarnation == incarnation {
                    old.conn.close(close_code::DUPLICATE.into(), b"replaced");
                } else {
                    old.conn
                        .close(close_code::SUPERSEDED.into(), b"another incarnation");
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

/// Whether the peer closed `conn` because a connection presenting our
/// identity from another process took its place.
fn is_superseded(conn: &quinn::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(ref c))
            if c.error_code == quinn::VarInt::from_u32(close_code::SUPERSEDED)
    )
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
    /// that peer.
    pub(super) fn note_superseded(&self, peer: PeerId) {
        let now = Instant::now();
        let keep = self.inner.cfg.backoff_max;
        {
            let mut m = lock(&self.inner.superseded);
            m.retain(|_, at| now.duration_since(*at) < keep);
            m.insert(peer, now);
        }
        self.inner.cfg.metrics.connection_superseded();
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
