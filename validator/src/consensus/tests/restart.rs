//! A core rebuilt from its persisted signing state: the double-sign guard
//! and the lock hold across the restart.

use super::*;

#[test]
fn double_sign_guard_survives_restart() {
    let me = 0;
    let n = net_where_not_proposer(&[1, 1, 1, 1], me, 1);
    let mut c = n.core(me, ConsensusConfig::default());
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let p0 = n.proposer(1, 0);
    let (bv, v) = n.block(p0, 1, 1);
    c.handle(Input::Proposal(n.proposal(p0, 1, 0, -1, &bv)));
    let first = c.handle(Input::BlockValidity {
        height: 1,
        round: 0,
        block_hash: v,
        valid: true,
    });
    // Persist comes before the broadcast it protects.
    let persist = first
        .iter()
        .position(|o| matches!(o, Output::PersistSigningState(_)));
    let send = first
        .iter()
        .position(|o| matches!(o, Output::BroadcastVote(_)));
    assert!(persist.is_some() && persist < send, "{first:?}");
    let saved = c.signing_state().expect("signed");
    // Restart with the saved state: a proposal for another block in the
    // same round must not produce a second, different prevote.
    let mut c2 = Consensus::new(
        ConsensusConfig::default(),
        n.chain.clone(),
        Some(n.key(me)),
        Some(saved),
    );
    c2.handle(Input::StartHeight(Box::new(n.params(1))));
    assert_eq!(c2.round(), 0);
    let (bw, w) = n.block(p0, 1, 2);
    c2.handle(Input::Proposal(n.proposal(p0, 1, 0, -1, &bw)));
    let out = c2.handle(Input::BlockValidity {
        height: 1,
        round: 0,
        block_hash: w,
        valid: true,
    });
    // The guard refuses the prevote for w; the core sends its earlier prevote
    // for v again instead (the same bytes, so no double sign).
    let again = votes_cast(&out);
    assert_eq!(c2.stats().refused_signatures, 1);
    assert_eq!(again.len(), 1, "{out:?}");
    assert_eq!(again[0].block_hash, v.to_vec());
    assert_eq!(
        again[0],
        votes_cast(&first)[0],
        "identical to the vote before the crash"
    );
}

#[test]
fn lock_survives_restart() {
    let me = 0;
    let n = net_where_not_proposer(&[1, 1, 1, 1], me, 2);
    let mut c = n.core(me, ConsensusConfig::default());
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let v = lock_in_round_0(&n, me, &mut c);
    let saved =
        SigningState::from_bytes(&c.signing_state().expect("signed").to_bytes()).expect("decodes");
    let mut c2 = Consensus::new(
        ConsensusConfig::default(),
        n.chain.clone(),
        Some(n.key(me)),
        Some(saved),
    );
    c2.handle(Input::StartHeight(Box::new(n.params(1))));
    assert_eq!(c2.locked(), Some((v, 0)), "the lock is restored");
    c2.handle(Input::TimeoutFired(Timeout {
        height: 1,
        round: 0,
        step: TimeoutStep::Precommit,
    }));
    let p1 = n.proposer(1, 1);
    let (bw, w) = n.block_in(p1, 1, 1, 2);
    c2.handle(Input::Proposal(n.proposal(p1, 1, 1, -1, &bw)));
    let out = c2.handle(Input::BlockValidity {
        height: 1,
        round: 1,
        block_hash: w,
        valid: true,
    });
    assert!(
        votes_cast(&out)[0].block_hash.is_empty(),
        "still locked on v: prevote nil"
    );
}
