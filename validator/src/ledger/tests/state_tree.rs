//! The authenticated state: the app hash is the root of the tree over the
//! leaves of `state.proto`, moved on by exactly what each block changed, and
//! proofs of membership and absence verify against it, tampered ones not.

use super::*;
use crate::ledger::merkle::leaves::{
    account_key, delegation_key, slash_event_key, unbonding_key, validator_key,
};
use crate::ledger::merkle::proof::{ProofError, verify};
use crate::ledger::merkle::{PROVABLE_VERSIONS, ProveError};
use prost::Message;

/// The tree moved on block by block has the root of a tree built whole
/// from the same state: nothing a block changed was missed.
#[test]
fn incremental_root_equals_a_tree_built_whole() {
    let mut l = busy_ledger();
    let v = addr(&consensus(1));
    for (i, txs) in [
        vec![tx(&user(3), 0, bond(v, 5 * UNIT))],
        vec![tx(&user(3), 1, unbond(v, UNIT))],
        vec![],
    ]
    .into_iter()
    .enumerate()
    {
        block(&mut l, &txs, &[]);
        let whole = Ledger::decode(&l.encode()).expect("decodes");
        assert_eq!(whole.app_hash(), l.app_hash(), "after block {i}");
    }
    // Past the unbonding period: entries mature and old sets are dropped,
    // both deletions from the tree.
    empty_blocks(&mut l, 12);
    assert_eq!(
        Ledger::decode(&l.encode()).unwrap().app_hash(),
        l.app_hash()
    );
}

#[test]
fn membership_proofs_verify_and_show_the_leaf_values() {
    let l = busy_ledger();
    let h = l.height();
    let root = l.app_hash();
    let u = addr(&user(1));
    let p = l.prove(&account_key(&u), h).expect("provable");
    verify(&p, &account_key(&u), &root).expect("account proof");
    assert!(p.present);
    let leaf = pb::AccountLeaf::decode(&p.value[..]).expect("leaf");
    assert_eq!(leaf.balance, l.account(&u).balance.to_string());
    assert_eq!(leaf.nonce, l.account(&u).nonce);

    let v = addr(&consensus(1));
    for key in [
        validator_key(&v),
        delegation_key(&u, &v),
        unbonding_key(&u, &v, 0),
        slash_event_key(0),
    ] {
        let p = l.prove(&key, h).expect("provable");
        assert!(p.present, "{key:?}");
        verify(&p, &key, &root).expect("membership proof");
    }
}

#[test]
fn absence_is_proven_and_cannot_be_claimed_for_a_present_key() {
    let l = busy_ledger();
    let (h, root) = (l.height(), l.app_hash());
    let nobody = Address([0x42; 20]);
    let key = account_key(&nobody);
    let p = l.prove(&key, h).expect("provable");
    assert!(!p.present && p.value.is_empty());
    verify(&p, &key, &root).expect("non-membership proof");

    // The same proof does not speak for another key.
    let other = account_key(&addr(&user(1)));
    assert_eq!(verify(&p, &other, &root), Err(ProofError::WrongKey));
    let mut renamed = p.clone();
    renamed.key = other.clone();
    assert!(
        verify(&renamed, &other, &root).is_err(),
        "absence of a present key"
    );

    // Claiming a present key absent (its membership proof, value dropped).
    let mut hidden = l.prove(&other, h).expect("provable");
    hidden.present = false;
    hidden.value.clear();
    assert!(verify(&hidden, &other, &root).is_err());
}

#[test]
fn tampered_proofs_are_rejected_with_the_reason() {
    let l = busy_ledger();
    let (h, root) = (l.height(), l.app_hash());
    let key = account_key(&addr(&user(2)));
    let good = l.prove(&key, h).expect("provable");
    verify(&good, &key, &root).expect("untampered");

    let mut value = good.clone();
    let mut leaf = pb::AccountLeaf::decode(&value.value[..]).unwrap();
    leaf.balance = "999999999999".into();
    value.value = leaf.encode_to_vec();
    assert!(matches!(
        verify(&value, &key, &root),
        Err(ProofError::RootMismatch { .. })
    ));

    let mut sibling = good.clone();
    sibling.siblings[0][0] ^= 1;
    assert!(matches!(
        verify(&sibling, &key, &root),
        Err(ProofError::RootMismatch { .. })
    ));

    let mut short = good.clone();
    short.siblings.pop();
    assert!(verify(&short, &key, &root).is_err());

    let mut bad_len = good.clone();
    bad_len.siblings[0].push(0);
    assert!(matches!(
        verify(&bad_len, &key, &root),
        Err(ProofError::Malformed(_))
    ));

    // Against another height's root.
    let mut later = l.clone();
    block(
        &mut later,
        &[tx(&user(2), 1, transfer(addr(&user(3)), 1))],
        &[],
    );
    assert!(verify(&good, &key, &later.app_hash()).is_err());
}

