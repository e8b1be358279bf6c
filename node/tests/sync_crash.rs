//! Synced heights are stored in runs, one durable transaction per run
//! (`runner/sync.rs`, `Storage::commit_blocks`). A validator killed with
//! SIGKILL while it catches up must leave a store that is a consistent
//! prefix of the chain — every height up to its tip with its block,
//! certificate (committing that block) and seed, the state of its tip (its
//! leaves),
//! each block linked to its parent — and must resume from it and agree with
//! the others.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use agora_node::storage::Storage;
use agora_validator::block::header_hash;
use agora_validator::ledger::Ledger;
use support::net::*;

const N: usize = 4;
/// Heights the others commit while the victim is down.
const BEHIND: u64 = 400;

/// Checks the store at `path` is a gap-free, linked prefix of a chain and
/// returns its tip.
fn assert_consistent_prefix(path: &Path) -> u64 {
    let d = Storage::open(path).expect("open");
    let tip = d.latest_height().expect("latest").unwrap_or(0);
    let mut parent = [0u8; 32];
    for h in 1..=tip {
        let block = d
            .block(h)
            .expect("read")
            .unwrap_or_else(|| panic!("block {h} missing"));
        let header = block.header.as_ref().expect("header");
        assert_eq!(header.height, h);
        assert_eq!(
            header.parent_hash, parent,
            "height {h}: not linked to its parent"
        );
        let hash = header_hash(header);
        let cert = d
            .certificate(h)
            .expect("read")
            .unwrap_or_else(|| panic!("certificate {h} missing"));
        assert_eq!(cert.height, h);
        assert_eq!(
            cert.block_hash, hash,
            "height {h}: certificate of another block"
        );
        assert!(d.seed(h).expect("read").is_some(), "seed {h} missing");
        parent = hash;
    }
    // The stored leaves are the state of the tip: not one height behind
    // or ahead of its blocks (each run's leaf changes are in the run's
    // transaction).
    let ledger = Ledger::from_leaves(d.state_leaves().expect("read"))
        .expect("the stored leaves restore a ledger");
    assert_eq!(ledger.height(), tip, "the stored state is the tip's");
    assert!(
        d.block(tip + 1).expect("read").is_none(),
        "a block above the tip"
    );
    tip
}

#[test]
fn a_validator_killed_while_catching_up_keeps_a_consistent_store_and_resumes() {
    let net = build(N, 0, |_, _| {});
    let (homes, logs, metrics) = (&net.homes, &net.logs, &net.metrics);
    let mut children = net.start_all();
    let all: Vec<usize> = (0..N).collect();
    wait_heights(metrics, &all, 5, 120, logs);

    children[3].kill().unwrap();
    children[3].wait().unwrap();
    let stopped_at = assert_consistent_prefix(&homes[3].join("data/node.redb"));
    let lead = max_height(metrics, &[0, 1, 2]);
    wait_heights(metrics, &[0, 1, 2], lead + BEHIND, 240, logs);

    // Restarted, it syncs; it is killed again as soon as its height moved
    // (a first run is stored), while most of the gap is still ahead of it.
    children[3] = start(&homes[3], logs[3].as_path());
    let deadline = Instant::now() + Duration::from_secs(120);
    let seen = loop {
        if let Some(h) = height(metrics[3]).filter(|h| *h > stopped_at) {
            break h;
        }
        assert!(Instant::now() < deadline, "{}", log_tails(logs, 30));
        std::thread::yield_now();
    };
    children[3].kill().unwrap();
    children[3].wait().unwrap();
    let killed_at = assert_consistent_prefix(&homes[3].join("data/node.redb"));
    // The height metric is set only once a run is durable: what the node
    // announced survives the kill.
    assert!(killed_at >= seen, "announced {seen}, stored {killed_at}");

    // It resumes from that store and all four go on together.
    children[3] = start(&homes[3], logs[3].as_path());
    let target = max_height(metrics, &[0, 1, 2]) + 5;
    wait_heights(metrics, &all, target, 180, logs);
    for c in children.iter_mut() {
        stop(c);
    }
    assert_consistent_prefix(&homes[3].join("data/node.redb"));
    assert_stored_chains_agree(homes, target);
}
