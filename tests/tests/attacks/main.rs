//! Every attack of the Byzantine peer (`agora_tests::byzantine`) against a
//! real 4-validator testnet on loopback (real `agora` processes, QUIC,
//! redb), one case per attack. Each case, against node 0:
//!
//! 1. measures node 0's undisturbed commit rate over [`BASELINE`];
//! 2. runs the attack for its window, meanwhile sampling node 0's RSS
//!    (`VmRSS` of `/proc/<pid>/status`) and its peer count, and measuring
//!    its commit rate;
//! 3. asserts the rate under attack is at least half the undisturbed one,
//!    the peak RSS is under `agora_node::memory::worst_case` for the most
//!    peers node 0 had, and the attacker was disconnected, refused or
//!    throttled (node 0's metrics and what the attacker saw);
//! 4. waits until every node passed the last height committed under
//!    attack and checks that all four hold the same block there.
//!
//! After the last case every node stops and their stored chains are
//! compared block for block from genesis (bodies, so app hashes, included).
//!
//! The cases share one testnet: starting one takes longer than most
//! attacks, and every attack is measured against a baseline taken just
//! before it, so an earlier attack cannot make a later one look better.
//! This target has its own `main` (`harness = false`): each case is run and
//! reported on its own, a failing case does not hide the others, and the
//! processes are always stopped. `cargo test -p agora-tests --test attacks
//! -- frames` runs the cases whose names contain `frames`.
//!
//! Negative controls (`controls_*`): the rate assertion fails when two
//! of the four validators are frozen (SIGSTOP) during a window, and the
//! assertion "the attacker was stopped" fails for the forged-vote flood
//! when the node's bans are switched off (`testing.disable_bans`).
//!
//! Needs the `agora` binary of the same profile: `cargo test --workspace`
//! builds it, or `cargo build -p agora-node --bin agora` first.

#[allow(dead_code)]
#[path = "../../../node/tests/support/net.rs"]
mod net;

mod cases;
mod controls;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agora_node::config::Config;
use agora_node::transport::close_code;
use agora_proto::v1 as pb;
use agora_tests::byzantine::{self, Report, Target};
use cases::{CASES, Case};
use controls::{controls_rate_catches_a_stall, controls_stopped_catches_no_bans};
use net::{Net, Nodes, build, height, metric, stop, wait_heights};

/// Undisturbed measurement before each attack.
const BASELINE: Duration = Duration::from_secs(3);
/// Default attack window.
const WINDOW: Duration = Duration::from_secs(4);
/// The ledger's share of the bound: the testnet's state (four validators,
/// their accounts) is a few KiB; this is an allowance, not a measurement.
const STATE_ALLOWANCE: u64 = 16 * 1024 * 1024;
/// Rounds a height may pass during an attack: the attacks do not hold
/// heights back (`assert_rate` checks the rate stays at least half), so a
/// few at most.
const ROUNDS_ALLOWANCE: u64 = 4;

/// The testnet under attack; node 0 is the target.
struct Testnet {
    net: Net,
    nodes: Nodes,
    target: Target,
    config: Config,
    rt: tokio::runtime::Runtime,
}

impl Testnet {
    fn start(tweak: impl Fn(usize, &mut toml::Table)) -> Self {
        let net = build(4, 0, tweak);
        let nodes = net.start_all();
        wait_heights(&net.metrics, &[0, 1, 2, 3], 3, 120, &net.logs);
        let config = Config::load(&net.homes[0].join("config.toml")).expect("node 0's config");
        let target = Target::loopback(
            net.p2p[0],
            net.grpc[0],
            "net-test",
            &net.homes[0].join("genesis.json"),
        );
        let rt = Target::attacker_runtime();
        Self {
            net,
            nodes,
            target,
            config,
            rt,
        }
    }

    fn pid(&self) -> u32 {
        self.nodes[0].id()
    }

    fn m(&self, name: &str) -> u64 {
        metric(self.net.metrics[0], name).unwrap_or(0)
    }

    fn tip(&self) -> u64 {
        height(self.net.metrics[0]).unwrap_or(0)
    }

    /// Node 0's commit rate over `d`, in heights per second.
    fn rate_over(&self, d: Duration) -> f64 {
        let (h0, t0) = (self.tip(), Instant::now());
        std::thread::sleep(d);
        (self.tip().saturating_sub(h0)) as f64 / t0.elapsed().as_secs_f64()
    }

    /// The address of validator `i` (for evidence in its name).
    fn validator_address(&self, i: usize) -> Vec<u8> {
        let k = agora_node::keys::load(&self.net.homes[i].join("keys/validator.key"))
            .expect("validator key");
        agora_validator::Address::of(&k.public_key()).0.to_vec()
    }

