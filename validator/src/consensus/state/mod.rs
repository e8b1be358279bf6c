//! The Tendermint state machine (Buchman, Kwon, Milosevic 2018, Algorithm 1)
//! with voting power, as a pure event-in / actions-out core.
//!
//! See the module documentation of [`crate::consensus`] for the API contract.
//! The "upon" rules of the paper are evaluated after every input by
//! [`Consensus::run_rules`] until none fires; the line numbers in comments
//! refer to Algorithm 1 of the paper.

mod decide;
mod held_blocks;
mod interface;
mod proposal;
mod rounds;
mod rules;
mod signing;
mod votes;

pub use held_blocks::PAST_ROUNDS_KEPT;
pub use interface::{
    CarriedCommit, ConsensusConfig, Decision, HeightParams, Input, Output, RejectReason, Stats,
    Step, TestFault,
};
pub use proposal::PROPOSAL_ROUNDS_AHEAD;

use super::buffer::{Buffered, FutureBuffer};
use super::evidence::EvidenceLog;
use super::signed_points::SignedPoints;
use super::signing_state::SigningState;
use super::vote_set::{Value, VoteSet};
use crate::crypto::{Hash, SecretKey, ZERO_HASH, hash::hash_from_slice, sha3_256_parts};
use crate::types::{Address, ChainId, Height, Round, VoteType};
use agora_proto::v1 as pb;
use held_blocks::HeldBlocks;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
struct ProposalEntry {
    block_hash: Hash,
    pol_round: Option<Round>,
    signed: pb::SignedProposal,
}

#[derive(Debug)]
struct HeightState {
    params: HeightParams,
    my_index: Option<usize>,
    round: Round,
    step: Step,
    locked: Option<(Hash, Round)>,
    valid: Option<(Hash, Round)>,
    proposals: BTreeMap<Round, ProposalEntry>,
    /// Blocks of verified proposals (and our own), past rounds' released
    /// ([`held_blocks`]).
    blocks: HeldBlocks,
    validity: BTreeMap<Hash, bool>,
    validation_requested: BTreeSet<Hash>,
    votes: BTreeMap<(Round, VoteType), VoteSet>,
    prevote_timeout_done: BTreeSet<Round>,
    precommit_timeout_done: BTreeSet<Round>,
    line36_done: BTreeSet<Round>,
    awaiting_content: Option<Round>,
    decided: bool,
    /// VRF output of each block whose VRF proof was verified (or made by
    /// us): a re-proposal of the block skips the check, the decision skips
    /// re-decoding the proof.
    vrf_outputs: BTreeMap<Hash, Hash>,
    /// The vote of (round, type) this validator owed when signing was not
    /// allowed (its signing gate closed), cast nil by
    /// [`Input::SigningResumed`] if it is still the current step's.
    missed_vote: Option<(Round, VoteType)>,
}

/// The consensus core of one validator (or of an observer without a key).
pub struct Consensus {
    config: ConsensusConfig,
    chain: ChainId,
    key: Option<SecretKey>,
    address: Option<Address>,
    /// Secret salt of the weights of randomised multi-pairing checks,
    /// derived from the key (None for an observer, which checks separately).
    verify_salt: Option<Hash>,
    signing: Option<SigningState>,
    /// The host's signing gate allows signing ([`super::signing_gate`]).
    signing_allowed: bool,
    hs: Option<HeightState>,
    /// The vote messages this validator signed last, hashed to G2.
    signed: SignedPoints,
    /// The carried certificate the host made ready for the next proposal
    /// it feeds (taken by that proposal, whatever its block).
    carried_offer: Option<CarriedCommit>,
    buffer: FutureBuffer,
    evidence: EvidenceLog,
    stats: Stats,
}

impl std::fmt::Debug for Consensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consensus")
            .field("address", &self.address)
            .field("height", &self.height())
            .field("round", &self.round())
            .finish()
    }
}

fn value_of(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return Some(None);
    }
    let h = hash_from_slice(bytes)?;
    Some(if h == ZERO_HASH { None } else { Some(h) })
}

impl Consensus {
    /// A core for `chain`. `secret_key` is None for a non-voting observer;
    /// `restored_signing_state` is the last state the host persisted.
    pub fn new(
        config: ConsensusConfig,
        chain: ChainId,
        secret_key: Option<SecretKey>,
        restored_signing_state: Option<SigningState>,
    ) -> Self {
        let address = secret_key.as_ref().map(|k| Address::of(&k.public_key()));
        let verify_salt = secret_key
            .as_ref()
            .map(|k| sha3_256_parts(&[VERIFY_SALT_PREFIX, &k.to_bytes()[..]]));
        Self {
            config,
            chain,
            key: secret_key,
            address,
            verify_salt,
            signing: restored_signing_state,
            signing_allowed: true,
            hs: None,
            signed: SignedPoints::default(),
            carried_offer: None,
            buffer: FutureBuffer::new(config.buffer),
            evidence: EvidenceLog::default(),
            stats: Stats::default(),
        }
    }

