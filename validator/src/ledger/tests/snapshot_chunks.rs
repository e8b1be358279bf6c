//! Snapshot chunks (state sync): a split state's manifest hashes to the
//! app hash the tree computed, every chunk to its root, whatever the
//! number of chunks; a changed, missing, moved, repeated or reordered leaf,
//! and a manifest that lies, are caught.

use super::*;
use crate::ledger::merkle::chunks::{
    ChunkError, MAX_PREFIX_BITS, SnapshotChunks, split, split_with_bits, verify_chunk,
    verify_manifest,
};

/// A ledger with `extra` more funded accounts than `busy_ledger`'s.
fn ledger_with_accounts(extra: u32) -> Ledger {
    let mut g = genesis(3);
    g.accounts.extend((0..extra).map(|i| {
        let mut a = [7u8; 20];
        a[..4].copy_from_slice(&i.to_be_bytes());
        pb::GenesisAccount {
            address: a.to_vec(),
            balance: (u128::from(i) + 1).to_string(),
        }
    }));
    let mut l = Ledger::from_genesis(&g).expect("genesis");
    let v = addr(&consensus(1));
    block(&mut l, &[tx(&user(1), 0, bond(v, 50 * UNIT))], &[]);
    block(&mut l, &[tx(&user(1), 1, unbond(v, 20 * UNIT))], &[]);
    l
}

fn check_whole(l: &Ledger) -> SnapshotChunks {
    let s = split(l.leaves());
    verify_manifest(&s.manifest, &l.app_hash()).expect("manifest hashes to the app hash");
    for (i, c) in s.chunks.iter().enumerate() {
        verify_chunk(&s.manifest, i as u32, c).expect("chunk hashes to its root");
    }
    let total: usize = s.chunks.iter().map(Vec::len).sum();
    assert_eq!(total, l.leaves().len(), "every leaf in exactly one chunk");
    s
}

#[test]
fn manifests_and_chunks_hash_to_the_tree_root_at_every_size() {
    // One chunk (a small state), then states that need several prefix bits;
    // the roots come from `jmt` (the app hash), the check from the rule.
    for extra in [0, 3000, 9000] {
        let l = ledger_with_accounts(extra);
        let s = check_whole(&l);
        let leaves = l.leaves().len();
        let bits = s.manifest.prefix_bits;
        assert!(bits <= MAX_PREFIX_BITS);
        assert_eq!(bits == 0, leaves <= 1024, "{leaves} leaves, {bits} bits");
        assert!(
            s.chunks.iter().all(|c| c.len() <= 2048),
            "chunks near the target size"
        );
    }
}

#[test]
fn sparse_chunks_next_to_each_other_still_hash_right() {
    // Split finer than the target: empty and one-leaf chunks side by side
    // exercise the rule's collapse when the roots are combined.
    let l = ledger_with_accounts(40);
    let bits = 6u32;
    let fine = split_with_bits(l.leaves(), bits);
    verify_manifest(&fine.manifest, &l.app_hash()).expect("fine manifest");
    assert!(fine.chunks.iter().any(Vec::is_empty));
    assert!(fine.chunks.iter().any(|c| c.len() == 1));
    for (i, c) in fine.chunks.iter().enumerate() {
        for leaf in c {
            let h = crate::crypto::sha3_256(&leaf.key);
            assert_eq!(
                usize::from(h[0] >> (8 - bits)),
                i,
                "leaf in its prefix's chunk"
            );
        }
        verify_chunk(&fine.manifest, i as u32, c).expect("fine chunk");
    }
}

#[test]
fn tampered_chunks_are_rejected() {
    let l = ledger_with_accounts(3000);
    let s = check_whole(&l);
    let m = &s.manifest;
    let i = s
        .chunks
        .iter()
        .position(|c| c.len() > 3)
        .expect("a full chunk");
    let good = &s.chunks[i];
    let idx = i as u32;

    let mut changed = good.clone();
    changed[1].value.push(0);
    assert!(matches!(
        verify_chunk(m, idx, &changed),
        Err(ChunkError::ChunkRoot { .. })
    ));

    let mut missing = good.clone();
    missing.remove(2);
    assert!(matches!(
        verify_chunk(m, idx, &missing),
        Err(ChunkError::ChunkRoot { .. })
    ));

    let mut repeated = good.clone();
    repeated.insert(1, good[1].clone());
    assert_eq!(
        verify_chunk(m, idx, &repeated),
        Err(ChunkError::Order { index: idx })
    );

    let mut reordered = good.clone();
    reordered.swap(0, 1);
    assert_eq!(
        verify_chunk(m, idx, &reordered),
        Err(ChunkError::Order { index: idx })
    );

    let other = (i + 1) % s.chunks.len();
    let mut moved = good.clone();
    moved.push(s.chunks[other][0].clone());
    assert_eq!(
        verify_chunk(m, idx, &moved),
        Err(ChunkError::WrongChunk { index: idx })
    );

    assert!(matches!(
        verify_chunk(m, idx, &[]),
        Err(ChunkError::ChunkRoot { .. })
    ));
    assert!(matches!(
        verify_chunk(m, m.chunks.len() as u32, good),
        Err(ChunkError::NoSuchChunk { .. })
    ));
}

