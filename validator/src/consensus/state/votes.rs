//! A vote from the network: decoded lazily, counted by its vote set, an
//! equivocation turned into evidence.

use super::super::buffer::Buffered;
use super::super::evidence;
use super::super::vote_set::{Insert, VoteContext};
use super::{Consensus, Output, RejectReason, value_of};
use crate::crypto::bls;
use crate::types::{Address, VoteType};
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
