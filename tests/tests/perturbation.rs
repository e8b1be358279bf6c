//! A four-validator testnet of real processes under perturbation: after each
//! fault the other validators keep committing (they hold 3/4 of the power),
//! and once the fault ends liveness is restored: the disturbed validator
//! catches up and commits with the others again, and its chain passes
//! `agora audit`.
//!
//! * SIGKILL, then a restart from the same home;
//! * SIGSTOP for 10 seconds, then SIGCONT;
//! * one validator cut off from the others (every datagram dropped by UDP
//!   relays on its links) for longer than the QUIC idle timeout, then healed.
//!
//! The tests take turns (one testnet at a time) so that a 2-core machine
//! is not asked to run twelve debug-build nodes at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use agora_tests::harness::{Testnet, signal};
use agora_tests::udp_relay::Relay;

const VALIDATORS: usize = 4;
/// How long any one wait for heights may take.
const DEADLINE: Duration = Duration::from_secs(90);
/// The QUIC idle timeout is 10 s: a longer cut closes the connections, so
/// healing exercises reconnection, not just retransmission.
const CUT: Duration = Duration::from_secs(12);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn others(victim: usize) -> Vec<usize> {
    (0..VALIDATORS).filter(|&i| i != victim).collect()
}

/// The three others advance at least `by` heights past the current tip
/// while the victim is out; returns the height they reached.
fn others_advance(net: &Testnet, victim: usize, by: u64) -> u64 {
    let target = net.tip() + by;
    net.wait_heights(&others(victim), target, DEADLINE);
    target
}

/// Liveness restored: every validator, the victim included, reaches a
/// height beyond what the others had reached, and the victim's chain audits.
fn all_commit_again(net: &Testnet, victim: usize, past: u64) {
    let all: Vec<usize> = (0..VALIDATORS).collect();
    net.wait_heights(&all, past + 3, DEADLINE);
    assert!(net.audit(victim), "the victim's chain fails the audit");
}

fn start(dir: &std::path::Path) -> Testnet {
    let net = Testnet::up(dir, VALIDATORS, &[]);
    let all: Vec<usize> = (0..VALIDATORS).collect();
    net.wait_heights(&all, 3, DEADLINE);
    net
}

#[test]
fn sigkill_then_restart_restores_liveness() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut net = start(&tmp.path().join("net"));
    let victim = 1;
    signal(net.pid(victim), "KILL");
    let reached = others_advance(&net, victim, 5);
    net.restart(victim);
    all_commit_again(&net, victim, reached);
    assert!(net.down().status.success());
}

#[test]
fn sigstop_for_ten_seconds_then_sigcont_restores_liveness() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut net = start(&tmp.path().join("net"));
    let victim = 2;
    let pid = net.pid(victim);
    signal(pid, "STOP");
    let stopped_at = Instant::now();
    let reached = others_advance(&net, victim, 3);
    // The frozen validator answers nothing, not even its gRPC port.
    assert_eq!(net.heights()[victim], None, "a stopped node answered");
    // The fault lasts 10 s by definition; this wait is its duration, not a
    // synchronisation.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(stopped_at.elapsed()));
    let reached = reached.max(net.tip());
    signal(pid, "CONT");
    all_commit_again(&net, victim, reached);
    assert!(net.down().status.success());
}

#[test]
fn validator_cut_off_from_the_others_rejoins_after_the_cut_heals() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut net = start(&tmp.path().join("net"));
    let victim = 3;
    // Route every link of the victim through relays: stop it, move its
    // endpoint to a fresh port behind a relay that takes over its old
    // address (which the others dial), and point its own peer list at
    // relays in front of the others.
    signal(net.pid(victim), "TERM");
    let deadline = Instant::now() + DEADLINE;
    while agora_tests::harness::alive(net.pid(victim)) {
        assert!(Instant::now() < deadline, "the victim did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let old = net.p2p(victim);
    let moved = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let mut relays = vec![Relay::start(old, moved).expect("relay on the victim's old address")];
    let mut peers = Vec::new();
    for j in others(victim) {
        let r = Relay::start("127.0.0.1:0".parse().unwrap(), net.p2p(j)).unwrap();
        peers.push(toml::Value::String(r.front().to_string()));
        relays.push(r);
    }
    let cfg_path = net.home(victim).join("config.toml");
    let mut cfg: toml::Table =
        toml::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["p2p"]["listen"] = toml::Value::String(moved.to_string());
    cfg["p2p"]["peers"] = toml::Value::Array(peers);
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
    net.restart(victim);
    // Through the relays it is a full member again.
    let tip = net.tip();
    net.wait_heights(&[0, 1, 2, 3], tip + 2, DEADLINE);

    // Cut.
    for r in &relays {
        r.set_blocked(true);
    }
    let cut_at = Instant::now();
    let h_cut = net.heights()[victim].unwrap_or(0);
    let reached = others_advance(&net, victim, 5);
    // The fault's duration, not a synchronisation: outlast the idle timeout.
    std::thread::sleep(CUT.saturating_sub(cut_at.elapsed()));
    let reached = reached.max(net.tip());
    let h_victim = net.heights()[victim].unwrap_or(0);
    // It may finish the height it was in when the cut came, no more.
    assert!(
        h_victim <= h_cut + 1,
        "a cut-off validator went from {h_cut} to {h_victim}: the cut leaks"
    );

    // Heal.
    for r in &relays {
        r.set_blocked(false);
    }
    all_commit_again(&net, victim, reached);
    assert!(net.down().status.success());
    drop(relays);
}
