//! Evidence and slashing: duplicate votes, conflicting proposals and
//! certificates, the evidence window, and what a slash reaches.

use super::*;

#[test]
fn duplicate_vote_slashes_five_percent_jails_and_tombstones_once() {
    let mut l = ledger(3);
    let c = consensus(1);
    let v = addr(&c);
    empty_blocks(&mut l, 3);
    let ev = duplicate_vote(&c, 2);
    let r = block(&mut l, &[], std::slice::from_ref(&ev));
    let events = r.evidence[0].as_ref().expect("valid evidence");
    assert_eq!(events.len(), 1);
    // 20 units of power at height 2 → 1 unit slashed.
    assert_eq!(events[0].amount, UNIT);
    assert_eq!(events[0].from_bonded, UNIT);
    assert_eq!(events[0].fraction_bps, 500);
    let view = l.validator(&v).expect("exists");
    assert_eq!(view.tokens, 19 * UNIT);
    assert!(view.jailed && view.tombstoned);
    assert!(
        l.validator_set(l.height() + 2)
            .expect("set")
            .get(&v)
            .is_none()
    );
    assert_eq!(l.slashed_total(), UNIT);
    assert_eq!(l.slash_events(Some(&v), None, 0), events.clone());
    // The operator's delegation lost 5%.
    assert_eq!(
        l.delegation(&addr(&operator(1)), &v).map(|d| d.tokens),
        Some(19 * UNIT)
    );
    // Again: rejected, nothing more slashed.
    let r = block(&mut l, &[], &[ev]);
    assert_eq!(r.evidence[0], Err(EvidenceError::AlreadyTombstoned(v)));
    assert_eq!(l.slashed_total(), UNIT);
    // Tombstoned validators cannot be unjailed or bonded to.
    let r = block(
        &mut l,
        &[
            tx(&operator(1), 0, unjail(v)),
            tx(&user(1), 0, bond(v, UNIT)),
        ],
        &[],
    );
    assert_eq!(failed(&r.receipts[0]), &TxError::Tombstoned(v));
    assert_eq!(failed(&r.receipts[1]), &TxError::Tombstoned(v));
}

#[test]
fn slash_reaches_unbonding_entries_from_h_minus_1_only() {
    let mut l = ledger(2);
    let c = consensus(1);
    let v = addr(&c);
    let (u1, u2, u3) = (user(1), user(2), user(3));
    block(
        &mut l,
        &[
            tx(&u1, 0, bond(v, 100 * UNIT)),
            tx(&u2, 0, bond(v, 100 * UNIT)),
            tx(&u3, 0, bond(v, 100 * UNIT)),
        ],
        &[],
    ); // h1
    block(&mut l, &[tx(&u1, 1, unbond(v, 40 * UNIT))], &[]); // h2: too early for an infraction at 4
    block(&mut l, &[tx(&u2, 1, unbond(v, 40 * UNIT))], &[]); // h3 = 4 − 1: counted
    block(&mut l, &[], &[]); // h4
    block(&mut l, &[tx(&u3, 1, unbond(v, 60 * UNIT))], &[]); // h5: counted
    let power_at_4 = l
        .validator_set(4)
        .and_then(|s| s.get(&v))
        .map(|x| x.power)
        .expect("in set");
    let tokens_before = l.validator(&v).expect("v").tokens;
    let r = block(&mut l, &[], &[duplicate_vote(&c, 4)]);
    let ev = &r.evidence[0].as_ref().expect("valid")[0];
    let target = u128::from(power_at_4) * UNIT * 5 / 100;
    assert_eq!(ev.amount, target);
    assert_eq!(ev.from_unbonding, 2 * UNIT + 3 * UNIT);
    assert_eq!(ev.from_bonded, target - 5 * UNIT);
    assert_eq!(
        l.validator(&v).expect("v").tokens,
        tokens_before - ev.from_bonded
    );
    let bal = |u: &AccountSecretKey| l.unbonding(&addr(u), None, 0)[0].balance;
    assert_eq!(bal(&u1), 40 * UNIT);
    assert_eq!(bal(&u2), 38 * UNIT);
    assert_eq!(bal(&u3), 57 * UNIT);
}

