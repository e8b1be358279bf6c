//! `agora-testnet generate --compose`: N validators as containers of one
//! Docker Compose project on one user-defined bridge network.
//!
//! Each node gets a fixed IPv4 address in the network's subnet (node i at
//! host number [`FIRST_HOST`] + i), because `p2p.peers` holds socket
//! addresses, not names. Inside its container every node listens on
//! 0.0.0.0 with the same ports (p2p [`CONTAINER_P2P_PORT`], gRPC +1,
//! metrics +2); on the machine running Docker, gRPC and metrics of node i
//! are published on 127.0.0.1 at `publish_base + 10i + 1` and `+ 2`
//! ([`published_ports`]), the port scheme of `agora-testnet up`.
//!
//! The compose file is written as JSON, which is valid YAML, so it needs no
//! YAML library and cannot be mis-indented.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::generate::{self, Generated, Plan};
use crate::say::say;

/// Subnet of the bridge network unless `--subnet` says otherwise.
pub const DEFAULT_SUBNET: &str = "172.28.0.0/24";
/// Host number of node 0 in the subnet (lower numbers are left to the
/// gateway Docker takes).
pub const FIRST_HOST: u32 = 10;
/// p2p (QUIC, UDP) port of every node inside its container; gRPC is +1 and
/// metrics +2 (the ports the Dockerfile exposes).
pub const CONTAINER_P2P_PORT: u16 = 26656;
/// Where each node's home is mounted inside its container.
pub const CONTAINER_HOME: &str = "/agora";
/// Image every service runs (built from [`DOCKERFILE`]).
pub const IMAGE: &str = "agora:local";
/// The Dockerfile, relative to the repository root (the build context).
pub const DOCKERFILE: &str = "testnet/docker/Dockerfile";
/// uid and gid of the image's `agora` user (the Dockerfile's `useradd`).
pub const AGORA_UID: u32 = 10001;
/// File name of the compose file inside the output directory.
pub const COMPOSE_FILE: &str = "docker-compose.yml";
/// Name of the bridge network in the compose file.
pub const NETWORK: &str = "agora";

/// An IPv4 subnet in CIDR notation (`172.28.0.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// The network address (host bits zero).
    pub network: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl FromStr for Subnet {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let (ip, len) = s
            .split_once('/')
            .with_context(|| format!("subnet {s:?}: expected CIDR notation, e.g. 172.28.0.0/24"))?;
        let network: Ipv4Addr = ip
            .parse()
            .with_context(|| format!("subnet {s:?}: bad IPv4 address"))?;
        let prefix: u8 = len
            .parse()
            .with_context(|| format!("subnet {s:?}: bad prefix length"))?;
        if !(8..=28).contains(&prefix) {
            bail!("subnet {s:?}: prefix length must be in 8..=28");
        }
        let subnet = Subnet { network, prefix };
        if u32::from(network) & !subnet.mask() != 0 {
            bail!(
                "subnet {s:?}: host bits are set (did you mean {}?)",
                subnet.canonical()
            );
        }
        Ok(subnet)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Subnet {
    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    fn canonical(&self) -> Subnet {
        Subnet {
            network: Ipv4Addr::from(u32::from(self.network) & self.mask()),
            prefix: self.prefix,
        }
    }

    /// Address of node `i`: host number [`FIRST_HOST`] + i, below the
    /// broadcast address.
    pub fn node_ip(&self, i: usize) -> Result<Ipv4Addr> {
        let hosts = 1u64 << (32 - u32::from(self.prefix));
        let host = u64::from(FIRST_HOST) + i as u64;
        if host >= hosts - 1 {
            bail!(
                "subnet {self} has no room for node {i} (host number {host}); choose a larger --subnet"
            );
        }
        Ok(Ipv4Addr::from(u32::from(self.network) + host as u32))
    }
}

/// A container port of one node published on the Docker machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedPort {
    /// What it serves (`grpc`, `metrics`).
    pub name: &'static str,
    /// Where it is reachable on the Docker machine.
    pub host: SocketAddr,
    /// The port inside the container.
    pub container: u16,
}

/// What node `i` publishes on 127.0.0.1: gRPC at `publish_base + 10i + 1`,
/// metrics at `+ 2`, and for node 0 the explorer at `+ 3` (the p2p port
/// stays on the bridge network).
pub fn published_ports(publish_base: u16, i: usize) -> Result<Vec<PublishedPort>> {
    let (_, grpc, metrics) = generate::ports(publish_base, i)?;
    let (_, c_grpc, c_metrics) = generate::ports(CONTAINER_P2P_PORT, 0)?;
    let lo = |port| SocketAddr::from(([127, 0, 0, 1], port));
    Ok([
        PublishedPort {
            name: "grpc",
            host: lo(grpc),
            container: c_grpc,
        },
        PublishedPort {
            name: "metrics",
            host: lo(metrics),
            container: c_metrics,
        },
    ]
    .into_iter()
    // The explorer of node0, as `up` serves it: one page to open.
    .chain((i == 0).then(|| PublishedPort {
        name: "explorer",
        host: lo(grpc + 2),
        container: c_grpc + 2,
    }))
    .collect())
}

