//! How votes are verified: once per quorum, bad ones found and dropped,
//! signatures decoded only when verified.

use super::*;
use crate::crypto::Signature;

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
/// and one outside G2 are dropped then (each signature's own subgroup check
/// catches the latter), the good ones count, and the
/// validators' genuine votes still count when they arrive later. The kept
/// sum is the sum of the genuine signatures.
#[test]
fn undecodable_and_off_subgroup_votes_are_dropped_when_verified() {
    use super::vote_set::VoteSet;
    use crate::crypto::bls::UncheckedSignature;
    let n = net(&[1, 1, 1, 1, 1]);
    let v = VALUE;
    let signed = super::signed_points::SignedPoints::default();
    let ctx = precommit_ctx(&n, &signed, TestFault::None);
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

use crate::crypto::bls::shifted;

const VALUE: Option<Hash> = Some([5u8; 32]);

/// The context of the precommits of height 1, round 0 (an observer's:
/// no salt for the weights).
fn precommit_ctx<'a>(
    n: &'a Net,
    signed: &'a super::signed_points::SignedPoints,
    fault: TestFault,
) -> super::vote_set::VoteContext<'a> {
    super::vote_set::VoteContext {
        chain: &n.chain,
        set: &n.set,
        height: 1,
        round: 0,
        vote_type: VoteType::Precommit,
        signed,
        salt: None,
        fault,
    }
}

/// A vote set holding copies of validator 0's and 1's precommits for
/// `VALUE` shifted by +X and −X (which verify only together), with
/// validator 2's real one, all pending; and X, −X.
fn cancelling_pair_pending(
    n: &Net,
    ctx: &super::vote_set::VoteContext<'_>,
) -> (super::vote_set::VoteSet, Signature, Signature) {
    use super::vote_set::Insert;
    let (plus, minus) = crate::crypto::bls::cancelling_pair(b"noise");
    let mut vs = super::vote_set::VoteSet::default();
    for (i, x) in [(0, &plus), (1, &minus)] {
        let copy = shifted(n.vote(i, VoteType::Precommit, 1, 0, VALUE), x);
        let r = vs.insert(ctx, VerifyMode::Aggregate, i, VALUE, copy, true);
        assert!(matches!(r, Insert::Added), "{r:?}");
    }
    let real = n.vote(2, VoteType::Precommit, 1, 0, VALUE);
    vs.insert(ctx, VerifyMode::Aggregate, 2, VALUE, real, true);
    (vs, plus, minus)
}

/// Cancelling signatures: votes of validators 0 and 1 shifted by +X and −X
/// pass a plain-sum FastAggregateVerify together, but the weighted quorum
/// check fails them (with this node's salt or without one), so they are
/// dropped and reported (for the host to charge who sent them) while the
/// honest vote in the same batch counts. The real votes, when they come,
/// are not mistaken for forgeries, every verified vote is its signer's own
/// (what gossip relays), and the kept sum is the genuine one.
#[test]
fn shifted_votes_never_count_and_the_real_ones_do() {
    use super::vote_set::Insert;
    let n = net(&[1, 1, 1, 1, 1]);
    let v = VALUE;
    let signed = super::signed_points::SignedPoints::default();
    let salt = [7u8; 32];
    for salt in [None, Some(&salt)] {
        let ctx = super::vote_set::VoteContext {
            salt,
            ..precommit_ctx(&n, &signed, TestFault::None)
        };
        let real = |i: usize| n.vote(i, VoteType::Precommit, 1, 0, v);
        let (mut vs, plus, minus) = cancelling_pair_pending(&n, &ctx);
        assert_eq!(vs.verify_pending(&ctx, &v), vec![0, 1], "salt {salt:?}");
        assert_eq!(vs.verified_power(&v), 1, "the honest vote counts");
        assert_eq!(vs.potential_power(&v), 1, "the copies are dropped");
        let failed = vs.take_failed_alone();
        assert_eq!(
            failed,
            vec![shifted(real(0), &plus), shifted(real(1), &minus)]
        );
        assert!(vs.take_failed_alone().is_empty(), "each is reported once");
        for i in 0..2 {
            let r = vs.insert(&ctx, VerifyMode::Aggregate, i, v, real(i), true);
            assert!(matches!(r, Insert::Added), "{r:?}");
        }
        assert!(vs.verify_pending(&ctx, &v).is_empty());
        let verified: Vec<pb::Vote> = vs.verified_votes().cloned().collect();
        assert_eq!(verified, vec![real(0), real(1), real(2)]);
        // Other bytes for a verified vote: refused as a forgery.
        let mut forged = real(1);
        forged.signature = n.vote(1, VoteType::Precommit, 1, 1, v).signature;
        let r = vs.insert(&ctx, VerifyMode::Aggregate, 1, v, forged, true);
        assert!(matches!(r, Insert::BadSignature), "{r:?}");
        let (signers, sum) = vs.verified_aggregate(&v).expect("verified");
        assert_eq!(signers, vec![0, 1, 2]);
        let genuine: Vec<Signature> = (0..3)
            .map(|i| Signature::from_bytes(&real(i).signature).expect("sig"))
            .collect();
        assert_eq!(
            sum,
            Signature::aggregate(&genuine.iter().collect::<Vec<_>>()).expect("sum")
        );
    }
}

