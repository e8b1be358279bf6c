//! The measured window: node0's `StreamCommitCertificates` followed live,
//! each certificate's arrival time taken as its height's commit time, with
//! the CPU use sampled when the window opens and when it closes.

use std::time::Duration;

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use anyhow::{Context, Result, bail};
use tokio::time::Instant;
use tonic::Streaming;
use tonic::transport::Channel;

use super::cpu;
use super::measure::{self, Commit};
use super::nodes::Nodes;
use super::rpc::height;

/// What the bench saw during the window.
pub struct Window {
    /// When the first certificate arrived: time 0 of the window.
    pub t0: Instant,
    /// Seconds from `t0` to the close.
    pub wall_s: f64,
    /// The commits seen, in order; the first opens the window.
    pub commits: Vec<Commit>,
    /// Clock ticks per second of the CPU samples.
    pub cpu_hz: f64,
    /// CPU ticks at `t0`.
    pub cpu_start: cpu::Sample,
    /// CPU ticks at the close.
    pub cpu_end: cpu::Sample,
}

impl Window {
    /// Heights committed inside the window.
    pub fn heights(&self) -> u64 {
        let commits = &self.commits;
        commits
            .last()
            .map_or(0, |l| l.height.saturating_sub(commits[0].height))
    }
}

/// Records a window `length` long that opens with the first certificate
/// node0 (`client`) streams after now; the CPU samples cover `nodes`.
pub async fn record(
    nodes: &Nodes,
    client: &QueryClient<Channel>,
    length: Duration,
) -> Result<Window> {
    let mut stream = open_stream(client).await?;
    let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .context("no commit within 10 s")?
        .context("reading the certificate stream")?
        .context("the certificate stream ended")?;
    let t0 = Instant::now();
    let cpu_hz = measure::clock_ticks_per_second() as f64;
    let pids: Vec<Option<u32>> = (0..nodes.m.nodes.len()).map(|i| nodes.pid(i)).collect();
    let cpu_start = cpu::Sample::take(&pids);
    let mut commits = vec![commit(&first, 0.0)?];
    follow(&mut stream, t0, t0 + length, &mut commits).await?;
    drop(stream);
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu_end = cpu::Sample::take(&pids);
    Ok(Window {
        t0,
        wall_s,
        commits,
        cpu_hz,
        cpu_start,
        cpu_end,
    })
}

/// node0's certificates from the height after its latest on.
async fn open_stream(
    client: &QueryClient<Channel>,
) -> Result<Streaming<pb::GetCommitCertificateResponse>> {
    let mut stream_client = client.clone();
    let from = height(&stream_client)
        .await
        .context("node0 does not answer GetStatus")?
        + 1;
    Ok(stream_client
        .stream_commit_certificates(pb::StreamCommitCertificatesRequest { from_height: from })
        .await
        .context("opening StreamCommitCertificates on node0")?
        .into_inner())
}

/// Adds each certificate `stream` yields before `end` to `commits`, with its
/// arrival time since `t0`.
async fn follow(
    stream: &mut Streaming<pb::GetCommitCertificateResponse>,
    t0: Instant,
    end: Instant,
    commits: &mut Vec<Commit>,
) -> Result<()> {
    loop {
        match tokio::time::timeout_at(end, stream.message()).await {
            Err(_) => return Ok(()),
            Ok(Ok(Some(r))) => commits.push(commit(&r, t0.elapsed().as_secs_f64())?),
            Ok(Ok(None)) => bail!("node0 ended the certificate stream"),
            Ok(Err(s)) => bail!("certificate stream from node0: {s}"),
        }
    }
}

/// The commit certificate `r` reports, seen `at_s` into the window; its
/// transactions are counted later.
fn commit(r: &pb::GetCommitCertificateResponse, at_s: f64) -> Result<Commit> {
    Ok(Commit {
        at_s,
        height: r
            .header
            .as_ref()
            .map(|h| h.height)
            .context("certificate without header")?,
        txs: 0,
        round: r.certificate.as_ref().map_or(0, |c| c.round),
    })
}
