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
#[path = "../../node/tests/support/net.rs"]
mod net;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agora_node::config::Config;
use agora_node::transport::close_code;
use agora_proto::v1 as pb;
use agora_tests::byzantine::{self, Report, Target};
use net::{Net, Nodes, build, height, metric, stop, wait_heights};

/// Undisturbed measurement before each attack.
const BASELINE: Duration = Duration::from_secs(3);
/// Default attack window.
const WINDOW: Duration = Duration::from_secs(4);
/// The ledger's share of the bound: the testnet's state (four validators,
/// their accounts) is a few KiB; this is an allowance, not a measurement.
const STATE_ALLOWANCE: u64 = 16 * 1024 * 1024;

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
        let target = Target::loopback(net.p2p[0], net.grpc[0], "net-test");
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
    let bound = agora_node::memory::worst_case(&tn.config, peers, STATE_ALLOWANCE).total();
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

// ---- the cases ----

fn false_height(tn: &Testnet) {
    let tip = tn.tip();
    // The node asks within a tick and gives up on the request after 5 s.
    let (m, charged) = delta(tn, &[&charges("false_height")], || {
        under_attack(
            tn,
            "false_height",
            Duration::from_secs(8),
            |t, d| async move { byzantine::false_height::run(&t, tip, d).await },
        )
    });
    assert!(
        m.report.received > 0,
        "the node never spoke to the attacker"
    );
    assert!(
        charged >= 1,
        "the false claim was never charged: {:?}",
        m.report
    );
}

fn unsolicited_sync_responses(tn: &Testnet) {
    let tip = tn.tip();
    let (m, banned) = delta(tn, &[&bans("unsolicited")], || {
        under_attack(
            tn,
            "unsolicited_sync_responses",
            WINDOW,
            |t, d| async move { byzantine::sync_responses::unsolicited(&t, tip, d, 20).await },
        )
    });
    assert!(
        banned >= 1,
        "never banned: {:?}\n{}",
        m.report,
        tn.charge_lines()
    );
    assert!(m.report.closed_with(close_code::MISBEHAVED) >= 1);
}

fn tampered_sync_responses(tn: &Testnet) {
    let tip = tn.tip();
    let reasons = [
        charges("bad_block"),
        charges("consensus"),
        charges("malformed"),
    ];
    let names: Vec<&str> = reasons.iter().map(String::as_str).collect();
    let (m, charged) = delta(tn, &names, || {
        under_attack(
            tn,
            "tampered_sync_responses",
            Duration::from_secs(6),
            |t, d| async move { byzantine::sync_responses::tampered(&t, tip, d).await },
        )
    });
    assert!(
        m.report.accepted >= 1,
        "the node never asked: {:?}",
        m.report
    );
    assert!(charged >= 1, "tampered answers not charged: {:?}", m.report);
}

fn fake_certificate_flood(tn: &Testnet) {
    let tip = tn.tip();
    let (m, stopped) = delta(tn, &[&bans("unsolicited"), &dropped("checks")], || {
        under_attack(tn, "fake_certificate_flood", WINDOW, |t, d| async move {
            byzantine::fake_certificates::run(&t, tip, 5_000, d, 10).await
        })
    });
    assert!(
        stopped >= 1,
        "neither banned nor over budget: {:?}",
        m.report
    );
}

fn block_request_flood(tn: &Testnet) {
    let (m, held_back) = delta(tn, &[&dropped("serve"), &dropped("outbound")], || {
        under_attack(tn, "block_request_flood", WINDOW, |t, d| async move {
            byzantine::request_flood::run(&t, d, 1_000).await
        })
    });
    assert!(held_back >= 1, "nothing was held back: {:?}", m.report);
}

fn bad_frames(tn: &Testnet, name: &str, frame: byzantine::frames::BadFrame) {
    let (m, banned) = delta(tn, &[&bans("frame")], || {
        under_attack(tn, name, Duration::from_secs(3), |t, d| async move {
            byzantine::frames::bad_frames(&t, frame, d, 10).await
        })
    });
    assert!(m.report.sent >= 1);
    assert_eq!(
        m.report.closed_with(close_code::MISBEHAVED) as u64,
        m.report.sent,
        "every bad frame closes its connection: {:?}",
        m.report
    );
    assert!(
        banned >= m.report.sent,
        "{banned} bans for {} bad frames",
        m.report.sent
    );
}

