//! `agora-testnet bench`: starts a fresh loopback testnet with the smallest
//! sensible timeouts, measures it for a while and writes the result.
//!
//! * throughput and latency come from node0's live `StreamCommitCertificates`
//!   ([`window`]): each certificate's arrival time is the height's observed
//!   commit time; transactions per height are counted afterwards with
//!   `GetBlock` ([`txs`]);
//! * CPU per node is utime + stime from `/proc/<pid>/stat` at the start and
//!   the end of the measured window ([`cpu`]);
//! * with `--tx-rate`, a load generator ([`loadgen`], started by [`load`])
//!   submits signed transfers from funded accounts during the window;
//! * catch-up ([`catch_up`]): one validator is stopped, the others commit K
//!   more heights, it is restarted and its height is sampled until it has
//!   caught up.
//!
//! Every node is stopped when the bench ends, fails or is interrupted.

mod catch_up;
mod cpu;
mod load;
mod loadgen;
mod measure;
mod nodes;
mod plot;
mod query_latency;
mod report;
mod result;
mod rpc;
mod setup;
mod txs;
mod window;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agora_proto::v1::query_client::QueryClient;
use anyhow::{Context, Result, anyhow, bail};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::procs;
use crate::say::say;
use crate::signals::StopSignals;
use cpu::CpuOut;
use nodes::Nodes;
use result::{BenchResult, ConfigOut};
use setup::Timeouts;
use window::Window;

/// Chain id of bench testnets.
const CHAIN_ID: &str = "agora-bench";
/// Longest a fresh testnet may take to commit its first heights.
const START_DEADLINE: Duration = Duration::from_secs(90);
/// How often heights are sampled while waiting and during catch-up.
const POLL: Duration = Duration::from_millis(20);
/// Longest measured window accepted.
const MAX_DURATION_S: f64 = 3600.0;
/// Most load-generating accounts.
const MAX_ACCOUNTS: usize = 4096;

/// Arguments of `agora-testnet bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Validators to run.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Signed transfers per second to submit during the measurement (0: empty blocks).
    #[arg(long, default_value_t = 0.0)]
    pub tx_rate: f64,
    /// Testnet directory (deleted first if it holds an earlier bench).
    #[arg(long, default_value = "target/agora-bench")]
    pub dir: PathBuf,
    /// Node i uses p2p (UDP) base+10i, gRPC base+10i+1, metrics base+10i+2.
    #[arg(long, default_value_t = 28000)]
    pub base_port: u16,
    /// The JSON result (default DIR/bench.json); the SVG plot goes next to it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Heights the others commit while one validator is down before it is
    /// restarted and its catch-up is measured (0: skip).
    #[arg(long, default_value_t = 200)]
    pub catch_up_blocks: u64,
    /// Funded accounts the load is spread over (nonces are per account).
    #[arg(long, default_value_t = 256)]
    pub accounts: usize,
    /// consensus.timeout_propose_ms (round 0); the per-round delta is a third of it.
    /// The default is the local testnet's: a height whose proposal comes on time
    /// never waits on it, and under heavy load a full block took longer than
    /// 150 ms to build, send and check here: rounds failed, heights fell to ~1/s.
    #[arg(long, default_value_t = 600)]
    pub timeout_propose_ms: u64,
    /// consensus.timeout_prevote_ms and timeout_precommit_ms (round 0).
    #[arg(long, default_value_t = 50)]
    pub timeout_vote_ms: u64,
    /// consensus.timeout_commit_ms: pause after each commit.
    #[arg(long, default_value_t = 0)]
    pub timeout_commit_ms: u64,
}

/// Runs the bench; the nodes are stopped before this returns.
pub fn run(a: BenchArgs) -> Result<ExitCode> {
    check_args(&a)?;
    let agora = procs::find_agora()?;
    let timeouts = Timeouts::from_args(&a);
    let m = setup::testnet(&a, &agora, timeouts)?;
    let out = a.out.clone().unwrap_or_else(|| m.dir.join("bench.json"));
    let svg = out.with_extension("svg");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    // Before the first node starts: a Ctrl-C from here on stops them.
    let mut signals = {
        let _entered = rt.enter();
        StopSignals::install()?
    };
    let mut nodes = Nodes::start(m, agora)?;
    eprintln!(
        "bench: {} validators in {}, timeouts {:?}",
        a.validators,
        nodes.m.dir.display(),
        timeouts
    );
    let r = rt.block_on(measure_until_signal(&mut nodes, &a, timeouts, &mut signals));
    drop(rt);
    let stopped = nodes.stop_all();
    let Some(r) = r else {
        eprintln!("bench: interrupted; every node was stopped");
        // 128 + SIGINT, as a shell reports an interrupted command.
        return stopped.map(|()| ExitCode::from(130));
    };
    let mut result = r.map_err(|e| {
        let tails = nodes.log_tails();
        anyhow!("{e:#}\n{tails}")
    })?;
    stopped?;
    result.config.agora_bin = nodes.m.agora_bin.clone();
    write(&result, &out, &svg)?;
    Ok(ExitCode::SUCCESS)
}

