//! A validator whose clock is wrong must say so (`runner/clock.rs`). Behind
//! the chain's, it refuses every proposal as from the future and prevotes
//! nil; ahead of it, its own proposals are refused and every round it
//! proposes is lost. Real processes on loopback.

mod support;

use support::net::*;

use std::sync::Mutex;

/// Off by more than the 2 s drift a proposal may have.
const OFFSET_MS: i64 = 6_000;

/// One four-node network at a time: two would share the two cores of a CI
/// machine with each other as well.
static ONE_NET: Mutex<()> = Mutex::new(());

/// Four validators, node 3's clock shifted by `offset_ms`.
fn net_with_node_3_off_by(offset_ms: i64) -> Net {
    build(4, 0, |i, cfg| {
        if i == 3 {
            let t = cfg
                .entry("testing")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = t {
                t.insert("clock_offset_ms".into(), toml::Value::Integer(offset_ms));
            }
        }
    })
}

/// Waits until node 3's `gauge` passes the 2 s drift, then expects its
/// warning that "this machine's clock is {side} the chain's".
fn node_3_warns(net: &Net, gauge: &str, side: &str) {
    wait_for(
        &format!("node 3's {gauge} past the drift"),
        120,
        &net.logs,
        || metric(net.metrics[3], gauge).is_some_and(|ms| ms > 2_000),
    );
    let log = std::fs::read_to_string(&net.logs[3]).unwrap_or_default();
    let warning = format!("this machine's clock is {side} the chain's");
    assert!(
        log.contains(&warning),
        "no warning in node 3's log: {warning}"
    );
}

#[test]
fn a_validator_whose_clock_is_behind_says_so() {
    let _one = ONE_NET.lock().unwrap_or_else(|e| e.into_inner());
    let net = net_with_node_3_off_by(-OFFSET_MS);
    let mut nodes = net.start_all();
    // The three others decide without it (three quarters of the power).
    wait_heights(&net.metrics, &[0, 1, 2], 5, 120, &net.logs);
    node_3_warns(&net, "agora_clock_behind_ms", "behind");
    // Negative control: the nodes whose clocks are right measure nothing
    // behind and say nothing.
    for i in 0..3 {
        assert_eq!(
            metric(net.metrics[i], "agora_clock_behind_ms"),
            Some(0),
            "node {i}"
        );
        let log = std::fs::read_to_string(&net.logs[i]).unwrap_or_default();
        assert!(!log.contains("clock is behind"), "node {i} warned");
    }
    for child in nodes.0.iter_mut() {
        stop(child);
    }
}

#[test]
fn a_validator_whose_clock_is_ahead_says_so() {
    let _one = ONE_NET.lock().unwrap_or_else(|e| e.into_inner());
    let net = net_with_node_3_off_by(OFFSET_MS);
    let mut nodes = net.start_all();
    // Node 3's proposals are refused; the others' blocks are decided in
    // the rounds that proposed them, and node 3 commits them 6 s "late".
    wait_heights(&net.metrics, &[0, 1, 2, 3], 5, 120, &net.logs);
    node_3_warns(&net, "agora_block_lag_ms", "ahead of");
    // Negative control: the nodes whose clocks are right measure a lag of
    // a round's latency once their windows are full, and say nothing.
    wait_for("the others' lag windows to fill", 120, &net.logs, || {
        (0..3).all(|i| metric(net.metrics[i], "agora_block_lag_ms").is_some_and(|ms| ms > 0))
    });
    for i in 0..3 {
        let lag = metric(net.metrics[i], "agora_block_lag_ms");
        assert!(lag.is_some_and(|ms| ms < 1_000), "node {i}: lag {lag:?}");
        let log = std::fs::read_to_string(&net.logs[i]).unwrap_or_default();
        assert!(!log.contains("clock is ahead"), "node {i} warned");
        assert!(!log.contains("clock is behind"), "node {i} warned");
    }
    for child in nodes.0.iter_mut() {
        stop(child);
    }
}
