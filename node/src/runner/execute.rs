//! Executing the engine's [`Action`]s, in the order given.
//!
//! SAFETY RULE (DESIGN §6): a `PersistSigningState` is durable (fsync'ed)
//! before any later action is looked at; if persisting fails, execution
//! stops there with an error and nothing after it — in particular no
//! signed vote or proposal — leaves the node. `Wal` records are appended
//! without an fsync of their own: persisting a signing state first makes
//! the WAL durable (one `Immediate` redb commit), then writes the
//! signing-state file (one slot overwritten in place, fdatasync), so every
//! input that led to a signature, and our own message itself, is on disk
//! before the signature can leave; a record lost with a crash before that
//! only loses an input the core had not acted on visibly.

use std::sync::Arc;
use std::time::Duration;

use agora_proto::v1::{self as pb, PeerMessage, peer_message::Kind};
use agora_validator::Hash;
use agora_validator::consensus::{SigningState, Timeout, WalSync};
use agora_validator::engine::{Action, CommitRecord, PeerFault};
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::testing::DoubleSigner;
use crate::metrics::{Metrics, PenaltyReason};
use crate::storage::signing_file::SigningFile;
use crate::storage::{Storage, StorageError};
use crate::transport::{ChargeReason, PeerId, Transport};
use crate::wal;