/// Control: with the old rule (a plain-sum aggregate vouches for each
/// vote's bytes), the copies count, would be relayed, and the real vote is
/// rejected as a forgery.
#[cfg(feature = "test-faults")]
#[test]
fn trusting_aggregated_bytes_counts_the_copies_and_rejects_the_real_vote() {
    use super::vote_set::Insert;
    let n = net(&[1, 1, 1, 1, 1]);
    let signed = super::signed_points::SignedPoints::default();
    let ctx = precommit_ctx(&n, &signed, TestFault::TrustAggregatedBytes);
    let (mut vs, _, _) = cancelling_pair_pending(&n, &ctx);
    assert!(vs.verify_pending(&ctx, &VALUE).is_empty());
    assert_eq!(vs.verified_power(&VALUE), 3, "the copies count");
    assert_eq!(vs.verified_votes().count(), 3, "and would be relayed");
    let real = n.vote(0, VoteType::Precommit, 1, 0, VALUE);
    let r = vs.insert(&ctx, VerifyMode::Aggregate, 0, VALUE, real, true);
    assert!(matches!(r, Insert::BadSignature), "{r:?}");
}

/// The weights of a quorum check: the first is 1, none is 0, they are
/// deterministic, and each depends on the salt, the message and every
/// signature in the batch (so a sender who fixes its bytes first cannot
/// know them, and the simulator replays them).
#[test]
fn quorum_weights_depend_on_everything_in_the_batch() {
    use super::vote_set::quorum_weights;
    let n = net(&[1; 9]);
    let sigs: Vec<Signature> = (0..9)
        .map(|i| {
            let v = n.vote(i, VoteType::Prevote, 1, 0, VALUE);
            Signature::from_bytes(&v.signature).expect("sig")
        })
        .collect();
    let encoded: Vec<[u8; 96]> = sigs.iter().map(Signature::to_bytes).collect();
    let refs: Vec<&[u8]> = encoded.iter().map(|b| &b[..]).collect();
    let signers: Vec<usize> = (0..9).collect();
    let (salt, other_salt) = ([1u8; 32], [2u8; 32]);
    let w = quorum_weights(Some(&salt), b"m", &signers, &refs);
    assert_eq!(w.len(), 9);
    assert_eq!(w[0], 1);
    assert!(w.iter().all(|x| *x != 0));
    assert_eq!(w, quorum_weights(Some(&salt), b"m", &signers, &refs));
    let distinct: std::collections::BTreeSet<u64> = w[1..].iter().copied().collect();
    assert_eq!(distinct.len(), 8, "{w:?}");
    for changed in [
        quorum_weights(Some(&other_salt), b"m", &signers, &refs),
        quorum_weights(None, b"m", &signers, &refs),
        quorum_weights(Some(&salt), b"m2", &signers, &refs),
    ] {
        assert!(w[1..].iter().zip(&changed[1..]).all(|(a, b)| a != b));
    }
    // Another signature in the last place changes every weight.
    let mut swapped = refs.clone();
    swapped[8] = refs[0];
    let changed = quorum_weights(Some(&salt), b"m", &signers, &swapped);
    assert!(w[1..].iter().zip(&changed[1..]).all(|(a, b)| a != b));
}
