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
//! after one FastAggregateVerify of the result.
//!
//! A forged late precommit must not cost the validator it names: kept
//! first, it would take that validator's place (one per signer) and sink the
//! whole widening. So when the widened certificate fails, each collected
//! signature is checked alone: the bad ones are dropped, their validators
//! may be collected again, their senders are charged (an honest node sends
//! only its own votes and votes it verified, each its signer's own), and the good ones still
//! widen the certificate. The extra checks cost the forger's victims
//! nothing and happen only when a forgery was offered.

use crate::consensus::signed_points::{self, SignedPoints};
use crate::signing::vote_bytes;
use crate::{ChainId, CommitCertificate, Signature, ValidatorSet, VoteType};
use agora_proto::v1 as pb;

/// Late precommits of the last committed block, each with its sender.
#[derive(Debug)]
pub struct LatePrecommits<P> {
    /// (height, round, block hash) of the committed block's certificate.
    target: Option<(u64, u32, [u8; 32])>,
    /// Signers already in the certificate or collected, by canonical index.
    seen: Vec<bool>,
    sigs: Vec<(usize, Signature, P)>,
}

impl<P> Default for LatePrecommits<P> {
    fn default() -> Self {
        Self {
            target: None,
            seen: Vec::new(),
            sigs: Vec::new(),
        }
    }
}

/// What widening found: the wider certificate, if any, and the senders of
/// late precommits whose signatures failed alone, with the validator each
/// named (hex address).
#[derive(Debug)]
pub struct Widened<P> {
    /// The certificate with the good late signers added; None when there
    /// was nothing good to add.
    pub certificate: Option<CommitCertificate>,
    /// Who sent a bad late precommit, and in whose name.
    pub bad: Vec<(P, String)>,
}

impl<P: Copy> LatePrecommits<P> {
    /// Starts collecting for a newly committed block.
    pub fn reset(&mut self, cert: &CommitCertificate, set: &ValidatorSet) {
        self.target = Some((cert.height, cert.round, cert.block_hash));
        self.seen = (0..set.len())
            .map(|i| crate::certificate::bit(&cert.signers, i))
            .collect();
        self.sigs.clear();
    }

    /// Keeps `v`, sent by `sender`, if it is a precommit for the committed
    /// block from a set member not yet counted. Returns whether it was kept.
    pub fn offer(&mut self, v: &pb::Vote, set: &ValidatorSet, sender: P) -> bool {
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
        self.sigs.push((i, sig, sender));
        true
    }

    /// `cert` widened with the collected precommits: with all of them if
    /// the result verifies, else with those that verify alone.
    pub fn widen(
        &mut self,
        cert: &CommitCertificate,
        set: &ValidatorSet,
        chain: &ChainId,
        signed: &SignedPoints,
    ) -> Widened<P> {
        let mut out = Widened {
            certificate: None,
            bad: Vec::new(),
        };
        if self.sigs.is_empty() || self.target != Some((cert.height, cert.round, cert.block_hash)) {
            return out;
        }
        let collected = std::mem::take(&mut self.sigs);
        let mut sigs: Vec<(usize, Signature)> =
            collected.iter().map(|(i, s, _)| (*i, *s)).collect();
        if let Some(wider) = verified_wider(cert, set, chain, signed, &sigs) {
            out.certificate = Some(wider);
            return out;
        }
        let msg = vote_bytes(
            chain,
            VoteType::Precommit,
            cert.height,
            cert.round,
            &cert.block_hash,
        );
        sigs.clear();
        for (i, sig, sender) in collected {
            let key = &set.validators()[i].public_key;
            if signed_points::verify(signed, key, &msg, &sig).is_ok() {
                sigs.push((i, sig));
            } else {
                self.seen[i] = false;
                out.bad
                    .push((sender, set.validators()[i].address.to_string()));
            }
        }
        if !sigs.is_empty() {
            out.certificate = verified_wider(cert, set, chain, signed, &sigs);
        }
        out
    }
}

