//! The chain verifier accepts an honestly built chain and names the first
//! tampered field of a dishonest one, block by block and in randomised
//! batches alike.

use agora_proto::v1 as pb;
use agora_validator::block::{header_hash, list_hash};
use agora_validator::certificate::{CertificateError, CommitCertificate};
use agora_validator::chain_verifier::{
    ChainError, ChainStep, ChainVerifier, SCALARS_PER_STEP, VerifiedBlock, verify_body,
};
use agora_validator::crypto::{Hash, SecretKey, ZERO_HASH, sha3_256, vrf};
use agora_validator::lottery;
use agora_validator::signing::vote_bytes;
use agora_validator::types::{ChainId, VoteType};
use agora_validator::validator_set::{Validator, ValidatorSet};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

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

/// The carried certificate is bound to the header by the hash of its bytes:
/// other bytes (one signer more) are refused, and bytes the header commits
/// to pass without being decoded (an unreadable signature included: the
/// header's own certificate vouches for what its signers checked).
#[test]
fn the_carried_certificate_is_bound_by_its_bytes() {
    let c = build(2, |_| 0);
    let carried = c.blocks[0].1.to_proto();
    let mut header = c.blocks[1].0.clone();
    header.last_commit_hash = agora_validator::certificate::encoded_hash(&carried).to_vec();
    let mut block = pb::Block {
        header: Some(header.clone()),
        last_commit: Some(carried.clone()),
        ..Default::default()
    };
    verify_body(&block).expect("the committed bytes");
    assert_eq!(
        header.last_commit_hash,
        c.blocks[0].1.hash().to_vec(),
        "the bytes' hash is the decoded certificate's"
    );
    block.last_commit.as_mut().expect("carried").signers[0] |= 0x08;
    assert!(matches!(
        verify_body(&block),
        Err(ChainError::BodyMismatch {
            what: "last_commit_hash",
            ..
        })
    ));
    block.last_commit = None;
    assert!(matches!(
        verify_body(&block),
        Err(ChainError::BodyMismatch {
            what: "last_commit_hash",
            ..
        })
    ));
    let mut unreadable = carried;
    unreadable.aggregate_signature = vec![0xff; 96];
    header.last_commit_hash = agora_validator::certificate::encoded_hash(&unreadable).to_vec();
    let block = pb::Block {
        header: Some(header),
        last_commit: Some(unreadable),
        ..Default::default()
    };
    verify_body(&block).expect("bound by its bytes, not decoded");
}

/// Verifies `c` in batches of `batch` heights with seeded random scalars;
/// returns the blocks verified and where the verifier stands.
fn verify_batched(
    c: &Chain,
    batch: usize,
    scalars: impl Fn(&mut ChaCha20Rng) -> u64,
) -> (Result<Vec<VerifiedBlock>, ChainError>, u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(batch as u64);
    let mut v = ChainVerifier::from_genesis(c.chain.clone(), c.seed0, c.set.clone());
    let mut all = Vec::new();
    for chunk in c.blocks.chunks(batch) {
        let steps: Vec<ChainStep<'_>> = chunk
            .iter()
            .map(|(header, cert)| ChainStep {
                header,
                cert,
                next_set: &c.set,
                vrf_proof: None,
            })
            .collect();
        let rands: Vec<u64> = (0..steps.len() * SCALARS_PER_STEP)
            .map(|_| scalars(&mut rng))
            .collect();
        match v.verify_batch(&steps, &rands) {
            Ok(blocks) => all.extend(blocks),
            Err(e) => return (Err(e), v.next_height()),
        }
    }
    (Ok(all), v.next_height())
}

fn random(rng: &mut ChaCha20Rng) -> u64 {
    rng.next_u64() | 1
}

/// Block by block, for comparison: the blocks and where the verifier stands.
fn verify_one_by_one(c: &Chain) -> (Result<Vec<VerifiedBlock>, ChainError>, u64) {
    let mut v = ChainVerifier::from_genesis(c.chain.clone(), c.seed0, c.set.clone());
    let mut all = Vec::new();
    for (header, cert) in &c.blocks {
        match v.verify_next(header, cert, &c.set) {
            Ok(b) => all.push(b),
            Err(e) => return (Err(e), v.next_height()),
        }
    }
    (Ok(all), v.next_height())
}

#[test]
fn honest_chain_verifies_in_batches() {
    let c = build(20, |h| (h % 3) as u32);
    let (one, _) = verify_one_by_one(&c);
    let one = one.expect("valid chain");
    for batch in [1, 3, 8, 20, 64] {
        let (got, at) = verify_batched(&c, batch, random);
        assert_eq!(got.as_ref(), Ok(&one), "batch of {batch}");
        assert_eq!(at, 21);
    }
    // Without usable randomness every pairing is checked alone: same verdict.
    assert_eq!(verify_batched(&c, 20, |_| 0).0, Ok(one));
}

