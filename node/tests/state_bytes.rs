//! The bytes a block writes for the ledger state grow with what the block
//! changed, not with the size of the state: the same blocks (one transfer
//! each) committed on a real redb file against a ledger of 20 accounts and
//! one of 20,000 write the same leaf bytes per block, and the file grows by
//! about the same. The negative control is the old way (a whole snapshot
//! per height, `Ledger::encode`), which grows with the accounts and fails
//! the same bound.

use agora_node::storage::{CommittedBlock, Storage};
use agora_proto::v1 as pb;
use agora_validator::block::header_hash;
use agora_validator::crypto::{AccountSecretKey, SecretKey};
use agora_validator::ledger::{BlockInfo, Ledger, tx};
use agora_validator::{Address, ChainId, HasAddress};

const UNIT: u128 = 1_000_000;
/// Blocks committed before measuring (redb's tables and free pages settle).
const WARM_UP: u64 = 20;
/// Blocks measured.
const MEASURED: u64 = 60;

fn user(i: u8) -> AccountSecretKey {
    AccountSecretKey::from_seed(&[i; 32])
}

/// One validator, two users, and `filler` more funded accounts.
fn genesis(filler: u32) -> pb::Genesis {
    let consensus = SecretKey::from_seed(&[200; 32]).unwrap();
    let operator = user(100);
    let mut accounts: Vec<pb::GenesisAccount> = [user(1), user(2), operator.clone()]
        .iter()
        .map(|k| pb::GenesisAccount {
            address: k.address().0.to_vec(),
            balance: (1000 * UNIT).to_string(),
        })
        .collect();
    accounts.extend((0..filler).map(|i| {
        let mut a = [0xee; 20];
        a[..4].copy_from_slice(&i.to_be_bytes());
        pb::GenesisAccount {
            address: a.to_vec(),
            balance: UNIT.to_string(),
        }
    }));
    pb::Genesis {
        chain_id: "agora-bytes".into(),
        accounts,
        validators: vec![pb::GenesisValidator {
            operator: operator.address().0.to_vec(),
            consensus_public_key: consensus.public_key().to_bytes().to_vec(),
            proof_of_possession: consensus.prove_possession().to_bytes().to_vec(),
            self_bond: (100 * UNIT).to_string(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A block and a certificate the store accepts (it checks only that the
/// certificate names the block).
fn block(height: u64, txs: Vec<pb::Transaction>) -> (pb::Block, pb::CommitCertificate) {
    let header = pb::Header {
        chain_id: "agora-bytes".into(),
        height,
        ..Default::default()
    };
    let cert = pb::CommitCertificate {
        height,
        block_hash: header_hash(&header).to_vec(),
        ..Default::default()
    };
    let block = pb::Block {
        header: Some(header),
        txs,
        ..Default::default()
    };
    (block, cert)
}

/// What committing `WARM_UP + MEASURED` one-transfer blocks wrote.
struct Written {
    /// Leaf bytes (keys and values) written per measured block, on average.
    leaf_bytes_per_block: f64,
    /// Growth of the file (its largest size while measuring over its size
    /// after the warm-up) per measured block, bytes.
    file_growth_per_block: f64,
    /// What a whole snapshot of the state takes (the old per-height write).
    snapshot_bytes: usize,
    /// Growth per measured block of a redb file written the old way (a
    /// snapshot per height in a `states` table), measured the same way.
    old_file_growth_per_block: f64,
    /// Leaves stored at the end.
    leaves: usize,
}

fn run(filler: u32, dir: &std::path::Path) -> Written {
    let path = dir.join(format!("node-{filler}.redb"));
    let storage = Storage::open(&path).unwrap();
    let old_path = dir.join(format!("old-{filler}.redb"));
    let old = redb::Database::create(&old_path).unwrap();
    let states: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("states");
    let (mut old_before, mut old_max) = (0u64, 0u64);
    let mut ledger = Ledger::from_genesis(&genesis(filler)).unwrap();
    storage.reset_state_leaves(&ledger.leaves()).unwrap();
    let chain = ChainId::new("agora-bytes").unwrap();
    let to = Address(user(2).address().0);
    let (mut leaf_bytes, mut size_before, mut size_max) = (0usize, 0u64, 0u64);
    for h in 1..=WARM_UP + MEASURED {
        let body = pb::TxBody {
            chain_id: "agora-bytes".into(),
            nonce: h - 1,
            fee: ledger.params().min_fee.to_string(),
            kind: Some(pb::tx_body::Kind::Transfer(pb::Transfer {
                to: to.0.to_vec(),
                amount: "1".into(),
            })),
        };
        let txs = vec![tx::sign(&user(1), &chain, body)];
        let r = ledger
            .apply_block(h, &BlockInfo::default(), &txs, &[], &[0; 32])
            .unwrap();
        assert!(r.receipts[0].is_ok(), "{:?}", r.receipts[0]);
        let changes = r.end.state_changes;
        let (b, c) = block(h, txs);
        storage
            .commit_block(CommittedBlock {
                block: &b,
                certificate: &c,
                state_changes: &changes,
                seed: &[0; 32],
                txs: &[],
                validator_set: None,
                evidence_removed: &[],
            })
            .unwrap();
        if h > WARM_UP {
            let txn = old.begin_write().unwrap();
            let snapshot = ledger.encode();
            txn.open_table(states)
                .unwrap()
                .insert(h, snapshot.as_slice())
                .unwrap();
            txn.commit().unwrap();
            old_max = old_max.max(std::fs::metadata(&old_path).unwrap().len());
        }
        if h == WARM_UP {
            size_before = std::fs::metadata(&path).unwrap().len();
            old_before = std::fs::metadata(&old_path).unwrap().len();
        } else if h > WARM_UP {
            size_max = size_max.max(std::fs::metadata(&path).unwrap().len());
            leaf_bytes += changes
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
        }
    }
    // redb may also shrink the file; the largest it got is what counts.
    let growth = size_max.saturating_sub(size_before);
    // The store holds the state, once: it restores the ledger.
    let stored = storage.state_leaves().unwrap();
    assert_eq!(Ledger::from_leaves(stored.clone()).unwrap(), ledger);
    Written {
        leaf_bytes_per_block: leaf_bytes as f64 / MEASURED as f64,
        file_growth_per_block: growth as f64 / MEASURED as f64,
        snapshot_bytes: ledger.encode().len(),
        old_file_growth_per_block: old_max.saturating_sub(old_before) as f64 / MEASURED as f64,
        leaves: stored.len(),
    }
}

/// `large` is within a few percent of `small` (plus a constant): does not
/// scale with the state.
fn flat(small: f64, large: f64, slack: f64) -> bool {
    large <= small * 1.1 + slack
}

#[test]
fn bytes_written_per_block_follow_the_changes_not_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let small = run(20, dir.path());
    let large = run(20_000, dir.path());
    eprintln!(
        "leaves {} vs {}; leaf bytes/block {:.0} vs {:.0}; file growth/block {:.0} vs {:.0}; snapshot {} vs {}, old layout file growth/block {:.0} vs {:.0}",
        small.leaves,
        large.leaves,
        small.leaf_bytes_per_block,
        large.leaf_bytes_per_block,
        small.file_growth_per_block,
        large.file_growth_per_block,
        small.snapshot_bytes,
        large.snapshot_bytes,
        small.old_file_growth_per_block,
        large.old_file_growth_per_block
    );
    assert!(
        large.leaves > 500 * small.leaves / 10,
        "the states differ in size"
    );
    // What one block writes of the state: the same for both.
    assert!(
        flat(small.leaf_bytes_per_block, large.leaf_bytes_per_block, 64.0),
        "leaf bytes per block scale with the state"
    );
    // The file: copy-on-write pages of a deeper B-tree, but not the state.
    assert!(
        flat(
            small.file_growth_per_block,
            large.file_growth_per_block,
            16_384.0
        ),
        "file growth per block scales with the state"
    );
    assert!(
        large.file_growth_per_block < large.snapshot_bytes as f64 / 10.0,
        "the file grows by a large part of a snapshot per block"
    );
    // Negative controls: the old write per height, a whole snapshot, fails
    // the same bounds, in bytes and in file growth.
    assert!(
        !flat(
            small.snapshot_bytes as f64,
            large.snapshot_bytes as f64,
            64.0
        ),
        "the control must scale with the state"
    );
    assert!(
        !flat(
            small.old_file_growth_per_block,
            large.old_file_growth_per_block,
            16_384.0
        ) && large.old_file_growth_per_block >= large.snapshot_bytes as f64 / 10.0,
        "the old layout's file growth must scale with the state: {:.0} vs {:.0}",
        small.old_file_growth_per_block,
        large.old_file_growth_per_block
    );
}
