//! How votes are verified: once per quorum, bad ones found and dropped,
//! signatures decoded only when verified.

use super::*;

#[test]
fn votes_are_verified_once_per_quorum_and_bad_ones_are_dropped() {
    let n = net(&[1, 1, 1, 1]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let v = Some([5u8; 32]);
    // One bad signature (a valid point, over other bytes) among four.
    let mut bad = n.vote(0, VoteType::Precommit, 1, 0, v);
    bad.signature = n.vote(0, VoteType::Precommit, 1, 1, v).signature;
    c.handle(Input::Vote(bad));
    for i in 1..3 {
        c.handle(Input::Vote(n.vote(i, VoteType::Precommit, 1, 0, v)));
    }
    let s = c.stats();
    assert_eq!(
        (s.aggregate_checks, s.single_checks),
        (1, 3),
        "aggregate failed, then per-vote"
    );
    c.handle(Input::Vote(n.vote(3, VoteType::Precommit, 1, 0, v)));
    let s = c.stats();
    assert_eq!(
        (s.aggregate_checks, s.single_checks),
        (1, 4),
        "the last one completes the quorum"
    );
}

/// Vote signatures are decoded only when verified: one that does not decode
/// and one outside G2 are dropped then (the sum's subgroup check catches the
/// latter, the per-vote fallback finds it), the good ones count, and the
/// validators' genuine votes still count when they arrive later. The kept
/// sum is the sum of the genuine signatures.
#[test]
fn undecodable_and_off_subgroup_votes_are_dropped_when_verified() {
    use super::vote_set::{VoteContext, VoteSet};
    use crate::crypto::Signature;
    use crate::crypto::bls::UncheckedSignature;
    let n = net(&[1, 1, 1, 1, 1]);
    let v = Some([5u8; 32]);
    let signed = super::signed_points::SignedPoints::default();
    let ctx = VoteContext {
        chain: &n.chain,
        set: &n.set,
        height: 1,
        round: 0,
        vote_type: VoteType::Precommit,
        signed: &signed,
        fault: TestFault::None,
    };
    let quorum = |p| n.set.is_quorum(p);
    // A point on the curve outside G2.
    let mut off = [0u8; 96];
    off[0] = 0x80;
    for i in 1..=255u8 {
        off[95] = i;
        if UncheckedSignature::from_bytes(&off).is_ok_and(|u| u.check().is_err()) {
            break;
        }
    }
    let mut vs = VoteSet::default();
    let mut junk = n.vote(0, VoteType::Precommit, 1, 0, v);
    junk.signature = vec![0x80; 96];
    let mut outside = n.vote(1, VoteType::Precommit, 1, 0, v);
    outside.signature = off.to_vec();
    vs.insert(&ctx, VerifyMode::Aggregate, 0, v, junk, true);
    vs.insert(&ctx, VerifyMode::Aggregate, 1, v, outside, true);
    for i in 2..5 {
        vs.insert(
            &ctx,
            VerifyMode::Aggregate,
            i,
            v,
            n.vote(i, VoteType::Precommit, 1, 0, v),
            true,
        );
    }
    assert!(!vs.quorum_for(&ctx, &v, &quorum), "3 of 5 verified");
    assert_eq!(vs.verified_power(&v), 3);
    assert_eq!(vs.potential_power(&v), 3, "both bad ones dropped");
    for i in 0..2 {
        vs.insert(
            &ctx,
            VerifyMode::Aggregate,
            i,
            v,
            n.vote(i, VoteType::Precommit, 1, 0, v),
            true,
        );
    }
    assert!(vs.quorum_for(&ctx, &v, &quorum));
    let (signers, sum) = vs.verified_aggregate(&v).expect("verified votes");
    assert_eq!(signers, vec![0, 1, 2, 3, 4]);
    let sigs: Vec<Signature> = (0..5)
        .map(|i| {
            Signature::from_bytes(&n.vote(i, VoteType::Precommit, 1, 0, v).signature).expect("sig")
        })
        .collect();
    assert_eq!(
        sum,
        Signature::aggregate(&sigs.iter().collect::<Vec<_>>()).expect("sum")
    );
}
