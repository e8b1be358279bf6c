//! `agora-testnet generate --compose` as a real process: the files it writes
//! are checked by an independent validator (it shares no code with the
//! generator; configs go through the node's own parser), the validator is
//! shown to reject corrupted files, and where a Docker daemon answers the
//! project is started and every node must commit heights.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agora_node::config::Config;
use serde_json::Value;

fn testnet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agora-testnet"))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs `generate --compose` into `out`; panics with its stderr on failure.
fn generate(out: &Path, validators: usize, subnet: &str, publish_base: u16) -> String {
    let o = testnet()
        .args(["generate", "--compose", "--validators"])
        .arg(validators.to_string())
        .args(["--subnet", subnet, "--publish-base-port"])
        .arg(publish_base.to_string())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "generate --compose failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What is wrong with a generated compose directory.
#[derive(Debug)]
#[expect(
    dead_code,
    reason = "the fields are read through Debug, in failure messages"
)]
enum Defect {
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
struct Checked {
    /// gRPC endpoint on this machine of each service, by service name.
    grpc: Vec<(String, SocketAddr)>,
}

fn str_of<'a>(v: &'a Value, service: &str, what: &str) -> Result<&'a str, Defect> {
    v.as_str().ok_or_else(|| Defect::Service {
        service: service.into(),
        detail: format!("{what} is not a string: {v}"),
    })
}

/// Checks `dir` (written by `generate --compose`) for `n` validators.
fn check(dir: &Path, n: usize) -> Result<Checked, Defect> {
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
fn check_dockerfile(path: &Path) -> Result<(), Defect> {
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

/// Replaces `from` by `to` in `path` (which must contain it), runs `f`,
/// then restores the file.
fn with_edit<T>(path: &Path, from: &str, to: &str, f: impl FnOnce() -> T) -> T {
    let original = std::fs::read_to_string(path).unwrap();
    assert!(original.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, original.replacen(from, to, 1)).unwrap();
    let r = f();
    std::fs::write(path, original).unwrap();
    r
}

#[test]
fn generated_compose_project_is_consistent_and_corruption_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("net");
    let stdout = generate(&out, 4, "172.28.0.0/24", 27000);
    assert!(stdout.contains("docker compose -f"), "{stdout}");
    let checked = check(&out, 4).unwrap_or_else(|d| panic!("generated files rejected: {d:?}"));
    let grpc: Vec<String> = checked.grpc.iter().map(|(_, a)| a.to_string()).collect();
    assert_eq!(
        grpc,
        [
            "127.0.0.1:27001",
            "127.0.0.1:27011",
            "127.0.0.1:27021",
            "127.0.0.1:27031"
        ]
    );
    check_dockerfile(&repo_root().join("testnet/docker/Dockerfile"))
        .unwrap_or_else(|d| panic!("Dockerfile rejected: {d:?}"));
    // `status --dir` reads the manifest: the published gRPC ports.
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("testnet.json")).unwrap()).unwrap();
    assert_eq!(m["nodes"][2]["grpc"], "127.0.0.1:27021");
    assert_eq!(m["nodes"][2]["p2p"], "172.28.0.12:26656");

    // Negative controls: each corruption is caught, and the restored files pass.
    let cfg1 = out.join("node1/config.toml");
    let r = with_edit(
        &cfg1,
        "\"172.28.0.12:26656\"",
        "\"172.28.0.99:26656\"",
        || check(&out, 4),
    );
    assert!(
        matches!(&r, Err(Defect::Peers { service, .. }) if service == "node1"),
        "{:?}",
        r.err()
    );
    let r = with_edit(
        &cfg1,
        "\"172.28.0.12:26656\"",
        "\"172.28.0.11:26656\"",
        || check(&out, 4),
    );
    assert!(
        matches!(&r, Err(Defect::Peers { .. })),
        "a node listing itself: {:?}",
        r.err()
    );
    let compose = out.join("docker-compose.yml");
    let r = with_edit(&compose, "\"./node2:/agora\"", "\"./node3:/agora\"", || {
        check(&out, 4)
    });
    assert!(matches!(&r, Err(Defect::Volume { .. })), "{:?}", r.err());
    let r = with_edit(&compose, "127.0.0.1:27011:", "127.0.0.1:27001:", || {
        check(&out, 4)
    });
    assert!(matches!(&r, Err(Defect::HostPort { .. })), "{:?}", r.err());
    let r = with_edit(&compose, "\"172.28.0.13\"", "\"172.28.1.13\"", || {
        check(&out, 4)
    });
    assert!(matches!(&r, Err(Defect::Ip { .. })), "{:?}", r.err());
    let r = with_edit(
        &out.join("node3/genesis.json"),
        "\"chain_id\"",
        " \"chain_id\"",
        || check(&out, 4),
    );
    assert!(matches!(&r, Err(Defect::Genesis { .. })), "{:?}", r.err());
    assert!(matches!(check(&out, 5), Err(Defect::ServiceCount { .. })));
    check(&out, 4).unwrap_or_else(|d| panic!("restored files rejected: {d:?}"));

    // A compose implementation, where installed, must accept the file too
    // (`config` needs no daemon).
    match compose_cli() {
        Some(cli) => {
            let o = run_compose(&cli, &compose, None, &["config", "--quiet"]);
            assert!(
                o.status.success(),
                "{cli:?} config: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            println!("{cli:?} config accepts {}", compose.display());
        }
        None => println!(
            "SKIP compose config: neither `docker compose` nor `docker-compose` is installed"
        ),
    }
}

