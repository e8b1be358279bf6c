//! The bench's load: the generator ([`loadgen`]) set up with the testnet's
//! funded accounts and started a moment before the measured window.

use std::sync::Arc;
use std::time::Duration;

use agora_proto::v1::query_client::QueryClient;
use agora_validator::{Address, ChainId};
use anyhow::{Context, Result, anyhow};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::CHAIN_ID;
use super::loadgen::{self, LoadCounters};
use super::nodes::Nodes;
use super::rpc::height;

/// The load as it runs.
pub struct Load {
    /// The generator, if there is load; it ends when the window does.
    pub task: Option<JoinHandle<()>>,
    /// Blocks after this height may hold load transactions.
    pub from: u64,
}

/// Starts `rate` signed transfers per second on `nodes` (none if 0) for a
/// warm-up and then `window`; returns once the warm-up is over.
pub async fn start(
    nodes: &Nodes,
    node0: &QueryClient<Channel>,
    rate: f64,
    window: Duration,
    counters: &Arc<LoadCounters>,
) -> Result<Load> {
    // Signed before the window (the generator's signing would otherwise take
    // CPU from the nodes on this shared machine), started a moment before it
    // so that it is steady.
    let warmup = if rate > 0.0 {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    let prepared = if rate > 0.0 {
        let ahead = (rate * (warmup + window).as_secs_f64() * 1.1) as usize;
        let ahead = ahead.min(loadgen::MAX_AHEAD);
        eprintln!("bench: signing {ahead} transfers ahead of the window");
        Some(prepare(nodes, rate, ahead).await?)
    } else {
        None
    };
    let load_until = Instant::now() + warmup + window;
    let from = height(node0).await.unwrap_or(0);
    let task = prepared.map(|p| {
        let counters = counters.clone();
        tokio::spawn(async move { p.run(load_until, counters).await })
    });
    tokio::time::sleep(warmup).await;
    Ok(Load { task, from })
}

/// The load generator for `nodes`: their funded accounts, transfers signed
/// `ahead` before this returns.
async fn prepare(nodes: &Nodes, rate: f64, ahead: usize) -> Result<loadgen::Prepared> {
    let chain = ChainId::new(CHAIN_ID).map_err(|e| anyhow!("chain id: {e}"))?;
    let mut accounts = Vec::new();
    for d in &nodes.m.delegators {
        let key = agora_node::keys::load_account(&d.key_file)
            .with_context(|| format!("loading {}", d.key_file.display()))?;
        let address = Address::of_account(&key.public_key());
        accounts.push(loadgen::Account { key, address });
    }
    let endpoints: Vec<String> = nodes.m.nodes.iter().map(|e| e.grpc.clone()).collect();
    loadgen::prepare(&endpoints, accounts, chain, rate, ahead)
        .await
        .context("the load generator could not start (bad endpoints?)")
}
