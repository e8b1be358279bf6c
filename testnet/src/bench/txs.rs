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
use serde::Serialize;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::loadgen::{self, LoadCounters, LoadReport};
use super::measure::Commit;
use super::rpc::RPC_TIMEOUT;

/// GetBlock calls in flight at once.
const FETCHES: usize = 8;
/// After the load, how long the bench waits without any accepted
/// transaction newly seen committed before it stops waiting.
pub const DRAIN_STALL: Duration = Duration::from_secs(10);
/// After the load, how long the bench waits for accepted transactions to
/// commit at most (a chain that keeps committing the backlog of full
/// mempools is followed this long).
pub const DRAIN_MAX: Duration = Duration::from_secs(60);
/// Accepted transactions not seen committed that the bench asks the nodes
/// about at most (one GetTx per node each).
pub const MAX_ASKED: usize = 20_000;

/// What became of the load's transactions.
pub struct Outcome {
    /// Submit-to-commit latencies (ms) of those seen committed in the window
    /// or the drain, sorted.
    pub latencies_ms: Vec<f64>,
    /// Load transactions committed during the warm-up, before the window.
    pub warmup_committed: u64,
    /// The accepted ones not seen committed.
    pub unseen: Unseen,
}

impl Outcome {
    /// The load generator's `report` completed with what became of its
    /// transactions.
    pub fn report(self, report: LoadReport) -> LoadReport {
        LoadReport {
            committed: self.latencies_ms.len() as u64 + self.warmup_committed,
            tx_latency_ms_p50: loadgen::percentile(&self.latencies_ms, 50.0),
            tx_latency_ms_p99: loadgen::percentile(&self.latencies_ms, 99.0),
            unseen: self.unseen,
            ..report
        }
    }
}

/// Counts the transactions of the window's `commits` (all but the first,
/// which opened the window at `t0`) and, when there was `load`, follows the
/// blocks that drain the mempools after it: which transactions `counters`
/// saw submitted were committed, and how long each took. Blocks above
/// `load_from` may hold load transactions.
pub async fn outcome(
    clients: &[QueryClient<Channel>],
    commits: &mut [Commit],
    t0: Instant,
    load_from: u64,
    counters: &LoadCounters,
    load: bool,
) -> Result<Outcome> {
    let t_count = Instant::now();
    let mut committed_at = window_blocks(&clients[0], commits, t0).await?;
    let submitted = counters.submitted_at();
    // Load transactions committed during the warm-up, before the window's
    // first certificate: committed, but without a commit time to measure.
    let first = commits[0].height;
    let warmup_hashes: Vec<Hash> = hashes_at(&clients[0], load_from + 1..=first)
        .await?
        .into_values()
        .flatten()
        .filter(|h| submitted.contains_key(h))
        .collect();
    let mut unseen = Unseen::default();
    if load {
        let next = commits.last().map_or(0, |c| c.height) + 1;
        unseen = drain_and_account(
            clients,
            &mut committed_at,
            &warmup_hashes,
            next,
            &submitted,
            counters,
        )
        .await?;
    }
    eprintln!(
        "bench: read the transactions of {} blocks in {:.2} s",
        committed_at.len(),
        t_count.elapsed().as_secs_f64()
    );
    let mut latencies_ms = latencies(
        &committed_at
            .iter()
            .map(|(at, h)| (*at, h.as_slice()))
            .collect::<Vec<_>>(),
        &submitted,
    );
    latencies_ms.sort_by(f64::total_cmp);
    Ok(Outcome {
        latencies_ms,
        warmup_committed: warmup_hashes.len() as u64,
        unseen,
    })
}

/// Reads the blocks of the window's `commits`: sets the transaction count
/// of each but the first (which opened the window at `t0`) and returns their
/// transaction hashes with the time each was committed.
async fn window_blocks(
    client: &QueryClient<Channel>,
    commits: &mut [Commit],
    t0: Instant,
) -> Result<Vec<(Instant, Vec<Hash>)>> {
    let hashes = hashes_at(client, commits.iter().skip(1).map(|c| c.height)).await?;
    for c in commits.iter_mut().skip(1) {
        c.txs = hashes.get(&c.height).map_or(0, |v| v.len() as u64);
    }
    Ok(commits
        .iter()
        .skip(1)
        .map(|c| {
            let at = t0 + Duration::from_secs_f64(c.at_s);
            (at, hashes.get(&c.height).cloned().unwrap_or_default())
        })
        .collect())
}

