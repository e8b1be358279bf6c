//! The core loop of the engine: feeding the consensus core and answering
//! its requests (our block, block verdicts, the commit, evidence) itself,
//! so that they never reach the host.

use super::actions::{Action, CommitRecord, PeerFault};
use super::block_rules::{self, BlockError, Context, MempoolView, Provenance};
use super::evidence_pool::Added;
use super::{Engine, EngineError};
use crate::block::header_hash;
use crate::certificate::CommitCertificate;
use crate::consensus::evidence::conflicting_certificates;
use crate::consensus::{Decision, Input, Output, RejectReason, TestFault};
use crate::crypto::ZERO_HASH;
use crate::types::{Height, Round};
use agora_proto::v1 as pb;
use std::collections::VecDeque;

impl<P: Copy + Ord + std::fmt::Debug> Engine<P> {
    // ---- the core loop -------------------------------------------------------

    /// Feeds `first` and everything the engine answers in turn; returns the
    /// core's rejections of `first` itself (to charge its sender).
    pub(super) fn drive(
        &mut self,
        first: Input,
        log: Log,
        now_ms: u64,
        mempool: &dyn MempoolView,
        out: &mut Vec<Action<P>>,
    ) -> Result<Vec<RejectReason>, EngineError> {
        // A height decided from a synced block was not watched live.
        let live = !matches!(first, Input::SyncedBlock { .. });
        let mut queue = VecDeque::from([first]);
        let mut rejected = Vec::new();
        let mut is_first = true;
        while let Some(input) = queue.pop_front() {
            let logged = match log {
                Log::All => true,
                Log::Answers => !is_first,
                Log::Nothing => false,
            };
            let outputs = self.feed(input, logged, !matches!(log, Log::Nothing), out);
            for o in outputs {
                if is_first && let Output::Rejected(r) = &o {
                    rejected.push(r.clone());
                }
                if let Some(next) = self.answer(o, live, now_ms, mempool, out)? {
                    queue.push_back(next);
                }
            }
            is_first = false;
        }
        Ok(rejected)
    }

    /// Hands one input to the core and returns what it asks for. The input
    /// (if `logged`) and our own messages it caused (if `log_own`) go to the
    /// WAL ahead of everything else it caused.
    fn feed(
        &mut self,
        input: Input,
        logged: bool,
        log_own: bool,
        out: &mut Vec<Action<P>>,
    ) -> Vec<Output> {
        let height = self.core.height();
        let record = (logged && wal_height(&input) == Some(height)).then(|| input.clone());
        self.core.set_signing_allowed(self.watch.gate.may_sign());
        let outputs = self.core.handle(input);
        self.charge_failed_alone(out);
        // Logged only if the core took it (see `wal_filter`), and placed
        // before everything it caused, so the WAL still leads every send.
        if let Some(rec) = record
            && self.wal_filter.admit(height, &rec, &outputs)
        {
            out.push(Action::Wal(rec));
        }
        for (i, o) in outputs.iter().enumerate() {
            if let Output::PersistSigningState(_) = o
                && log_own
            {
                // Our own messages go to the WAL too: a restarted core
                // gets them back and gossips them, or a peer that missed
                // one (our vote, which we may not sign again) could wait
                // for it forever. They are appended *before* the signing
                // state that allows them, so its fsync makes them durable
                // too. A crash between that fsync and the signing state's
                // own write leaves records the restored state does not
                // cover: `restart` adopts them before signing anything.
                out.extend(own_messages_after(&outputs[i + 1..]).map(Action::Wal));
            }
        }
        outputs
    }

