//! What the real-process gRPC tests share: a one-validator chain started as
//! an `agora` process in a temp dir, a client, and waits with deadlines.
#![allow(dead_code)] // each test binary uses a different part

use agora_node::client::connect;
use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::{AccountSecretKey, Address, PublicKey, SecretKey};

/// A validator's keys: its BLS consensus key (votes, the validator's
/// address) and its operator's Ed25519 account key (Unjail, EditValidator,
/// self-bond top-ups).
pub struct ValidatorKeys {
    /// The consensus key.
    pub consensus: SecretKey,
    /// The operator's account key.
    pub operator: AccountSecretKey,
}

impl ValidatorKeys {
    /// The consensus public key (`Address::of` it is the validator's address).
    pub fn public_key(&self) -> PublicKey {
        self.consensus.public_key()
    }
    /// Signs with the consensus key.
    pub fn sign(&self, msg: &[u8]) -> agora_validator::Signature {
        self.consensus.sign(msg)
    }
    /// The operator's account address.
    pub fn operator_address(&self) -> Address {
        Address::of_account(&self.operator.public_key())
    }
}
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHAIN: &str = "grpc-test";
pub const UNBONDING: u64 = 12;
pub const BOB_FUNDS: u128 = 1_000_000_000_000;

/// A TCP port the OS just called free, never one handed out before in
/// this test process (see `net::free_port`).
pub fn free_port() -> u16 {
    net::free_port(false)
}

pub struct Node {
    pub child: Option<Child>,
    pub home: PathBuf,
    pub grpc: String,
}

impl Node {
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.join("node.log"))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_agora"))
            .args(["start", "--home", self.home.to_str().expect("utf-8")])
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn agora");
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn log_tail(&self) -> String {
        let t = std::fs::read_to_string(self.home.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A one-validator chain (validator A runs) whose genesis also registers a
/// tiny validator B (never runs; < 1/3 of the power, so A alone commits) and
/// funds a delegator, Bob. Returns the node and the keys of A, B and Bob.
/// B misses every certificate, so the downtime window is made too long to
/// ever jail it; [`setup_with`] lets a test choose its own parameters.
pub fn setup(dir: &Path) -> (Node, ValidatorKeys, ValidatorKeys, AccountSecretKey) {
    setup_with(dir, |g| {
        g["params"]["signed_blocks_window"] = serde_json::json!(100_000);
    })
}

/// [`setup`] with `tweak` applied to the genesis JSON before the node starts.
pub fn setup_with(
    dir: &Path,
    tweak: impl FnOnce(&mut serde_json::Value),
) -> (Node, ValidatorKeys, ValidatorKeys, AccountSecretKey) {
    let home = dir.join("a");
    let out = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args([
            "init",
            "--home",
            home.to_str().expect("utf-8"),
            "--chain-id",
            CHAIN,
        ])
        .output()
        .expect("agora init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = ValidatorKeys {
        consensus: agora_node::keys::load(&home.join("keys/validator.key")).expect("key a"),
        operator: agora_node::keys::load_account(&home.join("keys/operator.key"))
            .expect("operator a"),
    };
    let b = ValidatorKeys {
        consensus: SecretKey::from_seed(&[0xb0; 32]).expect("key b"),
        operator: AccountSecretKey::from_seed(&[0xb2; 32]),
    };
    let bob = AccountSecretKey::from_seed(&[0xb1; 32]);
    let mut g: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("genesis.json")).expect("read"))
            .expect("json");
    g["params"]["unbonding_period"] = serde_json::json!(UNBONDING);
    let b_op = b.operator_address().to_string();
    let accounts = g["accounts"].as_array_mut().expect("accounts");
    accounts.push(serde_json::json!({"address": b_op, "balance": "1000000"}));
    accounts.push(serde_json::json!({
        "address": Address::of_account(&bob.public_key()).to_string(),
        "balance": BOB_FUNDS.to_string(),
    }));
    let mut vb = g["validators"][0].clone();
    vb["operator"] = serde_json::json!(b_op);
    vb["consensus_public_key"] = serde_json::json!(hex::encode(b.public_key().to_bytes()));
    vb["proof_of_possession"] =
        serde_json::json!(hex::encode(b.consensus.prove_possession().to_bytes()));
    vb["self_bond"] = serde_json::json!("1000000");
    g["validators"].as_array_mut().expect("validators").push(vb);
    tweak(&mut g);
    std::fs::write(
        home.join("genesis.json"),
        serde_json::to_vec_pretty(&g).expect("json"),
    )
    .expect("write");

    let grpc_port = free_port();
    let mut cfg: toml::Table =
        toml::from_str(&std::fs::read_to_string(home.join("config.toml")).expect("read"))
            .expect("toml");
    cfg["p2p"]["listen"] = toml::Value::String(format!("127.0.0.1:{}", free_port()));
    cfg["grpc"]["listen"] = toml::Value::String(format!("127.0.0.1:{grpc_port}"));
    cfg["metrics"]["listen"] = toml::Value::String(format!("127.0.0.1:{}", free_port()));
    std::fs::write(
        home.join("config.toml"),
        toml::to_string(&cfg).expect("toml"),
    )
    .expect("write");
    let mut node = Node {
        child: None,
        home,
        grpc: format!("127.0.0.1:{grpc_port}"),
    };
    node.start();
    (node, a, b, bob)
}

pub async fn client(
    node: &Node,
) -> (
    QueryClient<tonic::transport::Channel>,
    tonic::transport::Channel,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(ch) = connect(&node.grpc).await {
            return (QueryClient::new(ch.clone()), ch);
        }
        assert!(
            Instant::now() < deadline,
            "gRPC never came up\n{}",
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_height(
    q: &mut QueryClient<tonic::transport::Channel>,
    node: &Node,
    h: u64,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(s) = q.get_status(pb::GetStatusRequest {}).await {
            let latest = s.into_inner().latest_height;
            if latest >= h {
                return latest;
            }
        }
        assert!(
            Instant::now() < deadline,
            "chain stuck below {h}\n{}",
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn power_of(set: &pb::ValidatorSet, a: &Address) -> u64 {
    set.validators
        .iter()
        .find(|v| v.address == a.0)
        .map_or(0, |v| v.power)
}

pub async fn set_at(q: &mut QueryClient<tonic::transport::Channel>, h: u64) -> pb::ValidatorSet {
    q.get_validator_set(pb::GetValidatorSetRequest { height: h })
        .await
        .expect("validator set")
        .into_inner()
        .validator_set
        .expect("set")
}

pub mod net;
pub mod raw_peer;
/// The UDP relay of the `agora-tests` crate, shared as source: node tests
/// cannot depend on that crate.
#[path = "../../../tests/src/udp_relay.rs"]
pub mod relay;

/// What an audit of `node`'s chain up to `to` trusts, from its genesis
/// file, and the genesis ledger (for a replay).
pub fn audit_config(
    node: &Node,
    to: u64,
) -> (
    agora_node::client::audit::AuditConfig,
    agora_validator::ledger::Ledger,
) {
    let g = agora_node::genesis::load(&node.home.join("genesis.json")).expect("genesis");
    let ledger = agora_validator::ledger::Ledger::from_genesis(&g.genesis).expect("ledger");
    let cfg = agora_node::client::audit::AuditConfig {
        chain: ledger.chain_id().clone(),
        seed0: agora_validator::crypto::vrf::genesis_seed(&g.file_hash),
        genesis_set: ledger.validator_set(1).cloned().expect("set"),
        from: 1,
        to: Some(to),
    };
    (cfg, ledger)
}