fn garbage_frames(tn: &Testnet) {
    bad_frames(tn, "garbage_frames", byzantine::frames::BadFrame::Garbage);
}

fn oversized_frames(tn: &Testnet) {
    bad_frames(
        tn,
        "oversized_frames",
        byzantine::frames::BadFrame::Oversized,
    );
}

fn truncated_frames(tn: &Testnet) {
    bad_frames(
        tn,
        "truncated_frames",
        byzantine::frames::BadFrame::Truncated,
    );
}

fn amplifying_frames(tn: &Testnet) {
    let (m, banned) = delta(tn, &[&bans("frame")], || {
        under_attack(tn, "amplifying_frames", WINDOW, |t, d| async move {
            byzantine::frames::amplifying_frames(&t, 4 << 20, d, 10).await
        })
    });
    assert!(banned >= 1, "never banned: {:?}", m.report);
    assert!(m.report.closed_with(close_code::MISBEHAVED) >= 1);
}

fn stream_flood(tn: &Testnet) {
    use agora_node::transport::{MAX_INBOUND_BYTES, MAX_UNI_STREAMS, RECEIVE_WINDOW};
    let m = under_attack(tn, "stream_flood", WINDOW, |t, d| async move {
        byzantine::frames::stream_flood(&t, 2 * MAX_UNI_STREAMS, d).await
    });
    // Flow control: what the node let through is what it reads at once
    // plus its connection window, not 4 MiB per stream.
    let allowed = MAX_INBOUND_BYTES as u64 + u64::from(RECEIVE_WINDOW);
    assert!(m.report.sent >= 1);
    assert!(
        m.report.bytes_written <= allowed,
        "{} bytes let through, flow control allows {allowed}",
        m.report.bytes_written
    );
    assert!(
        m.report.sent <= u64::from(MAX_UNI_STREAMS),
        "{} streams open at once",
        m.report.sent
    );
}

fn connection_exhaustion(tn: &Testnet) {
    let max_peers = tn.config.p2p.max_peers as u64;
    let (m, refused_slots) = delta(tn, &[&dropped("slots"), &dropped("handshakes")], || {
        under_attack(
            tn,
            "connection_exhaustion",
            Duration::from_secs(6),
            |t, d| async move { byzantine::connections::run(&t, max_peers + 40, 20, d).await },
        )
    });
    assert!(
        m.report.refused >= 1,
        "every connection taken: {:?}",
        m.report
    );
    assert!(refused_slots >= 1, "no refusal counted");
    assert!(
        m.report.connected < max_peers,
        "{} strangers in a table of {max_peers}",
        m.report.connected
    );
    // The configured validators kept their reserved slots throughout.
    assert_eq!(
        tn.m("agora_peers{kind=\"validator\"}"),
        3,
        "a validator lost its slot"
    );
    eprintln!("  peak peers {}", m.peak_peers);
}

fn consensus_flood(tn: &Testnet) {
    let (m, banned) = delta(tn, &[&bans("consensus")], || {
        under_attack(tn, "consensus_flood", WINDOW, |t, d| async move {
            byzantine::consensus_flood::run(&t, d, 200).await
        })
    });
    assert!(
        banned >= 1,
        "never banned: {:?}\n{}",
        m.report,
        tn.charge_lines()
    );
    assert!(m.report.closed_with(close_code::MISBEHAVED) >= 1);
}

fn evidence_flood(tn: &Testnet) {
    let victim = tn.validator_address(1);
    let (m, banned) = delta(tn, &[&bans("bad_evidence")], || {
        under_attack(tn, "evidence_flood", WINDOW, |t, d| async move {
            byzantine::evidence_flood::run(&t, &victim, d, 100).await
        })
    });
    assert!(
        banned >= 1,
        "never banned: {:?}\n{}",
        m.report,
        tn.charge_lines()
    );
    assert!(m.report.closed_with(close_code::MISBEHAVED) >= 1);
}

