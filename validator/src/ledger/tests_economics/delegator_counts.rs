//! The counts an account leaf carries of its delegator leaves: what makes a
//! proven list of delegations, unbonding or redelegation entries complete.

use super::*;
use crate::ledger::merkle::leaves::account_key;
use prost::Message;

/// (delegations, unbonding entries, redelegations) as the proven account
/// leaf of `a` carries them at the ledger's height.
fn leaf_counts(l: &Ledger, a: &Address) -> (u64, u64, u64) {
    let key = account_key(a);
    let p = l.prove(&key, l.height()).expect("provable");
    crate::ledger::merkle::proof::verify(&p, &key, &l.app_hash()).expect("verifies");
    let leaf = pb::AccountLeaf::decode(&p.value[..]).expect("an account leaf");
    (leaf.delegations, leaf.unbonding_entries, leaf.redelegations)
}

/// The same, counted from the ledger's own lists.
fn listed(l: &Ledger, a: &Address) -> (u64, u64, u64) {
    let s = &l.state;
    let n = |it: usize| it as u64;
    (
        n(s.delegations.keys().filter(|k| k.0 == *a).count()),
        n(s.unbonding.keys().filter(|k| k.0 == *a).count()),
        n(s.redelegations.keys().filter(|k| k.0 == *a).count()),
    )
}

/// Control by hand: leaving the delegators out of `leaves::changed` (only
/// the touched accounts rewritten) fails at the redelegation's maturity.
#[test]
fn an_account_leaf_counts_the_delegator_leaves_of_its_address() {
    let mut l = ledger(3, base(), (500, 1_000, 100));
    let u = user(1);
    let d = addr(&u);
    let other = addr(&user(2));
    assert_eq!(leaf_counts(&l, &d), (0, 0, 0));
    // A genesis operator's self-bond is counted from the start.
    assert_eq!(leaf_counts(&l, &addr(&operator(0))), (1, 0, 0));

    let txs = [tx_at(&l, &u, 0, bond(val(0), 100 * UNIT))];
    step(&mut l, Some(val(0)), &[], &txs);
    assert_eq!(leaf_counts(&l, &d), (1, 0, 0));

    let redelegate = Kind::Redelegate(pb::Redelegate {
        src_validator: val(0).0.to_vec(),
        dst_validator: val(1).0.to_vec(),
        shares: (30 * UNIT).to_string(),
    });
    // The redelegation a block before the unbondings, so that it matures
    // in a block that does not touch the delegator's account (an unbonding
    // entry's maturity pays into it; a redelegation's pays nothing).
    let txs = [tx_at(&l, &u, 0, redelegate)];
    let r = step(&mut l, Some(val(1)), &[], &txs);
    assert!(r.receipts.iter().all(TxReceipt::is_ok), "{:?}", r.receipts);
    assert_eq!(leaf_counts(&l, &d), (2, 0, 1));
    let txs = [
        tx_at(&l, &u, 0, unbond(val(0), 5 * UNIT)),
        tx_at(&l, &u, 1, unbond(val(0), 5 * UNIT)),
    ];
    let r = step(&mut l, Some(val(1)), &[], &txs);
    assert!(r.receipts.iter().all(TxReceipt::is_ok), "{:?}", r.receipts);
    assert_eq!(leaf_counts(&l, &d), (2, 2, 1));
    assert_eq!(leaf_counts(&l, &d), listed(&l, &d));

    // A transfer changes the account leaf; the counts stay.
    let txs = [tx_at(&l, &u, 0, transfer(other, 1))];
    step(&mut l, Some(val(0)), &[], &txs);
    assert_eq!(leaf_counts(&l, &d), (2, 2, 1));

    // Maturity removes the entries in a block without a transaction of
    // theirs: the delegator's leaf follows.
    let mut seen = Vec::new();
    for _ in 0..12 {
        step(&mut l, Some(val(0)), &[], &[]);
        assert_eq!(leaf_counts(&l, &d), listed(&l, &d), "at {}", l.height());
        seen.push(leaf_counts(&l, &d));
    }
    assert!(seen.contains(&(2, 2, 0)), "the redelegation matured alone");
    assert_eq!(leaf_counts(&l, &d), (2, 0, 0));

    // Withdrawing a whole delegation removes its leaf and its count.
    let shares = l.state.delegations[&(d, val(1))].shares;
    let txs = [tx_at(&l, &u, 0, unbond(val(1), shares))];
    step(&mut l, Some(val(0)), &[], &txs);
    assert_eq!(leaf_counts(&l, &d), (1, 1, 0));

    // The tree the blocks moved has the root of one built whole, and the
    // state comes back from its leaves (whose counts are checked to be
    // the canonical ones).
    let whole = Ledger::decode(&l.encode()).expect("decodes");
    assert_eq!(whole.app_hash(), l.app_hash());
}
