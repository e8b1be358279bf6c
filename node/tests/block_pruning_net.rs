//! Block pruning with real node processes on loopback: a validator with
//! `storage.keep_blocks` set prunes, answers gRPC for pruned heights with
//! a clear error (an unpruned peer answers the same request: the control),
//! restarts from its pruned store and keeps agreeing with the others; a
//! fresh node catches up when its peers include unpruned ones, and a fresh
//! node whose only peer is the pruned one stays behind without charging it
//! (an empty answer below the peer's floor is not a false height).

mod support;

use std::path::Path;

use agora_node::storage::Storage;
use agora_node::storage::prune::EVIDENCE_MARGIN;
use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use prost::Message;
use support::net::*;
use tonic::Code;

const VALIDATORS: usize = 4;
/// Node 4: a fresh full node peering with everyone; node 5: a fresh full
/// node whose only peer is the pruned validator 0.
const NODES: usize = VALIDATORS + 2;
const UNBONDING: u64 = 4;
/// What validator 0 keeps: `keep_blocks = 1`, raised to the window.
const KEEP: u64 = UNBONDING + EVIDENCE_MARGIN;

fn false_heights(metrics_port: u16) -> u64 {
    metric(
        metrics_port,
        "agora_peer_charges_total{reason=\"false_height\"}",
    )
    .unwrap_or(0)
}

async fn query(port: u16) -> QueryClient<tonic::transport::Channel> {
    let ch = agora_node::client::connect(&format!("127.0.0.1:{port}"))
        .await
        .expect("grpc");
    QueryClient::new(ch)
}

/// Asserts every block-reading call for height 1 fails with the pruned
/// message on `port`, and that `tip` is still served.
async fn assert_pruned_answers(port: u16, tip: u64) {
    let mut q = query(port).await;
    let pruned = |s: tonic::Status, what: &str| {
        assert_eq!(s.code(), Code::NotFound, "{what}: {s:?}");
        assert!(
            s.message().contains("pruned on this node")
                && s.message().contains("lowest height it still holds is"),
            "{what}: {}",
            s.message()
        );
    };
    let e = q.get_block(pb::GetBlockRequest { height: 1 }).await;
    pruned(e.expect_err("block 1 is pruned"), "GetBlock");
    let e = q
        .get_commit_certificate(pb::GetCommitCertificateRequest { height: 1 })
        .await;
    pruned(
        e.expect_err("certificate 1 is pruned"),
        "GetCommitCertificate",
    );
    let e = q
        .get_blocks(pb::GetBlocksRequest {
            from_height: 1,
            max_blocks: 4,
        })
        .await;
    pruned(e.expect_err("blocks from 1 are pruned"), "GetBlocks");
    let mut stream = q
        .stream_commit_certificates(pb::StreamCommitCertificatesRequest { from_height: 1 })
        .await
        .expect("stream opens")
        .into_inner();
    let first = stream.message().await;
    pruned(
        first.expect_err("the stream starts pruned"),
        "StreamCommitCertificates",
    );
    // What it keeps it serves.
    q.get_block(pb::GetBlockRequest { height: tip })
        .await
        .expect("the tip is kept");
}

/// Blocks `from..=to` stored by `a` and `b` are the same bytes.
fn assert_agree(a: &Path, b: &Path, from: u64, to: u64) {
    let a = Storage::open(a.join("data/node.redb")).expect("open");
    let b = Storage::open(b.join("data/node.redb")).expect("open");
    for h in from..=to {
        let x = a.block(h).expect("read").expect("kept");
        let y = b.block(h).expect("read").expect("stored");
        assert_eq!(x.encode_to_vec(), y.encode_to_vec(), "height {h}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruning_validator_serves_what_it_keeps_restarts_and_is_not_charged_for_the_rest() {
    let net = build_with(
        VALIDATORS,
        2,
        |g| g["params"]["unbonding_period"] = serde_json::json!(UNBONDING),
        |i, cfg| {
            if i == 0 {
                let mut s = toml::Table::new();
                s.insert("keep_blocks".into(), toml::Value::Integer(1));
                cfg.insert("storage".into(), toml::Value::Table(s));
            }
        },
    );
    // Node 5 hears only of validator 0, and nobody else dials it.
    let lone = format!("127.0.0.1:{}", net.p2p[5]);
    for i in 1..NODES {
        net.edit_config(i, |cfg| {
            let peers = cfg["p2p"]["peers"].as_array_mut().expect("peers");
            if i == 5 {
                peers.retain(|p| p.as_str() == Some(&format!("127.0.0.1:{}", net.p2p[0])));
            } else {
                peers.retain(|p| p.as_str() != Some(lone.as_str()));
            }
        });
    }
    let all: Vec<usize> = (0..VALIDATORS).collect();
    // The full nodes start once validator 0 pruned, so they must sync.
    let mut nodes = Nodes(
        all.iter()
            .map(|&i| start(&net.homes[i], &net.logs[i]))
            .collect(),
    );
    // Past two prunings of validator 0.
    let target = KEEP + 48;
    wait_heights(&net.metrics, &all, target, 180, &net.logs);
    let warned = std::fs::read_to_string(&net.logs[0]).expect("log");
    assert!(
        warned.contains("below the evidence window"),
        "raised with a warning"
    );
    let tip = height(net.metrics[0]).expect("height");
    assert_pruned_answers(net.grpc[0], tip).await;
    for i in [4, 5] {
        nodes.push(start(&net.homes[i], &net.logs[i]));
    }
    // Control: an unpruned validator serves height 1.
    query(net.grpc[1])
        .await
        .get_block(pb::GetBlockRequest { height: 1 })
        .await
        .expect("node 1 keeps every block");

    // Node 4 caught up from genesis (its peers include unpruned ones),
    // node 5 (only the pruned peer) could not, and neither charged anyone
    // for a false height.
    wait_heights(&net.metrics, &[4], target, 120, &net.logs);
    assert_eq!(height(net.metrics[5]).unwrap_or(0), 0, "node 5 cannot sync");
    wait_for("node 5 learns that node 0 pruned", 30, &net.logs, || {
        std::fs::read_to_string(&net.logs[5])
            .unwrap_or_default()
            .contains("peer pruned the heights we need")
    });
    for i in [4, 5] {
        assert_eq!(
            false_heights(net.metrics[i]),
            0,
            "node {i} charged a pruned peer"
        );
    }

    // Validator 0 restarts from its pruned store and keeps up.
    stop(&mut nodes[0]);
    nodes[0] = start(&net.homes[0], &net.logs[0]);
    let again = max_height(&net.metrics, &all) + 20;
    wait_heights(&net.metrics, &all, again, 120, &net.logs);
    for c in nodes.iter_mut() {
        stop(c);
    }
    let s = Storage::open(net.homes[0].join("data/node.redb")).expect("open");
    let (lowest, latest) = (
        s.lowest_block_height().expect("read").expect("blocks"),
        s.latest_height().expect("read").expect("blocks"),
    );
    drop(s);
    assert!(lowest > 1, "validator 0 pruned");
    assert!(
        latest - lowest + 1 >= KEEP,
        "kept {lowest}..={latest}, fewer than {KEEP}"
    );
    assert_agree(&net.homes[0], &net.homes[1], lowest, latest.min(again));
    eprintln!("validator 0 holds {lowest}..={latest}; others agree");
}
