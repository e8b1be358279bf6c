//! Storage on real files: atomic block commits (with their state-leaf
//! changes, validator-set change and evidence-pool removals), reopening,
//! the WAL, the signing state, the evidence pool, an old store refused,
//! and an acknowledged write surviving `kill -9` of the writer.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agora_node::storage::{CommittedBlock, Storage, StorageError, TxOutcome, TxRecord};
use agora_proto::v1::{
    Block, CommitCertificate, DuplicateVoteEvidence, Evidence, Header, Vote, evidence,
};
use agora_validator::block::header_hash;
use agora_validator::ledger::LeafChange;

type Leaves = Vec<(Vec<u8>, Vec<u8>)>;

/// Block h's leaf changes: the globals leaf rewritten, leaf [1, h]
/// inserted and leaf [1, h − 1] removed.
fn changes(h: u64) -> Vec<LeafChange> {
    let mut c = vec![
        (vec![0], Some(format!("globals-{h}").into_bytes())),
        (vec![1, h as u8], Some(format!("leaf-{h}").into_bytes())),
    ];
    if h > 1 {
        c.push((vec![1, h as u8 - 1], None));
    }
    c
}

/// The leaves after block h (from an empty genesis).
fn leaves_after(h: u64) -> Leaves {
    vec![
        (vec![0], format!("globals-{h}").into_bytes()),
        (vec![1, h as u8], format!("leaf-{h}").into_bytes()),
    ]
}

fn block(height: u64) -> (Block, CommitCertificate) {
    let header = Header {
        chain_id: "agora-test".into(),
        height,
        parent_hash: vec![height as u8; 32],
        time_ms: 1_000 + height,
        ..Default::default()
    };
    let hash = header_hash(&header);
    let cert = CommitCertificate {
        height,
        round: 0,
        block_hash: hash.to_vec(),
        signers: vec![1],
        aggregate_signature: vec![9; 96],
    };
    (
        Block {
            header: Some(header),
            ..Default::default()
        },
        cert,
    )
}

fn commit(s: &Storage, height: u64) {
    commit_with(s, height, None, &[]);
}

/// Evidence naming height `h` (distinct per height).
fn evidence_of(h: u64) -> Evidence {
    Evidence {
        kind: Some(evidence::Kind::DuplicateVote(DuplicateVoteEvidence {
            vote_a: Some(Vote {
                height: h,
                ..Default::default()
            }),
            vote_b: Some(Vote {
                height: h,
                round: 1,
                ..Default::default()
            }),
        })),
    }
}

fn id_of(h: u64) -> [u8; 32] {
    agora_validator::engine::evidence_pool::evidence_id(&evidence_of(h))
}

fn commit_with(s: &Storage, height: u64, set: Option<(u64, &[u8])>, removed: &[[u8; 32]]) {
    let (b, c) = block(height);
    let state = changes(height);
    let txs = [(
        [height as u8; 32],
        TxRecord {
            height,
            index: 0,
            outcome: TxOutcome::Committed as i32,
            reason: String::new(),
        },
    )];
    s.commit_block(CommittedBlock {
        block: &b,
        certificate: &c,
        state_changes: &state,
        seed: &[height as u8 ^ 0xaa; 32],
        txs: &txs,
        validator_set: set,
        evidence_removed: removed,
    })
    .unwrap();
}

#[test]
fn blocks_certificates_and_state_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    {
        let s = Storage::open(&path).unwrap();
        assert_eq!(s.latest_height().unwrap(), None);
        for h in 1..=3 {
            commit(&s, h);
        }
    }
    let s = Storage::open(&path).unwrap();
    assert_eq!(s.latest_height().unwrap(), Some(3));
    for h in 1..=3 {
        let (b, c) = block(h);
        assert_eq!(s.block(h).unwrap(), Some(b.clone()));
        assert_eq!(s.certificate(h).unwrap(), Some(c));
        let hash = header_hash(b.header.as_ref().unwrap());
        assert_eq!(s.height_of_block(&hash).unwrap(), Some(h));
        assert_eq!(s.seed(h).unwrap(), Some([h as u8 ^ 0xaa; 32]));
        assert_eq!(s.tx(&[h as u8; 32]).unwrap().map(|r| r.height), Some(h));
    }
    // One copy of the state: block 3's, each block's changes applied.
    assert_eq!(s.state_leaves().unwrap(), leaves_after(3));
    assert_eq!(s.block(4).unwrap(), None);
    // Genesis leaves are set before block 1 only.
    assert!(matches!(
        s.reset_state_leaves(&leaves_after(0)),
        Err(StorageError::Invalid(_))
    ));
}

