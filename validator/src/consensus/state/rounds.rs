//! Heights, rounds and steps: StartRound (lines 11–21), the timeouts
//! (lines 57, 61, 65) and the buffered messages a new height releases.

use super::super::buffer::Buffered;
use super::super::timeouts::{Timeout, TimeoutStep};
use super::{Consensus, HeightParams, HeightState, HeldBlocks, Output, Step};
use crate::crypto::Hash;
use crate::lottery;
use crate::types::{Round, VoteType};
use std::collections::{BTreeMap, BTreeSet};

impl Consensus {
    pub(super) fn start_height(&mut self, params: HeightParams, out: &mut Vec<Output>) {
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
            blocks: HeldBlocks::default(),
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
    pub(super) fn start_round(&mut self, round: Round, out: &mut Vec<Output>) {
        let Some(hs) = self.hs.as_mut() else { return };
        hs.round = round;
        hs.step = Step::Propose;
        hs.awaiting_content = None;
        let keep: Vec<Hash> = [hs.locked, hs.valid]
            .into_iter()
            .flatten()
            .map(|(v, _)| v)
            .collect();
        for v in hs.blocks.release_before(round, &keep) {
            // Its verdict, if still to come, is dropped (the block is not
            // held): a proposal bringing the block back asks again.
            hs.validation_requested.remove(&v);
        }
        let h = hs.params.height;
        let proposer =
            lottery::proposer(&hs.params.validator_set, &hs.params.prev_seed, h, round).address;
        if Some(proposer) == self.address {
            let valid = hs
                .valid
                .and_then(|(v, vr)| Some((v, vr, hs.blocks.get(&v)?.clone())));
            match valid {
                Some((v, vr, block)) => {
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

    pub(super) fn schedule(&self, step: TimeoutStep, round: Round, out: &mut Vec<Output>) {
        out.push(Output::ScheduleTimeout {
            timeout: Timeout {
                height: self.height(),
                round,
                step,
            },
            duration_ms: self.config.timeouts.duration_ms(step, round),
        });
    }

    pub(super) fn on_timeout(&mut self, t: Timeout, out: &mut Vec<Output>) {
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

    pub(super) fn set_step(&mut self, step: Step) {
        if let Some(hs) = self.hs.as_mut() {
            hs.step = step;
        }
    }
}
