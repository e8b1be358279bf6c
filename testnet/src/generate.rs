//! Home directories for a whole testnet: one validator (BLS consensus) key,
//! one operator (Ed25519 account) key, TLS identity and
//! config.toml per node, one shared genesis (byte-identical in every home)
//! with all validators' proofs of possession, and funded Ed25519 delegator keys.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use agora_node::config::Config;
use agora_node::genesis::{
    GenesisAccountJson, GenesisJson, GenesisParamsJson, GenesisValidatorJson,
};
use agora_node::home::Home;
use agora_node::keys;
use agora_node::transport::tls::TlsIdentity;
use agora_validator::Address;
use anyhow::{Context, Result, bail};

use crate::manifest::DelegatorEntry;

/// Self-bond of every genesis validator (100 units of power at the default
/// power reduction of 10^6): equal stakes, so any 3 of 4 form a quorum.
pub const SELF_BOND: &str = "100000000";
/// Commission of every generated validator: 10%, at most 20%, moving by at
/// most 1 point per commission epoch.
pub const COMMISSION_RATE_BPS: u32 = 1_000;
/// Highest commission a generated validator may set.
pub const COMMISSION_MAX_RATE_BPS: u32 = 2_000;
/// Largest commission change per epoch of a generated validator.
pub const COMMISSION_MAX_CHANGE_BPS: u32 = 100;
/// Genesis balance of every validator operator account.
pub const OPERATOR_BALANCE: &str = "1000000000000";
/// Genesis balance of every delegator account.
pub const DELEGATOR_BALANCE: &str = "10000000000";
/// Most validators one testnet may have (ports and disk stay reasonable).
pub const MAX_VALIDATORS: usize = 100;

/// Where one node listens and how its peers reach it.
#[derive(Debug, Clone)]
pub struct NodePlan {
    /// Node name (also the home directory's name).
    pub moniker: String,
    /// QUIC listen address.
    pub p2p_listen: SocketAddr,
    /// The address the other nodes dial.
    pub p2p_public: SocketAddr,
    /// gRPC listen address.
    pub grpc_listen: SocketAddr,
    /// Metrics listen address.
    pub metrics_listen: SocketAddr,
    /// Explorer listen address, where the explorer is on (node0 of `up`).
    pub explorer_listen: Option<SocketAddr>,
}

/// Everything [`generate`] needs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Chain id.
    pub chain_id: String,
    /// The nodes.
    pub nodes: Vec<NodePlan>,
    /// Funded delegator accounts to create.
    pub delegators: usize,
    /// Genesis unbonding period, in heights.
    pub unbonding_period: u64,
    /// Genesis jail period, in heights.
    pub jail_period: u64,
    /// Genesis downtime window, in certificates.
    pub signed_blocks_window: u64,
    /// Genesis downtime jail, in heights.
    pub downtime_jail_heights: u64,
    /// Shorten consensus timeouts (loopback networks).
    pub fast_timeouts: bool,
    /// The last this-many nodes double-sign on purpose (`testing.double_sign`).
    pub byzantine: usize,
    /// Those nodes double-sign once (`testing.double_sign_once`) instead of
    /// at every height.
    pub byzantine_once: bool,
    /// Funded accounts without keys added to genesis (a large state, for
    /// state-sync and state-scaling runs); their addresses are derived
    /// from their index, so two runs hold the same state.
    pub extra_accounts: usize,
    /// Every node's `state_sync.snapshot_interval`.
    pub snapshot_interval: u64,
}

/// Snapshot interval of testnet nodes: short, so a node added to a young
/// testnet finds a snapshot within seconds.
pub const TESTNET_SNAPSHOT_INTERVAL: u64 = 100;

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct Generated {
    /// Home directory per node, in plan order.
    pub homes: Vec<PathBuf>,
    /// Validator address per node, in plan order.
    pub validators: Vec<Address>,
    /// The delegator accounts.
    pub delegators: Vec<DelegatorEntry>,
    /// `DIR/genesis.json`, a copy of every home's genesis.
    pub genesis: PathBuf,
}

