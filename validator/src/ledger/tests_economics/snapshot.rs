//! The snapshot of every economic field, and tampering that breaks the supply identity.

use super::*;

// ---- snapshot ----

/// A ledger with every economic field populated: commission, rewards,
/// community pool, a pending redelegation, an unbonding entry, signing
/// windows and a validator jailed for downtime.
fn economic_ledger() -> Ledger {
    let p = pb::GenesisParams {
        signed_blocks_window: 4,
        downtime_jail_heights: 5,
        block_reward: R.to_string(),
        ..base()
    };
    let mut l = ledger(3, p, (500, 1_000, 100));
    let u = user(1);
    let txs = [tx_at(&l, &u, 0, bond(val(0), 100 * UNIT))];
    step(&mut l, Some(val(0)), &[], &txs);
    let redelegate = Kind::Redelegate(pb::Redelegate {
        src_validator: val(0).0.to_vec(),
        dst_validator: val(1).0.to_vec(),
        shares: (30 * UNIT).to_string(),
    });
    let txs = [
        tx_at(&l, &u, 0, redelegate),
        tx_at(&l, &u, 1, unbond(val(0), 5 * UNIT)),
    ];
    let r = step(&mut l, Some(val(1)), &[val(2)], &txs);
    assert!(r.receipts.iter().all(TxReceipt::is_ok), "{:?}", r.receipts);
    for _ in 0..3 {
        step(&mut l, Some(val(0)), &[val(2)], &[]);
    }
    let txs = [tx_at(&l, &u, 0, withdraw(val(1)))];
    step(&mut l, Some(val(1)), &[], &txs);
    l
}

#[test]
fn snapshot_roundtrips_every_economic_field() {
    let l = economic_ledger();
    let s = &l.state;
    assert!(!s.redelegations.is_empty() && !s.unbonding.is_empty());
    assert!(!s.signing.is_empty());
    assert!(s.community_pool > 0 && s.minted_total > 0);
    assert!(s.validators.values().all(|v| v.commission.rate_bps == 500));
    assert!(s.validators.values().any(|v| v.outstanding_rewards > 0));
    assert!(s.delegations.values().any(|d| d.reward_entry > 0));
    let jailed = l.validator(&val(2)).expect("v2");
    assert_eq!(jailed.jail_reason, JailReason::Downtime);
    let bytes = l.encode();
    let back = Ledger::decode(&bytes).expect("decodes");
    assert_eq!(back, l);
    assert_eq!(back.app_hash(), l.app_hash());
    assert_eq!(back.encode(), bytes);
}

#[test]
fn snapshot_with_broken_supply_or_window_is_rejected() {
    let l = economic_ledger();
    let mut tampered: Vec<Ledger> = Vec::new();
    let mut t = l.clone();
    if let Some(v) = t.state.validators.get_mut(&val(1)) {
        v.outstanding_rewards += 1;
    }
    tampered.push(t);
    let mut t = l.clone();
    t.state.community_pool -= 1;
    tampered.push(t);
    let mut t = l.clone();
    t.state.minted_total += 1;
    tampered.push(t);
    let mut t = l.clone();
    if let Some(w) = t.state.signing.values_mut().next() {
        w.missed += 1;
    }
    tampered.push(t);
    let mut t = l.clone();
    if let Some(v) = t.state.validators.get_mut(&val(0)) {
        v.commission.rate_bps = 1_001;
    }
    tampered.push(t);
    for (i, t) in tampered.iter().enumerate() {
        assert!(
            matches!(Ledger::decode(&t.encode()), Err(SnapshotError::Invalid(_))),
            "tampered snapshot #{i} accepted"
        );
        // The same invariants guard a restore from the stored leaves.
        assert!(
            matches!(
                Ledger::from_leaves(t.leaves()),
                Err(LeafError::Inconsistent(_))
            ),
            "tampered leaves #{i} accepted"
        );
    }
    // The untouched one still decodes, both ways.
    assert!(Ledger::decode(&l.encode()).is_ok());
    assert!(Ledger::from_leaves(l.leaves()).is_ok());
}

#[test]
fn every_economic_field_comes_back_from_the_leaves() {
    let l = economic_ledger();
    let back = Ledger::from_leaves(l.leaves()).expect("restores");
    assert_eq!(back, l);
    assert_eq!(back.app_hash(), l.app_hash());
}
