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
    /// addresses match with their port, others by IP (exactly: a stranger
    /// elsewhere in a configured peer's IPv6 /64 is still a stranger).
    pub(super) fn is_configured(&self, addr: SocketAddr) -> bool {
        self.inner.cfg.peers.iter().any(|p| same_host(*p, addr))
    }

    /// The key to ban `addr` under, or None for a configured peer's address
    /// (see [`super::score`] for why).
    pub(super) fn ban_key(&self, addr: SocketAddr) -> Option<AddrKey> {
        (!self.is_configured(addr)).then(|| AddrKey::of(addr))
    }

    /// Whether an incoming connection from `remote` may start a handshake:
    /// a configured peer's address always may (its reserved slot; a ban of
    /// a stranger in its network does not lock it out); a stranger's not
    /// from a banned network, and only with a stranger slot for it.
    pub(super) fn admits(&self, remote: SocketAddr) -> Result<(), BudgetKind> {
        if self.is_configured(remote) {
            return Ok(());
        }
        if lock(&self.inner.scores).is_addr_banned(&AddrKey::of(remote), Instant::now()) {
            return Err(BudgetKind::Banned);
        }
        self.stranger_slot_free(&lock(&self.inner.peers), remote)
    }

    /// Whether the table has room for one more stranger from `remote`: at
    /// most `max_peers` minus the configured peers in all, and at most
    /// `max_strangers_per_network` from `remote`'s network (so one host
    /// cannot take every stranger slot by presenting a fresh certificate per
    /// connection). Checked when a connection arrives and again when its
    /// handshake is done, under the table's lock: handshakes run
    /// concurrently, so the first check alone let up to
    /// [`super::MAX_HANDSHAKES`] strangers past a full table.
    pub(super) fn stranger_slot_free(
        &self,
        peers: &std::collections::HashMap<PeerId, super::PeerEntry>,
        remote: SocketAddr,
    ) -> Result<(), BudgetKind> {
        let cfg = &self.inner.cfg;
        let strangers = peers
            .values()
            .map(|e| e.remote)
            .filter(|r| !self.is_configured(*r));
        stranger_room(
            strangers,
            remote,
            cfg.max_peers.saturating_sub(cfg.peers.len()),
            cfg.max_strangers_per_network,
        )
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

/// Whether `a` and `b` are one host's address: the same IP (an IPv4 address
/// in IPv6 is the IPv4 address), and on loopback the same port too (see
/// [`super::score`]).
fn same_host(a: SocketAddr, b: SocketAddr) -> bool {
    let ip = a.ip().to_canonical();
    ip == b.ip().to_canonical() && (!ip.is_loopback() || a.port() == b.port())
}

/// Whether one more stranger from `remote` fits beside `strangers` (the
/// connected strangers' addresses): fewer than `slots` in all and fewer than
/// `per_network` under `remote`'s [`AddrKey`].
fn stranger_room(
    strangers: impl Iterator<Item = SocketAddr>,
    remote: SocketAddr,
    slots: usize,
    per_network: usize,
) -> Result<(), BudgetKind> {
    let key = AddrKey::of(remote);
    let (mut all, mut same) = (0usize, 0usize);
    for r in strangers {
        all += 1;
        same += usize::from(AddrKey::of(r) == key);
    }
    if all >= slots {
        Err(BudgetKind::Slots)
    } else if same >= per_network {
        Err(BudgetKind::NetworkSlots)
    } else {
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_host_is_one_ip_or_on_loopback_one_socket() {
        assert!(same_host(a("192.0.2.1:1"), a("192.0.2.1:2")));
        assert!(same_host(a("[::ffff:192.0.2.1]:1"), a("192.0.2.1:2")));
        assert!(!same_host(a("127.0.0.1:1"), a("127.0.0.1:2")));
        // A configured IPv6 address vouches for itself, not for its /64.
        assert!(!same_host(a("[2001:db8::1]:1"), a("[2001:db8::2]:1")));
    }

    /// Strangers count against the table and against their network: the
    /// fifth from one /64 is refused while the table has room, a stranger
    /// from another network is not, and a full table refuses everyone.
    #[test]
    fn a_network_holds_at_most_its_share_of_the_stranger_slots() {
        let held: Vec<SocketAddr> = (1..=4)
            .map(|i| a(&format!("[2001:db8:0:1::{i}]:9000")))
            .chain([a("192.0.2.1:9000")])
            .collect();
        let room = |remote, slots| stranger_room(held.iter().copied(), a(remote), slots, 4);
        assert_eq!(
            room("[2001:db8:0:1:ffff::9]:1", 10),
            Err(BudgetKind::NetworkSlots)
        );
        assert_eq!(room("[2001:db8:0:2::1]:1", 10), Ok(()));
        assert_eq!(
            room("192.0.2.1:1", 10),
            Ok(()),
            "one of four from that IPv4"
        );
        assert_eq!(room("192.0.2.2:1", 5), Err(BudgetKind::Slots));
        // On loopback the unit is one socket: another port is another host.
        let local = [a("127.0.0.1:5000"); 4];
        let room = |remote| stranger_room(local.iter().copied(), a(remote), 10, 4);
        assert_eq!(room("127.0.0.1:5000"), Err(BudgetKind::NetworkSlots));
        assert_eq!(room("127.0.0.1:5001"), Ok(()));
    }
}
