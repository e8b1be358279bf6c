//! The engine: every decision a validator makes about whole blocks, around
//! the consensus core, driven the same way by the node and the simulator.
//!
//! The core ([`crate::consensus`]) decides *which* block is committed; the
//! engine decides what a block may contain and what committing it means:
//!
//! - building our proposal from a mempool view and the evidence pool
//!   ([`block_rules::build_block`]);
//! - the content rules for a proposed or synced block
//!   ([`block_rules::check_block`]), including `proposal_round` and `time_ms`;
//! - the evidence pool ([`evidence_pool`]): our core's, peers' and gRPC
//!   evidence, held while its height is being decided, re-gossiped until
//!   included, kept by the host across restarts;
//! - sync acceptance ([`sync`]): only answers to our own requests, bodies
//!   that match their certified headers, certificates the core verifies
//!   against the set this node derived itself;
//! - the commit: the ledger applies the decided block and the engine hands
//!   the host one [`CommitRecord`] holding everything the block's one
//!   durable transaction must write.
//!
//! Like the core it has no I/O, no clock and no randomness of its own: the
//! host passes the time (`now_ms`) and 32 bytes of secret entropy at
//! construction. Peers are named by an opaque `P` (the node's peer id, the
//! simulator's index) so that faults can be charged to the sender: every
//! input a peer sent that fails a check comes back as [`Action::Penalize`].
//!
//! The host executes the returned [`Action`]s in order. The persist-before-
//! send rule of the core carries over unchanged: `PersistSigningState` must
//! be durable before any later broadcast, and `Wal` records are appended in
//! order (they become durable with the next fsync, which precedes any send).

pub mod block_rules;
pub mod evidence_pool;
pub mod late_precommits;
pub mod past_votes;
pub mod sync;

mod actions;
mod body_hashes;
mod carried_commit;
mod certificate_job;
mod commit;
mod drive;
use drive::{Log, charge};
mod early_start;
mod evidence_inputs;
mod key_watch;
mod restart;
mod start_pause;
mod sync_batch;
mod sync_inputs;
mod sync_pace;
#[cfg(test)]
mod tests;
mod vote_senders;
mod wal_filter;

pub use actions::{Action, CommitRecord, PeerFault};
pub use block_rules::{BlockError, BlockLimits, Checked, MempoolView, NoMempool, Tip};
pub use body_hashes::MAX_BODIES as MAX_CHECKED_BODIES;
pub use certificate_job::{CertificateJob, CertificateVerdict};
pub use evidence_pool::{Added, EvidencePool, PoolError};
pub use sync_pace::MAX_REMEMBERED as SYNC_PACES_REMEMBERED;

use crate::block::header_hash;
use crate::consensus::buffer::{Buffered, ByteLimits, FutureBuffer};
use crate::consensus::{
    Consensus, ConsensusConfig, HeightParams, Input, SigningGate, SigningState, TestFault, Timeout,
};
use crate::crypto::{Hash, SecretKey};
use crate::ledger::Ledger;
use crate::types::{ChainId, Height, Round};
use agora_proto::v1 as pb;
use late_precommits::LatePrecommits;
use sync::SyncState;

/// How often the host calls [`Engine::on_tick`] (ms): the current height's
/// messages and the pending evidence are re-gossiped that often, and a node
/// still one height behind after that long fetches the block.
pub const TICK_MS: u64 = 1_000;

/// Configuration of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineConfig {
    /// The consensus core's configuration (its `test_fault` also switches
    /// off the engine's matching check, for the simulator's negative controls).
    pub consensus: ConsensusConfig,
    /// Block content limits.
    pub limits: BlockLimits,
}

/// What the host restores from its store at start.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The ledger after the last committed block (or genesis).
    pub ledger: Ledger,
    /// The last committed block.
    pub tip: Tip,
    /// The evidence pool's entries as persisted.
    pub evidence: Vec<pb::Evidence>,
}

