//! A validator whose clock runs behind the chain's refuses every proposal
//! as from the future; it must say why (`runner/clock.rs`), not only
//! prevote nil until it is jailed. Real processes on loopback.

mod support;

use support::net::*;

/// Behind by more than the 2 s drift a proposal may have.
const OFFSET_MS: i64 = -6_000;

#[test]
fn a_validator_whose_clock_is_behind_says_so() {
    let net = build(4, 0, |i, cfg| {
        if i == 3 {
            let t = cfg
                .entry("testing")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = t {
                t.insert("clock_offset_ms".into(), toml::Value::Integer(OFFSET_MS));
            }
        }
    });
    let mut nodes = net.start_all();
    // The three others decide without it (three quarters of the power).
    wait_heights(&net.metrics, &[0, 1, 2], 5, 120, &net.logs);
    wait_for("node 3 to find its clock behind", 120, &net.logs, || {
        metric(net.metrics[3], "agora_clock_behind_ms").is_some_and(|ms| ms > 2_000)
    });
    let log = std::fs::read_to_string(&net.logs[3]).unwrap_or_default();
    assert!(
        log.contains("this machine's clock is behind the chain's"),
        "no warning in node 3's log"
    );
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
