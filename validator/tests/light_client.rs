//! The light client from a trusted checkpoint: sequential steps along a
//! chain whose validator set rotates, skipping with bisection where the
//! overlap with the trusted set is too small, and the ways a source can lie
//! (a wrong checkpoint, a forged certificate, a set that did not sign, an
//! overlap of exactly 1/3).

use agora_proto::v1 as pb;
use agora_validator::block::header_hash;
use agora_validator::certificate::CommitCertificate;
use agora_validator::crypto::{Hash, SecretKey, ZERO_HASH};
use agora_validator::light_client::{
    LightBlock, LightError, Trusted, verify_skipping, verify_step,
};
use agora_validator::signing::vote_bytes;
use agora_validator::types::{ChainId, VoteType};
use agora_validator::validator_set::{Validator, ValidatorSet};

const TOP: u64 = 40;

fn key(i: u8) -> SecretKey {
    SecretKey::from_seed(&[i + 1; 32]).expect("seed")
}

/// A set of `members` (key indices), power 10 each.
fn set_of(members: &[u8]) -> ValidatorSet {
    ValidatorSet::new(
        members
            .iter()
            .map(|i| Validator::new(key(*i).public_key(), 10))
            .collect(),
    )
    .expect("set")
}

/// The set of height h: {0,1,2,3}, then from 11 {1,2,3,4}, from 21
/// {3,4,5,6}, from 31 {5,6,7,8}: one change per ten heights, each keeping
/// half or more of the one before, the last sharing no member with the
/// first.
fn members(h: u64) -> Vec<u8> {
    match h {
        0..=10 => vec![0, 1, 2, 3],
        11..=20 => vec![1, 2, 3, 4],
        21..=30 => vec![3, 4, 5, 6],
        _ => vec![5, 6, 7, 8],
    }
}

/// A certificate of `header` signed by `signers` (key indices) of `set`.
fn certify(
    chain: &ChainId,
    set: &ValidatorSet,
    header: &pb::Header,
    signers: &[u8],
) -> CommitCertificate {
    let bh = header_hash(header);
    let msg = vote_bytes(chain, VoteType::Precommit, header.height, 0, &bh);
    let sigs: Vec<_> = signers
        .iter()
        .map(|k| {
            let i = set
                .index_of(&Validator::new(key(*k).public_key(), 10).address)
                .expect("a member signs");
            (i, key(*k).sign(&msg))
        })
        .collect();
    CommitCertificate::from_precommits(set, header.height, 0, bh, &sigs).expect("certificate")
}

fn header(
    chain: &ChainId,
    h: u64,
    parent: Hash,
    set: &ValidatorSet,
    next: &ValidatorSet,
) -> pb::Header {
    pb::Header {
        chain_id: chain.to_string(),
        height: h,
        parent_hash: parent.to_vec(),
        validators_hash: set.hash().to_vec(),
        next_validators_hash: next.hash().to_vec(),
        time_ms: h,
        ..Default::default()
    }
}

fn chain() -> (ChainId, Vec<LightBlock>) {
    let id = ChainId::new("light-test").expect("chain id");
    let mut parent = ZERO_HASH;
    let mut blocks = Vec::new();
    for h in 1..=TOP {
        let set = set_of(&members(h));
        let hd = header(&id, h, parent, &set, &set_of(&members(h + 1)));
        let certificate = certify(&id, &set, &hd, &members(h));
        parent = header_hash(&hd);
        blocks.push(LightBlock {
            header: hd,
            certificate,
            validators: set,
        });
    }
    (id, blocks)
}

fn at(blocks: &[LightBlock], h: u64) -> LightBlock {
    blocks[(h - 1) as usize].clone()
}

fn checkpoint(blocks: &[LightBlock], h: u64) -> Trusted {
    let b = at(blocks, h);
    Trusted::from_checkpoint(&b, &header_hash(&b.header)).expect("checkpoint")
}

#[test]
fn sequential_steps_cross_every_set_change() {
    let (id, blocks) = chain();
    let mut t = checkpoint(&blocks, 1);
    for h in 2..=TOP {
        t = verify_step(&id, &t, &at(&blocks, h)).unwrap_or_else(|e| panic!("height {h}: {e}"));
    }
    assert_eq!(t.validators.hash(), set_of(&members(TOP)).hash());
}

#[test]
fn skipping_bisects_where_the_overlap_is_too_small() {
    let (id, blocks) = chain();
    let mut fetched = Vec::new();
    let (t, path) = verify_skipping(&id, checkpoint(&blocks, 1), TOP, |h| {
        fetched.push(h);
        Ok::<_, String>(at(&blocks, h))
    })
    .expect("verified");
    // 1 → 40 shares no validator: bisect to 20 (3 of 4 trusted signed),
    // then 20 → 40 shares none: bisect to 30 (2 of 4), then 30 → 40 (2 of 4).
    assert_eq!(path, vec![20, 30, 40]);
    assert_eq!(fetched, vec![40, 20, 40, 30, 40]);
    assert_eq!(t.height, TOP);
    assert_eq!(t.validators.hash(), set_of(&members(TOP)).hash());
    // Within one set the skip is direct.
    let (_, path) = verify_skipping(&id, checkpoint(&blocks, 31), TOP, |h| {
        Ok::<_, String>(at(&blocks, h))
    })
    .expect("verified");
    assert_eq!(path, vec![TOP]);
}

