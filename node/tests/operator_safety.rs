//! Operator mistakes against real `agora` processes: a validator restarted
//! without its data or without its signing-state file signs nothing until
//! the chain showed its key quiet for `double_sign_check_heights` heights
//! (with the check off it signs at once); a second instance of one key
//! raises the double-sign alarm and stops signing; the signing state
//! survives export and import, which refuse a foreign chain or key and never
//! lower it; a corrupt WAL record stops the start with a clear error.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use agora_node::home::Home;
use agora_node::runner::restore_signing_state;
use agora_node::storage::Storage;
use agora_node::storage::signing_file::SigningFile;
use agora_validator::consensus::{SignStep, SigningState};
use agora_validator::{Address, ChainId};
use support::net::*;

const N: usize = 4;
/// The quiet heights the tests ask for: a few seconds of this fast chain,
/// so that the metrics are seen while the gate waits.
const CHECK: i64 = 20;

fn set_check(cfg: &mut toml::Table, heights: i64) {
    cfg["consensus"].as_table_mut().expect("consensus").insert(
        "double_sign_check_heights".into(),
        toml::Value::Integer(heights),
    );
}

/// A signing window (100,000, the largest) that outlasts these tests.
/// They stop a validator, restart or copy it, and then wait for it to
/// sign. Meanwhile the key misses heights of this fast chain. With the
/// default window (more than 50 of 100 missed), a slow CI machine jailed
/// the key before it came back. A jailed key signs nothing, so the twin
/// test saw no alarm in 180 s.
fn without_downtime_jail(genesis: &mut serde_json::Value) {
    genesis["params"]["signed_blocks_window"] = serde_json::json!(100_000);
}

fn agora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(args)
        .output()
        .expect("run agora")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Index of node `i`'s validator in the (unchanging) genesis set: the set
/// is ordered by address.
fn set_index(homes: &[PathBuf], i: usize) -> usize {
    let addr = |h: &PathBuf| Address::of(&Home::new(h).load_validator_key().unwrap().public_key());
    let mut all: Vec<Address> = homes.iter().map(addr).collect();
    all.sort();
    all.iter().position(|a| *a == addr(&homes[i])).unwrap()
}

