//! An independent validator of what `agora-testnet generate --compose`
//! writes: it shares no code with the generator and reads each home's
//! config with the node's own parser (`agora_node::config`). Included by
//! `tests/compose.rs`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use agora_node::config::Config;
use serde_json::Value;

/// The repository root (the Docker build context).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What is wrong with a generated compose directory.
#[derive(Debug)]
#[expect(
    dead_code,
    reason = "the fields are read through Debug, in failure messages"
)]
pub enum Defect {
    /// The compose file is missing, unparseable or misshapen.
    Compose(String),
    /// The network section.
    Network(String),
    /// Not one service per validator.
    ServiceCount { expected: usize, found: usize },
    /// A bridge address outside the subnet, reserved, or shared.
    Ip { service: String, detail: String },
    /// The mounted home is missing, shared, or another node's.
    Volume { service: String, detail: String },
    /// The home's config does not parse or does not listen everywhere.
    Config { service: String, detail: String },
    /// The genesis differs from the shared one.
    Genesis { service: String },
    /// Peers are not exactly the other services' bridge addresses.
    Peers {
        service: String,
        expected: BTreeSet<SocketAddr>,
        found: Vec<SocketAddr>,
    },
    /// A published port is malformed, not on loopback, shared, or missing.
    HostPort { service: String, detail: String },
    /// The container would run as someone who cannot read the home.
    User { service: String, detail: String },
    /// Image, build section or command.
    Service { service: String, detail: String },
    /// The Dockerfile or its ignore file.
    Dockerfile(String),
}

/// A parsed `a.b.c.d/len`.
fn parse_subnet(s: &str) -> Option<(u32, u32)> {
    let (ip, len) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    if !(1..=30).contains(&len) {
        return None;
    }
    let mask = u32::MAX << (32 - len);
    (u32::from(ip) & !mask == 0).then_some((u32::from(ip), mask))
}

/// What a valid directory yields for running it.
pub struct Checked {
    /// gRPC endpoint on this machine of each service, by service name.
    pub grpc: Vec<(String, SocketAddr)>,
}

fn str_of<'a>(v: &'a Value, service: &str, what: &str) -> Result<&'a str, Defect> {
    v.as_str().ok_or_else(|| Defect::Service {
        service: service.into(),
        detail: format!("{what} is not a string: {v}"),
    })
}

