//! Forged gossip against a real `agora` process over real QUIC: forged
//! votes and transactions charged to the peer that sent them until it is
//! banned, by certificate and address.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agora_node::transport::{ChargeReason, TlsIdentity, close_code, wire};
use agora_proto::v1::{PeerMessage, StatusUpdate, Vote, peer_message::Kind};
use agora_validator::{ChainId, SecretKey};
use support::raw_peer::{client_endpoint, closed_with, connect, frame, genesis_of, send_raw};
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(30);

fn chain(name: &str) -> ChainId {
    ChainId::new(name).unwrap()
}

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed(&[seed; 32]).unwrap()
}

/// Forged votes against a real `agora` validator (alone of two, so height
/// 1 never ends and its own votes stay in its vote sets). A stranger that
/// proves some BLS key connects, first sends back the node's own genuine
/// votes (duplicates: never charged) and a stale vote for height 0 (never
/// checked, never charged), then votes in the node's name for other values
/// with garbage signatures: each conflicts with the node's own vote, is
/// checked at once and fails, and is charged 30 points. Three leave it
/// connected; the fourth reaches 100: banned and disconnected. A fresh
/// certificate from the same socket is refused; from another socket (a
/// negative control for the address binding) it is accepted.
#[test]
fn forged_votes_are_charged_until_the_sender_is_banned_by_certificate_and_address() {
    use support::net::*;
    let net = build(2, 0, |_, _| {});
    let mut node = Nodes(vec![start(&net.homes[0], &net.logs[0])]);
    let metrics = net.metrics[0];
    let server: SocketAddr = format!("127.0.0.1:{}", net.p2p[0]).parse().unwrap();
    let logs = net.logs[..1].to_vec();
    wait_for("metrics", 60, &logs, || {
        metric(metrics, "agora_height").is_some()
    });
    let charged = |r: &str| {
        metric(
            metrics,
            &format!("agora_peer_charges_total{{reason=\"{r}\"}}"),
        )
        .unwrap_or(0)
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let chain_id = chain("net-test");
        let genesis = genesis_of(&net.homes[0]);
        let ep = client_endpoint();
        let forger = key(77);
        let id = TlsIdentity::generate().unwrap();
        let conn = connect(&ep, server, &chain_id, &genesis, Some(&forger), &id)
            .await
            .expect("connect");
        // Like every peer, say our height on connecting: a node without a
        // signing state learns from it that the chain is new and may sign.
        send_raw(
            &conn,
            &frame(Kind::Status(StatusUpdate { latest_height: 0 })),
            true,
        )
        .await;

        // The node's own votes, as it gossips them to us.
        let mut own: Vec<Vote> = Vec::new();
        let end = Instant::now() + DEADLINE;
        // (Alone with half the power it prevotes nil in round 0 and waits
        // there: no quorum ever starts a timeout. One vote is all it has.)
        while own.is_empty() {
            assert!(
                Instant::now() < end,
                "no votes from the node: {:?}\n{}",
                conn.close_reason(),
                log_tails(&logs, 30)
            );
            let Ok(Ok(mut recv)) = timeout(Duration::from_secs(5), conn.accept_uni()).await else {
                continue;
            };
            let got = wire::read_frame(&mut recv, wire::MAX_FRAME).await;
            if let Ok((
                PeerMessage {
                    kind: Some(Kind::Vote(v)),
                },
                _,
            )) = got
                && !own.contains(&v)
            {
                own.push(v);
            }
        }
        // Stale and duplicate: must never be charged.
        for _ in 0..3 {
            send_raw(&conn, &frame(Kind::Vote(own[0].clone())), true).await;
        }
        let mut stale = own[0].clone();
        stale.height = 0;
        stale.signature = vec![9; 96];
        send_raw(&conn, &frame(Kind::Vote(stale)), true).await;

        let forged = |i: u8| {
            let mut v = own[0].clone();
            v.block_hash = vec![0xf0 | i; 32];
            v.signature = vec![i; 96];
            frame(Kind::Vote(v))
        };
        for i in 1..=3 {
            send_raw(&conn, &forged(i), true).await;
        }
        let end = Instant::now() + DEADLINE;
        while charged("consensus") < 3 {
            assert!(Instant::now() < end, "forged votes not charged");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            charged("consensus"),
            3,
            "the genuine and stale votes were not charged"
        );
        assert!(conn.close_reason().is_none(), "90 points: still connected");
        send_raw(&conn, &forged(4), true).await;
        assert_eq!(
            closed_with(&conn, DEADLINE).await,
            Some(close_code::MISBEHAVED)
        );
        assert_eq!(
            metric(metrics, "agora_peer_bans_total{reason=\"consensus\"}"),
            Some(1)
        );

        // A fresh certificate and key from the same socket: refused.
        let again = connect(
            &ep,
            server,
            &chain_id,
            &genesis,
            Some(&key(78)),
            &TlsIdentity::generate().unwrap(),
        )
        .await;
        assert!(again.is_err(), "a banned address came back: {again:?}");
        assert!(
            metric(
                metrics,
                "agora_budget_dropped_total{kind=\"banned_address\"}"
            )
            .unwrap_or(0)
                >= 1
        );
        // From another socket it is someone else.
        let other = connect(
            &client_endpoint(),
            server,
            &chain_id,
            &genesis,
            Some(&key(79)),
            &TlsIdentity::generate().unwrap(),
        )
        .await;
        assert!(other.is_ok(), "{other:?}");
    });
    assert_eq!(charged(ChargeReason::Frame.label()), 0);
    stop(&mut node[0]);
}