#[test]
fn a_checkpoint_that_is_not_the_served_header_is_refused() {
    let (_, blocks) = chain();
    let b = at(&blocks, 5);
    let wrong = header_hash(&at(&blocks, 6).header);
    assert!(matches!(
        Trusted::from_checkpoint(&b, &wrong),
        Err(LightError::CheckpointMismatch { height: 5, .. })
    ));
}

#[test]
fn a_history_signed_by_outsiders_is_refused_even_through_bisection() {
    let (id, blocks) = chain();
    // The source forges height 40: a set of fresh keys certifies a header
    // that names it, self-consistently.
    let outsiders = set_of(&[20, 21, 22, 23]);
    let parent = header_hash(&at(&blocks, TOP - 1).header);
    let forged_header = header(&id, TOP, parent, &outsiders, &outsiders);
    let forged = LightBlock {
        certificate: certify(&id, &outsiders, &forged_header, &[20, 21, 22, 23]),
        header: forged_header,
        validators: outsiders,
    };
    let r = verify_skipping(&id, checkpoint(&blocks, 1), TOP, |h| {
        Ok::<_, String>(if h == TOP {
            forged.clone()
        } else {
            at(&blocks, h)
        })
    });
    // Bisection walks down to the sequential step 39 → 40, where the forged
    // header does not name the set height 39 committed to.
    match r {
        Err(LightError::Header { height: TOP, what }) => {
            assert!(what.contains("next_validators_hash"), "{what}")
        }
        other => panic!("forged history accepted or wrong error: {other:?}"),
    }
}

#[test]
fn the_overlap_must_exceed_one_third() {
    let (id, blocks) = chain();
    let trusted = checkpoint(&blocks, 31); // {5,6,7,8}, 40 in all
    let far = |signers: &[u8], members: &[u8]| {
        let set = set_of(members);
        let hd = header(&id, 35, ZERO_HASH, &set, &set);
        LightBlock {
            certificate: certify(&id, &set, &hd, signers),
            header: hd,
            validators: set,
        }
    };
    // 10 of 40 trusted power (1/4) signed: refused.
    let low = verify_step(&id, &trusted, &far(&[5, 30, 31], &[5, 30, 31]));
    assert!(
        matches!(
            low,
            Err(LightError::NotEnoughTrust {
                overlap: 10,
                total: 40,
                ..
            })
        ),
        "{low:?}"
    );
    // Exactly 1/3 is not more than 1/3: with a trusted set of 30 power...
    let three = Trusted {
        validators: set_of(&[5, 6, 7]),
        ..trusted.clone()
    };
    let third = verify_step(&id, &three, &far(&[5, 30, 31], &[5, 30, 31]));
    assert!(
        matches!(
            third,
            Err(LightError::NotEnoughTrust {
                overlap: 10,
                total: 30,
                ..
            })
        ),
        "{third:?}"
    );
    // ...while 20 of 30 is.
    assert!(verify_step(&id, &three, &far(&[5, 6, 31], &[5, 6, 31])).is_ok());
    // All of the trusted set signing a later height: accepted.
    assert!(verify_step(&id, &trusted, &far(&[5, 6, 7, 8], &[5, 6, 7, 8])).is_ok());
}

#[test]
fn a_forged_certificate_on_the_target_is_refused() {
    let (id, blocks) = chain();
    let mut b = at(&blocks, 40);
    // Signed by 2 of 4: not more than 2/3 of its own set.
    b.certificate = certify(&id, &b.validators, &b.header, &[5, 6]);
    let r = verify_step(&id, &checkpoint(&blocks, 39), &b);
    assert!(
        matches!(r, Err(LightError::Certificate { height: 40, .. })),
        "{r:?}"
    );
}

/// Trusting the genesis set reaches any height by skipping and bisecting;
/// another set posing as genesis reaches none.
#[test]
fn trust_from_genesis_reaches_the_top_and_a_wrong_genesis_set_does_not() {
    let (id, blocks) = chain();
    let fetch = |h: u64| Ok::<_, String>(at(&blocks, h));
    let genesis = Trusted::from_genesis(set_of(&members(1)));
    let first = verify_step(&id, &genesis, &at(&blocks, 1)).expect("height 1 from genesis");
    assert_eq!(first.block_hash, header_hash(&at(&blocks, 1).header));
    let (t, path) = verify_skipping(&id, genesis, TOP, fetch).expect("skipping from genesis");
    assert_eq!(t.height, TOP);
    assert!(path.len() < TOP as usize, "skipped some heights: {path:?}");

    let impostor = Trusted::from_genesis(set_of(&[9, 10, 11, 12]));
    let err = verify_step(&id, &impostor, &at(&blocks, 1)).expect_err("not the genesis set");
    assert!(err.to_string().contains("validators_hash"), "{err}");
    assert!(verify_skipping(&id, impostor, TOP, fetch).is_err());
}
