//! What the core takes and gives: its configuration, the inputs the host
//! feeds it, the actions it asks of the host, and the counters it keeps.

use super::super::buffer::BufferConfig;
use super::super::signing_state::SigningState;
use super::super::timeouts::{Timeout, TimeoutConfig};
use super::super::vote_set::VerifyMode;
use crate::certificate::CommitCertificate;
use crate::crypto::{Hash, PublicKey, Signature};
use crate::types::{Address, Height, Round};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;

/// A deliberately broken rule for the simulator's negative control. Without
/// the `test-faults` feature only [`TestFault::None`] exists, so production
/// code cannot even name a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TestFault {
    /// The protocol as specified.
    #[default]
    None,
    /// Quorum is half the power instead of more than two thirds.
    #[cfg(feature = "test-faults")]
    HalfQuorum,
    /// Prevote ignores the lock.
    #[cfg(feature = "test-faults")]
    IgnoreLock,
    /// Header rules are not enforced: the core accepts a fresh block whose
    /// `proposal_round` is not its round, and the engine accepts wrong
    /// `proposal_round`, `time_ms` and `app_hash`.
    #[cfg(feature = "test-faults")]
    IgnoreHeaderRules,
    /// The engine applies synced blocks without checking body against header.
    #[cfg(feature = "test-faults")]
    SkipSyncBodyCheck,
    /// The engine only broadcasts the evidence its own core finds (the old
    /// behaviour) instead of keeping it in its pool.
    #[cfg(feature = "test-faults")]
    DropOwnEvidence,
    /// A restarted engine does not adopt the signatures of its WAL that the
    /// signing state misses (see `engine::restart`).
    #[cfg(feature = "test-faults")]
    ForgetLoggedSignatures,
    /// The host does not make its WAL durable before a precommit's
    /// signing state (`SigningState::wal_first` ignored there). Read by
    /// the simulator's host, which plays the node's store.
    #[cfg(feature = "test-faults")]
    SkipWalSyncBeforePrecommit,
    /// The engine does not record the votes it signs in its key watch, so
    /// their relayed copies look like another instance's signatures.
    #[cfg(feature = "test-faults")]
    ForgetOwnVotes,
    /// The engine never starts a height on its proposal before the host's
    /// `timeout_commit` pause ends (`engine::early_start`).
    #[cfg(feature = "test-faults")]
    NoEarlyStart,
    /// A value's pending votes are verified by their plain sum (one
    /// FastAggregateVerify, the old rule) and each is then taken as its
    /// signer's signature: cancelling errors count, are relayed, and win a
    /// conflict with the real vote's bytes (`vote_set` docs).
    #[cfg(feature = "test-faults")]
    TrustAggregatedBytes,
    /// An equivocator's conflicting votes are kept for every block this
    /// node knows in every round (the old rule), not only for the blocks
    /// votes of that round can matter for: the vote sets then grow with
    /// the square of the rounds (`state/votes.rs`).
    #[cfg(feature = "test-faults")]
    KeepVotesForKnownBlocks,
    /// A node joining by state sync keeps chunks without checking them
    /// against the manifest (`state_sync::join::Join::skip_chunk_checks`).
    /// Read by the simulator's host, which runs the join.
    #[cfg(feature = "test-faults")]
    SkipChunkChecks,
}

/// Configuration of the core. Build it with `..Default::default()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsensusConfig {
    /// Timeout durations.
    pub timeouts: TimeoutConfig,
    /// How vote signatures are checked.
    pub verify_mode: VerifyMode,
    /// Messages for rounds more than this above the current one are dropped
    /// (bounds the vote sets kept per height).
    pub max_rounds_ahead: Round,
    /// Limits of the future-height buffer.
    pub buffer: BufferConfig,
    /// A broken rule for negative controls; `TestFault::None` in production.
    pub test_fault: TestFault,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        Self {
            timeouts: TimeoutConfig::default(),
            verify_mode: VerifyMode::Aggregate,
            max_rounds_ahead: 32,
            buffer: BufferConfig::default(),
            test_fault: TestFault::None,
        }
    }
}

