//! Real-process plumbing shared by the multi-process test targets: finding
//! the built binaries, starting a testnet with `agora-testnet up --detach`
//! (and always stopping it), reading node heights over gRPC, and waiting for
//! a condition with a deadline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;

/// The directory holding the binaries of the profile the test was built
/// with: `target/<profile>/deps/<test>-<hash>` → `target/<profile>`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// A workspace binary of the same profile; panics with the command that
/// builds it if it is missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the binaries first with `cargo build -p agora-node -p agora-testnet` (same profile and CARGO_TARGET_DIR), or run `cargo test --workspace`",
        p.display()
    );
    p
}

/// Runs a command to completion, echoing its output into the test's log.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("running a binary");
    eprintln!(
        "$ {cmd:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether `pid` runs (a zombie nobody reaped yet counts as gone).
pub fn alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
        Err(_) => false,
    }
}

/// Sends a signal by name (`KILL`, `STOP`, `CONT`, `TERM`) with kill(1).
pub fn signal(pid: u64, name: &str) {
    let st = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(st.success(), "kill -s {name} {pid} failed");
}

/// Latest committed height of each gRPC endpoint (`None`: no answer
/// within a second).
pub async fn heights(endpoints: &[String]) -> Vec<Option<u64>> {
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

/// A testnet started by `agora-testnet up --detach`. Dropping it runs
/// `agora-testnet down` and reaps the nodes the test restarted itself, so
/// no process outlives a failing test.
pub struct Testnet {
    /// The testnet directory (homes, logs, testnet.json).
    pub dir: PathBuf,
    /// The `agora-testnet` binary.
    pub testnet_bin: PathBuf,
    /// The `agora` binary.
    pub agora_bin: PathBuf,
    /// DIR/testnet.json as written by `up` (pids updated on restart).
    pub manifest: serde_json::Value,
    restarted: Vec<Child>,
    down: bool,
    rt: tokio::runtime::Runtime,
}

impl Testnet {
    /// Starts `validators` validators in `dir` on a random free base port
    /// (retried when a port is taken), passing `extra` to `up`.
    pub fn up(dir: &Path, validators: usize, extra: &[&str]) -> Testnet {
        let testnet_bin = bin("agora-testnet");
        let agora_bin = bin("agora");
        let mut started = false;
        // Below the ephemeral range: a node restarted later finds its
        // ports still free (see `ports`).
        let span = u16::try_from(validators * 10 + 10).expect("a small testnet");
        for _ in 0..5 {
            let base = crate::ports::unused_base(span);
            let out = run(Command::new(&testnet_bin)
                .args(["up", "--detach", "--validators"])
                .arg(validators.to_string())
                .arg("--dir")
                .arg(dir)
                .arg("--base-port")
                .arg(base.to_string())
                .args(extra)
                .env("AGORA_BIN", &agora_bin));
            if out.status.success() {
                started = true;
                break;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("in use"), "agora-testnet up failed: {err}");
        }
        assert!(started, "no free base port found");
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join("testnet.json")).expect("reading testnet.json"),
        )
        .expect("testnet.json is JSON");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Testnet {
            dir: dir.to_path_buf(),
            testnet_bin,
            agora_bin,
            manifest,
            restarted: Vec::new(),
            down: false,
            rt,
        }
    }

    fn nodes(&self) -> &Vec<serde_json::Value> {
        self.manifest["nodes"]
            .as_array()
            .expect("testnet.json lists nodes")
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes().len()
    }

    /// Whether the testnet has no nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// gRPC endpoints (host:port), by node.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes()
            .iter()
            .map(|n| n["grpc"].as_str().expect("grpc endpoint").to_string())
            .collect()
    }

    /// Prometheus endpoint (host:port, path `/metrics`) of node `i`.
    pub fn metrics(&self, i: usize) -> String {
        self.nodes()[i]["metrics"]
            .as_str()
            .expect("node metrics endpoint")
            .to_string()
    }

    /// Current pid of node `i`.
    pub fn pid(&self, i: usize) -> u64 {
        self.nodes()[i]["pid"].as_u64().expect("node pid")
    }

    /// Home directory of node `i`.
    pub fn home(&self, i: usize) -> PathBuf {
        PathBuf::from(self.nodes()[i]["home"].as_str().expect("node home"))
    }

    /// QUIC address of node `i`.
    pub fn p2p(&self, i: usize) -> std::net::SocketAddr {
        self.nodes()[i]["p2p"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("node p2p address")
    }

    /// The shared genesis file.
    pub fn genesis(&self) -> PathBuf {
        self.dir.join("genesis.json")
    }

    /// Latest heights of every node (`None` where a node does not answer).
    pub fn heights(&self) -> Vec<Option<u64>> {
        self.rt.block_on(heights(&self.endpoints()))
    }

    /// The highest height any node reports.
    pub fn tip(&self) -> u64 {
        self.heights().into_iter().flatten().max().unwrap_or(0)
    }

    /// Waits until every node in `which` reports at least `at_least`,
    /// panicking with the nodes' log tails after `within`.
    pub fn wait_heights(&self, which: &[usize], at_least: u64, within: Duration) {
        let t0 = Instant::now();
        loop {
            let hs = self.heights();
            if which.iter().all(|&i| hs[i].is_some_and(|h| h >= at_least)) {
                eprintln!(
                    "nodes {which:?} at {at_least}+ after {:.1?}: {hs:?}",
                    t0.elapsed()
                );
                return;
            }
            assert!(
                t0.elapsed() < within,
                "nodes {which:?} at heights {hs:?} after {within:?}, wanted {at_least}\n{}",
                self.log_tails()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts node `i` again from its home (after it was killed or
    /// stopped), appending to its log, and records the new pid in
    /// testnet.json so that `down` stops it too.
    pub fn restart(&mut self, i: usize) {
        let log_path = PathBuf::from(self.nodes()[i]["log"].as_str().expect("node log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("opening the node log");
        let child = Command::new(&self.agora_bin)
            .arg("start")
            .arg("--home")
            .arg(self.home(i))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("starting agora");
        self.manifest["nodes"][i]["pid"] = serde_json::Value::from(child.id());
        self.restarted.push(child);
        std::fs::write(
            self.dir.join("testnet.json"),
            serde_json::to_vec_pretty(&self.manifest).expect("manifest JSON"),
        )
        .expect("writing testnet.json");
    }

    /// The last lines of every node's log, with whether its process is
    /// alive, for failure messages (`AGORA_TEST_LOG_LINES`, default 10).
    pub fn log_tails(&self) -> String {
        let keep = std::env::var("AGORA_TEST_LOG_LINES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10);
        self.nodes()
            .iter()
            .map(|n| {
                let t = std::fs::read_to_string(n["log"].as_str().unwrap_or_default())
                    .unwrap_or_default();
                let lines: Vec<&str> = t.lines().collect();
                let pid = n["pid"].as_u64().unwrap_or(0);
                format!(
                    "pid {pid} alive: {}\n{}",
                    alive(pid),
                    lines[lines.len().saturating_sub(keep)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n-----\n")
    }

    /// Runs `agora audit` against node `i` from genesis; true if it passed.
    pub fn audit(&self, i: usize) -> bool {
        let out = run(Command::new(&self.agora_bin)
            .args(["audit", "--node", &self.endpoints()[i], "--genesis"])
            .arg(self.genesis()));
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("OK")
    }

    /// Runs `agora-testnet down` and returns its output.
    pub fn down(&mut self) -> Output {
        self.down = true;
        let out = run(Command::new(&self.testnet_bin)
            .arg("down")
            .arg("--dir")
            .arg(&self.dir));
        for c in &mut self.restarted {
            let _ = c.wait();
        }
        out
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if !self.down {
            // Resume stopped nodes first: a SIGSTOPped process cannot act on
            // SIGTERM, and `down` would wait for its grace period.
            for i in 0..self.len() {
                let pid = self.pid(i);
                if alive(pid) {
                    let _ = Command::new("kill")
                        .args(["-s", "CONT", &pid.to_string()])
                        .status();
                }
            }
            let _ = self.down();
        }
    }
}