/// Heights in `from..=to` whose certificate, as node 0 stored it, carries
/// the signature of set index `idx`.
fn signed_heights(home: &Path, idx: usize, from: u64, to: u64) -> Vec<u64> {
    let db = Storage::open(home.join("data/node.redb")).unwrap();
    (from..=to)
        .filter(|h| {
            let c = db.certificate(*h).unwrap().expect("certificate stored");
            agora_validator::certificate::bit(&c.signers, idx)
        })
        .collect()
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Watches node `i`'s gate after its restart until it signs again; true if
/// it was seen not signing (with heights still to wait) on the way.
fn watch_until_signing(net: &Net, i: usize, secs: u64) -> bool {
    let port = net.metrics[i];
    let mut seen_waiting = false;
    wait_for("signing enabled again", secs, &net.logs, || {
        match metric(port, "agora_signing_enabled") {
            Some(0) => {
                seen_waiting |=
                    metric(port, "agora_signing_wait_remaining_heights").unwrap_or(0) > 0;
                false
            }
            Some(_) => true,
            None => false,
        }
    });
    seen_waiting
}

/// The first height in `from..=to` node 0's certificates show `idx` signing.
fn first_signed(home: &Path, idx: usize, from: u64, to: u64) -> Option<u64> {
    signed_heights(home, idx, from, to).first().copied()
}

/// A wiped validator (data directory deleted, key kept) and one that lost
/// only its signing-state file both wait: their keys sign nothing while the
/// chain moves at least `CHECK` heights past them, then sign again. With the
/// check off (0), a validator that lost its file signs at once.
#[test]
fn validators_without_signing_state_wait_then_sign() {
    let net = build_with(N, 0, without_downtime_jail, |_, cfg| set_check(cfg, CHECK));
    let mut nodes = net.start_all();
    let all: Vec<usize> = (0..N).collect();
    wait_heights(&net.metrics, &all, 5, 120, &net.logs);
    for i in 0..N {
        assert_eq!(metric(net.metrics[i], "agora_signing_enabled"), Some(1));
    }

    // 1. Node 3's data directory is wiped; the key stays.
    nodes[3].kill().unwrap();
    nodes[3].wait().unwrap();
    std::fs::remove_dir_all(net.homes[3].join("data")).unwrap();
    let wiped_at = max_height(&net.metrics, &[0, 1, 2]);
    nodes[3] = start(&net.homes[3], &net.logs[3]);
    assert!(
        watch_until_signing(&net, 3, 180),
        "node 3 never seen waiting"
    );
    let log3 = log_of(&net.logs[3]);
    assert!(log3.contains("signing paused"), "{log3}");

    // 2. Node 2 loses only its signing-state file.
    nodes[2].kill().unwrap();
    nodes[2].wait().unwrap();
    std::fs::remove_file(net.homes[2].join("data/signing_state.json")).unwrap();
    let lost_at = max_height(&net.metrics, &[0, 1, 3]);
    nodes[2] = start(&net.homes[2], &net.logs[2]);
    assert!(
        watch_until_signing(&net, 2, 180),
        "node 2 never seen waiting"
    );
    let log2 = log_of(&net.logs[2]);
    assert!(
        log2.contains("signing paused") && log2.contains("signing state is missing"),
        "{log2}"
    );

    // 3. Negative control: node 1 loses its file with the check off.
    nodes[1].kill().unwrap();
    nodes[1].wait().unwrap();
    std::fs::remove_file(net.homes[1].join("data/signing_state.json")).unwrap();
    net.edit_config(1, |cfg| set_check(cfg, 0));
    let control_at = max_height(&net.metrics, &[0, 2, 3]);
    let before = log_of(&net.logs[1]).len();
    nodes[1] = start(&net.homes[1], &net.logs[1]);
    // The gauge is set once the runner restored the gate (the metrics
    // server starts before): it must go to 1 without a wait.
    wait_for("node 1 signing at once", 60, &net.logs, || {
        metric(net.metrics[1], "agora_signing_enabled") == Some(1)
    });
    assert_eq!(
        metric(net.metrics[1], "agora_signing_wait_remaining_heights"),
        Some(0)
    );
    let end = max_height(&net.metrics, &all) + CHECK as u64 + 10;
    wait_heights(&net.metrics, &all, end, 180, &net.logs);
    let log1 = &log_of(&net.logs[1])[before..];
    assert!(
        !log1.contains("signing paused") && !log1.contains("ALARM"),
        "{log1}"
    );
    for c in nodes.iter_mut() {
        stop(c);
    }

    // The certificates as node 0 stored them: a waiting key signs nothing
    // for at least CHECK heights past the chain it came back to, then signs
    // again; with the check off the key signs sooner than any waiting one.
    let h0 = &net.homes[0];
    // A killed node may already have precommitted the height in flight
    // (the others' height + 1): that signature is from before the loss.
    let first3 = first_signed(h0, set_index(&net.homes, 3), wiped_at + 2, end);
    let first2 = first_signed(h0, set_index(&net.homes, 2), lost_at + 2, end);
    let first1 = first_signed(h0, set_index(&net.homes, 1), control_at + 1, end);
    eprintln!(
        "wiped at {wiped_at}, first signed {first3:?}; file lost at {lost_at}, first signed {first2:?}; check off at {control_at}, first signed {first1:?}; end {end}"
    );
    let check = CHECK as u64;
    assert!(first3.is_some_and(|h| h >= wiped_at + check), "{first3:?}");
    assert!(first2.is_some_and(|h| h >= lost_at + check), "{first2:?}");
    assert!(first1.is_some_and(|h| h < control_at + check), "{first1:?}");
}

/// How the second instance of node 3 is set up.
#[derive(Clone, Copy, PartialEq)]
enum Twin {
    /// The home copied whole, TLS identity and peers included.
    WholeCopy,
    /// The home copied, with a node (TLS) identity of its own, as a second
    /// machine set up with `agora init` and then given the validator's key
    /// and data would have.
    OwnIdentity,
}

/// Two instances of one validator (its home copied, both started): at
/// least one sees a message of its key it did not sign, raises the alarm
/// and stops signing for good.
///
/// Both restore the same current signing state, so both open at once and
/// sign at the next heights; each soon receives a vote or proposal of the
/// key at a position it has not signed (a foreign signature while open),
/// or evidence of the key above that state (`SigningGate::open_on_state`):
/// the alarm.
///
/// With one TLS identity (`Twin::WholeCopy`) every other node keeps one
/// connection to "them" and replaces it whenever the other instance
/// connects. Redialled at once, the two took each other's place at every
/// peer several times a second, and in a CI run the twin (then dialling
/// one node only) caught up by sync a height or two behind for 3,600
/// heights, signing nothing: no alarm in 180 s. Now the peer closes the
/// older connection as superseded and its instance redials late
/// (`Transport::note_superseded`), and says so in its log.
fn twin_raises_the_alarm(twin_kind: Twin) {
    let net = build_with(N, 0, without_downtime_jail, |_, cfg| set_check(cfg, CHECK));
    let mut nodes = net.start_all();
    let all: Vec<usize> = (0..N).collect();
    wait_heights(&net.metrics, &all, 5, 120, &net.logs);
    stop(&mut nodes[3]);
    let twin = net.dir.path().join("n3-twin");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&net.homes[3])
        .arg(&twin)
        .status()
        .unwrap();
    assert!(status.success());
    let (p2p, metrics, grpc) = (free_port(true), free_port(false), free_port(false));
    let cfg_path = twin.join("config.toml");
    let mut cfg: toml::Table =
        toml::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let addr = |port: u16| toml::Value::String(format!("127.0.0.1:{port}"));
    cfg["p2p"]["listen"] = addr(p2p);
    cfg["metrics"]["listen"] = addr(metrics);
    cfg["grpc"]["listen"] = addr(grpc);
    // Two instances on one host with the same timings can stay in
    // lockstep, signing the very same bytes (harmless, and invisible by
    // design); another pause before each height makes them stamp
    // different times into their proposals.
    cfg["consensus"]["timeout_commit_ms"] = toml::Value::Integer(45);
    if twin_kind == Twin::OwnIdentity {
        let fresh = solo_home(net.dir.path(), "identity-donor", "donor");
        for file in ["tls.crt", "tls.key"] {
            std::fs::copy(fresh.join("keys").join(file), twin.join("keys").join(file)).unwrap();
        }
        cfg["p2p"]["peers"] = toml::Value::Array(net.p2p[..3].iter().map(|p| addr(*p)).collect());
    }
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
    let twin_log = net.dir.path().join("n3-twin.log");
    nodes[3] = start(&net.homes[3], &net.logs[3]);
    nodes.push(start(&twin, &twin_log));
    let ports = [net.metrics[3], metrics];
    let mut logs = net.logs.clone();
    logs.push(twin_log.clone());
    let alarmed = |p: u16| metric(p, "agora_double_sign_alarms_total").unwrap_or(0) >= 1;
    wait_for("a double-sign alarm", 180, &logs, || {
        ports.iter().any(|p| alarmed(*p))
    });
    let which = if alarmed(ports[0]) { 0 } else { 1 };
    let port = ports[which];
    let log = log_of(if which == 0 { &net.logs[3] } else { &twin_log });
    assert!(log.contains("DOUBLE-SIGN ALARM"), "{log}");
    eprintln!(
        "instance {which} alarmed: {}",
        log.lines()
            .find(|l| l.contains("DOUBLE-SIGN ALARM"))
            .unwrap_or_default()
    );
    let superseded = || -> u64 {
        ports
            .iter()
            .map(|p| metric(*p, "agora_connections_superseded_total").unwrap_or(0))
            .sum()
    };
    match twin_kind {
        // Each replaced the other somewhere, and was told: the notice may
        // come after the alarm (a peer relays the twin's vote before it
        // tells the replaced instance), so it is waited for.
        Twin::WholeCopy => wait_for("a superseded connection", 60, &logs, || superseded() >= 1),
        // Distinct identities: nothing to supersede.
        Twin::OwnIdentity => assert_eq!(superseded(), 0),
    }
    // It stays stopped while the chain goes on.
    let h = max_height(&net.metrics, &[0, 1, 2]);
    wait_heights(&net.metrics, &[0, 1, 2], h + 5, 120, &logs);
    assert_eq!(metric(port, "agora_signing_enabled"), Some(0));
    assert_eq!(metric(port, "agora_double_sign_alarms_total"), Some(1));
}