/// What the host knows when a height starts.
#[derive(Debug, Clone)]
pub struct HeightParams {
    /// The height to decide.
    pub height: Height,
    /// The validator set of that height.
    pub validator_set: ValidatorSet,
    /// seed_{height−1}.
    pub prev_seed: Hash,
    /// Hash of block height−1 (zero hash for height 1).
    pub parent_hash: Hash,
    /// Certificate of block height−1 (None for height 1), for the host's block template.
    pub last_commit: Option<CommitCertificate>,
}

/// The certificate of the previous height carried by a proposed block,
/// made ready by the host for the proposal's one multi-pairing
/// ([`crate::crypto::bls::verify_weighted`]): the host has decoded it and
/// done every check but the pairing (it commits the parent, its bitmap fits
/// the parent's set, its signers hold more than 2/3 of the power) and summed
/// the signers' keys. Offered with `Consensus::offer_carried_commit` just
/// before the proposal is fed; used only for the block it names.
#[derive(Debug, Clone)]
pub struct CarriedCommit {
    /// Header hash of the proposed block that carries the certificate.
    pub block_hash: Hash,
    /// Hash of the certificate (the block's `last_commit_hash`).
    pub certificate_hash: Hash,
    /// The sum of the signers' keys, from the parent height's set.
    pub key: PublicKey,
    /// The precommit signing bytes the signers signed.
    pub msg: Vec<u8>,
    /// The certificate's aggregate signature.
    pub sig: Signature,
}

/// An event fed to the core.
#[derive(Debug, Clone)]
pub enum Input {
    /// Start deciding a height (after the previous one was decided and executed).
    StartHeight(Box<HeightParams>),
    /// A proposal received from the network.
    Proposal(pb::Proposal),
    /// A vote received from the network.
    Vote(pb::Vote),
    /// A timeout scheduled by `Output::ScheduleTimeout` expired.
    TimeoutFired(Timeout),
    /// The host's verdict on a block asked about with `Output::ValidateBlock`.
    BlockValidity {
        /// Height of the block the verdict is about.
        height: Height,
        /// Round of the proposal that carried the block, as in `Output::ValidateBlock`.
        round: Round,
        /// Header hash of the block; the verdict is kept under it.
        block_hash: Hash,
        /// Whether its content is valid.
        valid: bool,
    },
    /// The block content asked for with `Output::RequestProposal`; the core
    /// fills `proposer_address` and `vrf_proof` into the header and signs.
    ProposalContent {
        /// Height the content was requested for; ignored unless it is still current.
        height: Height,
        /// Round the content was requested for; ignored unless the core still awaits it.
        round: Round,
        /// The block template.
        block: pb::Block,
    },
    /// Signing is allowed again (the host's signing gate opened while this
    /// height was under way): the vote of the current round and step that
    /// was not signed while it was closed is cast now, nil. Without it a
    /// validator whose gate opened mid-step would sit in the step without
    /// its vote, and a set that needs that vote for two thirds of any
    /// votes would wait forever: nothing times out a step short of them.
    /// Nil is always safe to vote (it neither locks nor breaks a lock).
    SigningResumed,
    /// A block and its certificate obtained by block sync; decides the
    /// current height if the certificate verifies.
    SyncedBlock {
        /// The block (boxed: the largest variant otherwise).
        block: Box<pb::Block>,
        /// Precommits for the block, verified against the height's validator set.
        certificate: CommitCertificate,
        /// The hash of the validator set this very certificate value was
        /// already verified against, for its height and block hash (the
        /// engine's batched check of queued synced blocks), or None. The
        /// signature is not checked again only when this equals the hash
        /// of the height's set; anything else is verified here as before.
        verified_against: Option<Hash>,
    },
}