/// `cert` with `sigs` added, if the result verifies.
fn verified_wider(
    cert: &CommitCertificate,
    set: &ValidatorSet,
    chain: &ChainId,
    signed: &SignedPoints,
    sigs: &[(usize, Signature)],
) -> Option<CommitCertificate> {
    let wider = cert.with_more_signers(set, sigs).ok()?;
    wider
        .verify_reusing(chain, set, signed)
        .ok()
        .map(|()| wider)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Address, SecretKey, Validator};

    fn keys() -> Vec<SecretKey> {
        (1..=7u8)
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

    struct Fixture {
        chain: ChainId,
        keys: Vec<SecretKey>,
        set: ValidatorSet,
        cert: CommitCertificate,
        hash: [u8; 32],
    }

    /// Seven validators of power 10; the certificate has the first five.
    fn fixture() -> Fixture {
        let chain = ChainId::new("late").expect("chain");
        let keys = keys();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|k| Validator::new(k.public_key(), 10))
                .collect(),
        )
        .expect("set");
        let hash = [7u8; 32];
        let first: Vec<(usize, Signature)> = keys[..5]
            .iter()
            .map(|k| {
                let v = precommit(&chain, k, hash);
                let i = set.index_of(&Address::of(&k.public_key())).expect("member");
                (i, Signature::from_bytes(&v.signature).expect("sig"))
            })
            .collect();
        let cert = CommitCertificate::from_precommits(&set, 5, 0, hash, &first).expect("cert");
        Fixture {
            chain,
            keys,
            set,
            cert,
            hash,
        }
    }

    fn widen(late: &mut LatePrecommits<u8>, f: &Fixture) -> Widened<u8> {
        late.widen(&f.cert, &f.set, &f.chain, &SignedPoints::default())
    }

    #[test]
    fn a_late_precommit_widens_the_certificate() {
        let f = fixture();
        let mut late = LatePrecommits::default();
        late.reset(&f.cert, &f.set);
        // Already a signer, another block, another height: not kept.
        assert!(!late.offer(&precommit(&f.chain, &f.keys[0], f.hash), &f.set, 0));
        assert!(!late.offer(&precommit(&f.chain, &f.keys[5], [8; 32]), &f.set, 5));
        let mut other = precommit(&f.chain, &f.keys[5], f.hash);
        other.height = 6;
        assert!(!late.offer(&other, &f.set, 5));
        assert!(late.offer(&precommit(&f.chain, &f.keys[5], f.hash), &f.set, 5));
        assert!(
            !late.offer(&precommit(&f.chain, &f.keys[5], f.hash), &f.set, 5),
            "once per signer"
        );
        let w = widen(&mut late, &f);
        assert!(w.bad.is_empty());
        let wider = w.certificate.expect("widened");
        assert_eq!(wider.signed_power(&f.set).expect("power"), 60);
        assert!(wider.verify(&f.chain, &f.set).is_ok());
    }

    /// A forged late precommit for validator 5 (a valid point over other
    /// bytes), sent by peer 9 before the real one: the widened certificate
    /// fails, the forgery fails alone and its sender is named, validator 6's
    /// real precommit still widens the certificate, and validator 5's real
    /// precommit is collected when it comes. Control: before, the forgery
    /// sank the widening and kept the real precommit out.
    #[test]
    fn a_forged_late_precommit_costs_its_sender_not_the_validators() {
        let f = fixture();
        let mut late = LatePrecommits::default();
        late.reset(&f.cert, &f.set);
        let mut forged = precommit(&f.chain, &f.keys[5], f.hash);
        forged.signature = precommit(&f.chain, &f.keys[5], [8; 32]).signature;
        assert!(late.offer(&forged, &f.set, 9));
        assert!(late.offer(&precommit(&f.chain, &f.keys[6], f.hash), &f.set, 6));
        let w = widen(&mut late, &f);
        let five = f.set.validators()[f
            .set
            .index_of(&Address::of(&f.keys[5].public_key()))
            .expect("member")]
        .address
        .to_string();
        assert_eq!(w.bad, vec![(9, five)]);
        let wider = w.certificate.expect("widened with the good one");
        assert_eq!(wider.signed_power(&f.set).expect("power"), 60);
        assert!(wider.verify(&f.chain, &f.set).is_ok());
        assert!(
            late.offer(&precommit(&f.chain, &f.keys[5], f.hash), &f.set, 5),
            "the real one is collected after the forgery was dropped"
        );
        let w = widen(&mut late, &f);
        assert!(w.bad.is_empty());
        assert_eq!(
            w.certificate
                .expect("widened")
                .signed_power(&f.set)
                .expect("power"),
            60,
            "widened from the held certificate, which lacks 6: 5 added"
        );
    }
}