    /// Current height (0 before the first `StartHeight`).
    pub fn height(&self) -> Height {
        self.hs.as_ref().map_or(0, |h| h.params.height)
    }

    /// Current round.
    pub fn round(&self) -> Round {
        self.hs.as_ref().map_or(0, |h| h.round)
    }

    /// Current step.
    pub fn step(&self) -> Step {
        self.hs.as_ref().map_or(Step::Propose, |h| h.step)
    }

    /// Locked value and round.
    pub fn locked(&self) -> Option<(Hash, Round)> {
        self.hs.as_ref().and_then(|h| h.locked)
    }

    /// Valid value and round.
    pub fn valid(&self) -> Option<(Hash, Round)> {
        self.hs.as_ref().and_then(|h| h.valid)
    }

    /// Votes stored at the current height, verified or pending, of every
    /// round and type: what its vote sets hold (bounded as `state/votes.rs`
    /// says; read by the tests of that bound).
    pub fn stored_votes(&self) -> usize {
        self.hs
            .as_ref()
            .map_or(0, |h| h.votes.values().map(VoteSet::len).sum())
    }

    /// Whether the current height is decided.
    pub fn is_decided(&self) -> bool {
        self.hs.as_ref().is_some_and(|h| h.decided)
    }

    /// The last signing state (what the host has been told to persist).
    pub fn signing_state(&self) -> Option<SigningState> {
        self.signing
    }

    /// Advances the double-sign guard to `s`, a signature of this key that
    /// the restored signing state does not cover (found in the WAL after a
    /// crash: see `engine::restart`, which says when the host persists it).
    /// Returns `s` if the guard moved; None if `s` is not past the current
    /// state (it is covered already, or it conflicts with it and the guard
    /// keeps what was persisted). Call it before the height starts.
    pub fn adopt_signature(&mut self, s: SigningState) -> Option<SigningState> {
        let at = |x: &SigningState| (x.height, x.round, x.step);
        if self.signing.is_some_and(|cur| at(&s) <= at(&cur)) {
            return None;
        }
        self.signing = Some(s);
        Some(s)
    }

    /// Whether a vote of the current step went unsigned while signing was
    /// not allowed (see [`Input::SigningResumed`]).
    pub fn owes_vote(&self) -> bool {
        self.hs.as_ref().is_some_and(|hs| hs.missed_vote.is_some())
    }

    /// Allows or forbids every signature (the engine's signing gate). A
    /// forbidden signature is refused like one the guard refuses.
    pub fn set_signing_allowed(&mut self, allowed: bool) {
        self.signing_allowed = allowed;
    }

    /// This validator's address, if it has a key.
    pub fn address(&self) -> Option<Address> {
        self.address
    }

    /// What this validator signed recently, hashed to G2: the host's checks
    /// of the same bytes (the certificate carried by the next block) start
    /// from these points instead of hashing again.
    pub fn signed_points(&self) -> &SignedPoints {
        &self.signed
    }

    /// The configured maximum rounds ahead kept.
    pub fn config(&self) -> &ConsensusConfig {
        &self.config
    }

