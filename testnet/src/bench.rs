//! `agora-testnet bench`: starts a fresh loopback testnet with the smallest
//! sensible timeouts, measures it for a while and writes the result.
//!
//! * throughput and latency come from node0's live `StreamCommitCertificates`:
//!   each certificate's arrival time is the height's observed commit time;
//!   transactions per height are counted afterwards with `GetBlock`;
//! * CPU per node is utime + stime from `/proc/<pid>/stat` at the start and
//!   the end of the measured window;
//! * with `--tx-rate`, a load generator ([`loadgen`]) submits signed transfers
//!   from funded accounts during the window;
//! * catch-up: one validator is stopped, the others commit K more heights,
//!   it is restarted and its height is sampled until it has caught up.
//!
//! Every node is stopped when the bench ends, fails or is interrupted.

mod loadgen;
mod measure;
mod plot;
mod query_latency;
mod txs;

use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use agora_node::home::Home;
use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::{Address, ChainId};
use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::generate;
use crate::manifest::{ByzantineNote, Manifest};
use crate::procs;
use measure::{Commit, LatencySummary, SecondBucket};

/// Marks a directory as a bench's, so that a later bench may delete it.
const MARKER: &str = "BENCH";
/// Chain id of bench testnets.
const CHAIN_ID: &str = "agora-bench";
/// Deadline of one status or block request.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
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
    #[arg(long, default_value_t = 150)]
    pub timeout_propose_ms: u64,
    /// consensus.timeout_prevote_ms and timeout_precommit_ms (round 0).
    #[arg(long, default_value_t = 50)]
    pub timeout_vote_ms: u64,
    /// consensus.timeout_commit_ms: pause after each commit.
    #[arg(long, default_value_t = 0)]
    pub timeout_commit_ms: u64,
}

/// The consensus timeouts every node ran with.
#[derive(Debug, Clone, Copy, Serialize)]
struct Timeouts {
    propose_ms: u64,
    propose_delta_ms: u64,
    prevote_ms: u64,
    prevote_delta_ms: u64,
    precommit_ms: u64,
    precommit_delta_ms: u64,
    commit_ms: u64,
}

impl Timeouts {
    fn from_args(a: &BenchArgs) -> Self {
        Self {
            propose_ms: a.timeout_propose_ms,
            propose_delta_ms: (a.timeout_propose_ms / 3).max(1),
            prevote_ms: a.timeout_vote_ms,
            prevote_delta_ms: (a.timeout_vote_ms / 2).max(1),
            precommit_ms: a.timeout_vote_ms,
            precommit_delta_ms: (a.timeout_vote_ms / 2).max(1),
            commit_ms: a.timeout_commit_ms,
        }
    }

    fn apply(&self, c: &mut agora_node::config::ConsensusConfig) {
        c.timeout_propose_ms = self.propose_ms;
        c.timeout_propose_delta_ms = self.propose_delta_ms;
        c.timeout_prevote_ms = self.prevote_ms;
        c.timeout_prevote_delta_ms = self.prevote_delta_ms;
        c.timeout_precommit_ms = self.precommit_ms;
        c.timeout_precommit_delta_ms = self.precommit_delta_ms;
        c.timeout_commit_ms = self.commit_ms;
    }
}

#[derive(Debug, Serialize)]
struct ConfigOut {
    validators: usize,
    duration_s: f64,
    tx_rate: f64,
    accounts: usize,
    catch_up_blocks: u64,
    timeouts: Timeouts,
    agora_bin: PathBuf,
    dir: PathBuf,
}

#[derive(Debug, Serialize)]
struct CpuOut {
    /// CPU time of each node over the window, as a percentage of one core.
    per_node_percent: Vec<f64>,
    /// CPU milliseconds of each node over the window.
    per_node_ms: Vec<f64>,
    /// Sum over the nodes.
    total_ms: f64,
    /// total_ms / (heights * validators).
    ms_per_validator_height: Option<f64>,
    /// The bench process itself (load generator, stream, polling).
    bench_process_percent: f64,
    /// /proc/loadavg (1, 5, 15 min) at the end of the window: other work on
    /// the machine competes with the nodes.
    loadavg: Option<[f64; 3]>,
    /// Cores available to this process.
    cores: usize,
}

