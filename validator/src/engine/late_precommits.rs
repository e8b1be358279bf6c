//! Precommits for the last committed block that arrived after its quorum.
//!
//! A node commits height h as soon as more than 2/3 of the power precommits,
//! so the certificate it holds names only those first signers; with a
//! `timeout_commit` of 0 the rest arrive a few milliseconds later. Block
//! h+1 carries a certificate of h, and that certificate decides who is paid
//! for h and whose downtime window counts a miss (DESIGN §8). Measured on a
//! 4-validator loopback testnet before this existed: every validator was
//! missing from about a quarter of the certificates although all were up.
//! So the node keeps the late precommits of h (each signature decoded and
//! subgroup-checked once, at most one per validator of the set: bounded by
//! the set size) and, when it proposes h+1, widens its certificate with them
//! after one FastAggregateVerify of the result; a bad late signature only
//! costs that check and the certificate falls back to the one it had.

use crate::consensus::signed_points::SignedPoints;
use crate::{ChainId, CommitCertificate, Signature, ValidatorSet};
use agora_proto::v1 as pb;

/// Late precommits of the last committed block.
#[derive(Debug, Default)]
pub struct LatePrecommits {
    /// (height, round, block hash) of the committed block's certificate.
    target: Option<(u64, u32, [u8; 32])>,
    /// Signers already in the certificate or collected, by canonical index.
    seen: Vec<bool>,
    sigs: Vec<(usize, Signature)>,
}

impl LatePrecommits {
    /// Starts collecting for a newly committed block.
    pub fn reset(&mut self, cert: &CommitCertificate, set: &ValidatorSet) {
        self.target = Some((cert.height, cert.round, cert.block_hash));
        self.seen = (0..set.len())
            .map(|i| crate::certificate::bit(&cert.signers, i))
            .collect();
        self.sigs.clear();
    }

    /// Keeps `v` if it is a precommit for the committed block from a set
    /// member not yet counted. Returns whether it was kept.
    pub fn offer(&mut self, v: &pb::Vote, set: &ValidatorSet) -> bool {
        let Some((h, r, hash)) = self.target else {
            return false;
        };
        if v.vote_type != pb::VoteType::Precommit as i32
            || v.height != h
            || v.round != r
            || v.block_hash.as_slice() != hash.as_slice()
        {
            return false;
        }
        let Some(i) = crate::Address::from_slice(&v.validator_address)
            .ok()
            .and_then(|a| set.index_of(&a))
        else {
            return false;
        };
        if self.seen.get(i).copied().unwrap_or(true) {
            return false;
        }
        let Ok(sig) = Signature::from_bytes(&v.signature) else {
            return false;
        };
        self.seen[i] = true;
        self.sigs.push((i, sig));
        true
    }

    /// `cert` widened with the collected precommits if the result verifies
    /// against `set`; `None` when there is nothing to add or it fails.
    pub fn widen(
        &mut self,
        cert: &CommitCertificate,
        set: &ValidatorSet,
        chain: &ChainId,
        signed: &SignedPoints,
    ) -> Option<CommitCertificate> {
        if self.sigs.is_empty() || self.target != Some((cert.height, cert.round, cert.block_hash)) {
            return None;
        }
        let sigs = std::mem::take(&mut self.sigs);
        let wider = cert.with_more_signers(set, &sigs).ok()?;
        wider
            .verify_reusing(chain, set, signed)
            .ok()
            .map(|()| wider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::vote_bytes;
    use crate::{Address, SecretKey, Validator, VoteType};

    fn keys() -> Vec<SecretKey> {
        (1..=4u8)
            .map(|i| SecretKey::from_seed(&[i; 32]).expect("key"))
            .collect()
    }

    fn precommit(chain: &ChainId, k: &SecretKey, hash: [u8; 32]) -> pb::Vote {
        let sig = k.sign(&vote_bytes(chain, VoteType::Precommit, 5, 0, &hash));
        pb::Vote {
            vote_type: pb::VoteType::Precommit as i32,
            height: 5,
            round: 0,
            block_hash: hash.to_vec(),
            validator_address: Address::of(&k.public_key()).0.to_vec(),
            signature: sig.to_bytes().to_vec(),
        }
    }

    #[test]
    fn a_late_precommit_widens_the_certificate_and_a_bad_one_is_not_used() {
        let chain = ChainId::new("late").expect("chain");
        let keys = keys();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|k| Validator::new(k.public_key(), 10))
                .collect(),
        )
        .expect("set");
        let hash = [7u8; 32];
        let idx = |k: &SecretKey| set.index_of(&Address::of(&k.public_key())).expect("member");
        let sig = |k: &SecretKey| {
            Signature::from_bytes(&precommit(&chain, k, hash).signature).expect("sig")
        };
        let first: Vec<(usize, Signature)> = keys[..3].iter().map(|k| (idx(k), sig(k))).collect();
        let cert = CommitCertificate::from_precommits(&set, 5, 0, hash, &first).expect("cert");
        let mut late = LatePrecommits::default();
        late.reset(&cert, &set);
        // Already a signer, another block, another height: not kept.
        assert!(!late.offer(&precommit(&chain, &keys[0], hash), &set));
        assert!(!late.offer(&precommit(&chain, &keys[3], [8; 32]), &set));
        let mut other = precommit(&chain, &keys[3], hash);
        other.height = 6;
        assert!(!late.offer(&other, &set));
        assert!(late.offer(&precommit(&chain, &keys[3], hash), &set));
        assert!(
            !late.offer(&precommit(&chain, &keys[3], hash), &set),
            "once per signer"
        );
        let wider = late
            .widen(&cert, &set, &chain, &SignedPoints::default())
            .expect("widened");
        assert_eq!(wider.signed_power(&set).expect("power"), 40);
        assert!(wider.verify(&chain, &set).is_ok());
        // Negative control: a late "precommit" signed over other bytes is
        // kept (checks are deferred) but the widened certificate fails its
        // verification, so none is returned.
        late.reset(&cert, &set);
        let mut forged = precommit(&chain, &keys[3], hash);
        forged.signature = sig(&keys[0]).to_bytes().to_vec();
        assert!(late.offer(&forged, &set));
        assert!(
            late.widen(&cert, &set, &chain, &SignedPoints::default())
                .is_none()
        );
    }
}
