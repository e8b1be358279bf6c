//! `DIR/testnet.json`: what `up` started and where to reach it, read back by
//! `status` and `down`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// File name of the manifest inside the testnet directory.
pub const MANIFEST_FILE: &str = "testnet.json";

/// Largest manifest read (a manifest of 1,000 nodes is far smaller).
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Chain id of the testnet.
    pub chain_id: String,
    /// The testnet directory.
    pub dir: PathBuf,
    /// The `agora` binary that runs the nodes.
    pub agora_bin: PathBuf,
    /// A copy of the shared genesis (byte-identical to every home's).
    pub genesis: PathBuf,
    /// One entry per validator node.
    pub nodes: Vec<NodeEntry>,
    /// Funded accounts whose keys are under `delegators/keys/`.
    pub delegators: Vec<DelegatorEntry>,
    /// Validators asked to double-sign, and what was done about it.
    pub byzantine: ByzantineNote,
}

/// One validator node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Position in the testnet (0-based).
    pub index: usize,
    /// The node's moniker.
    pub moniker: String,
    /// Its home directory.
    pub home: PathBuf,
    /// gRPC endpoint (host:port).
    pub grpc: String,
    /// QUIC (UDP) address peers dial.
    pub p2p: String,
    /// Prometheus endpoint (host:port, path /metrics).
    pub metrics: String,
    /// Web explorer URL, where it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explorer: Option<String>,
    /// The validator's address (also its operator account).
    pub validator_address: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// Process id while running (absent once stopped).
    pub pid: Option<u32>,
    /// Whether this node double-signs on purpose (`testing.double_sign`).
    #[serde(default)]
    pub byzantine: bool,
}

impl NodeEntry {
    /// The last `lines` lines of the node's log (empty if unreadable), for
    /// error reports.
    pub fn log_tail(&self, lines: usize) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = t.lines().collect();
        let mut s = String::new();
        for l in &all[all.len().saturating_sub(lines)..] {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

/// A funded account for bonding demos.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DelegatorEntry {
    /// Key name (`agora tx ... --home DIR/delegators --from NAME`).
    pub name: String,
    /// Account address.
    pub address: String,
    /// The key file.
    pub key_file: PathBuf,
    /// Genesis balance, base units.
    pub balance: String,
}

/// The `--byzantine` request and its outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ByzantineNote {
    /// Validators asked to double-sign.
    pub requested: usize,
    /// Validators actually running in a double-signing mode.
    pub applied: usize,
    /// Why they differ, if they do.
    pub note: Option<String>,
}

impl Manifest {
    /// The manifest of a loopback testnet just generated from `plan` into
    /// `dir` (nodes not started yet: no pids). The last `byzantine.applied`
    /// nodes are marked as double signers.
    pub fn loopback(
        chain_id: &str,
        dir: &Path,
        agora_bin: &Path,
        plan: &crate::generate::Plan,
        g: &crate::generate::Generated,
        byzantine: ByzantineNote,
    ) -> Self {
        let first_byzantine = plan.nodes.len().saturating_sub(byzantine.applied);
        Manifest {
            chain_id: chain_id.to_string(),
            dir: dir.to_path_buf(),
            agora_bin: agora_bin.to_path_buf(),
            genesis: g.genesis.clone(),
            nodes: plan
                .nodes
                .iter()
                .zip(&g.homes)
                .zip(&g.validators)
                .enumerate()
                .map(|(i, ((n, home), v))| NodeEntry {
                    index: i,
                    moniker: n.moniker.clone(),
                    home: home.clone(),
                    grpc: n.grpc_listen.to_string(),
                    p2p: n.p2p_public.to_string(),
                    metrics: n.metrics_listen.to_string(),
                    explorer: n.explorer_listen.map(|a| format!("http://{a}/")),
                    validator_address: v.to_string(),
                    log: home.join("node.log"),
                    pid: None,
                    byzantine: i >= first_byzantine,
                })
                .collect(),
            delegators: g.delegators.clone(),
            byzantine,
        }
    }

    /// The manifest of nodes that run elsewhere (other machines or
    /// containers; no pids): `endpoints[i]` is where node i's gRPC and
    /// metrics are reachable from here, so that `status --dir` can poll them.
    pub fn remote(
        chain_id: &str,
        dir: &Path,
        plan: &crate::generate::Plan,
        g: &crate::generate::Generated,
        endpoints: &[(std::net::SocketAddr, std::net::SocketAddr)],
    ) -> Self {
        Manifest {
            chain_id: chain_id.to_string(),
            dir: dir.to_path_buf(),
            agora_bin: PathBuf::from("agora"),
            genesis: dir.join("genesis.json"),
            nodes: plan
                .nodes
                .iter()
                .zip(&g.homes)
                .zip(&g.validators)
                .zip(endpoints)
                .enumerate()
                .map(|(i, (((n, home), v), (grpc, metrics)))| NodeEntry {
                    index: i,
                    moniker: n.moniker.clone(),
                    home: home.clone(),
                    grpc: grpc.to_string(),
                    p2p: n.p2p_public.to_string(),
                    metrics: metrics.to_string(),
                    explorer: None,
                    validator_address: v.to_string(),
                    log: PathBuf::from("node.log"),
                    pid: None,
                    byzantine: false,
                })
                .collect(),
            delegators: g.delegators.clone(),
            byzantine: ByzantineNote::default(),
        }
    }

    /// Pids of the listed nodes that still run (checked against their homes,
    /// so a reused pid does not count).
    pub fn running_pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| {
                n.pid
                    .filter(|p| crate::procs::is_running(*p, Some(&n.home)))
            })
            .collect()
    }

    /// Path of the manifest in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    /// Reads `dir/testnet.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let p = Self::path(dir);
        let len = std::fs::metadata(&p)
            .with_context(|| format!("{}: no testnet here (run `agora-testnet up`)", p.display()))?
            .len();
        if len > MAX_MANIFEST_BYTES {
            bail!("{}: larger than {MAX_MANIFEST_BYTES} bytes", p.display());
        }
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", p.display()))
    }

    /// Writes `dir/testnet.json` atomically (temp file, then rename).
    pub fn save(&self) -> Result<()> {
        let p = Self::path(&self.dir);
        let tmp = p.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).context("serialising the manifest")? + "\n";
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("renaming to {}", p.display()))
    }
}
