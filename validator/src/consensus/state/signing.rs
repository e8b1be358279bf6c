//! What this validator signs: its proposals (from the host's block
//! template) and its votes, each through the double-sign guard and the
//! host's signing gate.

use super::super::evidence;
use super::super::signed_points::SignedPoints;
use super::super::signing_state::{self, SignDecision, SignStep};
use super::super::vote_set::Value;
use super::{Consensus, Output, ProposalEntry, RejectReason, Step};
use crate::block::header_hash;
use crate::crypto::{Hash, SecretKey, Signature, ZERO_HASH, vrf};
use crate::signing::{proposal_bytes, vote_bytes};
use crate::types::{Height, Round, VoteType};
use agora_proto::v1 as pb;

impl Consensus {
    pub(super) fn guarded_sign(
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
                Some(sign(&mut self.signed, key, step, bytes))
            }
            SignDecision::SignAgain => Some(sign(&mut self.signed, key, step, bytes)),
            SignDecision::Refuse => {
                self.stats.refused_signatures += 1;
                None
            }
        }
    }

    pub(super) fn sign_and_send_proposal(
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
            hs.blocks.insert(block_hash, block, round);
            // The host built it; our own block needs no second opinion.
            hs.validity.entry(block_hash).or_insert(true);
        }
        out.push(Output::BroadcastProposal(Box::new(proposal)));
    }

    pub(super) fn cast_vote(&mut self, vote_type: VoteType, value: Value, out: &mut Vec<Output>) {
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

    pub(super) fn on_content(
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

    /// [`Input::SigningResumed`]: the missed vote, if this round and step
    /// still owe it.
    pub(super) fn resume_signing(&mut self, out: &mut Vec<Output>) {
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
}

/// A vote is signed from its hashed message, which is kept for the quorum
/// check of the same bytes; a proposal is signed plainly (nobody here
/// checks it again).
fn sign(signed: &mut SignedPoints, key: &SecretKey, step: SignStep, bytes: &[u8]) -> Signature {
    match step {
        SignStep::Propose => key.sign(bytes),
        SignStep::Prevote | SignStep::Precommit => signed.sign(key, bytes),
    }
}