    fn logs(&self) -> &[PathBuf] {
        &self.net.logs
    }

    /// The last charge and ban lines of node 0's log, for failure messages.
    fn charge_lines(&self) -> String {
        let log = std::fs::read_to_string(&self.net.logs[0]).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("peer charged") || l.contains("peer banned"))
            .collect();
        lines[lines.len().saturating_sub(6)..].join("\n")
    }
}

/// What one attack did to node 0.
#[derive(Debug)]
struct Measured {
    undisturbed: f64,
    under_attack: f64,
    peak_rss: u64,
    peak_peers: u64,
    bound: u64,
    report: Report,
    last_height: u64,
}

/// VmRSS of a process, in bytes.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Runs `attack` (given the target and its deadline) for `window` and
/// measures node 0 meanwhile; asserts rate, RSS and agreement, returns
/// the measurements for the case's own assertions.
fn under_attack<F, Fut>(tn: &Testnet, name: &str, window: Duration, attack: F) -> Measured
where
    F: FnOnce(Target, tokio::time::Instant) -> Fut,
    Fut: std::future::Future<Output = Result<Report, byzantine::AttackError>>,
{
    let undisturbed = tn.rate_over(BASELINE);
    assert!(
        undisturbed > 0.0,
        "{name}: the chain does not commit at all"
    );
    let done = Arc::new(AtomicBool::new(false));
    let (pid, metrics_port) = (tn.pid(), tn.net.metrics[0]);
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut peak_rss, mut peak_peers) = (0u64, 0u64);
            while !done.load(Ordering::Relaxed) {
                peak_rss = peak_rss.max(rss(pid).unwrap_or(0));
                let peers: u64 = ["validator", "full"]
                    .map(|k| metric(metrics_port, &format!("agora_peers{{kind=\"{k}\"}}")))
                    .into_iter()
                    .map(|p| p.unwrap_or(0))
                    .sum();
                peak_peers = peak_peers.max(peers);
                std::thread::sleep(Duration::from_millis(100));
            }
            (peak_rss, peak_peers)
        })
    };
    let (h0, t0) = (tn.tip(), Instant::now());
    let deadline = tokio::time::Instant::now() + window;
    let report = tn
        .rt
        .block_on(attack(tn.target.clone(), deadline))
        .unwrap_or_else(|e| panic!("{name}: the attacker failed: {e}"));
    let (h1, elapsed) = (tn.tip(), t0.elapsed());
    done.store(true, Ordering::Relaxed);
    let (peak_rss, peak_peers) = sampler.join().expect("sampler");
    let under_attack = h1.saturating_sub(h0) as f64 / elapsed.as_secs_f64();
    // At least the validators and one attacker connection.
    let peers = peak_peers.max(4);
    let chain = agora_node::memory::ChainAllowance {
        state_bytes: STATE_ALLOWANCE,
        validators: 4,
        rounds_passed: ROUNDS_ALLOWANCE,
    };
    let bound = agora_node::memory::worst_case(&tn.config, peers, &chain).total();
    let m = Measured {
        undisturbed,
        under_attack,
        peak_rss,
        peak_peers,
        bound,
        report,
        last_height: h1,
    };
    eprintln!(
        "[{name}] undisturbed {:.1} h/s, under attack {:.1} h/s, peak RSS {} MiB (bound {} MiB for {} peers), attacker: {:?}",
        m.undisturbed,
        m.under_attack,
        m.peak_rss >> 20,
        m.bound >> 20,
        peers,
        m.report
    );
    assert_rate(name, m.undisturbed, m.under_attack);
    assert!(m.peak_rss > 0, "{name}: RSS of node 0 not sampled");
    assert!(
        m.peak_rss < m.bound,
        "{name}: peak RSS {} B over the worst-case bound {} B",
        m.peak_rss,
        m.bound
    );
    assert_agree_at(tn, name, m.last_height);
    m
}

/// The chain must commit at no less than half its undisturbed rate.
fn assert_rate(name: &str, undisturbed: f64, under_attack: f64) {
    assert!(
        under_attack >= undisturbed / 2.0,
        "{name}: {under_attack:.2} heights/s under attack, under half of the undisturbed {undisturbed:.2}"
    );
}

