//! Tendermint consensus (DESIGN §6) as a pure state machine.
//!
//! # Contract
//!
//! The host creates one [`Consensus`] per validator with
//! [`Consensus::new`]`(config, chain_id, secret_key, restored_signing_state)`
//! and feeds it [`Input`]s with [`Consensus::handle`], which returns the
//! [`Output`]s to carry out, in order:
//!
//! * `StartHeight` begins a height (validator set, seed_{h−1}, parent hash).
//!   The core buffers messages for later heights (bounded, [`buffer`]) and
//!   replays them, still unverified, when their height starts.
//! * `Proposal`, `Vote` come from the network, already decoded from protobuf
//!   by the host, and are verified here: the proposer must be the lottery's
//!   winner of (h, r), the proposal signature and the header's VRF proof must
//!   verify (one randomised two-pair check for a keyed core), and vote
//!   signatures are decoded only when verified, lazily in aggregate, with one
//!   subgroup check of each aggregate ([`vote_set`]). Rejections come out as
//!   `Output::Rejected` and in [`Stats`].
//! * `TimeoutFired` returns a timeout requested by `ScheduleTimeout`.
//! * `RequestProposal` asks the host for a block template, answered with
//!   `ProposalContent`; `ValidateBlock` asks for a verdict, answered with
//!   `BlockValidity`.
//! * `Decided` carries the block, its [`CommitCertificate`](crate::CommitCertificate)
//!   built from the quorum's precommits, and the next seed. The host executes
//!   the block and sends `StartHeight` for the next height. `SyncedBlock` lets
//!   a lagging host decide from a block and certificate fetched from a peer.
//! * `EvidenceFound` carries canonical, deduplicated double-sign evidence.
//!
//! **Persist-before-send rule:** `PersistSigningState` must be durable before
//! the host sends any `BroadcastProposal`/`BroadcastVote` that follows it in
//! the same vector. On restart the host passes the last persisted state back
//! in; the core never signs a different thing for a (height, round, step) it
//! signed before ([`signing_state`]).
//!
//! [`Consensus::regossip_messages`] returns the current height's verified
//! votes (each its signer's own signature: `vote_set` docs) and the
//! proposals that can still matter; the host re-sends them
//! periodically (as Tendermint's reactor gossips from its vote sets), which
//! is what makes messages lost before the network healed eventually arrive
//! everywhere. [`Consensus::gossip_messages`] holds every proposal too, for
//! a validator that connects.
//!
//! Votes are checked lazily, a quorum at once with random weights, by
//! default ([`VerifyMode`]); votes found bad that way are dropped and show in the check counters of
//! [`Stats`] rather than as `Output::Rejected`; the host takes them with
//! [`Consensus::take_failed_alone`] to charge whoever delivered them.
//!
//! [`TestFault`] names deliberately broken rules for the simulator's negative
//! control; its only variant without the `test-faults` feature is `None`.
//!
//! The core is deterministic: the same inputs give the same outputs (all
//! internal maps are ordered).

pub mod buffer;
pub mod checked_evidence;
pub mod evidence;
pub mod signed_points;
pub mod signing_gate;
pub mod signing_state;
pub mod state;
pub mod timeouts;
pub mod vote_set;

#[cfg(test)]
mod tests;

pub use buffer::BufferConfig;
pub use checked_evidence::CheckedEvidence;
pub use evidence::verify_evidence;
pub use signing_gate::{GateStatus, SigningGate, WaitReason};
pub use signing_state::{SignStep, SigningState, WalSync};
pub use state::{
    CarriedCommit, Consensus, ConsensusConfig, Decision, HeightParams, Input, Output,
    PAST_ROUNDS_KEPT, PROPOSAL_ROUNDS_AHEAD, RejectReason, Stats, Step, TestFault,
};
pub use timeouts::{Timeout, TimeoutConfig, TimeoutStep};
pub use vote_set::VerifyMode;