#[test]
fn a_second_instance_of_a_key_raises_the_alarm_and_stops_signing() {
    twin_raises_the_alarm(Twin::OwnIdentity);
}

#[test]
fn a_home_copied_whole_and_started_twice_raises_the_alarm() {
    twin_raises_the_alarm(Twin::WholeCopy);
}

fn solo_home(dir: &Path, name: &str, chain: &str) -> PathBuf {
    let home = dir.join(name);
    let out = agora(&[
        "init",
        "--home",
        home.to_str().unwrap(),
        "--chain-id",
        chain,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let cfg_path = home.join("config.toml");
    let mut cfg: toml::Table =
        toml::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let addr = |port: u16| toml::Value::String(format!("127.0.0.1:{port}"));
    cfg["p2p"]["listen"] = addr(free_port(true));
    cfg["metrics"]["listen"] = addr(free_port(false));
    cfg["grpc"]["listen"] = addr(free_port(false));
    let c = cfg["consensus"].as_table_mut().unwrap();
    c.insert("timeout_commit_ms".into(), toml::Value::Integer(20));
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
    home
}

fn metrics_port(home: &Path) -> u16 {
    let cfg: toml::Table =
        toml::from_str(&std::fs::read_to_string(home.join("config.toml")).unwrap()).unwrap();
    cfg["metrics"]["listen"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Runs a single-validator chain (it signs at once: nobody else could) to
/// `heights`, then stops it.
fn run_solo(home: &Path, heights: u64) {
    let log = home.with_extension("log");
    let mut nodes = Nodes(vec![start(home, &log)]);
    let port = metrics_port(home);
    wait_for("solo chain", 120, &[log], || {
        height(port).unwrap_or(0) >= heights
    });
    stop(&mut nodes[0]);
}

fn read_doc(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The home's signing state as `agora signing-state export` prints it (the
/// file itself holds it twice, in slots: `storage::signing_slots`).
fn exported(home: &str) -> serde_json::Value {
    let out = agora(&["signing-state", "export", "--home", home]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn export_import_round_trip_refuses_foreign_and_never_lowers() {
    let dir = tempfile::tempdir().unwrap();
    let home = solo_home(dir.path(), "a", "chain-a");
    run_solo(&home, 3);
    let h = home.to_str().unwrap();
    let export = dir.path().join("export.json");
    let out = agora(&[
        "signing-state",
        "export",
        "--home",
        h,
        "--out",
        export.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let doc = read_doc(&export);
    assert_eq!(doc["format"], "agora-signing-state/1");
    assert_eq!(doc["chain_id"], "chain-a");
    let signed = doc["last_signed"]["height"].as_u64().unwrap();
    assert!(signed >= 3, "{doc}");
    // Export to stdout is the same document.
    let out = agora(&["signing-state", "export", "--home", h]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        doc
    );

    // Round trip into a home without state: imported as is.
    std::fs::remove_file(home.join("data/signing_state.json")).unwrap();
    let out = agora(&[
        "signing-state",
        "import",
        "--home",
        h,
        export.to_str().unwrap(),
    ]);
    assert!(
        out.status.success() && text(&out).contains("imported"),
        "{}",
        text(&out)
    );
    assert_eq!(exported(h), doc);

    // An older export never lowers the local state.
    let mut older = doc.clone();
    older["last_signed"]["height"] = serde_json::json!(1);
    let older_path = dir.path().join("older.json");
    std::fs::write(&older_path, older.to_string()).unwrap();
    let out = agora(&[
        "signing-state",
        "import",
        "--home",
        h,
        older_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success() && text(&out).contains("kept"),
        "{}",
        text(&out)
    );
    assert_eq!(exported(h), doc);

    // A newer one is taken.
    let mut newer = doc.clone();
    newer["last_signed"]["height"] = serde_json::json!(signed + 100);
    let newer_path = dir.path().join("newer.json");
    std::fs::write(&newer_path, newer.to_string()).unwrap();
    let out = agora(&[
        "signing-state",
        "import",
        "--home",
        h,
        newer_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(exported(h)["last_signed"]["height"], signed + 100);

    // Another chain, another key: refused, nothing changed.
    let mut foreign_chain = doc.clone();
    foreign_chain["chain_id"] = serde_json::json!("chain-b");
    let fc = dir.path().join("fc.json");
    std::fs::write(&fc, foreign_chain.to_string()).unwrap();
    let out = agora(&["signing-state", "import", "--home", h, fc.to_str().unwrap()]);
    assert!(
        !out.status.success() && text(&out).contains("chain-b"),
        "{}",
        text(&out)
    );
    let other = solo_home(dir.path(), "b", "chain-a");
    let out = agora(&[
        "signing-state",
        "import",
        "--home",
        other.to_str().unwrap(),
        export.to_str().unwrap(),
    ]);
    assert!(
        !out.status.success() && text(&out).contains("validator key"),
        "{}",
        text(&out)
    );
    assert!(!other.join("data/signing_state.json").exists());
    assert_eq!(exported(h)["last_signed"]["height"], signed + 100);

    // Not an export at all: named as such, and not answered with the advice
    // for the node's own corrupt file ("do NOT delete it ... import an export").
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"garbage\": 1}").unwrap();
    let out = agora(&[
        "signing-state",
        "import",
        "--home",
        h,
        junk.to_str().unwrap(),
    ]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("is not a usable signing-state export"),
        "{said}"
    );
    assert!(said.contains("nothing was imported"), "{said}");
    assert!(!said.contains("do NOT delete"), "{said}");
    assert_eq!(exported(h)["last_signed"]["height"], signed + 100);
}

#[test]
fn a_corrupt_wal_record_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let home = solo_home(dir.path(), "w", "chain-w");
    run_solo(&home, 2);
    let db = home.join("data/node.redb");
    let seq = {
        let s = Storage::open(&db).unwrap();
        let next = s.latest_height().unwrap().unwrap() + 1;
        s.wal_append(next, &[0xff, 0xff, 0xff], true).unwrap();
        s.wal_entries().unwrap().last().unwrap().0
    };
    let log = dir.path().join("w2.log");
    let mut child = start(&home, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "node started on a corrupt WAL");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let out = log_of(&log);
    assert!(
        out.contains(&format!("WAL record {seq} "))
            && out.contains(&db.display().to_string())
            && out.contains("Do NOT delete the database"),
        "{out}"
    );
}

/// A store written by an older node holds the signing state; the first
/// start moves it to the file, once, and removes it from the store.
#[test]
fn the_signing_state_moves_from_the_store_to_its_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path().join("db")).unwrap();
    let key = agora_validator::SecretKey::from_seed(&[3; 32]).unwrap();
    let file = SigningFile::new(
        dir.path().join("signing_state.json"),
        ChainId::new("mig").unwrap(),
        key.public_key(),
    );
    let s = SigningState {
        height: 12,
        round: 1,
        step: SignStep::Precommit,
        signed_hash: [4; 32],
        value: [5; 32],
        locked: None,
    };
    storage.save_signing_state(&s.to_bytes()).unwrap();
    assert_eq!(restore_signing_state(&storage, &file).unwrap(), Some(s));
    assert_eq!(storage.signing_state().unwrap(), None);
    assert_eq!(file.load().unwrap(), Some(s));
    // Losing the file now is visible: the store no longer masks it.
    std::fs::remove_file(file.path()).unwrap();
    assert_eq!(restore_signing_state(&storage, &file).unwrap(), None);
}