#[derive(Debug, Clone, Serialize)]
struct CatchUp {
    /// The stopped and restarted node.
    node: String,
    /// Its height when it was stopped.
    height_at_stop: u64,
    /// The leader's height when it was restarted.
    leader_height_at_restart: u64,
    /// Its height when it first answered after the restart.
    height_at_first_answer: u64,
    /// Its height once level with the others.
    caught_up_height: u64,
    /// Blocks gained from the stop to catching up (the node may sync some
    /// before its gRPC port first answers).
    blocks: u64,
    /// From the restart to the first answer (process start, storage open).
    startup_seconds: f64,
    /// From the restart to catching up, startup included.
    seconds: f64,
    /// blocks / seconds.
    blocks_per_s: f64,
}

#[derive(Debug, Serialize)]
struct BenchResult {
    config: ConfigOut,
    /// Heights committed inside the window.
    heights: u64,
    heights_per_s: f64,
    /// Time between successive commits seen from node0.
    latency_ms: Option<LatencySummary>,
    /// Heights in the window decided in a round above 0 (a timeout fired).
    heights_after_round_0: u64,
    txs_committed: u64,
    tx_per_s: f64,
    #[serde(flatten)]
    load: loadgen::LoadReport,
    cpu: CpuOut,
    /// Every node's height at the end of the window.
    final_heights: Vec<u64>,
    /// Single-query gRPC round trips on node0, after the window.
    query_latency: Option<query_latency::QueryLatency>,
    catch_up: Option<CatchUp>,
    /// Why catch-up was not measured, if it was not.
    catch_up_note: Option<String>,
    /// Per second of the window.
    series: Vec<SecondBucket>,
    /// Per-height latency as (seconds into the window, ms), for the plot.
    #[serde(skip)]
    latency_points: Vec<(f64, f64)>,
}

/// Runs the bench; the nodes are stopped before this returns.
pub fn run(a: BenchArgs) -> Result<ExitCode> {
    if !(a.duration > 0.0 && a.duration <= MAX_DURATION_S) {
        bail!("--duration must be in (0, {MAX_DURATION_S}] seconds");
    }
    if !(a.tx_rate >= 0.0 && a.tx_rate.is_finite()) {
        bail!("--tx-rate must be a finite number >= 0");
    }
    if a.accounts == 0 || a.accounts > MAX_ACCOUNTS {
        bail!("--accounts must be in 1..={MAX_ACCOUNTS}");
    }
    let agora = procs::find_agora()?;
    prepare_dir(&a.dir)?;
    let mut plan = generate::loopback_plan(a.validators, a.base_port, CHAIN_ID, 20)?;
    plan.delegators = a.accounts;
    crate::check_ports(&plan)?;
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let dir = a
        .dir
        .canonicalize()
        .with_context(|| format!("resolving {}", a.dir.display()))?;
    std::fs::write(dir.join(MARKER), "agora-testnet bench directory\n")
        .with_context(|| format!("writing {}", dir.join(MARKER).display()))?;
    let g = generate::generate(&plan, &dir)?;
    let timeouts = Timeouts::from_args(&a);
    for h in &g.homes {
        let home = Home::new(h);
        let mut cfg = home
            .load_config()
            .with_context(|| format!("reading {}", home.config().display()))?;
        timeouts.apply(&mut cfg.consensus);
        cfg.validate()
            .map_err(|e| anyhow!("bench config of {}: {e}", h.display()))?;
        std::fs::write(home.config(), cfg.to_toml())
            .with_context(|| format!("writing {}", home.config().display()))?;
    }
    let m = Manifest::loopback(CHAIN_ID, &dir, &agora, &plan, &g, ByzantineNote::default());
    let out = a.out.clone().unwrap_or_else(|| dir.join("bench.json"));
    let svg = out.with_extension("svg");
    let mut nodes = Nodes {
        m,
        agora,
        children: Vec::new(),
    };
    for i in 0..nodes.m.nodes.len() {
        nodes.spawn(i)?;
    }
    nodes.m.save()?;
    eprintln!(
        "bench: {} validators in {}, timeouts {:?}",
        a.validators,
        dir.display(),
        timeouts
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let r = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
        anyhow::Ok(tokio::select! {
            r = measure(&mut nodes, &a, timeouts) => Some(r),
            _ = term.recv() => None,
            _ = int.recv() => None,
        })
    });
    drop(rt);
    let stopped = nodes.stop_all();
    let Some(r) = r? else {
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
    let json = serde_json::to_string_pretty(&result).context("serialising the result")? + "\n";
    std::fs::write(&out, json).with_context(|| format!("writing {}", out.display()))?;
    std::fs::write(&svg, render_svg(&result))
        .with_context(|| format!("writing {}", svg.display()))?;
    print!("{}", summary(&result));
    println!("wrote {} and {}", out.display(), svg.display());
    Ok(ExitCode::SUCCESS)
}