/// A peer (a full node: no key needed) gossips transactions. One that
/// verifies but fails a state check (its account does not exist) can go
/// stale in honest hands: never charged. Forged signatures are: 30 points
/// each, so the fourth bans and disconnects the sender.
#[test]
fn forged_transactions_are_charged_to_the_peer_that_gossiped_them() {
    use agora_proto::v1 as pb;
    use agora_validator::AccountSecretKey;
    use support::net::*;
    let net = build(2, 0, |_, _| {});
    let mut node = Nodes(vec![start(&net.homes[0], &net.logs[0])]);
    let metrics = net.metrics[0];
    let server: SocketAddr = format!("127.0.0.1:{}", net.p2p[0]).parse().unwrap();
    let logs = net.logs[..1].to_vec();
    wait_for("metrics", 60, &logs, || {
        metric(metrics, "agora_height").is_some()
    });
    let charged = || {
        metric(
            metrics,
            "agora_peer_charges_total{reason=\"bad_transaction\"}",
        )
        .unwrap_or(0)
    };
    let chain_id = chain("net-test");
    let genesis = genesis_of(&net.homes[0]);
    let tx = |seed: u8, nonce: u64| {
        let body = pb::TxBody {
            chain_id: "net-test".into(),
            nonce,
            kind: Some(pb::tx_body::Kind::Transfer(pb::Transfer {
                to: vec![9; 20],
                amount: "1".into(),
            })),
            fee: "1000".into(),
        };
        let sk = AccountSecretKey::from_seed(&[seed; 32]);
        agora_validator::ledger::tx::sign(&sk, &chain_id, body)
    };
    let forged = |nonce: u64| {
        let mut t = tx(1, nonce);
        t.signature = tx(2, nonce).signature;
        frame(Kind::Transaction(t))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ep = client_endpoint();
        let id = TlsIdentity::generate().unwrap();
        let conn = connect(&ep, server, &chain_id, &genesis, None, &id)
            .await
            .expect("connect");
        send_raw(&conn, &frame(Kind::Transaction(tx(3, 0))), true).await;
        for nonce in 1..=3 {
            send_raw(&conn, &forged(nonce), true).await;
        }
        let end = Instant::now() + DEADLINE;
        while charged() < 3 {
            assert!(
                Instant::now() < end,
                "forged transactions not charged\n{}",
                log_tails(&logs, 30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(charged(), 3, "the stale-but-valid transaction was charged");
        assert!(conn.close_reason().is_none(), "90 points: still connected");
        send_raw(&conn, &forged(4), true).await;
        assert_eq!(
            closed_with(&conn, DEADLINE).await,
            Some(close_code::MISBEHAVED)
        );
        assert_eq!(
            metric(metrics, "agora_peer_bans_total{reason=\"bad_transaction\"}"),
            Some(1)
        );
    });
    stop(&mut node[0]);
}
