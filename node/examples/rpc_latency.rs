//! Latency of store-backed gRPC queries against a running node:
//! `cargo run --release -p agora-node --example rpc_latency -- 127.0.0.1:27001 200`
//! sends that many `GetCommitCertificate` calls (one at a time, one
//! connection) and prints the median and 90th percentile.

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let node = args.next().unwrap_or_else(|| "127.0.0.1:27001".into());
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(200);
    let mut q = QueryClient::new(agora_node::client::connect(&node).await?);
    let latest = q
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner()
        .latest_height;
    let mut times: Vec<Duration> = Vec::with_capacity(n);
    for i in 0..n {
        let height = 1 + (i as u64 % latest.max(1));
        let t = Instant::now();
        q.get_commit_certificate(pb::GetCommitCertificateRequest { height })
            .await?;
        times.push(t.elapsed());
    }
    times.sort();
    let at = |p: usize| times[(times.len() - 1) * p / 100];
    println!(
        "GetCommitCertificate x{n}: median {:.3} ms, p90 {:.3} ms",
        at(50).as_secs_f64() * 1e3,
        at(90).as_secs_f64() * 1e3
    );
    Ok(())
}