/// Ports of node `i` on one machine: p2p (UDP) = base + 10i, gRPC = +1,
/// metrics = +2 (and the explorer, where it is on, = +3), so that every port
/// of a 4-node net at 27000 is easy to guess.
pub fn ports(base: u16, i: usize) -> Result<(u16, u16, u16)> {
    let p2p = usize::from(base) + 10 * i;
    if p2p + 3 > usize::from(u16::MAX) {
        bail!("--base-port {base} leaves no room for node {i} (ports base+10i..base+10i+3)");
    }
    Ok((p2p as u16, p2p as u16 + 1, p2p as u16 + 2))
}

/// The plan of an N-node testnet on loopback.
pub fn loopback_plan(
    n: usize,
    base_port: u16,
    chain_id: &str,
    unbonding_period: u64,
) -> Result<Plan> {
    check_count(n)?;
    let nodes = (0..n)
        .map(|i| {
            let (p, g, m) = ports(base_port, i)?;
            let lo = |port| SocketAddr::from(([127, 0, 0, 1], port));
            Ok(NodePlan {
                moniker: format!("node{i}"),
                p2p_listen: lo(p),
                p2p_public: lo(p),
                grpc_listen: lo(g),
                metrics_listen: lo(m),
                // The explorer is on for node0 only: one page to open.
                explorer_listen: (i == 0).then(|| lo(p + 3)),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Plan {
        chain_id: chain_id.to_string(),
        nodes,
        delegators: 3,
        unbonding_period,
        jail_period: unbonding_period,
        signed_blocks_window: agora_validator::ledger::params::DEFAULT_SIGNED_BLOCKS_WINDOW,
        downtime_jail_heights: agora_validator::ledger::params::DEFAULT_DOWNTIME_JAIL_HEIGHTS,
        fast_timeouts: true,
        extra_accounts: 0,
        snapshot_interval: TESTNET_SNAPSHOT_INTERVAL,
        byzantine: 0,
        byzantine_once: false,
    })
}

/// The plan for validators on separate machines: each listens on 0.0.0.0 and
/// dials the others at `host:port`. A host may carry its own p2p port
/// (`10.0.0.5:26656`); otherwise the base port is used, shifted by 10 for
/// every earlier occurrence of the same host (several validators per machine).
/// Names are resolved now because config.toml holds socket addresses.
pub fn hosts_plan(
    hosts: &[String],
    base_port: u16,
    chain_id: &str,
    unbonding_period: u64,
) -> Result<Plan> {
    use std::net::ToSocketAddrs;
    check_count(hosts.len())?;
    let mut nodes: Vec<NodePlan> = Vec::with_capacity(hosts.len());
    for (i, h) in hosts.iter().enumerate() {
        let h = h.trim();
        let public: SocketAddr = match h.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                let with_port = if h
                    .rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                {
                    h.to_string()
                } else {
                    let earlier = nodes
                        .iter()
                        .zip(hosts)
                        .filter(|(_, other)| other.trim() == h)
                        .count();
                    format!("{h}:{}", ports(base_port, earlier)?.0)
                };
                with_port
                    .to_socket_addrs()
                    .with_context(|| format!("resolving host {h:?}"))?
                    .next()
                    .with_context(|| format!("host {h:?} has no address"))?
            }
        };
        let p = public.port();
        if p > u16::MAX - 2 {
            bail!("host {h:?}: p2p port {p} leaves no room for gRPC (+1) and metrics (+2)");
        }
        if nodes.iter().any(|n| n.p2p_public == public) {
            bail!("host {h:?}: {public} is listed twice");
        }
        let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
        nodes.push(NodePlan {
            moniker: format!("node{i}"),
            p2p_listen: any(p),
            p2p_public: public,
            grpc_listen: any(p + 1),
            metrics_listen: any(p + 2),
            explorer_listen: None,
        });
    }
    Ok(Plan {
        chain_id: chain_id.to_string(),
        nodes,
        delegators: 3,
        unbonding_period,
        jail_period: unbonding_period,
        signed_blocks_window: agora_validator::ledger::params::DEFAULT_SIGNED_BLOCKS_WINDOW,
        downtime_jail_heights: agora_validator::ledger::params::DEFAULT_DOWNTIME_JAIL_HEIGHTS,
        fast_timeouts: false,
        byzantine: 0,
        byzantine_once: false,
        extra_accounts: 0,
        snapshot_interval: agora_node::config::StateSyncConfig::default().snapshot_interval,
    })
}

fn check_count(n: usize) -> Result<()> {
    if n == 0 || n > MAX_VALIDATORS {
        bail!("the number of validators must be in 1..={MAX_VALIDATORS}, not {n}");
    }
    Ok(())
}

fn mkdir_private(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Creates `dir` and generates the testnet of `plan` in it; returns the
/// directory's absolute path (what the manifest records) and what was made.
pub fn generate_in(plan: &Plan, dir: &Path) -> Result<(PathBuf, Generated)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let g = generate(plan, &dir)?;
    Ok((dir, g))
}

/// Writes every home under `out` (`out/nodeI`), the delegator keys under
/// `out/delegators/keys/`, and `out/genesis.json`. `out` must not hold a
/// testnet already.
pub fn generate(plan: &Plan, out: &Path) -> Result<Generated> {
    if plan.byzantine > plan.nodes.len() {
        bail!(
            "{} byzantine validators requested but only {} validators",
            plan.byzantine,
            plan.nodes.len()
        );
    }
    let first_byzantine = plan.nodes.len() - plan.byzantine;
    mkdir_private(out)?;
    let mut genesis = empty_genesis(plan);
    let mut homes = Vec::new();
    let mut validators = Vec::new();
    for node in &plan.nodes {
        let (home, validator) = init_home(out, node, &mut genesis)?;
        homes.push(home);
        validators.push(validator);
    }
    let delegators = create_delegators(plan, out, &mut genesis)?;
    genesis
        .accounts
        .extend((0..plan.extra_accounts).map(|i| GenesisAccountJson {
            address: extra_account(i).to_string(),
            balance: EXTRA_ACCOUNT_BALANCE.into(),
        }));
    let gpath = write_genesis(&genesis, out, &homes)?;
    for (i, (node, home)) in plan.nodes.iter().zip(&homes).enumerate() {
        let cfg = node_config(plan, i, node, first_byzantine)?;
        // config.toml last: its presence marks a completely initialised home.
        write(&home.config(), &cfg.to_toml())?;
    }
    Ok(Generated {
        homes: homes.iter().map(|h| h.root().to_path_buf()).collect(),
        validators,
        delegators,
        genesis: gpath,
    })
}

/// The plan's genesis, dated now, before any account or validator.
fn empty_genesis(plan: &Plan) -> GenesisJson {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    GenesisJson {
        chain_id: plan.chain_id.clone(),
        genesis_time_ms: now_ms,
        params: GenesisParamsJson {
            unbonding_period: plan.unbonding_period,
            jail_period: plan.jail_period,
            signed_blocks_window: plan.signed_blocks_window,
            downtime_jail_heights: plan.downtime_jail_heights,
            ..GenesisParamsJson::default()
        },
        accounts: Vec::new(),
        validators: Vec::new(),
    }
}

/// Creates `node`'s home under `out` with its validator, operator and TLS
/// keys (no config.toml yet), and adds its operator account and validator
/// to `genesis`. Returns the home and the validator address.
fn init_home(out: &Path, node: &NodePlan, genesis: &mut GenesisJson) -> Result<(Home, Address)> {
    let home = Home::new(out.join(&node.moniker));
    if home.config().exists() {
        bail!(
            "{} exists: {} already holds a testnet",
            home.config().display(),
            out.display()
        );
    }
    mkdir_private(home.root())?;
    mkdir_private(&home.keys_dir())?;
    mkdir_private(&home.data_dir())?;
    let key = keys::generate()?;
    let info = keys::save(&home.validator_key(), &key)?;
    let op = keys::save_account(&home.operator_key(), &keys::generate_account()?)?;
    let tls = TlsIdentity::generate()?;
    write(&home.tls_cert(), &tls.cert_pem())?;
    keys::write_secret_file(&home.tls_key(), tls.key_pem().as_bytes())?;
    let operator = op.address.to_string();
    genesis.accounts.push(GenesisAccountJson {
        address: operator.clone(),
        balance: OPERATOR_BALANCE.into(),
    });
    genesis.validators.push(GenesisValidatorJson {
        operator,
        consensus_public_key: hex::encode(&info.public_key),
        proof_of_possession: hex::encode(key.prove_possession().to_bytes()),
        self_bond: SELF_BOND.into(),
        commission_rate_bps: COMMISSION_RATE_BPS,
        commission_max_rate_bps: COMMISSION_MAX_RATE_BPS,
        commission_max_change_bps: COMMISSION_MAX_CHANGE_BPS,
    });
    Ok((home, info.address))
}

/// Writes the plan's delegator keys under `out/delegators/keys/` and funds
/// their accounts in `genesis`.
fn create_delegators(
    plan: &Plan,
    out: &Path,
    genesis: &mut GenesisJson,
) -> Result<Vec<DelegatorEntry>> {
    let dkeys = out.join("delegators").join("keys");
    mkdir_private(&dkeys)?;
    let mut delegators = Vec::new();
    for i in 0..plan.delegators {
        let name = format!("delegator{i}");
        let key_file = dkeys.join(format!("{name}.key"));
        let info = keys::save_account(&key_file, &keys::generate_account()?)?;
        genesis.accounts.push(GenesisAccountJson {
            address: info.address.to_string(),
            balance: DELEGATOR_BALANCE.into(),
        });
        delegators.push(DelegatorEntry {
            name,
            address: info.address.to_string(),
            key_file,
            balance: DELEGATOR_BALANCE.into(),
        });
    }
    Ok(delegators)
}

/// Validates `genesis` and writes it to `out/genesis.json` and every home;
/// returns the former's path.
fn write_genesis(genesis: &GenesisJson, out: &Path, homes: &[Home]) -> Result<PathBuf> {
    genesis.validate().context("the generated genesis")?;
    let gtext = genesis.to_json();
    let gpath = out.join("genesis.json");
    write(&gpath, &gtext)?;
    for home in homes {
        write(&home.genesis(), &gtext)?;
    }
    Ok(gpath)
}

/// The validated config.toml of node `i`: it dials every other node, serves
/// state sync from them, and double-signs if it is one of the last
/// `plan.byzantine` (from `first_byzantine` on).
fn node_config(plan: &Plan, i: usize, node: &NodePlan, first_byzantine: usize) -> Result<Config> {
    let mut cfg = Config {
        moniker: node.moniker.clone(),
        ..Config::default()
    };
    cfg.p2p.listen = node.p2p_listen;
    cfg.p2p.peers = plan
        .nodes
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, n)| n.p2p_public)
        .collect();
    cfg.grpc.listen = node.grpc_listen;
    cfg.state_sync.snapshot_interval = plan.snapshot_interval;
    // A node of this testnet started with an empty store can join by
    // state sync with `enable` and a trusted height and hash set.
    cfg.state_sync.rpc_servers = plan
        .nodes
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, n)| format!("http://{}:{}", n.p2p_public.ip(), n.grpc_listen.port()))
        .collect();
    cfg.metrics.enabled = true;
    cfg.metrics.listen = node.metrics_listen;
    if let Some(e) = node.explorer_listen {
        cfg.explorer.enabled = true;
        cfg.explorer.listen = e;
    }
    if plan.fast_timeouts {
        let c = &mut cfg.consensus;
        c.timeout_propose_ms = 600;
        c.timeout_propose_delta_ms = 200;
        c.timeout_prevote_ms = 200;
        c.timeout_prevote_delta_ms = 100;
        c.timeout_precommit_ms = 200;
        c.timeout_precommit_delta_ms = 100;
        c.timeout_commit_ms = 50;
    }
    cfg.testing.double_sign = i >= first_byzantine && !plan.byzantine_once;
    cfg.testing.double_sign_once = i >= first_byzantine && plan.byzantine_once;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("generated config of {}: {e}", node.moniker))?;
    Ok(cfg)
}

