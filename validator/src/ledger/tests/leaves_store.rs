//! The state as stored leaves: a ledger comes back from its leaves equal
//! and with the same app hash, damaged or tampered leaves are refused with
//! a typed error, and each block's `state_changes` keep a leaf map equal to
//! the state's leaves (what a node's `state_leaves` table relies on).

use super::*;
use std::collections::BTreeMap;

type Leaves = BTreeMap<Vec<u8>, Vec<u8>>;

fn leaf_map(l: &Ledger) -> Leaves {
    l.leaves().into_iter().collect()
}

fn apply(map: &mut Leaves, changes: &[LeafChange]) {
    for (k, v) in changes {
        match v {
            Some(v) => map.insert(k.clone(), v.clone()),
            None => map.remove(k),
        };
    }
}

fn restore(map: &Leaves) -> Result<Ledger, LeafError> {
    Ledger::from_leaves(map.iter())
}

#[test]
fn a_ledger_comes_back_from_its_leaves() {
    let l = busy_ledger();
    let back = restore(&leaf_map(&l)).expect("the leaves of a real state");
    assert_eq!(back, l);
    assert_eq!(back.app_hash(), l.app_hash());
    assert_eq!(back.encode(), l.encode());
    // Order does not matter.
    let reversed: Vec<_> = l.leaves().into_iter().rev().collect();
    assert_eq!(Ledger::from_leaves(reversed).expect("any order"), l);
    // And it goes on like the original.
    let (mut a, mut b) = (l.clone(), back);
    block(&mut a, &[], &[]);
    block(&mut b, &[], &[]);
    assert_eq!(a.app_hash(), b.app_hash());
}

/// The property a node's store rests on: starting from the genesis leaves
/// and applying each block's changes gives exactly the state's leaves
/// after every block: transfers, bonds, unbonding, slashing, matured
/// entries and dropped validator sets (deletions) included.
#[test]
fn applying_each_blocks_changes_to_the_genesis_leaves_tracks_the_state() {
    let mut l = ledger(3);
    let mut stored = leaf_map(&l);
    let v = addr(&consensus(1));
    let blocks: Vec<(Vec<pb::Transaction>, Vec<pb::Evidence>)> = vec![
        (
            vec![
                tx(&user(1), 0, bond(v, 50 * UNIT)),
                tx(&user(2), 0, transfer(addr(&user(3)), 7)),
            ],
            vec![],
        ),
        (vec![tx(&user(1), 1, unbond(v, 20 * UNIT))], vec![]),
        (vec![], vec![duplicate_vote(&consensus(2), 2)]),
        (vec![tx(&user(3), 0, bond(v, 5 * UNIT))], vec![]),
    ];
    let mut deletions = 0;
    for (i, (txs, ev)) in blocks.iter().chain(&vec![(vec![], vec![]); 14]).enumerate() {
        let r = block(&mut l, txs, ev);
        deletions += r.end.state_changes.iter().filter(|c| c.1.is_none()).count();
        apply(&mut stored, &r.end.state_changes);
        assert_eq!(stored, leaf_map(&l), "after block {}", i + 1);
        assert!(
            r.end.state_changes.len() < stored.len(),
            "changes, not the state"
        );
    }
    assert!(deletions > 0, "matured entries and old sets were removed");
    assert_eq!(restore(&stored).expect("restores"), l);
}

/// A clone that falls behind the shared tree store rebuilds its tree
/// whole; its changes must still be the whole difference.
#[test]
fn a_forked_ledgers_changes_are_still_complete() {
    let mut a = busy_ledger();
    let mut b = a.clone();
    let mut stored = leaf_map(&b);
    block(&mut a, &[], &[]); // moves the shared store on
    let v = addr(&consensus(1));
    let r = block(&mut b, &[tx(&user(3), 0, bond(v, 5 * UNIT))], &[]);
    apply(&mut stored, &r.end.state_changes);
    assert_eq!(stored, leaf_map(&b));
    let r = block(&mut b, &[], &[]);
    apply(&mut stored, &r.end.state_changes);
    assert_eq!(stored, leaf_map(&b));
}

/// Negative control: the comparison above notices one missing change.
#[test]
fn dropping_one_change_is_noticed() {
    let mut l = busy_ledger();
    let mut stored = leaf_map(&l);
    let v = addr(&consensus(1));
    let r = block(&mut l, &[tx(&user(3), 0, bond(v, 5 * UNIT))], &[]);
    let changes = &r.end.state_changes;
    apply(&mut stored, &changes[..changes.len() - 1]);
    assert_ne!(stored, leaf_map(&l));
}

/// The key of the first leaf of a kind.
fn first_of(map: &Leaves, kind: merkle::leaves::LeafKind) -> Vec<u8> {
    map.keys()
        .find(|k| k[0] == kind as u8)
        .expect("a leaf of the kind")
        .clone()
}

