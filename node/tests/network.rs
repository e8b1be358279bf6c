//! Four real `agora` processes on loopback: they commit blocks together, one
//! is killed with SIGKILL and restarted and catches up, and afterwards every
//! node stores the same blocks and no evidence exists. A second run kills
//! validators at random moments many times over (seeded; `KILL_SEED` replays
//! a schedule). Byzantine peers (a double signer, a forging sync peer) are
//! in `byzantine.rs`.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agora_node::storage::Storage;
use support::net::*;

const N: usize = 4;
/// Heights the first test's four validators must commit.
const MIN_HEIGHTS: u64 = 100;

#[test]
fn four_validators_commit_survive_kill_and_agree() {
    let net = build(N, 0, |_, _| {});
    let (homes, logs, metrics) = (&net.homes, &net.logs, &net.metrics);
    let mut children = net.start_all();
    let all: Vec<usize> = (0..N).collect();
    wait_heights(metrics, &all, 10, 120, logs);
    // Throughput with four validators (debug build, shortened timeouts; informational).
    let (t0, h0) = (Instant::now(), height(metrics[0]).unwrap_or(0));
    wait_heights(metrics, &all, h0 + 20, 120, logs);
    let rate = (height(metrics[0]).unwrap_or(0) - h0) as f64 / t0.elapsed().as_secs_f64();
    eprintln!("4 validators: {rate:.1} heights/s");

    // SIGKILL one validator; the other three (3/4 > 2/3 of the power) go on.
    children[3].kill().unwrap();
    children[3].wait().unwrap();
    let h_kill = (0..3)
        .map(|i| height(metrics[i]).unwrap_or(0))
        .max()
        .unwrap();
    wait_heights(metrics, &[0, 1, 2], h_kill + 10, 120, logs);

    // Restart it: it resumes from its storage and catches up; all four then
    // go on together past height 100.
    children[3] = start(&homes[3], &logs[3]);
    let target = (0..3)
        .map(|i| height(metrics[i]).unwrap_or(0))
        .max()
        .unwrap()
        + 5;
    wait_heights(metrics, &all, target.max(MIN_HEIGHTS), 180, logs);

    for c in children.iter_mut() {
        stop(c);
    }
    assert_agree_without_evidence(homes, target.max(MIN_HEIGHTS));
}

/// The stored chains agree (see `support::net`) and nobody recorded
/// evidence: a restarted validator that signed twice would be caught by its
/// peers.
fn assert_agree_without_evidence(homes: &[PathBuf], at_least: u64) {
    assert_stored_chains_agree(homes, at_least);
    for (i, h) in homes.iter().enumerate() {
        let d = Storage::open(h.join("data/node.redb")).unwrap();
        let ev = d.evidence().unwrap();
        assert!(
            ev.is_empty(),
            "node {i} holds evidence of double signing: {ev:?}"
        );
    }
}

/// SIGKILL at random moments, many times: each round picks a validator,
/// lets it run for a random while (mid-height, mid-sync, or right after its
/// restart), kills it, and restarts it after a random pause. Only one
/// validator is down at a time, so the other three (3/4 of the power) keep
/// committing. Afterwards all four catch up, their stored chains agree and
/// no evidence exists: no restart ever made a validator sign twice.
#[test]
fn validators_killed_at_random_moments_never_double_sign() {
    use rand::{Rng, SeedableRng};
    const ROUNDS: usize = 12;
    let seed: u64 = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("kill schedule seed {seed} (KILL_SEED={seed} replays the schedule)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let net = build(N, 0, |_, _| {});
    let (homes, logs, metrics) = (&net.homes, &net.logs, &net.metrics);
    let mut children = net.start_all();
    let all: Vec<usize> = (0..N).collect();
    wait_heights(metrics, &all, 3, 120, logs);
    for round in 0..ROUNDS {
        let victim = rng.random_range(0..N);
        let others: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
        // A random moment: anywhere from at once to a few heights later.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1_500)));
        children[victim].kill().unwrap();
        children[victim].wait().unwrap();
        let h = others
            .iter()
            .map(|&i| height(metrics[i]).unwrap_or(0))
            .max()
            .unwrap_or(0);
        eprintln!("round {round}: killed v{victim} near height {h}");
        // The rest must go on without it.
        wait_heights(metrics, &others, h + 2, 120, logs);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1_000)));
        children[victim] = start(&homes[victim], &logs[victim]);
    }
    let tip = all
        .iter()
        .map(|&i| height(metrics[i]).unwrap_or(0))
        .max()
        .unwrap();
    wait_heights(metrics, &all, tip + 3, 120, logs);
    for c in children.iter_mut() {
        stop(c);
    }
    assert_agree_without_evidence(homes, tip + 3);
}
