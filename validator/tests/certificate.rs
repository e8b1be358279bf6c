//! Commit certificates built from precommits and checked against a validator set.

use agora_validator::certificate::{CertificateError, CommitCertificate};
use agora_validator::crypto::SecretKey;
use agora_validator::signing::vote_bytes;
use agora_validator::types::{ChainId, VoteType};
use agora_validator::validator_set::{Validator, ValidatorSet};

struct Net {
    chain: ChainId,
    keys: Vec<SecretKey>,
    set: ValidatorSet,
}

/// A set whose canonical order matches `keys` (keys are re-ordered to match).
fn net(powers: &[u64]) -> Net {
    let mut pairs: Vec<(SecretKey, Validator)> = powers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let sk = SecretKey::from_seed(&[i as u8 + 40; 32]).expect("seed");
            let v = Validator::new(sk.public_key(), *p);
            (sk, v)
        })
        .collect();
    pairs.sort_by_key(|(_, v)| v.address);
    let set = ValidatorSet::new(pairs.iter().map(|p| p.1.clone()).collect()).expect("set");
    Net {
        chain: ChainId::new("cert-test").expect("chain"),
        keys: pairs.into_iter().map(|p| p.0).collect(),
        set,
    }
}

fn cert(n: &Net, signers: &[usize], h: u64, r: u32, hash: [u8; 32]) -> CommitCertificate {
    let msg = vote_bytes(&n.chain, VoteType::Precommit, h, r, &hash);
    let pcs: Vec<_> = signers
        .iter()
        .map(|i| (*i, n.keys[*i].sign(&msg)))
        .collect();
    CommitCertificate::from_precommits(&n.set, h, r, hash, &pcs).expect("build")
}

#[test]
fn certificate_verifies_with_quorum_and_roundtrips() {
    let n = net(&[10, 20, 30, 40]);
    let c = cert(&n, &[1, 2, 3], 9, 0, [7; 32]);
    c.verify_for(&n.chain, &n.set, 9, &[7; 32]).expect("valid");
    let back = CommitCertificate::from_proto(&c.to_proto()).expect("decode");
    assert_eq!(back, c);
    assert_eq!(back.hash(), c.hash());
}

#[test]
fn certificate_errors_are_distinct() {
    // Powers in canonical order differ from the input order; use indices.
    let n = net(&[25, 25, 25, 25]);
    // Exactly 2/3 is not enough: 3 of 4 equal validators is 75% (ok), 2 is 50%.
    let weak = cert(&n, &[0, 1], 3, 1, [1; 32]);
    assert_eq!(
        weak.verify(&n.chain, &n.set),
        Err(CertificateError::InsufficientPower {
            signed: 50,
            total: 100
        })
    );
    let good = cert(&n, &[0, 1, 2], 3, 1, [1; 32]);
    assert_eq!(
        good.verify_for(&n.chain, &n.set, 4, &[1; 32]),
        Err(CertificateError::WrongHeight {
            expected: 4,
            got: 3
        })
    );
    assert!(matches!(
        good.verify_for(&n.chain, &n.set, 3, &[2; 32]),
        Err(CertificateError::WrongBlock { .. })
    ));
    // A bit beyond the set.
    let mut out = good.clone();
    out.signers[0] |= 1 << 5;
    assert_eq!(
        out.verify(&n.chain, &n.set),
        Err(CertificateError::SignerOutOfRange {
            index: 5,
            set_len: 4
        })
    );
    // Claiming a signer that did not sign.
    let mut forged = good.clone();
    forged.signers[0] = 0b1111;
    assert_eq!(
        forged.verify(&n.chain, &n.set),
        Err(CertificateError::BadSignature)
    );
    // The same signatures over another round do not verify.
    let mut moved = good.clone();
    moved.round = 2;
    assert_eq!(
        moved.verify(&n.chain, &n.set),
        Err(CertificateError::BadSignature)
    );
    // Another chain id does not verify.
    let other = ChainId::new("other-chain").expect("chain");
    assert_eq!(
        good.verify(&other, &n.set),
        Err(CertificateError::BadSignature)
    );
    // A padded bitmap is rejected: one encoding per certificate.
    let mut padded = good;
    padded.signers.push(0);
    assert!(matches!(
        padded.verify(&n.chain, &n.set),
        Err(CertificateError::BitmapLength {
            expected: 1,
            got: 2
        })
    ));
}

#[test]
fn certificate_quorum_is_strictly_more_than_two_thirds_of_power() {
    // Canonical order is by address, so find indices by power.
    let n = net(&[1, 2, 3, 3]);
    let idx = |p: u64| -> Vec<usize> {
        n.set
            .validators()
            .iter()
            .enumerate()
            .filter(|(_, v)| v.power == p)
            .map(|(i, _)| i)
            .collect()
    };
    let threes = idx(3);
    let (one, two) = (idx(1)[0], idx(2)[0]);
    // 3 + 3 = 6 of 9 is exactly 2/3: not a quorum.
    let c = cert(&n, &threes, 1, 0, [3; 32]);
    assert!(matches!(
        c.verify(&n.chain, &n.set),
        Err(CertificateError::InsufficientPower {
            signed: 6,
            total: 9
        })
    ));
    // 3 + 3 + 1 = 7 of 9: a quorum.
    let mut signers = threes.clone();
    signers.push(one);
    cert(&n, &signers, 1, 0, [3; 32])
        .verify(&n.chain, &n.set)
        .expect("7/9");
    // 2 + 3 + 1 = 6: not.
    let c = cert(&n, &[two, threes[0], one], 1, 0, [3; 32]);
    assert!(c.verify(&n.chain, &n.set).is_err());
}

#[test]
fn malformed_certificates_are_rejected_on_decode() {
    let n = net(&[1, 1, 1, 1]);
    let mut p = cert(&n, &[0, 1, 2], 1, 0, [9; 32]).to_proto();
    p.block_hash.pop();
    assert!(matches!(
        CommitCertificate::from_proto(&p),
        Err(CertificateError::Malformed(_))
    ));
    let mut p = cert(&n, &[0, 1, 2], 1, 0, [9; 32]).to_proto();
    p.aggregate_signature[0] ^= 0x01;
    assert!(
        CommitCertificate::from_proto(&p).is_err() || {
            // Flipping a bit may still decode to a valid point; then it must not verify.
            let c = CommitCertificate::from_proto(&p).expect("decoded");
            c.verify(&n.chain, &n.set).is_err()
        }
    );
    let mut p = cert(&n, &[0, 1, 2], 1, 0, [9; 32]).to_proto();
    p.signers = vec![0xff; 20_000];
    assert!(CommitCertificate::from_proto(&p).is_err());
}