    /// Carries out one of the core's outputs: an action for the host, or an
    /// answer the engine gives itself (our block, a block's verdict, the
    /// commit), returned as the core's next input.
    fn answer(
        &mut self,
        o: Output,
        live: bool,
        now_ms: u64,
        mempool: &dyn MempoolView,
        out: &mut Vec<Action<P>>,
    ) -> Result<Option<Input>, EngineError> {
        match o {
            Output::PersistSigningState(s) => out.push(Action::PersistSigningState(s)),
            Output::BroadcastProposal(p) => {
                if let Some(m) = super::key_watch::Signed::of_proposal(&self.chain, &p) {
                    self.watch.record(&m);
                }
                out.push(Action::BroadcastProposal(p))
            }
            Output::BroadcastVote(v) => {
                if let Some(m) = super::key_watch::Signed::of_vote(&self.chain, &v)
                    && !forget_own_votes_fault(self.fault())
                {
                    self.watch.record(&m);
                }
                out.push(Action::BroadcastVote(v))
            }
            Output::ScheduleTimeout {
                timeout,
                duration_ms,
            } => out.push(Action::ScheduleTimeout {
                timeout,
                duration_ms,
            }),
            Output::RequestProposal { height, round } => {
                return Ok(self.our_block(height, round, now_ms, mempool, out));
            }
            Output::ValidateBlock {
                height,
                round,
                block,
                carried_commit_verified,
            } => {
                let valid = self.validate(round, &block, now_ms, carried_commit_verified, out);
                return Ok(Some(Input::BlockValidity {
                    height,
                    round,
                    block_hash: block.header.as_ref().map_or(ZERO_HASH, header_hash),
                    valid,
                }));
            }
            Output::Decided(d) => {
                let record = self.decided(*d, live, mempool)?;
                out.push(Action::Commit(Box::new(record)));
            }
            Output::EvidenceFound(ev) => self.own_evidence(ev, out),
            Output::Rejected(r) => out.push(Action::Rejected(r)),
        }
        Ok(None)
    }

    /// The core asks for our block of (`height`, `round`): built from the
    /// mempool, unless block sync already holds that height's certified
    /// block.
    fn our_block(
        &mut self,
        height: Height,
        round: Round,
        now_ms: u64,
        mempool: &dyn MempoolView,
        out: &mut Vec<Action<P>>,
    ) -> Option<Input> {
        if self.certified_in_hand == Some(height) {
            // Block sync holds this height's certified block and applies it
            // next: a proposal would be built, signed, made durable and
            // broadcast for a decided height (and it cut a catching-up
            // validator's synced runs short at every height it was proposer
            // of).
            self.proposal_held_back = Some((height, round));
            return None;
        }
        let block = self.propose(round, now_ms, mempool, out);
        Some(Input::ProposalContent {
            height,
            round,
            block,
        })
    }

    /// The core decided a height: tells the signing gate whether we signed
    /// its certificate, then commits the block.
    fn decided(
        &mut self,
        d: Decision,
        live: bool,
        mempool: &dyn MempoolView,
    ) -> Result<CommitRecord, EngineError> {
        self.past_votes.reset(d.height, self.core.verified_votes());
        let ours = self
            .watch
            .signed_certificate(&d.certificate, self.ledger.validator_set(d.height));
        let signed_up_to = self.core.signing_state().map(|s| s.height);
        self.watch
            .gate
            .on_commit(d.height, live, ours, signed_up_to);
        self.commit(d, mempool)
    }