/// The plan of `n` validators in containers: node i at `subnet`'s host
/// [`FIRST_HOST`] + i, every listener on 0.0.0.0 at [`CONTAINER_P2P_PORT`]
/// (+1, +2), each dialling the others at their bridge addresses.
pub fn compose_plan(
    n: usize,
    subnet: Subnet,
    chain_id: &str,
    unbonding_period: u64,
) -> Result<Plan> {
    let hosts = (0..n)
        .map(|i| Ok(SocketAddr::from((subnet.node_ip(i)?, CONTAINER_P2P_PORT)).to_string()))
        .collect::<Result<Vec<_>>>()?;
    let mut plan = generate::hosts_plan(&hosts, CONTAINER_P2P_PORT, chain_id, unbonding_period)?;
    if let Some(n) = plan.nodes.first_mut() {
        n.explorer_listen = Some(SocketAddr::from(([0, 0, 0, 0], CONTAINER_P2P_PORT + 3)));
    }
    Ok(plan)
}

/// The compose project for the homes `g` wrote from `plan`: one service per
/// node running `agora start --home` [`CONTAINER_HOME`] as `user`
/// (`uid:gid`, the owner of the homes), its home (`./nodeI`, relative to the
/// compose file) mounted there, its published ports bound to 127.0.0.1.
pub fn compose_file(
    plan: &Plan,
    g: &Generated,
    subnet: Subnet,
    publish_base: u16,
    context: &Path,
    user: &str,
) -> Result<Value> {
    let mut services = serde_json::Map::new();
    for (i, (node, home)) in plan.nodes.iter().zip(&g.homes).enumerate() {
        let dir = home
            .file_name()
            .and_then(|d| d.to_str())
            .with_context(|| format!("home {} has no UTF-8 name", home.display()))?;
        let ports: Vec<String> = published_ports(publish_base, i)?
            .iter()
            .map(|p| format!("{}:{}", p.host, p.container))
            .collect();
        services.insert(
            node.moniker.clone(),
            json!({
                "image": IMAGE,
                "build": {
                    "context": context,
                    "dockerfile": DOCKERFILE,
                },
                "hostname": node.moniker,
                "user": user,
                "command": ["start", "--home", CONTAINER_HOME],
                "restart": "unless-stopped",
                "stop_grace_period": "30s",
                "environment": { "RUST_LOG": "info" },
                "volumes": [format!("./{dir}:{CONTAINER_HOME}")],
                "networks": {
                    NETWORK: { "ipv4_address": node.p2p_public.ip().to_string() },
                },
                "ports": ports,
            }),
        );
    }
    Ok(json!({
        "services": services,
        "networks": {
            NETWORK: {
                "driver": "bridge",
                "ipam": { "config": [ { "subnet": subnet.to_string() } ] },
            },
        },
    }))
}

/// The repository root this binary was built from: the default build
/// context of the compose file.
pub fn default_context() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The build context, checked to hold [`DOCKERFILE`], made absolute.
pub fn resolve_context(context: &Path) -> Result<PathBuf> {
    let abs = context
        .canonicalize()
        .with_context(|| format!("build context {}", context.display()))?;
    if !abs.join(DOCKERFILE).is_file() {
        bail!(
            "{} holds no {DOCKERFILE}; pass the Agora repository root as --docker-context",
            abs.display()
        );
    }
    Ok(abs)
}