/// Why the engine cannot go on: the node must stop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// A decided block could not be applied to the ledger.
    #[error("applying decided block {height}: {reason}")]
    Apply {
        /// The block's height.
        height: Height,
        /// The ledger's error.
        reason: String,
    },
    /// The ledger holds no validator set for a height it must know.
    #[error("no validator set for height {0}")]
    NoValidatorSet(Height),
}

/// The engine of one validator (or of a non-voting full node).
pub struct Engine<P> {
    config: EngineConfig,
    chain: ChainId,
    core: Consensus,
    ledger: Ledger,
    pool: EvidencePool,
    sync: SyncState<P>,
    tip: Tip,
    late: LatePrecommits<P>,
    /// Verified votes of the tip height, for equivocations that arrive late.
    past_votes: past_votes::PastVotes,
    /// Who sent each vote the core stores at this height, to charge a
    /// vote whose bytes fail alone later.
    vote_senders: vote_senders::VoteSenders<P>,
    /// Transaction hashes of the bodies checked at this height.
    bodies: body_hashes::BodyHashes,
    /// Peers' messages for heights not started yet, with their senders, so
    /// that one found bad when its height starts is charged to whoever sent
    /// it (bounded in count, bytes and bytes per claimed validator).
    future: FutureBuffer<P>,
    /// Secret entropy for randomised batch checks of block transactions.
    entropy: Hash,
    /// What our key signed, and the signing gate.
    watch: key_watch::KeyWatch,
    /// Which inputs of the current height were logged (WAL bound).
    wal_filter: wal_filter::WalFilter,
    /// The core is deciding `tip + 1` (false between a commit and the start
    /// of the next height).
    started: bool,
    height_started_ms: u64,
    /// Set while `apply_synced` starts the height of the certified block it
    /// is about to apply: the core's request for our proposal is then held
    /// back (`drive.rs`), since that height is already decided.
    certified_in_hand: Option<Height>,
    /// The proposal held back that way, made after all if the block turns
    /// out bad (the height is then still open, and we are its proposer).
    proposal_held_back: Option<(Height, Round)>,
    /// Carried certificates of live proposals verified and found valid.
    carried_certificates_verified: u64,
}

/// Commit certificates the engine verified and found valid, by where they
/// came from (certificates it assembled itself or held already are not
/// verified again and not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CertificatesVerified {
    /// Carried by a live proposal for its parent block.
    pub carried: u64,
    /// Delivered by block sync with the block it commits.
    pub synced: u64,
}

impl<P> std::fmt::Debug for Engine<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("core", &self.core)
            .field("tip", &self.ledger.height())
            .finish()
    }
}

impl<P: Copy + Ord + std::fmt::Debug> Engine<P> {
    /// An engine restored from the host's store. `signing` is the last
    /// signing state the host persisted; `entropy` is 32 secret random bytes.
    pub fn new(
        config: EngineConfig,
        key: Option<SecretKey>,
        signing: Option<SigningState>,
        restored: Restored,
        entropy: Hash,
    ) -> Self {
        let chain = restored.ledger.chain_id().clone();
        let watch =
            key_watch::KeyWatch::new(key.as_ref().map(|k| k.public_key()), signing.as_ref());
        let core = Consensus::new(config.consensus, chain.clone(), key, signing);
        let mut pool = EvidencePool::default();
        for ev in restored.evidence {
            // What no longer verifies (expired, moot) is simply not kept.
            let _ = pool.add(ev, &restored.ledger);
        }
        let mut late = LatePrecommits::default();
        if let (Some(c), Some(set)) = (
            &restored.tip.certificate,
            restored
                .tip
                .certificate
                .as_ref()
                .and_then(|c| restored.ledger.validator_set(c.height)),
        ) {
            late.reset(c, set);
        }
        Self {
            config,
            chain,
            core,
            ledger: restored.ledger,
            pool,
            sync: SyncState::default(),
            tip: restored.tip,
            late,
            past_votes: Default::default(),
            vote_senders: Default::default(),
            bodies: Default::default(),
            future: FutureBuffer::with_limits(config.consensus.buffer, ByteLimits::default()),
            entropy,
            watch,
            wal_filter: Default::default(),
            started: false,
            height_started_ms: 0,
            certified_in_hand: None,
            proposal_held_back: None,
            carried_certificates_verified: 0,
        }
    }

