//! Which submitted transactions were committed, and when: the bench reads
//! the blocks of the measured window (and, after the load stops, the blocks
//! that drain the mempools) and matches their transaction hashes with the
//! load generator's submission times.

use std::collections::HashMap;
use std::time::Duration;

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::Hash;
use anyhow::{Context, Result};
use tokio::time::Instant;
use tonic::transport::Channel;

/// GetBlock calls in flight at once.
const FETCHES: usize = 8;
/// Per-call deadline.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the bench waits after the load for accepted transactions to commit.
pub const DRAIN: Duration = Duration::from_secs(10);

/// The transaction hashes of each height in `heights`, a few calls at a time.
pub async fn hashes_at(
    client: &QueryClient<Channel>,
    heights: impl IntoIterator<Item = u64>,
) -> Result<HashMap<u64, Vec<Hash>>> {
    let mut pending = heights.into_iter();
    let mut fetches = tokio::task::JoinSet::new();
    let mut out = HashMap::new();
    loop {
        while fetches.len() < FETCHES {
            let Some(h) = pending.next() else { break };
            let mut q = client.clone();
            fetches.spawn(async move {
                let r = tokio::time::timeout(
                    RPC_TIMEOUT,
                    q.get_block(pb::GetBlockRequest { height: h }),
                )
                .await;
                (h, r)
            });
        }
        let Some(done) = fetches.join_next().await else {
            break;
        };
        let (h, r) = done.context("a GetBlock task failed")?;
        let b = r
            .with_context(|| format!("GetBlock({h}) timed out"))?
            .with_context(|| format!("GetBlock({h})"))?;
        let txs = b.into_inner().block.map(|b| b.txs).unwrap_or_default();
        out.insert(h, txs.iter().map(agora_validator::block::tx_hash).collect());
    }
    Ok(out)
}

/// Submit-to-commit latencies (ms) of the submitted transactions found in
/// blocks committed at the given instants; returns them with the count found.
pub fn latencies(
    committed_at: &[(Instant, &[Hash])],
    submitted: &HashMap<Hash, Instant>,
) -> Vec<f64> {
    let mut out = Vec::new();
    for (at, hashes) in committed_at {
        for h in *hashes {
            if let Some(sent) = submitted.get(h) {
                out.push(at.saturating_duration_since(*sent).as_secs_f64() * 1000.0);
            }
        }
    }
    out
}

/// After the load stopped: follows node0's new blocks from `next` until every
/// one of `accepted` submitted transactions was seen or [`DRAIN`] passed.
/// Returns each new block's hashes with the time it was first seen.
pub async fn drain(
    client: &QueryClient<Channel>,
    mut next: u64,
    mut seen: u64,
    accepted: u64,
    submitted: &HashMap<Hash, Instant>,
) -> Result<Vec<(Instant, Vec<Hash>)>> {
    let deadline = Instant::now() + DRAIN;
    let mut out = Vec::new();
    while seen < accepted && Instant::now() < deadline {
        let mut q = client.clone();
        let latest = q
            .get_status(pb::GetStatusRequest {})
            .await
            .context("GetStatus while draining")?
            .into_inner()
            .latest_height;
        if latest < next {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let now = Instant::now();
        let got = hashes_at(client, next..=latest).await?;
        for h in next..=latest {
            let hashes = got.get(&h).cloned().unwrap_or_default();
            seen += hashes.iter().filter(|x| submitted.contains_key(*x)).count() as u64;
            out.push((now, hashes));
        }
        next = latest + 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_commit_minus_submit_for_our_transactions_only() {
        let t = Instant::now();
        let ours = [[1u8; 32], [2u8; 32]];
        let theirs = [[9u8; 32]];
        let submitted: HashMap<Hash, Instant> =
            [(ours[0], t), (ours[1], t + Duration::from_millis(100))]
                .into_iter()
                .collect();
        let block1: Vec<Hash> = vec![ours[0], theirs[0]];
        let block2: Vec<Hash> = vec![ours[1]];
        let at1 = t + Duration::from_millis(250);
        let at2 = t + Duration::from_millis(400);
        let l = latencies(&[(at1, &block1), (at2, &block2)], &submitted);
        assert_eq!(l.len(), 2);
        assert!(
            (l[0] - 250.0).abs() < 1e-6 && (l[1] - 300.0).abs() < 1e-6,
            "{l:?}"
        );
    }
}
