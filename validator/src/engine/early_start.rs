//! Starting the next height before the host's `timeout_commit` pause ends,
//! when that height's proposal has already arrived.
//!
//! After a commit the host waits `timeout_commit` before it calls
//! [`super::Engine::start_height`]. The pause is the next height's round-0
//! proposer's: late precommits of the decided block keep arriving and widen
//! the certificate its proposal carries (`late_precommits.rs`). Every other
//! node only waits. But operators choose their own `timeout_commit`, so a
//! node's pause can be longer than the proposer's (`agora init` writes
//! 200 ms, a local testnet 50 ms): the proposal then reached it while it
//! still waited and sat in the future buffer until the pause ended, its
//! prevote and precommit went out late, and its precommits were missing
//! from about 40% of the certificates (measured: a validator made with
//! `agora init` joining four testnet validators), costing it rewards and
//! counting toward downtime jail while it was online and signing.
//!
//! So a node that is not the round-0 proposer of the next height starts it
//! as soon as a proposal for it arrives, as CometBFT enters its prevote on
//! a complete proposal during its commit timeout. The round-0 proposer
//! keeps its pause whatever arrives: its waiting is the one that matters,
//! and a round-0 proposal from anyone else is invalid. A forged proposal
//! (checked only once the height starts) can therefore only hurry a node
//! that would not have proposed, which costs that node nothing: its propose
//! timeout starts a little earlier, and the forger is charged when the
//! proposal fails its checks.

use crate::crypto::Hash;
use crate::lottery;
use crate::types::{Address, Height};
use crate::validator_set::ValidatorSet;

/// Whether a node with consensus address `us` (`None`: an observer) starts
/// `height` when a proposal for it arrives during the pause: unless it is
/// that height's round-0 proposer (the set of `height`, the seed of
/// `height − 1`).
pub(super) fn starts_on_proposal(
    us: Option<Address>,
    set: &ValidatorSet,
    prev_seed: &Hash,
    height: Height,
) -> bool {
    let first = lottery::proposer(set, prev_seed, height, 0).address;
    us != Some(first)
}