    /// The engine with `gate` deciding whether it may sign (the host builds
    /// it from what it restored; the default gate is open).
    pub fn with_signing_gate(mut self, gate: SigningGate) -> Self {
        self.watch.gate = gate;
        self
    }

    // ---- accessors ---------------------------------------------------------

    /// The signing gate: whether this validator signs, and why not.
    pub fn signing_gate(&self) -> &SigningGate {
        &self.watch.gate
    }

    /// The ledger after the last committed block.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The last committed block.
    pub fn tip(&self) -> &Tip {
        &self.tip
    }

    /// Height of the last committed block (0 before block 1).
    pub fn tip_height(&self) -> Height {
        self.ledger.height()
    }

    /// The height being decided (or about to be started).
    pub fn height(&self) -> Height {
        self.tip_height() + 1
    }

    /// Whether the next height still has to be started (after a commit).
    pub fn awaiting_start(&self) -> bool {
        !self.started
    }

    /// The consensus core (for metrics and diagnostics).
    pub fn core(&self) -> &Consensus {
        &self.core
    }

    /// Commit certificates verified so far (for metrics).
    pub fn certificates_verified(&self) -> CertificatesVerified {
        CertificatesVerified {
            carried: self.carried_certificates_verified,
            synced: self.core.stats().synced_certificates_verified,
        }
    }

    /// The evidence pool.
    pub fn pool(&self) -> &EvidencePool {
        &self.pool
    }

    /// The chain.
    pub fn chain(&self) -> &ChainId {
        &self.chain
    }

    fn fault(&self) -> TestFault {
        self.config.consensus.test_fault
    }

    // ---- inputs ------------------------------------------------------------

    /// Starts deciding `tip + 1` (at boot, and `timeout_commit` after a
    /// commit). Does nothing if that height is already started.
    pub fn start_height(
        &mut self,
        now_ms: u64,
        mempool: &dyn MempoolView,
    ) -> Result<Vec<Action<P>>, EngineError> {
        let mut out = Vec::new();
        self.start_into(now_ms, mempool, &mut out)?;
        Ok(out)
    }

    fn start_into(
        &mut self,
        now_ms: u64,
        mempool: &dyn MempoolView,
        out: &mut Vec<Action<P>>,
    ) -> Result<(), EngineError> {
        if self.started {
            return Ok(());
        }
        let h = self.height();
        let set = self
            .ledger
            .validator_set(h)
            .cloned()
            .ok_or(EngineError::NoValidatorSet(h))?;
        self.started = true;
        self.height_started_ms = now_ms;
        self.watch.prune_below(h);
        let params = HeightParams {
            height: h,
            validator_set: set,
            prev_seed: self.tip.seed,
            parent_hash: self.tip.block_hash,
            last_commit: self.tip.certificate.clone(),
        };
        self.drive(
            Input::StartHeight(Box::new(params)),
            Log::Answers,
            now_ms,
            mempool,
            out,
        )?;
        // What peers sent for this height before it started, each as if it
        // arrived now, so that its sender is charged if it is bad.
        for (peer, msg) in self.future.take_tagged(h) {
            // Messages of our key were watched on arrival (`watch_incoming`).
            match msg {
                Buffered::Proposal(p) => {
                    let input = Input::Proposal(*p);
                    let rejected = self.drive(input, Log::All, now_ms, mempool, out)?;
                    charge(peer, rejected, out);
                }
                Buffered::Vote(v) => self.drive_peer_vote(peer, v, now_ms, mempool, out)?,
            }
        }
        Ok(())
    }

