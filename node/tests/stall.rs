//! A chain that stops deciding is told in the log, with the voting power
//! each node can hear (`runner/stall.rs`); its end is told too. Real
//! processes on loopback.

mod support;

use support::net::*;

const WARNING: &str = "no block committed for";

fn log(net: &Net, i: usize) -> String {
    std::fs::read_to_string(&net.logs[i]).unwrap_or_default()
}

#[test]
fn a_stalled_chain_says_how_much_power_is_connected_and_when_it_resumes() {
    let net = build(4, 0, |_, cfg| {
        cfg["consensus"]["stall_warning_ms"] = toml::Value::Integer(4_000);
    });
    let mut nodes = net.start_all();
    wait_heights(&net.metrics, &[0, 1, 2, 3], 3, 120, &net.logs);
    // Negative control: a chain that decides warns of nothing.
    assert!(!log(&net, 0).contains(WARNING), "warned while committing");

    // Half the power gone: no quorum anywhere.
    stop(&mut nodes.0[2]);
    stop(&mut nodes.0[3]);
    wait_for("node 0's stall warning", 60, &net.logs, || {
        log(&net, 0).contains(WARNING)
    });
    let text = log(&net, 0);
    let line = text
        .lines()
        .find(|l| l.contains(WARNING))
        .unwrap_or_default();
    assert!(
        line.contains("hold 50.0% of the voting power") && line.contains("no quorum can form"),
        "{line}"
    );

    // One back: three quarters connected, the chain decides again.
    nodes.0[2] = start(&net.homes[2], &net.logs[2]);
    wait_for("node 0 to say the chain resumed", 120, &net.logs, || {
        log(&net, 0).contains("committing again after the stall")
    });
    for child in nodes.0.iter_mut() {
        stop(child);
    }
}
