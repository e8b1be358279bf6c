//! The select loop: transport events, fired timeouts, the engine's tick,
//! the next height's start, API requests, checked transactions and the
//! transaction gossip batch, until shutdown or a fatal error.

use agora_proto::v1::{self as pb, PeerMessage, peer_message::Kind};
use agora_validator::engine::TICK_MS;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::warn;

use super::{RunError, Runner, stall};
use crate::api::ApiRequest;
use crate::metrics::{Metrics, Phase};
use crate::transport::{PeerId, PeerIdentity, TransportEvent};
use crate::tx_verifier::Origin;

impl Runner {
    /// Runs until `shutdown` resolves or a fatal error.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<TransportEvent>,
        mut api: mpsc::Receiver<ApiRequest>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), RunError> {
        tokio::pin!(shutdown);
        let mut checked = self
            .checked
            .take()
            .ok_or_else(|| RunError::Restore("the runner was already run".into()))?;
        self.begin()?;
        let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let start_at = self.next_start;
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                // A due start (timeout_commit 0) is taken at once: a timer
                // would round it up to the next millisecond tick.
                _ = async { match start_at {
                    Some(t) if t <= tokio::time::Instant::now() => {}
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                } } => self.start_height()?,
                _ = tick.tick() => self.on_tick()?,
                _ = async { match self.tx_outbox.deadline() {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                } } => {
                    if let Some(batch) = self.tx_outbox.take() {
                        self.transport.broadcast(&batch);
                    }
                }
                r = api.recv() => if let Some(r) = r {
                    self.on_api(r)?;
                },
                t = self.timers.recv() => if let Some(t) = t {
                    let actions = self.engine.on_timeout(t, self.clock.now_ms(), &self.mempool)?;
                    self.execute(actions)?;
                },
                c = checked.recv() => if let Some(c) = c {
                    self.on_checked(c);
                },
                v = async { match self.certificate_job.as_mut() {
                    Some(rx) => rx.await,
                    None => std::future::pending().await,
                } } => self.on_certificate_verdict(v)?,
                // Synced blocks left for another turn (see `sync.rs`).
                _ = std::future::ready(()), if self.engine.synced_block_ready() => {
                    self.apply_synced_chunk()?;
                    // This branch is always ready while blocks wait: yield
                    // so that the transport's tasks (the next response, our
                    // request's send) run between chunks.
                    tokio::task::yield_now().await;
                }
                ev = events.recv() => match ev {
                    Some(ev) => self.on_event(ev)?,
                    None => return Ok(()),
                },
            }
        }
    }

    /// Every `TICK_MS`: the engine re-gossips the height's messages and
    /// pending evidence, and fetches blocks if it has fallen behind; our
    /// height is announced again.
    ///
    /// Why again: a syncing peer forgets our claim when a request to us
    /// times out (the engine's `SyncState::expire`: a false announcement
    /// costs the claim), and it learns heights only from status messages.
    /// While the chain advances, each commit announces anew; on a halted
    /// chain (a lost quorum, a network that restarts with validators
    /// behind) nothing else would, and one lost answer left a catching-up
    /// node stalled for good, beside a peer holding every block it needed.
    /// The simulator's hosts announce on every tick as well.
    fn on_tick(&mut self) -> Result<(), RunError> {
        let actions = self.engine.on_tick(self.clock.now_ms());
        self.execute(actions)?;
        self.transport.announce_height();
        self.send_unsolicited();
        if let Some(stood) = self.stall.due(std::time::Instant::now()) {
            self.warn_stalled(stood);
        }
        Ok(())
    }

    /// The stall warning with what this node sees (`stall.rs`).
    fn warn_stalled(&self, stood: std::time::Duration) {
        let (height, round, step) = match Phase::of(&self.engine) {
            Phase::Deciding {
                height,
                round,
                step,
            } => (height, round, step.label()),
            Phase::Committing { height } => (height, 0, "commit"),
        };
        let at = stall::Deciding {
            height,
            round,
            step,
            may_sign: self.engine.signing_gate().may_sign(),
        };
        let connected: Vec<_> = self
            .transport
            .peers()
            .iter()
            .filter_map(|p| p.identity.validator_address())
            .collect();
        let Some(set) = self.engine.ledger().validator_set(self.engine.height()) else {
            return;
        };
        stall::warn_stalled(stood, at, stall::Reach::of(set, &self.me, &connected));
    }

    fn on_event(&mut self, ev: TransportEvent) -> Result<(), RunError> {
        match ev {
            TransportEvent::Connected { peer, identity, .. } => {
                let status = pb::StatusUpdate {
                    latest_height: self.engine.tip_height(),
                };
                let _ = self.transport.send(
                    peer,
                    &PeerMessage {
                        kind: Some(Kind::Status(status)),
                    },
                );
                let actions = self
                    .engine
                    .on_peer_connected(peer, identity.validator_address().as_ref());
                self.execute(actions)?;
                self.hand_over_pending(peer, &identity);
                self.update_peer_metrics();
            }
            TransportEvent::Disconnected { peer } => {
                self.engine.on_peer_gone(&peer);
                self.update_peer_metrics();
            }
            TransportEvent::Message {
                peer,
                identity,
                message,
                ..
            } => {
                Metrics::inc(&self.metrics.messages_received);
                if let Some(kind) = message.kind {
                    self.on_message(peer, &identity, kind)?;
                }
            }
        }
        Ok(())
    }

    /// A validator of the current set that connects is sent our pending
    /// transactions, best-paying first, up to
    /// [`crate::tx_gossip::HANDOVER_MAX_BYTES`], at most once per
    /// [`crate::tx_gossip::HANDOVER_EVERY`] (`tx_gossip::handover` says
    /// why). Its copies of what it already holds are dropped on arrival.
    fn hand_over_pending(&mut self, peer: PeerId, identity: &PeerIdentity) {
        let Some(address) = identity.validator_address() else {
            return;
        };
        if !self.in_current_set(&address)
            || self.mempool.is_empty()
            || !self.handovers.allow(address, tokio::time::Instant::now())
        {
            return;
        }
        let txs = self
            .mempool
            .reap(crate::tx_gossip::HANDOVER_MAX_BYTES, usize::MAX);
        for batch in crate::tx_gossip::handover(txs) {
            let _ = self.transport.send(peer, &batch);
        }
    }

    /// One peer message to where it belongs. Only peers that proved a
    /// validator key in the Hello feed proposals and votes (the engine
    /// still verifies every signature: this is about who may speak).
    fn on_message(
        &mut self,
        peer: PeerId,
        identity: &PeerIdentity,
        kind: Kind,
    ) -> Result<(), RunError> {
        let now = self.clock.now_ms();
        let actions = match kind {
            Kind::Transaction(tx) => {
                self.verify_then_admit(tx, Origin::Peer(peer));
                return Ok(());
            }
            Kind::Transactions(batch) => {
                for tx in batch.txs {
                    self.verify_then_admit(tx, Origin::Peer(peer));
                }
                return Ok(());
            }
            Kind::BlockRequest(req) => return self.serve_blocks(peer, &req),
            Kind::BlockResponse(resp) => return self.on_blocks(peer, resp),
            Kind::SnapshotRequest(_) => return self.serve_offer(peer),
            Kind::ChunkRequest(req) => return self.serve_chunk(peer, &req),
            Kind::Evidence(ev) => self.engine.on_evidence(peer, ev),
            Kind::Status(s) => self
                .engine
                .on_status(peer, s.latest_height, now, &self.mempool)?,
            Kind::Proposal(_) | Kind::Vote(_) if *identity == PeerIdentity::FullNode => {
                warn!(%peer, "vote or proposal from a full node ignored");
                return Ok(());
            }
            Kind::Proposal(p) => self.engine.on_proposal(peer, p, now, &self.mempool)?,
            Kind::Vote(v) => self.engine.on_vote(peer, v, now, &self.mempool)?,
            _ => return Ok(()),
        };
        self.execute(actions)
    }

    /// Counts the connected peers by kind: a validator proved a key in the
    /// validator set of the height being decided; every other peer (no key,
    /// or a key outside the set) is a full node. Run on every connection
    /// change and commit (the set changes with heights).
    pub(super) fn update_peer_metrics(&self) {
        let peers = self.transport.peers();
        let validators = peers
            .iter()
            .filter_map(|p| p.identity.validator_address())
            .filter(|a| self.in_current_set(a))
            .count();
        self.metrics
            .set_peers(validators as u64, (peers.len() - validators) as u64);
    }

    /// Whether `address` is a validator of the height being decided: who
    /// counts as a validator peer, and who is handed the pending pool.
    fn in_current_set(&self, address: &agora_validator::Address) -> bool {
        self.engine
            .ledger()
            .validator_set(self.engine.height())
            .is_some_and(|set| set.index_of(address).is_some())
    }
}
