//! The metrics of real `agora` processes: while two validators commit,
//! each one's four step histograms (propose, prevote, precommit, commit)
//! and its rounds-per-height histogram get samples, and its peers are
//! counted by kind; a full node started late catches up by block sync
//! and counts the synced certificates it verified.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::net::{build, log_tails, start, wait_for, wait_heights};

/// Every sample line of node `port`'s `/metrics`, as `(series, value)`.
fn scrape(port: u16) -> Vec<(String, f64)> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

fn get(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(k, _)| k == series)
        .map_or(0.0, |(_, v)| *v)
}

fn step_count(step: &str) -> String {
    format!("agora_step_duration_seconds_count{{step=\"{step}\"}}")
}

#[test]
fn committing_nodes_time_every_step_and_count_rounds_peers_and_certificates() {
    // Two validators of equal power: each needs the other's votes, so every
    // step is left on a message from the other process, not within one input.
    let net = build(2, 1, |_, _| {});
    let (logs, ports) = (&net.logs, &net.metrics);
    let mut nodes = support::net::Nodes(vec![
        start(&net.homes[0], &logs[0]),
        start(&net.homes[1], &logs[1]),
    ]);
    wait_heights(ports, &[0, 1], 6, 60, logs);
    for (i, port) in ports.iter().enumerate().take(2) {
        let s = scrape(*port);
        let height = get(&s, "agora_height");
        for step in ["propose", "prevote", "precommit", "commit"] {
            assert!(
                get(&s, &step_count(step)) >= 3.0,
                "node {i} at height {height}: {step} has {} samples",
                get(&s, &step_count(step))
            );
        }
        // Time was measured, not only counted: the prevote step waits for
        // the other validator's prevote to arrive over QUIC.
        assert!(get(&s, "agora_step_duration_seconds_sum{step=\"prevote\"}") > 0.0);
        // Each committed height is counted once (all in round 0 here: the
        // first bucket holds them all). A scrape is not a snapshot: the
        // histogram is rendered after `agora_height`, so a commit between
        // the two reads shows one more sample than the height read first.
        // The node sets the height before it counts the rounds, so the
        // height of a later scrape bounds the count exactly.
        let rounds = get(&s, "agora_height_rounds_count");
        let height_after = get(&scrape(*port), "agora_height");
        assert!(
            rounds >= 6.0 && rounds <= height_after,
            "{rounds} rounds samples at {height} (then {height_after})"
        );
        assert!(get(&s, "agora_height_rounds_bucket{le=\"+Inf\"}") == rounds);
        // The vote sets of the height being decided are counted: at most
        // two validators × two types in each round up to the next one.
        wait_for("the stored votes are counted", 20, logs, || {
            let now = scrape(*port);
            let votes = get(&now, "agora_consensus_votes_stored");
            let rounds = get(&now, "agora_round") + 2.0;
            assert!(votes <= 4.0 * rounds, "node {i} holds {votes} votes");
            votes >= 1.0
        });
        assert_eq!(get(&s, "agora_peers{kind=\"validator\"}"), 1.0, "node {i}");
        assert_eq!(get(&s, "agora_peers{kind=\"full\"}"), 0.0, "node {i}");
    }

    // A full node joining now fetches the blocks by sync and verifies the
    // certificate of each one it applies.
    nodes.push(start(&net.homes[2], &logs[2]));
    let tip = support::net::max_height(ports, &[0, 1]);
    wait_heights(ports, &[2], tip, 60, logs);
    let synced = "agora_certificates_verified_total{source=\"synced\"}";
    let full = scrape(ports[2]);
    assert!(
        get(&full, synced) >= 1.0,
        "the full node verified {} synced certificates reaching {tip}\n{}",
        get(&full, synced),
        log_tails(logs, 20)
    );
    assert_eq!(get(&full, "agora_peers{kind=\"validator\"}"), 2.0);
    wait_for(
        "validators count the full node as a full peer",
        20,
        logs,
        || (0..2).all(|i| get(&scrape(ports[i]), "agora_peers{kind=\"full\"}") == 1.0),
    );
}
