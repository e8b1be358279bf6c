//! Multi-process networks of real `agora` processes on loopback: homes
//! sharing one genesis, start and stop, heights and other metrics scraped
//! from each node, waits with deadlines, and the stored chains compared
//! after the processes stopped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_node::storage::Storage;
use agora_validator::block::header_hash;

/// The `agora` binary. Cargo names it to this package's tests; the
/// `agora-tests` crate includes this file too (its attack tests), and
/// there it lies beside the test executable's `deps/`, in
/// `target/<profile>/` (built by `cargo test --workspace`, or first with
/// `cargo build -p agora-node --bin agora`).
pub fn agora_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_agora") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("test executable path");
            let bin = exe
                .parent()
                .and_then(Path::parent)
                .expect("the test executable lives in target/<profile>/deps")
                .join("agora");
            assert!(
                bin.is_file(),
                "{} is missing: `cargo build -p agora-node --bin agora` first",
                bin.display()
            );
            bin
        }
    }
}

#[path = "../../../tests/src/ports.rs"]
mod ports;

/// A loopback port (UDP when `udp`) free now, below the OS's ephemeral
/// range and never handed out before in this test process: a node
/// restarted later still finds it free (see `ports`).
pub fn free_port(udp: bool) -> u16 {
    ports::unused_port(udp)
}

/// The value of the metric line starting with `name ` (labels included in
/// `name`, e.g. `agora_peer_penalties_total{reason="bad_block"}`).
pub fn metric(port: u16, name: &str) -> Option<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let prefix = format!("{name} ");
    out.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.parse().ok())
}

pub fn height(port: u16) -> Option<u64> {
    metric(port, "agora_height")
}

pub fn start(home: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    Command::new(agora_bin())
        .args(["start", "--home", home.to_str().expect("utf-8")])
        // Charges below the ban threshold are debug lines; tests read them.
        .env(
            "RUST_LOG",
            std::env::var("AGORA_TEST_NODE_LOG")
                .unwrap_or_else(|_| "info,agora_node::transport::accounting=debug".into()),
        )
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn agora")
}

