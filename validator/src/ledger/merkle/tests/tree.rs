//! The state tree against `jmt` (the reference it replaced): the same
//! roots after every version of random inserts, rewrites and removals,
//! the same proofs, and a window that stays provable while pruned.

use super::*;
use crate::ledger::merkle::Sha3;
use crate::ledger::merkle::proof::{self, from_jmt};
use jmt::mock::MockTreeStore;
use jmt::{JellyfishMerkleTree, KeyHash};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::BTreeMap;

fn key(i: u32) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

/// One version's random changes over a key space of `space`: inserts,
/// rewrites (some to the same value), removals (some of absent keys).
fn random_changes(
    rng: &mut ChaCha20Rng,
    space: u32,
    count: usize,
) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    // Every version writes something, as every block writes its globals.
    out.insert(b"globals".to_vec(), Some(rng.random::<[u8; 4]>().to_vec()));
    for _ in 0..count {
        let k = key(rng.random_range(0..space));
        let v = match rng.random_range(0..4) {
            0 => None,
            1 => Some(vec![1, 2, 3]),
            _ => Some(rng.random::<[u8; 8]>().to_vec()),
        };
        out.insert(k, v);
    }
    out
}

fn apply(tree: &mut Tree, height: Height, changes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Hash {
    let mut list: Vec<Change<'_>> = changes
        .iter()
        .map(|(k, v)| Change::new(k, v.as_deref()))
        .collect();
    tree.update(height, &mut list)
}

fn jmt_apply(
    store: &MockTreeStore,
    version: u64,
    changes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> Hash {
    let set = changes
        .iter()
        .map(|(k, v)| (KeyHash::with::<Sha3>(k), v.clone()));
    let (root, batch) = JellyfishMerkleTree::<_, Sha3>::new(store)
        .put_value_set(set, version)
        .expect("jmt update");
    store.write_tree_update_batch(batch).expect("jmt write");
    root.0
}

/// Both trees hold the same state at every version: equal roots, and for
/// keys present and absent our proof is `jmt`'s (same leaf, same
/// siblings) and verifies against the root.
#[test]
fn roots_and_proofs_match_jmt_over_random_versions() {
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let space = 3_000;
    let reference = MockTreeStore::new(true);
    let first = random_changes(&mut rng, space, 2_000);
    let genesis: Vec<_> = first
        .iter()
        .filter_map(|(k, v)| Some((sha3_256(k), v.clone()?)))
        .collect();
    let mut tree = Tree::build(0, genesis);
    assert_eq!(tree.root(0), Some(jmt_apply(&reference, 0, &first)));
    for h in 1..40u64 {
        // Mostly small blocks, a few that rewrite a third of the keys.
        let count = if h % 10 == 0 {
            1_000
        } else {
            rng.random_range(0..60)
        };
        let changes = random_changes(&mut rng, space, count);
        let ours = apply(&mut tree, h, &changes);
        assert_eq!(ours, jmt_apply(&reference, h, &changes), "root at {h}");
        let jmt = JellyfishMerkleTree::<_, Sha3>::new(&reference);
        for _ in 0..20 {
            let k = key(rng.random_range(0..space + 100));
            let kh = sha3_256(&k);
            let mine = tree.prove(&kh, h).expect("latest is kept");
            let (value, theirs) = jmt.get_with_proof(KeyHash(kh), h).expect("jmt proof");
            let (leaf, siblings) = from_jmt(&theirs).expect("jmt proof reads");
            assert_eq!(mine.value, value, "value of {k:?} at {h}");
            assert_eq!(mine.siblings, siblings, "siblings of {k:?} at {h}");
            if mine.value.is_none() {
                assert_eq!(mine.other, leaf, "other leaf of {k:?} at {h}");
            }
            proof::verify(&mine.into_wire(&k, h), &k, &ours).expect("our proof verifies");
        }
    }
}

/// Removing keys down to one leaves that leaf as the root (its hash is
/// the root), and removing the last gives the empty root; `jmt` agrees.
#[test]
fn a_tree_shrinks_to_one_leaf_and_to_nothing() {
    let reference = MockTreeStore::new(true);
    let all: BTreeMap<_, _> = (0..50).map(|i| (key(i), Some(vec![i as u8]))).collect();
    let mut tree = Tree::build(
        0,
        all.iter()
            .map(|(k, v)| (sha3_256(k), v.clone().unwrap()))
            .collect(),
    );
    assert_eq!(tree.root(0), Some(jmt_apply(&reference, 0, &all)));
    let most: BTreeMap<_, _> = (1..50).map(|i| (key(i), None)).collect();
    let root = apply(&mut tree, 1, &most);
    assert_eq!(root, jmt_apply(&reference, 1, &most));
    assert_eq!(root, proof::leaf_hash(&sha3_256(&key(0)), &sha3_256(&[0])));
    let last = BTreeMap::from([(key(0), None)]);
    assert_eq!(apply(&mut tree, 2, &last), proof::PLACEHOLDER);
    let again = BTreeMap::from([(key(7), Some(vec![7]))]);
    let root = apply(&mut tree, 3, &again);
    assert_eq!(root, proof::leaf_hash(&sha3_256(&key(7)), &sha3_256(&[7])));
}

/// A version that changes nothing (rewrites with the same value, removals
/// of absent keys) keeps the root and replaces no node.
#[test]
fn a_version_that_changes_nothing_keeps_every_node() {
    let all: Vec<_> = (0..300)
        .map(|i| (sha3_256(&key(i)), vec![i as u8]))
        .collect();
    let mut tree = Tree::build(0, all);
    let before = tree.item_count();
    let same = BTreeMap::from([(key(5), Some(vec![5])), (key(9_999), None)]);
    assert_eq!(apply(&mut tree, 1, &same), tree.root(0).unwrap());
    assert_eq!(tree.item_count(), before);
    assert!(tree.stale.is_empty());
}

/// Every kept version still proves each key's value of its time while
/// older ones are pruned, and the store stays bounded under churn.
#[test]
fn the_window_stays_provable_and_bounded_while_pruned() {
    let value = |i: u32, v: u64| (v / (u64::from(i) + 1)).to_be_bytes().to_vec();
    let all: Vec<_> = (0..200).map(|i| (sha3_256(&key(i)), value(i, 0))).collect();
    let mut tree = Tree::build(0, all);
    let mut roots = vec![tree.root(0).unwrap()];
    let mut sizes = Vec::new();
    for v in 1..300u64 {
        // Key i is rewritten every i + 1 versions.
        let changes: BTreeMap<_, _> = (0..200)
            .filter(|&i| v % (u64::from(i) + 1) == 0)
            .map(|i| (key(i), Some(value(i, v))))
            .collect();
        roots.push(apply(&mut tree, v, &changes));
        tree.prune(v.saturating_sub(9));
        sizes.push(tree.item_count());
    }
    assert_eq!(tree.provable(), Some((290, 299)));
    assert!(tree.prove(&sha3_256(&key(1)), 289).is_none(), "pruned");
    for v in 290..300u64 {
        for i in [0u32, 1, 7, 63, 199] {
            let k = key(i);
            let p = tree.prove(&sha3_256(&k), v).expect("kept");
            assert_eq!(p.value, Some(value(i, v - v % (u64::from(i) + 1))));
            proof::verify(&p.into_wire(&k, v), &k, &roots[v as usize]).expect("proof");
        }
    }
    let (early, late) = (sizes[50], sizes[298]);
    assert!(late <= early + early / 10, "{early} items, then {late}");
}

/// The internal hashes the definition forces on an update: one per binary
/// subtree on a changed key's path that holds two or more keys.
fn floor(all: &[Hash], changed: &[Hash]) -> u64 {
    let bit = |h: &Hash, i: usize| h[i / 8] & (0x80 >> (i % 8)) != 0;
    let prefix = |h: &Hash, bits: usize| (0..bits).map(|i| bit(h, i)).collect::<Vec<_>>();
    let mut count = 0;
    for bits in 0..256 {
        let paths: std::collections::BTreeSet<_> =
            changed.iter().map(|h| prefix(h, bits)).collect();
        let many = paths
            .iter()
            .filter(|p| {
                let under = |h: &&Hash| p.iter().enumerate().all(|(i, b)| bit(h, i) == *b);
                all.iter().filter(under).nth(1).is_some()
            })
            .count() as u64;
        if many == 0 {
            break;
        }
        count += many;
    }
    count
}

/// An update rehashes little more than the definition forces: a dense
/// node rehashes the ranges above its changed children only. Negative
/// control: with no node keeping its inner hashes (each rewritten node
/// rehashed whole, as `jmt` does) this update spent 4,634 hashes against
/// a floor of 2,269, and the test failed.
#[test]
fn an_update_rehashes_close_to_the_floor() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let all: Vec<_> = (0..20_000).map(|i| (sha3_256(&key(i)), vec![1])).collect();
    let hashes: Vec<Hash> = all.iter().map(|(k, _)| *k).collect();
    let mut tree = Tree::build(0, all);
    let changes: BTreeMap<_, _> = (0..300)
        .map(|_| (key(rng.random_range(0..20_000)), Some(vec![2])))
        .collect();
    let changed: Vec<Hash> = changes.keys().map(|k| sha3_256(k)).collect();
    let before = proof::INTERNAL_HASHES.with(|c| c.get());
    apply(&mut tree, 1, &changes);
    let spent = proof::INTERNAL_HASHES.with(|c| c.get()) - before;
    let floor = floor(&hashes, &changed);
    assert!(spent >= floor, "{spent} hashes, below the floor {floor}?");
    assert!(
        spent <= floor + floor / 5,
        "{spent} hashes against a floor of {floor}"
    );
}

/// A version of changes over a small key space: key index, and the new
/// value (`None`: remove).
type Ops = Vec<(u8, Option<u8>)>;

fn ops() -> impl proptest::strategy::Strategy<Value = Vec<Ops>> {
    use proptest::prelude::*;
    let op = (0u8..48, proptest::option::of(0u8..4));
    prop::collection::vec(prop::collection::vec(op, 0..24), 1..6)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

    /// After any sequence of versions over a small key space (so leaves
    /// split, collapse, vanish and come back), the tree is canonical: its
    /// root is `jmt`'s, and once older versions are pruned it holds
    /// exactly the nodes and leaves of the same state built whole (no
    /// internal node over fewer than two leaves is left behind). Every
    /// key's proof verifies.
    #[test]
    fn any_update_sequence_leaves_the_canonical_tree(versions in ops()) {
        let reference = MockTreeStore::new(true);
        // Every version writes a globals leaf, as every block does (and
        // as `jmt` needs: it writes no root for an empty version).
        let globals = |h: u64| (b"globals".to_vec(), h.to_be_bytes().to_vec());
        let mut state: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::from([globals(0)]);
        let mut tree = Tree::build(0, state.iter().map(|(k, v)| (sha3_256(k), v.clone())).collect());
        let first = state.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        proptest::prop_assert_eq!(tree.root(0), Some(jmt_apply(&reference, 0, &first)));
        for (h, version) in (1..).zip(versions) {
            let (gk, gv) = globals(h);
            let mut changes = BTreeMap::from([(gk, Some(gv))]);
            for (k, v) in version {
                changes.insert(key(u32::from(k)), v.map(|v| vec![v]));
            }
            for (k, v) in &changes {
                match v {
                    Some(v) => state.insert(k.clone(), v.clone()),
                    None => state.remove(k),
                };
            }
            let root = apply(&mut tree, h, &changes);
            proptest::prop_assert_eq!(root, jmt_apply(&reference, h, &changes));
            tree.prune(h);
            let whole = Tree::build(h, state.iter().map(|(k, v)| (sha3_256(k), v.clone())).collect());
            proptest::prop_assert_eq!(whole.root(h), Some(root));
            proptest::prop_assert_eq!(tree.item_count(), whole.item_count());
            for i in 0..48 {
                let k = key(i);
                let p = tree.prove(&sha3_256(&k), h).expect("latest is kept");
                proptest::prop_assert_eq!(p.value.as_ref(), state.get(&k));
                proptest::prop_assert!(proof::verify(&p.into_wire(&k, h), &k, &root).is_ok());
            }
        }
    }
}
