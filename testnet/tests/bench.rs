//! `agora-testnet bench` as a real process: a short run with load and a
//! catch-up writes a JSON result with commits, transactions and a measured
//! catch-up, and an SVG plot. The nodes run from the agora-testnet binary
//! itself (its hidden `start` subcommand), so this test needs no other build.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The whole bench (start, 3 s window, catch-up, stop) must end by then.
const DEADLINE: Duration = Duration::from_secs(240);
const CATCH_UP_BLOCKS: u64 = 10;

fn wait_with_deadline(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Runs one bench; `None` if its ports were taken.
fn bench(exe: &str, dir: &Path, base: u16) -> Option<(bool, String)> {
    let log = dir.with_extension("log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(exe)
        .args([
            "bench",
            "--duration",
            "3",
            "--validators",
            "4",
            "--tx-rate",
            "20",
        ])
        .args(["--catch-up-blocks", &CATCH_UP_BLOCKS.to_string()])
        .arg("--dir")
        .arg(dir)
        .args(["--base-port", &base.to_string()])
        .env("AGORA_BIN", exe)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let status = match wait_with_deadline(&mut child, Instant::now() + DEADLINE) {
        Some(st) => st,
        None => {
            // SIGTERM lets the bench stop its nodes before it exits.
            let _ = Command::new("kill")
                .args(["-s", "TERM", &child.id().to_string()])
                .status();
            let _ = wait_with_deadline(&mut child, Instant::now() + Duration::from_secs(20));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "bench did not finish within {DEADLINE:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if !status.success() && text.contains("in use") {
        return None;
    }
    Some((status.success(), text))
}

#[test]
fn bench_writes_result_and_plot() {
    let exe = env!("CARGO_BIN_EXE_agora-testnet");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bench");
    // Ports 61000-64000: above the ephemeral range and apart from the other
    // tests' (tests/tests/testnet.rs uses 30000-60000).
    let seed = std::process::id() as u16;
    let mut ran = None;
    for attempt in 0..5u16 {
        let base = 61_000 + ((seed.wrapping_add(attempt * 37)) % 300) * 10;
        if let Some(r) = bench(exe, &dir, base) {
            ran = Some(r);
            break;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (ok, log) = ran.expect("no free base port found");
    assert!(ok, "bench failed:\n{log}");

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bench.json")).unwrap()).unwrap();
    let f = |k: &str| {
        json[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} in {json:#}"))
    };
    assert!(f("heights_per_s") > 0.0, "{json:#}");
    assert!(json["txs_committed"].as_u64().unwrap() > 0, "{json:#}");
    assert!(json["accepted"].as_u64().unwrap() > 0, "{json:#}");
    // Every accepted transfer committed, each with its own submit-to-commit latency.
    assert_eq!(json["committed"], json["accepted"], "{json:#}");
    assert_eq!(json["unseen"]["count"], 0, "{json:#}");
    assert!(
        json["tx_latency_ms_p50"].as_f64().unwrap() > 0.0,
        "{json:#}"
    );
    assert!(
        json["tx_latency_ms_p99"].as_f64().unwrap() >= json["tx_latency_ms_p50"].as_f64().unwrap()
    );
    // Admission comes before the commit, transaction by transaction.
    let accept_p50 = json["accept_latency_ms_p50"].as_f64().unwrap();
    assert!(accept_p50 > 0.0, "{json:#}");
    assert!(
        accept_p50 <= json["tx_latency_ms_p50"].as_f64().unwrap(),
        "{json:#}"
    );
    assert_eq!(json["rejected"], 0, "{json:#}");
    assert!(
        json["latency_ms"]["p50"].as_f64().unwrap() > 0.0,
        "{json:#}"
    );
    assert_eq!(json["cpu"]["per_node_percent"].as_array().unwrap().len(), 4);
    assert!(json["cpu"]["ms_per_validator_height"].as_f64().unwrap() > 0.0);
    // Every timed query answered (a failure would drop a sample).
    for q in ["get_status_ms", "get_commit_certificate_ms"] {
        assert_eq!(
            json["query_latency"][q]["samples"].as_u64(),
            Some(300),
            "{json:#}"
        );
    }
    let cu = &json["catch_up"];
    assert!(
        cu["blocks"].as_u64().unwrap_or(0) >= CATCH_UP_BLOCKS,
        "catch-up: {cu:#} ({})",
        json["catch_up_note"]
    );
    assert!(cu["blocks_per_s"].as_f64().unwrap() > 0.0);
    assert!(!json["series"].as_array().unwrap().is_empty());

    let svg = std::fs::read_to_string(dir.join("bench.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 4);

    // Every node was stopped: the manifest lists no pid.
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("testnet.json")).unwrap()).unwrap();
    for n in m["nodes"].as_array().unwrap() {
        assert!(n["pid"].is_null(), "{n}");
    }
}
