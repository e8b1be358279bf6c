//! What the engine asks its host to do.

use super::block_rules::BlockError;
use crate::certificate::CommitCertificate;
use crate::consensus::{Input, RejectReason, SigningState, Timeout};
use crate::crypto::Hash;
use crate::ledger::BlockResult;
use crate::types::{Height, Round};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;

/// An action for the host, executed in the order given.
// `Wal` carries a whole input (a proposal with its block); actions are
// consumed at once, never stored in bulk, so boxing it would only cost an
// allocation per record.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Action<P> {
    /// Append this input of the current height to the WAL (before anything
    /// after it is sent; the next fsync makes it durable). Our own
    /// proposals and votes are logged too, right before they are sent (and
    /// after the signing state that allows them), so that a restarted core
    /// has them again and gossips them.
    Wal(Input),
    /// Make this signing state durable (fsync) before any later broadcast.
    PersistSigningState(SigningState),
    /// Send to every peer.
    BroadcastProposal(Box<pb::Proposal>),
    /// Send to every peer.
    BroadcastVote(pb::Vote),
    /// Send to every peer (new evidence, and pending evidence on every tick).
    BroadcastEvidence(pb::Evidence),
    /// Send to one peer (the height so far, to a validator that connected).
    SendProposal {
        /// The peer.
        peer: P,
        /// A proposal of the current height, with its block.
        proposal: Box<pb::Proposal>,
    },
    /// Send to one peer (the height so far, to a validator that connected).
    SendVote {
        /// The peer.
        peer: P,
        /// A verified vote of the current height.
        vote: pb::Vote,
    },
    /// Call [`super::Engine::on_timeout`] with `timeout` after `duration_ms`.
    ScheduleTimeout {
        /// Height, round and step, passed back to `on_timeout`.
        timeout: Timeout,
        /// Milliseconds to wait before the call; grows with the round.
        duration_ms: u64,
    },
    /// Keep this evidence-pool entry across restarts (by its id).
    PersistEvidence(Hash, pb::Evidence),
    /// A height was decided and applied to the ledger: write the record in
    /// ONE durable transaction, then start the next height with
    /// [`super::Engine::start_height`] after `timeout_commit`.
    Commit(Box<CommitRecord>),
    /// Ask `peer` for blocks `from ..= from + count − 1`.
    RequestBlocks {
        /// The peer.
        peer: P,
        /// First height.
        from: Height,
        /// How many.
        count: u32,
    },
    /// `peer` sent something that failed a check: charge it.
    Penalize {
        /// The sender.
        peer: P,
        /// What it did.
        fault: PeerFault,
    },
    /// The core rejected an input (observability only).
    Rejected(RejectReason),
    /// A proposed block broke a content rule; we prevote nil (observability).
    InvalidBlock {
        /// Height of the proposed block, the one under way.
        height: Height,
        /// Round of the proposal.
        round: Round,
        /// The rule broken.
        error: BlockError,
    },
}

/// What a peer did wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerFault {
    /// A proposal or vote failed the core's checks (signature, proposer...).
    #[error("consensus message rejected: {0}")]
    Consensus(RejectReason),
    /// A block (relayed proposal body or sync response) broke a content rule.
    #[error("bad block: {0}")]
    BadBlock(BlockError),
    /// A sync response nobody asked it for.
    #[error("unsolicited block response")]
    Unsolicited,
    /// It claimed a height and then served nothing above ours, or nothing
    /// within `sync::REQUEST_TIMEOUT_MS`.
    #[error("announced a height it did not serve")]
    FalseHeight,
    /// Evidence that does not verify.
    #[error("invalid evidence: {0}")]
    BadEvidence(String),
    /// A structurally broken message.
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

/// Everything one decided height writes, in one durable transaction: the
/// block, its certificate, the leaves of the state it changed, the seed, the transaction
/// outcomes, the validator-set change and the evidence-pool change.
#[derive(Debug, Clone)]
pub struct CommitRecord {
    /// The decided height; the node's latest height once written.
    pub height: Height,
    /// Round of the certificate.
    pub round: Round,
    /// The decided block, as the ledger applied it.
    pub block: pb::Block,
    /// Header hash of the block, the value its certificate signs.
    pub block_hash: Hash,
    /// The certificate that commits it.
    pub certificate: CommitCertificate,
    /// seed_height.
    pub seed: Hash,
    /// The leaves the block changed (new value, or `None`: removed),
    /// taken out of `result.end.state_changes`: applied to the stored
    /// leaves of the state before the block, they give the state after it.
    pub state_changes: Vec<crate::ledger::LeafChange>,
    /// The app hash of that state.
    pub app_hash: Hash,
    /// Evidence results, transaction receipts, payouts, the next set.
    pub result: BlockResult,
    /// The validator set of `height + 2` when it differs from that of
    /// `height + 1` (what the store serves as a set change).
    pub validator_set_change: Option<(Height, ValidatorSet)>,
    /// Evidence-pool entries to delete (included, expired or moot).
    pub evidence_removed: Vec<Hash>,
}