/// The `user:` of every service: the owner of the homes. Homes written by
/// root are handed to the image's `agora` user ([`AGORA_UID`]) first, so
/// that no container runs as root and each can still read its keys (0600)
/// and write its data.
pub fn container_user(out: &Path, homes: &[PathBuf]) -> Result<String> {
    let meta = std::fs::metadata(out).with_context(|| format!("reading {}", out.display()))?;
    if meta.uid() != 0 {
        return Ok(format!("{}:{}", meta.uid(), meta.gid()));
    }
    for home in homes {
        chown_tree(home, AGORA_UID, AGORA_UID)?;
    }
    Ok(format!("{AGORA_UID}:{AGORA_UID}"))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))?;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?
        {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Writes `out/`[`COMPOSE_FILE`].
pub fn write_compose(out: &Path, compose: &Value) -> Result<PathBuf> {
    let path = out.join(COMPOSE_FILE);
    let text =
        serde_json::to_string_pretty(compose).context("serialising the compose file")? + "\n";
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// What `generate --compose` was asked for.
#[derive(Debug, Clone)]
pub struct ComposeArgs {
    /// Validators (one container each).
    pub validators: usize,
    /// Subnet of the bridge network.
    pub subnet: Subnet,
    /// Base of the ports published on 127.0.0.1 ([`published_ports`]).
    pub publish_base_port: u16,
    /// Docker build context (the repository root).
    pub context: PathBuf,
    /// Chain id.
    pub chain_id: String,
    /// Genesis unbonding period (and jail period), in heights.
    pub unbonding_period: u64,
    /// Output directory (absent or empty).
    pub out: PathBuf,
}

/// `generate --compose`: the homes, `docker-compose.yml` and a manifest
/// (`status --dir OUT` polls the published gRPC ports) under `a.out`.
pub fn run(a: ComposeArgs) -> Result<()> {
    let plan = compose_plan(a.validators, a.subnet, &a.chain_id, a.unbonding_period)?;
    // Every port and the context are checked before anything is written.
    let published = (0..plan.nodes.len())
        .map(|i| published_ports(a.publish_base_port, i))
        .collect::<Result<Vec<_>>>()?;
    let context = resolve_context(&a.context)?;
    let g = generate::generate(&plan, &a.out)?;
    let out = a
        .out
        .canonicalize()
        .with_context(|| format!("resolving {}", a.out.display()))?;
    let user = container_user(&out, &g.homes)?;
    let compose = compose_file(&plan, &g, a.subnet, a.publish_base_port, &context, &user)?;
    let path = write_compose(&out, &compose)?;
    let find = |ports: &[PublishedPort], name: &str| {
        ports
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.host)
            .with_context(|| format!("no published {name} port"))
    };
    let endpoints = published
        .iter()
        .map(|p| Ok((find(p, "grpc")?, find(p, "metrics")?)))
        .collect::<Result<Vec<_>>>()?;
    crate::manifest::Manifest::remote(&a.chain_id, &out, &plan, &g, &endpoints).save()?;

    say!(
        "wrote {} validators for Docker Compose under {} (bridge network {NETWORK:?}, subnet {}, containers run as {user})",
        plan.nodes.len(),
        out.display(),
        a.subnet
    );
    for ((node, v), (grpc, metrics)) in plan.nodes.iter().zip(&g.validators).zip(&endpoints) {
        say!(
            "  {}: p2p {} on the bridge, gRPC {grpc}, metrics http://{metrics}/metrics; validator {v}",
            node.moniker,
            node.p2p_public
        );
    }
    if let Some(e) = published
        .first()
        .and_then(|p| p.iter().find(|p| p.name == "explorer"))
    {
        say!("  explorer http://{}/ (node0)", e.host);
    }
    let file = path.display();
    say!("build the image and start: docker compose -f {file} up -d --build");
    say!(
        "watch:                     agora-testnet status --dir {}",
        out.display()
    );
    say!("logs:                      docker compose -f {file} logs -f node0");
    say!("stop (homes are kept):     docker compose -f {file} down");
    say!(
        "delegator keys: {} (agora tx ... --home {} --from delegatorN --node {})",
        out.join("delegators/keys").display(),
        out.join("delegators").display(),
        endpoints[0].0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_place_nodes_inside() {
        let s: Subnet = DEFAULT_SUBNET.parse().unwrap();
        assert_eq!(s.node_ip(0).unwrap(), Ipv4Addr::new(172, 28, 0, 10));
        assert_eq!(s.node_ip(99).unwrap(), Ipv4Addr::new(172, 28, 0, 109));
        // .255 is the broadcast address, .254 the last host.
        assert_eq!(s.node_ip(244).unwrap(), Ipv4Addr::new(172, 28, 0, 254));
        assert!(s.node_ip(245).is_err());
        let wide: Subnet = "10.9.0.0/16".parse().unwrap();
        assert_eq!(wide.node_ip(300).unwrap(), Ipv4Addr::new(10, 9, 1, 54));
        for bad in [
            "172.28.0.1/24",
            "172.28.0.0",
            "172.28.0.0/33",
            "x/24",
            "10.0.0.0/4",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn nodes_listen_everywhere_dial_bridge_addresses_and_publish_distinct_ports() {
        let s: Subnet = "172.30.5.0/24".parse().unwrap();
        let plan = compose_plan(3, s, "c", 20).unwrap();
        for (i, n) in plan.nodes.iter().enumerate() {
            assert_eq!(
                n.p2p_public.to_string(),
                format!("172.30.5.{}:26656", 10 + i)
            );
            assert!(n.p2p_listen.ip().is_unspecified() && n.grpc_listen.ip().is_unspecified());
            assert_eq!(n.grpc_listen.port(), 26657);
            assert_eq!(n.metrics_listen.port(), 26658);
        }
        let all: Vec<PublishedPort> = (0..3)
            .flat_map(|i| published_ports(27000, i).unwrap())
            .collect();
        let hosts: std::collections::HashSet<_> = all.iter().map(|p| p.host).collect();
        assert_eq!(hosts.len(), all.len(), "host ports collide: {all:?}");
        assert!(all.iter().all(|p| p.host.ip().is_loopback()));
        // node0 publishes gRPC, metrics and the explorer; node1 starts at 27011.
        assert_eq!(all[2].name, "explorer");
        assert_eq!((all[2].host.port(), all[2].container), (27003, 26659));
        assert_eq!(plan.nodes[0].explorer_listen.map(|a| a.port()), Some(26659));
        assert!(plan.nodes[1].explorer_listen.is_none());
        assert_eq!(all[3].host.port(), 27011);
        assert_eq!(all[3].container, 26657);
        assert!(published_ports(65530, 1).is_err());
    }
}