    /// Counters, including the vote checks of the current height.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        if let Some(hs) = &self.hs {
            for vs in hs.votes.values() {
                let (a, b) = vs.checks();
                s.aggregate_checks += a;
                s.single_checks += b;
            }
        }
        s
    }

    /// The verified proposals and votes of the current height, in a fixed
    /// order: what a validator that (re)connects is sent at once
    /// (`Engine::on_peer_connected`), so it meets everything the height
    /// holds, its twin's messages included.
    pub fn gossip_messages(&self) -> (Vec<pb::Proposal>, Vec<pb::Vote>) {
        self.proposals_and_votes(|_| true)
    }

    /// What the host re-sends every tick, which is what lets every honest
    /// node eventually see the polkas others saw (including an
    /// equivocator's votes that reached only some nodes): every verified
    /// vote (each its signer's own signature, so no peer charges the relay
    /// for it), but of the proposals only those that can still matter: the
    /// current round's, and the latest one carrying the locked block and
    /// the valid block (a later round may re-propose them).
    ///
    /// Why not every proposal: each carries its block (up to 4 MiB), so a
    /// height that went many rounds cost more at every tick with each
    /// round. Seen at 5,000 tx/s offered on 2 cores: 17 rounds of ~2 MB
    /// proposals re-sent, hashed and copied every second by every
    /// validator kept all four at one height for 100 s, until they were
    /// stopped. A node that missed the block of an older round that is then
    /// decided fetches it by block sync once the others move on.
    pub fn regossip_messages(&self) -> (Vec<pb::Proposal>, Vec<pb::Vote>) {
        let Some(hs) = self.hs.as_ref() else {
            return (Vec::new(), Vec::new());
        };
        let mut rounds = BTreeSet::from([hs.round]);
        for (hash, _) in [hs.locked, hs.valid].into_iter().flatten() {
            if let Some((r, _)) = hs
                .proposals
                .iter()
                .rev()
                .find(|(_, e)| e.block_hash == hash)
            {
                rounds.insert(*r);
            }
        }
        debug_assert!(rounds.len() <= 3);
        self.proposals_and_votes(|r| rounds.contains(&r))
    }

    /// The verified proposals of the rounds `keep` accepts, and every
    /// verified vote (each verified alone or in a weighted check, so each
    /// is its signer's signature: `consensus::vote_set` docs).
    fn proposals_and_votes(
        &self,
        keep: impl Fn(Round) -> bool,
    ) -> (Vec<pb::Proposal>, Vec<pb::Vote>) {
        let Some(hs) = self.hs.as_ref() else {
            return (Vec::new(), Vec::new());
        };
        let proposals = hs
            .proposals
            .iter()
            .filter(|(r, _)| keep(**r))
            .filter_map(|(_, e)| {
                Some(pb::Proposal {
                    height: e.signed.height,
                    round: e.signed.round,
                    pol_round: e.signed.pol_round,
                    block: Some(hs.blocks.get(&e.block_hash)?.clone()),
                    proposer_address: e.signed.proposer_address.clone(),
                    signature: e.signed.signature.clone(),
                })
            })
            .collect();
        (proposals, self.verified_votes())
    }

    /// Whether the current height holds the block hashing to `block_hash`
    /// (from a proposal whose signature verified, or our own).
    pub fn holds_block(&self, block_hash: &Hash) -> bool {
        self.hs
            .as_ref()
            .is_some_and(|hs| hs.blocks.contains(block_hash))
    }

    /// Whether the current height stores exactly this vote (its value and
    /// signature bytes), pending or verified.
    pub fn holds_vote(&self, v: &pb::Vote) -> bool {
        let Some(hs) = self.hs.as_ref().filter(|hs| hs.params.height == v.height) else {
            return false;
        };
        let (Some(vote_type), Some(value)) =
            (VoteType::from_i32(v.vote_type), value_of(&v.block_hash))
        else {
            return false;
        };
        let idx = Address::from_slice(&v.validator_address)
            .ok()
            .and_then(|a| hs.params.validator_set.index_of(&a));
        idx.is_some_and(|i| {
            hs.votes
                .get(&(v.round, vote_type))
                .is_some_and(|vs| vs.contains(i, &value, &v.signature))
        })
    }

    /// Votes of the current height dropped as bad since the last call
    /// (each failed a check alone): the host charges whoever delivered them.
    pub fn take_failed_alone(&mut self) -> Vec<pb::Vote> {
        self.hs.as_mut().map_or_else(Vec::new, |hs| {
            hs.votes
                .values_mut()
                .flat_map(|vs| vs.take_failed_alone())
                .collect()
        })
    }

    /// The verified votes of the current height, without the proposals
    /// (whose blocks [`Consensus::gossip_messages`] would copy).
    pub fn verified_votes(&self) -> Vec<pb::Vote> {
        self.hs.as_ref().map_or_else(Vec::new, |hs| {
            hs.votes
                .values()
                .flat_map(|vs| vs.verified_votes())
                .cloned()
                .collect()
        })
    }

    /// Messages buffered for future heights, and how many were dropped.
    pub fn buffered(&self) -> (usize, u64) {
        (self.buffer.len(), self.buffer.dropped())
    }

    /// Feeds one event and returns the resulting actions, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::StartHeight(p) => self.start_height(*p, &mut out),
            Input::Proposal(p) => self.on_proposal(p, &mut out),
            Input::Vote(v) => self.on_vote(v, &mut out),
            Input::TimeoutFired(t) => self.on_timeout(t, &mut out),
            Input::BlockValidity {
                height,
                block_hash,
                valid,
                ..
            } => {
                if let Some(hs) = self.hs.as_mut()
                    && hs.params.height == height
                    && hs.blocks.contains(&block_hash)
                {
                    hs.validity.insert(block_hash, valid);
                }
            }
            Input::ProposalContent {
                height,
                round,
                block,
            } => self.on_content(height, round, block, &mut out),
            Input::SigningResumed => self.resume_signing(&mut out),
            Input::SyncedBlock {
                block,
                certificate,
                verified_against,
            } => self.on_synced(*block, certificate, verified_against, &mut out),
        }
        self.run_rules(&mut out);
        out
    }

    fn reject(&mut self, reason: RejectReason, out: &mut Vec<Output>) {
        self.stats.rejected += 1;
        out.push(Output::Rejected(reason));
    }

    /// Where a message of (height, round) goes: Some(()) to process now.
    fn admit(&mut self, height: Height, round: Round, msg: Buffered) -> Option<Buffered> {
        let current = self.height();
        if self.hs.is_none() || height > current {
            if !self.buffer.push(current, height, msg) {
                self.stats.ignored += 1;
            }
            return None;
        }
        if height < current || round > self.round().saturating_add(self.config.max_rounds_ahead) {
            self.stats.ignored += 1;
            return None;
        }
        Some(msg)
    }
}

/// Domain prefix of the salt of randomised checks (derived from the key).
const VERIFY_SALT_PREFIX: &[u8] = b"agora/verify-salt/v1";