#[test]
fn inconsistent_commits_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path().join("db")).unwrap();
    commit(&s, 1);
    // Same height again.
    let (b, c) = block(1);
    let err = s.commit_block(CommittedBlock {
        block: &b,
        certificate: &c,
        state_changes: &changes(9),
        seed: &[0; 32],
        txs: &[],
        validator_set: None,
        evidence_removed: &[],
    });
    assert!(matches!(err, Err(StorageError::Invalid(_))));
    // Certificate for another block.
    let (b2, _) = block(2);
    let (_, c3) = block(3);
    let err = s.commit_block(CommittedBlock {
        block: &b2,
        certificate: &c3,
        state_changes: &changes(9),
        seed: &[0; 32],
        txs: &[],
        validator_set: None,
        evidence_removed: &[],
    });
    assert!(matches!(err, Err(StorageError::Invalid(_))));
    assert_eq!(s.latest_height().unwrap(), Some(1));
    assert_eq!(s.state_leaves().unwrap(), leaves_after(1));
}

#[test]
fn wal_is_truncated_by_the_commit_of_its_height() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = Storage::open(&path).unwrap();
        s.wal_append(1, b"proposal", false).unwrap();
        s.wal_append(1, b"vote-a", false).unwrap();
        s.wal_append(2, b"future", true).unwrap();
    }
    let s = Storage::open(&path).unwrap();
    let recs = s.wal_records().unwrap();
    assert_eq!(
        recs,
        vec![
            (1, b"proposal".to_vec()),
            (1, b"vote-a".to_vec()),
            (2, b"future".to_vec())
        ]
    );
    commit(&s, 1);
    assert_eq!(s.wal_records().unwrap(), vec![(2, b"future".to_vec())]);
    s.wal_append(2, b"next", false).unwrap();
    assert_eq!(s.wal_len().unwrap(), 2);
}

/// WAL records appended without durability wait in memory: the commit of
/// their height still truncates them (they go into its transaction before
/// the truncation), later heights' records stay, and a clean close writes
/// what waits.
#[test]
fn waiting_wal_records_are_truncated_with_their_height_and_kept_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = Storage::open(&path).unwrap();
        s.wal_append(1, b"proposal", false).unwrap();
        s.wal_append(2, b"early", false).unwrap();
        commit(&s, 1);
        s.wal_append(2, b"vote", false).unwrap();
    }
    let s = Storage::open(&path).unwrap();
    assert_eq!(
        s.wal_records().unwrap(),
        vec![(2, b"early".to_vec()), (2, b"vote".to_vec())]
    );
}

#[test]
fn signing_state_and_evidence_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ev = Evidence {
        kind: Some(evidence::Kind::DuplicateVote(DuplicateVoteEvidence {
            vote_a: Some(Vote {
                height: 3,
                ..Default::default()
            }),
            vote_b: Some(Vote {
                height: 3,
                round: 1,
                ..Default::default()
            }),
        })),
    };
    {
        let s = Storage::open(&path).unwrap();
        assert_eq!(s.signing_state().unwrap(), None);
        s.save_signing_state(b"h=5 r=0 step=prevote").unwrap();
        assert!(s.put_evidence(&ev).unwrap());
        assert!(!s.put_evidence(&ev).unwrap(), "stored once");
        // Make the non-durable evidence write durable too.
        s.save_signing_state(b"h=5 r=1 step=precommit").unwrap();
    }
    let s = Storage::open(&path).unwrap();
    assert_eq!(
        s.signing_state().unwrap(),
        Some(b"h=5 r=1 step=precommit".to_vec())
    );
    assert_eq!(s.evidence().unwrap(), vec![ev]);
}

