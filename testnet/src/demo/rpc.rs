//! The gRPC helpers every step uses: clients bounded by [`RPC_TIMEOUT`],
//! height waits, transactions awaited to their commit, and the reading of
//! amounts and powers from the answers.

use std::time::{Duration, Instant};

use agora_node::client::tx::{TxAction, submit};
use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::{AccountSecretKey, Address};
use anyhow::{Context, Result, bail, ensure};
use tonic::transport::{Channel, Endpoint};

use super::{Net, POLL, RPC_TIMEOUT, TX_DEADLINE};

/// The endpoint of a node's gRPC address (`host:port`).
pub(super) fn endpoint(grpc: &str) -> Result<Endpoint> {
    Endpoint::from_shared(format!("http://{grpc}"))
        .with_context(|| format!("bad gRPC endpoint {grpc:?}"))
}

/// A query client whose every request is bounded by [`RPC_TIMEOUT`].
pub(super) fn query_client(grpc: &str) -> Result<QueryClient<Channel>> {
    Ok(QueryClient::new(
        endpoint(grpc)?
            .connect_timeout(RPC_TIMEOUT)
            .timeout(RPC_TIMEOUT)
            .connect_lazy(),
    )
    .max_decoding_message_size(32 * 1024 * 1024))
}

/// The node's latest committed height.
pub(super) async fn latest(q: &mut QueryClient<Channel>) -> Result<u64> {
    Ok(q.get_status(pb::GetStatusRequest {})
        .await
        .context("GetStatus")?
        .into_inner()
        .latest_height)
}

/// Waits until every client's node has committed `h`.
pub(super) async fn wait_all_heights(
    net: &mut Net,
    clients: &[QueryClient<Channel>],
    h: u64,
    deadline: Duration,
) -> Result<Vec<u64>> {
    let t0 = Instant::now();
    loop {
        net.check_alive()?;
        let mut hs = Vec::with_capacity(clients.len());
        for c in clients {
            hs.push(latest(&mut c.clone()).await.ok());
        }
        if hs.iter().all(|x| x.is_some_and(|x| x >= h)) {
            return Ok(hs.into_iter().flatten().collect());
        }
        if t0.elapsed() > deadline {
            bail!(
                "nodes at heights {hs:?} after {deadline:?} (wanted all at {h} or more; None: not answering)"
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Submits `action` signed by `from` through `tx` and waits (at most
/// [`TX_DEADLINE`]) for it to be committed successfully.
pub(super) async fn send_on(
    tx: Channel,
    from: &AccountSecretKey,
    action: TxAction,
) -> Result<pb::SubmitTxResponse> {
    let what = format!("{action:?}")
        .split_whitespace()
        .next()
        .unwrap_or("tx")
        .to_string();
    let r = tokio::time::timeout(TX_DEADLINE, submit(tx, from, &action, true))
        .await
        .map_err(|_| anyhow::anyhow!("{what} not committed within {TX_DEADLINE:?}"))?
        .with_context(|| format!("submitting {what}"))?;
    ensure!(
        r.status == pb::TxStatus::Committed as i32,
        "{what} {}: {}",
        agora_node::client::tx::status_name(r.status),
        r.log
    );
    Ok(r)
}

/// The power of `a` in `set`, if it is in it.
pub(super) fn power_of(set: &pb::ValidatorSet, a: &Address) -> Option<u64> {
    set.validators
        .iter()
        .find(|v| v.address == a.0)
        .map(|v| v.power)
}

/// An amount of a gRPC answer (decimal text); `what` names it in the error.
pub(super) fn parse_u128(s: &str, what: &str) -> Result<u128> {
    s.parse()
        .with_context(|| format!("{what}: {s:?} is not an amount"))
}