/// The aggregate signature of `k` replaced by that of another height (the
/// next, or height 1 for the last).
fn tamper_signature(c: &mut Chain, k: u64) {
    let other = c.blocks[k as usize % c.blocks.len()].1.aggregate_signature;
    c.blocks[k as usize - 1].1.aggregate_signature = other;
}

/// The VRF proof of `k` replaced by the right proposer's proof of another input.
fn tamper_vrf(c: &mut Chain, k: u64) {
    let header = &c.blocks[k as usize - 1].0;
    let proposer = agora_validator::Address::from_slice(&header.proposer_address).expect("address");
    let wi = c.set.index_of(&proposer).expect("member");
    c.blocks[k as usize - 1].0.vrf_proof = vrf::prove(&c.keys[wi], &c.chain, 999, &ZERO_HASH)
        .to_bytes()
        .to_vec();
}

#[test]
fn tampered_certificate_in_the_middle_of_a_batch_is_reported_at_its_height() {
    let mut c = build(20, |_| 0);
    tamper_signature(&mut c, 11);
    for batch in [20, 8, 5] {
        let (got, at) = verify_batched(&c, batch, random);
        assert_eq!(
            got,
            Err(ChainError::Certificate {
                height: 11,
                source: CertificateError::BadSignature
            }),
            "batch of {batch}"
        );
        // Every block before it was verified.
        assert_eq!(at, 11);
    }
}

#[test]
fn tampered_vrf_proof_in_the_middle_of_a_batch_is_reported_at_its_height() {
    let mut c = build(20, |_| 0);
    tamper_vrf(&mut c, 9);
    // The header was changed, so its certificate no longer matches: per-item
    // order reports the VRF first, and so must the batch.
    let (got, at) = verify_batched(&c, 20, random);
    assert!(
        matches!(got, Err(ChainError::BadVrf { height: 9, .. })),
        "{got:?}"
    );
    assert_eq!(at, 9);
    assert_eq!(verify_one_by_one(&c), (got, at));
}

/// A named way to break a chain.
type Tampering = (&'static str, Box<dyn Fn(&mut Chain)>);

#[test]
fn batch_verdict_equals_per_item_verdict() {
    let tamperings: Vec<Tampering> = vec![
        ("nothing", Box::new(|_| {})),
        ("signature at 1", Box::new(|c| tamper_signature(c, 1))),
        ("signature at 7", Box::new(|c| tamper_signature(c, 7))),
        ("signature at 20", Box::new(|c| tamper_signature(c, 20))),
        ("vrf at 4", Box::new(|c| tamper_vrf(c, 4))),
        ("vrf at 20", Box::new(|c| tamper_vrf(c, 20))),
        (
            "vrf at 13 and signature at 6",
            Box::new(|c| {
                tamper_vrf(c, 13);
                tamper_signature(c, 6);
            }),
        ),
        (
            "signature at 12, parent link at 15",
            Box::new(|c| {
                tamper_signature(c, 12);
                c.blocks[14].0.parent_hash[0] ^= 1;
            }),
        ),
        (
            "parent link at 10, signature at 15",
            Box::new(|c| {
                c.blocks[9].0.parent_hash[0] ^= 1;
                tamper_signature(c, 15);
            }),
        ),
        (
            "signers below quorum at 8",
            Box::new(|c| c.blocks[7].1.signers = vec![0b0001]),
        ),
        (
            "next set at 16",
            Box::new(|c| c.blocks[15].0.next_validators_hash = vec![7; 32]),
        ),
        (
            "height gap at 5",
            Box::new(|c| {
                c.blocks.remove(4);
            }),
        ),
    ];
    for (what, tamper) in &tamperings {
        let mut c = build(20, |h| (h % 2) as u32);
        tamper(&mut c);
        let want = verify_one_by_one(&c);
        for batch in [1, 4, 7, 20] {
            assert_eq!(
                verify_batched(&c, batch, random),
                want,
                "{what}, batch {batch}"
            );
        }
    }
}

/// Negative control: without random weights a batch is fooled by two
/// certificates whose signatures were swapped (their sum is unchanged), which
/// is why the scalars must be random. Block by block, and with random scalars,
/// the swap is caught at the first of the two heights.
#[test]
fn negative_control_swapped_signatures_fool_an_unweighted_batch() {
    let mut c = build(20, |_| 0);
    let (s5, s6) = (
        c.blocks[4].1.aggregate_signature,
        c.blocks[5].1.aggregate_signature,
    );
    c.blocks[4].1.aggregate_signature = s6;
    c.blocks[5].1.aggregate_signature = s5;
    let caught = Err(ChainError::Certificate {
        height: 5,
        source: CertificateError::BadSignature,
    });
    assert_eq!(verify_one_by_one(&c).0, caught);
    assert_eq!(verify_batched(&c, 20, random).0, caught);
    assert!(
        verify_batched(&c, 20, |_| 1).0.is_ok(),
        "unit weights cannot see a swap"
    );
}
