//! `agora-testnet up --detach` as a real process: four `agora` validators
//! commit past height 10, `agora-testnet status` sees them, `agora audit`
//! verifies one node's chain from genesis, and `agora-testnet down` stops
//! every process.
//!
//! The binaries are taken from the target directory this test runs from
//! (`target/<profile>/agora` and `agora-testnet`); `cargo test --workspace`
//! builds them, `cargo test -p agora-tests` alone may not (see the message).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use agora_tests::harness::{Testnet, alive, run};

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
