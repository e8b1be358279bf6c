//! Accountability and admission on the transport: charging peers' scores
//! (and banning them by certificate and address, see [`super::score`]),
//! which incoming connections may start a handshake (banned addresses,
//! stranger slots), and the per-peer budgets (see [`super::budget`]).

use std::net::SocketAddr;
use std::time::Instant;

use agora_proto::v1::peer_message::Kind;
use tracing::{debug, warn};

use super::score::{AddrKey, ChargeReason, Verdict};
use super::{PeerId, Transport, close_code, lock};
use crate::metrics::BudgetKind;

impl Transport {
    /// Charges a peer for an input that failed a check (see [`super::score`]):
    /// its score grows by the reason's points; at the threshold it is
    /// banned (certificate and address) and disconnected.
    pub fn charge(&self, peer: PeerId, reason: ChargeReason, detail: &str) {
        let remote = lock(&self.inner.peers).get(&peer).map(|e| e.remote);
        self.charge_at(peer, remote, reason, detail);
    }

    /// [`Self::charge`] with the remote address given: during the
    /// handshake, or from a reader whose peer may already have left the
    /// table (its address is still banned).
    pub(super) fn charge_at(
        &self,
        peer: PeerId,
        remote: Option<SocketAddr>,
        reason: ChargeReason,
        detail: &str,
    ) {
        let metrics = &self.inner.cfg.metrics;
        metrics.charge(reason);
        if !self.inner.cfg.bans {
            debug!(%peer, reason = reason.label(), %detail, "peer charged (bans are off)");
            return;
        }
        let addr = remote.and_then(|a| self.ban_key(a));
        let verdict =
            lock(&self.inner.scores).charge(peer, addr, reason, self.inner.cfg.ban, Instant::now());
        match verdict {
            Verdict::Charged(score) => {
                debug!(%peer, reason = reason.label(), %detail, score, "peer charged");
            }
            Verdict::Banned(ban) => {
                metrics.ban(reason);
                warn!(%peer, ?remote, reason = reason.label(), %detail, ?ban, "peer banned");
                if let Some(e) = lock(&self.inner.peers).get(&peer) {
                    e.conn.close(close_code::MISBEHAVED.into(), b"misbehaved");
                }
            }
        }
    }

    /// Whether an address is one of the configured peers': loopback
    /// addresses match with their port, others by IP.
    pub(super) fn is_configured(&self, addr: SocketAddr) -> bool {
        let key = AddrKey::of(addr);
        self.inner.cfg.peers.iter().any(|p| AddrKey::of(*p) == key)
    }

    /// The key to ban `addr` under, or None for a configured peer's address
    /// (see [`super::score`] for why).
    pub(super) fn ban_key(&self, addr: SocketAddr) -> Option<AddrKey> {
        (!self.is_configured(addr)).then(|| AddrKey::of(addr))
    }

    /// Whether an incoming connection from `remote` may start a handshake:
    /// not from a banned address, and a slot for it (strangers may not take
    /// the slots reserved for configured peers).
    pub(super) fn admits(&self, remote: SocketAddr) -> Result<(), BudgetKind> {
        if lock(&self.inner.scores).is_addr_banned(&AddrKey::of(remote), Instant::now()) {
            return Err(BudgetKind::Banned);
        }
        if self.is_configured(remote) {
            return Ok(());
        }
        if !self.stranger_slot_free(&lock(&self.inner.peers)) {
            return Err(BudgetKind::Slots);
        }
        Ok(())
    }

    /// Whether the table has room for one more stranger: at most
    /// `max_peers` minus the configured peers. Checked when a connection
    /// arrives and again when its handshake is done, under the table's
    /// lock: handshakes run concurrently, so the first check alone let up
    /// to [`super::MAX_HANDSHAKES`] strangers past a full table.
    pub(super) fn stranger_slot_free(
        &self,
        peers: &std::collections::HashMap<PeerId, super::PeerEntry>,
    ) -> bool {
        let stranger_slots = self
            .inner
            .cfg
            .max_peers
            .saturating_sub(self.inner.cfg.peers.len());
        let strangers = peers
            .values()
            .filter(|e| !self.is_configured(e.remote))
            .count();
        strangers < stranger_slots
    }

    /// Whether a block request of `peer` may be served now (its serving
    /// bucket is not in debt); counted as dropped if not.
    pub fn may_serve(&self, peer: &PeerId) -> bool {
        let ok = lock(&self.inner.peers)
            .get_mut(peer)
            .is_some_and(|e| e.budget.serve.solvent(Instant::now()));
        if !ok {
            self.inner.cfg.metrics.budget_drop(BudgetKind::Serve);
        }
        ok
    }

    /// Takes the block bytes just served to `peer` from its serving bucket.
    pub fn served(&self, peer: &PeerId, bytes: usize) {
        if let Some(e) = lock(&self.inner.peers).get_mut(peer) {
            e.budget.serve.spend(bytes as u64, Instant::now());
        }
    }
}

/// The signature and pairing checks a message may cost the node (see
/// [`super::budget`]): what its peer's check bucket is charged before delivery.
pub fn check_cost(kind: &Kind) -> u64 {
    match kind {
        Kind::Vote(_) => 1,
        Kind::Proposal(_) | Kind::Evidence(_) => 2,
        Kind::BlockResponse(r) => r.blocks.len() as u64,
        _ => 0,
    }
}
