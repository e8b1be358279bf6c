//! The store holds ONE copy of the ledger state, the tip's, as leaves that
//! each block updates (nothing to prune any more): after a long run a real
//! node's redb file holds exactly the leaves of its tip, they restore a
//! ledger at the tip whose app hash the next block's header commits to,
//! and the node restarts from them. An old config naming the obsolete
//! `storage.keep_states` still loads.

mod support;

use agora_node::storage::Storage;
use agora_validator::ledger::Ledger;

/// Heights to run before looking: past many of the old snapshot prunings.
const RUN: u64 = 48;

fn edit_config(home: &std::path::Path) {
    let path = home.join("config.toml");
    let mut cfg: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // What configs written by older nodes carry: accepted and ignored.
    let storage = cfg
        .entry("storage")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    storage
        .as_table_mut()
        .unwrap()
        .insert("keep_states".into(), toml::Value::Integer(3));
    cfg["consensus"]["timeout_commit_ms"] = toml::Value::Integer(10);
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_holds_one_copy_of_the_state_and_the_node_restarts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, ..) = support::setup(dir.path());
    node.stop();
    edit_config(&node.home);
    node.start();
    let (mut q, _) = support::client(&node).await;
    support::wait_height(&mut q, &node, RUN).await;
    node.stop();

    let db = agora_node::home::Home::new(&node.home).db();
    let storage = Storage::open(&db).unwrap();
    let latest = storage.latest_height().unwrap().expect("a chain");
    let leaves = storage.state_leaves().unwrap();
    drop(storage);
    let ledger = Ledger::from_leaves(leaves.iter().map(|(k, v)| (k, v))).expect("restores");
    assert_eq!(ledger.height(), latest, "the stored state is the tip's");
    // Exactly one copy: the stored rows are the tip state's leaves, no
    // more (a snapshot per height, or stale leaves, would show here).
    assert_eq!(
        leaves,
        ledger.leaves(),
        "the store holds exactly the tip's leaves"
    );

    // The node restarts from them, and the next block commits to the app
    // hash of exactly that state.
    node.start();
    let (mut q, _) = support::client(&node).await;
    let after = support::wait_height(&mut q, &node, latest + 3).await;
    node.stop();
    let storage = Storage::open(&db).unwrap();
    let next = storage.block(latest + 1).unwrap().expect("the next block");
    assert_eq!(
        next.header.expect("header").app_hash,
        ledger.app_hash().to_vec(),
        "block {} commits to the restored state",
        latest + 1
    );
    eprintln!(
        "height {latest}: {} leaves stored; restarted and reached {after}",
        leaves.len()
    );
}