#[test]
fn set_changes_and_pool_removals_commit_with_their_block_and_the_pool_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = Storage::open(&path).unwrap();
        for h in 1..=3 {
            assert!(s.put_pool_evidence(&id_of(h), &evidence_of(h)).unwrap());
        }
        assert!(
            !s.put_pool_evidence(&id_of(1), &evidence_of(1)).unwrap(),
            "once"
        );
        commit_with(&s, 1, Some((3, b"set-3")), &[id_of(1)]);
        commit_with(&s, 2, None, &[id_of(3)]);
    }
    let s = Storage::open(&path).unwrap();
    assert_eq!(s.latest_height().unwrap(), Some(2));
    assert_eq!(s.validator_sets().unwrap(), vec![(3, b"set-3".to_vec())]);
    assert_eq!(s.pool_evidence().unwrap(), vec![evidence_of(2)]);
    // The query table keeps everything ever accepted.
    assert_eq!(s.evidence().unwrap().len(), 3);
    // A refused commit writes none of its set change or removals.
    let (b, c) = block(2);
    assert!(
        s.commit_block(CommittedBlock {
            block: &b,
            certificate: &c,
            state_changes: &changes(9),
            seed: &[0; 32],
            txs: &[],
            validator_set: Some((4, b"set-4")),
            evidence_removed: &[id_of(2)],
        })
        .is_err()
    );
    assert_eq!(s.validator_sets().unwrap().len(), 1);
    assert_eq!(s.pool_evidence().unwrap(), vec![evidence_of(2)]);
}

const CHILD_ENV: &str = "AGORA_STORAGE_KILL_CHILD_DB";

/// In the child: write signing states, evidence-pool entries and blocks
/// forever, printing each one after the call that made it durable returned.
/// Block h carries the set change for h+2 and retires the pool entry of h.
/// The parent kills us.
#[test]
fn kill_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // Only meaningful as the child of `acknowledged_writes_survive_kill_9`.
    };
    let s = Storage::open(&path).unwrap();
    let mut h = s.latest_height().unwrap().unwrap_or(0);
    loop {
        h += 1;
        s.save_signing_state(&h.to_be_bytes()).unwrap();
        println!("signed {h}");
        s.put_pool_evidence(&id_of(h), &evidence_of(h)).unwrap();
        println!("pooled {h}");
        let set = format!("set-{}", h + 2).into_bytes();
        commit_with(&s, h, Some((h + 2, &set)), &[id_of(h)]);
        println!("committed {h}");
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let exe = std::env::current_exe().unwrap();
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "kill_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut signed, mut pooled, mut committed) = (0u64, 0u64, 0u64);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Kill at a different point each round, in the middle of the write
        // loop; the later rounds run past journal folds (every 32 heights).
        let target = 5 + 20 * round;
        while committed < target {
            assert!(Instant::now() < deadline, "child too slow");
            let line = lines.next().expect("child ended early").unwrap();
            if let Some(n) = line.strip_prefix("signed ") {
                signed = n.parse().unwrap();
            } else if let Some(n) = line.strip_prefix("pooled ") {
                pooled = n.parse().unwrap();
            } else if let Some(n) = line.strip_prefix("committed ") {
                committed = n.parse().unwrap();
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let s = Storage::open(&path).unwrap();
        let latest = s.latest_height().unwrap().unwrap();
        assert!(
            latest >= committed,
            "acknowledged commit {committed} lost (latest {latest})"
        );
        let sig = s.signing_state().unwrap().unwrap();
        let sig = u64::from_be_bytes(sig.as_slice().try_into().unwrap());
        assert!(
            sig >= signed,
            "acknowledged signing state {signed} lost (found {sig})"
        );
        // Atomic with their blocks: exactly the set changes and pool
        // removals of the stored blocks, nothing of a block that was not.
        let sets: Vec<u64> = s.validator_sets().unwrap().iter().map(|x| x.0).collect();
        assert_eq!(sets, (3..=latest + 2).collect::<Vec<_>>());
        let pool = s.pool_evidence().unwrap();
        assert!(
            pool.iter().all(|e| *e == evidence_of(latest + 1)),
            "only the entry of the block not yet stored may be pooled: {pool:?}"
        );
        if pooled > latest {
            assert_eq!(
                pool,
                vec![evidence_of(latest + 1)],
                "acknowledged pool entry lost"
            );
        }
        for h in 1..=latest {
            assert!(s.block(h).unwrap().is_some(), "block {h} missing");
            assert!(
                s.certificate(h).unwrap().is_some(),
                "certificate {h} missing"
            );
            let rec = s.tx(&[h as u8; 32]).unwrap();
            assert_eq!(rec.map(|r| r.height), Some(h), "index row of {h}");
        }
        // The state is the latest block's, never one ahead or behind.
        assert_eq!(s.state_leaves().unwrap(), leaves_after(latest));
    }
}

/// A run of synced blocks (`commit_blocks`): the same rows as committing
/// them one by one, and all or nothing — a bad block anywhere in the run
/// leaves the store as it was (the negative control: the valid blocks
/// before it are not stored either, so the store stays a chain prefix).
#[test]
fn a_run_of_blocks_is_stored_like_single_commits_and_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let one = Storage::open(dir.path().join("one")).unwrap();
    let run = Storage::open(dir.path().join("run")).unwrap();
    for h in 1..=4 {
        commit(&one, h);
    }
    let parts: Vec<_> = (1..=4u64)
        .map(|h| {
            let (b, c) = block(h);
            let state = changes(h);
            let txs = vec![(
                [h as u8; 32],
                TxRecord {
                    height: h,
                    index: 0,
                    outcome: TxOutcome::Committed as i32,
                    reason: String::new(),
                },
            )];
            (b, c, state, [h as u8 ^ 0xaa; 32], txs)
        })
        .collect();
    let committed =
        |range: std::ops::Range<usize>, bad: Option<usize>| -> Vec<CommittedBlock<'_>> {
            range
                .map(|i| {
                    let (b, c, state, seed, txs) = &parts[i];
                    // A certificate of another block makes block `bad` invalid.
                    let c = if Some(i) == bad {
                        &parts[(i + 1) % 4].1
                    } else {
                        c
                    };
                    CommittedBlock {
                        block: b,
                        certificate: c,
                        state_changes: state,
                        seed,
                        txs,
                        validator_set: None,
                        evidence_removed: &[],
                    }
                })
                .collect()
        };
    let err = run.commit_blocks(&committed(0..4, Some(2)));
    assert!(matches!(err, Err(StorageError::Invalid(_))));
    assert_eq!(
        run.latest_height().unwrap(),
        None,
        "nothing of a bad run is stored"
    );
    assert_eq!(run.block(1).unwrap(), None);
    assert!(
        run.state_leaves().unwrap().is_empty(),
        "no leaf of a bad run"
    );
    run.commit_blocks(&committed(0..2, None)).unwrap();
    run.commit_blocks(&committed(2..4, None)).unwrap();
    assert_eq!(run.latest_height().unwrap(), Some(4));
    for h in 1..=4 {
        assert_eq!(run.block(h).unwrap(), one.block(h).unwrap());
        assert_eq!(run.certificate(h).unwrap(), one.certificate(h).unwrap());
        assert_eq!(run.seed(h).unwrap(), one.seed(h).unwrap());
        assert_eq!(
            run.tx(&[h as u8; 32]).unwrap(),
            one.tx(&[h as u8; 32]).unwrap()
        );
    }
    assert_eq!(run.state_leaves().unwrap(), leaves_after(4));
    assert_eq!(run.state_leaves().unwrap(), one.state_leaves().unwrap());
    // A run must start above the stored tip.
    let err = run.commit_blocks(&committed(3..4, None));
    assert!(matches!(err, Err(StorageError::Invalid(_))));
}