/// Older heights stay provable against their own app hash, up to the
/// retention bound; beyond it the error says what is provable.
#[test]
fn recent_heights_are_provable_and_pruned_ones_say_so() {
    let mut l = ledger(2);
    let key = account_key(&addr(&user(1)));
    let mut roots = vec![l.app_hash()];
    for i in 0..(PROVABLE_VERSIONS + 5) {
        let t = tx(&user(1), i, transfer(addr(&user(2)), 1));
        block(&mut l, &[t], &[]);
        roots.push(l.app_hash());
    }
    let tip = l.height();
    for h in [tip, tip - 1, tip + 1 - PROVABLE_VERSIONS] {
        let p = l.prove(&key, h).expect("provable");
        verify(&p, &key, &roots[h as usize]).expect("against its own height");
        let nonce = pb::AccountLeaf::decode(&p.value[..]).unwrap().nonce;
        assert_eq!(nonce, h, "the value of that height, not the latest");
    }
    let old = tip - PROVABLE_VERSIONS;
    assert_eq!(
        l.prove(&key, old),
        Err(ProveError::NotProvable {
            height: old,
            from: tip + 1 - PROVABLE_VERSIONS,
            to: tip
        })
    );
    assert!(matches!(
        l.prove(&key, tip + 1),
        Err(ProveError::NotProvable { .. })
    ));
}

/// Replaced nodes are dropped once their versions leave the provable
/// window, so a long run's tree does not grow with its length.
#[test]
fn the_store_does_not_grow_with_the_number_of_blocks() {
    let mut l = ledger(2);
    let mut nonce = 0;
    let mut run = |l: &mut Ledger, n: u64| {
        for _ in 0..n {
            block(l, &[tx(&user(1), nonce, transfer(addr(&user(2)), 1))], &[]);
            nonce += 1;
        }
        l.tree.node_count()
    };
    let first = run(&mut l, PROVABLE_VERSIONS * 2);
    let second = run(&mut l, PROVABLE_VERSIONS * 2);
    assert!(second <= first + first / 10, "{first} nodes, then {second}");
}

/// A fork of a ledger (a clone that executes its own block) keeps a correct
/// root without disturbing the original's proofs.
#[test]
fn a_forked_clone_keeps_both_trees_right() {
    for copy in [Ledger::clone, Ledger::fork] {
        let mut a = busy_ledger();
        let mut b = copy(&a);
        block(&mut a, &[tx(&user(2), 1, transfer(addr(&user(3)), 1))], &[]);
        block(&mut b, &[tx(&user(2), 1, transfer(addr(&user(3)), 2))], &[]);
        assert_ne!(a.app_hash(), b.app_hash());
        for l in [&a, &b] {
            assert_eq!(
                Ledger::decode(&l.encode()).unwrap().app_hash(),
                l.app_hash()
            );
            let key = account_key(&addr(&user(3)));
            verify(&l.prove(&key, l.height()).unwrap(), &key, &l.app_hash()).expect("proof");
        }
    }
}

/// A ledger's app hash is the root `jmt` (the reference the state tree is
/// checked against) computes over the same leaves, and `jmt`'s verifier
/// accepts the proofs the ledger makes, for present and absent keys.
#[test]
fn jmt_agrees_with_the_ledgers_root_and_proofs() {
    use crate::ledger::merkle::Sha3;
    use crate::ledger::merkle::proof::from_jmt;
    use jmt::mock::MockTreeStore;
    use jmt::{JellyfishMerkleTree, KeyHash, RootHash};
    let l = busy_ledger();
    let (h, root) = (l.height(), l.app_hash());
    let reference = MockTreeStore::new(true);
    let leaves = l.leaves().into_iter();
    let set = leaves.map(|(k, v)| (KeyHash::with::<Sha3>(&k), Some(v)));
    let (theirs, batch) = JellyfishMerkleTree::<_, Sha3>::new(&reference)
        .put_value_set(set, 0)
        .expect("jmt build");
    reference.write_tree_update_batch(batch).expect("jmt write");
    assert_eq!(theirs.0, root, "jmt's root over the ledger's leaves");
    for i in 0..64u8 {
        let key = account_key(&Address([i; 20]));
        let ours = l.prove(&key, h).expect("provable");
        verify(&ours, &key, &root).expect("ours");
        let (_, jmt_proof) = JellyfishMerkleTree::<_, Sha3>::new(&reference)
            .get_with_proof(KeyHash::with::<Sha3>(&key), 0)
            .expect("jmt proof");
        let value = ours.present.then_some(&ours.value[..]);
        jmt_proof
            .verify(RootHash(root), KeyHash::with::<Sha3>(&key), value)
            .expect("jmt's proof");
        // And it is the same proof: same siblings, same other leaf.
        let (leaf, siblings) = from_jmt(&jmt_proof).expect("jmt proof reads");
        let siblings: Vec<Vec<u8>> = siblings.iter().map(|s| s.to_vec()).collect();
        assert_eq!(ours.siblings, siblings, "siblings of key {i}");
        if !ours.present {
            let other = leaf.map(|(k, v)| (k.to_vec(), v.to_vec()));
            let mine = (!ours.other_key_hash.is_empty())
                .then(|| (ours.other_key_hash.clone(), ours.other_value_hash.clone()));
            assert_eq!(mine, other, "other leaf of key {i}");
        }
    }
}

