//! Catching up on a halted chain, with real node processes on loopback.
//!
//! Three of four validators stop, so the chain cannot decide another
//! height, and a fresh full node whose only peer is the fourth syncs from
//! it. The fourth leaves the first block request unanswered
//! (`testing.drop_block_requests`: an answer lost on the way). The request
//! times out, and the syncing node charges the claim and forgets it, as it
//! must for a false announcement. On a live chain the next commit's status
//! would bring the claim back; on a halted one only the status every node
//! repeats each tick does. Before it, the full node stayed at height 0 for
//! good beside a peer holding every block it needed (seen once as a
//! 10-minute stall of a catching-up node in a benchmark).

mod support;

use support::net::*;

const VALIDATORS: usize = 4;
/// The fresh full node.
const JOINER: usize = VALIDATORS;

#[test]
fn a_node_catching_up_on_a_halted_chain_recovers_from_an_unanswered_request() {
    let net = build(VALIDATORS, 1, |_, _| {});
    // The joiner hears only of validator 0, and nobody else dials it.
    let joiner = format!("127.0.0.1:{}", net.p2p[JOINER]);
    let only_0 = format!("127.0.0.1:{}", net.p2p[0]);
    for i in 0..=JOINER {
        net.edit_config(i, |cfg| {
            let peers = cfg["p2p"]["peers"].as_array_mut().expect("peers");
            if i == JOINER {
                peers.retain(|p| p.as_str() == Some(only_0.as_str()));
            } else {
                peers.retain(|p| p.as_str() != Some(joiner.as_str()));
            }
        });
    }
    let validators: Vec<usize> = (0..VALIDATORS).collect();
    let mut nodes = Nodes(
        validators
            .iter()
            .map(|&i| start(&net.homes[i], &net.logs[i]))
            .collect(),
    );
    wait_heights(&net.metrics, &validators, 12, 120, &net.logs);
    for c in nodes.iter_mut() {
        stop(c);
    }
    // Validator 0 alone: the chain is halted at its tip, and the first
    // block request it receives (the joiner's) goes unanswered.
    net.edit_config(0, |cfg| {
        let t = cfg
            .entry("testing")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = t {
            t.insert("drop_block_requests".into(), toml::Value::Integer(1));
        }
    });
    nodes.push(start(&net.homes[0], &net.logs[0]));
    wait_for("validator 0 serves again", 60, &net.logs, || {
        height(net.metrics[0]).is_some()
    });
    let tip = height(net.metrics[0]).expect("height");
    nodes.push(start(&net.homes[JOINER], &net.logs[JOINER]));

    let watched = [net.logs[0].clone(), net.logs[JOINER].clone()];
    wait_for("the joiner reaches the halted tip", 90, &watched, || {
        height(net.metrics[JOINER]).is_some_and(|h| h >= tip)
    });
    // The scenario happened: the first request timed out and was charged.
    let charged = metric(
        net.metrics[JOINER],
        "agora_peer_charges_total{reason=\"false_height\"}",
    )
    .unwrap_or(0);
    assert!(charged >= 1, "the dropped request was never charged");
    let served = std::fs::read_to_string(&net.logs[0]).expect("log");
    assert!(
        served.contains("block request left unanswered"),
        "validator 0 dropped no request"
    );
    assert_eq!(height(net.metrics[0]), Some(tip), "the chain stayed halted");
}