    pub(super) fn context(&self) -> Context<'_> {
        Context {
            chain: &self.chain,
            ledger: &self.ledger,
            tip: &self.tip,
            height: self.height(),
            limits: &self.config.limits,
            signed: self.core.signed_points(),
        }
    }

    /// Our block for `round`: the parent's certificate widened with late
    /// precommits first (so the signers who were slower are paid too); the
    /// senders of late precommits that fail alone are charged.
    pub(super) fn propose(
        &mut self,
        round: Round,
        now_ms: u64,
        mempool: &dyn MempoolView,
        out: &mut Vec<Action<P>>,
    ) -> pb::Block {
        if let Some(cert) = &self.tip.certificate
            && let Some(set) = self.ledger.validator_set(cert.height)
        {
            let widened = self
                .late
                .widen(cert, set, &self.chain, self.core.signed_points());
            for (peer, who) in widened.bad {
                out.push(Action::Penalize {
                    peer,
                    fault: PeerFault::Consensus(RejectReason::BadSignature(who)),
                });
            }
            if let Some(wider) = widened.certificate {
                self.tip.certificate = Some(wider);
            }
        }
        let evidence = self.pool.for_block();
        block_rules::build_block(&self.context(), round, now_ms, mempool, evidence)
    }

    fn validate(
        &mut self,
        round: Round,
        block: &pb::Block,
        now_ms: u64,
        carried_verified: Option<crate::crypto::Hash>,
        out: &mut Vec<Action<P>>,
    ) -> bool {
        let ctx = self.context();
        // What its proposal's body check computed, if it ran.
        let body = block
            .header
            .as_ref()
            .and_then(|h| self.bodies.get(&header_hash(h)));
        let provenance = Provenance::Proposal {
            round,
            now_ms,
            carried_verified,
        };
        let verdict = block_rules::check_block_with(&ctx, block, provenance, body);
        let e = match verdict {
            Ok(checked) => {
                if checked.carried_certificate_verified {
                    self.carried_certificates_verified += 1;
                }
                return true;
            }
            Err(e) => e,
        };
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
    pub(super) fn notice_certificate(
        &mut self,
        theirs: &CommitCertificate,
        out: &mut Vec<Action<P>>,
    ) {
        let Some(ours) = &self.tip.certificate else {
            return;
        };
        if let Some(ev) = conflicting_certificates(ours, theirs) {
            self.own_evidence(ev, out);
        }
    }

    pub(super) fn own_evidence(&mut self, ev: pb::Evidence, out: &mut Vec<Action<P>>) {
        if drop_own_evidence_fault(self.fault()) {
            // The old behaviour, for the negative control: broadcast only.
            out.push(Action::BroadcastEvidence(ev));
            return;
        }
        if let Ok(Added::New(id)) = self.pool.add(ev.clone(), &self.ledger) {
            self.evidence_added(id, ev, out);
        }
    }
}

/// Which inputs of one `drive` go to the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Log {
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

pub(super) fn charge<P>(peer: P, rejected: Vec<RejectReason>, out: &mut Vec<Action<P>>)
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

impl<P: Copy + Ord + std::fmt::Debug> Engine<P> {
    /// Charges the senders of the stored votes whose bytes the core found
    /// bad alone (`consensus::vote_set` docs); votes of no peer (our WAL's)
    /// or of one already charged for them are not.
    pub(super) fn charge_failed_alone(&mut self, out: &mut Vec<Action<P>>) {
        for v in self.core.take_failed_alone() {
            if let Some(peer) = self.vote_senders.take(&v) {
                let who = hex::encode(&v.validator_address);
                out.push(Action::Penalize {
                    peer,
                    fault: PeerFault::Consensus(RejectReason::BadSignature(who)),
                });
            }
        }
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
        Input::StartHeight(_) | Input::SyncedBlock { .. } | Input::SigningResumed => None,
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

/// `fn $name(f: TestFault) -> bool`: whether `f` is `TestFault::$variant`;
/// always false without the `test-faults` feature, where the variant does
/// not exist.
macro_rules! fault_predicate {
    ($vis:vis $name:ident, $variant:ident) => {
        #[cfg(feature = "test-faults")]
        $vis fn $name(f: TestFault) -> bool {
            f == TestFault::$variant
        }
        #[cfg(not(feature = "test-faults"))]
        $vis fn $name(_: TestFault) -> bool {
            false
        }
    };
}

fault_predicate!(lenient_header_fault, IgnoreHeaderRules);
fault_predicate!(drop_own_evidence_fault, DropOwnEvidence);
fault_predicate!(pub(super) skip_sync_body_fault, SkipSyncBodyCheck);
fault_predicate!(forget_own_votes_fault, ForgetOwnVotes);
