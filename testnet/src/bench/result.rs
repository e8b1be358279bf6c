//! The bench's result, as written to the JSON file.

use std::path::PathBuf;

use serde::Serialize;

use super::BenchArgs;
use super::catch_up::CatchUp;
use super::cpu::CpuOut;
use super::loadgen;
use super::measure::{LatencySummary, SecondBucket};
use super::query_latency;
use super::setup::Timeouts;

/// What the bench ran: its arguments as applied.
#[derive(Debug, Serialize)]
pub struct ConfigOut {
    pub validators: usize,
    pub duration_s: f64,
    pub tx_rate: f64,
    pub accounts: usize,
    pub catch_up_blocks: u64,
    pub timeouts: Timeouts,
    pub agora_bin: PathBuf,
    pub dir: PathBuf,
}

impl ConfigOut {
    /// The config of a bench of `a` on `validators` nodes in `dir`; the
    /// `agora` binary is filled in once the nodes are stopped.
    pub fn new(a: &BenchArgs, validators: usize, timeouts: Timeouts, dir: PathBuf) -> Self {
        ConfigOut {
            validators,
            duration_s: a.duration,
            tx_rate: a.tx_rate,
            accounts: if a.tx_rate > 0.0 { a.accounts } else { 0 },
            catch_up_blocks: a.catch_up_blocks,
            timeouts,
            agora_bin: PathBuf::new(),
            dir,
        }
    }
}

/// Everything the bench measured.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub config: ConfigOut,
    /// Heights committed inside the window.
    pub heights: u64,
    pub heights_per_s: f64,
    /// Time between successive commits seen from node0.
    pub latency_ms: Option<LatencySummary>,
    /// Heights in the window decided in a round above 0 (a timeout fired).
    pub heights_after_round_0: u64,
    pub txs_committed: u64,
    pub tx_per_s: f64,
    #[serde(flatten)]
    pub load: loadgen::LoadReport,
    pub cpu: CpuOut,
    /// Every node's height at the end of the window.
    pub final_heights: Vec<u64>,
    /// Single-query gRPC round trips on node0, after the window.
    pub query_latency: Option<query_latency::QueryLatency>,
    pub catch_up: Option<CatchUp>,
    /// Why catch-up was not measured, if it was not.
    pub catch_up_note: Option<String>,
    /// Per second of the window.
    pub series: Vec<SecondBucket>,
    /// Per-height latency as (seconds into the window, ms), for the plot.
    #[serde(skip)]
    pub latency_points: Vec<(f64, f64)>,
}