#[test]
fn manifests_that_lie_are_rejected() {
    let l = ledger_with_accounts(3000);
    let s = check_whole(&l);
    let app = l.app_hash();

    let mut root = s.manifest.clone();
    root.chunks[0].root[0] ^= 1;
    assert!(matches!(
        verify_manifest(&root, &app),
        Err(ChunkError::ManifestRoot { .. })
    ));

    // A chunk emptied in the manifest (its leaves then never asked for).
    let mut emptied = s.manifest.clone();
    emptied.chunks[1].leaves = 0;
    emptied.chunks[1].root = crate::ledger::merkle::proof::PLACEHOLDER.to_vec();
    assert!(matches!(
        verify_manifest(&emptied, &app),
        Err(ChunkError::ManifestRoot { .. })
    ));

    let mut short = s.manifest.clone();
    short.chunks.pop();
    assert!(matches!(
        verify_manifest(&short, &app),
        Err(ChunkError::Manifest(_))
    ));

    let mut deep = s.manifest.clone();
    deep.prefix_bits = MAX_PREFIX_BITS + 1;
    assert!(matches!(
        verify_manifest(&deep, &app),
        Err(ChunkError::Manifest(_))
    ));

    // Another height's app hash: the right manifest, the wrong state.
    let mut later = l.clone();
    block(&mut later, &[], &[]);
    assert!(verify_manifest(&s.manifest, &later.app_hash()).is_err());
}

#[test]
fn chunks_rebuild_the_same_ledger() {
    let l = ledger_with_accounts(3000);
    let s = check_whole(&l);
    let leaves = s
        .chunks
        .into_iter()
        .flatten()
        .map(|leaf| (leaf.key, leaf.value));
    let rebuilt = Ledger::from_leaves(leaves).expect("a state");
    assert_eq!(rebuilt.app_hash(), l.app_hash());
    assert_eq!(rebuilt.height(), l.height());
}

/// A manifest's counts are hints, and with them the place of a lone leaf:
/// a chunk of one leaf beside an empty sibling may swap summaries with it
/// and the manifest still hashes to the app hash (a lone leaf's hash rises
/// unchanged). Under such a manifest the emptied chunk is accepted empty,
/// but the chunk that claims the leaf never is: no leaf of its prefix
/// hashes to it. So no full set of chunks is ever accepted under it; the
/// peers that offered it fail to serve that chunk and are charged.
#[test]
fn a_manifest_may_move_a_lone_leaf_but_never_completes_without_it() {
    let l = ledger_with_accounts(0);
    let leaves = l.leaves();
    let (s, lone, empty) = (1..=MAX_PREFIX_BITS)
        .find_map(|bits| {
            let s = split_with_bits(leaves.clone(), bits);
            let pair = (0..s.chunks.len()).step_by(2).find_map(|i| {
                match (s.chunks[i].len(), s.chunks[i + 1].len()) {
                    (1, 0) => Some((i, i + 1)),
                    (0, 1) => Some((i + 1, i)),
                    _ => None,
                }
            });
            pair.map(|(lone, empty)| (s, lone, empty))
        })
        .expect("a lone leaf beside an empty chunk at some split");
    let mut moved = s.manifest.clone();
    moved.chunks.swap(lone, empty);
    verify_manifest(&moved, &l.app_hash()).expect("a moved lone leaf still hashes to the root");
    let (lone, empty) = (lone as u32, empty as u32);
    let leaf = &s.chunks[lone as usize];
    verify_chunk(&moved, lone, &[]).expect("the emptied chunk is accepted empty");
    assert!(matches!(
        verify_chunk(&moved, lone, leaf),
        Err(ChunkError::ChunkRoot { .. })
    ));
    assert!(matches!(
        verify_chunk(&moved, empty, leaf),
        Err(ChunkError::WrongChunk { .. })
    ));
    assert!(matches!(
        verify_chunk(&moved, empty, &[]),
        Err(ChunkError::ChunkRoot { .. })
    ));
}