/// Makes `dir` ready: absent, empty, or an earlier bench (deleted) whose
/// nodes are all stopped.
fn prepare_dir(dir: &Path) -> Result<()> {
    let Ok(mut rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    if rd.next().is_none() {
        return Ok(());
    }
    if !dir.join(MARKER).is_file() {
        bail!(
            "{} is not empty and holds no earlier bench; choose another --dir",
            dir.display()
        );
    }
    if let Ok(m) = Manifest::load(dir) {
        let running = m.running_pids();
        if !running.is_empty() {
            bail!(
                "the bench testnet in {} still runs (pids {running:?}); stop it with `agora-testnet down --dir {}`",
                dir.display(),
                dir.display()
            );
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("deleting {}", dir.display()))
}

/// The node processes, stopped on drop whatever happens.
struct Nodes {
    m: Manifest,
    agora: PathBuf,
    children: Vec<Option<Child>>,
}

impl Nodes {
    fn spawn(&mut self, i: usize) -> Result<()> {
        let n = &mut self.m.nodes[i];
        let c = procs::spawn_node(&self.agora, &n.home, &n.log)?;
        n.pid = Some(c.id());
        if self.children.len() <= i {
            self.children.resize_with(i + 1, || None);
        }
        self.children[i] = Some(c);
        Ok(())
    }

    fn pid(&self, i: usize) -> Option<u32> {
        self.children.get(i)?.as_ref().map(Child::id)
    }

    /// Fails if a node that should run has exited.
    fn check_alive(&mut self) -> Result<()> {
        for (i, c) in self.children.iter_mut().enumerate() {
            if let Some(c) = c
                && let Ok(Some(st)) = c.try_wait()
            {
                bail!(
                    "{} exited: {st} (see {})",
                    self.m.nodes[i].moniker,
                    self.m.nodes[i].log.display()
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to node `i`, SIGKILL after the grace period; waits for it.
    async fn stop_one(&mut self, i: usize) -> Result<()> {
        let Some(mut c) = self.children.get_mut(i).and_then(Option::take) else {
            return Ok(());
        };
        procs::send_signal(c.id(), "TERM")?;
        let deadline = Instant::now() + procs::TERM_GRACE;
        loop {
            if c.try_wait().ok().flatten().is_some() {
                break;
            }
            if Instant::now() >= deadline {
                c.kill().with_context(|| format!("SIGKILL to {}", c.id()))?;
                let _ = c.wait();
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        self.m.nodes[i].pid = None;
        Ok(())
    }

    /// Stops every running node (SIGTERM, then SIGKILL) and records it.
    fn stop_all(&mut self) -> Result<()> {
        let mut targets: Vec<procs::Target<'_>> = self
            .children
            .iter_mut()
            .zip(&self.m.nodes)
            .filter_map(|(c, n)| {
                c.as_mut().map(|c| procs::Target {
                    pid: c.id(),
                    home: &n.home,
                    child: Some(c),
                })
            })
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        let count = targets.len();
        let r = procs::stop_all(&mut targets, procs::TERM_GRACE);
        drop(targets);
        match &r {
            Ok(k) if k.is_empty() => eprintln!("bench: stopped {count} nodes"),
            Ok(k) => eprintln!("bench: stopped {count} nodes (SIGKILL for {k:?})"),
            Err(e) => eprintln!("bench: error stopping nodes: {e:#}"),
        }
        if r.is_ok() {
            self.children.iter_mut().for_each(|c| *c = None);
            self.m.nodes.iter_mut().for_each(|n| n.pid = None);
            let _ = self.m.save();
        }
        r.map(|_| ())
    }

    /// The last lines of every node's log, for error reports.
    fn log_tails(&self) -> String {
        let mut s = String::new();
        for n in &self.m.nodes {
            let t = std::fs::read_to_string(&n.log).unwrap_or_default();
            let lines: Vec<&str> = t.lines().collect();
            s.push_str(&format!("--- {} ({}):\n", n.moniker, n.log.display()));
            for l in &lines[lines.len().saturating_sub(5)..] {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}

fn query_client(endpoint: &str) -> Result<QueryClient<Channel>> {
    let ch = loadgen::channel(endpoint).with_context(|| format!("bad endpoint {endpoint}"))?;
    Ok(QueryClient::new(ch).max_decoding_message_size(16 * 1024 * 1024))
}

async fn height(c: &QueryClient<Channel>) -> Option<u64> {
    let mut c = c.clone();
    tokio::time::timeout(RPC_TIMEOUT, c.get_status(pb::GetStatusRequest {}))
        .await
        .ok()?
        .ok()
        .map(|r| r.into_inner().latest_height)
}

async fn heights(clients: &[QueryClient<Channel>]) -> Vec<Option<u64>> {
    let mut out = Vec::with_capacity(clients.len());
    for c in clients {
        out.push(height(c).await);
    }
    out
}

fn loadavg() -> Option<[f64; 3]> {
    let t = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut f = t.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([f.next()??, f.next()??, f.next()??])
}

fn cpu_ticks(pids: &[Option<u32>]) -> Vec<Option<u64>> {
    pids.iter()
        .map(|p| {
            p.and_then(measure::read_cpu_ticks)
                .map(measure::CpuTicks::total)
        })
        .collect()
}

async fn measure(nodes: &mut Nodes, a: &BenchArgs, timeouts: Timeouts) -> Result<BenchResult> {
    let n = nodes.m.nodes.len();
    let clients: Vec<QueryClient<Channel>> = nodes
        .m
        .nodes
        .iter()
        .map(|e| query_client(&e.grpc))
        .collect::<Result<_>>()?;

    // 1. Wait until every node has committed a few heights.
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        nodes.check_alive()?;
        let hs = heights(&clients).await;
        if hs.iter().all(|h| h.is_some_and(|h| h >= 3)) {
            break;
        }
        if Instant::now() >= deadline {
            bail!("the testnet did not reach height 3 within {START_DEADLINE:?}: heights {hs:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "bench: testnet is committing; measuring for {} s",
        a.duration
    );

    // 2. Load, signed before the window (the generator's signing would
    // otherwise take CPU from the nodes on this shared machine), started a
    // moment before it so that it is steady.
    let counters = Arc::new(loadgen::LoadCounters::default());
    let warmup = if a.tx_rate > 0.0 {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    let window = Duration::from_secs_f64(a.duration);
    let prepared = if a.tx_rate > 0.0 {
        let ahead = (a.tx_rate * (warmup + window).as_secs_f64() * 1.1) as usize;
        let ahead = ahead.min(loadgen::MAX_AHEAD);
        eprintln!("bench: signing {ahead} transfers ahead of the window");
        Some(prepare_load(nodes, a.tx_rate, ahead).await?)
    } else {
        None
    };
    let load_until = Instant::now() + warmup + window;
    // Blocks after this height may hold load transactions.
    let load_from = height(&clients[0]).await.unwrap_or(0);
    let load = prepared.map(|p| {
        let counters = counters.clone();
        tokio::spawn(async move { p.run(load_until, counters).await })
    });
    tokio::time::sleep(warmup).await;

    // 3. The window opens with the first certificate streamed after now.
    let mut stream_client = clients[0].clone();
    let from = height(&stream_client)
        .await
        .context("node0 does not answer GetStatus")?
        + 1;
    let mut stream = stream_client
        .stream_commit_certificates(pb::StreamCommitCertificatesRequest { from_height: from })
        .await
        .context("opening StreamCommitCertificates on node0")?
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .context("no commit within 10 s")?
        .context("reading the certificate stream")?
        .context("the certificate stream ended")?;
    let t0 = Instant::now();
    let cpu_hz = measure::clock_ticks_per_second() as f64;
    let pids: Vec<Option<u32>> = (0..n).map(|i| nodes.pid(i)).collect();
    let cpu0 = cpu_ticks(&pids);
    let self0 = measure::read_cpu_ticks(std::process::id()).map(|t| t.total());
    let header_height = |r: &pb::GetCommitCertificateResponse| r.header.as_ref().map(|h| h.height);
    let round =
        |r: &pb::GetCommitCertificateResponse| r.certificate.as_ref().map_or(0, |c| c.round);
    let mut commits = vec![Commit {
        at_s: 0.0,
        height: header_height(&first).context("certificate without header")?,
        txs: 0,
        round: round(&first),
    }];
    let end = t0 + window;
    loop {
        match tokio::time::timeout_at(end, stream.message()).await {
            Err(_) => break,
            Ok(Ok(Some(r))) => {
                let at_s = t0.elapsed().as_secs_f64();
                let h = header_height(&r).context("certificate without header")?;
                commits.push(Commit {
                    at_s,
                    height: h,
                    txs: 0,
                    round: round(&r),
                });
            }
            Ok(Ok(None)) => bail!("node0 ended the certificate stream"),
            Ok(Err(s)) => bail!("certificate stream from node0: {s}"),
        }
    }
    drop(stream);
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_ticks(&pids);
    let self1 = measure::read_cpu_ticks(std::process::id()).map(|t| t.total());
    if let Some(l) = load {
        let _ = l.await;
    }
    nodes.check_alive()?;
    let final_heights: Vec<u64> = heights(&clients)
        .await
        .into_iter()
        .map(|h| h.unwrap_or(0))
        .collect();

    // 4. Transactions per committed block, then, after the load stopped,
    //    the blocks that drain the mempools: which submitted transactions
    //    committed and how long each took.
    let t_count = Instant::now();
    let hashes = txs::hashes_at(&clients[0], commits.iter().skip(1).map(|c| c.height)).await?;
    for c in commits.iter_mut().skip(1) {
        c.txs = hashes.get(&c.height).map_or(0, |v| v.len() as u64);
    }
    let submitted = counters.submitted_at();
    let mut committed_at: Vec<(Instant, Vec<agora_validator::Hash>)> = commits
        .iter()
        .skip(1)
        .map(|c| {
            let at = t0 + Duration::from_secs_f64(c.at_s);
            (at, hashes.get(&c.height).cloned().unwrap_or_default())
        })
        .collect();
    // Load transactions committed during the warm-up, before the window's
    // first certificate: committed, but without a commit time to measure.
    let first = commits[0].height;
    let warmup_hashes: Vec<agora_validator::Hash> =
        txs::hashes_at(&clients[0], load_from + 1..=first)
            .await?
            .into_values()
            .flatten()
            .filter(|h| submitted.contains_key(h))
            .collect();
    let warmup_committed = warmup_hashes.len() as u64;
    let mut unseen = txs::Unseen::default();
    if a.tx_rate > 0.0 {
        let seen = warmup_committed
            + committed_at
                .iter()
                .flat_map(|(_, h)| h)
                .filter(|h| submitted.contains_key(*h))
                .count() as u64;
        let next = commits.last().map_or(0, |c| c.height) + 1;
        let accepted = counters.report().accepted;
        committed_at.extend(txs::drain(&clients[0], next, seen, accepted, &submitted).await?);
        let mut missing = counters.accepted_hashes();
        for h in committed_at
            .iter()
            .flat_map(|(_, h)| h)
            .chain(&warmup_hashes)
        {
            missing.remove(h);
        }
        unseen = txs::account_for(&clients, missing.into_iter().collect()).await?;
    }
    eprintln!(
        "bench: read the transactions of {} blocks in {:.2} s",
        committed_at.len(),
        t_count.elapsed().as_secs_f64()
    );
    let mut tx_lat = txs::latencies(
        &committed_at
            .iter()
            .map(|(at, h)| (*at, h.as_slice()))
            .collect::<Vec<_>>(),
        &submitted,
    );
    tx_lat.sort_by(f64::total_cmp);

    // 5. Numbers.
    let heights_in_window = commits
        .last()
        .map_or(0, |l| l.height.saturating_sub(commits[0].height));
    let latency_points = measure::latencies_ms(&commits);
    let lat: Vec<f64> = latency_points.iter().map(|p| p.1).collect();
    let txs_committed: u64 = commits.iter().skip(1).map(|c| c.txs).sum();
    let per_node_ms: Vec<f64> = cpu0
        .iter()
        .zip(&cpu1)
        .map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => b.saturating_sub(*a) as f64 * 1000.0 / cpu_hz,
            _ => f64::NAN,
        })
        .collect();
    let total_ms: f64 = per_node_ms.iter().filter(|v| v.is_finite()).sum();
    let cpu = CpuOut {
        per_node_percent: per_node_ms.iter().map(|ms| ms / 10.0 / wall_s).collect(),
        ms_per_validator_height: (heights_in_window > 0)
            .then(|| total_ms / (heights_in_window as f64 * n as f64)),
        per_node_ms,
        total_ms,
        bench_process_percent: match (self0, self1) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 * 100.0 / cpu_hz / wall_s,
            _ => f64::NAN,
        },
        loadavg: loadavg(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let series = measure::buckets(&commits, a.duration);

    // 6. Query latency (before catch-up stops a node).
    let query_latency = match final_heights.iter().copied().max() {
        Some(latest) if latest >= 1 => Some(query_latency::measure(&clients[0], latest).await),
        _ => None,
    };

    // 7. Catch-up.
    let (catch_up, catch_up_note) = if a.catch_up_blocks == 0 {
        (None, Some("skipped (--catch-up-blocks 0)".to_string()))
    } else if n < 4 {
        (
            None,
            Some(format!(
                "skipped: with {n} equal validators one stopped leaves no quorum (needs at least 4)"
            )),
        )
    } else {
        match catch_up(nodes, &clients, a.catch_up_blocks).await {
            Ok(c) => (Some(c), None),
            Err(e) => {
                eprintln!("bench: catch-up failed: {e:#}");
                (None, Some(format!("failed: {e:#}")))
            }
        }
    };

    Ok(BenchResult {
        config: ConfigOut {
            validators: n,
            duration_s: a.duration,
            tx_rate: a.tx_rate,
            accounts: if a.tx_rate > 0.0 { a.accounts } else { 0 },
            catch_up_blocks: a.catch_up_blocks,
            timeouts,
            agora_bin: PathBuf::new(),
            dir: nodes.m.dir.clone(),
        },
        heights: heights_in_window,
        heights_per_s: heights_in_window as f64 / wall_s,
        latency_ms: measure::summarize(&lat),
        heights_after_round_0: commits.iter().skip(1).filter(|c| c.round > 0).count() as u64,
        txs_committed,
        tx_per_s: txs_committed as f64 / wall_s,
        load: loadgen::LoadReport {
            committed: tx_lat.len() as u64 + warmup_committed,
            tx_latency_ms_p50: loadgen::percentile(&tx_lat, 50.0),
            tx_latency_ms_p99: loadgen::percentile(&tx_lat, 99.0),
            unseen,
            ..counters.report()
        },
        cpu,
        final_heights,
        query_latency,
        catch_up,
        catch_up_note,
        series,
        latency_points,
    })
}

/// Stops the last node, lets the others commit `k` more heights, restarts it
/// and samples its height until it is level with the leader (node0).
async fn catch_up(nodes: &mut Nodes, clients: &[QueryClient<Channel>], k: u64) -> Result<CatchUp> {
    let v = nodes.m.nodes.len() - 1;
    let name = nodes.m.nodes[v].moniker.clone();
    let leader = &clients[0];
    let height_at_stop = height(&clients[v])
        .await
        .with_context(|| format!("{name} does not answer GetStatus"))?;
    eprintln!("bench: stopping {name} at height {height_at_stop}; the others commit {k} more");
    nodes.stop_one(v).await?;
    // Heights in flight at the signal may still have been stored: +2.
    let target = height_at_stop + k + 2;
    let deadline = Instant::now() + Duration::from_secs(60) + Duration::from_millis(500) * k as u32;
    loop {
        nodes.check_alive()?;
        let h = height(leader).await.unwrap_or(0);
        if h >= target {
            break;
        }
        if Instant::now() >= deadline {
            bail!("without {name} the others reached height {h}, not {target}, in time");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leader_height_at_restart = height(leader).await.unwrap_or(target);
    nodes.spawn(v)?;
    let _ = nodes.m.save();
    let t_spawn = Instant::now();
    // A fresh channel: the old one may hold a dead connection.
    let victim = query_client(&nodes.m.nodes[v].grpc)?;
    let mut first: Option<(Instant, u64)> = None;
    let deadline = t_spawn + Duration::from_secs(120) + Duration::from_millis(100) * k as u32;
    loop {
        nodes.check_alive()?;
        let vh = height(&victim).await;
        let now = Instant::now();
        if let Some(vh) = vh {
            let (t_first, h_first) = *first.get_or_insert((now, vh));
            let lh = height(leader).await.unwrap_or(u64::MAX);
            if vh >= leader_height_at_restart && vh + 1 >= lh {
                let seconds = now.duration_since(t_spawn).as_secs_f64();
                let blocks = vh.saturating_sub(height_at_stop);
                return Ok(CatchUp {
                    node: name,
                    height_at_stop,
                    leader_height_at_restart,
                    height_at_first_answer: h_first,
                    caught_up_height: vh,
                    blocks,
                    startup_seconds: t_first.duration_since(t_spawn).as_secs_f64(),
                    seconds,
                    blocks_per_s: if seconds > 0.0 {
                        blocks as f64 / seconds
                    } else {
                        0.0
                    },
                });
            }
        }
        if now >= deadline {
            bail!(
                "{name} did not catch up within {:?} (its height {vh:?}, leader at restart {leader_height_at_restart})",
                deadline - t_spawn
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn render_svg(r: &BenchResult) -> String {
    let mid = |b: &SecondBucket| b.second as f64 + 0.5;
    let p50: Vec<(f64, f64)> = r
        .series
        .iter()
        .filter_map(|b| b.p50_latency_ms.map(|v| (mid(b), v)))
        .collect();
    let panels = vec![
        plot::Panel {
            title: "Commit latency per height (node0)".into(),
            y_label: "latency (ms)".into(),
            series: vec![
                plot::Series {
                    name: "each height".into(),
                    color: "#9ecae1",
                    points: r.latency_points.clone(),
                },
                plot::Series {
                    name: "p50 per second".into(),
                    color: "#08519c",
                    points: p50,
                },
            ],
        },
        plot::Panel {
            title: "Heights committed per second".into(),
            y_label: "heights/s".into(),
            series: vec![plot::Series {
                name: "heights/s".into(),
                color: "#31a354",
                points: r
                    .series
                    .iter()
                    .map(|b| (mid(b), b.heights as f64))
                    .collect(),
            }],
        },
        plot::Panel {
            title: "Transactions committed per second".into(),
            y_label: "tx/s".into(),
            series: vec![plot::Series {
                name: "tx/s".into(),
                color: "#de2d26",
                points: r.series.iter().map(|b| (mid(b), b.txs as f64)).collect(),
            }],
        },
    ];
    let t = &r.config.timeouts;
    plot::render(
        &format!(
            "agora-testnet bench: {} validators, {} tx/s offered, timeout_propose {} ms, timeout_commit {} ms",
            r.config.validators, r.config.tx_rate, t.propose_ms, t.commit_ms
        ),
        "seconds into the measurement",
        r.config.duration_s,
        &panels,
    )
}

fn summary(r: &BenchResult) -> String {
    let mut s = String::new();
    let row = |s: &mut String, k: &str, v: String| s.push_str(&format!("  {k:<28} {v}\n"));
    s.push_str(&format!(
        "bench: {} validators, {:.1} s, {} tx/s offered\n",
        r.config.validators, r.config.duration_s, r.config.tx_rate
    ));
    row(&mut s, "heights committed", r.heights.to_string());
    row(&mut s, "heights/s", format!("{:.1}", r.heights_per_s));
    match &r.latency_ms {
        Some(l) => row(
            &mut s,
            "latency ms p50/p99/max/mean",
            format!("{:.1} / {:.1} / {:.1} / {:.1}", l.p50, l.p99, l.max, l.mean),
        ),
        None => row(&mut s, "latency", "no commits".into()),
    }
    if let Some(q) = &r.query_latency {
        for (name, l) in [
            ("GetStatus ms p50/p99", &q.get_status_ms),
            (
                "GetCommitCertificate ms p50/p99",
                &q.get_commit_certificate_ms,
            ),
        ] {
            if let Some(l) = l {
                row(&mut s, name, format!("{:.3} / {:.3}", l.p50, l.p99));
            }
        }
    }
    row(
        &mut s,
        "heights decided in round > 0",
        r.heights_after_round_0.to_string(),
    );
    row(
        &mut s,
        "txs committed (tx/s)",
        format!("{} ({:.1})", r.txs_committed, r.tx_per_s),
    );
    row(
        &mut s,
        "offered/accepted/rejected",
        format!(
            "{} / {} / {} (failed {}, backlog {}, signer behind {}, retried busy {})",
            r.load.offered,
            r.load.accepted,
            r.load.rejected,
            r.load.failed,
            r.load.backlog,
            r.load.signer_behind,
            r.load.retried_busy
        ),
    );
    row(
        &mut s,
        "accepted then committed",
        format!(
            "{} of {} (submit-to-commit p50/p99 ms: {} / {})",
            r.load.committed,
            r.load.accepted,
            r.load
                .tx_latency_ms_p50
                .map_or("-".into(), |v| format!("{v:.0}")),
            r.load
                .tx_latency_ms_p99
                .map_or("-".into(), |v| format!("{v:.0}"))
        ),
    );
    let u = &r.load.unseen;
    if u.count > 0 {
        row(
            &mut s,
            "accepted, not seen committed",
            format!(
                "{} (asked {}: committed {}, pending {}, refused {}, unknown to every node {})",
                u.count, u.asked, u.committed, u.pending, u.refused, u.unknown
            ),
        );
    }
    for (why, n) in &r.load.rejection_reasons {
        row(&mut s, "  refused", format!("{n} × {why}"));
    }
    row(
        &mut s,
        "CPU % per node",
        r.cpu
            .per_node_percent
            .iter()
            .map(|p| format!("{p:.0}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    row(
        &mut s,
        "CPU ms per validator-height",
        r.cpu
            .ms_per_validator_height
            .map_or("-".into(), |v| format!("{v:.2}")),
    );
    row(
        &mut s,
        "bench process CPU %",
        format!("{:.0}", r.cpu.bench_process_percent),
    );
    if let Some(l) = r.cpu.loadavg {
        row(
            &mut s,
            "machine load (1/5/15 min)",
            format!(
                "{:.1} {:.1} {:.1} on {} cores",
                l[0], l[1], l[2], r.cpu.cores
            ),
        );
    }
    match (&r.catch_up, &r.catch_up_note) {
        (Some(c), _) => row(
            &mut s,
            "catch-up",
            format!(
                "{}: {} blocks in {:.2} s = {:.0} blocks/s (restart to level, {:.2} s of it startup)",
                c.node, c.blocks, c.seconds, c.blocks_per_s, c.startup_seconds
            ),
        ),
        (None, Some(n)) => row(&mut s, "catch-up", n.clone()),
        (None, None) => {}
    }
    s
}

/// The load generator for `nodes`: their funded accounts, transfers signed
/// `ahead` before this returns.
async fn prepare_load(nodes: &Nodes, rate: f64, ahead: usize) -> Result<loadgen::Prepared> {
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