#[test]
fn compose_refuses_a_subnet_without_room_and_mixed_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let o = testnet()
        .args([
            "generate",
            "--compose",
            "--validators",
            "8",
            "--subnet",
            "10.5.0.0/28",
            "--out",
        ])
        .arg(tmp.path().join("a"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no room for node"));
    assert!(
        !tmp.path().join("a/node0").exists(),
        "wrote homes before refusing"
    );
    let o = testnet()
        .args(["generate", "--compose", "--hosts", "10.0.0.1", "--out"])
        .arg(tmp.path().join("b"))
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "--hosts and --compose together were accepted"
    );
}

/// `docker compose` (v2) or `docker-compose` (v1), whichever answers.
fn compose_cli() -> Option<Vec<&'static str>> {
    [vec!["docker", "compose"], vec!["docker-compose"]]
        .into_iter()
        .find(|cli| {
            Command::new(cli[0])
                .args(&cli[1..])
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn run_compose(
    cli: &[&str],
    file: &Path,
    project: Option<&str>,
    args: &[&str],
) -> std::process::Output {
    let mut c = Command::new(cli[0]);
    c.args(&cli[1..]).arg("-f").arg(file);
    if let Some(p) = project {
        c.args(["-p", p]);
    }
    c.args(args).output().unwrap()
}

/// Takes the compose project down however the test ends.
struct Down<'a> {
    cli: Vec<&'static str>,
    file: &'a Path,
    project: String,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let o = run_compose(
            &self.cli,
            self.file,
            Some(&self.project),
            &["down", "--remove-orphans", "-t", "20"],
        );
        if !o.status.success() {
            eprintln!("compose down: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
}

/// A publish base whose gRPC and metrics ports for `n` nodes are free now.
fn free_publish_base(n: usize) -> u16 {
    (0..40)
        .map(|k| 33000 + 400 * k)
        .find(|base| {
            (0..n).all(|i| {
                [1, 2].iter().all(|d| {
                    std::net::TcpListener::bind(("127.0.0.1", base + 10 * i as u16 + d)).is_ok()
                })
            })
        })
        .expect("no free port range")
}

#[test]
fn compose_project_commits_heights_where_docker_runs() {
    let info = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    let daemon = match &info {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => {
            println!(
                "SKIP docker run: `docker info` failed, no Docker daemon here ({}); only the generated files were checked",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            println!(
                "SKIP docker run: no `docker` client ({e}); only the generated files were checked"
            );
            return;
        }
    };
    let Some(cli) = compose_cli() else {
        println!(
            "SKIP docker run: daemon {daemon} but no compose (`docker compose` or `docker-compose`)"
        );
        return;
    };
    let n = 4;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("net");
    // An unusual subnet, so that it does not collide with other networks.
    let subnet = format!("172.29.{}.0/24", std::process::id() % 250);
    generate(&out, n, &subnet, free_publish_base(n));
    let checked = check(&out, n).unwrap_or_else(|d| panic!("generated files rejected: {d:?}"));
    let file = out.join("docker-compose.yml");
    let down = Down {
        cli: cli.clone(),
        file: &file,
        project: format!("agora-compose-test-{}", std::process::id()),
    };
    let up = run_compose(&cli, &file, Some(&down.project), &["up", "-d", "--build"]);
    assert!(
        up.status.success(),
        "compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let start: HashMap<String, u64> = HashMap::new();
    let result = rt.block_on(wait_for_heights(
        &checked.grpc,
        start,
        Duration::from_secs(180),
    ));
    if let Err(e) = result {
        let logs = run_compose(
            &cli,
            &file,
            Some(&down.project),
            &["logs", "--no-color", "--tail", "40"],
        );
        panic!("{e}\n{}", String::from_utf8_lossy(&logs.stdout));
    }
    println!("compose project on Docker {daemon}: every node committed 3 heights");
    drop(down);
}

/// Polls every node's `GetStatus` until each has committed 3 heights past
/// the first it reported, or `limit` passes.
async fn wait_for_heights(
    nodes: &[(String, SocketAddr)],
    mut first: HashMap<String, u64>,
    limit: Duration,
) -> Result<(), String> {
    use agora_proto::v1 as pb;
    use agora_proto::v1::query_client::QueryClient;
    let deadline = Instant::now() + limit;
    let mut last: HashMap<String, String> = HashMap::new();
    loop {
        let mut done = 0;
        for (name, addr) in nodes {
            let status = async {
                let mut c = QueryClient::connect(format!("http://{addr}"))
                    .await
                    .map_err(|e| e.to_string())?;
                c.get_status(pb::GetStatusRequest {})
                    .await
                    .map(|r| r.into_inner().latest_height)
                    .map_err(|s| s.message().to_string())
            };
            match tokio::time::timeout(Duration::from_secs(3), status).await {
                Ok(Ok(h)) => {
                    let h0 = *first.entry(name.clone()).or_insert(h);
                    last.insert(name.clone(), format!("height {h} (first seen {h0})"));
                    if h >= h0 + 3 {
                        done += 1;
                    }
                }
                Ok(Err(e)) => {
                    last.insert(name.clone(), e);
                }
                Err(_) => {
                    last.insert(name.clone(), "GetStatus timed out".into());
                }
            }
        }
        if done == nodes.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "heights did not advance within {limit:?}: {last:?}"
            ));
        }
        // Polling interval between status reads (not a synchronisation).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
