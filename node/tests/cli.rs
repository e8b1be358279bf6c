//! The `agora` binary: init, keys, and start/stop of a real process with a
//! /metrics scrape and graceful SIGTERM shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn agora() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agora"))
}

fn run_ok(args: &[&str]) -> String {
    let out = agora().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "agora {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A server that accepts and never answers.
#[path = "../../tests/src/silent.rs"]
mod silent;
/// A one-validator chain as a real process, with a funded account.
mod support;

#[test]
fn init_keys_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let h = home.to_str().unwrap();
    let out = run_ok(&[
        "init",
        "--home",
        h,
        "--chain-id",
        "cli-test",
        "--moniker",
        "m",
    ]);
    assert!(out.contains("validator:"), "{out}");
    // A second init must refuse, with a message naming the file.
    let again = agora()
        .args(["init", "--home", h, "--chain-id", "cli-test"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let added = run_ok(&["keys", "add", "alice", "--home", h]);
    let alice_addr = added.split('\t').nth(1).unwrap().to_string();
    let list = run_ok(&["keys", "list", "--home", h]);
    assert!(list.contains(&format!("alice\t{alice_addr}")), "{list}");
    assert!(list.contains("validator\t"), "{list}");
    assert!(!list.contains("tls"), "{list}");
    let show = run_ok(&["keys", "show", "alice", "--home", h]);
    assert!(show.contains(&alice_addr), "{show}");
    assert!(!show.contains("secret"), "{show}");
    let bad = agora()
        .args(["keys", "add", "../evil", "--home", h])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    // A --home that is not one (mistyped, never made) says how to make one.
    let nowhere = dir.path().join("never-made");
    let out = agora()
        .args(["start", "--home", nowhere.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is not an Agora home"), "{err}");
    assert!(err.contains("agora init --home"), "{err}");
    // A malformed address is refused before any connection, in one sentence.
    let bad = agora()
        .args(["query", "account", "zz", "--node", "127.0.0.1:1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert_eq!(
        err.trim(),
        "error: \"zz\" is not an address (40 hex digits)",
        "{err}"
    );
}

/// A reader that left (`agora keys list | head -0`): the answer cannot be
/// delivered, and the command ends as a tool killed by SIGPIPE would (status
/// 141), without the panic and backtrace `println!` gives on a broken pipe.
#[test]
fn a_reader_that_left_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let h = home.to_str().unwrap();
    run_ok(&["init", "--home", h, "--chain-id", "cli-test"]);
    // The read end is closed before the command starts, so its first write
    // meets a broken pipe whatever the timing.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = agora()
        .args(["keys", "list", "--home", h])
        .env("RUST_BACKTRACE", "1")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(err.is_empty(), "nothing said on stderr: {err}");
}

/// `--node` naming a port that is not gRPC (here an HTTP/1 server, as the
/// metrics port is): every client command says the answer was not gRPC and
/// which setting to check, once, not "error: error: transport error" or a
/// status printed with `Debug`.
#[test]
fn a_node_address_that_is_not_grpc_is_named_as_such() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let h = home.to_str().unwrap();
    let genesis = home.join("genesis.json");
    run_ok(&["init", "--home", h, "--chain-id", "cli-test"]);
    let g = genesis.to_str().unwrap();
    let account = "00".repeat(20);
    for args in [
        vec!["query", "status", "--node", &addr],
        vec![
            "query",
            "account",
            &account,
            "--prove",
            "--genesis",
            g,
            "--node",
            &addr,
        ],
        vec!["audit", "--genesis", g, "--node", &addr],
        vec![
            "tx", "transfer", &account, "1", "--from", "operator", "--home", h, "--node", &addr,
        ],
    ] {
        let out = agora().args(&args).output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{args:?}: {said}");
        assert!(
            said.contains("no gRPC answer from the node") && said.contains("[grpc] listen"),
            "{args:?}: {said}"
        );
        assert!(
            !said.contains("error: error") && !said.contains("code:"),
            "{args:?}: {said}"
        );
    }
}

/// `--node` naming something that accepts the connection and never answers:
/// the command reports it after `--timeout` instead of waiting for good.
#[test]
fn a_node_that_never_answers_is_reported_after_the_timeout() {
    let addr = silent::silent_server().to_string();
    for args in [
        vec!["query", "status", "--timeout", "1", "--node", &addr],
        vec![
            "audit",
            "--trust",
            &format!("5:{}", "ab".repeat(32)),
            "--timeout",
            "1",
            "--node",
            &addr,
        ],
    ] {
        let t0 = Instant::now();
        let mut child = agora()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let Some(status) = exited_within(&mut child, 20) else {
            child.kill().unwrap();
            panic!("{args:?} still waiting after 20 s");
        };
        let mut said = stderr_of(&mut child);
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut said)
            .unwrap();
        assert!(!status.success(), "{args:?}: {said}");
        assert!(said.contains("timed out"), "{args:?}: {said}");
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{args:?}: {:?}",
            t0.elapsed()
        );
    }
}

fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn set_local_ports(home: &Path, metrics_port: u16) {
    let p = home.join("config.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    let mut cfg: toml::Table = toml::from_str(&text).unwrap();
    cfg["p2p"]["listen"] = toml::Value::String("127.0.0.1:0".into());
    cfg["metrics"]["listen"] = toml::Value::String(format!("127.0.0.1:{metrics_port}"));
    // Not the default 9090: the tests of this file run at once.
    let grpc = support::free_port();
    cfg["grpc"]["listen"] = toml::Value::String(format!("127.0.0.1:{grpc}"));
    std::fs::write(&p, toml::to_string(&cfg).unwrap()).unwrap();
}

#[test]
fn start_serves_metrics_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let h = home.to_str().unwrap();
    run_ok(&["init", "--home", h, "--chain-id", "cli-test"]);
    let port = support::free_port();
    set_local_ports(&home, port);
    let mut child = agora()
        .args(["start", "--home", h, "--log-json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Some(b) = scrape(port) {
            break b;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("node exited early with {status}: {}", stderr_of(&mut child));
        }
        assert!(Instant::now() < deadline, "metrics never came up");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    // A single-validator chain commits blocks on its own: wait for a few.
    let height = |b: &str| -> u64 {
        b.lines()
            .find_map(|l| l.strip_prefix("agora_height "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut body = body;
    while height(&body) < 3 {
        assert!(Instant::now() < deadline, "no blocks committed: {body}");
        std::thread::sleep(Duration::from_millis(50));
        body = scrape(port).unwrap_or_default();
    }
    assert!(home.join("data/node.redb").exists());
    // Transparent huge pages are off for the node (main.rs says why);
    // kernels before 6.x do not report it.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    if let Some(thp) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert!(thp.ends_with('0'), "{thp}");
    }

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = exited_within(&mut child, 20).expect("node did not stop on SIGTERM");
    assert!(status.success(), "exit status {status}");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        out.contains("\"node started\"") && out.contains("\"stopped\""),
        "{out}"
    );
    refused_under_another_genesis(&home);
}

/// A text log sent to a file (a testnet's `node.log`, a service manager's
/// redirect) is plain text: colour codes are for a terminal only
/// (`agora_node::logging`). Before, every line carried them and log
/// readers had to strip them.
#[test]
fn a_text_log_sent_to_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let h = home.to_str().unwrap();
    run_ok(&["init", "--home", h, "--chain-id", "cli-test"]);
    set_local_ports(&home, support::free_port());
    let log = dir.path().join("node.log");
    let mut child = agora()
        .args(["start", "--home", h])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        if t.contains("gRPC listening") {
            break t;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("node exited with {status}: {}", stderr_of(&mut child));
        }
        assert!(Instant::now() < deadline, "no start logged: {t}");
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text:?}"
    );
    // Still the text form, fields as key=value; addresses as addresses
    // (not `Some(..)`), a service turned off as `off`.
    assert!(
        text.contains(" INFO ") && text.contains("chain=cli-test"),
        "{text}"
    );
    assert!(
        text.contains("grpc=127.0.0.1:") && text.contains("metrics=127.0.0.1:"),
        "{text}"
    );
}

