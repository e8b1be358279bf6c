//! The "upon" rules of Algorithm 1, evaluated after every input until none
//! fires, and the quorum rule they count with.

use super::super::timeouts::TimeoutStep;
use super::super::vote_set::{Value, VoteContext, VoteSet};
use super::{Consensus, Output, ProposalEntry, Step, TestFault};
use crate::crypto::Hash;
use crate::lottery;
use crate::types::{Power, Round, VoteType};
use crate::validator_set::ValidatorSet;
use std::collections::{BTreeMap, BTreeSet};

impl Consensus {
    /// Evaluates the upon-rules until none fires.
    pub(super) fn run_rules(&mut self, out: &mut Vec<Output>) {
        // Each firing advances (round, step) or sets a once-per-round flag,
        // so this terminates; the bound is a guard against a logic error.
        for _ in 0..10_000 {
            if !self.fire_one(out) {
                return;
            }
        }
    }

    pub(super) fn quorum_prevotes_for(&mut self, round: Round, value: &Value) -> bool {
        self.tally(round, VoteType::Prevote, Some(value))
    }

    /// Verified quorum for `value` (or for any value when None) at (round, type).
    pub(super) fn tally(
        &mut self,
        round: Round,
        vote_type: VoteType,
        value: Option<&Value>,
    ) -> bool {
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
            signed: &self.signed,
            salt: self.verify_salt.as_ref(),
            fault: self.config.test_fault,
        };
        let q = |p: Power| quorum_with(fault, set, p);
        match value {
            Some(v) => vs.quorum_for(&ctx, v, &q),
            None => vs.threshold_any(&ctx, &q),
        }
    }

    /// Line 55: f+1 power of distinct senders in a higher round.
    pub(super) fn skip_target(&mut self) -> Option<Round> {
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
                        signed: &self.signed,
                        salt: self.verify_salt.as_ref(),
                        fault: self.config.test_fault,
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

    /// Fires the first rule that applies, in the paper's order of
    /// precedence; false when none does.
    pub(super) fn fire_one(&mut self, out: &mut Vec<Output>) -> bool {
        if self.hs.as_ref().is_none_or(|hs| hs.decided) {
            return false;
        }
        self.decide_on_precommit_quorum(out)
            || self.skip_to_higher_round(out)
            || self.prevote_on_proposal(out)
            || self.schedule_prevote_timeout(out)
            || self.lock_on_polka(out)
            || self.raise_valid_on_past_polka()
            || self.precommit_nil_on_nil_polka(out)
            || self.schedule_precommit_timeout(out)
    }

    /// Line 49: decide on a valid proposal with a precommit quorum in any
    /// round.
    fn decide_on_precommit_quorum(&mut self, out: &mut Vec<Output>) -> bool {
        let Some(hs) = self.hs.as_ref() else {
            return false;
        };
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
        false
    }

    /// Line 55: f+1 power of messages from a higher round moves there.
    fn skip_to_higher_round(&mut self, out: &mut Vec<Output>) -> bool {
        let Some(r) = self.skip_target() else {
            return false;
        };
        self.start_round(r, out);
        true
    }

    /// The round's proposal while in the propose step, with the host's
    /// verdict on its block.
    fn current_proposal(&self) -> Option<(ProposalEntry, Option<bool>)> {
        let hs = self.hs.as_ref()?;
        let p = hs.proposals.get(&hs.round)?;
        Some((p.clone(), hs.validity.get(&p.block_hash).copied()))
    }

    /// Lines 22 and 28: prevote the round's proposal (a fresh one, or a
    /// re-proposal with a polka in its valid round) if it is valid and the
    /// lock allows it; nil otherwise.
    fn prevote_on_proposal(&mut self, out: &mut Vec<Output>) -> bool {
        let Some(hs) = self.hs.as_ref() else {
            return false;
        };
        let (round, step, locked) = (hs.round, hs.step, hs.locked);
        let Some((p, Some(valid))) = self.current_proposal() else {
            return false;
        };
        if step != Step::Propose {
            return false;
        }
        let v = p.block_hash;
        let ignore_lock = self.ignores_lock();
        let free = match p.pol_round {
            // Line 22.
            None => ignore_lock || locked.is_none_or(|(lv, _)| lv == v),
            // Line 28.
            Some(vr) if vr < round && self.quorum_prevotes_for(vr, &Some(v)) => {
                ignore_lock || locked.is_none_or(|(lv, lr)| lr <= vr || lv == v)
            }
            _ => return false,
        };
        self.cast_vote(VoteType::Prevote, (valid && free).then_some(v), out);
        self.set_step(Step::Prevote);
        true
    }

    /// Line 34: prevotes of more than 2/3 for anything start the prevote
    /// timeout (once per round).
    fn schedule_prevote_timeout(&mut self, out: &mut Vec<Output>) -> bool {
        let Some(hs) = self.hs.as_ref() else {
            return false;
        };
        let round = hs.round;
        if hs.step != Step::Prevote
            || hs.prevote_timeout_done.contains(&round)
            || !self.tally(round, VoteType::Prevote, None)
        {
            return false;
        }
        if let Some(hs) = self.hs.as_mut() {
            hs.prevote_timeout_done.insert(round);
        }
        self.schedule(TimeoutStep::Prevote, round, out);
        true
    }

    /// Line 36: a polka for the round's valid proposal makes it the valid
    /// value and, still in the prevote step, locks on it and precommits it
    /// (once per round).
    fn lock_on_polka(&mut self, out: &mut Vec<Output>) -> bool {
        let Some(hs) = self.hs.as_ref() else {
            return false;
        };
        let (round, step) = (hs.round, hs.step);
        let Some((p, Some(true))) = self.current_proposal() else {
            return false;
        };
        let v = p.block_hash;
        if step < Step::Prevote
            || hs.line36_done.contains(&round)
            || !self.quorum_prevotes_for(round, &Some(v))
        {
            return false;
        }
        let hs = self.hs.as_mut().expect("checked above");
        hs.line36_done.insert(round);
        hs.valid = Some((v, round));
        if step == Step::Prevote {
            hs.locked = Some((v, round));
            self.cast_vote(VoteType::Precommit, Some(v), out);
            self.set_step(Step::Precommit);
        }
        true
    }

    /// Line 36 for a round already left (an extension of the paper, whose
    /// rule looks at the current round only): a polka for a past round's
    /// valid proposal, in a round above the valid round, makes it the valid
    /// value. The lock never moves here, and nothing is signed.
    ///
    /// Why: a validator that reaches a round late can complete its polka
    /// with its own prevote and lock on it (line 36 in its view) after
    /// everyone else left that round. The others then never take the value
    /// as valid, the locked validator prevotes nil on every fresh proposal,
    /// and when its power is needed for a quorum the height waits until it
    /// is itself the proposer and re-proposes its lock (line 16). The
    /// paper's proposers rotate, so that wait is bounded; a stake-weighted
    /// lottery picks a validator with a tenth of the power with no bound
    /// (the simulator found a height stalled for the 20 rounds of its
    /// liveness bound, seed 9,120,864). With this rule every honest
    /// validator that sees the late polka (every vote is re-gossiped each
    /// tick) proposes the value with that valid round, which the locked
    /// validator accepts by line 28.
    ///
    /// Safe: the valid value only says what this validator proposes (line
    /// 16), and a proposal naming a round with a real polka for its value
    /// is what any proposer, a Byzantine one too, may send; line 28 at each
    /// receiver checks the polka and the lock as before. Terminates: each
    /// firing raises the valid round.
    fn raise_valid_on_past_polka(&mut self) -> bool {
        let Some(hs) = self.hs.as_ref() else {
            return false;
        };
        let floor = hs.valid.map(|(_, r)| r);
        let candidates: Vec<(Round, Hash)> = hs
            .proposals
            .range(..hs.round)
            .rev()
            .filter(|(r, _)| floor.is_none_or(|f| **r > f))
            .filter(|(_, e)| hs.validity.get(&e.block_hash) == Some(&true))
            .map(|(r, e)| (*r, e.block_hash))
            .collect();
        for (r, v) in candidates {
            if self.quorum_prevotes_for(r, &Some(v)) {
                let hs = self.hs.as_mut().expect("checked above");
                debug_assert!(hs.valid.is_none_or(|(_, vr)| vr < r));
                hs.valid = Some((v, r));
                return true;
            }
        }
        false
    }

    /// Line 44: a polka for nil precommits nil.
    fn precommit_nil_on_nil_polka(&mut self, out: &mut Vec<Output>) -> bool {
        let Some(hs) = self.hs.as_ref() else {
            return false;
        };
        let round = hs.round;
        if hs.step != Step::Prevote || !self.quorum_prevotes_for(round, &None) {
            return false;
        }
        self.cast_vote(VoteType::Precommit, None, out);
        self.set_step(Step::Precommit);
        true
    }

    /// Line 47: precommits of more than 2/3 for anything start the
    /// precommit timeout (once per round).
    fn schedule_precommit_timeout(&mut self, out: &mut Vec<Output>) -> bool {
        let Some(hs) = self.hs.as_ref() else {
            return false;
        };
        let round = hs.round;
        if hs.precommit_timeout_done.contains(&round)
            || !self.tally(round, VoteType::Precommit, None)
        {
            return false;
        }
        if let Some(hs) = self.hs.as_mut() {
            hs.precommit_timeout_done.insert(round);
        }
        self.schedule(TimeoutStep::Precommit, round, out);
        true
    }

    pub(super) fn ignores_lock(&self) -> bool {
        #[cfg(feature = "test-faults")]
        if self.config.test_fault == TestFault::IgnoreLock {
            return true;
        }
        false
    }
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