/// Balance of each extra genesis account, base units.
const EXTRA_ACCOUNT_BALANCE: &str = "1000";

/// The address of extra account `i`: the first 20 bytes of
/// SHA3-256("agora/testnet/extra-account" ‖ i as u64 big-endian).
pub fn extra_account(i: usize) -> Address {
    let h = agora_validator::crypto::sha3_256_parts(&[
        b"agora/testnet/extra-account",
        &(i as u64).to_be_bytes(),
    ]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[..20]);
    Address(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_homes_share_one_genesis_and_mesh() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = loopback_plan(3, 31000, "t-net", 20).unwrap();
        plan.byzantine = 1;
        let g = generate(&plan, dir.path()).unwrap();
        let shared = std::fs::read(&g.genesis).unwrap();
        for (i, h) in g.homes.iter().enumerate() {
            let home = Home::new(h);
            assert_eq!(std::fs::read(home.genesis()).unwrap(), shared);
            let cfg = home.load_config().unwrap();
            assert_eq!(cfg.p2p.listen.port(), 31000 + 10 * i as u16);
            assert_eq!(cfg.grpc.listen.port(), 31001 + 10 * i as u16);
            assert_eq!(cfg.p2p.peers.len(), 2);
            assert!(!cfg.p2p.peers.contains(&cfg.p2p.listen));
            let key = home.load_validator_key().unwrap();
            assert_eq!(Address::of(&key.public_key()), g.validators[i]);
            // The operator is the home's Ed25519 account key, not the consensus key.
            let op = keys::load_account(&home.operator_key()).unwrap();
            let genesis = home.load_genesis().unwrap().genesis;
            assert_eq!(
                genesis.validators[i].operator,
                Address::of_account(&op.public_key()).0.to_vec()
            );
            assert!(home.load_tls().is_ok());
            assert_eq!(
                cfg.testing.double_sign,
                i == 2,
                "only the last node double-signs"
            );
            assert!(!cfg.testing.double_sign_once);
        }
        let loaded = Home::new(&g.homes[0]).load_genesis().unwrap();
        assert_eq!(loaded.genesis.validators.len(), 3);
        assert_eq!(loaded.genesis.params.unwrap().unbonding_period, 20);
        assert_eq!(loaded.genesis.accounts.len(), 3 + g.delegators.len());
        for d in &g.delegators {
            let info = keys::info(&d.key_file).unwrap();
            assert_eq!(info.address.to_string(), d.address);
        }
        // A second generation into the same directory is refused.
        assert!(generate(&plan, dir.path()).is_err());
        // --byzantine-once: the same node, once.
        let dir = tempfile::tempdir().unwrap();
        plan.byzantine_once = true;
        let g = generate(&plan, dir.path()).unwrap();
        let cfg = Home::new(&g.homes[2]).load_config().unwrap();
        assert!(cfg.testing.double_sign_once && !cfg.testing.double_sign);
    }

    #[test]
    fn hosts_listen_everywhere_and_dial_each_other() {
        let hosts: Vec<String> = ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3:4000"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let plan = hosts_plan(&hosts, 26656, "t-net", 20).unwrap();
        let addrs: Vec<String> = plan
            .nodes
            .iter()
            .map(|n| n.p2p_public.to_string())
            .collect();
        assert_eq!(
            addrs,
            [
                "10.0.0.1:26656",
                "10.0.0.2:26656",
                "10.0.0.1:26666",
                "10.0.0.3:4000"
            ]
        );
        assert!(
            plan.nodes
                .iter()
                .all(|n| n.p2p_listen.ip().is_unspecified())
        );
        assert!(
            plan.nodes
                .iter()
                .all(|n| n.grpc_listen.ip().is_unspecified())
        );
        let dup: Vec<String> = vec!["10.0.0.1:5".into(), "10.0.0.1:5".into()];
        assert!(hosts_plan(&dup, 26656, "t-net", 20).is_err());
    }

    #[test]
    fn port_overflow_is_an_error() {
        assert!(ports(65530, 1).is_err());
        assert_eq!(ports(27000, 2).unwrap(), (27020, 27021, 27022));
    }
}
