//! Block pruning on a real redb file (`storage.keep_blocks`, see
//! `agora_node::storage::prune`): after many commits exactly the kept
//! heights remain (blocks, certificates, seeds, block-hash and tx index
//! entries), what is never pruned stays (the tip, validator-set changes),
//! and the file stops growing — against the control `keep_blocks = 0`,
//! which keeps everything and grows with the chain.

use agora_node::storage::prune::{EVIDENCE_MARGIN, PRUNE_EVERY};
use agora_node::storage::{
    CommittedBlock, PrunePolicy, PruneResolved, Storage, TxOutcome, TxRecord,
};
use agora_proto::v1::{Block, CommitCertificate, Header, Transaction};
use agora_validator::Hash;
use agora_validator::block::{header_hash, tx_hash};

/// Unbonding period of these tests' "chain": the floor is this + margin.
const UNBONDING: u64 = 16;
/// Padding per block, so that blocks dominate the file.
const PAD: usize = 8 * 1024;

/// Block `h` with two padded transactions, its certificate and tx index.
fn certified(h: u64) -> (Block, CommitCertificate, Vec<(Hash, TxRecord)>) {
    let txs: Vec<Transaction> = (0..2u64)
        .map(|i| Transaction {
            public_key: (h * 10 + i).to_be_bytes().to_vec(),
            signature: vec![h as u8; PAD / 2],
            ..Default::default()
        })
        .collect();
    let header = Header {
        chain_id: "prune-test".into(),
        height: h,
        time_ms: 1_000 + h,
        ..Default::default()
    };
    let cert = CommitCertificate {
        height: h,
        block_hash: header_hash(&header).to_vec(),
        signers: vec![1],
        aggregate_signature: vec![9; 96],
        ..Default::default()
    };
    let index = txs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let rec = TxRecord {
                height: h,
                index: i as u32,
                outcome: TxOutcome::Committed as i32,
                reason: String::new(),
            };
            (tx_hash(t), rec)
        })
        .collect();
    let block = Block {
        header: Some(header),
        txs,
        ..Default::default()
    };
    (block, cert, index)
}

/// Commits heights `from..=to`, pruning after each as `policy` says (what
/// the runner does); height 5 records a validator-set change.
fn run(s: &Storage, from: u64, to: u64, policy: Option<&PrunePolicy>) {
    for h in from..=to {
        let (block, cert, txs) = certified(h);
        let set = [7u8; 40];
        s.commit_block(CommittedBlock {
            block: &block,
            certificate: &cert,
            state_changes: &[],
            seed: &[h as u8; 32],
            txs: &txs,
            validator_set: (h == 5).then_some((7, set.as_slice())),
            evidence_removed: &[],
        })
        .expect("commit");
        if let Some(p) = policy {
            s.prune(p, h).expect("prune");
        }
    }
}

/// Whether every row of height `h` is stored (`true`) or none is (`false`).
fn stored(s: &Storage, h: u64) -> bool {
    let (block, _, txs) = certified(h);
    let hash = header_hash(block.header.as_ref().expect("header"));
    let rows = [
        s.block(h).expect("read").is_some(),
        s.certificate(h).expect("read").is_some(),
        s.seed(h).expect("read").is_some(),
        s.height_of_block(&hash).expect("read") == Some(h),
        s.tx(&txs[0].0).expect("read").is_some(),
        s.tx(&txs[1].0).expect("read").is_some(),
    ];
    assert!(
        rows.iter().all(|r| *r == rows[0]),
        "height {h}: some rows pruned, others not: {rows:?}"
    );
    rows[0]
}

fn policy(keep_blocks: u64) -> Option<PrunePolicy> {
    match PrunePolicy::resolve(keep_blocks, UNBONDING) {
        PruneResolved::KeepAll => None,
        PruneResolved::Keep(p) | PruneResolved::Raised { policy: p, .. } => Some(p),
    }
}

#[test]
fn exactly_the_kept_heights_remain_and_what_is_never_pruned_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Storage::open(dir.path().join("node.redb")).expect("open");
    // Below the evidence window: raised to it.
    let p = policy(10).expect("pruning");
    assert_eq!(p.keep(), UNBONDING + EVIDENCE_MARGIN);
    let tip = 400;
    run(&s, 1, tip, Some(&p));
    // The last prune ran at the last multiple of PRUNE_EVERY.
    let pruned_at = tip - tip % PRUNE_EVERY;
    let floor = pruned_at - p.keep() + 1;
    assert_eq!(s.lowest_block_height().expect("read"), Some(floor));
    assert_eq!(s.block_count().expect("read"), tip - floor + 1);
    for h in 1..=tip {
        assert_eq!(stored(&s, h), h >= floor, "height {h} (floor {floor})");
    }
    // Never pruned: the set change recorded at height 5, and the tip.
    assert_eq!(s.validator_sets().expect("read").len(), 1);
    assert!(s.block(tip).expect("read").is_some());
    // Asking to prune past the tip keeps the tip.
    s.prune_blocks_below(u64::MAX).expect("prune");
    assert_eq!(s.lowest_block_height().expect("read"), Some(tip));

    // Negative control: keep_blocks = 0 keeps every height.
    let dir = tempfile::tempdir().expect("tempdir");
    let all = Storage::open(dir.path().join("node.redb")).expect("open");
    assert!(policy(0).is_none());
    run(&all, 1, 200, None);
    assert!((1..=200).all(|h| stored(&all, h)));
    assert_eq!(all.lowest_block_height().expect("read"), Some(1));
}