fn grpc_certificate_streams(tn: &Testnet) {
    let limit = tn.config.grpc.max_certificate_streams as u64;
    let (m, refusals) = delta(
        tn,
        &[
            &refused("certificate_streams"),
            &refused("connections_per_ip"),
        ],
        || {
            under_attack(tn, "grpc_certificate_streams", WINDOW, |t, d| async move {
                byzantine::grpc_flood::certificate_streams(&t, 40, 64, d).await
            })
        },
    );
    assert!(m.report.sent >= 2_000, "{:?}", m.report);
    assert!(
        m.report.accepted <= limit,
        "{} streams admitted, the limit is {limit}",
        m.report.accepted
    );
    assert!(refusals >= 1 && m.report.rejected >= 1, "{:?}", m.report);
}

fn grpc_submissions(tn: &Testnet) {
    let h = tn.tip();
    let victim = tn.validator_address(1);
    let m = under_attack(tn, "grpc_submissions", WINDOW, |t, d| {
        let victim = victim.clone();
        async move { byzantine::grpc_flood::submissions(&t, &victim, h, 64, d, 50).await }
    });
    assert!(m.report.sent >= 100, "{:?}", m.report);
    assert_eq!(m.report.accepted, 0, "a forged submission was taken");
    assert_eq!(m.report.rejected, m.report.sent, "{:?}", m.report);
}

type Case = (&'static str, fn(&Testnet));

const CASES: [Case; 15] = [
    ("false_height", false_height),
    ("unsolicited_sync_responses", unsolicited_sync_responses),
    ("tampered_sync_responses", tampered_sync_responses),
    ("fake_certificate_flood", fake_certificate_flood),
    ("block_request_flood", block_request_flood),
    ("garbage_frames", garbage_frames),
    ("oversized_frames", oversized_frames),
    ("truncated_frames", truncated_frames),
    ("amplifying_frames", amplifying_frames),
    ("stream_flood", stream_flood),
    ("connection_exhaustion", connection_exhaustion),
    ("consensus_flood", consensus_flood),
    ("evidence_flood", evidence_flood),
    ("grpc_certificate_streams", grpc_certificate_streams),
    ("grpc_submissions", grpc_submissions),
];

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

/// Freezes validators 2 and 3 (SIGSTOP) during a window: two of four
/// cannot commit, and the rate assertion must say so.
fn controls_rate_catches_a_stall(tn: &mut Testnet) {
    let undisturbed = tn.rate_over(BASELINE);
    let frozen: Vec<String> = [2, 3]
        .iter()
        .map(|i| tn.nodes[*i].id().to_string())
        .collect();
    for p in &frozen {
        signal(p, "STOP");
    }
    let stalled = tn.rate_over(WINDOW);
    for p in &frozen {
        signal(p, "CONT");
    }
    let caught = std::panic::catch_unwind(|| assert_rate("control", undisturbed, stalled));
    eprintln!(
        "[controls] undisturbed {undisturbed:.1} h/s, two validators frozen {stalled:.1} h/s"
    );
    assert!(caught.is_err(), "the rate assertion did not catch a stall");
    let h = tn.tip() + 2;
    wait_heights(&tn.net.metrics, &[0, 1, 2, 3], h, 60, tn.logs());
}

fn signal(pid: &str, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([&format!("-{sig}"), pid])
        .status()
        .expect("kill");
    assert!(st.success(), "kill -{sig} {pid}");
}

/// With bans switched off on node 0 (`testing.disable_bans`), the forged
/// vote flood is charged but never stopped: the case's assertion fails.
fn controls_stopped_catches_no_bans() -> bool {
    let tn = Testnet::start(|i, cfg| {
        if i == 0 {
            net::set_testing(cfg, "disable_bans");
        }
    });
    let caught = std::panic::catch_unwind(AssertUnwindSafe(|| consensus_flood(&tn)));
    let charged = tn.m(&charges("consensus"));
    eprintln!(
        "[controls] bans off: {charged} consensus charges, case failed: {}",
        caught.is_err()
    );
    finish(tn, &mut Vec::new());
    caught.is_err() && charged >= 4
}

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
