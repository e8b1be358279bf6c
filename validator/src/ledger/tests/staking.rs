//! Staking: creating validators, bonding and unbonding at the exchange
//! rate, the unbonding queue, jailing below the minimum self-bond, and the
//! active set.

use super::*;

#[test]
fn create_validator_checks_pop_and_min_self_bond_and_joins_at_h_plus_2() {
    let mut l = ledger(1);
    let a = user(1);
    let c = consensus(9);
    let r = block(
        &mut l,
        &[tx(&a, 0, create_validator(&c, &consensus(8), 50 * UNIT))],
        &[],
    );
    assert_eq!(failed(&r.receipts[0]), &TxError::BadProofOfPossession);
    let r = block(
        &mut l,
        &[tx(&a, 1, create_validator(&c, &c, UNIT - 1))],
        &[],
    );
    assert!(matches!(
        failed(&r.receipts[0]),
        TxError::SelfBondTooSmall { .. }
    ));
    let r = block(
        &mut l,
        &[tx(&a, 2, create_validator(&c, &c, 50 * UNIT))],
        &[],
    );
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    let h = l.height();
    assert!(
        l.validator_set(h + 1)
            .expect("known")
            .get(&addr(&c))
            .is_none()
    );
    assert_eq!(
        l.validator_set(h + 2)
            .expect("known")
            .get(&addr(&c))
            .map(|v| v.power),
        Some(50)
    );
    // Three transactions paid their fees, two failed.
    assert_eq!(l.account(&addr(&a)).balance, 950 * UNIT - 3 * FEE);
    assert_eq!(
        l.delegation(&addr(&a), &addr(&c)).map(|d| d.tokens),
        Some(50 * UNIT)
    );
    let r = block(
        &mut l,
        &[tx(&a, 3, create_validator(&c, &c, 50 * UNIT))],
        &[],
    );
    assert_eq!(failed(&r.receipts[0]), &TxError::ValidatorExists(addr(&c)));
}

#[test]
fn bond_buys_shares_at_the_current_exchange_rate_rounding_down() {
    let mut l = ledger(1);
    let v = addr(&consensus(0));
    // Make the rate 3 tokens per 2 shares.
    if let Some(rec) = l.state.validators.get_mut(&v) {
        rec.tokens = 15 * UNIT;
        rec.shares = 10 * UNIT;
    }
    l.state.genesis_supply += 5 * UNIT;
    l.state.delegations.insert(
        (addr(&operator(0)), v),
        Delegation {
            shares: 10 * UNIT,
            reward_entry: 0,
        },
    );
    let r = block(&mut l, &[tx(&user(1), 0, bond(v, 7))], &[]);
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    // 7 · 2/3 = 4.67 → 4 shares.
    assert_eq!(l.delegation(&addr(&user(1)), &v).map(|d| d.shares), Some(4));
    // 4 shares are worth 6 tokens: the lost token stays with the validator.
    assert_eq!(l.delegation(&addr(&user(1)), &v).map(|d| d.tokens), Some(6));
    let r = block(&mut l, &[tx(&user(2), 0, bond(v, 1))], &[]);
    assert_eq!(failed(&r.receipts[0]), &TxError::BondTooSmall { amount: 1 });
}

#[test]
fn unbond_pays_out_exactly_at_completion_height() {
    let mut l = ledger(1);
    let v = addr(&consensus(0));
    let u = user(1);
    block(&mut l, &[tx(&u, 0, bond(v, 40 * UNIT))], &[]);
    let r = block(&mut l, &[tx(&u, 1, unbond(v, 15 * UNIT))], &[]);
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    let h = l.height();
    let entries = l.unbonding(&addr(&u), None, 0);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].completion_height, h + 10);
    assert_eq!(entries[0].balance, 15 * UNIT);
    assert_eq!(
        l.delegation(&addr(&u), &v).map(|d| d.shares),
        Some(25 * UNIT)
    );
    assert_eq!(l.validator_set(h + 2).map(|s| s.total_power()), Some(35));
    empty_blocks(&mut l, 9);
    assert_eq!(
        l.account(&addr(&u)).balance,
        960 * UNIT - 2 * FEE,
        "not before"
    );
    let r = block(&mut l, &[], &[]);
    assert_eq!(r.end.matured.len(), 1);
    assert_eq!(l.height(), h + 10);
    assert_eq!(
        l.account(&addr(&u)).balance,
        975 * UNIT - 2 * FEE,
        "exactly at completion"
    );
    assert!(l.unbonding(&addr(&u), None, 0).is_empty());
}