/// A store written by an older node (whole snapshots in `states`, no
/// `state_leaves`) is refused with what to do, not read as an empty state.
#[test]
fn an_old_store_with_state_snapshots_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let old: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("states");
            txn.open_table(old)
                .unwrap()
                .insert(7, b"snapshot".as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let err = Storage::open(&path).unwrap_err();
    assert!(matches!(err, StorageError::OldLayout { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("older agora") && msg.contains("signing_state.json"),
        "{msg}"
    );
    // Negative control: a store of this version opens.
    let fresh = dir.path().join("new.redb");
    drop(Storage::open(&fresh).unwrap());
    Storage::open(&fresh).unwrap();
}

/// A database is created under a temporary name and renamed into place, so
/// a node killed while creating it leaves nothing the next start refuses:
/// a leftover temporary file is replaced. A half-made file at the real
/// path (which this creation never leaves) is still refused, never
/// deleted: the node does not guess that a store it cannot read is empty.
#[test]
fn creation_is_atomic_and_a_leftover_temporary_file_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    let tmp = dir.path().join("node.redb.new");
    std::fs::write(&tmp, b"half a database").expect("leftover");
    let s = Storage::open(&path).expect("created past the leftover");
    assert_eq!(s.latest_height().expect("read"), None);
    assert!(!tmp.exists(), "the temporary name is gone");
    drop(s);
    Storage::open(&path).expect("reopened");

    let broken = dir.path().join("broken.redb");
    std::fs::write(&broken, b"half a database").expect("broken");
    assert!(Storage::open(&broken).is_err());
    assert_eq!(std::fs::read(&broken).expect("kept"), b"half a database");
}