#[test]
fn evidence_window_and_validity_checks() {
    let mut l = ledger(2);
    let c = consensus(0);
    empty_blocks(&mut l, 12);
    // unbonding_period 10: at block 13, infractions at heights ≥ 4 are accepted.
    l.begin_block(13, &BlockInfo::default()).expect("begin");
    assert!(matches!(
        l.check_evidence(&duplicate_vote(&c, 3)),
        Err(EvidenceError::TooOld { .. })
    ));
    assert!(l.check_evidence(&duplicate_vote(&c, 4)).is_ok());
    assert!(matches!(
        l.check_evidence(&duplicate_vote(&c, 13)),
        Err(EvidenceError::FromTheFuture { .. })
    ));
    // Not a validator at that height.
    assert!(matches!(
        l.check_evidence(&duplicate_vote(&sk(1), 5)),
        Err(EvidenceError::NotAValidator { .. })
    ));
    // Halves swapped: not canonical.
    let mut ev = duplicate_vote(&c, 5);
    if let Some(pb::evidence::Kind::DuplicateVote(d)) = ev.kind.as_mut() {
        std::mem::swap(&mut d.vote_a, &mut d.vote_b);
    }
    assert_eq!(
        l.check_evidence(&ev),
        Err(EvidenceError::Invalid(CE::NotCanonical))
    );
    // Same block twice: no conflict.
    let same = pb::Evidence {
        kind: Some(pb::evidence::Kind::DuplicateVote(
            pb::DuplicateVoteEvidence {
                vote_a: Some(signed_vote(&c, 5, 0, [1; 32])),
                vote_b: Some(signed_vote(&c, 5, 0, [1; 32])),
            },
        )),
    };
    assert_eq!(
        l.check_evidence(&same),
        Err(EvidenceError::Invalid(CE::NotConflicting))
    );
    // A forged half.
    let mut forged = duplicate_vote(&c, 5);
    if let Some(pb::evidence::Kind::DuplicateVote(d)) = forged.kind.as_mut()
        && let Some(b) = d.vote_b.as_mut()
    {
        b.signature = consensus(1).sign(b"x").to_bytes().to_vec();
    }
    assert_eq!(
        l.check_evidence(&forged),
        Err(EvidenceError::Invalid(CE::BadSignature('b')))
    );
    // Different rounds do not conflict.
    let rounds = pb::Evidence {
        kind: Some(pb::evidence::Kind::DuplicateVote(
            pb::DuplicateVoteEvidence {
                vote_a: Some(signed_vote(&c, 5, 0, [1; 32])),
                vote_b: Some(signed_vote(&c, 5, 1, [2; 32])),
            },
        )),
    };
    assert!(matches!(
        l.check_evidence(&rounds),
        Err(EvidenceError::Invalid(CE::Mismatch(_)))
    ));
    assert!(matches!(
        l.check_evidence(&pb::Evidence { kind: None }),
        Err(EvidenceError::Malformed(_))
    ));
    l.end_block().expect("end");
}

fn signed_proposal(k: &SecretKey, h: Height, pol: i32, hash: Hash) -> pb::SignedProposal {
    pb::SignedProposal {
        height: h,
        round: 1,
        pol_round: pol,
        block_hash: hash.to_vec(),
        proposer_address: addr(k).0.to_vec(),
        signature: k
            .sign(&proposal_bytes(&chain(), h, 1, pol, &hash))
            .to_bytes()
            .to_vec(),
    }
}

