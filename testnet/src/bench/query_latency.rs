//! Latency of single gRPC queries against a running node, one at a time on
//! one connection: `GetStatus` (answered from memory) and
//! `GetCommitCertificate` (read from the store). A store-backed query that
//! is far slower than `GetStatus` points at the transport (for example
//! Nagle's algorithm meeting delayed ACKs), not at the store.

use super::measure::{LatencySummary, summarize};
use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use serde::Serialize;
use std::time::Instant;
use tonic::transport::Channel;

/// Queries timed per kind.
pub const SAMPLES: usize = 300;

/// Round-trip times in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct QueryLatency {
    /// `GetStatus`.
    pub get_status_ms: Option<LatencySummary>,
    /// `GetCommitCertificate` of heights spread over `1..=latest`.
    pub get_commit_certificate_ms: Option<LatencySummary>,
}

/// Times [`SAMPLES`] queries of each kind on `client`, whose chain is at
/// `latest` (at least 1). Failed queries are left out of the summary.
pub async fn measure(client: &QueryClient<Channel>, latest: u64) -> QueryLatency {
    debug_assert!(latest >= 1);
    let mut c = client.clone();
    let mut status = Vec::with_capacity(SAMPLES);
    let mut cert = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let t = Instant::now();
        if c.get_status(pb::GetStatusRequest {}).await.is_ok() {
            status.push(t.elapsed().as_secs_f64() * 1e3);
        }
        // Spread over the chain so the store is not asked for one hot key.
        let height = 1 + (i as u64 * 7919) % latest;
        let t = Instant::now();
        if c.get_commit_certificate(pb::GetCommitCertificateRequest { height })
            .await
            .is_ok()
        {
            cert.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    QueryLatency {
        get_status_ms: summarize(&status),
        get_commit_certificate_ms: summarize(&cert),
    }
}