/// Fails on arguments out of their accepted ranges.
fn check_args(a: &BenchArgs) -> Result<()> {
    if !(a.duration > 0.0 && a.duration <= MAX_DURATION_S) {
        bail!("--duration must be in (0, {MAX_DURATION_S}] seconds");
    }
    if !(a.tx_rate >= 0.0 && a.tx_rate.is_finite()) {
        bail!("--tx-rate must be a finite number >= 0");
    }
    if a.accounts == 0 || a.accounts > MAX_ACCOUNTS {
        bail!("--accounts must be in 1..={MAX_ACCOUNTS}");
    }
    Ok(())
}

/// Writes `r` to `out` (JSON) and `svg` (its plot) and prints its summary.
fn write(r: &BenchResult, out: &Path, svg: &Path) -> Result<()> {
    let json = serde_json::to_string_pretty(r).context("serialising the result")? + "\n";
    std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
    std::fs::write(svg, report::render_svg(r))
        .with_context(|| format!("writing {}", svg.display()))?;
    crate::say::write(&report::summary(r));
    say!("wrote {} and {}", out.display(), svg.display());
    Ok(())
}

/// [`measure`], unless SIGTERM or SIGINT comes first (then `None`).
async fn measure_until_signal(
    nodes: &mut Nodes,
    a: &BenchArgs,
    timeouts: Timeouts,
    signals: &mut StopSignals,
) -> Option<Result<BenchResult>> {
    tokio::select! {
        r = measure(nodes, a, timeouts) => Some(r),
        () = signals.recv() => None,
    }
}

/// Measures the running testnet: the window, then what follows from it
/// (its transactions, query latency and catch-up).
async fn measure(nodes: &mut Nodes, a: &BenchArgs, timeouts: Timeouts) -> Result<BenchResult> {
    let n = nodes.m.nodes.len();
    let clients = rpc::clients(&nodes.m.nodes)?;
    wait_until_committing(nodes, &clients).await?;
    eprintln!(
        "bench: testnet is committing; measuring for {} s",
        a.duration
    );
    let counters = Arc::new(loadgen::LoadCounters::default());
    let (mut w, load_from) = measure_window(nodes, &clients[0], a, &counters).await?;
    let final_heights: Vec<u64> = rpc::heights(&clients)
        .await
        .into_iter()
        .map(|h| h.unwrap_or(0))
        .collect();
    let load = a.tx_rate > 0.0;
    let tx_outcome =
        txs::outcome(&clients, &mut w.commits, w.t0, load_from, &counters, load).await?;
    let cpu = CpuOut::between(&w.cpu_start, &w.cpu_end, w.cpu_hz, w.wall_s, w.heights(), n);
    // Timed before catch-up stops a node.
    let query_latency = match final_heights.iter().copied().max() {
        Some(latest) if latest >= 1 => Some(query_latency::measure(&clients[0], latest).await),
        _ => None,
    };
    let (catch_up, catch_up_note) = catch_up::measure(nodes, &clients, a.catch_up_blocks).await;
    let heights = w.heights();
    let latency_points = measure::latencies_ms(&w.commits);
    let lat: Vec<f64> = latency_points.iter().map(|p| p.1).collect();
    let txs_committed: u64 = w.commits.iter().skip(1).map(|c| c.txs).sum();
    Ok(BenchResult {
        config: ConfigOut::new(a, n, timeouts, nodes.m.dir.clone()),
        heights,
        heights_per_s: heights as f64 / w.wall_s,
        latency_ms: measure::summarize(&lat),
        heights_after_round_0: w.commits.iter().skip(1).filter(|c| c.round > 0).count() as u64,
        txs_committed,
        tx_per_s: txs_committed as f64 / w.wall_s,
        load: tx_outcome.report(counters.report()),
        cpu,
        final_heights,
        query_latency,
        catch_up,
        catch_up_note,
        series: measure::buckets(&w.commits, a.duration),
        latency_points,
    })
}

/// Waits until every node has committed a few heights.
async fn wait_until_committing(nodes: &mut Nodes, clients: &[QueryClient<Channel>]) -> Result<()> {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        nodes.check_alive()?;
        let hs = rpc::heights(clients).await;
        if hs.iter().all(|h| h.is_some_and(|h| h >= 3)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the testnet did not reach height 3 within {START_DEADLINE:?}: heights {hs:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the load of `a`, if any, through the measured window; returns the
/// window once the load has ended and every node still runs, with the
/// height after which blocks may hold load transactions.
async fn measure_window(
    nodes: &mut Nodes,
    node0: &QueryClient<Channel>,
    a: &BenchArgs,
    counters: &Arc<loadgen::LoadCounters>,
) -> Result<(Window, u64)> {
    let length = Duration::from_secs_f64(a.duration);
    let load = load::start(nodes, node0, a.tx_rate, length, counters).await?;
    let w = window::record(nodes, node0, length).await?;
    if let Some(l) = load.task {
        let _ = l.await;
    }
    nodes.check_alive()?;
    Ok((w, load.from))
}
