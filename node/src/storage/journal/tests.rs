//! The journals against a model: whatever the fold points and restarts,
//! the store reads as if every block had written its leaves and index rows
//! directly.

use std::collections::{BTreeMap, HashMap};

use agora_proto::v1::{Block, CommitCertificate, Header};
use agora_validator::Hash;
use agora_validator::block::header_hash;
use agora_validator::ledger::LeafChange;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redb::ReadableTableMetadata;

use super::leaves::{self, LEAF_JOURNAL, Merged};
use super::txs::{self, TX_JOURNAL};
use super::{FOLD_BYTES, FOLD_HEIGHTS};
use crate::storage::{CommittedBlock, Storage, TxOutcome, TxRecord};

fn block(height: u64) -> (Block, CommitCertificate) {
    let header = Header {
        chain_id: "agora-journal".into(),
        height,
        ..Default::default()
    };
    let cert = CommitCertificate {
        height,
        block_hash: header_hash(&header).to_vec(),
        signers: vec![1],
        aggregate_signature: vec![9; 96],
        ..Default::default()
    };
    (
        Block {
            header: Some(header),
            ..Default::default()
        },
        cert,
    )
}

/// Height h's changes: a few of 40 keys set (to a value naming h) or removed.
fn changes(rng: &mut StdRng, h: u64) -> Vec<LeafChange> {
    (0..1 + rng.random_range(0..6u64))
        .map(|i| {
            let key = vec![2, rng.random_range(0..40u64) as u8];
            let value = (rng.random_range(0..4u64) > 0).then(|| format!("v{h}.{i}").into_bytes());
            (key, value)
        })
        .collect()
}

/// Height h's outcomes: three transactions whose hashes repeat across
/// heights (one of 64), so later heights must override earlier ones.
fn outcomes(rng: &mut StdRng, h: u64) -> Vec<(Hash, TxRecord)> {
    (0..3u32)
        .map(|i| {
            let failed = rng.random_range(0..3u64) == 0;
            let rec = TxRecord {
                height: h,
                index: i,
                outcome: if failed {
                    TxOutcome::Failed
                } else {
                    TxOutcome::Committed
                } as i32,
                reason: if failed {
                    format!("failed at {h}")
                } else {
                    String::new()
                },
            };
            ([rng.random_range(0..64u64) as u8; 32], rec)
        })
        .collect()
}

fn commit(s: &Storage, h: u64, state: &[LeafChange], txs: &[(Hash, TxRecord)]) {
    let (b, c) = block(h);
    s.commit_block(CommittedBlock {
        block: &b,
        certificate: &c,
        state_changes: state,
        seed: &[h as u8; 32],
        txs,
        validator_set: None,
        evidence_removed: &[],
    })
    .unwrap();
}

fn journal_heights(s: &Storage) -> u64 {
    s.read(|txn| Ok(txn.open_table(LEAF_JOURNAL)?.len()?))
        .unwrap()
}

#[test]
fn the_store_reads_as_direct_writes_across_folds_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut s = Storage::open(&path).unwrap();
    s.reset_state_leaves(&[(vec![2, 0], b"genesis".to_vec())])
        .unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::from([(vec![2, 0], b"genesis".to_vec())]);
    let mut index: HashMap<Hash, TxRecord> = HashMap::new();
    // Seeded, so a failure replays.
    let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let mut folded = 0;
    for h in 1..=3 * FOLD_HEIGHTS + 5 {
        let state = changes(&mut rng, h);
        let txs = outcomes(&mut rng, h);
        commit(&s, h, &state, &txs);
        for (k, v) in state {
            match v {
                Some(v) => model.insert(k, v),
                None => model.remove(&k),
            };
        }
        index.extend(txs);
        let pending = journal_heights(&s);
        assert!(pending < FOLD_HEIGHTS, "the journal folds when full");
        folded += u64::from(pending == 0);
        if h % 13 == 0 {
            drop(s);
            s = Storage::open(&path).unwrap();
        }
        let expected: Vec<_> = model.clone().into_iter().collect();
        assert_eq!(s.state_leaves().unwrap(), expected, "leaves after {h}");
        assert_eq!(
            s.tip_state().unwrap().read().unwrap().unwrap().leaves,
            expected,
            "a snapshot's leaves after {h}"
        );
        for (hash, rec) in &index {
            assert_eq!(s.tx(hash).unwrap().as_ref(), Some(rec), "tx after {h}");
        }
        assert_eq!(s.tx(&[0xff; 32]).unwrap(), None);
    }
    assert_eq!(folded, 3, "three folds happened");
}