    /// Whether a proposal for the next height, arriving before it was
    /// started, starts it now ([`early_start::starts_on_proposal`]).
    fn starts_on_proposal(&self) -> bool {
        #[cfg(feature = "test-faults")]
        if self.fault() == TestFault::NoEarlyStart {
            return false;
        }
        let h = self.height();
        self.ledger.validator_set(h).is_some_and(|set| {
            early_start::starts_on_proposal(self.core.address(), set, &self.tip.seed, h)
        })
    }

    /// The height the core is at, if a peer's message for `height` must
    /// wait for its height to start (in [`Self::future`]).
    fn waits(&self, height: Height) -> Option<Height> {
        let current = if self.started {
            self.height()
        } else {
            self.tip_height()
        };
        (height > current).then_some(current)
    }

    /// Peers' messages waiting for their height: how many, their bytes, and
    /// how many were dropped (out of the window or over a bound).
    pub fn future_buffer(&self) -> (usize, usize, u64) {
        (
            self.future.len(),
            self.future.bytes(),
            self.future.dropped(),
        )
    }

    /// The signing position of `input` if it is a proposal or vote of our key.
    fn own_message(&self, input: &Input) -> Option<key_watch::Signed> {
        match input {
            Input::Vote(v) => self.our_vote(v),
            Input::Proposal(p) => self.our_proposal(p),
            _ => None,
        }
    }

    /// A proposal or vote of our key from the network, for a height not yet
    /// decided, that this instance did not sign: told to the gate (alarm
    /// when signing, a new wait otherwise). The message still goes on to
    /// the core (or waits for its height) like any other.
    ///
    /// A message for a later height than the one being decided is checked
    /// on arrival, not when its height starts: this instance cannot have
    /// signed it (a height starts only after the one before it is durable),
    /// a second instance running a height ahead is seen only that way, and
    /// the verdict is in before this instance signs anything at that height.
    /// This relies on the host feeding no peer message between a restart
    /// and the WAL replay (`node::runner` restores, starts and replays
    /// before its loop reads the network), so our own messages of the
    /// current height are known before their relayed copies arrive.
    fn watch_incoming(&mut self, height: Height, m: Option<key_watch::Signed>) {
        if height < self.height() {
            return;
        }
        if let Some(m) = m {
            self.watch.check_incoming(&m);
        }
    }

    /// The signing position of a vote of our key.
    fn our_vote(&self, v: &pb::Vote) -> Option<key_watch::Signed> {
        self.watch
            .is_ours(&v.validator_address)
            .then(|| key_watch::Signed::of_vote(&self.chain, v))
            .flatten()
    }

    /// The signing position of a proposal of our key.
    fn our_proposal(&self, p: &pb::Proposal) -> Option<key_watch::Signed> {
        self.watch
            .is_ours(&p.proposer_address)
            .then(|| key_watch::Signed::of_proposal(&self.chain, p))
            .flatten()
    }

    /// Records a vote the host signed itself (`testing.double_sign`), so
    /// that its relayed copies are known as ours and evidence against our
    /// key is known as the host's own doing (no alarm).
    pub fn record_own_vote(&mut self, v: &pb::Vote) {
        if let Some(m) = key_watch::Signed::of_vote(&self.chain, v) {
            self.watch.record(&m);
        }
        self.watch.equivocates_on_purpose = true;
    }

    /// A timeout the core scheduled fired.
    pub fn on_timeout(
        &mut self,
        t: Timeout,
        now_ms: u64,
        mempool: &dyn MempoolView,
    ) -> Result<Vec<Action<P>>, EngineError> {
        let mut out = Vec::new();
        self.drive(Input::TimeoutFired(t), Log::All, now_ms, mempool, &mut out)?;
        Ok(out)
    }