/// Why executing an action failed; the node must stop.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The signing state could not be made durable. Nothing signed after it
    /// was sent; the node must stop rather than risk equivocation.
    #[error("persisting the signing state failed; refusing to send what was signed: {0}")]
    Persist(StorageError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Where the executor makes things durable.
pub trait DurableStore {
    /// Makes the signing state durable before returning (fsync), the WAL
    /// first when `wal_first` (the executor's [`WalSync`] decides).
    fn persist_signing_state(&self, s: &SigningState, wal_first: bool) -> Result<(), StorageError>;
    /// Appends a WAL record of `height` (no fsync of its own).
    fn append_wal(&self, height: u64, record: &[u8]) -> Result<(), StorageError>;
    /// Keeps an evidence-pool entry across restarts; true if new.
    fn persist_evidence(&self, id: &Hash, ev: &pb::Evidence) -> Result<bool, StorageError>;
}

/// The node's durable store: the database and the signing-state file.
#[derive(Debug, Clone)]
pub struct NodeStore {
    storage: Arc<Storage>,
    signing: SigningFile,
}

impl NodeStore {
    /// The store over `storage` and the signing-state file `signing`.
    pub fn new(storage: Arc<Storage>, signing: SigningFile) -> Self {
        Self { storage, signing }
    }
}

impl DurableStore for NodeStore {
    fn persist_signing_state(&self, s: &SigningState, wal_first: bool) -> Result<(), StorageError> {
        // FSYNC 1, before a precommit or a proposal, and before a second
        // signature at one height while the first one's record waits (not
        // before a height's first prevote): the WAL (our own messages were
        // appended right before this state, and the inputs that led to them
        // before that) becomes durable first, so a lock on disk always has
        // the block and the polka behind it on disk, a proposal its block,
        // and every signature but the one this file holds its record
        // (`SigningState::wal_first` and `WalSync` say why).
        if wal_first {
            self.storage.sync_wal()?;
        }
        // FSYNC 2: the file itself (its older slot overwritten, fdatasync).
        Ok(self.signing.save(s)?)
    }
    fn append_wal(&self, height: u64, record: &[u8]) -> Result<(), StorageError> {
        // No fsync: made durable by the next WAL sync (see above) or block
        // commit.
        self.storage.wal_append(height, record, false)
    }
    fn persist_evidence(&self, id: &Hash, ev: &pb::Evidence) -> Result<bool, StorageError> {
        // FSYNC: Immediate (see Storage::put_pool_evidence for why).
        self.storage.put_pool_evidence(id, ev)
    }
}

impl<T: DurableStore> DurableStore for Arc<T> {
    fn persist_signing_state(&self, s: &SigningState, wal_first: bool) -> Result<(), StorageError> {
        (**self).persist_signing_state(s, wal_first)
    }
    fn append_wal(&self, height: u64, record: &[u8]) -> Result<(), StorageError> {
        (**self).append_wal(height, record)
    }
    fn persist_evidence(&self, id: &Hash, ev: &pb::Evidence) -> Result<bool, StorageError> {
        (**self).persist_evidence(id, ev)
    }
}

/// Where the executor sends messages.
pub trait Network {
    /// Sends to every connected peer; returns to how many it was queued.
    fn broadcast(&self, msg: &PeerMessage) -> usize;
    /// Sends to one peer (dropped if it is gone or its queue is full).
    fn send(&self, peer: PeerId, msg: &PeerMessage);
    /// Charges a peer's score (banned and disconnected past the threshold).
    fn charge(&self, peer: PeerId, reason: ChargeReason, detail: String);
}

impl Network for Transport {
    fn broadcast(&self, msg: &PeerMessage) -> usize {
        Transport::broadcast(self, msg)
    }
    fn send(&self, peer: PeerId, msg: &PeerMessage) {
        if let Err(e) = Transport::send(self, peer, msg) {
            debug!(%peer, error = %e, "message not sent");
        }
    }
    fn charge(&self, peer: PeerId, reason: ChargeReason, detail: String) {
        Transport::charge(self, peer, reason, &detail)
    }
}

/// One line for each piece of evidence the pool takes: who, where, which kind
/// (0 a proposal, else the vote type), so a double sign shows in the log.
fn log_new_evidence(ev: &pb::Evidence) {
    match agora_validator::consensus::evidence::infraction_key(ev) {
        Some(k) => info!(
            offender = %k.offender,
            height = k.height,
            round = k.round,
            kind = k.kind,
            "double-signing evidence in the pool"
        ),
        None => info!("double-signing evidence in the pool: conflicting certificates"),
    }
}

/// What executing one action left for the caller.
#[derive(Debug)]
pub enum Executed {
    /// Nothing.
    Done,
    /// A decided height to store (the runner's `commit`), before the next action.
    Commit(Box<CommitRecord>),
}

/// Carries out the engine's actions.
pub struct Executor<S, N> {
    store: S,
    net: N,
    metrics: Arc<Metrics>,
    timers: mpsc::Sender<Timeout>,
    double_signer: Option<DoubleSigner>,
    /// Votes the host signed itself (the testing double signer) since the
    /// last [`Executor::take_host_signed`]: at most one per vote broadcast
    /// in one batch of actions, taken after every batch.
    host_signed: Vec<pb::Vote>,
    /// Whether the last signature's WAL record is durable.
    wal_sync: WalSync,
}

fn msg(kind: Kind) -> PeerMessage {
    PeerMessage { kind: Some(kind) }
}

impl<S: DurableStore, N: Network> Executor<S, N> {
    /// An executor; fired timeouts are sent on `timers`.
    pub fn new(store: S, net: N, metrics: Arc<Metrics>, timers: mpsc::Sender<Timeout>) -> Self {
        Self {
            store,
            net,
            metrics,
            timers,
            double_signer: None,
            host_signed: Vec::new(),
            wal_sync: WalSync::default(),
        }
    }

    /// Starts the WAL-sync record from the signing state restored at start
    /// (`WalSync::restored`).
    pub fn with_restored_signing(mut self, restored: Option<&SigningState>) -> Self {
        self.wal_sync = WalSync::restored(restored);
        self
    }

    /// Testnets only (`testing.double_sign`, `testing.double_sign_once`).
    pub fn with_double_signer(mut self, d: DoubleSigner) -> Self {
        self.double_signer = Some(d);
        self
    }

    /// Executes one action (see the module docs for the ordering rule).
    pub fn execute(&mut self, action: Action<PeerId>) -> Result<Executed, ExecError> {
        match action {
            Action::Wal(input) => {
                if let Some((h, rec)) = wal::encode_input(&input) {
                    self.store.append_wal(h, &rec)?;
                }
            }
            Action::PersistSigningState(s) => {
                let wal_first = self.wal_sync.before(&s);
                self.store
                    .persist_signing_state(&s, wal_first)
                    .map_err(ExecError::Persist)?
            }
            Action::BroadcastProposal(p) => {
                debug!(height = p.height, round = p.round, "proposing");
                self.net.broadcast(&msg(Kind::Proposal(*p)));
            }
            Action::BroadcastVote(v) => self.broadcast_vote(v),
            Action::BroadcastEvidence(ev) => {
                self.net.broadcast(&msg(Kind::Evidence(ev)));
            }
            Action::SendProposal { peer, proposal } => {
                self.net.send(peer, &msg(Kind::Proposal(*proposal)));
            }
            Action::SendVote { peer, vote } => self.net.send(peer, &msg(Kind::Vote(vote))),
            Action::ScheduleTimeout {
                timeout,
                duration_ms,
            } => {
                debug!(?timeout, duration_ms, "timeout scheduled");
                self.schedule(timeout, duration_ms)
            }
            Action::PersistEvidence(id, ev) => {
                if self.store.persist_evidence(&id, &ev)? {
                    log_new_evidence(&ev);
                    Metrics::inc(&self.metrics.evidence_seen);
                }
            }
            Action::Commit(record) => return Ok(Executed::Commit(record)),
            Action::RequestBlocks { peer, from, count } => {
                debug!(%peer, from, count, "requesting blocks");
                let req = pb::BlockRequest {
                    from_height: from,
                    count,
                };
                self.net.send(peer, &msg(Kind::BlockRequest(req)));
            }
            Action::Penalize { peer, fault } => self.penalize(peer, fault),
            Action::Rejected(r) => debug!(reason = %r, "consensus rejected an input"),
            Action::InvalidBlock {
                height,
                round,
                error,
            } => info!(height, round, %error, "invalid block proposed; prevoting nil"),
        }
        Ok(Executed::Done)
    }

    /// The votes the host signed itself since the last call, for the
    /// engine's record of what this key signed.
    pub fn take_host_signed(&mut self) -> Vec<pb::Vote> {
        std::mem::take(&mut self.host_signed)
    }

    fn broadcast_vote(&mut self, v: pb::Vote) {
        debug!(
            height = v.height,
            round = v.round,
            kind = v.vote_type,
            nil = v.block_hash.is_empty(),
            "voting"
        );
        if let Some(twin) = self.double_signer.as_mut().and_then(|d| d.twin(&v)) {
            self.host_signed.push(twin.clone());
            self.net.broadcast(&msg(Kind::Vote(twin)));
        }
        self.net.broadcast(&msg(Kind::Vote(v)));
    }

    /// Every fault is counted by reason and charged to the peer's score
    /// (`transport::score`: points per reason, decaying; banned past the
    /// threshold). The engine reports only inputs that *failed* a check —
    /// a stale or duplicate message is ignored, never charged — so an
    /// honest peer is never charged, and a consensus rejection (a bad
    /// signature, a vote from outside the set) is charged like the rest.
    fn penalize(&self, peer: PeerId, fault: PeerFault) {
        let (reason, charge) = match &fault {
            PeerFault::Consensus(_) => (PenaltyReason::Consensus, ChargeReason::Consensus),
            PeerFault::BadBlock(_) => (PenaltyReason::BadBlock, ChargeReason::BadBlock),
            PeerFault::Unsolicited => (PenaltyReason::Unsolicited, ChargeReason::Unsolicited),
            PeerFault::FalseHeight => (PenaltyReason::FalseHeight, ChargeReason::FalseHeight),
            PeerFault::BadEvidence(_) => (PenaltyReason::BadEvidence, ChargeReason::BadEvidence),
            PeerFault::Malformed(_) => (PenaltyReason::Malformed, ChargeReason::Malformed),
        };
        self.metrics.penalty(reason);
        self.net.charge(peer, charge, fault.to_string());
    }

    fn schedule(&self, timeout: Timeout, duration_ms: u64) {
        let tx = self.timers.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(duration_ms)).await;
            // The runner may have stopped; a late timeout is then moot.
            let _ = tx.send(timeout).await;
        });
    }
}

#[cfg(test)]
mod tests;