#[test]
fn a_large_journal_folds_before_its_heights_are_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path().join("db")).unwrap();
    s.reset_state_leaves(&[]).unwrap();
    let big = vec![7u8; 1024 * 1024];
    let per_block = 3;
    let mut h = 0;
    while journal_heights(&s) == h {
        h += 1;
        let state: Vec<LeafChange> = (0..per_block)
            .map(|i| (vec![3, h as u8, i], Some(big.clone())))
            .collect();
        commit(&s, h, &state, &[]);
        assert!(
            h < FOLD_HEIGHTS,
            "folded by bytes, before the heights are up"
        );
    }
    let bytes_per_block = per_block as u64 * big.len() as u64;
    assert_eq!(
        h,
        FOLD_BYTES.div_ceil(bytes_per_block),
        "folded at the byte bound"
    );
    assert_eq!(
        s.state_leaves().unwrap().len(),
        per_block as usize * h as usize
    );
}

#[test]
fn a_row_is_read_back_as_written_and_a_cut_row_is_refused() {
    let changes: Vec<LeafChange> = vec![
        (vec![1, 2], Some(b"one".to_vec())),
        (vec![1, 3], None),
        (vec![1, 2], Some(Vec::new())),
    ];
    let row = leaves::encode(&changes);
    let mut merged = Merged::new();
    leaves::merge_row(&mut merged, 5, &row).unwrap();
    assert_eq!(
        merged,
        Merged::from([(vec![1, 2], Some(Vec::new())), (vec![1, 3], None)])
    );
    for cut in 1..row.len() {
        let mut m = Merged::new();
        let err = leaves::merge_row(&mut m, 5, &row[..cut]);
        // Cut exactly between two changes, a row is a shorter valid row.
        assert!(err.is_err() || cut == 14 || cut == 21, "cut at {cut}");
    }
    let mut bad = row.clone();
    bad[4 + 2] = 9;
    assert!(leaves::merge_row(&mut Merged::new(), 5, &bad).is_err());

    let recs = vec![
        (
            [3u8; 32],
            TxRecord {
                height: 8,
                index: 1,
                outcome: 2,
                reason: "no funds".into(),
            },
        ),
        (
            [1u8; 32],
            TxRecord {
                height: 8,
                index: 0,
                outcome: 1,
                reason: String::new(),
            },
        ),
    ];
    let row = txs::encode(8, &recs);
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path().join("db")).unwrap();
    s.write(redb::Durability::None, |txn| {
        txn.open_table(TX_JOURNAL)?.insert(8, row.as_slice())?;
        txn.open_table(TX_JOURNAL)?
            .insert(9, &row[..row.len() - 3])?;
        Ok(())
    })
    .unwrap();
    // Height 9's row is searched first and its reasons are cut.
    let err = s.tx(&[3; 32]).unwrap_err();
    assert!(err.to_string().contains("journal row of height 9"), "{err}");
    s.write(redb::Durability::None, |txn| {
        txn.open_table(TX_JOURNAL)?.remove(9)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(s.tx(&[3; 32]).unwrap().as_ref(), Some(&recs[0].1));
    assert_eq!(s.tx(&[1; 32]).unwrap().as_ref(), Some(&recs[1].1));
    assert_eq!(s.tx(&[2; 32]).unwrap(), None);
}

#[test]
fn pruning_drops_the_index_rows_of_pruned_heights() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path().join("db")).unwrap();
    s.reset_state_leaves(&[]).unwrap();
    let rec = |h| TxRecord {
        height: h,
        index: 0,
        outcome: TxOutcome::Committed as i32,
        reason: String::new(),
    };
    for h in 1..=4 {
        commit(&s, h, &[], &[([h as u8; 32], rec(h))]);
    }
    assert_eq!(s.prune_blocks_below(3).unwrap(), 2);
    let rows = s
        .read(|txn| Ok(txn.open_table(TX_JOURNAL)?.len()?))
        .unwrap();
    assert_eq!(rows, 2, "the rows of heights 1 and 2 are gone");
    assert_eq!(s.tx(&[1; 32]).unwrap(), None);
    assert_eq!(s.tx(&[3; 32]).unwrap(), Some(rec(3)));
}

#[test]
fn an_older_store_is_stamped_with_this_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let s = Storage::open(&path).unwrap();
    s.write(redb::Durability::Immediate, |txn| {
        txn.open_table(crate::storage::META)?
            .insert("store_format", 1u32.to_be_bytes().as_slice())?;
        Ok(())
    })
    .unwrap();
    drop(s);
    let s = Storage::open(&path).unwrap();
    let stamped = s
        .read(|txn| {
            let meta = txn.open_table(crate::storage::META)?;
            Ok(meta.get("store_format")?.map(|v| v.value().to_vec()))
        })
        .unwrap();
    assert_eq!(
        stamped,
        Some(crate::storage::STORE_FORMAT.to_be_bytes().to_vec())
    );
}
