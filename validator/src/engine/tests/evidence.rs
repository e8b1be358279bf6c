//! Evidence reaching an engine: gossiped evidence that became moot, evidence
//! checked off the engine's thread, and late conflicting votes (forged or
//! real) for the height just decided.

use super::*;

fn double_prevote(k: &SecretKey, chain: &ChainId, h: Height, round: Round) -> pb::Evidence {
    duplicate_vote(
        prevote(k, chain, h, round, [1; 32]),
        prevote(k, chain, h, round, [2; 32]),
    )
}

/// Found by the simulator: evidence a peer gossips may become moot (its
/// offender tombstoned by the block just committed, or out of the window)
/// before it arrives. That is a race, not a fault: it is dropped, not
/// charged; evidence that does not verify still is.
#[test]
fn moot_evidence_is_dropped_without_charging_the_peer() {
    let mut r = at_genesis(4);
    let chain = r.ledger.chain_id().clone();
    let offender = key(3);
    let first = double_prevote(&offender, &chain, 1, 0);
    r.ledger
        .apply_block(1, &BlockInfo::default(), &[], &[], &[0; 32])
        .expect("block 1");
    let slashed = r
        .ledger
        .apply_block(
            2,
            &BlockInfo::default(),
            &[],
            std::slice::from_ref(&first),
            &[0; 32],
        )
        .expect("block 2");
    assert!(slashed.evidence[0].is_ok(), "{:?}", slashed.evidence);
    let mut pool = EvidencePool::default();
    let second = double_prevote(&offender, &chain, 1, 1);
    assert!(matches!(
        pool.add(second.clone(), &r.ledger),
        Err(PoolError::Moot(_))
    ));
    let mut e = engine(None, r);
    assert!(e.on_evidence(5, first).is_empty());
    assert!(e.on_evidence(5, second).is_empty());
    // A forged half is still a fault.
    let mut forged = double_prevote(&key(2), &chain, 1, 0);
    if let Some(pb::evidence::Kind::DuplicateVote(d)) = forged.kind.as_mut()
        && let Some(v) = d.vote_b.as_mut()
    {
        v.signature = key(1).sign(b"other").to_bytes().to_vec();
    }
    assert!(matches!(
        penalties(&e.on_evidence(5, forged)).as_slice(),
        [(5, PeerFault::BadEvidence(_))]
    ));
}

/// gRPC evidence is checked on another thread; the engine then takes it with
/// state checks only. It gets the same verdicts as the on-thread path, and a
/// check made against any set other than the ledger's own for that height is
/// refused as stale (the negative control: a forged "checked" token cannot
/// smuggle in evidence verified against a set the attacker chose).
#[test]
fn evidence_checked_off_thread_is_taken_only_against_the_ledgers_own_set() {
    let r = at_genesis(4);
    let chain = r.ledger.chain_id().clone();
    let own_set = r.ledger.validator_set(1).expect("set of 1").clone();
    let mut e = engine(None, r);
    // Held (height 1 is being decided): accepted, persisted, gossiped.
    let ev = double_prevote(&key(2), &chain, 1, 0);
    let checked = CheckedEvidence::check(&chain, &own_set, ev.clone()).expect("valid");
    let (id, actions) = e.submit_checked_evidence(checked.clone()).expect("held");
    assert_eq!(id, evidence_pool::evidence_id(&ev));
    assert!(matches!(
        actions.as_slice(),
        [Action::PersistEvidence(..), Action::BroadcastEvidence(_)]
    ));
    let (_, again) = e.submit_checked_evidence(checked).expect("duplicate");
    assert!(
        again.is_empty(),
        "a duplicate is neither persisted nor gossiped again"
    );
    // The same evidence checked against another set (a set where key(2) is a
    // validator too, so the check itself passes) is refused as stale.
    let other = ValidatorSet::new(
        (2..6)
            .map(|i| Validator::new(key(i).public_key(), 7))
            .collect(),
    )
    .expect("other set");
    let ev2 = double_prevote(&key(2), &chain, 1, 1);
    let foreign = CheckedEvidence::check(&chain, &other, ev2.clone()).expect("valid there");
    assert_eq!(
        e.submit_checked_evidence(foreign).map(|(id, _)| id),
        Err(PoolError::StaleCheck(1))
    );
    // Ready path (infraction below the height being decided) after one block.
    let mut r = at_genesis(4);
    r.ledger
        .apply_block(1, &BlockInfo::default(), &[], &[], &[0; 32])
        .expect("block 1");
    let mut e = engine(None, r);
    let foreign = CheckedEvidence::check(&chain, &other, ev2.clone()).expect("valid there");
    assert_eq!(
        e.submit_checked_evidence(foreign).map(|(id, _)| id),
        Err(PoolError::StaleCheck(1))
    );
    let own = CheckedEvidence::check(&chain, &own_set, ev2).expect("valid");
    assert!(e.submit_checked_evidence(own).is_ok());
}

