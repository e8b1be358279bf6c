//! `agora query … --prove` against a real testnet: values come back with
//! Merkle proofs against the app hash of a certified header, which the
//! client's light client verifies from the genesis file. Membership (an
//! account, a validator, a delegation, the double signer's slash) and
//! absence (an unknown account) are proven; a delegation's rewards are
//! computed from proven leaves; a list is followed page by page, each page
//! proven; a node that forges a proven value, a wrong
//! genesis file and a wrong checkpoint are all refused.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_tests::harness::{Testnet, alive, run, signal};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

fn query(net: &Testnet, node: usize, args: &[&str], trust: &[&str]) -> Output {
    run(Command::new(&net.agora_bin)
        .args([
            "query",
            "--node",
            &net.endpoints()[node],
            "-o",
            "json",
            "--prove",
        ])
        .args(trust)
        .args(args))
}

fn proven(net: &Testnet, node: usize, args: &[&str]) -> Value {
    let genesis = net.genesis();
    let out = query(net, node, args, &["--genesis", genesis.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn validators(net: &Testnet) -> Vec<pb::ValidatorRecord> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = QueryClient::connect(format!("http://{}", net.endpoints()[0]))
            .await
            .unwrap();
        let r = c
            .list_validators(pb::ListValidatorsRequest::default())
            .await
            .unwrap();
        r.into_inner().validators
    })
}