#[test]
fn conflicting_proposals_slash_the_proposer() {
    let mut l = ledger(2);
    let c = consensus(0);
    empty_blocks(&mut l, 2);
    let ev = pb::Evidence {
        kind: Some(pb::evidence::Kind::ConflictingProposals(
            pb::ConflictingProposalsEvidence {
                proposal_a: Some(signed_proposal(&c, 2, -1, [3; 32])),
                proposal_b: Some(signed_proposal(&c, 2, -1, [4; 32])),
            },
        )),
    };
    let r = block(&mut l, &[], &[ev]);
    let events = r.evidence[0].as_ref().expect("valid");
    assert_eq!(events[0].validator, addr(&c));
    assert_eq!(events[0].amount, 10 * UNIT / 20);
    assert!(l.validator(&addr(&c)).expect("v").tombstoned);
}

/// Precommit certificates of height 2 signed by the given members (by
/// index into `consensus(0..4)`), in `round`.
fn certificate_of(l: &Ledger, hash: Hash, round: u32, who: &[u8]) -> pb::CommitCertificate {
    let h = 2;
    let set = l.validator_set(h).expect("set").clone();
    let pre: Vec<(usize, crate::crypto::Signature)> = who
        .iter()
        .map(|i| {
            let k = consensus(*i);
            let idx = set.index_of(&addr(&k)).expect("member");
            (
                idx,
                k.sign(&vote_bytes(&chain(), VoteType::Precommit, h, round, &hash)),
            )
        })
        .collect();
    CommitCertificate::from_precommits(&set, h, round, hash, &pre)
        .expect("cert")
        .to_proto()
}

fn conflicting_certificates(a: pb::CommitCertificate, b: pb::CommitCertificate) -> pb::Evidence {
    pb::Evidence {
        kind: Some(pb::evidence::Kind::ConflictingCertificates(
            pb::ConflictingCertificatesEvidence {
                cert_a: Some(a),
                cert_b: Some(b),
            },
        )),
    }
}

#[test]
fn conflicting_certificates_slash_every_double_signer() {
    let mut l = ledger(4);
    empty_blocks(&mut l, 3);
    // Powers 10, 20, 30, 40 (total 100): {1,2,3} = 90 and {0,2,3} = 80 are quorums.
    let ev = conflicting_certificates(
        certificate_of(&l, [5; 32], 0, &[1, 2, 3]),
        certificate_of(&l, [6; 32], 0, &[0, 2, 3]),
    );
    let r = block(&mut l, &[], &[ev]);
    let events = r.evidence[0].as_ref().expect("valid");
    let mut slashed: Vec<Address> = events.iter().map(|e| e.validator).collect();
    let mut expect = vec![addr(&consensus(2)), addr(&consensus(3))];
    slashed.sort();
    expect.sort();
    assert_eq!(slashed, expect);
    assert!(!l.validator(&addr(&consensus(0))).expect("v").tombstoned);
    assert!(!l.validator(&addr(&consensus(1))).expect("v").tombstoned);
    assert_eq!(l.slashed_total(), (30 + 40) * UNIT / 20);
}

#[test]
fn certificates_of_different_rounds_are_not_evidence() {
    // An honest validator may precommit A in round 0 and, after a polka in
    // round 1, B: two valid certificates of different rounds prove nothing.
    let mut l = ledger(4);
    empty_blocks(&mut l, 3);
    let ev = conflicting_certificates(
        certificate_of(&l, [5; 32], 0, &[1, 2, 3]),
        certificate_of(&l, [6; 32], 1, &[0, 2, 3]),
    );
    let err = l.check_evidence(&ev).expect_err("different rounds");
    assert!(err.to_string().contains("round"), "{err}");
    let r = block(&mut l, &[], &[ev]);
    assert!(r.evidence[0].is_err());
    assert_eq!(l.slashed_total(), 0);
    assert!(!l.validator(&addr(&consensus(2))).expect("v").tombstoned);
}

// ---- snapshot ----
