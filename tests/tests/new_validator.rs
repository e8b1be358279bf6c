//! A new operator joins a running chain as a validator, with real processes
//! and only the commands README gives: `agora init` makes the home, the
//! network's genesis file and peers go into it, a delegator funds the
//! operator account, `agora start` follows the chain as a full node, and
//! `agora tx create-validator` registers the consensus key (its proof of
//! possession made by the CLI). Then the set of a later height holds the new
//! validator, its precommits reach the certificates the chain carries, and
//! `agora audit` from genesis verifies the chain across the set change.
//!
//! `agora init` writes its own `timeout_commit` (200 ms), longer than the
//! testnet's (50 ms): before `engine/early_start.rs` such a validator voted
//! late and was missing from about 40% of the certificates.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_tests::harness::{Testnet, bin, run};
use agora_tests::ports::unused_port;

const WAIT: Duration = Duration::from_secs(90);
/// Power 100 beside four validators of 100: a quorum is any four of the
/// five, so the chain never waits for the newcomer (and a newcomer that
/// never signs is seen failing, not stalling the chain).
const SELF_BOND: &str = "100000000";

/// The joining node's process, killed when the test ends however it ends.
struct Joiner(Child);

impl Drop for Joiner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `agora ARGS`, failing the test with its output unless it succeeds;
/// returns its stdout.
fn agora(args: &[&str]) -> String {
    let out = run(Command::new(bin("agora")).args(args));
    assert!(
        out.status.success(),
        "agora {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value after `label` on its line of `text` (`validator:  <hex>`).
fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
        .to_string()
}

/// Points the home's config at the testnet: its peers, free local ports.
fn join_config(home: &Path, peers: &[String]) -> String {
    let path = home.join("config.toml");
    let mut cfg: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let grpc = format!("127.0.0.1:{}", unused_port(false));
    let set = |cfg: &mut toml::Table, section: &str, key: &str, v: toml::Value| {
        cfg[section].as_table_mut().unwrap().insert(key.into(), v);
    };
    let p2p = format!("127.0.0.1:{}", unused_port(true));
    set(&mut cfg, "p2p", "listen", p2p.into());
    let peers = peers.iter().cloned().map(toml::Value::from).collect();
    set(&mut cfg, "p2p", "peers", toml::Value::Array(peers));
    set(&mut cfg, "grpc", "listen", grpc.clone().into());
    set(&mut cfg, "metrics", "enabled", false.into());
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    grpc
}

/// Whether validator `address` signed the certificate that block `h`
/// carries (of height h − 1), read from node `endpoint`.
async fn signed_carried(endpoint: &str, h: u64, address: &[u8]) -> Option<bool> {
    let mut q = QueryClient::connect(format!("http://{endpoint}"))
        .await
        .ok()?;
    let block = q
        .get_block(pb::GetBlockRequest { height: h })
        .await
        .ok()?
        .into_inner()
        .block?;
    let cert = block.last_commit?;
    let set = q
        .get_validator_set(pb::GetValidatorSetRequest {
            height: cert.height,
        })
        .await
        .ok()?
        .into_inner()
        .validator_set?;
    let Some(i) = set.validators.iter().position(|v| v.address == address) else {
        return Some(false);
    };
    Some(
        cert.signers
            .get(i / 8)
            .is_some_and(|b| b >> (i % 8) & 1 == 1),
    )
}

#[test]
fn a_new_operator_joins_as_a_validator_and_signs() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Testnet::up(&tmp.path().join("net"), 4, &[]);
    net.wait_heights(&[0], 3, WAIT);

    // The operator's side: a home, the network's genesis and peers.
    let home: PathBuf = tmp.path().join("joiner");
    let h = home.to_str().unwrap();
    let init = agora(&["init", "--home", h, "--chain-id", "agora-testnet"]);
    let validator = field(&init, "validator:");
    std::fs::copy(net.genesis(), home.join("genesis.json")).unwrap();
    let peers: Vec<String> = (0..net.len()).map(|i| net.p2p(i).to_string()).collect();
    let grpc = join_config(&home, &peers);
    let operator = field(
        &agora(&["keys", "show", "operator", "--home", h]),
        "address:",
    );

    // A delegator of the testnet funds the operator account.
    let delegators = net.dir.join("delegators");
    let node0 = net.endpoints()[0].clone();
    agora(&[
        "tx",
        "transfer",
        &operator,
        "1000000000",
        "--from",
        "delegator0",
        "--home",
        delegators.to_str().unwrap(),
        "--node",
        &node0,
    ]);

    let log = std::fs::File::create(home.join("node.log")).unwrap();
    let _joiner = Joiner(
        Command::new(bin("agora"))
            .args(["start", "--home", h])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    // It follows the chain as a full node first.
    let t0 = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    loop {
        let heights = rt.block_on(agora_tests::harness::heights(std::slice::from_ref(&grpc)));
        if heights[0].is_some_and(|mine| mine + 2 >= net.tip()) {
            break;
        }
        assert!(t0.elapsed() < WAIT, "the new node did not catch up");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Registered through its own node.
    let out = agora(&[
        "tx",
        "create-validator",
        SELF_BOND,
        "--home",
        h,
        "--node",
        &grpc,
        "-o",
        "json",
    ]);
    let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(outcome["status"], "committed", "{outcome}");
    let registered = outcome["height"].as_u64().unwrap();

    // The set of a height two later holds it; then a carried certificate
    // holds its precommit.
    let address = hex::decode(&validator).unwrap();
    let t0 = Instant::now();
    let signed_at = loop {
        let tip = net.tip();
        if tip > registered + 3 {
            let signed = rt.block_on(signed_carried(&node0, tip, &address));
            if signed == Some(true) {
                break tip;
            }
        }
        assert!(
            t0.elapsed() < WAIT,
            "the new validator's precommit never reached a certificate (registered at {registered}, tip {tip})\n{}\n--- joiner:\n{}",
            net.log_tails(),
            std::fs::read_to_string(home.join("node.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "registered at {registered}; first seen signing in the certificate of block {signed_at}"
    );
    let shown = agora(&[
        "query",
        "validator",
        &validator,
        "--node",
        &node0,
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["operator"], operator.as_str(), "{v}");

    // The auditor crosses the set change from genesis.
    assert!(net.audit(0), "agora audit from genesis failed");
}
