//! `agora-testnet up --detach` as a real process: four `agora` validators
//! commit past height 10, `agora audit` verifies one node's chain from
//! genesis, and `agora-testnet down` stops every process.
//!
//! The binaries are taken from the target directory this test runs from
//! (`target/<profile>/agora` and `agora-testnet`); `cargo test --workspace`
//! builds them, `cargo test -p agora-tests` alone may not (see the message).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use rand::Rng;

const VALIDATORS: usize = 4;
const TARGET_HEIGHT: u64 = 10;
const DEADLINE: Duration = Duration::from_secs(45);

fn bin_dir() -> PathBuf {
    // target/<profile>/deps/testnet-<hash> -> target/<profile>
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps")
        .to_path_buf()
}

fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the binaries first with `cargo build -p agora-node -p agora-testnet` (same profile and CARGO_TARGET_DIR), or run `cargo test --workspace`",
        p.display()
    );
    p
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("running a binary");
    eprintln!(
        "$ {cmd:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn alive(pid: u64) -> bool {
    // Gone, or a zombie nobody has reaped yet (the node exited).
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
        Err(_) => false,
    }
}

/// Runs `agora-testnet down` if the test ends early, so no node outlives it.
struct Down<'a> {
    testnet: &'a Path,
    dir: &'a Path,
    armed: bool,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = Command::new(self.testnet)
                .arg("down")
                .arg("--dir")
                .arg(self.dir)
                .output();
        }
    }
}

fn log_tails(manifest: &serde_json::Value) -> String {
    manifest["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let t =
                std::fs::read_to_string(n["log"].as_str().unwrap_or_default()).unwrap_or_default();
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(10)..].join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n-----\n")
}

async fn heights(endpoints: &[String]) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for e in endpoints {
        let h = async {
            let ch = tonic::transport::Endpoint::from_shared(format!("http://{e}"))
                .ok()?
                .connect_timeout(Duration::from_secs(1))
                .timeout(Duration::from_secs(1))
                .connect()
                .await
                .ok()?;
            let s = QueryClient::new(ch)
                .get_status(pb::GetStatusRequest {})
                .await
                .ok()?;
            Some(s.into_inner().latest_height)
        }
        .await;
        out.push(h);
    }
    out
}

#[test]
fn testnet_up_commits_audits_and_goes_down() {
    let testnet = bin("agora-testnet");
    let agora = bin("agora");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");

    // A random high base port; retried if the ports happen to be taken.
    let mut started = false;
    for _ in 0..5 {
        let base: u16 = rand::rng().random_range(3_000..6_000) * 10;
        let out = run(Command::new(&testnet)
            .args(["up", "--detach", "--validators"])
            .arg(VALIDATORS.to_string())
            .arg("--dir")
            .arg(&dir)
            .arg("--base-port")
            .arg(base.to_string())
            .env("AGORA_BIN", &agora));
        if out.status.success() {
            started = true;
            break;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("in use"), "agora-testnet up failed: {err}");
    }
    assert!(started, "no free base port found");
    let mut guard = Down {
        testnet: &testnet,
        dir: &dir,
        armed: true,
    };

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("testnet.json")).unwrap()).unwrap();
    let nodes = manifest["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), VALIDATORS);
    let endpoints: Vec<String> = nodes
        .iter()
        .map(|n| n["grpc"].as_str().unwrap().to_string())
        .collect();
    let pids: Vec<u64> = nodes.iter().map(|n| n["pid"].as_u64().unwrap()).collect();
    assert!(pids.iter().all(|p| alive(*p)), "a node died at start");
    // Every home holds the same genesis as DIR/genesis.json.
    let genesis = std::fs::read(dir.join("genesis.json")).unwrap();
    for n in nodes {
        let home = PathBuf::from(n["home"].as_str().unwrap());
        assert_eq!(std::fs::read(home.join("genesis.json")).unwrap(), genesis);
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let hs = rt.block_on(heights(&endpoints));
        if hs.iter().all(|h| h.is_some_and(|h| h > TARGET_HEIGHT)) {
            eprintln!(
                "all nodes past height {TARGET_HEIGHT} after {:?}: {hs:?}",
                t0.elapsed()
            );
            break;
        }
        assert!(
            t0.elapsed() < DEADLINE,
            "heights {hs:?} after {DEADLINE:?}, wanted > {TARGET_HEIGHT}\n{}",
            log_tails(&manifest)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let status = run(Command::new(&testnet).arg("status").arg("--dir").arg(&dir));
    assert!(status.status.success(), "status reports a node down");

    let audit = run(Command::new(&agora)
        .args(["audit", "--node", &endpoints[0], "--genesis"])
        .arg(dir.join("genesis.json")));
    assert!(audit.status.success(), "agora audit failed");
    assert!(String::from_utf8_lossy(&audit.stdout).starts_with("OK"));

    let down = run(Command::new(&testnet).arg("down").arg("--dir").arg(&dir));
    assert!(down.status.success(), "agora-testnet down failed");
    guard.armed = false;
    let still: Vec<u64> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(
        still.is_empty(),
        "processes still running after down: {still:?}"
    );
    assert!(rt.block_on(heights(&endpoints)).iter().all(Option::is_none));
}
