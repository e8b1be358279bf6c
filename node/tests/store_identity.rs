//! A store belongs to one chain and one layout (`storage/identity.rs`):
//! real redb files in temp dirs, stamped on first use, refused when the
//! genesis or the format is another one, and nothing changed by a refusal.

use agora_node::storage::{Binding, CommittedBlock, STORE_FORMAT, Storage, StorageError};
use agora_proto::v1::{Block, CommitCertificate, Header};
use agora_validator::Hash;
use agora_validator::block::header_hash;
use agora_validator::crypto::vrf;

const META: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");

/// Commits block 1 with the seed that follows from `genesis_hash` (DESIGN §5).
fn commit_block_one(s: &Storage, genesis_hash: &Hash) {
    let proof = [7u8; 96];
    let header = Header {
        chain_id: "agora-test".into(),
        height: 1,
        time_ms: 1_000,
        vrf_proof: proof.to_vec(),
        ..Default::default()
    };
    let cert = CommitCertificate {
        height: 1,
        round: 0,
        block_hash: header_hash(&header).to_vec(),
        signers: vec![1],
        aggregate_signature: vec![9; 96],
    };
    let block = Block {
        header: Some(header),
        ..Default::default()
    };
    let seed = vrf::next_seed(
        &vrf::genesis_seed(genesis_hash),
        &vrf::output_of_bytes(&proof),
    );
    s.commit_block(CommittedBlock {
        block: &block,
        certificate: &cert,
        state_changes: &[(vec![0], Some(b"globals".to_vec()))],
        seed: &seed,
        txs: &[],
        validator_set: None,
        evidence_removed: &[],
    })
    .expect("commit block 1");
}

/// Rewrites (or with `None` removes) one META key with redb directly, as
/// an older or newer node would have left it.
fn set_meta(path: &std::path::Path, key: &str, value: Option<&[u8]>) {
    let db = redb::Database::create(path).expect("open raw");
    let txn = db.begin_write().expect("begin");
    {
        let mut meta = txn.open_table(META).expect("meta");
        match value {
            Some(v) => drop(meta.insert(key, v).expect("insert")),
            None => drop(meta.remove(key).expect("remove")),
        }
    }
    txn.commit().expect("commit");
}

#[test]
fn a_store_is_stamped_once_and_refused_under_another_genesis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    let ours = [1u8; 32];
    let theirs = [2u8; 32];
    let s = Storage::open(&path).expect("open");
    assert_eq!(s.bind_genesis(&ours).expect("bind"), Binding::Stamped);
    commit_block_one(&s, &ours);
    drop(s);

    let s = Storage::open(&path).expect("reopen");
    assert_eq!(s.bind_genesis(&ours).expect("same"), Binding::Matched);
    let err = s.bind_genesis(&theirs).expect_err("another genesis");
    assert!(matches!(err, StorageError::OtherChain { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&hex::encode(ours))
            && msg.contains(&hex::encode(theirs))
            && msg.contains("signing_state.json"),
        "{msg}"
    );
    // The refusal changed nothing: the store is still ours, block 1 kept.
    assert_eq!(s.bind_genesis(&ours).expect("still"), Binding::Matched);
    assert_eq!(s.latest_height().expect("height"), Some(1));
}

/// A store an older node wrote has no stamp: its block 1 tells which
/// genesis it came from; without block 1 nothing can be checked.
#[test]
fn an_unstamped_store_is_checked_by_its_block_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = [1u8; 32];
    let theirs = [2u8; 32];
    let path = dir.path().join("node.redb");
    let s = Storage::open(&path).expect("open");
    commit_block_one(&s, &ours);
    drop(s);

    let s = Storage::open(&path).expect("reopen");
    let err = s
        .bind_genesis(&theirs)
        .expect_err("block 1 of another genesis");
    assert!(
        err.to_string()
            .contains("does not follow from this genesis"),
        "{err}"
    );
    // Negative control: the genesis block 1 came from is accepted, and stamped.
    assert_eq!(s.bind_genesis(&ours).expect("ours"), Binding::Stamped);
    assert_eq!(s.bind_genesis(&ours).expect("ours"), Binding::Matched);
    assert!(s.bind_genesis(&theirs).is_err());
    drop(s);

    // Without block 1 (pruned, or restored by state sync) it is stamped unchecked.
    set_meta(&path, "genesis_hash", None);
    {
        let db = redb::Database::create(&path).expect("raw");
        let txn = db.begin_write().expect("begin");
        let blocks: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("blocks");
        drop(
            txn.open_table(blocks)
                .expect("blocks")
                .remove(1)
                .expect("remove"),
        );
        txn.commit().expect("commit");
    }
    let s = Storage::open(&path).expect("reopen");
    assert_eq!(
        s.bind_genesis(&theirs).expect("unchecked"),
        Binding::StampedUnchecked
    );
    assert_eq!(s.bind_genesis(&theirs).expect("now"), Binding::Matched);
}

#[test]
fn a_store_of_a_newer_format_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    drop(Storage::open(&path).expect("create"));
    let newer = (STORE_FORMAT + 1).to_be_bytes();
    set_meta(&path, "store_format", Some(&newer));
    let err = Storage::open(&path).expect_err("newer format");
    assert!(
        matches!(err, StorageError::NewerFormat { found, .. } if found == STORE_FORMAT + 1),
        "{err}"
    );
    assert!(err.to_string().contains("newer agora"), "{err}");

    // A store from before formats were stamped opens and gets this one.
    set_meta(&path, "store_format", None);
    drop(Storage::open(&path).expect("unstamped opens"));
    set_meta(&path, "store_format", Some(&STORE_FORMAT.to_be_bytes()));
    Storage::open(&path).expect("current format opens");

    set_meta(&path, "store_format", Some(b"x"));
    let err = Storage::open(&path).expect_err("corrupt format");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
}

/// A second open of one store (another `agora start` on the same home)
/// says what is going on instead of redb's lock error.
#[test]
fn a_store_already_open_is_refused_with_advice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    let first = Storage::open(&path).expect("open");
    let err = Storage::open(&path).expect_err("second open");
    assert!(matches!(err, StorageError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("already running"), "{err}");
    drop(first);
    Storage::open(&path).expect("free again");
}
