//! Setting connections up: accepting incoming ones (within the admission
//! and handshake bounds) and keeping one to each configured address,
//! redialling with backoff. Both hand a finished handshake to
//! [`Transport::register`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, warn};

use super::error::ConnectError;
use super::score::AddrKey;
use super::{PeerId, Transport, lock};
use crate::host_network::Share;
use crate::metrics::BudgetKind;

/// What a handshake in progress holds: its network's share, and a
/// stranger's permit.
type HandshakePlace = (Share<AddrKey>, Option<OwnedSemaphorePermit>);

impl Transport {
    /// Accepts incoming connections until shutdown: refuses those not
    /// admitted, makes every other one prove its address first (a QUIC
    /// Retry, see [`Self::handshake_place`]), refuses those past the
    /// handshake bounds, and handshakes with the rest (each in its own task,
    /// within the handshake timeout).
    pub(super) async fn accept_loop(self) {
        let mut stop = self.inner.shutdown.subscribe();
        loop {
            let incoming = tokio::select! {
                i = self.inner.endpoint.accept() => i,
                _ = stop.wait_for(|s| *s) => None,
            };
            let Some(incoming) = incoming else { break };
            let remote = incoming.remote_address();
            if let Err(why) = self.admits(remote) {
                self.inner.cfg.metrics.budget_drop(why);
                debug!(%remote, ?why, "incoming connection refused");
                incoming.refuse();
                continue;
            }
            if !incoming.remote_address_validated() {
                // Stateless: one small packet, nothing held. Only a sender
                // that receives at `remote` can answer it.
                self.inner.cfg.metrics.address_validation();
                if let Err(e) = incoming.retry() {
                    e.into_incoming().refuse();
                }
                continue;
            }
            let place = match self.handshake_place(remote) {
                Ok(place) => place,
                Err(why) => {
                    self.inner.cfg.metrics.budget_drop(why);
                    incoming.refuse();
                    continue;
                }
            };
            let t = self.clone();
            tokio::spawn(async move {
                let _place = place;
                let res = tokio::time::timeout(t.inner.cfg.handshake_timeout, async {
                    let conn = incoming.await?;
                    t.handshake(conn, false).await
                })
                .await
                .unwrap_or(Err(ConnectError::Timeout));
                match res {
                    Ok(h) => {
                        t.register(h, false);
                    }
                    Err(e) => debug!(%remote, error = %e, "inbound handshake failed"),
                }
            });
        }
    }

    /// A place for a handshake with `remote` (whose address is validated),
    /// held until it ends: for a stranger, one of its network's handshakes
    /// per second (`handshake_rate`) and one of the `max_handshakes`
    /// permits; for anyone, its network's share of the places in progress
    /// (a quarter of `max_handshakes`). Each place is held up to
    /// `handshake_timeout`, so without the Retry one spoofed packet per
    /// place held it; without the share, one host holding every permit kept
    /// everyone else out; and a configured address needs no permit, so
    /// strangers filling them do not keep a validator from reconnecting.
    fn handshake_place(&self, remote: SocketAddr) -> Result<HandshakePlace, BudgetKind> {
        let network = AddrKey::of(remote);
        let configured = self.is_configured(remote);
        if !configured && !lock(&self.inner.handshake_rates).try_start(network, Instant::now()) {
            return Err(BudgetKind::HandshakeRate);
        }
        let share = self
            .inner
            .handshake_shares
            .take(network)
            .ok_or(BudgetKind::NetworkHandshakes)?;
        let permit = if configured {
            None
        } else {
            let p = self.inner.handshakes.clone().try_acquire_owned();
            Some(p.map_err(|_| BudgetKind::Handshakes)?)
        };
        Ok((share, permit))
    }

    /// Keeps a connection to `addr` alive, redialling with exponential backoff.
    pub(super) async fn dial_loop(self, addr: SocketAddr) {
        let mut backoff = self.inner.cfg.backoff_initial;
        let mut known: Option<PeerId> = None;
        let mut stop = self.inner.shutdown.subscribe();
        while !self.is_shut_down() {
            // Don't dial a peer we are already connected to (it dialled us).
            // Before we know its id, its address tells: an endpoint dials
            // from the same UDP socket it listens on.
            if known.is_none() {
                known = self.connected_at(addr);
            }
            if let Some(id) = known {
                let mut changes = self.inner.changes.subscribe();
                while self.is_connected(&id) && !self.is_shut_down() {
                    tokio::select! {
                        r = changes.changed() => if r.is_err() { return },
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
                // A copy of this node took our place there: let it be a
                // while (`Transport::note_superseded`), then look again.
                if let Some(wait) = self.superseded_wait(&id) {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => continue,
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
            let attempt = tokio::time::timeout(self.inner.cfg.handshake_timeout, async {
                let conn = self.inner.endpoint.connect(addr, "agora")?.await?;
                self.handshake(conn, true).await
            })
            .await
            .unwrap_or(Err(ConnectError::Timeout));
            match attempt {
                Ok(h) => {
                    known = Some(h.peer);
                    let conn = h.conn.clone();
                    if self.register(h, true) {
                        backoff = self.inner.cfg.backoff_initial;
                        tokio::select! {
                            _ = conn.closed() => {},
                            _ = stop.wait_for(|s| *s) => return,
                        }
                    }
                }
                Err(e) if e.is_network_mismatch() => warn!(
                    %addr,
                    error = %e,
                    chain = %self.inner.chain,
                    genesis_hash = %hex::encode(self.inner.cfg.genesis_hash),
                    "peer is on another network: check p2p.peers and that genesis.json is byte-identical on both nodes"
                ),
                Err(e) => debug!(%addr, error = %e, "dial failed"),
            }
            // Jitter keeps restarted nodes from redialling in lock-step.
            let jitter = rand::random_range(0..=backoff.as_millis() as u64 / 4 + 1);
            let delay = backoff + Duration::from_millis(jitter);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {},
                _ = stop.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(self.inner.cfg.backoff_max);
        }
    }
}