#[test]
fn at_most_seven_unbonding_entries_per_pair() {
    let mut l = ledger(1);
    let v = addr(&consensus(0));
    let u = user(1);
    block(&mut l, &[tx(&u, 0, bond(v, 40 * UNIT))], &[]);
    let txs: Vec<_> = (1..=8).map(|n| tx(&u, n, unbond(v, UNIT))).collect();
    let r = block(&mut l, &txs, &[]);
    assert!(r.receipts[..7].iter().all(TxReceipt::is_ok));
    assert_eq!(
        failed(&r.receipts[7]),
        &TxError::TooManyUnbondingEntries { max: 7 }
    );
    assert_eq!(l.unbonding(&addr(&u), None, 0).len(), 7);
    // Pagination walks them in order.
    let first = l.unbonding(&addr(&u), None, 3);
    let rest = l.unbonding(&addr(&u), first.last().map(|e| (e.validator, e.id)), 10);
    assert_eq!(first.len() + rest.len(), 7);
    assert!(first.last().map(|e| e.id) < rest.first().map(|e| e.id));
}

#[test]
fn unbonding_more_shares_than_held_or_without_delegation_fails() {
    let mut l = ledger(1);
    let v = addr(&consensus(0));
    let r = block(&mut l, &[tx(&user(1), 0, unbond(v, 1))], &[]);
    assert!(matches!(
        failed(&r.receipts[0]),
        TxError::NoDelegation { .. }
    ));
    let r = block(&mut l, &[tx(&operator(0), 0, unbond(v, 11 * UNIT))], &[]);
    assert_eq!(
        failed(&r.receipts[0]),
        &TxError::InsufficientShares {
            need: 11 * UNIT,
            have: 10 * UNIT
        }
    );
}

#[test]
fn operator_below_min_self_bond_is_jailed_and_can_unjail_after_the_period() {
    let mut l = ledger(2);
    let v = addr(&consensus(0));
    let op = operator(0);
    // Self-bond 10 units; leave 0.5 units.
    let r = block(&mut l, &[tx(&op, 0, unbond(v, 9 * UNIT + UNIT / 2))], &[]);
    assert!(r.receipts[0].is_ok());
    let h = l.height();
    let view = l.validator(&v).expect("exists");
    assert!(view.jailed && !view.tombstoned);
    assert_eq!(view.jailed_until, h + 5);
    assert!(l.validator_set(h + 2).expect("set").get(&v).is_none());
    let r = block(&mut l, &[tx(&user(1), 0, unjail(v))], &[]);
    assert!(matches!(
        failed(&r.receipts[0]),
        TxError::NotOperator { .. }
    ));
    let r = block(&mut l, &[tx(&op, 1, unjail(v))], &[]);
    assert!(matches!(
        failed(&r.receipts[0]),
        TxError::StillJailed { .. }
    ));
    empty_blocks(&mut l, 3);
    let r = block(&mut l, &[tx(&op, 2, unjail(v))], &[]);
    assert!(matches!(
        failed(&r.receipts[0]),
        TxError::SelfBondTooSmall { .. }
    ));
    let r = block(
        &mut l,
        &[tx(&op, 3, bond(v, UNIT)), tx(&op, 4, unjail(v))],
        &[],
    );
    assert!(r.receipts.iter().all(TxReceipt::is_ok), "{:?}", r.receipts);
    assert!(!l.validator(&v).expect("exists").jailed);
    assert!(
        l.validator_set(l.height() + 2)
            .expect("set")
            .get(&v)
            .is_some()
    );
    let r = block(&mut l, &[tx(&op, 5, unjail(v))], &[]);
    assert_eq!(failed(&r.receipts[0]), &TxError::NotJailed(v));
}

#[test]
fn active_set_is_top_max_validators_with_ties_by_address() {
    let mut g = genesis(4);
    g.params = Some(pb::GenesisParams {
        max_validators: 2,
        ..params()
    });
    // Validators 1 and 2 tie at 20 units; 3 has 40; 0 has 10.
    g.validators[2].self_bond = (20 * UNIT).to_string();
    let l = Ledger::from_genesis(&g).expect("genesis");
    let set = l.validator_set(1).expect("set");
    let tied = [addr(&consensus(1)), addr(&consensus(2))];
    let winner_of_tie = *tied.iter().min().expect("two");
    let mut expect = vec![addr(&consensus(3)), winner_of_tie];
    expect.sort();
    let got: Vec<Address> = set.validators().iter().map(|v| v.address).collect();
    assert_eq!(got, expect);
    assert!(
        !l.validator(tied.iter().max().expect("two"))
            .expect("exists")
            .active
    );
}

// ---- evidence ----
