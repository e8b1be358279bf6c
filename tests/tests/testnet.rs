//! `agora-testnet up --detach` as a real process: it returns once all four
//! `agora` validators serve a committed chain, they commit past height 10, `agora-testnet status` sees them, `agora audit`
//! verifies one node's chain from genesis, and `agora-testnet down` stops
//! every process; and `up` in the foreground stops the nodes it started on
//! SIGINT even when nobody reads its output any more.
//!
//! The binaries are taken from the target directory this test runs from
//! (`target/<profile>/agora` and `agora-testnet`); `cargo test --workspace`
//! builds them, `cargo test -p agora-tests` alone may not (see the message).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use agora_tests::harness::{Testnet, alive, bin, run, signal};
use agora_tests::ports::unused_base;

const VALIDATORS: usize = 4;
const TARGET_HEIGHT: u64 = 10;
const DEADLINE: Duration = Duration::from_secs(45);

#[test]
fn testnet_up_commits_audits_and_goes_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let mut net = Testnet::up(&dir, VALIDATORS, &[]);
    assert_eq!(net.len(), VALIDATORS);
    let pids: Vec<u64> = (0..net.len()).map(|i| net.pid(i)).collect();
    assert!(pids.iter().all(|p| alive(*p)), "a node died at start");
    // `up --detach` returns once every node serves a committed chain, so a
    // script's next command is answered at its first try.
    let at_return = net.heights();
    assert!(
        at_return.iter().all(|h| h.is_some_and(|h| h >= 1)),
        "up returned before every node served a committed block: {at_return:?}"
    );
    // Every home holds the same genesis as DIR/genesis.json.
    let genesis = std::fs::read(net.genesis()).unwrap();
    for i in 0..net.len() {
        let home: PathBuf = net.home(i);
        assert_eq!(std::fs::read(home.join("genesis.json")).unwrap(), genesis);
    }

    let all: Vec<usize> = (0..VALIDATORS).collect();
    net.wait_heights(&all, TARGET_HEIGHT + 1, DEADLINE);

    let status = run(Command::new(&net.testnet_bin)
        .arg("status")
        .arg("--dir")
        .arg(&dir));
    assert!(status.status.success(), "status reports a node down");
    // A reader that leaves early (`status | head -1`): SIGPIPE's status,
    // no panic.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let closed = Command::new(&net.testnet_bin)
        .args(["status", "--dir"])
        .arg(&dir)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&closed.stderr);
    assert_eq!(closed.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    assert!(net.audit(0), "agora audit failed");

    let down = net.down();
    assert!(down.status.success(), "agora-testnet down failed");
    let still: Vec<u64> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(
        still.is_empty(),
        "processes still running after down: {still:?}"
    );
    assert!(net.heights().iter().all(Option::is_none));
}

/// `agora-testnet up` in the foreground whose stdout nobody reads any more
/// (`up | tee run.log`, where the terminal's Ctrl-C kills `tee` as well):
/// SIGINT still stops every node it started, and it ends with the status of
/// a death by SIGPIPE (141), not a panic, having closed its gRPC
/// connections first so no node waits for them. Before `testnet/src/say.rs` the
/// line printed after the signal panicked and the four nodes, in process
/// groups of their own, ran on with nobody to stop them.
#[test]
fn up_stops_its_nodes_on_sigint_after_its_reader_left() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let (mut up, pids) = up_in_foreground(&dir);
    let _reaper = KillOnDrop(pids.clone());
    assert!(pids.iter().all(|p| alive(*p)), "a node died at start");
    // Every node committing: `up` has connected to each for its view, and
    // each node stops gracefully (and says so) on its SIGTERM.
    let deadline = Instant::now() + DEADLINE;
    let logs = |i: usize| std::fs::read_to_string(dir.join(format!("node{i}/node.log")));
    while !(0..VALIDATORS).all(|i| logs(i).is_ok_and(|l| l.contains("committed height="))) {
        assert!(Instant::now() < deadline, "the nodes did not commit");
        std::thread::sleep(Duration::from_millis(50));
    }

    signal(u64::from(up.id()), "INT");
    let status = wait_exit(&mut up, Duration::from_secs(30));
    let err = std::io::read_to_string(up.stderr.take().unwrap()).unwrap();
    let still: Vec<u64> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(
        still.is_empty(),
        "nodes still running after up ended ({status}): {still:?}\n{err}"
    );
    assert_eq!(status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // `up` closed its own gRPC connections before stopping the nodes, so
    // no node waited out its shutdown grace for them (each did, 3 s, before
    // `up::close_connections`).
    for i in 0..VALIDATORS {
        let log = logs(i).unwrap();
        assert!(
            log.contains("INFO agora_node::node: stopped"),
            "node{i} did not log its stop"
        );
        assert!(
            !log.contains("shutdown grace ended"),
            "node{i} waited for up's gRPC connections"
        );
    }
}

/// Starts `agora-testnet up` (not detached) in `dir` with its stdout a pipe
/// whose reader is already closed, and returns it with its nodes' pids once
/// `testnet.json` names them all (written after the nodes started, and so
/// after its SIGINT handler was installed). Retries on a taken port.
fn up_in_foreground(dir: &Path) -> (Child, Vec<u64>) {
    for _ in 0..5 {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let base = unused_base(50);
        let mut up = Command::new(bin("agora-testnet"))
            .args(["up", "--validators"])
            .arg(VALIDATORS.to_string())
            .arg("--dir")
            .arg(dir)
            .args(["--base-port", &base.to_string()])
            .env("AGORA_BIN", bin("agora"))
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = up.try_wait().unwrap() {
                let err = std::io::read_to_string(up.stderr.take().unwrap()).unwrap();
                assert!(err.contains("in use"), "up exited ({st}): {err}");
                break;
            }
            if let Some(pids) = manifest_pids(dir) {
                return (up, pids);
            }
            assert!(
                Instant::now() < deadline,
                "testnet.json did not list {VALIDATORS} pids within {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("no free base port found");
}

/// The node pids DIR/testnet.json lists, once it lists one per validator.
fn manifest_pids(dir: &Path) -> Option<Vec<u64>> {
    let text = std::fs::read(dir.join("testnet.json")).ok()?;
    let m: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let pids: Vec<u64> = m["nodes"]
        .as_array()?
        .iter()
        .filter_map(|n| n["pid"].as_u64())
        .collect();
    (pids.len() == VALIDATORS).then_some(pids)
}

/// Waits for `child` to exit; kills it and fails after `within`.
fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("agora-testnet up still running {within:?} after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the listed processes still alive when dropped, so that a failing
/// test leaves no node behind.
struct KillOnDrop(Vec<u64>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for p in self.0.iter().copied().filter(|p| alive(*p)) {
            signal(p, "KILL");
        }
    }
}
