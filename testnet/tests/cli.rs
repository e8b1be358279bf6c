//! The `agora-testnet` binary without running nodes: `generate` output, and
//! refusals that protect existing directories.
//!
//! (This integration test also makes `cargo test --workspace` build the
//! `agora-testnet` binary that `tests/tests/testnet.rs` runs.)

use std::process::Command;

fn testnet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agora-testnet"))
}

#[test]
fn generate_writes_homes_with_one_genesis_and_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let o = testnet()
        .args(["generate", "--hosts", "10.1.0.1,10.1.0.2,10.1.0.3", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let genesis = std::fs::read(out.join("genesis.json")).unwrap();
    let g: serde_json::Value = serde_json::from_slice(&genesis).unwrap();
    assert_eq!(g["validators"].as_array().unwrap().len(), 3);
    for i in 0..3 {
        let home = out.join(format!("node{i}"));
        assert_eq!(std::fs::read(home.join("genesis.json")).unwrap(), genesis);
        let cfg = std::fs::read_to_string(home.join("config.toml")).unwrap();
        assert!(cfg.contains("listen = \"0.0.0.0:26656\""), "{cfg}");
        // Peers are the other two hosts, never itself.
        let me = format!("\"10.1.0.{}:26656\"", i + 1);
        assert!(!cfg.contains(&me), "node{i} lists itself: {cfg}");
    }
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("testnet.json")).unwrap()).unwrap();
    assert_eq!(m["nodes"][1]["grpc"], "10.1.0.2:26657");
    assert!(m["nodes"][1]["pid"].is_null());

    // A second generate into the same directory is refused.
    let again = testnet()
        .args(["generate", "--hosts", "10.1.0.1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!again.status.success());
}

#[test]
fn up_refuses_a_directory_that_is_not_a_testnet() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
    let o = testnet()
        .args(["up", "--detach", "--reset", "--dir"])
        .arg(dir.path())
        .env("AGORA_BIN", "/bin/true")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("holds no testnet.json"));
    assert!(dir.path().join("precious.txt").exists());
}

/// A node that dies while starting fails `up --detach` at once, naming the
/// node and quoting its log, instead of reporting a testnet that is not
/// there (the next command would meet "connection refused").
#[test]
fn up_reports_a_node_that_died_while_starting() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("agora");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'error: the disk is on fire' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("net");
    let o = testnet()
        .args(["up", "--detach", "--dir"])
        .arg(&dir)
        .args(["--base-port", "35400"])
        .env("AGORA_BIN", &fake)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("exited while starting (exit status: 3)"),
        "{err}"
    );
    assert!(err.contains("the disk is on fire"), "{err}");
}