/// The app hash recomputed from the definition in `state.proto` alone — a
/// sparse binary Merkle tree over the key hashes, a lone leaf standing for
/// its subtree — by a few lines that share nothing with `jmt`: what
/// another implementation would write.
#[test]
fn the_app_hash_is_recomputable_from_the_leaf_definition() {
    use crate::crypto::{sha3_256, sha3_256_parts};
    use crate::ledger::merkle::proof::{PLACEHOLDER, leaf_hash};
    fn bit(h: &Hash, i: usize) -> bool {
        h[i / 8] & (0x80 >> (i % 8)) != 0
    }
    fn root(leaves: &[(Hash, Hash)], depth: usize) -> Hash {
        match leaves {
            [] => PLACEHOLDER,
            [(k, v)] => leaf_hash(k, v),
            _ => {
                let split = leaves.partition_point(|(k, _)| !bit(k, depth));
                let (l, r) = leaves.split_at(split);
                sha3_256_parts(&[
                    b"JMT::IntrnalNode",
                    &root(l, depth + 1),
                    &root(r, depth + 1),
                ])
            }
        }
    }
    let recompute = |l: &Ledger| {
        let mut hashed: Vec<(Hash, Hash)> = crate::ledger::merkle::leaves::all(&l.state)
            .iter()
            .map(|(k, v)| (sha3_256(k), sha3_256(v)))
            .collect();
        hashed.sort();
        root(&hashed, 0)
    };
    let mut l = busy_ledger();
    assert_eq!(recompute(&l), l.app_hash());
    empty_blocks(&mut l, 12);
    assert_eq!(recompute(&l), l.app_hash(), "after deletions");
    // Negative control: one leaf's value off by a bit changes the root.
    let mut hashed: Vec<(Hash, Hash)> = crate::ledger::merkle::leaves::all(&l.state)
        .iter()
        .map(|(k, v)| (sha3_256(k), sha3_256(v)))
        .collect();
    hashed.sort();
    hashed[0].1[0] ^= 1;
    assert_ne!(root(&hashed, 0), l.app_hash());
}

/// A read-only copy follows the ledger with each block's leaf changes and
/// ends equal to it (state, app hash, proofs), across bonds, unbonds that
/// mature, a slash and dropped validator sets; a copy that missed a block
/// refuses to follow.
#[test]
fn a_follower_kept_up_by_leaf_changes_equals_its_leader() {
    let mut leader = ledger(3);
    let mut follower = leader.clone();
    let v = addr(&consensus(1));
    let mut missed = leader.clone();
    let mut all_changes = Vec::new();
    let blocks: Vec<(Vec<pb::Transaction>, Vec<pb::Evidence>)> = vec![
        (vec![tx(&user(1), 0, bond(v, 50 * UNIT))], vec![]),
        (vec![tx(&user(1), 1, unbond(v, 20 * UNIT))], vec![]),
        (vec![], vec![duplicate_vote(&consensus(2), 2)]),
    ];
    for (txs, ev) in blocks
        .iter()
        .chain(std::iter::repeat_n(&(vec![], vec![]), 12))
    {
        let changes = block(&mut leader, txs, ev).end.state_changes;
        assert!(follower.follow([changes.as_slice()], &leader));
        assert_eq!(follower, leader);
        all_changes.push(changes);
    }
    let key = account_key(&addr(&user(1)));
    let p = follower.prove(&key, follower.height()).expect("provable");
    verify(&p, &key, &leader.app_hash()).expect("the follower proves");
    // Negative control: a copy that skips the first block cannot follow.
    let rest = all_changes[1..].iter().map(Vec::as_slice);
    assert!(!missed.follow(rest, &leader));
}

/// The follower takes a validator's key from what it holds only when the
/// leaf carries the very same bytes; a key it does not hold is decoded and
/// checked, so a change with a broken key is refused.
#[test]
fn a_follower_checks_every_key_it_does_not_hold() {
    let mut leader = ledger(3);
    let follower = leader.clone();
    let v = addr(&consensus(1));
    let bonding = [tx(&user(1), 0, bond(v, 50 * UNIT))];
    let changes = block(&mut leader, &bonding, &[]).end.state_changes;
    let kind = crate::ledger::merkle::leaves::LeafKind::Validator as u8;
    assert!(
        changes.iter().any(|(k, _)| k[0] == kind),
        "a bond changes its validator"
    );
    // The changes as they are: every key is one the follower holds.
    assert!(follower.clone().follow([changes.as_slice()], &leader));
    // One key byte flipped: not a key the follower holds, and not a key.
    let mut broken = changes.clone();
    let (_, v) = broken
        .iter_mut()
        .find(|(k, _)| k[0] == kind)
        .expect("a validator leaf");
    let mut leaf = pb::ValidatorLeaf::decode(v.as_deref().expect("put")).expect("leaf");
    leaf.public_key[0] ^= 0x3f;
    *v = Some(leaf.encode_to_vec());
    assert!(!follower.clone().follow([broken.as_slice()], &leader));
}