/// Checks `dir` (written by `generate --compose`) for `n` validators.
pub fn check(dir: &Path, n: usize) -> Result<Checked, Defect> {
    let text = std::fs::read_to_string(dir.join("docker-compose.yml"))
        .map_err(|e| Defect::Compose(format!("reading: {e}")))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| Defect::Compose(e.to_string()))?;
    let networks = doc["networks"]
        .as_object()
        .ok_or_else(|| Defect::Network("no networks".into()))?;
    if networks.len() != 1 {
        return Err(Defect::Network(format!("{} networks", networks.len())));
    }
    let (net, netdef) = networks.iter().next().unwrap();
    if netdef["driver"] != "bridge" {
        return Err(Defect::Network(format!("driver {}", netdef["driver"])));
    }
    let subnet_text = netdef["ipam"]["config"][0]["subnet"].as_str().unwrap_or("");
    let (network, mask) = parse_subnet(subnet_text)
        .ok_or_else(|| Defect::Network(format!("bad subnet {subnet_text:?}")))?;
    let services = doc["services"]
        .as_object()
        .ok_or_else(|| Defect::Compose("no services".into()))?;
    if services.len() != n {
        return Err(Defect::ServiceCount {
            expected: n,
            found: services.len(),
        });
    }
    let genesis = std::fs::read(dir.join("genesis.json"))
        .map_err(|e| Defect::Compose(format!("genesis.json: {e}")))?;
    let mut ips = HashSet::new();
    let mut homes = HashSet::new();
    let mut host_ports = HashSet::new();
    let mut images = HashSet::new();
    let mut p2p: HashMap<String, SocketAddr> = HashMap::new();
    let mut peers: Vec<(String, Vec<SocketAddr>)> = Vec::new();
    let mut grpc = Vec::new();
    for (name, svc) in services {
        let service = || name.clone();
        // The bridge address.
        let ip_text = str_of(&svc["networks"][net]["ipv4_address"], name, "ipv4_address")?;
        let ip: Ipv4Addr = ip_text.parse().map_err(|_| Defect::Ip {
            service: service(),
            detail: format!("{ip_text:?} is no IPv4 address"),
        })?;
        let host = u32::from(ip);
        if host & mask != network
            || host == network
            || host == network | !mask
            || host == network + 1
        {
            return Err(Defect::Ip {
                service: service(),
                detail: format!("{ip} is not a free host of {subnet_text}"),
            });
        }
        if !ips.insert(ip) {
            return Err(Defect::Ip {
                service: service(),
                detail: format!("{ip} is taken by another service"),
            });
        }
        // The home: one bind mount, of a home whose moniker is the service.
        let volumes = svc["volumes"].as_array().cloned().unwrap_or_default();
        let [volume] = volumes.as_slice() else {
            return Err(Defect::Volume {
                service: service(),
                detail: format!("{} volumes", volumes.len()),
            });
        };
        let volume = str_of(volume, name, "volume")?;
        let (src, target) = volume.split_once(':').ok_or_else(|| Defect::Volume {
            service: service(),
            detail: format!("{volume:?} is not SRC:TARGET"),
        })?;
        let home = dir.join(src).canonicalize().map_err(|e| Defect::Volume {
            service: service(),
            detail: format!("{src}: {e}"),
        })?;
        if !homes.insert(home.clone()) {
            return Err(Defect::Volume {
                service: service(),
                detail: format!("{} is mounted by another service too", home.display()),
            });
        }
        let cfg = Config::load(&home.join("config.toml")).map_err(|e| Defect::Config {
            service: service(),
            detail: e.to_string(),
        })?;
        if cfg.moniker != *name {
            return Err(Defect::Volume {
                service: service(),
                detail: format!("{} is the home of {}", home.display(), cfg.moniker),
            });
        }
        for (what, a) in [
            ("p2p", cfg.p2p.listen),
            ("grpc", cfg.grpc.listen),
            ("metrics", cfg.metrics.listen),
        ] {
            if !a.ip().is_unspecified() {
                return Err(Defect::Config {
                    service: service(),
                    detail: format!(
                        "{what} listens on {a}, unreachable from outside the container"
                    ),
                });
            }
        }
        if std::fs::read(home.join("genesis.json")).ok().as_deref() != Some(&genesis[..]) {
            return Err(Defect::Genesis { service: service() });
        }
        // Runs `start --home TARGET`.
        let command: Vec<&str> = svc["command"]
            .as_array()
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let home_arg = command
            .iter()
            .position(|a| *a == "--home")
            .and_then(|i| command.get(i + 1));
        if command.first() != Some(&"start") || home_arg != Some(&target) {
            return Err(Defect::Service {
                service: service(),
                detail: format!("command {command:?} does not start the node from {target}"),
            });
        }
        // As the owner of the home, never root.
        let meta = std::fs::metadata(&home).unwrap();
        let owner = format!("{}:{}", meta.uid(), meta.gid());
        let user = str_of(&svc["user"], name, "user")?;
        if user != owner || meta.uid() == 0 {
            return Err(Defect::User {
                service: service(),
                detail: format!("runs as {user:?}, home owned by {owner}"),
            });
        }
        // gRPC and metrics published on loopback, on ports of their own.
        let mut published = HashMap::new();
        for p in svc["ports"].as_array().cloned().unwrap_or_default() {
            let p = str_of(&p, name, "port")?;
            let parsed = p
                .rsplit_once(':')
                .and_then(|(h, c)| Some((h.parse::<SocketAddr>().ok()?, c.parse::<u16>().ok()?)));
            let Some((h, c)) = parsed.filter(|(h, _)| h.ip().is_loopback()) else {
                return Err(Defect::HostPort {
                    service: service(),
                    detail: format!("{p:?} is not 127.0.0.1:HOST:CONTAINER"),
                });
            };
            if !host_ports.insert(h.port()) {
                return Err(Defect::HostPort {
                    service: service(),
                    detail: format!("host port {} is published twice", h.port()),
                });
            }
            published.insert(c, h);
        }
        for (what, port) in [
            ("grpc", cfg.grpc.listen.port()),
            ("metrics", cfg.metrics.listen.port()),
        ] {
            if !published.contains_key(&port) {
                return Err(Defect::HostPort {
                    service: service(),
                    detail: format!("{what} port {port} is not published"),
                });
            }
        }
        grpc.push((name.clone(), published[&cfg.grpc.listen.port()]));
        // The image, built from the repository's Dockerfile.
        images.insert(str_of(&svc["image"], name, "image")?.to_string());
        let dockerfile = Path::new(str_of(&svc["build"]["context"], name, "build.context")?).join(
            str_of(&svc["build"]["dockerfile"], name, "build.dockerfile")?,
        );
        if dockerfile.canonicalize().ok()
            != repo_root()
                .join("testnet/docker/Dockerfile")
                .canonicalize()
                .ok()
        {
            return Err(Defect::Service {
                service: service(),
                detail: format!(
                    "builds {}, not the repository's Dockerfile",
                    dockerfile.display()
                ),
            });
        }
        if svc["restart"].as_str().is_none_or(|r| r == "no") {
            return Err(Defect::Service {
                service: service(),
                detail: "no restart policy".into(),
            });
        }
        p2p.insert(name.clone(), SocketAddr::from((ip, cfg.p2p.listen.port())));
        peers.push((name.clone(), cfg.p2p.peers.clone()));
    }
    if images.len() != 1 {
        return Err(Defect::Compose(format!(
            "services run different images: {images:?}"
        )));
    }
    for (service, found) in peers {
        let expected: BTreeSet<SocketAddr> = p2p
            .iter()
            .filter(|(other, _)| **other != service)
            .map(|(_, a)| *a)
            .collect();
        if found.len() != expected.len()
            || found.iter().copied().collect::<BTreeSet<_>>() != expected
        {
            return Err(Defect::Peers {
                service,
                expected,
                found,
            });
        }
    }
    Ok(Checked { grpc })
}

