//! Evidence through the engines: held then included and slashed, invalid
//! evidence charged to its sender, the pool's bounds, and an equivocation
//! that arrives after the decision.

use super::*;

/// A conflicting pair of prevotes by validator `i` at height `h`.
fn equivocation(i: u8, h: u64) -> pb::Evidence {
    use agora_validator::consensus::evidence::duplicate_vote;
    use agora_validator::signing::vote_bytes;
    use agora_validator::types::VoteType;
    let k = sk(201 + i);
    let vote = |hash: [u8; 32]| pb::Vote {
        vote_type: VoteType::Prevote as i32,
        height: h,
        round: 0,
        block_hash: hash.to_vec(),
        validator_address: addr(&k).0.to_vec(),
        signature: k
            .sign(&vote_bytes(&chain(), VoteType::Prevote, h, 0, &hash))
            .to_bytes()
            .to_vec(),
    };
    let (a, b) = (vote([1; 32]), vote([2; 32]));
    assert_ne!(vote_hash(&a), vote_hash(&b));
    duplicate_vote(a, b)
}

#[test]
fn evidence_about_the_height_being_decided_is_held_then_included_and_slashed() {
    let mut net = Net::new(N);
    net.run_to(2);
    // Evidence about height 3, which no engine has decided yet: the ledger
    // cannot include it before block 4, so the pool holds it.
    let ev = equivocation(0, 3);
    let (_, actions) = net.engines[1].submit_evidence(ev.clone()).expect("held");
    assert!(matches!(actions[0], Action::PersistEvidence(..)));
    net.act(1, actions);
    net.run_to(8);
    let offender = addr(&sk(201));
    let included_at: Vec<u64> = net.commits[1]
        .iter()
        .filter(|c| c.block.evidence.contains(&ev))
        .map(|c| c.height)
        .collect();
    assert_eq!(included_at.len(), 1, "included exactly once");
    assert!(
        included_at[0] >= 4 && included_at[0] <= 6,
        "{included_at:?}"
    );
    for e in &net.engines {
        assert!(e.ledger().validator(&offender).expect("v").tombstoned);
        assert!(e.pool().is_empty(), "pruned once included");
    }
    let removed = &net.commits[1][included_at[0] as usize - 1].evidence_removed;
    assert_eq!(
        removed.len(),
        1,
        "the commit record deletes the persisted entry"
    );
}

#[test]
fn invalid_evidence_is_charged_to_the_peer_that_sent_it() {
    let mut net = Net::new(N);
    net.run_to(1);
    let mut ev = equivocation(0, 1);
    if let Some(pb::evidence::Kind::DuplicateVote(d)) = ev.kind.as_mut() {
        d.vote_b.as_mut().expect("b").signature = sk(209).sign(b"junk").to_bytes().to_vec();
    }
    let a = net.engines[2].on_evidence(3, ev);
    assert!(
        matches!(
            &a[..],
            [Action::Penalize {
                peer: 3,
                fault: PeerFault::BadEvidence(_)
            }]
        ),
        "{a:?}"
    );
    assert!(net.engines[2].pool().is_empty());
}

#[test]
fn the_pool_is_bounded_per_offender_and_refuses_heights_far_ahead() {
    use agora_validator::engine::evidence_pool::MAX_PER_OFFENDER;
    let mut net = Net::new(N);
    net.run_to(8);
    let e = &mut net.engines[0];
    for h in 1..=MAX_PER_OFFENDER as u64 {
        e.submit_evidence(equivocation(1, h)).expect("room");
    }
    let full = e.submit_evidence(equivocation(1, 7)).expect_err("bound");
    assert!(
        matches!(full, agora_validator::engine::PoolError::Full(_)),
        "{full}"
    );
    // Another offender still has room; one entry per offender per block.
    e.submit_evidence(equivocation(2, 7))
        .expect("other offender");
    let ahead = e
        .submit_evidence(equivocation(2, 20))
        .expect_err("far ahead");
    assert!(
        matches!(
            ahead,
            agora_validator::engine::PoolError::TooFarAhead { .. }
        ),
        "{ahead}"
    );
    assert_eq!(e.pool().len(), MAX_PER_OFFENDER + 1);
    assert_eq!(e.pool().for_block().len(), 2, "one per offender");
}

#[test]
fn an_equivocation_that_arrives_after_the_decision_still_becomes_evidence() {
    use agora_validator::signing::vote_bytes;
    use agora_validator::types::VoteType;
    let mut net = Net::new(N);
    net.run_to(2);
    // A validator whose precommit for block 2 is in the certificate (the
    // others verified it), and a conflicting precommit of the same round
    // that arrives only now.
    let cert = net.engines[1].tip().certificate.clone().expect("cert");
    let set = net.engines[1]
        .ledger()
        .validator_set(2)
        .expect("set")
        .clone();
    let signers = cert.signer_indices(set.len()).expect("bits");
    let k = (0..N)
        .map(|i| sk(201 + i))
        .find(|k| signers.contains(&set.index_of(&addr(k)).expect("member")))
        .expect("a signer");
    let conflicting = pb::Vote {
        vote_type: VoteType::Precommit as i32,
        height: 2,
        round: cert.round,
        block_hash: vec![0xee; 32],
        validator_address: addr(&k).0.to_vec(),
        signature: k
            .sign(&vote_bytes(
                &chain(),
                VoteType::Precommit,
                2,
                cert.round,
                &[0xee; 32],
            ))
            .to_bytes()
            .to_vec(),
    };
    let first = net.engines[1]
        .on_vote(3, conflicting.clone(), NOW + 50_000, &NoMempool)
        .expect("vote");
    assert!(matches!(first[0], Action::PersistEvidence(..)), "{first:?}");
    assert_eq!(net.engines[1].pool().len(), 1);
    // Its signature forged: the sender is charged for a bad signature
    // (the vote is the forgery, not the evidence built from it), nothing
    // is kept.
    let mut forged = conflicting;
    forged.block_hash = vec![0xdd; 32];
    forged.signature = sk(209).sign(b"x").to_bytes().to_vec();
    let before = net.engines[2].pool().len();
    let a = net.engines[2]
        .on_vote(3, forged, NOW + 50_000, &NoMempool)
        .expect("vote");
    assert_eq!(net.engines[2].pool().len(), before);
    assert!(
        matches!(
            &a[..],
            [Action::Penalize {
                peer: 3,
                fault: PeerFault::Consensus(RejectReason::BadSignature(_))
            }]
        ),
        "{a:?}"
    );
    // It is included and the signer slashed.
    net.act(1, first);
    net.run_to(5);
    assert!(
        net.engines
            .iter()
            .all(|e| e.ledger().validator(&addr(&k)).expect("v").tombstoned)
    );
}