/// After the load: adds the blocks from `next` on that drain the mempools
/// to `committed_at`, then asks the nodes about the accepted transactions
/// seen neither there nor in `warmup_hashes`.
async fn drain_and_account(
    clients: &[QueryClient<Channel>],
    committed_at: &mut Vec<(Instant, Vec<Hash>)>,
    warmup_hashes: &[Hash],
    next: u64,
    submitted: &HashMap<Hash, Instant>,
    counters: &LoadCounters,
) -> Result<Unseen> {
    let seen = warmup_hashes.len() as u64
        + committed_at
            .iter()
            .flat_map(|(_, h)| h)
            .filter(|h| submitted.contains_key(*h))
            .count() as u64;
    let accepted = counters.report().accepted;
    committed_at.extend(drain(&clients[0], next, seen, accepted, submitted).await?);
    let mut missing = counters.accepted_hashes();
    for h in committed_at
        .iter()
        .flat_map(|(_, h)| h)
        .chain(warmup_hashes)
    {
        missing.remove(h);
    }
    account_for(clients, missing.into_iter().collect()).await
}

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
/// one of `accepted` submitted transactions was seen, none was newly seen
/// for [`DRAIN_STALL`], or [`DRAIN_MAX`] passed. Returns each new block's
/// hashes with the time it was first seen.
pub async fn drain(
    client: &QueryClient<Channel>,
    mut next: u64,
    mut seen: u64,
    accepted: u64,
    submitted: &HashMap<Hash, Instant>,
) -> Result<Vec<(Instant, Vec<Hash>)>> {
    let deadline = Instant::now() + DRAIN_MAX;
    let mut progress_at = Instant::now();
    let mut out = Vec::new();
    while seen < accepted && Instant::now() < deadline && progress_at.elapsed() < DRAIN_STALL {
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
            let ours = hashes.iter().filter(|x| submitted.contains_key(*x)).count() as u64;
            if ours > 0 {
                seen += ours;
                progress_at = now;
            }
            out.push((now, hashes));
        }
        next = latest + 1;
    }
    Ok(out)
}

/// What the nodes say of the accepted transactions the bench did not see
/// committed: "none lost" means `unknown` is 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Unseen {
    /// Accepted transactions not seen in a block by the end of the drain.
    pub count: u64,
    /// Of those, how many were asked about (at most [`MAX_ASKED`]).
    pub asked: u64,
    /// A node reports it committed (in a block the drain did not read).
    pub committed: u64,
    /// Still in some node's mempool.
    pub pending: u64,
    /// A node reports it rejected or failed.
    pub refused: u64,
    /// No node knows it: admitted, then dropped.
    pub unknown: u64,
}

/// Asks every node (node0 first, the others only while no node has placed
/// it) about each hash in `unseen`, up to [`MAX_ASKED`] of them, a few calls
/// at a time, and counts the furthest status any node gives.
pub async fn account_for(clients: &[QueryClient<Channel>], unseen: Vec<Hash>) -> Result<Unseen> {
    let mut out = Unseen {
        count: unseen.len() as u64,
        ..Unseen::default()
    };
    let mut pending = unseen.into_iter().take(MAX_ASKED);
    let mut asks = tokio::task::JoinSet::new();
    loop {
        while asks.len() < FETCHES {
            let Some(h) = pending.next() else { break };
            let clients = clients.to_vec();
            asks.spawn(async move { status_anywhere(&clients, h).await });
        }
        let Some(done) = asks.join_next().await else {
            break;
        };
        out.asked += 1;
        match done.context("a GetTx task failed")?? {
            Some(pb::TxStatus::Committed) => out.committed += 1,
            Some(pb::TxStatus::Pending) => out.pending += 1,
            Some(_) => out.refused += 1,
            None => out.unknown += 1,
        }
    }
    Ok(out)
}

/// The furthest status any node gives `hash` (committed, then pending,
/// then a refusal), or `None` when no node knows it.
async fn status_anywhere(
    clients: &[QueryClient<Channel>],
    hash: Hash,
) -> Result<Option<pb::TxStatus>> {
    let mut best: Option<pb::TxStatus> = None;
    for c in clients {
        let mut q = c.clone();
        let asked = tokio::time::timeout(
            RPC_TIMEOUT,
            q.get_tx(pb::GetTxRequest {
                hash: hash.to_vec(),
            }),
        )
        .await
        .context("GetTx timed out")?;
        let status = match asked {
            Ok(r) => r.into_inner().status(),
            Err(e) if e.code() == tonic::Code::NotFound => continue,
            Err(e) => return Err(e).context("GetTx"),
        };
        best = Some(further(best, status));
        if status == pb::TxStatus::Committed {
            break;
        }
    }
    Ok(best)
}

/// The further along of two nodes' answers: committed, then pending, then
/// a refusal (a node that refused it says less than one that holds it).
fn further(known: Option<pb::TxStatus>, other: pb::TxStatus) -> pb::TxStatus {
    let rank = |s: pb::TxStatus| match s {
        pb::TxStatus::Committed => 3,
        pb::TxStatus::Pending => 2,
        _ => 1,
    };
    match known {
        Some(k) if rank(k) >= rank(other) => k,
        _ => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_furthest_status_any_node_gives_wins() {
        use pb::TxStatus::{Committed, Failed, Pending, Rejected};
        assert_eq!(further(None, Rejected), Rejected);
        assert_eq!(further(Some(Rejected), Pending), Pending);
        assert_eq!(further(Some(Pending), Failed), Pending);
        assert_eq!(further(Some(Pending), Committed), Committed);
        assert_eq!(further(Some(Committed), Pending), Committed);
    }

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
