//! A vote from the network: decoded lazily, counted by its vote set, an
//! equivocation turned into evidence.
//!
//! **Which conflicting votes are kept.** A validator's first vote of a
//! (round, type) is always stored. A further, conflicting one (an
//! equivocation, made evidence whether stored or not) is stored only for
//! nil, for up to `vote_set::MAX_UNKNOWN_VALUES_PER_VOTER` values in all
//! (votes may come before the proposal that makes them matter), and for
//! the blocks votes of that round can matter for here
//! ([`HeightState::counts_in_round`]): the block proposed in that round
//! (lines 36 and 49 of the paper read votes of a round only with that
//! round's proposal) and a block a kept proposal re-proposes with that
//! round as its proof-of-lock round (line 28). Every threshold any honest
//! node can see for a block in round r holds an honest vote for it, and an
//! honest validator votes in round r only for a block proposed in round r;
//! whatever this node's rules can use is in that set.
//!
//! Before, a conflicting vote was kept for every block this node knew. One
//! proposal is kept per round, so after R rounds an equivocator could store
//! R + 4 votes per round and type: memory quadratic in the rounds of one
//! height. Now each kept proposal makes its block count in at most two
//! rounds, so an equivocator stores at most 4 votes per round and type
//! plus 2 per kept proposal. A vote dropped because its block did not count
//! yet is not lost for liveness: honest nodes re-send every verified vote
//! of the height each tick (`Consensus::regossip_messages`), and the node
//! whose proposal made the block count holds it.

use super::super::buffer::Buffered;
use super::super::evidence;
use super::super::vote_set::{Insert, VoteContext};
use super::{Consensus, HeightState, Output, RejectReason, value_of};
use crate::crypto::Hash;
use crate::crypto::bls;
use crate::types::{Address, Round, VoteType};
use agora_proto::v1 as pb;

impl Consensus {
    pub(super) fn on_vote(&mut self, v: pb::Vote, out: &mut Vec<Output>) {
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
        // Asked only of a voter that already has a vote here: a first vote
        // is always stored, and most votes are first votes.
        let conflicting = hs
            .votes
            .get(&(r, vote_type))
            .is_some_and(|vs| vs.has_vote_of(idx));
        let keep_conflicting = conflicting
            && match value {
                None => true,
                // Every block a kept proposal named, held or released.
                Some(b) if keeps_votes_for_known_blocks(self.config.test_fault) => {
                    hs.proposals.values().any(|p| p.block_hash == b)
                }
                Some(b) => hs.counts_in_round(r, &b),
            };
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
            signed: &self.signed,
            salt: self.verify_salt.as_ref(),
            fault: self.config.test_fault,
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
}

impl HeightState {
    /// Whether votes of round `r` for block `b` can matter to this node's
    /// rules (module docs): `b` is the block of round r's kept proposal, or
    /// a kept proposal re-proposes `b` with r as its proof-of-lock round.
    fn counts_in_round(&self, r: Round, b: &Hash) -> bool {
        self.proposals.get(&r).is_some_and(|p| p.block_hash == *b)
            || self
                .proposals
                .values()
                .any(|p| p.pol_round == Some(r) && p.block_hash == *b)
    }
}

#[cfg(feature = "test-faults")]
fn keeps_votes_for_known_blocks(f: super::TestFault) -> bool {
    f == super::TestFault::KeepVotesForKnownBlocks
}
#[cfg(not(feature = "test-faults"))]
fn keeps_votes_for_known_blocks(_: super::TestFault) -> bool {
    false
}
