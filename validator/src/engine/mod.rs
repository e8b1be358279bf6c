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
mod commit;
#[cfg(test)]
mod tests;

pub use actions::{Action, CommitRecord, PeerFault};
pub use block_rules::{BlockError, BlockLimits, MempoolView, NoMempool, Tip};
pub use evidence_pool::{Added, EvidencePool, PoolError};

use crate::block::header_hash;
use crate::certificate::CommitCertificate;
use crate::consensus::evidence::conflicting_certificates;
use crate::consensus::{
    Consensus, ConsensusConfig, HeightParams, Input, Output, RejectReason, SigningState, TestFault,
    Timeout,
};
use crate::crypto::{Hash, SecretKey, ZERO_HASH};
use crate::ledger::Ledger;
use crate::types::{ChainId, Height, Round};
use agora_proto::v1 as pb;
use block_rules::{Context, Provenance};
use late_precommits::LatePrecommits;
use std::collections::VecDeque;
use sync::{ResponseVerdict, SyncState};

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
    late: LatePrecommits,
    /// Verified votes of the tip height, for equivocations that arrive late.
    past_votes: past_votes::PastVotes,
    /// Secret entropy for randomised batch checks of block transactions.
    entropy: Hash,
    /// The core is deciding `tip + 1` (false between a commit and the start
    /// of the next height).
    started: bool,
    height_started_ms: u64,
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
            entropy,
            started: false,
            height_started_ms: 0,
        }
    }

    // ---- accessors ---------------------------------------------------------

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
        Ok(())
    }

    /// Feeds a WAL record of the current height again after a restart (it
    /// is not logged a second time).
    pub fn replay(
        &mut self,
        input: Input,
        now_ms: u64,
        mempool: &dyn MempoolView,
    ) -> Result<Vec<Action<P>>, EngineError> {
        let mut out = Vec::new();
        self.drive(input, Log::Nothing, now_ms, mempool, &mut out)?;
        Ok(out)
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
        if let Some(block) = &p.block
            && let Err(e) = block_rules::check_body(block)
        {
            out.push(Action::Penalize {
                peer,
                fault: PeerFault::BadBlock(e),
            });
            return Ok(out);
        }
        let rejected = self.drive(Input::Proposal(p), Log::All, now_ms, mempool, &mut out)?;
        charge(peer, rejected, &mut out);
        Ok(out)
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
                self.peer_evidence(peer, ev, &mut out);
            }
            if let Some(set) = self.ledger.validator_set(v.height) {
                self.late.offer(&v, set);
            }
            return Ok(out);
        }
        let rejected = self.drive(Input::Vote(v), Log::All, now_ms, mempool, &mut out)?;
        charge(peer, rejected, &mut out);
        Ok(out)
    }

    /// Evidence a peer sent: kept and relayed if new and valid, charged to
    /// the peer if it does not verify.
    pub fn on_evidence(&mut self, peer: P, ev: pb::Evidence) -> Vec<Action<P>> {
        let mut out = Vec::new();
        self.peer_evidence(peer, ev, &mut out);
        out
    }

    fn peer_evidence(&mut self, peer: P, ev: pb::Evidence, out: &mut Vec<Action<P>>) {
        match self.pool.add(ev.clone(), &self.ledger) {
            Ok(Added::New(id)) => {
                out.push(Action::PersistEvidence(id, ev.clone()));
                out.push(Action::BroadcastEvidence(ev));
            }
            // Moot evidence races with the commit that made it moot.
            Ok(Added::Duplicate)
            | Err(PoolError::Full(_) | PoolError::TooFarAhead { .. } | PoolError::Moot(_)) => {}
            Err(e @ PoolError::Invalid(_)) => out.push(Action::Penalize {
                peer,
                fault: PeerFault::BadEvidence(e.to_string()),
            }),
        }
    }

    /// Evidence submitted by a client: its id and what to do, or why it was refused.
    pub fn submit_evidence(
        &mut self,
        ev: pb::Evidence,
    ) -> Result<(Hash, Vec<Action<P>>), PoolError> {
        let id = evidence_pool::evidence_id(&ev);
        let mut out = Vec::new();
        if let Added::New(_) = self.pool.add(ev.clone(), &self.ledger)? {
            out.push(Action::PersistEvidence(id, ev.clone()));
            out.push(Action::BroadcastEvidence(ev));
        }
        Ok((id, out))
    }

    /// A peer's latest committed height: fetch blocks at once when two or
    /// more behind (one behind is normal gossip lag).
    pub fn on_status(&mut self, peer: P, height: Height, now_ms: u64) -> Vec<Action<P>> {
        self.sync.note_height(peer, height);
        self.poll_sync(now_ms, 1)
    }

    /// A peer disconnected.
    pub fn on_peer_gone(&mut self, peer: &P) {
        self.sync.remove(peer);
    }

    /// Every [`TICK_MS`]: re-gossip the current height's verified messages
    /// and the pending evidence; fetch the block if still one height behind
    /// a whole tick after the height started (the others moved on and no
    /// longer send its messages).
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<Action<P>> {
        let slack = if now_ms.saturating_sub(self.height_started_ms) >= TICK_MS {
            0
        } else {
            1
        };
        let mut out = self.poll_sync(now_ms, slack);
        let (proposals, votes) = self.core.gossip_messages();
        out.extend(
            proposals
                .into_iter()
                .map(|p| Action::BroadcastProposal(Box::new(p))),
        );
        out.extend(votes.into_iter().map(Action::BroadcastVote));
        out.extend(self.pool.all().cloned().map(Action::BroadcastEvidence));
        out
    }

    fn poll_sync(&mut self, now_ms: u64, slack: u64) -> Vec<Action<P>> {
        let mut out = Vec::new();
        if let Some(peer) = self.sync.expire(now_ms) {
            out.push(Action::Penalize {
                peer,
                fault: PeerFault::FalseHeight,
            });
        }
        out.extend(self.sync.poll(now_ms, self.tip_height(), slack).map(|r| {
            Action::RequestBlocks {
                peer: r.peer,
                from: r.from,
                count: r.count,
            }
        }));
        out
    }

    /// A block response from `peer`: queued if it answers our request, else
    /// dropped unverified and charged. The host then calls
    /// [`Engine::next_synced_block`] until it returns None.
    pub fn on_block_response(&mut self, peer: P, resp: pb::BlockResponse) -> Vec<Action<P>> {
        match self.sync.on_response(peer, resp, self.tip_height()) {
            ResponseVerdict::Accepted { .. } | ResponseVerdict::Late => Vec::new(),
            ResponseVerdict::Unsolicited => vec![Action::Penalize {
                peer,
                fault: PeerFault::Unsolicited,
            }],
            ResponseVerdict::FalseHeight => vec![Action::Penalize {
                peer,
                fault: PeerFault::FalseHeight,
            }],
        }
    }

    /// Applies the next queued synced block, if any (see [`sync`]).
    pub fn next_synced_block(
        &mut self,
        now_ms: u64,
        mempool: &dyn MempoolView,
    ) -> Result<Option<Vec<Action<P>>>, EngineError> {
        let Some((peer, cb)) = self.sync.next_block() else {
            return Ok(None);
        };
        let mut out = Vec::new();
        if let Err(fault) = self.apply_synced(peer, cb, now_ms, mempool, &mut out)? {
            self.sync.drop_queue_from(&peer);
            out.push(Action::Penalize { peer, fault });
        }
        Ok(Some(out))
    }

    fn apply_synced(
        &mut self,
        _peer: P,
        cb: pb::CertifiedBlock,
        now_ms: u64,
        mempool: &dyn MempoolView,
        out: &mut Vec<Action<P>>,
    ) -> Result<Result<(), PeerFault>, EngineError> {
        let (Some(block), Some(cert)) = (cb.block, cb.certificate) else {
            return Ok(Err(PeerFault::Malformed("block or certificate missing")));
        };
        let Ok(cert) = CommitCertificate::from_proto(&cert) else {
            return Ok(Err(PeerFault::Malformed("certificate")));
        };
        let h = block.header.as_ref().map_or(0, |hd| hd.height);
        if h <= self.tip_height() {
            if h == self.tip_height() {
                self.notice_certificate(&cert, out);
            }
            return Ok(Ok(()));
        }
        if h != self.height() || cert.height != h {
            return Ok(Err(PeerFault::Malformed("block out of order")));
        }
        self.start_into(now_ms, mempool, out)?;
        // Starting the height feeds the core what it buffered for it, which
        // may have decided it: then this block is already committed.
        if h <= self.tip_height() {
            self.notice_certificate(&cert, out);
            return Ok(Ok(()));
        }
        if !skip_sync_body_fault(self.fault()) {
            let ctx = self.context();
            if let Err(e) = block_rules::check_block(&ctx, &block, Provenance::Certified) {
                return Ok(Err(PeerFault::BadBlock(e)));
            }
        }
        let rejected = self.drive(
            Input::SyncedBlock {
                block,
                certificate: cert,
            },
            Log::Answers,
            now_ms,
            mempool,
            out,
        )?;
        if let Some(r) = rejected.into_iter().next() {
            return Ok(Err(PeerFault::Consensus(r)));
        }
        if self.sync.next_is_empty() {
            out.extend(self.poll_sync(now_ms, 1));
        }
        Ok(Ok(()))
    }

    // ---- the core loop -------------------------------------------------------

    /// Feeds `first` and everything the engine answers in turn; returns the
    /// core's rejections of `first` itself (to charge its sender).
    fn drive(
        &mut self,
        first: Input,
        log: Log,
        now_ms: u64,
        mempool: &dyn MempoolView,
        out: &mut Vec<Action<P>>,
    ) -> Result<Vec<RejectReason>, EngineError> {
        let mut queue = VecDeque::from([first]);
        let mut rejected = Vec::new();
        let mut is_first = true;
        while let Some(input) = queue.pop_front() {
            let logged = match log {
                Log::All => true,
                Log::Answers => !is_first,
                Log::Nothing => false,
            };
            if logged && wal_height(&input) == Some(self.core.height()) {
                out.push(Action::Wal(input.clone()));
            }
            let outputs = self.core.handle(input);
            for (i, o) in outputs.iter().enumerate() {
                if let Output::PersistSigningState(_) = o
                    && !matches!(log, Log::Nothing)
                {
                    // Our own messages go to the WAL too: a restarted core
                    // gets them back and gossips them, or a peer that missed
                    // one (our vote, which we may not sign again) could wait
                    // for it forever. They are appended *before* the signing
                    // state that allows them, so its fsync makes them durable
                    // too; redb makes commits durable in order, so a record
                    // can never outlive a signing state that was lost.
                    out.extend(own_messages_after(&outputs[i + 1..]).map(Action::Wal));
                }
            }
            for o in outputs {
                match o {
                    Output::PersistSigningState(s) => out.push(Action::PersistSigningState(s)),
                    Output::BroadcastProposal(p) => out.push(Action::BroadcastProposal(p)),
                    Output::BroadcastVote(v) => out.push(Action::BroadcastVote(v)),
                    Output::ScheduleTimeout {
                        timeout,
                        duration_ms,
                    } => out.push(Action::ScheduleTimeout {
                        timeout,
                        duration_ms,
                    }),
                    Output::RequestProposal { height, round } => {
                        let block = self.propose(round, now_ms, mempool);
                        queue.push_back(Input::ProposalContent {
                            height,
                            round,
                            block,
                        });
                    }
                    Output::ValidateBlock {
                        height,
                        round,
                        block,
                    } => {
                        let valid = self.validate(round, &block, now_ms, out);
                        queue.push_back(Input::BlockValidity {
                            height,
                            round,
                            block_hash: block.header.as_ref().map_or(ZERO_HASH, header_hash),
                            valid,
                        });
                    }
                    Output::Decided(d) => {
                        let (_, verified) = self.core.gossip_messages();
                        self.past_votes.reset(d.height, verified);
                        let record = self.commit(*d, mempool)?;
                        out.push(Action::Commit(Box::new(record)));
                    }
                    Output::EvidenceFound(ev) => self.own_evidence(ev, out),
                    Output::Rejected(r) => {
                        if is_first {
                            rejected.push(r.clone());
                        }
                        out.push(Action::Rejected(r));
                    }
                }
            }
            is_first = false;
        }
        Ok(rejected)
    }

    fn context(&self) -> Context<'_> {
        Context {
            chain: &self.chain,
            ledger: &self.ledger,
            tip: &self.tip,
            height: self.height(),
            limits: &self.config.limits,
        }
    }

    /// Our block for `round`: the parent's certificate widened with late
    /// precommits first (so the signers who were slower are paid too).
    fn propose(&mut self, round: Round, now_ms: u64, mempool: &dyn MempoolView) -> pb::Block {
        if let Some(cert) = &self.tip.certificate
            && let Some(set) = self.ledger.validator_set(cert.height)
            && let Some(wider) = self.late.widen(cert, set, &self.chain)
        {
            self.tip.certificate = Some(wider);
        }
        let evidence = self.pool.for_block();
        block_rules::build_block(&self.context(), round, now_ms, mempool, evidence)
    }

    fn validate(
        &mut self,
        round: Round,
        block: &pb::Block,
        now_ms: u64,
        out: &mut Vec<Action<P>>,
    ) -> bool {
        let ctx = self.context();
        let verdict = block_rules::check_block(&ctx, block, Provenance::Proposal { round, now_ms });
        let Err(e) = verdict else { return true };
        if lenient_header_fault(self.fault()) && header_rule(&e) {
            return true;
        }
        if let (BlockError::LastCommit(_), Some(c)) = (&e, &block.last_commit)
            && let Ok(c) = CommitCertificate::from_proto(c)
        {
            self.notice_certificate(&c, out);
        }
        out.push(Action::InvalidBlock {
            height: self.height(),
            round,
            error: e,
        });
        false
    }

    /// A certificate for our tip height that commits another block in the
    /// same round is proof that more than 1/3 of the power double signed:
    /// both go into the pool as evidence (which verifies them).
    fn notice_certificate(&mut self, theirs: &CommitCertificate, out: &mut Vec<Action<P>>) {
        let Some(ours) = &self.tip.certificate else {
            return;
        };
        if let Some(ev) = conflicting_certificates(ours, theirs) {
            self.own_evidence(ev, out);
        }
    }

    fn own_evidence(&mut self, ev: pb::Evidence, out: &mut Vec<Action<P>>) {
        if drop_own_evidence_fault(self.fault()) {
            // The old behaviour, for the negative control: broadcast only.
            out.push(Action::BroadcastEvidence(ev));
            return;
        }
        if let Ok(Added::New(id)) = self.pool.add(ev.clone(), &self.ledger) {
            out.push(Action::PersistEvidence(id, ev.clone()));
            out.push(Action::BroadcastEvidence(ev));
        }
    }
}