#[test]
fn malformed_leaves_are_refused() {
    use merkle::leaves::LeafKind;
    let good = leaf_map(&busy_ledger());
    let account = first_of(&good, LeafKind::Account);

    let mut m = good.clone();
    m.insert(vec![0x09; 21], vec![]);
    assert!(matches!(restore(&m), Err(LeafError::UnknownKind { .. })));

    let mut m = good.clone();
    let v = m.remove(&account).unwrap();
    m.insert(account[..20].to_vec(), v);
    let err = restore(&m).unwrap_err();
    assert!(
        matches!(
            err,
            LeafError::KeyLength {
                len: 20,
                expected: 21,
                ..
            }
        ),
        "{err}"
    );

    let mut m = good.clone();
    m.insert(account.clone(), vec![0xff, 0xff, 0xff]);
    let err = restore(&m).unwrap_err();
    assert!(matches!(err, LeafError::Value { .. }), "{err}");
    assert!(err.to_string().contains(&hex::encode(&account)), "{err}");

    let mut m = good.clone();
    m.remove(&merkle::leaves::globals_key());
    assert_eq!(restore(&m).unwrap_err(), LeafError::NoGlobals);

    let mut pairs: Vec<_> = good.clone().into_iter().collect();
    pairs.push(pairs[1].clone());
    assert!(matches!(
        Ledger::from_leaves(pairs),
        Err(LeafError::Duplicate { .. })
    ));
    assert!(Ledger::from_leaves(Vec::<(Vec<u8>, Vec<u8>)>::new()).is_err());
}

#[test]
fn non_canonical_values_are_refused() {
    use merkle::leaves::LeafKind;
    use prost::Message;
    let good = leaf_map(&busy_ledger());
    let account = first_of(&good, LeafKind::Account);
    let a = pb::AccountLeaf::decode(good[&account].as_slice()).unwrap();

    // An amount with a leading zero.
    let mut m = good.clone();
    let padded = pb::AccountLeaf {
        balance: format!("0{}", a.balance),
        ..a.clone()
    };
    m.insert(account.clone(), padded.encode_to_vec());
    assert!(matches!(restore(&m), Err(LeafError::Value { .. })));

    // The same value with an unknown field appended (protobuf skips it).
    let mut m = good.clone();
    let mut v = good[&account].clone();
    v.extend_from_slice(&[0x78, 0x01]); // field 15, varint 1
    assert_eq!(pb::AccountLeaf::decode(v.as_slice()).unwrap(), a);
    m.insert(account.clone(), v);
    assert_eq!(
        restore(&m).unwrap_err(),
        LeafError::NotCanonical {
            key: hex::encode(&account)
        }
    );
}

#[test]
fn leaves_whose_parts_disagree_are_refused() {
    use merkle::leaves::LeafKind;
    use prost::Message;
    let good = leaf_map(&busy_ledger());
    assert!(restore(&good).is_ok(), "the untouched leaves restore");

    // One more token in an account: the supply no longer adds up.
    let account = first_of(&good, LeafKind::Account);
    let mut a = pb::AccountLeaf::decode(good[&account].as_slice()).unwrap();
    a.balance = (a.balance.parse::<u128>().unwrap() + 1).to_string();
    let mut m = good.clone();
    m.insert(account, a.encode_to_vec());
    let err = restore(&m).unwrap_err();
    assert!(matches!(err, LeafError::Inconsistent(_)), "{err}");
    assert!(err.to_string().contains("balances"), "{err}");

    // A validator gone while delegations to it remain.
    let mut m = good.clone();
    m.remove(&first_of(&good, LeafKind::Validator));
    assert!(matches!(restore(&m), Err(LeafError::Inconsistent(_))));

    // Slash events numbered 0 and 2: number 1 is missing.
    let mut m = good.clone();
    let event = good[&merkle::leaves::slash_event_key(0)].clone();
    m.insert(merkle::leaves::slash_event_key(2), event);
    assert_eq!(restore(&m).unwrap_err(), LeafError::SlashEventGap(1));

    // The set two heights ahead missing.
    let mut m = good.clone();
    let h = busy_ledger().height();
    m.remove(&merkle::leaves::validator_set_key(h + 2));
    let err = restore(&m).unwrap_err();
    assert!(err.to_string().contains("two heights ahead"), "{err}");
}

/// Flipping bytes of every leaf never panics, and whatever still restores
/// is a different, still balanced state.
#[test]
fn damaged_leaves_never_panic() {
    let l = busy_ledger();
    let good = leaf_map(&l);
    for (k, v) in &good {
        for i in (0..v.len()).step_by(5) {
            let mut m = good.clone();
            let mut bad = v.clone();
            bad[i] ^= 0x5a;
            m.insert(k.clone(), bad);
            if let Ok(back) = restore(&m) {
                assert_ne!(back, l);
                assert!(back.supply().balances_out());
            }
        }
    }
}