/// Every node reaches `h` and holds the same block there (header, so the
/// app hash, and body), read over gRPC.
fn assert_agree_at(tn: &Testnet, name: &str, h: u64) {
    wait_heights(&tn.net.metrics, &[0, 1, 2, 3], h, 60, tn.logs());
    let blocks: Vec<pb::Block> = tn.rt.block_on(async {
        let mut out = Vec::new();
        for port in &tn.net.grpc {
            let ch = agora_node::client::connect(&format!("127.0.0.1:{port}"))
                .await
                .expect("gRPC");
            let b = pb::query_client::QueryClient::new(ch)
                .get_block(pb::GetBlockRequest { height: h })
                .await
                .expect("GetBlock")
                .into_inner()
                .block
                .expect("block");
            out.push(b);
        }
        out
    });
    for (i, b) in blocks.iter().enumerate() {
        assert_eq!(b, &blocks[0], "{name}: node {i} holds another block at {h}");
    }
}

/// Growth of the sum of some counters of node 0 across `f` (printed).
fn delta(tn: &Testnet, names: &[&str], f: impl FnOnce() -> Measured) -> (Measured, u64) {
    let sum = |tn: &Testnet| names.iter().map(|n| tn.m(n)).sum::<u64>();
    let before = sum(tn);
    let m = f();
    let d = sum(tn) - before;
    eprintln!("  node 0: {} +{d}", names.join(" + "));
    (m, d)
}

fn charges(reason: &str) -> String {
    format!("agora_peer_charges_total{{reason=\"{reason}\"}}")
}
fn bans(reason: &str) -> String {
    format!("agora_peer_bans_total{{reason=\"{reason}\"}}")
}
fn dropped(kind: &str) -> String {
    format!("agora_budget_dropped_total{{kind=\"{kind}\"}}")
}
fn refused(reason: &str) -> String {
    format!("agora_grpc_refused_total{{reason=\"{reason}\"}}")
}

/// Runs each selected case, catching its panic so the others still run.
fn run_cases(tn: &Testnet, cases: &[Case], failed: &mut Vec<String>) {
    for (name, case) in cases {
        let t0 = Instant::now();
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| case(tn)));
        let verdict = if r.is_ok() { "ok" } else { "FAILED" };
        eprintln!(
            "case {name} ... {verdict} ({:.1} s)",
            t0.elapsed().as_secs_f64()
        );
        if r.is_err() {
            failed.push((*name).to_string());
        }
    }
}

// ---- negative controls ----
/// Stops every node and compares their stored chains from genesis.
fn finish(mut tn: Testnet, failed: &mut Vec<String>) {
    let h = tn.tip();
    for c in tn.nodes.iter_mut() {
        stop(c);
    }
    let homes = tn.net.homes.clone();
    let r = std::panic::catch_unwind(move || net::assert_stored_chains_agree(&homes, h.min(3)));
    match r {
        Ok(common) => eprintln!("stored chains agree up to height {common}"),
        Err(_) => failed.push("stored chains agree".into()),
    }
}

/// The negative controls' names (for filters and `--list`).
const CONTROL_RATE: &str = "controls_rate_catches_a_stall";
const CONTROL_BANS: &str = "controls_disabled_bans_fail_the_flood_case";

fn main() {
    // Cases catch their panics; a message is enough, backtraces of
    // expected failures (the controls) would bury the report.
    std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    // Arguments that are not flags filter the cases by name, like libtest;
    // libtest's flags are accepted (and their values skipped).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for name in CASES
            .iter()
            .map(|(n, _)| *n)
            .chain([CONTROL_RATE, CONTROL_BANS])
        {
            println!("{name}: test");
        }
        return;
    }
    if args.iter().any(|a| a == "--ignored") {
        return; // nothing here is ignored
    }
    let takes_value = [
        "--test-threads",
        "--skip",
        "--color",
        "--format",
        "--logfile",
        "-Z",
    ];
    let mut filters = Vec::new();
    let mut skip_next = false;
    for a in args {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        if a.starts_with('-') {
            skip_next = takes_value.contains(&a.as_str());
        } else {
            filters.push(a);
        }
    }
    let selected =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let cases: Vec<Case> = CASES.iter().copied().filter(|(n, _)| selected(n)).collect();
    let t0 = Instant::now();
    let mut failed = Vec::new();
    if !cases.is_empty() || selected(CONTROL_RATE) {
        let mut tn = Testnet::start(|_, _| {});
        run_cases(&tn, &cases, &mut failed);
        if selected(CONTROL_RATE) {
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                controls_rate_catches_a_stall(&mut tn)
            }));
            if r.is_err() {
                failed.push(CONTROL_RATE.into());
            }
        }
        finish(tn, &mut failed);
    }
    if selected(CONTROL_BANS) && !controls_stopped_catches_no_bans() {
        failed.push(CONTROL_BANS.into());
    }
    eprintln!("attacks: {:.1} s", t0.elapsed().as_secs_f64());
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}
