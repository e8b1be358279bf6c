//! The joining side: an empty store filled from a peer's snapshot. Every
//! choice below is the engine's (`agora_validator::state_sync::join`, a
//! state machine clocked by this loop's milliseconds); this file moves its
//! messages, runs the light client it asks for, charges whom it names,
//! logs what it reports and stores the result.
//!
//! 1. *Offers.* Every connected peer is asked for its newest snapshot
//!    (again every `join::ASK_EVERY_MS` while none fits); of those whose next
//!    header is at or above the trusted height, the one most peers offer
//!    is taken, then the highest (`agora_validator::state_sync::offers`).
//! 2. *Anchor.* Header S + 1 is verified from the checkpoint by the light
//!    client over gRPC, with blocks S and S + 1 and the offered seed
//!    ([`super::anchor`]). A seed that does not verify is the offering
//!    peer's fault: charged, and its offer dropped.
//! 3. *Manifest.* Checked against the header's app hash; a peer whose
//!    manifest does not hash to it is charged and dropped.
//! 4. *Chunks.* Fetched from every peer that offered the same manifest
//!    (`agora_validator::state_sync::fetcher`), each checked on arrival; a
//!    forged one is charged to its peer. With no source left, back to 1.
//! 5. *Install.* The ledger is rebuilt from the leaves (strictly decoded),
//!    its root compared with the app hash once more, and the store gets
//!    block S, its certificate, the seed and the state in one durable
//!    transaction ([`crate::storage::Storage::install_snapshot`]). The node
//!    then starts as one that pruned every block below S, and block sync
//!    takes it from S + 1 to the tip.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use agora_proto::v1::{self as pb, PeerMessage, peer_message::Kind};
use agora_validator::Hash;
use agora_validator::ledger::Ledger;
use agora_validator::state_sync::Anchor;
use agora_validator::state_sync::join::{Action, AnchorFailure, Join, JoinFault, Notice};
use agora_validator::types::ChainId;
use prost::Message;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::anchor::{self, AnchorFetchError};
use crate::config::StateSyncConfig;
use crate::storage::{SnapshotBase, Storage};
use crate::transport::{ChargeReason, PeerId, Transport, TransportEvent};

/// How often the join is driven (offers asked, requests sent or given up)
/// between events.
const TICK: Duration = Duration::from_millis(100);
/// How often the download's progress is logged.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Why state sync stopped (every other failure is retried).
#[derive(Debug, thiserror::Error)]
pub enum StateSyncError {
    /// The configuration cannot work (a checkpoint that does not hold).
    #[error("state sync: {0}")]
    Config(String),
    /// The transport closed.
    #[error("state sync: the transport stopped")]
    TransportClosed,
    /// The verified leaves do not make a ledger with the certified root.
    #[error("state sync: the verified snapshot does not restore: {0}")]
    Restore(String),
    /// The store refused the snapshot.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// The state-sync client over a running transport (see the module docs).
pub struct Joiner<'a> {
    cfg: &'a StateSyncConfig,
    chain: &'a ChainId,
    storage: &'a Storage,
    transport: &'a Transport,
    events: &'a mut mpsc::Receiver<TransportEvent>,
    checkpoint: (u64, Hash),
    /// `cfg.rpc_servers`, those that last failed moved to the back
    /// ([`anchor::verify`]): a silent server costs its timeout once, not at
    /// every offer (peers drop a snapshot a few intervals later, so an offer
    /// that waited on it every time could go stale every time).
    servers: Vec<String>,
    /// The join's clock starts here.
    started: Instant,
}

impl<'a> Joiner<'a> {
    /// A joiner for an empty store.
    pub fn new(
        cfg: &'a StateSyncConfig,
        chain: &'a ChainId,
        storage: &'a Storage,
        transport: &'a Transport,
        events: &'a mut mpsc::Receiver<TransportEvent>,
    ) -> Result<Self, StateSyncError> {
        let checkpoint = cfg.checkpoint().map_err(StateSyncError::Config)?;
        Ok(Self {
            cfg,
            chain,
            storage,
            transport,
            events,
            checkpoint,
            servers: cfg.rpc_servers.clone(),
            started: Instant::now(),
        })
    }

