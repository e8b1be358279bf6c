//! Deterministic simulation of the consensus core under network faults and
//! Byzantine validators (see `agora_tests::sim`).
//!
//! * `SIM_SEED=<seed>` replays one seed exactly.
//! * `SIM_SEEDS=<n>` runs seeds 0..n (default: a count sized for a debug
//!   `cargo test` within about two minutes).
//! * `SIM_THREADS=<k>` runs k seeds at a time (default: one per core).
//!
//! A failing seed is printed with its violations and the command that replays it.

use agora_tests::sim::{Report, Scenario, Sim, Violation};
use agora_validator::consensus::{ConsensusConfig, TestFault, TimeoutConfig};

const DEFAULT_SEEDS: u64 = 200;
const TARGET_HEIGHT: u64 = 4;

fn config(fault: TestFault) -> ConsensusConfig {
    ConsensusConfig {
        timeouts: TimeoutConfig {
            propose_base_ms: 400,
            propose_increment_ms: 200,
            prevote_base_ms: 200,
            prevote_increment_ms: 100,
            precommit_base_ms: 200,
            precommit_increment_ms: 100,
        },
        test_fault: fault,
        ..Default::default()
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("SIM_SEED") {
        let seed = s.trim().parse().expect("SIM_SEED must be an integer");
        return vec![seed];
    }
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .map(|s| s.trim().parse().expect("SIM_SEEDS must be an integer"))
        .unwrap_or(DEFAULT_SEEDS);
    (0..n).collect()
}

fn run(seed: u64, fault: TestFault) -> Report {
    // Every simulated validator checks the same signatures; on this thread
    // each distinct check is done once (same verdicts, less time).
    agora_validator::crypto::bls::enable_verify_memo();
    Sim::new(Scenario::generate(seed, TARGET_HEIGHT), config(fault)).run()
}

/// How many seeds run at once: `SIM_THREADS`, else one per core. Seeds are
/// independent and each is deterministic, so running them side by side
/// changes nothing but the wall time.
fn threads() -> usize {
    std::env::var("SIM_THREADS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1)
}

/// Runs one honest-majority seed, printing what a reviewer needs to replay a
/// failure. Returns the evidence count and whether the seed failed.
fn check_seed(seed: u64) -> (usize, bool) {
    let r = run(seed, TestFault::None);
    if std::env::var_os("SIM_VERBOSE").is_some() {
        let sc = Scenario::generate(seed, TARGET_HEIGHT);
        eprintln!(
            "seed {seed}: n={} byz={:?} end={}ms events={} height={} evidence={} violations={}",
            sc.powers.len(),
            sc.behaviours,
            r.end_time_ms,
            r.events,
            r.min_honest_height,
            r.evidence_count,
            r.violations.len()
        );
    }
    let failed = !r.violations.is_empty();
    if failed {
        // One eprintln per failure so parallel workers do not interleave lines.
        let mut msg = format!(
            "seed {seed} FAILED (replay: SIM_SEED={seed} cargo test -p agora-tests --test simulation): {:?}\n  scenario: {:?}",
            r.violations,
            Scenario::generate(seed, TARGET_HEIGHT)
        );
        for line in &r.final_states {
            msg.push_str("\n  ");
            msg.push_str(line);
        }
        eprintln!("{msg}");
    }
    (r.evidence_count, failed)
}

#[test]
fn simulation_honest_majority_is_safe_and_live() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let started = std::time::Instant::now();
    let seeds = seeds();
    let next = AtomicUsize::new(0);
    let evidence = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads().min(seeds.len()) {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&seed) = seeds.get(k) else { break };
                    if k > 0 && k.is_multiple_of(250) {
                        eprintln!("... {k} seeds started after {:.1?}", started.elapsed());
                    }
                    let (ev, bad) = check_seed(seed);
                    evidence.fetch_add(ev, Ordering::Relaxed);
                    if bad {
                        failed.lock().unwrap_or_else(|e| e.into_inner()).push(seed);
                    }
                }
            });
        }
    });
    let mut failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
    failed.sort_unstable();
    eprintln!(
        "{} seeds in {:.1?} on {} threads, {} evidence items from honest validators",
        seeds.len(),
        started.elapsed(),
        threads().min(seeds.len()),
        evidence.into_inner()
    );
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}

#[test]
fn same_seed_replays_exactly() {
    let a = run(7, TestFault::None);
    let b = run(7, TestFault::None);
    assert_eq!(
        (
            a.end_time_ms,
            a.events,
            a.min_honest_height,
            a.evidence_count
        ),
        (
            b.end_time_ms,
            b.events,
            b.min_honest_height,
            b.evidence_count
        )
    );
}

/// The negative control: with quorum lowered to half the power, the
/// simulator must find an agreement violation (two honest validators
/// deciding different blocks) within the default seeds.
#[test]
fn negative_control_half_quorum_is_caught() {
    let found = (0..DEFAULT_SEEDS).find_map(|seed| {
        let r = run(seed, TestFault::HalfQuorum);
        r.violations
            .iter()
            .any(|v| matches!(v, Violation::Agreement { .. }))
            .then_some((seed, r))
    });
    let (seed, r) = found.expect("a broken quorum rule must be caught by the default seeds");
    eprintln!(
        "negative control: seed {seed} violated safety: {:?}",
        r.violations
    );
}