/// Which inputs of one `drive` go to the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Log {
    /// The input and the engine's answers (template, verdicts): a peer's
    /// message or a timeout.
    All,
    /// Only the answers: the first input is rebuilt from the store
    /// (StartHeight, a synced block), but our own block template and our
    /// verdicts must be replayed as they were, so that a restarted proposer
    /// re-sends the proposal it signed instead of a new one its guard refuses.
    Answers,
    /// Nothing: a WAL replay (its records are in the WAL already).
    Nothing,
}

fn charge<P>(peer: P, rejected: Vec<RejectReason>, out: &mut Vec<Action<P>>)
where
    P: Copy,
{
    if let Some(r) = rejected.into_iter().next() {
        out.push(Action::Penalize {
            peer,
            fault: PeerFault::Consensus(r),
        });
    }
}

/// The height a consensus input belongs to, for the WAL (StartHeight and
/// synced blocks are rebuilt from the store, not logged).
fn wal_height(input: &Input) -> Option<Height> {
    match input {
        Input::Proposal(p) => Some(p.height),
        Input::Vote(v) => Some(v.height),
        Input::TimeoutFired(t) => Some(t.height),
        Input::BlockValidity { height, .. } | Input::ProposalContent { height, .. } => {
            Some(*height)
        }
        Input::StartHeight(_) | Input::SyncedBlock { .. } => None,
    }
}