    /// Runs until a verified snapshot is installed; the ledger rebuilt
    /// from it.
    pub async fn run(mut self) -> Result<Ledger, StateSyncError> {
        info!(
            trust_height = self.checkpoint.0,
            trust_hash = %hex::encode(self.checkpoint.1),
            "state sync: looking for a snapshot"
        );
        let peers = self.transport.peers().into_iter().map(|p| p.id);
        let (mut join, first) = Join::start(
            self.checkpoint.0,
            self.cfg.chunk_timeout_ms,
            peers,
            self.now_ms(),
        );
        let mut actions: VecDeque<Action<PeerId>> = first.into();
        let mut report = Instant::now() + REPORT_EVERY;
        loop {
            while let Some(a) = actions.pop_front() {
                if let Some(ledger) = self.perform(&mut join, a, &mut actions).await? {
                    info!(
                        height = ledger.height(),
                        seconds = self.started.elapsed().as_secs_f64(),
                        "state sync: snapshot installed; following blocks from here"
                    );
                    return Ok(ledger);
                }
            }
            if Instant::now() >= report {
                if let Some((height, done, total)) = join.progress() {
                    info!(height, done, total, "state sync: fetching chunks");
                }
                report = Instant::now() + REPORT_EVERY;
            }
            match tokio::time::timeout(TICK, self.events.recv()).await {
                Err(_) => {}
                Ok(None) => return Err(StateSyncError::TransportClosed),
                Ok(Some(ev)) => actions.extend(self.on_event(&mut join, ev)),
            }
            actions.extend(join.tick(self.now_ms()));
        }
    }

    /// The join's clock: milliseconds since the joiner was made.
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Hands an event to the join: connections, offers and chunks; anything
    /// else (votes, proposals, transactions of a chain not yet followed)
    /// is dropped.
    fn on_event(&self, join: &mut Join<PeerId>, ev: TransportEvent) -> Vec<Action<PeerId>> {
        let now = self.now_ms();
        match ev {
            TransportEvent::Connected { peer, .. } => join.connected(peer),
            TransportEvent::Disconnected { peer } => {
                join.disconnected(peer);
                Vec::new()
            }
            TransportEvent::Message { peer, message, .. } => match message.kind {
                Some(Kind::SnapshotOffer(o)) => join.offer(peer, o, now),
                Some(Kind::ChunkResponse(r)) => join.chunk(peer, r, now),
                _ => Vec::new(),
            },
        }
    }

    /// Carries out one action; the ledger once installed.
    async fn perform(
        &mut self,
        join: &mut Join<PeerId>,
        action: Action<PeerId>,
        more: &mut VecDeque<Action<PeerId>>,
    ) -> Result<Option<Ledger>, StateSyncError> {
        match action {
            Action::AskOffer(peer) => {
                let ask = PeerMessage {
                    kind: Some(Kind::SnapshotRequest(pb::SnapshotRequest {})),
                };
                let _ = self.transport.send(peer, &ask);
            }
            Action::RequestChunk(peer, req) => {
                let msg = PeerMessage {
                    kind: Some(Kind::ChunkRequest(req)),
                };
                if self.transport.send(peer, &msg).is_err() {
                    join.unreachable(peer);
                }
            }
            Action::Charge(peer, fault) => self.charge(peer, &fault),
            Action::VerifyAnchor { peer, height, seed } => {
                let verdict = self.anchor(peer, height, &seed).await?;
                more.extend(join.anchor_verified(verdict, self.now_ms()));
            }
            Action::Install { anchor, leaves } => {
                info!(
                    height = anchor.height,
                    leaves = leaves.len(),
                    ms = self.now_ms(),
                    "state sync: every chunk verified"
                );
                return Ok(Some(self.install(*anchor, leaves).await?));
            }
            Action::Notice(n) => self.log(n),
        }
        Ok(None)
    }