/// Checks the Dockerfile: it builds and runs the binary agora-node
/// declares, not as root, and its ignore file keeps target/ and .git out
/// of the build context.
pub fn check_dockerfile(path: &Path) -> Result<(), Defect> {
    let text = std::fs::read_to_string(path).map_err(|e| Defect::Dockerfile(e.to_string()))?;
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo_root().join("node/Cargo.toml")).unwrap())
            .unwrap();
    let bin = manifest["bin"][0]["name"].as_str().unwrap();
    let entry = text
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .ok_or_else(|| Defect::Dockerfile("no ENTRYPOINT".into()))?;
    let entry: Vec<String> =
        serde_json::from_str(entry).map_err(|e| Defect::Dockerfile(format!("ENTRYPOINT: {e}")))?;
    if entry != [bin] {
        return Err(Defect::Dockerfile(format!(
            "ENTRYPOINT {entry:?}, the crate builds {bin:?}"
        )));
    }
    for needle in [
        format!("--bin {bin}"),
        format!("target/release/{bin}"),
        "-p agora-node".to_string(),
    ] {
        if !text.contains(&needle) {
            return Err(Defect::Dockerfile(format!("no {needle:?}")));
        }
    }
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .ok_or_else(|| Defect::Dockerfile("no USER: runs as root".into()))?;
    if user.starts_with("root") || user.starts_with('0') {
        return Err(Defect::Dockerfile(format!("runs as {user}")));
    }
    let ignore = std::fs::read_to_string(path.with_file_name("Dockerfile.dockerignore"))
        .map_err(|e| Defect::Dockerfile(format!("Dockerfile.dockerignore: {e}")))?;
    let rules: HashSet<&str> = ignore.lines().map(str::trim).collect();
    if !(rules.contains("target/") || rules.contains("target")) || !rules.contains(".git") {
        return Err(Defect::Dockerfile(
            "the ignore file keeps target/ or .git".into(),
        ));
    }
    Ok(())
}
