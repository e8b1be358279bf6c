//! Old ledger-state snapshots are pruned (`storage.keep_states`), the
//! latest never is, and a node restarts from a pruned store: a real node on
//! a real redb file.

mod support;

use agora_node::storage::Storage;

const KEEP: u64 = 3;
/// `runner::commit::PRUNE_EVERY` (private there).
const PRUNE_EVERY: u64 = 16;

fn edit_config(home: &std::path::Path) {
    let path = home.join("config.toml");
    let mut cfg: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["storage"]["keep_states"] = toml::Value::Integer(KEEP as i64);
    cfg["consensus"]["timeout_commit_ms"] = toml::Value::Integer(10);
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_state_snapshots_are_pruned_and_the_node_restarts_from_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, ..) = support::setup(dir.path());
    node.stop();
    edit_config(&node.home);
    node.start();
    let (mut q, _) = support::client(&node).await;
    support::wait_height(&mut q, &node, 3 * PRUNE_EVERY).await;
    node.stop();

    let storage = Storage::open(agora_node::home::Home::new(&node.home).db()).unwrap();
    let latest = storage.latest_height().unwrap().expect("a chain");
    let kept = storage.state_heights().unwrap();
    drop(storage);
    assert!(
        kept.contains(&latest),
        "the latest snapshot is kept: {kept:?}"
    );
    // Without pruning every one of the ≥ 48 heights would hold a snapshot.
    assert!(
        kept.len() as u64 <= KEEP + PRUNE_EVERY,
        "{} snapshots kept at height {latest}: {kept:?}",
        kept.len()
    );
    let last_prune = latest - latest % PRUNE_EVERY;
    assert!(
        kept.iter().all(|h| *h + KEEP > last_prune),
        "snapshots below the last pruning's bound survived: {kept:?}"
    );

    // The pruned store restarts from its latest snapshot and goes on.
    node.start();
    let (mut q, _) = support::client(&node).await;
    let after = support::wait_height(&mut q, &node, latest + 3).await;
    assert!(after >= latest + 3);
    eprintln!("height {latest}: kept {kept:?}; restarted and reached {after}");
}