    /// The light client's verdict on the anchor of `peer`'s offer; a
    /// checkpoint that does not hold stops the join.
    async fn anchor(
        &mut self,
        peer: PeerId,
        height: u64,
        seed: &Hash,
    ) -> Result<Result<Anchor, AnchorFailure>, StateSyncError> {
        let t0 = Instant::now();
        match anchor::verify(&mut self.servers, self.chain, self.checkpoint, height, seed).await {
            Ok(a) => {
                info!(
                    height = a.height,
                    ms = t0.elapsed().as_millis() as u64,
                    "state sync: snapshot header verified from the checkpoint"
                );
                Ok(Ok(a))
            }
            Err(e @ AnchorFetchError::Checkpoint(_)) => Err(StateSyncError::Config(e.to_string())),
            Err(AnchorFetchError::Seed(e)) => Ok(Err(AnchorFailure::Seed(e))),
            Err(e) => {
                warn!(%peer, height, error = %e,
                    "state sync: cannot verify the snapshot's header; trying other offers");
                Ok(Err(AnchorFailure::Unavailable))
            }
        }
    }

    /// Charges `peer` for a snapshot that does not verify.
    fn charge(&self, peer: PeerId, fault: &JoinFault) {
        let why = fault.to_string();
        match fault {
            JoinFault::Chunk { index, error } => {
                warn!(%peer, index, error = %error, "state sync: forged chunk refused");
            }
            _ => {
                warn!(%peer, reason = why, "state sync: peer served a snapshot that does not verify");
            }
        }
        self.transport.charge(peer, ChargeReason::BadSnapshot, &why);
    }

    fn log(&self, n: Notice<PeerId>) {
        match n {
            Notice::NoneHighEnough { offered } => warn!(
                trust_height = self.checkpoint.0,
                ?offered,
                "state sync: no peer holds a snapshot at or above the trusted height yet; waiting"
            ),
            Notice::Gone(peer) => info!(%peer, "state sync: peer no longer holds the snapshot"),
            Notice::Silenced(peer) => warn!(%peer,
                "state sync: peer left a chunk unanswered twice; setting its offers aside"),
            Notice::SourcesGone { height } => warn!(
                height,
                "state sync: every source of the snapshot left; looking again"
            ),
        }
    }

    /// Rebuilds the ledger off the loop, checks it once more against the
    /// certified root and stores the base.
    async fn install(
        &self,
        anchor: Anchor,
        leaves: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Ledger, StateSyncError> {
        let t0 = Instant::now();
        let (ledger, leaves) = tokio::task::spawn_blocking(move || {
            Ledger::from_leaves(leaves.iter().map(|(k, v)| (k, v))).map(|l| (l, leaves))
        })
        .await
        .map_err(|e| StateSyncError::Restore(e.to_string()))?
        .map_err(|e| StateSyncError::Restore(e.to_string()))?;
        if ledger.app_hash() != anchor.app_hash || ledger.height() != anchor.height {
            return Err(StateSyncError::Restore(format!(
                "rebuilt state is height {} root {}, the header says height {} root {}",
                ledger.height(),
                hex::encode(ledger.app_hash()),
                anchor.height,
                hex::encode(anchor.app_hash)
            )));
        }
        let sets: Vec<(u64, Vec<u8>)> = [anchor.height + 1, anchor.height + 2]
            .into_iter()
            .filter_map(|h| {
                ledger
                    .validator_set(h)
                    .map(|s| (h, s.to_proto().encode_to_vec()))
            })
            .collect();
        let cert = anchor.certificate.to_proto();
        self.storage.install_snapshot(SnapshotBase {
            block: &anchor.block,
            certificate: &cert,
            seed: &anchor.seed,
            leaves: &leaves,
            validator_sets: &sets,
        })?;
        info!(
            height = anchor.height,
            leaves = leaves.len(),
            ms = t0.elapsed().as_millis() as u64,
            "state sync: state rebuilt and stored"
        );
        Ok(ledger)
    }
}
