//! Evidence whose signatures were checked away from the consensus thread.
//!
//! Checking double-sign evidence costs pairings (two for conflicting votes,
//! more for conflicting certificates). A gRPC client can submit evidence as
//! fast as it likes, so the node checks it on a worker thread and hands the
//! consensus thread a [`CheckedEvidence`]: the evidence, what it proves, and
//! the hash of the validator set it was checked against. The ledger and the
//! evidence pool then accept it with state checks only (window, tombstones,
//! bounds) after comparing that hash with the set *they* hold for the
//! infraction height, so a check made against a stale or wrong set is never
//! trusted, and no signature is verified twice.
//!
//! The only way to build a `CheckedEvidence` is [`CheckedEvidence::check`],
//! which runs the full consensus verifier.

use super::evidence::{EvidenceError, EvidenceInfo, verify_evidence};
use crate::crypto::Hash;
use crate::types::ChainId;
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;

/// Evidence that passed [`verify_evidence`] against a validator set.
#[derive(Debug, Clone)]
pub struct CheckedEvidence {
    evidence: pb::Evidence,
    info: EvidenceInfo,
    set_hash: Hash,
}

impl CheckedEvidence {
    /// Verifies `evidence` against `set` (the set of its infraction height):
    /// shape, canonical order, conflict, membership and signatures.
    pub fn check(
        chain: &ChainId,
        set: &ValidatorSet,
        evidence: pb::Evidence,
    ) -> Result<Self, EvidenceError> {
        let info = verify_evidence(chain, set, &evidence)?;
        Ok(Self {
            evidence,
            info,
            set_hash: set.hash(),
        })
    }

    /// The evidence as submitted.
    pub fn evidence(&self) -> &pb::Evidence {
        &self.evidence
    }

    /// What it proves: the infraction height and the offenders.
    pub fn info(&self) -> &EvidenceInfo {
        &self.info
    }

    /// Hash of the validator set the signatures were checked against.
    pub fn set_hash(&self) -> Hash {
        self.set_hash
    }

    /// Whether the check was made against `set`.
    pub fn checked_against(&self, set: &ValidatorSet) -> bool {
        self.set_hash == set.hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::evidence::duplicate_vote;
    use crate::crypto::{SecretKey, sha3_256};
    use crate::signing::vote_bytes;
    use crate::types::{Address, Height, VoteType};
    use crate::validator_set::Validator;

    fn keys(seed: u8) -> Vec<SecretKey> {
        (0..4u8)
            .map(|i| SecretKey::from_seed(&sha3_256(&[seed, i])).expect("seed"))
            .collect()
    }

    fn set_of(keys: &[SecretKey]) -> ValidatorSet {
        ValidatorSet::new(
            keys.iter()
                .map(|k| Validator::new(k.public_key(), 10))
                .collect(),
        )
        .expect("set")
    }

    fn prevote(chain: &ChainId, k: &SecretKey, h: Height, hash: Hash) -> pb::Vote {
        pb::Vote {
            vote_type: VoteType::Prevote as i32,
            height: h,
            round: 0,
            block_hash: hash.to_vec(),
            validator_address: Address::of(&k.public_key()).0.to_vec(),
            signature: k
                .sign(&vote_bytes(chain, VoteType::Prevote, h, 0, &hash))
                .to_bytes()
                .to_vec(),
        }
    }

    fn double_prevote(chain: &ChainId, k: &SecretKey, h: Height) -> pb::Evidence {
        duplicate_vote(prevote(chain, k, h, [1; 32]), prevote(chain, k, h, [2; 32]))
    }

    #[test]
    fn check_binds_the_set_it_used() {
        let chain = ChainId::new("test-chain").expect("chain id");
        let (ks, others) = (keys(1), keys(2));
        let set = set_of(&ks);
        let ev = double_prevote(&chain, &ks[1], 3);
        let c = CheckedEvidence::check(&chain, &set, ev.clone()).expect("valid evidence");
        assert!(c.checked_against(&set));
        assert_eq!(c.info().height, 3);
        assert_eq!(c.info().offenders, vec![Address::of(&ks[1].public_key())]);
        assert_eq!(c.evidence(), &ev);
        assert!(
            !c.checked_against(&set_of(&others)),
            "another set must not match"
        );
    }

    #[test]
    fn check_refuses_a_bad_signature_and_a_stranger() {
        let chain = ChainId::new("test-chain").expect("chain id");
        let ks = keys(1);
        let set = set_of(&ks);
        let mut ev = double_prevote(&chain, &ks[1], 3);
        if let Some(pb::evidence::Kind::DuplicateVote(d)) = ev.kind.as_mut() {
            let a = d.vote_a.as_mut().expect("vote a");
            a.signature = ks[2].sign(b"something else").to_bytes().to_vec();
        }
        assert!(CheckedEvidence::check(&chain, &set, ev).is_err());
        let stranger = keys(9);
        let ev = double_prevote(&chain, &stranger[0], 3);
        assert!(matches!(
            CheckedEvidence::check(&chain, &set, ev),
            Err(EvidenceError::NotAValidator(_))
        ));
    }
}