/// What an exited child wrote to its piped stderr.
fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// The child's exit status once it exits, or `None` after `secs`.
fn exited_within(child: &mut Child, secs: u64) -> Option<ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The home's store now holds blocks: under another genesis file (the
/// same chain id, one field changed, as a testnet generated again) the
/// node refuses to start, naming both, instead of running the old chain.
fn refused_under_another_genesis(home: &Path) {
    let path = home.join("genesis.json");
    let original = std::fs::read(&path).unwrap();
    let mut g: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let t = g["genesis_time_ms"].as_u64().unwrap();
    g["genesis_time_ms"] = (t + 1).into();
    let other = serde_json::to_vec_pretty(&g).unwrap();
    std::fs::write(&path, &other).unwrap();
    let sha3 = |b: &[u8]| hex::encode(agora_validator::crypto::sha3_256(b));
    let mut child = agora()
        .args(["start", "--home", home.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let Some(status) = exited_within(&mut child, 30) else {
        child.kill().unwrap();
        panic!("the node ran for 30 s under another genesis");
    };
    let err = stderr_of(&mut child);
    assert!(
        !status.success(),
        "exited cleanly under another genesis: {err}"
    );
    assert!(
        err.contains(&sha3(&original)) && err.contains(&sha3(&other)),
        "the refusal names both genesis hashes: {err}"
    );
}

/// `agora tx --nonce`: a second transaction signed before the first
/// commits. A nonce in use is refused naming the next acceptable one
/// (whether the first is still pending or already committed),
/// the named nonce is accepted, and a nonce past it is refused as a gap.
/// `agora tx transfer <to> <amount>` from bob through `node`, with
/// `--nonce` when given and `--no-wait` unless `wait`; whether it
/// succeeded, and its stdout and stderr.
fn transfer(
    node: &support::Node,
    to: &str,
    amount: &str,
    nonce: Option<&str>,
    wait: bool,
) -> (bool, String) {
    let h = node.home.to_str().unwrap();
    let mut c = agora();
    c.args(["tx", "transfer", to, amount, "--from", "bob", "--home", h])
        .args(["--node", &node.grpc, "-o", "json"]);
    if let Some(n) = nonce {
        c.args(["--nonce", n]);
    }
    if !wait {
        c.arg("--no-wait");
    }
    let out = c.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Bob's key saved in the node's home, and his first transfer sent (with
/// `nonce`, waiting for the commit if `wait`) once the node serves.
fn first_transfer(
    node: &support::Node,
    bob: &agora_validator::AccountSecretKey,
    to: &str,
    nonce: Option<&str>,
    wait: bool,
) -> (bool, String) {
    let home = agora_node::home::Home::new(&node.home);
    agora_node::keys::save_account(&home.account_key("bob"), bob).unwrap();
    // The node may take a moment to serve: the first try waits for it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, text) = transfer(node, to, "1", nonce, wait);
        if ok || Instant::now() > deadline || !text.contains("connect") {
            return (ok, text);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn tx_with_an_explicit_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let (node, a, _b, bob) = support::setup(dir.path());
    let to = a.operator_address().to_string();
    let tx =
        |nonce: &str, amount: &str, wait: bool| transfer(&node, &to, amount, Some(nonce), wait);
    let (ok, first) = first_transfer(&node, &bob, &to, Some("0"), false);
    assert!(ok, "{first}\n{}", node.log_tail());
    // Another transaction with nonce 0 (the same one again would be a
    // duplicate, refused as such).
    let (ok, again) = tx("0", "2", false);
    assert!(!ok, "nonce 0 twice: {again}");
    // Pending: the mempool's "next acceptable nonce is 1"; committed
    // already: the ledger's "wrong nonce: expected 1, got 0".
    assert!(
        again.contains("nonce is 1") || again.contains("expected 1, got 0"),
        "{again}"
    );
    let (ok, second) = tx("1", "1", true);
    assert!(ok && second.contains("committed"), "{second}");
    let (ok, gap) = tx("5", "1", false);
    assert!(!ok, "{gap}");
    assert!(gap.contains("nonce 5 leaves a gap"), "{gap}");
    assert!(gap.contains("next acceptable nonce is 2"), "{gap}");
}

/// A delegator who sends again before the last transaction commits needs
/// no `--nonce`: GetAccount's `pending_nonce` is past the account's
/// transactions waiting in the node's mempool, and `agora tx` signs with
/// it. The chain here cannot commit (validator b, never started, holds
/// half the power), so every transfer stays pending and each must follow
/// the one before. Negative control: the committed nonce, what `agora tx`
/// signed with before, is refused as taken.
#[test]
fn back_to_back_transactions_follow_the_pending_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (node, a, _b, bob) = support::setup_with(dir.path(), |g| {
        let a_bond = g["validators"][0]["self_bond"].clone();
        // accounts[1] is b's operator, which pays b's self-bond.
        g["accounts"][1]["balance"] = a_bond.clone();
        g["validators"][1]["self_bond"] = a_bond;
    });
    let to = a.operator_address().to_string();
    let (ok, first) = first_transfer(&node, &bob, &to, None, false);
    assert!(ok, "{first}\n{}", node.log_tail());
    for amount in ["2", "3"] {
        let (ok, next) = transfer(&node, &to, amount, None, false);
        assert!(ok, "a transfer after pending ones: {next}");
    }
    let bob_address = agora_validator::Address::of_account(&bob.public_key()).to_string();
    let account: serde_json::Value = serde_json::from_str(&run_ok(&[
        "query",
        "account",
        &bob_address,
        "--node",
        &node.grpc,
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(account["nonce"], 0, "nothing committed: {account}");
    assert_eq!(account["pending_nonce"], 3, "{account}");
    let (ok, taken) = transfer(&node, &to, "4", Some("0"), false);
    assert!(!ok, "the committed nonce again: {taken}");
    assert!(taken.contains("next acceptable nonce is 3"), "{taken}");
}

/// `agora tx unjail` without an address, from a validator's home, means
/// that home's validator: the ledger answers for it by its address (here
/// "not jailed"). From a home with no validator key it asks for the
/// address.
#[test]
fn unjail_defaults_to_the_homes_validator() {
    let dir = tempfile::tempdir().unwrap();
    let (node, a, _b, bob) = support::setup(dir.path());
    let to = agora_validator::Address::of_account(&bob.public_key()).to_string();
    let (ok, first) = first_transfer(&node, &bob, &to, None, true);
    assert!(ok, "{first}\n{}", node.log_tail());
    let h = node.home.to_str().unwrap();
    let out = agora()
        .args(["tx", "unjail", "--home", h, "--node", &node.grpc])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let own = agora_validator::Address::of(&a.consensus.public_key());
    assert!(
        err.contains(&format!("validator {own} is not jailed")),
        "{err}"
    );
    let elsewhere = dir.path().join("no-validator");
    let home = agora_node::home::Home::new(&elsewhere);
    std::fs::create_dir_all(elsewhere.join("keys")).unwrap();
    agora_node::keys::save_account(&home.account_key("bob"), &bob).unwrap();
    let out = agora()
        .args(["tx", "unjail", "--home", elsewhere.to_str().unwrap()])
        .args(["--from", "bob", "--node", &node.grpc])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no VALIDATOR given"), "{err}");
}