    /// A proposal from `peer`. Its body must match its header before the
    /// core sees it: the proposer signs only the header, so a relay that
    /// swapped the body is at fault, and must not make the genuine block
    /// look invalid.
    pub fn on_proposal(
        &mut self,
        peer: P,
        p: pb::Proposal,
        now_ms: u64,
        mempool: &dyn MempoolView,
    ) -> Result<Vec<Action<P>>, EngineError> {
        let mut out = Vec::new();
        let mut carried = None;
        if let Some(block) = &p.block {
            match block_rules::check_body_hashes(block) {
                Err(e) => {
                    out.push(Action::Penalize {
                        peer,
                        fault: PeerFault::BadBlock(e),
                    });
                    return Ok(out);
                }
                Ok(body) => {
                    if let Some(header) = &block.header
                        && p.height == self.height()
                    {
                        let hash = header_hash(header);
                        // An observer's core checks proposals one by one.
                        if self.core.address().is_some() {
                            carried = body
                                .carried
                                .clone()
                                .and_then(|c| carried_commit::offer(&self.context(), hash, c));
                        }
                        let core = &self.core;
                        self.bodies.insert(hash, body, |h| core.holds_block(h));
                    }
                }
            }
        }
        self.watch_incoming(p.height, self.our_proposal(&p));
        if !self.started && p.height == self.height() && self.starts_on_proposal() {
            // The next height is moving without us (see `early_start.rs`).
            self.start_into(now_ms, mempool, &mut out)?;
        }
        if let Some(current) = self.waits(p.height) {
            let h = p.height;
            self.future
                .push_tagged(current, h, peer, Buffered::Proposal(Box::new(p)));
            return Ok(out);
        }
        if let Some(c) = carried {
            self.core.offer_carried_commit(c);
        }
        let input = Input::Proposal(p);
        let rejected = self.drive(input, Log::All, now_ms, mempool, &mut out)?;
        charge(peer, rejected, &mut out);
        Ok(out)
    }

    /// Whether what the body check computed for the block of `header` is
    /// remembered (tests of the cache's admission rule).
    #[cfg(test)]
    pub(crate) fn remembers_body(&self, header: &Hash) -> bool {
        self.bodies.get(header).is_some()
    }

    /// A vote from `peer`. A precommit for the block just committed that
    /// came after its quorum is kept to widen the certificate we propose.
    pub fn on_vote(
        &mut self,
        peer: P,
        v: pb::Vote,
        now_ms: u64,
        mempool: &dyn MempoolView,
    ) -> Result<Vec<Action<P>>, EngineError> {
        let mut out = Vec::new();
        if v.height == self.tip_height() && v.height > 0 {
            if let Some(ev) = self.past_votes.conflict(&v) {
                self.past_vote_evidence(peer, &v, ev, &mut out);
            }
            if let Some(set) = self.ledger.validator_set(v.height) {
                self.late.offer(&v, set, peer);
            }
            return Ok(out);
        }
        self.watch_incoming(v.height, self.our_vote(&v));
        if let Some(current) = self.waits(v.height) {
            self.future
                .push_tagged(current, v.height, peer, Buffered::Vote(v));
            return Ok(out);
        }
        self.drive_peer_vote(peer, v, now_ms, mempool, &mut out)?;
        Ok(out)
    }

    /// Feeds a peer's vote of the current height and charges the peer if
    /// the core rejects it; its sender is kept while the core stores it,
    /// to be charged if its bytes fail alone later (`vote_senders`).
    fn drive_peer_vote(
        &mut self,
        peer: P,
        v: pb::Vote,
        now_ms: u64,
        mempool: &dyn MempoolView,
        out: &mut Vec<Action<P>>,
    ) -> Result<(), EngineError> {
        let probe = self.vote_senders.note(peer, &v).then(|| v.clone());
        let rejected = self.drive(Input::Vote(v), Log::All, now_ms, mempool, out)?;
        if let Some(v) = probe {
            let stored = self.core.holds_vote(&v);
            self.vote_senders.settle(&v, stored);
        }
        charge(peer, rejected, out);
        Ok(())
    }
}
