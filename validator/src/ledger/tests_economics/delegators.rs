//! Commission and F1 rewards per share.

use super::*;

// ---- commission ----

#[test]
fn commission_is_paid_to_the_operator_account() {
    let mut l = ledger(1, reward_only(UNIT), (1_000, 2_000, 100));
    let op = addr(&operator(0));
    let bal = l.account(&op).balance;
    step(&mut l, Some(val(0)), &[], &[]);
    assert_eq!(l.account(&op).balance - bal, 100_000, "10% of the pool");
    assert_eq!(outstanding(&l, val(0)), 900_000);
    assert_eq!(l.rewards(&op, &val(0)), Some(900_000));
}

#[test]
fn edit_validator_boundaries() {
    let p = pb::GenesisParams {
        commission_epoch: 5,
        ..base()
    };
    let mut l = ledger(1, p, (1_900, 2_000, 100));
    let (op, v) = (operator(0), val(0));
    let t = tx_at(&l, &op, 0, edit(v, 1_950));
    let r = run(&mut l, &BlockInfo::default(), &[t]);
    assert_eq!(
        outcome_err(&r.receipts[0]).1,
        &TxError::CommissionTooSoon {
            changed_at: 0,
            next: 5
        }
    );
    for _ in 2..5 {
        run(&mut l, &BlockInfo::default(), &[]);
    }
    let txs = [
        tx_at(&l, &user(1), 0, edit(v, 2_000)),
        tx_at(&l, &op, 0, edit(v, 2_001)),
        tx_at(&l, &op, 1, edit(v, 1_799)),
        tx_at(&l, &op, 2, edit(v, 2_000)),
    ];
    let r = run(&mut l, &BlockInfo::default(), &txs);
    assert!(matches!(
        outcome_err(&r.receipts[0]),
        ("failed", TxError::NotOperator { .. })
    ));
    assert_eq!(
        outcome_err(&r.receipts[1]).1,
        &TxError::CommissionAboveMax {
            rate: 2_001,
            max: 2_000
        }
    );
    assert_eq!(
        outcome_err(&r.receipts[2]).1,
        &TxError::CommissionChangeTooLarge {
            from: 1_900,
            to: 1_799,
            max_change: 100
        }
    );
    // Exactly the maximum rate, by exactly the maximum change, exactly one epoch on.
    assert!(r.receipts[3].is_ok(), "{}", r.receipts[3].log);
    let c = l.validator(&v).expect("v").commission;
    assert_eq!((c.rate_bps, c.changed_at), (2_000, 5));
    for _ in 6..9 {
        run(&mut l, &BlockInfo::default(), &[]);
    }
    let t = tx_at(&l, &op, 0, edit(v, 1_900));
    let r = run(&mut l, &BlockInfo::default(), &[t]);
    assert_eq!(
        outcome_err(&r.receipts[0]).1,
        &TxError::CommissionTooSoon {
            changed_at: 5,
            next: 10
        }
    );
    let t = tx_at(&l, &op, 0, edit(v, 1_900));
    let r = run(&mut l, &BlockInfo::default(), &[t]);
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    assert_eq!(l.validator(&v).expect("v").commission.rate_bps, 1_900);
}

#[test]
fn create_validator_and_genesis_validate_commission() {
    let mut l = ledger(1, base(), (0, 0, 0));
    let u = user(1);
    let c = consensus(9);
    let txs = [
        tx_at(&l, &u, 0, create(&c, 10 * UNIT, (2_001, 2_000, 100))),
        tx_at(&l, &u, 1, create(&c, 10 * UNIT, (100, 10_001, 100))),
        tx_at(&l, &u, 2, create(&c, 10 * UNIT, (100, 2_000, 2_001))),
        tx_at(&l, &u, 3, create(&c, 10 * UNIT, (10_000, 10_000, 10_000))),
    ];
    let r = run(&mut l, &BlockInfo::default(), &txs);
    assert_eq!(
        outcome_err(&r.receipts[0]).1,
        &TxError::CommissionAboveMax {
            rate: 2_001,
            max: 2_000
        }
    );
    assert!(matches!(
        outcome_err(&r.receipts[1]).1,
        TxError::InvalidCommission(_)
    ));
    assert!(matches!(
        outcome_err(&r.receipts[2]).1,
        TxError::InvalidCommission(_)
    ));
    assert!(r.receipts[3].is_ok(), "{}", r.receipts[3].log);
    let got = l.validator(&addr(&c)).expect("created").commission;
    assert_eq!(
        got,
        Commission {
            rate_bps: 10_000,
            max_rate_bps: 10_000,
            max_change_bps: 10_000,
            changed_at: 1
        }
    );
    let mut g = genesis(1, base(), (501, 500, 10));
    assert!(matches!(
        Ledger::from_genesis(&g),
        Err(GenesisError::Validator { index: 0, .. })
    ));
    g.validators[0].commission_rate_bps = 500;
    assert!(Ledger::from_genesis(&g).is_ok());
}