/// The messages the core signed right after a `PersistSigningState`, as
/// WAL inputs (up to the next signing state).
fn own_messages_after(outputs: &[Output]) -> impl Iterator<Item = Input> + '_ {
    outputs
        .iter()
        .take_while(|o| !matches!(o, Output::PersistSigningState(_)))
        .filter_map(|o| match o {
            Output::BroadcastProposal(p) => Some(Input::Proposal((**p).clone())),
            Output::BroadcastVote(v) => Some(Input::Vote(v.clone())),
            _ => None,
        })
}

/// Header rules the `IgnoreHeaderRules` fault switches off.
fn header_rule(e: &BlockError) -> bool {
    matches!(
        e,
        BlockError::ProposalRound { .. }
            | BlockError::Time { .. }
            | BlockError::StateMismatch("app_hash")
    )
}

#[cfg(feature = "test-faults")]
fn lenient_header_fault(f: TestFault) -> bool {
    f == TestFault::IgnoreHeaderRules
}
#[cfg(not(feature = "test-faults"))]
fn lenient_header_fault(_: TestFault) -> bool {
    false
}

#[cfg(feature = "test-faults")]
fn drop_own_evidence_fault(f: TestFault) -> bool {
    f == TestFault::DropOwnEvidence
}
#[cfg(not(feature = "test-faults"))]
fn drop_own_evidence_fault(_: TestFault) -> bool {
    false
}

#[cfg(feature = "test-faults")]
fn skip_sync_body_fault(f: TestFault) -> bool {
    f == TestFault::SkipSyncBodyCheck
}
#[cfg(not(feature = "test-faults"))]
fn skip_sync_body_fault(_: TestFault) -> bool {
    false
}
