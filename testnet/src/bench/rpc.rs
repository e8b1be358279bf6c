//! gRPC query clients of the bench's nodes and the heights they report.

use std::time::Duration;

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use anyhow::{Context, Result};
use tonic::transport::Channel;

use super::loadgen;
use crate::manifest::NodeEntry;

/// Deadline of one status or block request.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(2);

/// A client of the node at `endpoint`, allowed the large replies of
/// `GetBlock` on full blocks.
pub fn query_client(endpoint: &str) -> Result<QueryClient<Channel>> {
    let ch = loadgen::channel(endpoint).with_context(|| format!("bad endpoint {endpoint}"))?;
    Ok(QueryClient::new(ch).max_decoding_message_size(16 * 1024 * 1024))
}

/// `c`'s latest height, `None` if it does not answer in time.
pub async fn height(c: &QueryClient<Channel>) -> Option<u64> {
    let mut c = c.clone();
    tokio::time::timeout(RPC_TIMEOUT, c.get_status(pb::GetStatusRequest {}))
        .await
        .ok()?
        .ok()
        .map(|r| r.into_inner().latest_height)
}

/// Each node's latest height, asked one after the other.
pub async fn heights(clients: &[QueryClient<Channel>]) -> Vec<Option<u64>> {
    let mut out = Vec::with_capacity(clients.len());
    for c in clients {
        out.push(height(c).await);
    }
    out
}

/// A client of each of `nodes`, in order.
pub fn clients(nodes: &[NodeEntry]) -> Result<Vec<QueryClient<Channel>>> {
    nodes.iter().map(|e| query_client(&e.grpc)).collect()
}