// ---- F1 rewards per share ----

/// One validator (operator 10 units); user 1 bonds 10 and user 2 30 units
/// in block 1; `blocks` blocks in all, each paying R to the validator.
fn f1_ledger(blocks: u64) -> Ledger {
    let mut l = ledger(1, reward_only(R), (0, 0, 0));
    let txs = [
        tx_at(&l, &user(1), 0, bond(val(0), 10 * UNIT)),
        tx_at(&l, &user(2), 0, bond(val(0), 30 * UNIT)),
    ];
    let r = step(&mut l, Some(val(0)), &[], &txs);
    assert!(r.receipts.iter().all(TxReceipt::is_ok));
    for _ in 1..blocks {
        step(&mut l, Some(val(0)), &[], &[]);
    }
    l
}

#[test]
fn delegators_with_shares_1_to_3_get_rewards_1_to_3() {
    let l = f1_ledger(5);
    let (v, u1, u2) = (val(0), addr(&user(1)), addr(&user(2)));
    let r1 = l.rewards(&u1, &v).expect("delegation");
    let r2 = l.rewards(&u2, &v).expect("delegation");
    // 5 blocks credit 5R to 50 units of shares: floor(10/50·5R), floor(30/50·5R).
    assert_eq!(r1, 10 * 5 * R / 50);
    assert_eq!(r2, 30 * 5 * R / 50);
    assert_eq!(r2, 3 * r1);
    assert_eq!(l.rewards(&addr(&operator(0)), &v), Some(r1));
    assert!(
        r1 + r2 + r1 <= outstanding(&l, v),
        "never more than credited"
    );
}

/// What a light client computes from the two proven leaves is what the
/// ledger says each delegation is owed, after a withdrawal too.
#[test]
fn rewards_from_the_proven_leaves_are_the_ledgers() {
    use crate::ledger::merkle::leaves::{delegation_key, validator_key};
    use crate::ledger::rewards::pending_from_leaves;
    use prost::Message;

    let mut l = f1_ledger(5);
    let v = val(0);
    let before = l.rewards(&addr(&user(1)), &v).unwrap();
    let withdraw = tx_at(&l, &user(1), 0, withdraw(v));
    assert!(step(&mut l, Some(v), &[], &[withdraw]).receipts[0].is_ok());
    let h = l.height();
    let leaf = |key: Vec<u8>| {
        let proof = l.prove(&key, h).expect("provable");
        assert!(proof.present);
        proof.value
    };
    let vleaf = pb::ValidatorLeaf::decode(&leaf(validator_key(&v))[..]).unwrap();
    let mut owed = Vec::new();
    for d in [addr(&user(1)), addr(&user(2)), addr(&operator(0))] {
        let dleaf = pb::DelegationLeaf::decode(&leaf(delegation_key(&d, &v))[..]).unwrap();
        let proven = pending_from_leaves(&vleaf, &dleaf).unwrap();
        assert_eq!(Some(proven), l.rewards(&d, &v));
        owed.push(proven);
    }
    // User 1's withdrawal was settled in its leaf (only the withdrawing
    // block's own reward is owed since), the others still accrue.
    assert!(owed[0] < before && owed[0] < owed[1], "{before} {owed:?}");
    assert!(owed[2] > 0, "{owed:?}");
    // A damaged figure is refused, not read as zero.
    let mut bad = vleaf.clone();
    bad.outstanding_rewards = "-1".into();
    let dleaf = pb::DelegationLeaf::decode(&leaf(delegation_key(&addr(&user(2)), &v))[..]).unwrap();
    let err = pending_from_leaves(&bad, &dleaf).unwrap_err();
    assert_eq!(err.field, "validator outstanding_rewards");
}

