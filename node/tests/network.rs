//! Four real `agora` processes on loopback: they commit blocks together, one
//! is killed with SIGKILL and restarted and catches up, and afterwards every
//! node stores the same blocks and no evidence exists. A second run kills
//! validators at random moments many times over (seeded; `KILL_SEED` replays
//! a schedule), and a third watches a double signer get slashed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_node::storage::Storage;
use agora_validator::block::header_hash;

const N: usize = 4;
/// Heights the first test's four validators must commit.
const MIN_HEIGHTS: u64 = 100;

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

fn height(port: u16) -> Option<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix("agora_height "))
        .and_then(|v| v.parse().ok())
}

fn start(home: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["start", "--home", home.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_heights(ports: &[u16], which: &[usize], at_least: u64, secs: u64, logs: &[PathBuf]) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let hs: Vec<u64> = which
            .iter()
            .map(|&i| height(ports[i]).unwrap_or(0))
            .collect();
        if hs.iter().all(|h| *h >= at_least) {
            return;
        }
        if Instant::now() > deadline {
            let tail: String = logs
                .iter()
                .map(|l| {
                    let t = std::fs::read_to_string(l).unwrap_or_default();
                    let lines: Vec<&str> = t.lines().collect();
                    lines[lines.len().saturating_sub(15)..].join("\n")
                })
                .collect::<Vec<_>>()
                .join("\n-----\n");
            panic!("nodes {which:?} at heights {hs:?}, wanted {at_least}\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(child: &mut Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "node did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The node processes of a test; whatever still runs when the test ends
/// (a failed assertion included) is killed, so no node outlives its test.
struct Nodes(Vec<Child>);

impl std::ops::Deref for Nodes {
    type Target = Vec<Child>;
    fn deref(&self) -> &Vec<Child> {
        &self.0
    }
}

impl std::ops::DerefMut for Nodes {
    fn deref_mut(&mut self) -> &mut Vec<Child> {
        &mut self.0
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

struct Net {
    _dir: tempfile::TempDir,
    homes: Vec<PathBuf>,
    logs: Vec<PathBuf>,
    metrics: Vec<u16>,
    grpc: Vec<u16>,
}

/// Four validator homes sharing one genesis, with short timeouts and a full
/// mesh; validators in `double_signers` run with `testing.double_sign`.
fn build(double_signers: &[usize]) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let homes: Vec<PathBuf> = (0..N).map(|i| dir.path().join(format!("n{i}"))).collect();
    let logs: Vec<PathBuf> = (0..N)
        .map(|i| dir.path().join(format!("n{i}.log")))
        .collect();
    for (i, h) in homes.iter().enumerate() {
        let out = Command::new(env!("CARGO_BIN_EXE_agora"))
            .args([
                "init",
                "--home",
                h.to_str().unwrap(),
                "--chain-id",
                "net-test",
            ])
            .args(["--moniker", &format!("v{i}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // One genesis with all four validators, byte-identical in every home.
    let mut genesis: serde_json::Value =
        serde_json::from_slice(&std::fs::read(homes[0].join("genesis.json")).unwrap()).unwrap();
    let (mut vals, mut accts) = (Vec::new(), Vec::new());
    for h in &homes {
        let g: serde_json::Value =
            serde_json::from_slice(&std::fs::read(h.join("genesis.json")).unwrap()).unwrap();
        vals.extend(g["validators"].as_array().unwrap().iter().cloned());
        accts.extend(g["accounts"].as_array().unwrap().iter().cloned());
    }
    genesis["validators"] = serde_json::Value::Array(vals);
    genesis["accounts"] = serde_json::Value::Array(accts);
    let gtext = serde_json::to_string_pretty(&genesis).unwrap();
    let p2p: Vec<u16> = (0..N).map(|_| free_port(true)).collect();
    let metrics: Vec<u16> = (0..N).map(|_| free_port(false)).collect();
    let grpc: Vec<u16> = (0..N).map(|_| free_port(false)).collect();
    for (i, h) in homes.iter().enumerate() {
        std::fs::write(h.join("genesis.json"), &gtext).unwrap();
        let mut cfg: toml::Table =
            toml::from_str(&std::fs::read_to_string(h.join("config.toml")).unwrap()).unwrap();
        let peers: Vec<toml::Value> = (0..N)
            .filter(|j| *j != i)
            .map(|j| toml::Value::String(format!("127.0.0.1:{}", p2p[j])))
            .collect();
        cfg["p2p"]["listen"] = toml::Value::String(format!("127.0.0.1:{}", p2p[i]));
        cfg["p2p"]["peers"] = toml::Value::Array(peers);
        cfg["metrics"]["listen"] = toml::Value::String(format!("127.0.0.1:{}", metrics[i]));
        cfg["grpc"]["listen"] = toml::Value::String(format!("127.0.0.1:{}", grpc[i]));
        if double_signers.contains(&i) {
            let mut t = toml::Table::new();
            t.insert("double_sign".into(), toml::Value::Boolean(true));
            cfg.insert("testing".into(), toml::Value::Table(t));
        }
        let c = cfg["consensus"].as_table_mut().unwrap();
        for (k, v) in [
            ("timeout_propose_ms", 400),
            ("timeout_prevote_ms", 200),
            ("timeout_precommit_ms", 200),
            ("timeout_commit_ms", 20),
        ] {
            c.insert(k.into(), toml::Value::Integer(v));
        }
        std::fs::write(h.join("config.toml"), toml::to_string(&cfg).unwrap()).unwrap();
    }

    Net {
        _dir: dir,
        homes,
        logs,
        metrics,
        grpc,
    }
}

#[test]
fn four_validators_commit_survive_kill_and_agree() {
    let net = build(&[]);
    let (homes, logs, metrics) = (&net.homes, &net.logs, &net.metrics);
    let mut children = Nodes(homes.iter().zip(logs).map(|(h, l)| start(h, l)).collect());
    let all: Vec<usize> = (0..N).collect();
    wait_heights(metrics, &all, 10, 120, logs);
    // Throughput with four validators (debug build, shortened timeouts; informational).
    let (t0, h0) = (Instant::now(), height(metrics[0]).unwrap_or(0));
    wait_heights(metrics, &all, h0 + 20, 120, logs);
    let rate = (height(metrics[0]).unwrap_or(0) - h0) as f64 / t0.elapsed().as_secs_f64();
    eprintln!("4 validators: {rate:.1} heights/s");

    // SIGKILL one validator; the other three (3/4 > 2/3 of the power) go on.
    children[3].kill().unwrap();
    children[3].wait().unwrap();
    let h_kill = (0..3)
        .map(|i| height(metrics[i]).unwrap_or(0))
        .max()
        .unwrap();
    wait_heights(metrics, &[0, 1, 2], h_kill + 10, 120, logs);

    // Restart it: it resumes from its storage and catches up; all four then
    // go on together past height 100.
    children[3] = start(&homes[3], &logs[3]);
    let target = (0..3)
        .map(|i| height(metrics[i]).unwrap_or(0))
        .max()
        .unwrap()
        + 5;
    wait_heights(metrics, &all, target.max(MIN_HEIGHTS), 180, logs);

    for c in children.iter_mut() {
        stop(c);
    }
    assert_stored_chains_agree(homes, target.max(MIN_HEIGHTS));
}

/// Opens every node's redb after the processes stopped and checks that all
/// store the same block (and a certificate) at every height up to the lowest
/// tip, which is at least `at_least`, and that nobody recorded evidence: a
/// restarted validator that signed twice would be caught by its peers.
fn assert_stored_chains_agree(homes: &[PathBuf], at_least: u64) {
    let dbs: Vec<Storage> = homes
        .iter()
        .map(|h| Storage::open(h.join("data/node.redb")).unwrap())
        .collect();
    let common = dbs
        .iter()
        .map(|d| d.latest_height().unwrap().unwrap())
        .min()
        .unwrap();
    assert!(
        common >= at_least,
        "common height {common} below {at_least}"
    );
    for h in 1..=common {
        let hashes: Vec<_> = dbs
            .iter()
            .map(|d| header_hash(d.block(h).unwrap().unwrap().header.as_ref().unwrap()))
            .collect();
        assert!(
            hashes.iter().all(|x| *x == hashes[0]),
            "height {h}: nodes disagree"
        );
        assert!(dbs.iter().all(|d| d.certificate(h).unwrap().is_some()));
    }
    for (i, d) in dbs.iter().enumerate() {
        let ev = d.evidence().unwrap();
        assert!(
            ev.is_empty(),
            "node {i} holds evidence of double signing: {ev:?}"
        );
    }
}

/// SIGKILL at random moments, many times: each round picks a validator,
/// lets it run for a random while (mid-height, mid-sync, or right after its
/// restart), kills it, and restarts it after a random pause. Only one
/// validator is down at a time, so the other three (3/4 of the power) keep
/// committing. Afterwards all four catch up, their stored chains agree and
/// no evidence exists: no restart ever made a validator sign twice.
#[test]
fn validators_killed_at_random_moments_never_double_sign() {
    use rand::{Rng, SeedableRng};
    const ROUNDS: usize = 12;
    let seed: u64 = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("kill schedule seed {seed} (KILL_SEED={seed} replays the schedule)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let net = build(&[]);
    let (homes, logs, metrics) = (&net.homes, &net.logs, &net.metrics);
    let mut children = Nodes(homes.iter().zip(logs).map(|(h, l)| start(h, l)).collect());
    let all: Vec<usize> = (0..N).collect();
    wait_heights(metrics, &all, 3, 120, logs);
    for round in 0..ROUNDS {
        let victim = rng.random_range(0..N);
        let others: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
        // A random moment: anywhere from at once to a few heights later.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1_500)));
        children[victim].kill().unwrap();
        children[victim].wait().unwrap();
        let h = others
            .iter()
            .map(|&i| height(metrics[i]).unwrap_or(0))
            .max()
            .unwrap_or(0);
        eprintln!("round {round}: killed v{victim} near height {h}");
        // The rest must go on without it.
        wait_heights(metrics, &others, h + 2, 120, logs);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1_000)));
        children[victim] = start(&homes[victim], &logs[victim]);
    }
    let tip = all
        .iter()
        .map(|&i| height(metrics[i]).unwrap_or(0))
        .max()
        .unwrap();
    wait_heights(metrics, &all, tip + 3, 120, logs);
    for c in children.iter_mut() {
        stop(c);
    }
    assert_stored_chains_agree(homes, tip + 3);
}

#[test]
fn double_signing_validator_is_slashed_and_tombstoned_while_the_chain_commits() {
    use agora_proto::v1 as pb;
    use agora_proto::v1::query_client::QueryClient;
    let net = build(&[3]);
    let (homes, logs, metrics) = (&net.homes, &net.logs, &net.metrics);
    let mut children = Nodes(homes.iter().zip(logs).map(|(h, l)| start(h, l)).collect());
    let all: Vec<usize> = (0..N).collect();
    wait_heights(metrics, &all, 3, 120, logs);
    let byz = agora_node::keys::load(&homes[3].join("keys/validator.key")).unwrap();
    let byz_addr = agora_validator::Address::of(&byz.public_key());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let event = rt.block_on(async {
        let ch = agora_node::client::connect(&format!("127.0.0.1:{}", net.grpc[0]))
            .await
            .unwrap();
        let mut q = QueryClient::new(ch);
        loop {
            let ev = q
                .list_slashing_events(pb::ListSlashingEventsRequest {
                    validator: byz_addr.0.to_vec(),
                    page: None,
                })
                .await
                .unwrap()
                .into_inner()
                .events;
            if let Some(e) = ev.into_iter().next() {
                let v = q
                    .get_validator(pb::GetValidatorRequest {
                        address: byz_addr.0.to_vec(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .validator
                    .unwrap();
                assert!(v.tombstoned && v.jailed, "{v:?}");
                return e;
            }
            assert!(Instant::now() < deadline, "no slash for the double signer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    drop(rt);
    assert_eq!(event.fraction_bps, 500);
    assert!(event.tombstoned);
    // The three honest validators (3/4 of the power) keep committing.
    let h = (0..3)
        .map(|i| height(metrics[i]).unwrap_or(0))
        .max()
        .unwrap();
    wait_heights(metrics, &[0, 1, 2], h + 5, 120, logs);
    for c in children.iter_mut() {
        stop(c);
    }
    // Evidence names only the double signer.
    let db = Storage::open(homes[0].join("data/node.redb")).unwrap();
    let evidence = db.evidence().unwrap();
    assert!(!evidence.is_empty());
    for e in evidence {
        let Some(pb::evidence::Kind::DuplicateVote(d)) = e.kind else {
            panic!("unexpected evidence kind");
        };
        assert_eq!(d.vote_a.unwrap().validator_address, byz_addr.0.to_vec());
    }
}