/// Why an input was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// A field is missing or has the wrong size.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The sender is not in the validator set.
    #[error("{0} is not a validator")]
    UnknownValidator(String),
    /// The proposal does not come from the lottery's proposer of its round.
    #[error("proposal for round {round} from {got}, the proposer is {expected}")]
    NotProposer {
        /// Round the proposal is for.
        round: Round,
        /// The lottery's proposer of that round.
        expected: Address,
        /// Proposer address the proposal names, hex-encoded.
        got: String,
    },
    /// A signature does not verify or does not decode.
    #[error("bad signature from {0}")]
    BadSignature(String),
    /// The header's VRF proof does not verify.
    #[error("bad VRF proof from {0}")]
    BadVrf(Address),
    /// The header does not fit the height (height, chain id, parent).
    #[error("header does not fit: {0}")]
    BadHeader(&'static str),
    /// A synced block's certificate does not verify.
    #[error("synced certificate rejected: {0}")]
    BadCertificate(String),
}

/// An action for the host.
#[derive(Debug, Clone)]
pub enum Output {
    /// Make this signing state durable. **Ordering rule:** the host must
    /// finish persisting it before it sends any `BroadcastProposal` or
    /// `BroadcastVote` that comes after it in the same output vector.
    PersistSigningState(SigningState),
    /// Send this proposal to every peer.
    BroadcastProposal(Box<pb::Proposal>),
    /// Send this vote to every peer.
    BroadcastVote(pb::Vote),
    /// Fire `Input::TimeoutFired(timeout)` after `duration_ms`.
    ScheduleTimeout {
        /// Height, round and step to hand back in `Input::TimeoutFired`.
        timeout: Timeout,
        /// Milliseconds to wait before firing it; grows with the round.
        duration_ms: u64,
    },
    /// Build block content for (height, round) and answer with `Input::ProposalContent`.
    RequestProposal {
        /// Height the block is for; echoed in `Input::ProposalContent`.
        height: Height,
        /// Round this validator proposes in; echoed in `Input::ProposalContent`.
        round: Round,
    },
    /// Check this block's content and answer with `Input::BlockValidity`.
    ValidateBlock {
        /// Height the block is for; echoed in `Input::BlockValidity`.
        height: Height,
        /// Round of the proposal that carried it; echoed in `Input::BlockValidity`.
        round: Round,
        /// The proposed block whose content the host checks.
        block: Box<pb::Block>,
        /// The hash of the certificate the block carries, when its
        /// signature was verified with the proposal's (the host offered it
        /// with [`CarriedCommit`]): the host need not verify it again.
        carried_commit_verified: Option<Hash>,
    },
    /// The height is decided; the host commits the block and later starts the next height.
    Decided(Box<Decision>),
    /// Double signing was observed; gossip it and hand it to the next proposal.
    EvidenceFound(pb::Evidence),
    /// An input was rejected (observability; no action needed).
    Rejected(RejectReason),
}

/// A decided block.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The height that was decided.
    pub height: Height,
    /// Round of the committing precommits.
    pub round: Round,
    /// The committed block, for the host to execute and store.
    pub block: pb::Block,
    /// Header hash of the block, the value the precommits signed.
    pub block_hash: Hash,
    /// Precommits of more than two thirds of the power that commit the block.
    pub certificate: CommitCertificate,
    /// seed_height, chained from the block's VRF output.
    pub seed: Hash,
}

/// Counters for observability and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Inputs rejected (each also emitted as `Output::Rejected`).
    pub rejected: u64,
    /// Messages for past heights or out-of-window rounds ignored.
    pub ignored: u64,
    /// Signatures the double-sign guard refused.
    pub refused_signatures: u64,
    /// FastAggregateVerify calls on vote groups.
    pub aggregate_checks: u64,
    /// Single-signature checks on votes.
    pub single_checks: u64,
    /// Commit certificates of synced blocks verified and found valid.
    pub synced_certificates_verified: u64,
    /// Certificates carried by proposed blocks verified in the proposal's
    /// own multi-pairing (offered by the host) and found valid.
    pub carried_commits_verified: u64,
}

/// Step of the current round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Waiting for a proposal.
    Propose,
    /// Prevoted.
    Prevote,
    /// Precommitted.
    Precommit,
}