/// Runs `agora` with `args` and returns its stdout as JSON (it must succeed).
fn agora_json(net: &Testnet, args: &[&str]) -> Value {
    let out = run(Command::new(&net.agora_bin).args(args).args(["-o", "json"]));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// A delegator bonds to node 0's validator and unbonds twice; its two
/// unbonding entries, asked one per page, are both listed and proven, and
/// so is the delegation left.
fn a_list_is_proven_page_by_page(net: &Testnet) {
    let delegator = net.manifest["delegators"][0]["address"].as_str().unwrap();
    let validator = net.manifest["nodes"][0]["validator_address"]
        .as_str()
        .unwrap();
    let endpoint = &net.endpoints()[0];
    let keys = net.dir.join("delegators");
    let tx = |action: &[&str]| {
        let mut args = vec!["tx"];
        args.extend_from_slice(action);
        args.extend(["--from", "delegator0", "--home", keys.to_str().unwrap()]);
        args.extend(["--node", endpoint]);
        let outcome = agora_json(net, &args);
        assert_eq!(outcome["status"], "committed", "{outcome}");
        outcome
    };
    let bonded = tx(&["bond", validator, "10000000"]);
    // Its inclusion, proven: in the certified block of the height it
    // committed at.
    let hash = bonded["tx_hash"].as_str().unwrap();
    let included = proven(net, 0, &["tx", hash]);
    assert_eq!(included["height"], bonded["height"], "{included}");
    assert_eq!(included["node_says"]["status"], "committed", "{included}");
    let query = ["query", "--node", endpoint];
    let delegation = agora_json(
        net,
        &[&query[..], &["delegation", delegator, validator]].concat(),
    );
    let shares: u128 = delegation["shares"].as_str().unwrap().parse().unwrap();
    let quarter = (shares / 4).to_string();
    tx(&["unbond", validator, &quarter]);
    tx(&["unbond", validator, &quarter]);

    // Unproven, one item per page: both entries.
    let one_per_page = ["--page-size", "1"];
    let listed = agora_json(
        net,
        &[&query[..], &["unbonding", delegator], &one_per_page].concat(),
    );
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    // Proven, one item per page: both entries, each proven at its page's height.
    let list = proven(net, 0, &["unbonding", delegator, "--page-size", "1"]);
    let values = list["values"].as_array().unwrap();
    assert_eq!(values.len(), 2, "{list}");
    assert_eq!(list["proven"]["items"].as_u64(), Some(2), "{list}");
    assert_eq!(list["proven"]["more"], false, "{list}");
    let mut ids = Vec::new();
    for v in values {
        let item = v["item"].as_str().unwrap();
        assert!(item.starts_with("unbonding "), "{list}");
        ids.push(item.rsplit('#').next().unwrap().to_string());
        let balance: u128 = v["value"]["balance"].as_str().unwrap().parse().unwrap();
        assert!(balance > 0, "{list}");
        let certified = list["proven"]["heights"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["height"] == v["height"]);
        assert!(
            certified,
            "an item's height has no certified header: {list}"
        );
    }
    assert_ne!(ids[0], ids[1], "the same entry was listed twice: {list}");
    // Complete when both pages were proven at one height (the client asks
    // again while a block commits between them, a few times).
    let whole = &list["proven"]["list"];
    match whole["complete"].as_bool() {
        Some(true) => assert_eq!(whole["count"], 2, "{list}"),
        _ => assert!(
            whole["why"].as_str().unwrap().contains("different heights"),
            "{list}"
        ),
    }

    // The delegator's delegations, proven: the one its unbonds left.
    let left = agora_json(
        net,
        &[&query[..], &["delegation", delegator, validator]].concat(),
    );
    let delegations = proven(net, 0, &["delegations", delegator]);
    let values = delegations["values"].as_array().unwrap();
    assert_eq!(values.len(), 1, "{delegations}");
    assert_eq!(
        values[0]["value"]["shares"], left["shares"],
        "{delegations}"
    );
    // One page: its items and the delegator's account leaf, which counts
    // them, are of one height, so the list is shown complete.
    let whole = &delegations["proven"]["list"];
    assert_eq!(whole["complete"], true, "{delegations}");
    assert_eq!(whole["count"], 1, "{delegations}");

    // What the delegation is owed, computed by the client from the proven
    // validator and delegation leaves: between the node's own figures just
    // before and just after (nothing is withdrawn meanwhile, so they only
    // grow), and more than nothing.
    let rewards = ["rewards", delegator, validator];
    let amount = |v: &Value| v.as_str().unwrap().parse::<u128>().unwrap();
    let before = agora_json(net, &[&query[..], &rewards].concat());
    let owed = proven(net, 0, &rewards);
    let after = agora_json(net, &[&query[..], &rewards].concat());
    assert_eq!(owed["rewards"]["delegation"], true, "{owed}");
    let proven_owed = amount(&owed["rewards"]["owed"]);
    assert!(proven_owed > 0, "{owed}");
    assert!(
        amount(&before["rewards"]) <= proven_owed && proven_owed <= amount(&after["rewards"]),
        "{before} {owed} {after}"
    );
    // A delegation that does not exist is proven absent and owed nothing.
    let other = net.manifest["nodes"][1]["validator_address"]
        .as_str()
        .unwrap();
    let none = proven(net, 0, &["rewards", delegator, other]);
    assert_eq!(none["rewards"]["delegation"], false, "{none}");
    assert_eq!(none["rewards"]["owed"], "0", "{none}");
}

/// A block, its commit certificate and validator sets, each checked
/// against a header the light client verified (`client/prove/chain.rs`); the same as the unproven
/// answers.
fn chain_objects_are_proven_by_their_headers(net: &Testnet, h: u64) {
    let endpoint = &net.endpoints()[1];
    let height = h.to_string();
    let block = proven(net, 1, &["block", &height]);
    let plain = agora_json(net, &["query", "--node", endpoint, "block", &height]);
    assert_eq!(block["block_hash"], plain["block_hash"], "{block}");
    assert_eq!(block["proven"]["certified_by_height"].as_u64(), Some(h));
    // The node's certificate of that block, verified against its header
    // and the set the light client verified: more than 2/3 signed it.
    let cert = proven(net, 1, &["cert", &height]);
    let plain = agora_json(net, &["query", "--node", endpoint, "cert", &height]);
    assert_eq!(
        cert["certificate"]["block_hash"], block["block_hash"],
        "{cert}"
    );
    assert_eq!(cert["certificate"]["height"].as_u64(), Some(h), "{cert}");
    assert_eq!(cert["header"], plain["header"], "{cert}");
    let signed = cert["signed_power"].as_u64().unwrap();
    let total = cert["total_power"].as_u64().unwrap();
    assert!(3 * signed > 2 * total, "{cert}");
    let set = proven(net, 1, &["validators", "2"]);
    let plain = agora_json(net, &["query", "--node", endpoint, "validators", "2"]);
    assert_eq!(set["hash"], plain["hash"], "{set}");
    assert_eq!(set["validators"].as_array().map(Vec::len), Some(4), "{set}");
    // The height being decided: named by the last header as the next set
    // (or by its own header, if it was committed by the time the client
    // looked for one).
    let next = proven(net, 1, &["validators", "0"]);
    let by = next["proven"]["certified_by_height"].as_u64().unwrap();
    let of = next["height"].as_u64().unwrap();
    assert!(of == by + 1 || of == by, "{next}");
}

/// The chain-wide leaf, proven: the tokens in existence it implies
/// (genesis + minted − burned) lie between the node's own totals (the sum
/// of balances, bonded, unbonding and unclaimed rewards) just before and
/// just after. Called once the double signer is tombstoned, so only
/// minting moves them.
fn supply_is_proven(net: &Testnet) {
    let endpoint = &net.endpoints()[0];
    let plain = || agora_json(net, &["query", "--node", endpoint, "supply"]);
    let amount = |v: &Value| v.as_str().unwrap().parse::<u128>().unwrap();
    let total = |s: &Value| -> u128 {
        ["balances", "bonded", "unbonding", "unclaimed_rewards"]
            .iter()
            .map(|k| amount(&s[k]))
            .sum()
    };
    let before = plain();
    let supply = proven(net, 0, &["supply"]);
    let after = plain();
    let globals = first_value(&supply);
    let in_existence = amount(&globals["in_existence"]);
    assert!(
        total(&before) <= in_existence && in_existence <= total(&after),
        "{before} {supply} {after}"
    );
    assert_eq!(
        globals["genesis_supply"], after["genesis_supply"],
        "{supply}"
    );
    assert_eq!(globals["burned"], after["burned"], "{supply}");
    assert!(
        amount(&globals["burned"]) > 0,
        "the slash burned nothing: {supply}"
    );
}

/// Every slash event is listed with the chain-wide count; one validator's
/// are asked whole and kept by the client, so they are complete too: the
/// double signer's include its slash, another validator's are none.
fn slashes_are_proven_complete(net: &Testnet, all: &Value) {
    let whole = &all["proven"]["list"];
    assert_eq!(whole["complete"], true, "{all}");
    let count = whole["count"].as_u64().unwrap();
    assert!(count >= 1, "{all}");
    assert_eq!(
        all["values"].as_array().unwrap().len() as u64,
        count,
        "{all}"
    );
    let slashed = first_value(all)["validator"].as_str().unwrap();
    let own = proven(net, 0, &["slashes", slashed]);
    assert_eq!(own["proven"]["list"]["complete"], true, "{own}");
    let values = own["values"].as_array().unwrap();
    assert!(!values.is_empty(), "{own}");
    assert!(
        values.iter().all(|v| v["value"]["validator"] == slashed),
        "{own}"
    );
    let other = (net.manifest["nodes"].as_array().unwrap().iter())
        .map(|n| n["validator_address"].as_str().unwrap())
        .find(|a| *a != slashed)
        .unwrap();
    let none = proven(net, 0, &["slashes", other]);
    assert_eq!(none["proven"]["list"]["complete"], true, "{none}");
    assert!(none["values"].as_array().unwrap().is_empty(), "{none}");
}

/// Restarts node 0 with the `[testing]` switch `on` on and `off` off.
fn switch_node0(net: &mut Testnet, off: Option<&str>, on: &str) {
    let pid = net.pid(0);
    signal(pid, "KILL");
    let t0 = Instant::now();
    while alive(pid) {
        assert!(t0.elapsed() < WAIT, "node0 survived SIGKILL");
        std::thread::sleep(Duration::from_millis(50));
    }
    let cfg_path = net.home(0).join("config.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    let flip = |cfg: &str, name: &str, from: bool| {
        let flipped = cfg.replace(&format!("{name} = {from}"), &format!("{name} = {}", !from));
        assert_ne!(cfg, flipped, "{name} = {from} is in node0's config");
        flipped
    };
    let cfg = match off {
        Some(name) => flip(&cfg, name, true),
        None => cfg,
    };
    let switched = flip(&cfg, on, false);
    std::fs::write(&cfg_path, switched).unwrap();
    net.restart(0);
}

/// A proven query of node 0, from genesis, asked again while node 0 is
/// still starting (a connection error) or serves no proof yet.
fn query_when_up(net: &Testnet, args: &[&str]) -> Output {
    let genesis = net.genesis();
    let t0 = Instant::now();
    loop {
        let out = query(net, 0, args, &["--genesis", genesis.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let refused = err.contains("does not verify") || err.contains("left");
        if out.status.success() || refused || t0.elapsed() > WAIT {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn first_value(v: &Value) -> &Value {
    &v["values"][0]["value"]
}

#[test]
fn state_answers_are_proven_against_certified_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut net = Testnet::up(&tmp.path().join("net"), 4, &["--byzantine", "1"]);
    net.wait_heights(&[0], 3, WAIT);
    let vals = validators(&net);
    let v = &vals[0];
    let (val, op) = (hex::encode(&v.address), hex::encode(&v.operator));

    // Membership: an account, a validator, a delegation.
    let acct = proven(&net, 0, &["account", &op]);
    let h = acct["proven"]["height"].as_u64().unwrap();
    assert_eq!(acct["proven"]["certified_by_height"].as_u64(), Some(h + 1));
    assert_eq!(acct["proven"]["trusted"], "the genesis file");
    let balance = first_value(&acct)["balance"].as_str().unwrap();
    assert!(balance.parse::<u128>().unwrap() > 0, "{acct}");
    let val_answer = proven(&net, 1, &["validator", &val]);
    assert_eq!(
        first_value(&val_answer)["operator"].as_str(),
        Some(op.as_str())
    );
    // Its downtime record, proven with it at the same height.
    let downtime = &val_answer["values"][1];
    assert_eq!(downtime["height"], val_answer["values"][0]["height"]);
    assert!(
        downtime["item"]
            .as_str()
            .unwrap()
            .starts_with("downtime record")
    );
    let counted = downtime["value"]["certificates_counted"].as_u64();
    assert!(counted.is_some_and(|c| c > 0), "{val_answer}");
    let del = proven(&net, 2, &["delegation", &op, &val]);
    assert!(
        first_value(&del)["shares"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap()
            > 0
    );

    a_list_is_proven_page_by_page(&net);
    chain_objects_are_proven_by_their_headers(&net, h);

    // Absence: an address nobody has used.
    let nobody = "42".repeat(20);
    let absent = proven(&net, 0, &["account", &nobody]);
    assert!(first_value(&absent).is_null(), "{absent}");

    // The double signer's slash, once it is on chain.
    let t0 = Instant::now();
    let slashes = loop {
        let s = proven(&net, 0, &["slashes"]);
        if !s["values"].as_array().unwrap().is_empty() {
            break s;
        }
        assert!(t0.elapsed() < WAIT, "no slash within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        first_value(&slashes)["tombstoned"].as_bool().unwrap(),
        "{slashes}"
    );
    slashes_are_proven_complete(&net, &slashes);
    supply_is_proven(&net);

    // From a checkpoint instead of genesis.
    let hash = acct["proven"]["certified_block_hash"].as_str().unwrap();
    let checkpoint = format!("{}:{hash}", h + 1);
    let out = query(&net, 0, &["account", &op], &["--trust", &checkpoint]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Negative controls. A checkpoint that is not the served header:
    let wrong = format!("{}:{}", h + 1, "00".repeat(32));
    let out = query(&net, 0, &["account", &op], &["--trust", &wrong]);
    assert!(!out.status.success(), "a wrong checkpoint was accepted");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the checkpoint says"));

    // Another chain's genesis (same shape, other keys) is not this chain's.
    let other = tmp.path().join("other");
    let generated = run(Command::new(&net.testnet_bin)
        .args([
            "generate",
            "--hosts",
            "127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1",
        ])
        .arg("--out")
        .arg(&other));
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let other_genesis = other.join("genesis.json");
    let out = query(
        &net,
        0,
        &["account", &op],
        &["--genesis", other_genesis.to_str().unwrap()],
    );
    assert!(!out.status.success(), "another genesis was trusted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not verify"), "{err}");

    // A node that leaves an item out of a list is caught: its pages still
    // prove the count.
    switch_node0(&mut net, None, "hide_listed_items");
    let delegator = net.manifest["delegators"][0]["address"].as_str().unwrap();
    for list in [&["delegations", delegator][..], &["slashes"]] {
        let out = query_when_up(&net, list);
        assert!(!out.status.success(), "a list missing an item was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("left 1 of the"), "{err}");
    }

    // A node that forges the proven value is caught.
    switch_node0(&mut net, Some("hide_listed_items"), "tamper_state_proofs");
    let out = query_when_up(&net, &["account", &op]);
    assert!(!out.status.success(), "a forged value was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not verify") && err.contains("not the certified app hash"),
        "{err}"
    );
    // The honest nodes still prove the same account.
    proven(&net, 1, &["account", &op]);
    net.down();
}