/// File size after `m` and after `2m` heights.
fn sizes(keep_blocks: u64, m: u64) -> (u64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    let s = Storage::open(&path).expect("open");
    let p = policy(keep_blocks);
    run(&s, 1, m, p.as_ref());
    let first = std::fs::metadata(&path).expect("stat").len();
    run(&s, m + 1, 2 * m, p.as_ref());
    let second = std::fs::metadata(&path).expect("stat").len();
    (first, second)
}

#[test]
fn the_store_stops_growing_when_blocks_are_pruned() {
    let m = 600;
    let (pruned_m, pruned_2m) = sizes(1, m);
    let (all_m, all_2m) = sizes(0, m);
    eprintln!(
        "store after {m} / {} heights: keep_blocks=1 (raised to {}): {pruned_m} / {pruned_2m} B; keep_blocks=0: {all_m} / {all_2m} B",
        2 * m,
        UNBONDING + EVIDENCE_MARGIN
    );
    // Pruned: the second M heights reuse the space the first ones freed.
    assert!(
        pruned_2m * 10 <= pruned_m * 12,
        "pruned store grew from {pruned_m} to {pruned_2m} bytes"
    );
    // Control: keeping everything, the file grows with the chain.
    assert!(
        all_2m * 10 >= all_m * 16,
        "unpruned store only grew from {all_m} to {all_2m} bytes"
    );
    assert!(pruned_2m * 3 < all_2m, "pruning saved little");
}

/// What a pruned store may hold, whatever the number of heights: the kept
/// window of blocks (`keep` heights of ~16.5 KiB here, with their
/// certificates, seeds and index rows), the state's leaves, and redb's free
/// pages. Stated for this test's chain (80 kept heights, 1,000 accounts):
/// the file stays under 4 MiB, at 1,000 heights as at 100,000.
const PRUNED_STORE_BOUND: u64 = 4 * 1024 * 1024;

/// A long run with pruning on: each height stores a padded block and
/// changes the globals leaf and four of 1,000 account leaves, as a busy
/// chain would; the file's size, sampled along the way, never passes
/// [`PRUNED_STORE_BOUND`]. `AGORA_PRUNE_RUN_HEIGHTS` sets the run's length
/// (default 1,000; the 100,000-height figure is measured with it).
#[test]
fn a_long_pruned_run_stays_under_its_stated_bound() {
    let heights: u64 = std::env::var("AGORA_PRUNE_RUN_HEIGHTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    let s = Storage::open(&path).expect("open");
    let account = |i: u64| {
        let mut k = vec![1u8];
        k.extend_from_slice(&i.to_be_bytes());
        k
    };
    let genesis: Vec<(Vec<u8>, Vec<u8>)> = (0..1_000).map(|i| (account(i), vec![0; 24])).collect();
    s.reset_state_leaves(&genesis).expect("genesis leaves");
    let p = policy(1).expect("pruning");
    let t0 = std::time::Instant::now();
    let mut largest = 0;
    for h in 1..=heights {
        let (block, cert, txs) = certified(h);
        let mut changes = vec![(vec![0u8], Some(h.to_be_bytes().to_vec()))];
        changes.extend((0..4).map(|j| (account((h * 4 + j) % 1_000), Some(vec![h as u8; 24]))));
        s.commit_block(CommittedBlock {
            block: &block,
            certificate: &cert,
            state_changes: &changes,
            seed: &[h as u8; 32],
            txs: &txs,
            validator_set: None,
            evidence_removed: &[],
        })
        .expect("commit");
        s.prune(&p, h).expect("prune");
        if h % 500 == 0 || h == heights {
            largest = largest.max(std::fs::metadata(&path).expect("stat").len());
        }
    }
    eprintln!(
        "pruned run of {heights} heights (keep {}): largest store {largest} B, {:.1?}",
        p.keep(),
        t0.elapsed()
    );
    assert_eq!(
        s.block_count().expect("read"),
        heights - (heights - heights % PRUNE_EVERY) + p.keep()
    );
    assert!(
        largest <= PRUNED_STORE_BOUND,
        "the pruned store reached {largest} B, over its bound of {PRUNED_STORE_BOUND} B"
    );
}
