//! Double signing turned into evidence: one canonical record per
//! infraction, and a forged conflicting vote frames nobody.

use super::*;

#[test]
fn equivocation_becomes_one_canonical_evidence() {
    let n = net(&[1, 1, 1, 1]);
    let a = n.vote(2, VoteType::Prevote, 1, 0, Some([7; 32]));
    let b = n.vote(2, VoteType::Prevote, 1, 0, None);
    let c3 = n.vote(2, VoteType::Prevote, 1, 0, Some([9; 32]));
    let run = |first: &pb::Vote, second: &pb::Vote| {
        let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
        c.handle(Input::StartHeight(Box::new(n.params(1))));
        let mut ev = evidence_of(&c.handle(Input::Vote(first.clone())));
        ev.extend(evidence_of(&c.handle(Input::Vote(second.clone()))));
        ev.extend(evidence_of(&c.handle(Input::Vote(c3.clone()))));
        ev.extend(evidence_of(&c.handle(Input::Vote(second.clone()))));
        ev
    };
    let e1 = run(&a, &b);
    let e2 = run(&b, &a);
    assert_eq!(e1.len(), 1, "one infraction, one evidence");
    assert_eq!(e1, e2, "the same encoding whatever the arrival order");
    let info = verify_evidence(&n.chain, &n.set, &e1[0]).expect("valid evidence");
    assert_eq!(info.offenders, vec![n.set.validators()[2].address]);
    let Some(pb::evidence::Kind::DuplicateVote(d)) = &e1[0].kind else {
        panic!("duplicate vote evidence expected");
    };
    let (ha, hb) = (
        vote_hash(d.vote_a.as_ref().expect("a")).expect("hash"),
        vote_hash(d.vote_b.as_ref().expect("b")).expect("hash"),
    );
    assert!(ha < hb, "smaller block hash (nil = zeros) first");
    assert!(infraction_key(&e1[0]).is_some());
}

#[test]
fn forged_conflicting_vote_frames_nobody() {
    let n = net(&[1, 1, 1, 1]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    c.handle(Input::Vote(n.vote(
        1,
        VoteType::Prevote,
        1,
        0,
        Some([7; 32]),
    )));
    // Validator 3 signs, claiming to be validator 1, for another value.
    let mut forged = n.vote(3, VoteType::Prevote, 1, 0, None);
    forged.validator_address = n.set.validators()[1].address.0.to_vec();
    let out = c.handle(Input::Vote(forged));
    assert!(evidence_of(&out).is_empty());
    assert!(matches!(
        rejections(&out)[..],
        [RejectReason::BadSignature(_)]
    ));
}

#[test]
fn conflicting_proposals_become_evidence() {
    let n = net(&[1, 1, 1, 1]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let p = n.proposer(1, 0);
    let (b1, _) = n.block(p, 1, 1);
    let (b2, _) = n.block(p, 1, 2);
    c.handle(Input::Proposal(n.proposal(p, 1, 0, -1, &b1)));
    let out = c.handle(Input::Proposal(n.proposal(p, 1, 0, -1, &b2)));
    let ev = evidence_of(&out);
    assert_eq!(ev.len(), 1);
    let info = verify_evidence(&n.chain, &n.set, &ev[0]).expect("valid");
    assert_eq!(info.offenders, vec![n.set.validators()[p].address]);
    assert!(evidence_of(&c.handle(Input::Proposal(n.proposal(p, 1, 0, -1, &b2)))).is_empty());
}
