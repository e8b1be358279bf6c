//! The chain verifier accepts an honestly built chain and names the first
//! tampered field of a dishonest one.

use agora_proto::v1 as pb;
use agora_validator::block::{header_hash, list_hash};
use agora_validator::certificate::{CertificateError, CommitCertificate};
use agora_validator::chain_verifier::{ChainError, ChainVerifier, verify_body};
use agora_validator::crypto::{Hash, SecretKey, ZERO_HASH, sha3_256, vrf};
use agora_validator::lottery;
use agora_validator::signing::vote_bytes;
use agora_validator::types::{ChainId, VoteType};
use agora_validator::validator_set::{Validator, ValidatorSet};

struct Chain {
    chain: ChainId,
    keys: Vec<SecretKey>,
    set: ValidatorSet,
    seed0: Hash,
    blocks: Vec<(pb::Header, CommitCertificate)>,
}

fn build(n_heights: u64, round_of: impl Fn(u64) -> u32) -> Chain {
    let chain = ChainId::new("audit-test").expect("chain");
    let mut pairs: Vec<(SecretKey, Validator)> = [40u64, 30, 20, 10]
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let sk = SecretKey::from_seed(&[i as u8 + 90; 32]).expect("seed");
            let v = Validator::new(sk.public_key(), *p);
            (sk, v)
        })
        .collect();
    pairs.sort_by_key(|p| p.1.address);
    let set = ValidatorSet::new(pairs.iter().map(|p| p.1.clone()).collect()).expect("set");
    let keys: Vec<SecretKey> = pairs.into_iter().map(|p| p.0).collect();
    let seed0 = vrf::genesis_seed(&sha3_256(b"genesis file"));
    let mut seed = seed0;
    let mut prev = ZERO_HASH;
    let mut blocks = Vec::new();
    for h in 1..=n_heights {
        let r = round_of(h);
        let winner = lottery::proposer(&set, &seed, h, r);
        let wi = set.index_of(&winner.address).expect("member");
        let proof = vrf::prove(&keys[wi], &chain, h, &seed);
        let header = pb::Header {
            chain_id: chain.to_string(),
            height: h,
            parent_hash: prev.to_vec(),
            proposer_address: winner.address.0.to_vec(),
            vrf_proof: proof.to_bytes().to_vec(),
            txs_hash: list_hash::<pb::Transaction>(&[]).to_vec(),
            evidence_hash: list_hash::<pb::Evidence>(&[]).to_vec(),
            last_commit_hash: ZERO_HASH.to_vec(),
            app_hash: vec![0; 32],
            validators_hash: set.hash().to_vec(),
            next_validators_hash: set.hash().to_vec(),
            time_ms: 0,
            proposal_round: r,
        };
        let bh = header_hash(&header);
        let msg = vote_bytes(&chain, VoteType::Precommit, h, r + 1, &bh);
        let pcs: Vec<_> = (0..4)
            .filter(|i| *i != 3)
            .map(|i| (i, keys[i].sign(&msg)))
            .collect();
        let cert = CommitCertificate::from_precommits(&set, h, r + 1, bh, &pcs).expect("cert");
        seed = vrf::next_seed(&seed, &vrf::output(&proof));
        prev = bh;
        blocks.push((header, cert));
    }
    Chain {
        chain,
        keys,
        set,
        seed0,
        blocks,
    }
}

fn verify_all(c: &Chain) -> Result<u64, ChainError> {
    let mut v = ChainVerifier::from_genesis(c.chain.clone(), c.seed0, c.set.clone());
    for (header, cert) in &c.blocks {
        v.verify_next(header, cert, &c.set)?;
    }
    Ok(v.next_height() - 1)
}

#[test]
fn honest_chain_verifies() {
    let c = build(8, |h| (h % 3) as u32);
    assert_eq!(verify_all(&c), Ok(8));
}

#[test]
fn tampering_is_caught_with_the_right_error() {
    let base = build(5, |_| 0);

    let mut c = build(5, |_| 0);
    c.blocks[2].0.parent_hash[0] ^= 1;
    assert!(matches!(
        verify_all(&c),
        Err(ChainError::BrokenLink { height: 3, .. })
    ));

    // Re-signing a tampered header with a stale certificate: certificate mismatch.
    let mut c = build(5, |_| 0);
    c.blocks[1].0.app_hash[0] ^= 1;
    assert!(matches!(
        verify_all(&c),
        Err(ChainError::CertificateMismatch { height: 2 })
    ));

    // A certificate whose signature was swapped for another height's.
    let mut c = build(5, |_| 0);
    c.blocks[3].1.aggregate_signature = base.blocks[2].1.aggregate_signature;
    assert_eq!(
        verify_all(&c),
        Err(ChainError::Certificate {
            height: 4,
            source: CertificateError::BadSignature
        })
    );

    // A proposer that did not win the lottery.
    let mut c = build(5, |_| 0);
    let winner = c.blocks[0].0.proposer_address.clone();
    let other = c
        .set
        .validators()
        .iter()
        .find(|v| v.address.0.to_vec() != winner)
        .expect("other");
    c.blocks[0].0.proposer_address = other.address.0.to_vec();
    assert!(matches!(
        verify_all(&c),
        Err(ChainError::WrongProposer { height: 1, .. })
    ));

    // A VRF proof by the right proposer over the wrong height.
    let mut c = build(5, |_| 0);
    let wi = c
        .set
        .index_of(
            &agora_validator::Address::from_slice(&c.blocks[1].0.proposer_address).expect("addr"),
        )
        .expect("member");
    c.blocks[1].0.vrf_proof = vrf::prove(&c.keys[wi], &c.chain, 99, &ZERO_HASH)
        .to_bytes()
        .to_vec();
    assert!(matches!(
        verify_all(&c),
        Err(ChainError::BadVrf { height: 2, .. })
    ));

    // A header that claims another next validator set.
    let mut c = build(5, |_| 0);
    c.blocks[4].0.next_validators_hash = vec![7; 32];
    assert!(matches!(
        verify_all(&c),
        Err(ChainError::NextValidatorsMismatch { height: 5 })
    ));

    // Skipping a height.
    let mut c = build(5, |_| 0);
    c.blocks.remove(2);
    assert_eq!(
        verify_all(&c),
        Err(ChainError::HeightGap {
            expected: 3,
            got: 4
        })
    );
}

#[test]
fn body_commitments_are_checked() {
    let c = build(1, |_| 0);
    let mut block = pb::Block {
        header: Some(c.blocks[0].0.clone()),
        ..Default::default()
    };
    verify_body(&block).expect("empty body matches");
    block.txs.push(pb::Transaction::default());
    assert!(matches!(
        verify_body(&block),
        Err(ChainError::BodyMismatch {
            what: "txs_hash",
            ..
        })
    ));
}
