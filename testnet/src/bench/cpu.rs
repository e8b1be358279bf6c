//! CPU use over the measured window: each node's and the bench process's
//! utime + stime from `/proc/<pid>/stat` at the window's start and end, and
//! what else loads the machine.

use serde::Serialize;

use super::measure;

/// The CPU part of the bench's result.
#[derive(Debug, Serialize)]
pub struct CpuOut {
    /// CPU time of each node over the window, as a percentage of one core.
    pub per_node_percent: Vec<f64>,
    /// CPU milliseconds of each node over the window.
    pub per_node_ms: Vec<f64>,
    /// Sum over the nodes.
    pub total_ms: f64,
    /// total_ms / (heights * validators).
    pub ms_per_validator_height: Option<f64>,
    /// The bench process itself (load generator, stream, polling).
    pub bench_process_percent: f64,
    /// /proc/loadavg (1, 5, 15 min) when the report is made (after the
    /// mempools are drained, up to a minute past the window): other work
    /// on the machine competes with the nodes.
    pub loadavg: Option<[f64; 3]>,
    /// Cores available to this process.
    pub cores: usize,
}

impl CpuOut {
    /// The use between `start` and `end`, `wall_s` seconds apart, in which
    /// `validators` nodes committed `heights` heights; `cpu_hz`: clock ticks
    /// per second.
    pub fn between(
        start: &Sample,
        end: &Sample,
        cpu_hz: f64,
        wall_s: f64,
        heights: u64,
        validators: usize,
    ) -> Self {
        let per_node_ms: Vec<f64> = start
            .nodes
            .iter()
            .zip(&end.nodes)
            .map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => b.saturating_sub(*a) as f64 * 1000.0 / cpu_hz,
                _ => f64::NAN,
            })
            .collect();
        let total_ms: f64 = per_node_ms.iter().filter(|v| v.is_finite()).sum();
        CpuOut {
            per_node_percent: per_node_ms.iter().map(|ms| ms / 10.0 / wall_s).collect(),
            ms_per_validator_height: (heights > 0)
                .then(|| total_ms / (heights as f64 * validators as f64)),
            per_node_ms,
            total_ms,
            bench_process_percent: match (start.bench, end.bench) {
                (Some(a), Some(b)) => b.saturating_sub(a) as f64 * 100.0 / cpu_hz / wall_s,
                _ => f64::NAN,
            },
            loadavg: loadavg(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// CPU ticks used so far by the nodes and by the bench process.
pub struct Sample {
    /// Node `i`'s, `None` if it is not running or unreadable.
    nodes: Vec<Option<u64>>,
    /// This process's.
    bench: Option<u64>,
}

impl Sample {
    /// Reads the ticks of the processes `pids` (the nodes), then this one's.
    pub fn take(pids: &[Option<u32>]) -> Self {
        Sample {
            nodes: cpu_ticks(pids),
            bench: measure::read_cpu_ticks(std::process::id()).map(|t| t.total()),
        }
    }
}

/// The machine's load averages over 1, 5 and 15 minutes.
fn loadavg() -> Option<[f64; 3]> {
    let t = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut f = t.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([f.next()??, f.next()??, f.next()??])
}

/// CPU ticks used so far by each of `pids`.
fn cpu_ticks(pids: &[Option<u32>]) -> Vec<Option<u64>> {
    pids.iter()
        .map(|p| {
            p.and_then(measure::read_cpu_ticks)
                .map(measure::CpuTicks::total)
        })
        .collect()
}