/// SIGTERM, then wait (bounded) for the process to exit.
pub fn stop(child: &mut Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "node did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn log_tails(logs: &[PathBuf], lines: usize) -> String {
    logs.iter()
        .map(|l| {
            let t = std::fs::read_to_string(l).unwrap_or_default();
            let all: Vec<&str> = t.lines().collect();
            format!(
                "== {}\n{}",
                l.display(),
                all[all.len().saturating_sub(lines)..].join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls `check` every 100 ms until it holds; panics with the logs' tails
/// after `secs` (the last 15 lines of each, or `AGORA_TEST_LOG_LINES`).
pub fn wait_for(what: &str, secs: u64, logs: &[PathBuf], mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let lines = std::env::var("AGORA_TEST_LOG_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {secs} s\n{}",
            log_tails(logs, lines)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until every node in `which` committed `at_least`.
pub fn wait_heights(ports: &[u16], which: &[usize], at_least: u64, secs: u64, logs: &[PathBuf]) {
    wait_for(
        &format!("nodes {which:?} at height {at_least}"),
        secs,
        logs,
        || {
            which
                .iter()
                .all(|&i| height(ports[i]).unwrap_or(0) >= at_least)
        },
    );
}

/// The highest height among `which`.
pub fn max_height(ports: &[u16], which: &[usize]) -> u64 {
    which
        .iter()
        .map(|&i| height(ports[i]).unwrap_or(0))
        .max()
        .unwrap_or(0)
}

/// The node processes of a test; whatever still runs when the test ends
/// (a failed assertion included) is killed, so no node outlives its test.
pub struct Nodes(pub Vec<Child>);

impl std::ops::Deref for Nodes {
    type Target = Vec<Child>;
    fn deref(&self) -> &Vec<Child> {
        &self.0
    }
}

impl std::ops::DerefMut for Nodes {
    fn deref_mut(&mut self) -> &mut Vec<Child> {
        &mut self.0
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Homes of a loopback network in one temp dir.
pub struct Net {
    pub dir: tempfile::TempDir,
    pub homes: Vec<PathBuf>,
    pub logs: Vec<PathBuf>,
    pub p2p: Vec<u16>,
    pub metrics: Vec<u16>,
    pub grpc: Vec<u16>,
}

impl Net {
    /// Starts every node.
    pub fn start_all(&self) -> Nodes {
        Nodes(
            self.homes
                .iter()
                .zip(&self.logs)
                .map(|(h, l)| start(h, l))
                .collect(),
        )
    }

    /// Edits node `i`'s config.toml.
    pub fn edit_config(&self, i: usize, f: impl FnOnce(&mut toml::Table)) {
        let path = self.homes[i].join("config.toml");
        let mut cfg: toml::Table =
            toml::from_str(&std::fs::read_to_string(&path).expect("read")).expect("toml");
        f(&mut cfg);
        std::fs::write(&path, toml::to_string(&cfg).expect("toml")).expect("write");
    }

    /// `agora audit` of node `i`'s chain up to `to`, trusting only the genesis.
    pub fn audit(&self, i: usize, to: u64) -> std::process::Output {
        Command::new(agora_bin())
            .args(["audit", "--node", &format!("127.0.0.1:{}", self.grpc[i])])
            .arg("--genesis")
            .arg(self.homes[i].join("genesis.json"))
            .args(["--to", &to.to_string()])
            .output()
            .expect("agora audit")
    }
}

/// Sets `[testing] key = true` in a config.
pub fn set_testing(cfg: &mut toml::Table, key: &str) {
    let t = cfg
        .entry("testing")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(t) = t {
        t.insert(key.into(), toml::Value::Boolean(true));
    }
}

/// `validators` validator homes sharing one genesis, plus `full_nodes`
/// nodes whose keys are not in it; short timeouts and a full mesh.
/// `tweak(i, config)` edits node i's configuration before it starts.
pub fn build(validators: usize, full_nodes: usize, tweak: impl Fn(usize, &mut toml::Table)) -> Net {
    build_with(validators, full_nodes, |_| {}, tweak)
}

/// [`build`] with `genesis_tweak` applied to the shared genesis JSON
/// (validators in node order) before it is written.
pub fn build_with(
    validators: usize,
    full_nodes: usize,
    genesis_tweak: impl FnOnce(&mut serde_json::Value),
    tweak: impl Fn(usize, &mut toml::Table),
) -> Net {
    let n = validators + full_nodes;
    let dir = tempfile::tempdir().expect("tempdir");
    let homes: Vec<PathBuf> = (0..n).map(|i| dir.path().join(format!("n{i}"))).collect();
    let logs: Vec<PathBuf> = (0..n)
        .map(|i| dir.path().join(format!("n{i}.log")))
        .collect();
    for (i, h) in homes.iter().enumerate() {
        let out = Command::new(agora_bin())
            .args(["init", "--home", h.to_str().expect("utf-8")])
            .args(["--chain-id", "net-test", "--moniker", &format!("v{i}")])
            .output()
            .expect("agora init");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // One genesis with the validators, byte-identical in every home.
    let read = |h: &PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(h.join("genesis.json")).expect("read")).expect("json")
    };
    let mut genesis = read(&homes[0]);
    let (mut vals, mut accts) = (Vec::new(), Vec::new());
    for h in &homes[..validators] {
        let g = read(h);
        vals.extend(
            g["validators"]
                .as_array()
                .expect("validators")
                .iter()
                .cloned(),
        );
        accts.extend(g["accounts"].as_array().expect("accounts").iter().cloned());
    }
    genesis["validators"] = serde_json::Value::Array(vals);
    genesis["accounts"] = serde_json::Value::Array(accts);
    genesis_tweak(&mut genesis);
    let gtext = serde_json::to_string_pretty(&genesis).expect("json");
    let p2p: Vec<u16> = (0..n).map(|_| free_port(true)).collect();
    let metrics: Vec<u16> = (0..n).map(|_| free_port(false)).collect();
    let grpc: Vec<u16> = (0..n).map(|_| free_port(false)).collect();
    let net = Net {
        dir,
        homes,
        logs,
        p2p,
        metrics,
        grpc,
    };
    for i in 0..n {
        std::fs::write(net.homes[i].join("genesis.json"), &gtext).expect("write");
        net.edit_config(i, |cfg| {
            let addr = |port: u16| toml::Value::String(format!("127.0.0.1:{port}"));
            let peers = (0..n).filter(|j| *j != i).map(|j| addr(net.p2p[j]));
            cfg["p2p"]["listen"] = addr(net.p2p[i]);
            cfg["p2p"]["peers"] = toml::Value::Array(peers.collect());
            cfg["metrics"]["listen"] = addr(net.metrics[i]);
            cfg["grpc"]["listen"] = addr(net.grpc[i]);
            let c = cfg["consensus"].as_table_mut().expect("consensus");
            for (k, v) in [
                ("timeout_propose_ms", 400),
                ("timeout_prevote_ms", 200),
                ("timeout_precommit_ms", 200),
                ("timeout_commit_ms", 20),
            ] {
                c.insert(k.into(), toml::Value::Integer(v));
            }
            tweak(i, cfg);
        });
    }
    net
}

/// Opens every node's redb after the processes stopped and checks that all
/// store the same block, byte for byte, and a certificate at every height
/// up to the lowest tip, which is at least `at_least`. Returns that height.
pub fn assert_stored_chains_agree(homes: &[PathBuf], at_least: u64) -> u64 {
    use prost::Message;
    let dbs: Vec<Storage> = homes
        .iter()
        .map(|h| Storage::open(h.join("data/node.redb")).expect("open"))
        .collect();
    let common = dbs
        .iter()
        .map(|d| d.latest_height().expect("latest").unwrap_or(0))
        .min()
        .unwrap_or(0);
    assert!(
        common >= at_least,
        "common height {common} below {at_least}"
    );
    for h in 1..=common {
        let blocks: Vec<_> = dbs
            .iter()
            .map(|d| d.block(h).expect("read").expect("stored"))
            .collect();
        let hash = |b: &agora_proto::v1::Block| header_hash(b.header.as_ref().expect("header"));
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(hash(b), hash(&blocks[0]), "height {h}: node {i} disagrees");
            // The same header with another body would be a forged block.
            assert_eq!(
                b.encode_to_vec(),
                blocks[0].encode_to_vec(),
                "height {h}: node {i} stores another body under the same header"
            );
        }
        assert!(
            dbs.iter()
                .all(|d| d.certificate(h).expect("read").is_some())
        );
    }
    common
}
