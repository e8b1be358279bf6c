//! `agora audit --trust HEIGHT:HASH [--skip]` against a real testnet whose
//! validator set changes (the `--byzantine 1` double signer is tombstoned
//! and leaves the set): the light client verifies from the checkpoint to
//! the latest height sequentially and by skipping (fewer headers), and
//! refuses a checkpoint whose hash is not the served header's.

use std::process::Command;
use std::time::Duration;

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_tests::harness::{Testnet, run};
use serde_json::Value;

fn block_hash(endpoint: &str, height: u64) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = QueryClient::connect(format!("http://{endpoint}"))
            .await
            .unwrap();
        let b = c
            .get_block(pb::GetBlockRequest { height })
            .await
            .unwrap()
            .into_inner();
        hex::encode(b.block_hash)
    })
}

fn audit(net: &Testnet, args: &[&str]) -> (bool, Value) {
    let out = run(Command::new(&net.agora_bin)
        .args(["audit", "--node", &net.endpoints()[0], "-o", "json"])
        .args(args));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), v)
}

#[test]
fn the_light_client_audits_from_a_checkpoint_across_a_set_change() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Testnet::up(&tmp.path().join("net"), 4, &["--byzantine", "1"]);
    net.wait_heights(&[0], 20, Duration::from_secs(60));
    let to = "18";
    let checkpoint = format!("2:{}", block_hash(&net.endpoints()[0], 2));

    let (ok, seq) = audit(&net, &["--trust", &checkpoint, "--to", to]);
    assert!(ok, "sequential light audit failed: {seq}");
    let seq_path = seq["verified_heights"].as_array().unwrap().len();
    assert_eq!(seq_path, 16, "every height 3..=18: {seq}");

    let (ok, skip) = audit(&net, &["--trust", &checkpoint, "--to", to, "--skip"]);
    assert!(ok, "skipping light audit failed: {skip}");
    let skip_path = skip["verified_heights"].as_array().unwrap();
    assert_eq!(skip_path.last().and_then(Value::as_u64), Some(18), "{skip}");
    assert!(
        skip_path.len() < seq_path,
        "skipping verified fewer headers: {skip}"
    );

    // A target the node has not committed is refused before any fetch.
    let (ok, far) = audit(&net, &["--trust", &checkpoint, "--to", "1000000", "--skip"]);
    assert!(!ok, "a height past the tip was reported verified: {far}");
    assert!(
        far["error"]
            .as_str()
            .unwrap_or("")
            .contains("--to 1000000 is past the node's latest height"),
        "{far}"
    );

    // Negative control: a checkpoint that is not the served header.
    let wrong = format!("2:{}", block_hash(&net.endpoints()[0], 3));
    let (ok, bad) = audit(&net, &["--trust", &wrong, "--skip"]);
    assert!(!ok, "a wrong checkpoint was accepted: {bad}");
    assert!(
        bad["error"]
            .as_str()
            .unwrap_or("")
            .contains("the checkpoint says"),
        "{bad}"
    );
    eprintln!(
        "light audit 2..=18: sequential {seq_path} headers, skipping {} ({skip_path:?})",
        skip_path.len()
    );
}
