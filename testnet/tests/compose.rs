//! `agora-testnet generate --compose` as a real process: the files it writes
//! are checked by an independent validator (it shares no code with the
//! generator; configs go through the node's own parser), the validator is
//! shown to reject corrupted files, and where a Docker daemon answers the
//! project is started and every node must commit heights.

#[path = "support/compose_check.rs"]
mod compose_check;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use compose_check::{Defect, check, check_dockerfile, repo_root};
use serde_json::Value;

fn testnet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agora-testnet"))
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
