//! The Tendermint state machine (Buchman, Kwon, Milosevic 2018, Algorithm 1)
//! with voting power, as a pure event-in / actions-out core.
//!
//! See the module documentation of [`crate::consensus`] for the API contract.
//! The "upon" rules of the paper are evaluated after every input by
//! [`Consensus::run_rules`] until none fires; the line numbers in comments
//! refer to Algorithm 1 of the paper.

use super::buffer::{BufferConfig, Buffered, FutureBuffer};
use super::evidence::{self, EvidenceLog};
use super::signing_state::{self, SignDecision, SignStep, SigningState};
use super::timeouts::{Timeout, TimeoutConfig, TimeoutStep};
use super::vote_set::{Insert, Value, VerifyMode, VoteContext, VoteSet};
use crate::block::header_hash;
use crate::certificate::CommitCertificate;
use crate::crypto::{
    Hash, SecretKey, Signature, ZERO_HASH, bls, hash::hash_from_slice, sha3_256_parts, vrf,
};
use crate::lottery;
use crate::signing::{self, proposal_bytes, vote_bytes};
use crate::types::{Address, ChainId, Height, Power, Round, VoteType};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;
use std::collections::{BTreeMap, BTreeSet};

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
        /// Height of the block.
        height: Height,
        /// Round it was proposed in.
        round: Round,
        /// Its hash.
        block_hash: Hash,
        /// Whether its content is valid.
        valid: bool,
    },
    /// The block content asked for with `Output::RequestProposal`; the core
    /// fills `proposer_address` and `vrf_proof` into the header and signs.
    ProposalContent {
        /// Height.
        height: Height,
        /// Round.
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
        /// Its commit certificate.
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
        /// Round.
        round: Round,
        /// Lottery winner.
        expected: Address,
        /// Claimed sender.
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
        /// The timeout.
        timeout: Timeout,
        /// Its duration.
        duration_ms: u64,
    },
    /// Build block content for (height, round) and answer with `Input::ProposalContent`.
    RequestProposal {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
    },
    /// Check this block's content and answer with `Input::BlockValidity`.
    ValidateBlock {
        /// Height.
        height: Height,
        /// Round it was proposed in.
        round: Round,
        /// The block.
        block: Box<pb::Block>,
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
    /// Height.
    pub height: Height,
    /// Round of the committing precommits.
    pub round: Round,
    /// The block.
    pub block: pb::Block,
    /// Its hash.
    pub block_hash: Hash,
    /// Its commit certificate.
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
    blocks: BTreeMap<Hash, pb::Block>,
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
    /// order, for the host's gossip: re-sending them periodically is what
    /// lets every honest node eventually see the polkas others saw (including
    /// an equivocator's votes that reached only some nodes).
    pub fn gossip_messages(&self) -> (Vec<pb::Proposal>, Vec<pb::Vote>) {
        let Some(hs) = self.hs.as_ref() else {
            return (Vec::new(), Vec::new());
        };
        let proposals = hs
            .proposals
            .values()
            .filter_map(|e| {
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
                    && hs.blocks.contains_key(&block_hash)
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

    // ---- height and round -------------------------------------------------

    fn start_height(&mut self, params: HeightParams, out: &mut Vec<Output>) {
        if self.hs.is_some() && params.height <= self.height() {
            self.stats.ignored += 1;
            return;
        }
        let h = params.height;
        let my_index = self.address.and_then(|a| params.validator_set.index_of(&a));
        // After a restart mid-height, resume at the last signed round: the
        // earlier rounds cannot be voted in again anyway.
        let (first_round, locked) = match self.signing {
            Some(s) if s.height == h => (s.round, s.locked),
            _ => (0, None),
        };
        self.evidence.prune_below(h.saturating_sub(1));
        self.hs = Some(HeightState {
            params,
            my_index,
            round: 0,
            step: Step::Propose,
            locked,
            // A restored lock is also a valid value: there was a polka for it
            // in its round (validRound ≥ lockedRound always holds).
            valid: locked,
            proposals: BTreeMap::new(),
            blocks: BTreeMap::new(),
            validity: BTreeMap::new(),
            validation_requested: BTreeSet::new(),
            votes: BTreeMap::new(),
            prevote_timeout_done: BTreeSet::new(),
            precommit_timeout_done: BTreeSet::new(),
            line36_done: BTreeSet::new(),
            awaiting_content: None,
            decided: false,
            vrf_outputs: BTreeMap::new(),
            missed_vote: None,
        });
        self.start_round(first_round, out);
        for m in self.buffer.take(h) {
            match m {
                Buffered::Proposal(p) => self.on_proposal(*p, out),
                Buffered::Vote(v) => self.on_vote(v, out),
            }
            self.run_rules(out);
        }
    }

    /// StartRound (lines 11–21).
    fn start_round(&mut self, round: Round, out: &mut Vec<Output>) {
        let Some(hs) = self.hs.as_mut() else { return };
        hs.round = round;
        hs.step = Step::Propose;
        hs.awaiting_content = None;
        let h = hs.params.height;
        let proposer =
            lottery::proposer(&hs.params.validator_set, &hs.params.prev_seed, h, round).address;
        if Some(proposer) == self.address {
            match hs.valid {
                Some((v, vr)) if hs.blocks.contains_key(&v) => {
                    let block = hs.blocks[&v].clone();
                    self.sign_and_send_proposal(round, vr as i32, block, v, out);
                }
                _ => {
                    hs.awaiting_content = Some(round);
                    out.push(Output::RequestProposal { height: h, round });
                }
            }
        }
        // Also scheduled for the proposer: if its host never answers, the
        // round still ends.
        self.schedule(TimeoutStep::Propose, round, out);
    }

    fn schedule(&self, step: TimeoutStep, round: Round, out: &mut Vec<Output>) {
        out.push(Output::ScheduleTimeout {
            timeout: Timeout {
                height: self.height(),
                round,
                step,
            },
            duration_ms: self.config.timeouts.duration_ms(step, round),
        });
    }

    // ---- signing ------------------------------------------------------------

    fn guarded_sign(
        &mut self,
        step: SignStep,
        round: Round,
        bytes: &[u8],
        value: Hash,
        out: &mut Vec<Output>,
    ) -> Option<Signature> {
        let key = self.key.as_ref()?;
        let hs = self.hs.as_ref()?;
        if !self.signing_allowed {
            self.stats.refused_signatures += 1;
            return None;
        }
        let req = signing_state::SignRequest {
            height: hs.params.height,
            round,
            step,
            bytes,
            value,
            locked: hs.locked,
        };
        match signing_state::check(self.signing.as_ref(), &req) {
            SignDecision::SignNew(s) => {
                self.signing = Some(s);
                out.push(Output::PersistSigningState(s));
                Some(key.sign(bytes))
            }
            SignDecision::SignAgain => Some(key.sign(bytes)),
            SignDecision::Refuse => {
                self.stats.refused_signatures += 1;
                None
            }
        }
    }

    fn sign_and_send_proposal(
        &mut self,
        round: Round,
        pol_round: i32,
        block: pb::Block,
        block_hash: Hash,
        out: &mut Vec<Output>,
    ) {
        let (Some(address), Some(h)) = (self.address, self.hs.as_ref().map(|h| h.params.height))
        else {
            return;
        };
        let bytes = proposal_bytes(&self.chain, h, round, pol_round, &block_hash);
        let Some(sig) = self.guarded_sign(SignStep::Propose, round, &bytes, block_hash, out) else {
            return;
        };
        let proposal = pb::Proposal {
            height: h,
            round,
            pol_round,
            block: Some(block.clone()),
            proposer_address: address.0.to_vec(),
            signature: sig.to_bytes().to_vec(),
        };
        let signed = evidence::signed_proposal(&proposal, &block_hash);
        if let Some(hs) = self.hs.as_mut() {
            hs.proposals.entry(round).or_insert(ProposalEntry {
                block_hash,
                pol_round: u32::try_from(pol_round).ok(),
                signed,
            });
            hs.blocks.insert(block_hash, block);
            // The host built it; our own block needs no second opinion.
            hs.validity.entry(block_hash).or_insert(true);
        }
        out.push(Output::BroadcastProposal(Box::new(proposal)));
    }

    fn cast_vote(&mut self, vote_type: VoteType, value: Value, out: &mut Vec<Output>) {
        let Some(hs) = self.hs.as_ref() else { return };
        let (Some(address), Some(idx)) = (self.address, hs.my_index) else {
            return;
        };
        let (h, r) = (hs.params.height, hs.round);
        if !self.signing_allowed {
            self.stats.refused_signatures += 1;
            if let Some(hs) = self.hs.as_mut() {
                hs.missed_vote = Some((r, vote_type));
            }
            return;
        }
        let step = match vote_type {
            VoteType::Prevote => SignStep::Prevote,
            VoteType::Precommit => SignStep::Precommit,
        };
        let mut value = value;
        let mut bytes = vote_bytes(&self.chain, vote_type, h, r, &value.unwrap_or(ZERO_HASH));
        let mut sig = self.guarded_sign(step, r, &bytes, value.unwrap_or(ZERO_HASH), out);
        if sig.is_none()
            && let Some(s) = self.signing
            && (s.height, s.round, s.step) == (h, r, step)
        {
            // Restarted after signing this very step: send the same vote
            // again (identical bytes), rather than a different one or none.
            value = (s.value != ZERO_HASH).then_some(s.value);
            bytes = vote_bytes(&self.chain, vote_type, h, r, &s.value);
            sig = self.guarded_sign(step, r, &bytes, s.value, out);
        }
        let Some(sig) = sig else {
            return;
        };
        let vote = pb::Vote {
            vote_type: vote_type as i32,
            height: h,
            round: r,
            block_hash: value.map(|v| v.to_vec()).unwrap_or_default(),
            validator_address: address.0.to_vec(),
            signature: sig.to_bytes().to_vec(),
        };
        if let Some(hs) = self.hs.as_mut() {
            hs.votes.entry((r, vote_type)).or_default().insert_own(
                &hs.params.validator_set,
                idx,
                value,
                sig,
                vote.clone(),
            );
        }
        out.push(Output::BroadcastVote(vote));
    }

    // ---- inputs -----------------------------------------------------------

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

    fn on_proposal(&mut self, p: pb::Proposal, out: &mut Vec<Output>) {
        let (h, r) = (p.height, p.round);
        let Some(Buffered::Proposal(p)) = self.admit(h, r, Buffered::Proposal(Box::new(p))) else {
            return;
        };
        let p = *p;
        let Some(hs) = self.hs.as_ref() else { return };
        // Decided: the block is in hand and nothing more is voted here. A
        // host that decided by a synced block has applied it already and
        // would judge this one against the next height.
        if hs.decided {
            self.stats.ignored += 1;
            return;
        }
        let set = &hs.params.validator_set;
        let Some(block) = p.block.as_ref() else {
            return self.reject(RejectReason::Malformed("proposal without block"), out);
        };
        let Some(header) = block.header.as_ref() else {
            return self.reject(RejectReason::Malformed("block without header"), out);
        };
        let expected = lottery::proposer(set, &hs.params.prev_seed, h, r);
        if p.proposer_address != expected.address.0 {
            let got = hex::encode(&p.proposer_address);
            return self.reject(
                RejectReason::NotProposer {
                    round: r,
                    expected: expected.address,
                    got,
                },
                out,
            );
        }
        if p.pol_round < -1 || i64::from(p.pol_round) >= i64::from(r) {
            return self.reject(RejectReason::Malformed("pol_round"), out);
        }
        if header.height != h {
            return self.reject(RejectReason::BadHeader("height"), out);
        }
        if header.chain_id != self.chain.as_str() {
            return self.reject(RejectReason::BadHeader("chain id"), out);
        }
        if header.parent_hash != hs.params.parent_hash {
            return self.reject(RejectReason::BadHeader("parent hash"), out);
        }
        let block_hash = header_hash(header);
        let existing = hs.proposals.get(&r);
        if existing.is_some_and(|e| e.signed.signature == p.signature && e.block_hash == block_hash)
        {
            return; // a duplicate delivery
        }
        let sender = expected.address.to_string();
        let Ok(sig) = Signature::from_bytes(&p.signature) else {
            return self.reject(RejectReason::BadSignature(sender), out);
        };
        let bytes = proposal_bytes(&self.chain, h, r, p.pol_round, &block_hash);
        if let Some(e) = existing {
            // A second proposal for the round: only its signature matters.
            if expected.public_key.verify(&bytes, &sig).is_err() {
                return self.reject(RejectReason::BadSignature(sender), out);
            }
            let signed = evidence::signed_proposal(&p, &block_hash);
            let ev = evidence::conflicting_proposals(e.signed.clone(), signed);
            if let Some(ev) = self.evidence.admit(ev) {
                out.push(Output::EvidenceFound(ev));
                // Remember the second block too (once per round, so bounded):
                // other validators may lock on it, and its votes must count.
                let block = block.clone();
                if let Some(hs) = self.hs.as_mut() {
                    hs.blocks.entry(block_hash).or_insert(block);
                }
            }
            return;
        }
        let signed = evidence::signed_proposal(&p, &block_hash);
        // The block's creator: the proposer itself for a fresh block, or the
        // proposer of an earlier round for a re-proposed valid value.
        let Ok(creator_addr) = Address::from_slice(&header.proposer_address) else {
            return self.reject(RejectReason::BadHeader("proposer address"), out);
        };
        if p.pol_round == -1 && creator_addr != expected.address {
            return self.reject(
                RejectReason::BadHeader("fresh block from another proposer"),
                out,
            );
        }
        // A fresh block names the round it is proposed in: auditors check
        // its proposer against the lottery of (height, proposal_round).
        if p.pol_round == -1
            && header.proposal_round != r
            && !ignores_header_rules(self.config.test_fault)
        {
            return self.reject(RejectReason::BadHeader("proposal round"), out);
        }
        let Some(creator) = set.get(&creator_addr) else {
            return self.reject(
                RejectReason::BadHeader("block creator not a validator"),
                out,
            );
        };
        // The proposal signature and the block's VRF proof, each checked
        // once: one randomised two-pair check when both are new, the
        // signature alone for a block whose proof was already verified.
        let vrf_output = match hs.vrf_outputs.get(&block_hash) {
            Some(o) => {
                if expected.public_key.verify(&bytes, &sig).is_err() {
                    return self.reject(RejectReason::BadSignature(sender), out);
                }
                *o
            }
            None => {
                let vrf_msg = signing::vrf_input(&self.chain, h, &hs.params.prev_seed);
                let Ok(proof) = Signature::from_bytes(&header.vrf_proof) else {
                    // Reported after the signature, as a separate check would.
                    if expected.public_key.verify(&bytes, &sig).is_err() {
                        return self.reject(RejectReason::BadSignature(sender), out);
                    }
                    return self.reject(RejectReason::BadVrf(creator_addr), out);
                };
                let both = self.verify_salt.as_ref().is_some_and(|salt| {
                    let rho = proposal_check_weight(salt, &sig, &bytes, &proof, &vrf_msg);
                    bls::verify_two(
                        (&expected.public_key, &bytes, &sig),
                        (&creator.public_key, &vrf_msg, &proof),
                        rho,
                    )
                    .is_ok()
                });
                if !both {
                    // Which one is bad (or, for an observer, the plain checks).
                    if expected.public_key.verify(&bytes, &sig).is_err() {
                        return self.reject(RejectReason::BadSignature(sender), out);
                    }
                    if creator.public_key.verify(&vrf_msg, &proof).is_err() {
                        return self.reject(RejectReason::BadVrf(creator_addr), out);
                    }
                }
                vrf::output(&proof)
            }
        };
        let pol_round = p.pol_round;
        // Moved, not cloned: a block holds every transaction of the height.
        let Some(block) = p.block else { return };
        let Some(hs) = self.hs.as_mut() else { return };
        hs.vrf_outputs.insert(block_hash, vrf_output);
        hs.proposals.insert(
            r,
            ProposalEntry {
                block_hash,
                pol_round: u32::try_from(pol_round).ok(),
                signed,
            },
        );
        if !hs.validity.contains_key(&block_hash) && hs.validation_requested.insert(block_hash) {
            out.push(Output::ValidateBlock {
                height: h,
                round: r,
                block: Box::new(block.clone()),
            });
        }
        hs.blocks.entry(block_hash).or_insert(block);
    }

    fn on_vote(&mut self, v: pb::Vote, out: &mut Vec<Output>) {
        let (h, r) = (v.height, v.round);
        let Some(Buffered::Vote(v)) = self.admit(h, r, Buffered::Vote(v)) else {
            return;
        };
        let Some(vote_type) = VoteType::from_i32(v.vote_type) else {
            return self.reject(RejectReason::Malformed("vote type"), out);
        };
        let Some(value) = value_of(&v.block_hash) else {
            return self.reject(RejectReason::Malformed("vote block hash"), out);
        };
        let mode = self.config.verify_mode;
        let Some(hs) = self.hs.as_mut() else { return };
        let idx = Address::from_slice(&v.validator_address)
            .ok()
            .and_then(|a| hs.params.validator_set.index_of(&a));
        let Some(idx) = idx else {
            let who = hex::encode(&v.validator_address);
            return self.reject(RejectReason::UnknownValidator(who), out);
        };
        let set = &hs.params.validator_set;
        let keep_conflicting = value.is_none_or(|b| hs.blocks.contains_key(&b));
        let vs = hs.votes.entry((r, vote_type)).or_default();
        if vs.contains(idx, &value, &v.signature) {
            return; // duplicate delivery: these bytes were already decoded
        }
        let who = set.validators()[idx].address.to_string();
        // Only the shape is checked on arrival; the signature is decoded
        // when the vote is verified (never, if its threshold was verified
        // without it).
        if v.signature.len() != bls::SIGNATURE_LEN {
            return self.reject(RejectReason::BadSignature(who), out);
        }
        let ctx = VoteContext {
            chain: &self.chain,
            set,
            height: h,
            round: r,
            vote_type,
        };
        match vs.insert(&ctx, mode, idx, value, v.clone(), keep_conflicting) {
            Insert::Added | Insert::Duplicate => {}
            Insert::BadSignature => self.reject(RejectReason::BadSignature(who), out),
            Insert::Equivocation(first) => {
                if let Some(ev) = self.evidence.admit(evidence::duplicate_vote(*first, v)) {
                    out.push(Output::EvidenceFound(ev));
                }
            }
        }
    }

    fn on_timeout(&mut self, t: Timeout, out: &mut Vec<Output>) {
        let Some(hs) = self.hs.as_ref() else { return };
        if t.height != hs.params.height || t.round != hs.round || hs.decided {
            return;
        }
        match t.step {
            // Line 57.
            TimeoutStep::Propose if hs.step == Step::Propose => {
                self.cast_vote(VoteType::Prevote, None, out);
                self.set_step(Step::Prevote);
            }
            // Line 61.
            TimeoutStep::Prevote if hs.step == Step::Prevote => {
                self.cast_vote(VoteType::Precommit, None, out);
                self.set_step(Step::Precommit);
            }
            // Line 65.
            TimeoutStep::Precommit => self.start_round(t.round.saturating_add(1), out),
            _ => {}
        }
    }

    /// [`Input::SigningResumed`]: the missed vote, if this round and step
    /// still owe it.
    fn resume_signing(&mut self, out: &mut Vec<Output>) {
        let Some(hs) = self.hs.as_mut() else { return };
        let Some((round, vote_type)) = hs.missed_vote.take() else {
            return;
        };
        let step = match vote_type {
            VoteType::Prevote => Step::Prevote,
            VoteType::Precommit => Step::Precommit,
        };
        if round == hs.round && hs.step == step && !hs.decided && self.signing_allowed {
            self.cast_vote(vote_type, None, out);
        }
    }

    fn set_step(&mut self, step: Step) {
        if let Some(hs) = self.hs.as_mut() {
            hs.step = step;
        }
    }

    fn on_content(
        &mut self,
        height: Height,
        round: Round,
        mut block: pb::Block,
        out: &mut Vec<Output>,
    ) {
        let Some(hs) = self.hs.as_ref() else { return };
        if hs.params.height != height
            || hs.round != round
            || hs.awaiting_content != Some(round)
            || hs.step != Step::Propose
        {
            self.stats.ignored += 1;
            return;
        }
        let (Some(key), Some(address)) = (self.key.as_ref(), self.address) else {
            return;
        };
        let Some(header) = block.header.as_mut() else {
            return self.reject(
                RejectReason::Malformed("block template without header"),
                out,
            );
        };
        if header.height != height
            || header.chain_id != self.chain.as_str()
            || header.parent_hash != hs.params.parent_hash
        {
            return self.reject(RejectReason::BadHeader("block template"), out);
        }
        header.proposer_address = address.0.to_vec();
        header.proposal_round = round;
        let proof = vrf::prove(key, &self.chain, height, &hs.params.prev_seed);
        header.vrf_proof = proof.to_bytes().to_vec();
        let block_hash = header_hash(header);
        if let Some(hs) = self.hs.as_mut() {
            hs.awaiting_content = None;
            hs.vrf_outputs.insert(block_hash, vrf::output(&proof));
        }
        self.sign_and_send_proposal(round, -1, block, block_hash, out);
    }

    fn on_synced(
        &mut self,
        block: pb::Block,
        cert: CommitCertificate,
        verified_against: Option<Hash>,
        out: &mut Vec<Output>,
    ) {
        let Some(hs) = self.hs.as_ref() else { return };
        if hs.decided || cert.height != hs.params.height {
            self.stats.ignored += 1;
            return;
        }
        let Some(header) = block.header.as_ref() else {
            return self.reject(RejectReason::Malformed("synced block without header"), out);
        };
        let hash = header_hash(header);
        let set = &hs.params.validator_set;
        let verdict = if verified_against == Some(set.hash()) {
            // Verified in a batch against this very set: only the binding
            // to this height and block is re-checked (no pairing).
            cert.matches(hs.params.height, &hash)
        } else {
            cert.verify_for(&self.chain, set, hs.params.height, &hash)
        };
        if let Err(e) = verdict {
            return self.reject(RejectReason::BadCertificate(e.to_string()), out);
        }
        self.stats.synced_certificates_verified += 1;
        // A synced block's VRF proof is not verified (more than 2/3 signed
        // its header, and each checked it before prevoting); only its
        // output is needed, which is the hash of its bytes: not decoded.
        let Ok(proof) = <&[u8; 96]>::try_from(header.vrf_proof.as_slice()) else {
            return self.reject(RejectReason::BadCertificate("vrf proof".into()), out);
        };
        let seed = vrf::next_seed(&hs.params.prev_seed, &vrf::output_of_bytes(proof));
        let decision = Decision {
            height: hs.params.height,
            round: cert.round,
            block,
            block_hash: hash,
            certificate: cert,
            seed,
        };
        if let Some(hs) = self.hs.as_mut() {
            hs.decided = true;
        }
        out.push(Output::Decided(Box::new(decision)));
    }

    // ---- rules ------------------------------------------------------------

    /// Evaluates the upon-rules until none fires.
    fn run_rules(&mut self, out: &mut Vec<Output>) {
        // Each firing advances (round, step) or sets a once-per-round flag,
        // so this terminates; the bound is a guard against a logic error.
        for _ in 0..10_000 {
            if !self.fire_one(out) {
                return;
            }
        }
    }

    fn quorum_prevotes_for(&mut self, round: Round, value: &Value) -> bool {
        self.tally(round, VoteType::Prevote, Some(value))
    }

    /// Verified quorum for `value` (or for any value when None) at (round, type).
    fn tally(&mut self, round: Round, vote_type: VoteType, value: Option<&Value>) -> bool {
        let fault = self.config.test_fault;
        let Some(hs) = self.hs.as_mut() else {
            return false;
        };
        let set = &hs.params.validator_set;
        let Some(vs) = hs.votes.get_mut(&(round, vote_type)) else {
            return false;
        };
        let ctx = VoteContext {
            chain: &self.chain,
            set,
            height: hs.params.height,
            round,
            vote_type,
        };
        let q = |p: Power| quorum_with(fault, set, p);
        match value {
            Some(v) => vs.quorum_for(&ctx, v, &q),
            None => vs.threshold_any(&ctx, &q),
        }
    }

    /// Line 55: f+1 power of distinct senders in a higher round.
    fn skip_target(&mut self) -> Option<Round> {
        let hs = self.hs.as_mut()?;
        let current = hs.round;
        let rounds: BTreeSet<Round> = hs
            .votes
            .keys()
            .map(|(r, _)| *r)
            .chain(hs.proposals.keys().copied())
            .filter(|r| *r > current)
            .collect();
        let set = &hs.params.validator_set;
        let h = hs.params.height;
        for r in rounds.into_iter().rev() {
            let senders = |hs_votes: &BTreeMap<(Round, VoteType), VoteSet>, verified: bool| {
                let mut s: BTreeSet<usize> = BTreeSet::new();
                for t in [VoteType::Prevote, VoteType::Precommit] {
                    if let Some(vs) = hs_votes.get(&(r, t)) {
                        if verified {
                            s.extend(vs.verified_voters());
                        } else {
                            s.extend(vs.all_voters());
                        }
                    }
                }
                s
            };
            let proposer = hs
                .proposals
                .get(&r)
                .map(|_| set.index_of(&lottery::proposer(set, &hs.params.prev_seed, h, r).address));
            let power = |s: &BTreeSet<usize>| -> Power {
                let mut s = s.clone();
                if let Some(Some(p)) = proposer {
                    s.insert(p);
                }
                s.iter().map(|i| set.validators()[*i].power).sum()
            };
            if !set.is_one_third(power(&senders(&hs.votes, false))) {
                continue;
            }
            for t in [VoteType::Prevote, VoteType::Precommit] {
                if let Some(vs) = hs.votes.get_mut(&(r, t)) {
                    let ctx = VoteContext {
                        chain: &self.chain,
                        set,
                        height: h,
                        round: r,
                        vote_type: t,
                    };
                    vs.verify_all_pending(&ctx);
                }
            }
            if set.is_one_third(power(&senders(&hs.votes, true))) {
                return Some(r);
            }
        }
        None
    }

    fn fire_one(&mut self, out: &mut Vec<Output>) -> bool {
        let Some(hs) = self.hs.as_ref() else {
            return false;
        };
        if hs.decided {
            return false;
        }
        // Line 49: decide on a proposal with a precommit quorum in any round.
        let candidates: Vec<(Round, Hash)> = hs
            .proposals
            .iter()
            .filter(|(_, e)| hs.validity.get(&e.block_hash) == Some(&true))
            .map(|(r, e)| (*r, e.block_hash))
            .collect();
        for (r, v) in candidates {
            if self.tally(r, VoteType::Precommit, Some(&Some(v))) {
                self.decide(r, v, out);
                return true;
            }
        }
        // Line 55: round skip.
        if let Some(r) = self.skip_target() {
            self.start_round(r, out);
            return true;
        }
        let Some(hs) = self.hs.as_ref() else {
            return false;
        };
        let round = hs.round;
        let step = hs.step;
        let proposal = hs.proposals.get(&round).cloned();
        let ignore_lock = self.ignores_lock();
        if let Some(p) = &proposal {
            let v = p.block_hash;
            let validity = hs.validity.get(&v).copied();
            let locked = hs.locked;
            if step == Step::Propose
                && let Some(valid) = validity
            {
                match p.pol_round {
                    // Line 22.
                    None => {
                        let free = ignore_lock || locked.is_none_or(|(lv, _)| lv == v);
                        let value = (valid && free).then_some(v);
                        self.cast_vote(VoteType::Prevote, value, out);
                        self.set_step(Step::Prevote);
                        return true;
                    }
                    // Line 28.
                    Some(vr) if vr < round && self.quorum_prevotes_for(vr, &Some(v)) => {
                        let free = ignore_lock || locked.is_none_or(|(lv, lr)| lr <= vr || lv == v);
                        let value = (valid && free).then_some(v);
                        self.cast_vote(VoteType::Prevote, value, out);
                        self.set_step(Step::Prevote);
                        return true;
                    }
                    _ => {}
                }
            }
        }
        let Some(hs) = self.hs.as_ref() else {
            return false;
        };
        // Line 34.
        if step == Step::Prevote
            && !hs.prevote_timeout_done.contains(&round)
            && self.tally(round, VoteType::Prevote, None)
        {
            if let Some(hs) = self.hs.as_mut() {
                hs.prevote_timeout_done.insert(round);
            }
            self.schedule(TimeoutStep::Prevote, round, out);
            return true;
        }
        // Line 36.
        if let Some(p) = &proposal {
            let v = p.block_hash;
            let hs = self.hs.as_ref().expect("checked above");
            if hs.validity.get(&v) == Some(&true)
                && step >= Step::Prevote
                && !hs.line36_done.contains(&round)
                && self.quorum_prevotes_for(round, &Some(v))
            {
                let hs = self.hs.as_mut().expect("checked above");
                hs.line36_done.insert(round);
                hs.valid = Some((v, round));
                if step == Step::Prevote {
                    hs.locked = Some((v, round));
                    self.cast_vote(VoteType::Precommit, Some(v), out);
                    self.set_step(Step::Precommit);
                }
                return true;
            }
        }
        // Line 44.
        if step == Step::Prevote && self.quorum_prevotes_for(round, &None) {
            self.cast_vote(VoteType::Precommit, None, out);
            self.set_step(Step::Precommit);
            return true;
        }
        // Line 47.
        let done = self
            .hs
            .as_ref()
            .is_some_and(|hs| hs.precommit_timeout_done.contains(&round));
        if !done && self.tally(round, VoteType::Precommit, None) {
            if let Some(hs) = self.hs.as_mut() {
                hs.precommit_timeout_done.insert(round);
            }
            self.schedule(TimeoutStep::Precommit, round, out);
            return true;
        }
        false
    }

    fn ignores_lock(&self) -> bool {
        #[cfg(feature = "test-faults")]
        if self.config.test_fault == TestFault::IgnoreLock {
            return true;
        }
        false
    }

    fn decide(&mut self, round: Round, v: Hash, out: &mut Vec<Output>) {
        let Some(hs) = self.hs.as_mut() else { return };
        let set = &hs.params.validator_set;
        // The sum of the verified precommits is kept by the vote set.
        let Some((signers, aggregate)) = hs
            .votes
            .get(&(round, VoteType::Precommit))
            .and_then(|vs| vs.verified_aggregate(&Some(v)))
        else {
            return;
        };
        let Ok(certificate) =
            CommitCertificate::from_aggregate(set, hs.params.height, round, v, &signers, aggregate)
        else {
            return;
        };
        let Some(block) = hs.blocks.get(&v).cloned() else {
            return;
        };
        // Verified when the block arrived; a block only remembered from a
        // conflicting proposal is decoded here.
        let output = hs.vrf_outputs.get(&v).copied().or_else(|| {
            block
                .header
                .as_ref()
                .and_then(|h| Signature::from_bytes(&h.vrf_proof).ok())
                .map(|p| vrf::output(&p))
        });
        let Some(output) = output else { return };
        let seed = vrf::next_seed(&hs.params.prev_seed, &output);
        hs.decided = true;
        out.push(Output::Decided(Box::new(Decision {
            height: hs.params.height,
            round,
            block,
            block_hash: v,
            certificate,
            seed,
        })));
    }
}

/// Domain prefix of the salt of randomised checks (derived from the key).
const VERIFY_SALT_PREFIX: &[u8] = b"agora/verify-salt/v1";
/// Domain prefix of a proposal check's weight.
const PROPOSAL_WEIGHT_PREFIX: &[u8] = b"agora/proposal-check-weight/v1";

/// The weight ρ of the VRF pair in a proposal's two-pair check
/// ([`bls::verify_two`]). The core has no randomness of its own, so ρ is
/// derived: SHA3-256 over a salt only this node knows (a one-way hash of its
/// secret key, never sent anywhere) and everything the proposer chose
/// (signature, proof and both signed messages), first 8 bytes, never zero.
/// The proposer fixes its bytes before ρ exists and cannot compute ρ without
/// the salt, so to it ρ is a uniform 64-bit value (random-oracle model): a
/// pair that is not both valid passes with probability 2⁻⁶⁴ per proposal,
/// each failed try is a rejected proposal, and the verdict stays a
/// deterministic function of the inputs (the simulator replays it).
fn proposal_check_weight(
    salt: &Hash,
    sig: &Signature,
    msg: &[u8],
    proof: &Signature,
    vrf_msg: &[u8],
) -> u64 {
    let h = sha3_256_parts(&[
        PROPOSAL_WEIGHT_PREFIX,
        salt,
        &sig.to_bytes(),
        msg,
        &proof.to_bytes(),
        vrf_msg,
    ]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_le_bytes(b).max(1)
}

/// The quorum rule: strictly more than 2/3 of the power (or a test fault's rule).
fn quorum_with(fault: TestFault, set: &ValidatorSet, power: Power) -> bool {
    match fault {
        TestFault::None => set.is_quorum(power),
        #[cfg(feature = "test-faults")]
        TestFault::HalfQuorum => u128::from(power) * 2 >= u128::from(set.total_power()),
        #[cfg(feature = "test-faults")]
        _ => set.is_quorum(power),
    }
}

#[cfg(feature = "test-faults")]
fn ignores_header_rules(f: TestFault) -> bool {
    f == TestFault::IgnoreHeaderRules
}
#[cfg(not(feature = "test-faults"))]
fn ignores_header_rules(_: TestFault) -> bool {
    false
}