/// Found in the demo: a vote for the height just decided that conflicts
/// with the vote kept there becomes evidence. A forged one (another key's
/// signature under a validator's name) is charged to its sender as a bad
/// signature, not as bad evidence, and it does not use the kept vote up:
/// the validator's real conflicting vote, coming after it, is still proof.
#[test]
fn a_forged_late_conflicting_vote_is_charged_and_the_real_one_still_proves() {
    let (_, msgs) = make_chain(4, 1);
    let mut o = engine(None, at_genesis(4));
    o.start_height(NOW, &NoMempool).expect("start");
    for m in &msgs[&1] {
        let out = match m {
            Msg::Proposal(p) => o.on_proposal(1, (**p).clone(), NOW, &NoMempool),
            Msg::Vote(v) => o.on_vote(1, v.clone(), NOW, &NoMempool),
        };
        assert!(penalties(&out.expect("engine")).is_empty());
    }
    assert_eq!(o.tip_height(), 1, "height 1 decided from its messages");
    let chain = o.ledger.chain_id().clone();
    let prevotes: Vec<pb::Vote> = msgs[&1]
        .iter()
        .filter_map(|m| match m {
            Msg::Vote(v) if v.vote_type == VoteType::Prevote as i32 => Some(v.clone()),
            _ => None,
        })
        .filter(|v| v.block_hash != ZERO_HASH && !v.block_hash.is_empty())
        .collect();
    let mut proved = 0;
    for real in &prevotes {
        let i = (0..4u8)
            .find(|i| Address::of(&key(*i).public_key()).0.to_vec() == real.validator_address)
            .expect("a validator's vote");
        let mut forged = prevote(&key((i + 1) % 4), &chain, 1, real.round, ZERO_HASH);
        forged.validator_address = real.validator_address.clone();
        let out = o.on_vote(7, forged, NOW, &NoMempool).expect("engine");
        let charged = penalties(&out);
        if charged.is_empty() {
            continue; // this vote was not among those the core verified
        }
        assert!(
            matches!(
                charged.as_slice(),
                [(7, PeerFault::Consensus(RejectReason::BadSignature(_)))]
            ),
            "{charged:?}"
        );
        assert!(
            !out.iter()
                .any(|a| matches!(a, Action::BroadcastEvidence(_)))
        );
        let twin = prevote(&key(i), &chain, 1, real.round, ZERO_HASH);
        let out = o.on_vote(8, twin, NOW, &NoMempool).expect("engine");
        assert!(penalties(&out).is_empty());
        assert!(
            out.iter().any(|a| matches!(a, Action::PersistEvidence(..))),
            "the real conflicting vote of validator {i} is evidence"
        );
        proved += 1;
    }
    assert!(
        proved >= 3,
        "a quorum of prevotes was kept; {proved} proved"
    );
}