#[test]
fn withdraw_pays_pending_and_resets_it_and_share_changes_settle() {
    let mut l = f1_ledger(5);
    let (v, u1, u2) = (val(0), addr(&user(1)), addr(&user(2)));
    let pend1 = l.rewards(&u1, &v).expect("d");
    let out = outstanding(&l, v);
    let bal = l.account(&u1).balance;
    l.begin_block(6, &info(&l, Some(v), &[])).expect("begin");
    let r = l.deliver_tx(&tx_at(&l, &user(1), 0, withdraw(v)));
    assert!(r.is_ok());
    // The receipt names the amount the delegator could not know when it signed.
    assert_eq!(r.log, format!("ok: withdrew {pend1} in rewards from {v}"));
    assert_eq!(l.account(&u1).balance, bal + pend1);
    assert_eq!(l.rewards(&u1, &v), Some(0), "reset");
    assert_eq!(outstanding(&l, v), out - pend1);
    // Bond and unbond settle what is pending to the balance.
    let pend2 = l.rewards(&u2, &v).expect("d");
    let bal2 = l.account(&u2).balance;
    let r = l.deliver_tx(&tx_at(&l, &user(2), 0, bond(v, UNIT)));
    assert_eq!(
        r.log,
        format!("ok: bonded {UNIT} to {v} for {UNIT} shares; {pend2} in rewards paid")
    );
    assert_eq!(l.account(&u2).balance, bal2 + pend2 - UNIT);
    assert_eq!(l.rewards(&u2, &v), Some(0));
    let op = addr(&operator(0));
    let pend_op = l.rewards(&op, &v).expect("d");
    assert!(pend_op > 0);
    let bal_op = l.account(&op).balance;
    let r = l.deliver_tx(&tx_at(&l, &operator(0), 0, unbond(v, UNIT)));
    let paid_at = 6 + base().unbonding_period;
    assert_eq!(
        r.log,
        format!(
            "ok: unbonding {UNIT} from {v}, paid at height {paid_at}; {pend_op} in rewards paid"
        )
    );
    assert_eq!(l.account(&op).balance, bal_op + pend_op);
    assert_eq!(l.rewards(&op, &v), Some(0));
    l.end_block().expect("end");
    // Withdrawing without a delegation fails (and pays its fee: 0 here).
    let t = tx_at(&l, &user(3), 0, withdraw(v));
    let r = run(&mut l, &BlockInfo::default(), &[t]);
    assert!(matches!(
        outcome_err(&r.receipts[0]),
        ("failed", TxError::NoDelegation { .. })
    ));
}

fn duplicate_vote(k: &SecretKey, h: Height) -> pb::Evidence {
    let vote = |hash: Hash| pb::Vote {
        vote_type: VoteType::Precommit as i32,
        height: h,
        round: 0,
        block_hash: hash.to_vec(),
        validator_address: addr(k).0.to_vec(),
        signature: k
            .sign(&vote_bytes(&chain(), VoteType::Precommit, h, 0, &hash))
            .to_bytes()
            .to_vec(),
    };
    pb::Evidence {
        kind: Some(pb::evidence::Kind::DuplicateVote(
            pb::DuplicateVoteEvidence {
                vote_a: Some(vote([1; 32])),
                vote_b: Some(vote([2; 32])),
            },
        )),
    }
}

#[test]
fn rewards_accrued_before_a_slash_are_kept() {
    let mut l = ledger(3, reward_only(R), (0, 0, 0));
    for _ in 0..4 {
        step(&mut l, Some(val(0)), &[], &[]);
    }
    let op1 = addr(&operator(1));
    let pending = l.rewards(&op1, &val(1)).expect("self-delegation");
    assert!(pending > 0);
    let tokens = l.validator(&val(1)).expect("v1").tokens;
    let r = l
        .apply_block(
            5,
            &BlockInfo::default(),
            &[],
            &[duplicate_vote(&consensus(1), 3)],
            &[0; 32],
        )
        .expect("block 5");
    assert!(r.evidence[0].is_ok(), "{:?}", r.evidence[0]);
    assert!(l.supply().balances_out());
    assert_eq!(l.validator(&val(1)).expect("v1").tokens, tokens - UNIT);
    assert_eq!(l.rewards(&op1, &val(1)), Some(pending), "kept");
    let bal = l.account(&op1).balance;
    let t = tx_at(&l, &operator(1), 0, withdraw(val(1)));
    let r = run(&mut l, &BlockInfo::default(), &[t]);
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    assert_eq!(l.account(&op1).balance, bal + pending);
}
