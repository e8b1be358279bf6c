//! Pending transactions are handed to a validator when it connects
//! (`tx_gossip::handover`): what was submitted while it was away reaches
//! it without any block, so it can propose it.
//!
//! Three validators of equal power (each a third: no height commits
//! without all three) and a full node, as real processes. With two
//! validators down, a transfer submitted to the first stays pending. The
//! second restarts and must hold it: no block could have carried it.
//!
//! Control: the full node, which is outside the set and so is handed
//! nothing, connects afterwards; a second transfer, submitted once it is
//! connected, reaches it by gossip, but the first never does. So a peer
//! that connects late learns an earlier transaction by no path but the
//! handover, and the second validator's copy came from it.

mod support;

use std::path::Path;
use std::process::Command;

use support::net::{agora_bin, build, metric, start, stop, wait_for, wait_heights};

/// The status `agora query tx` gives for `hash` at the node on `grpc`
/// (`None` when the node does not know it or does not answer).
fn tx_status(grpc: u16, hash: &str) -> Option<String> {
    let out = Command::new(agora_bin())
        .args(["query", "tx", hash, "--node", &format!("127.0.0.1:{grpc}")])
        .args(["-o", "json"])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["status"].as_str().map(str::to_owned)
}

/// Submits a transfer of 1 token to `to`, signed by the operator key of
/// `home`, to the node on `grpc` without waiting; returns its hash.
fn submit_transfer(home: &Path, grpc: u16, to: &str) -> String {
    let out = Command::new(agora_bin())
        .args(["tx", "--node", &format!("127.0.0.1:{grpc}")])
        .args(["--home", home.to_str().expect("utf-8"), "--no-wait"])
        .args(["-o", "json", "transfer", to, "1"])
        .output()
        .expect("agora tx");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["tx_hash"].as_str().expect("tx_hash").to_owned()
}

/// The operator address of `home` (`agora keys show operator`).
fn operator_address(home: &Path) -> String {
    let key =
        agora_node::keys::load_account(&home.join("keys/operator.key")).expect("operator key");
    agora_validator::Address::of_account(&key.public_key()).to_string()
}

#[test]
fn a_validator_that_connects_is_handed_what_was_submitted_while_it_was_away() {
    let net = build(3, 1, |_, _| {});
    let (logs, grpc) = (&net.logs, &net.grpc);
    let mut nodes = support::net::Nodes((0..3).map(|i| start(&net.homes[i], &logs[i])).collect());
    wait_heights(&net.metrics, &[0, 1, 2], 2, 90, logs);
    stop(&mut nodes[1]);
    stop(&mut nodes[2]);

    let to = operator_address(&net.homes[2]);
    let first = submit_transfer(&net.homes[0], grpc[0], &to);
    assert_eq!(tx_status(grpc[0], &first).as_deref(), Some("pending"));

    // The second validator comes back; the chain still halts without the
    // third, so only the handover can bring it the transfer.
    nodes[1] = start(&net.homes[1], &logs[1]);
    wait_for(
        "the restarted validator holds the transfer",
        60,
        logs,
        || tx_status(grpc[1], &first).as_deref() == Some("pending"),
    );

    // Control: the full node connects to both running validators, then a
    // second transfer (another sender) is gossiped to it.
    nodes.push(start(&net.homes[3], &logs[3]));
    wait_for(
        "the full node connected to both validators",
        60,
        logs,
        || metric(net.metrics[3], "agora_peers{kind=\"validator\"}").unwrap_or(0) >= 2,
    );
    let second = submit_transfer(&net.homes[1], grpc[0], &to);
    wait_for("the full node heard the second transfer", 60, logs, || {
        tx_status(grpc[3], &second).as_deref() == Some("pending")
    });
    assert_ne!(
        tx_status(grpc[3], &first).as_deref(),
        Some("pending"),
        "the full node holds the first transfer, though nothing hands it over to a peer outside the set"
    );
}
