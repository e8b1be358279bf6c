//! The pure arithmetic of `bench`: percentiles, per-height commit latencies,
//! per-second buckets of a run, and CPU time read from `/proc/<pid>/stat`.

use serde::Serialize;

/// One commit as the bench saw it arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Commit {
    /// Seconds since the start of the measured window.
    pub at_s: f64,
    /// The committed height.
    pub height: u64,
    /// Transactions in the block.
    pub txs: u64,
    /// The round that decided it (above 0: a timeout or a failed round).
    pub round: u32,
}

/// Summary of a sample of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Median (nearest rank).
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// How many values were summarised.
    pub samples: usize,
}

/// The `p`-th percentile (0..=100) of `values` by the nearest-rank method:
/// the smallest value with at least p% of the sample at or below it.
/// `None` for an empty sample. NaNs sort last.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(percentile_sorted(&v, p))
}

fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let p = p.clamp(0.0, 100.0);
    // Rank 1..=n; p = 0 is the minimum.
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// p50, p99, max and mean of `values` (`None` when empty).
pub fn summarize(values: &[f64]) -> Option<LatencySummary> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(LatencySummary {
        p50: percentile_sorted(&v, 50.0),
        p99: percentile_sorted(&v, 99.0),
        max: v[v.len() - 1],
        mean: v.iter().sum::<f64>() / v.len() as f64,
        samples: v.len(),
    })
}

/// Per-height commit latency in ms: the time between successive commits as
/// observed. A gap of several heights between two observations is shared
/// equally among them. Each latency is paired with the arrival time (s) of
/// the commit that ended it.
pub fn latencies_ms(commits: &[Commit]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(commits.len());
    for w in commits.windows(2) {
        let gap = w[1].height.saturating_sub(w[0].height);
        if gap == 0 {
            continue;
        }
        let each = (w[1].at_s - w[0].at_s) * 1000.0 / gap as f64;
        for _ in 0..gap {
            out.push((w[1].at_s, each));
        }
    }
    out
}

/// One second of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondBucket {
    /// Second index since the start of the window (0-based): commits that
    /// arrived in `[second, second + 1)`.
    pub second: u64,
    /// Latest height seen by the end of this second.
    pub height: u64,
    /// Heights committed during this second.
    pub heights: u64,
    /// Transactions in the blocks committed during this second.
    pub txs: u64,
    /// Median latency of the heights committed during this second.
    pub p50_latency_ms: Option<f64>,
    /// Heights committed during this second that needed more than round 0.
    pub later_rounds: u64,
}

/// Buckets the commits of a window `duration_s` long into whole seconds.
/// The first commit opens the window (time 0) and is not counted as a
/// committed height; commits at or after `duration_s` are left out.
pub fn buckets(commits: &[Commit], duration_s: f64) -> Vec<SecondBucket> {
    let seconds = duration_s.ceil().max(0.0) as usize;
    let start_height = commits.first().map_or(0, |c| c.height);
    let mut out: Vec<SecondBucket> = (0..seconds)
        .map(|s| SecondBucket {
            second: s as u64,
            height: start_height,
            heights: 0,
            txs: 0,
            p50_latency_ms: None,
            later_rounds: 0,
        })
        .collect();
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); seconds];
    let in_window = |at: f64| at >= 0.0 && at < duration_s;
    let index = |at: f64| (at.floor() as usize).min(seconds.saturating_sub(1));
    for w in commits.windows(2) {
        let c = w[1];
        if !in_window(c.at_s) {
            continue;
        }
        let b = &mut out[index(c.at_s)];
        b.heights += c.height.saturating_sub(w[0].height);
        b.txs += c.txs;
        b.later_rounds += u64::from(c.round > 0);
    }
    for (at, ms) in latencies_ms(commits) {
        if in_window(at) {
            lat[index(at)].push(ms);
        }
    }
    // Heights carry forward through seconds without commits.
    let mut height = start_height;
    let mut next = commits.iter().peekable();
    for (b, l) in out.iter_mut().zip(&lat) {
        while let Some(c) = next.next_if(|c| c.at_s < b.second as f64 + 1.0) {
            if c.at_s < duration_s {
                height = height.max(c.height);
            }
        }
        b.height = height;
        b.p50_latency_ms = percentile(l, 50.0);
    }
    out
}

/// CPU time of one process in clock ticks (user + system, all threads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks {
    /// utime (field 14).
    pub user: u64,
    /// stime (field 15).
    pub system: u64,
}

impl CpuTicks {
    /// user + system.
    pub fn total(self) -> u64 {
        self.user + self.system
    }
}

/// Parses the contents of `/proc/<pid>/stat`. The command name (field 2)
/// is in parentheses and may itself hold spaces and parentheses, so the
/// fields are counted from the *last* `)`.
pub fn parse_proc_stat(text: &str) -> Option<CpuTicks> {
    let (_, rest) = text.rsplit_once(')')?;
    // rest: " state ppid pgrp session tty_nr tpgid flags minflt cminflt
    // majflt cmajflt utime stime ..." — state is field 3, utime field 14.
    let mut f = rest.split_whitespace().skip(11);
    let user = f.next()?.parse().ok()?;
    let system = f.next()?.parse().ok()?;
    Some(CpuTicks { user, system })
}

/// Reads the CPU ticks of a live process.
pub fn read_cpu_ticks(pid: u32) -> Option<CpuTicks> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| parse_proc_stat(&t))
}

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`; Linux
/// reports 100 everywhere, the fallback).
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(at_s: f64, height: u64, txs: u64) -> Commit {
        Commit {
            at_s,
            height,
            txs,
            round: 0,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        // Small samples: p99 of 10 values is the largest, p50 the 5th.
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 99.0), Some(10.0));
        assert_eq!(percentile(&v, 90.0), Some(9.0));
    }

    #[test]
    fn summary_of_a_skewed_sample() {
        let mut v = vec![10.0; 98];
        v.push(500.0);
        v.push(20.0);
        let s = summarize(&v).unwrap();
        assert_eq!(s.p50, 10.0);
        assert_eq!(s.p99, 20.0);
        assert_eq!(s.max, 500.0);
        assert!((s.mean - (980.0 + 520.0) / 100.0).abs() < 1e-9);
        assert_eq!(s.samples, 100);
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn latencies_split_gaps_between_skipped_heights() {
        let cs = [c(0.0, 10, 0), c(0.1, 11, 0), c(0.4, 14, 0), c(0.4, 14, 0)];
        let l = latencies_ms(&cs);
        assert_eq!(l.len(), 4);
        assert!((l[0].1 - 100.0).abs() < 1e-9);
        for (at, ms) in &l[1..] {
            assert!((ms - 100.0).abs() < 1e-9);
            assert_eq!(*at, 0.4);
        }
    }

    #[test]
    fn buckets_count_heights_txs_and_carry_height() {
        // Window of 3 s: commits in seconds 0 and 2, none in second 1, one
        // after the window.
        let late = Commit {
            round: 2,
            ..c(0.25, 6, 2)
        };
        let cs = [
            c(0.0, 5, 9), // opens the window: not counted
            late,
            c(0.5, 7, 3),
            c(2.5, 8, 4),
            c(3.2, 9, 100),
        ];
        let b = buckets(&cs, 3.0);
        assert_eq!(b.len(), 3);
        assert_eq!(
            b.iter().map(|b| b.heights).collect::<Vec<_>>(),
            [2, 0, 1],
            "{b:?}"
        );
        assert_eq!(b.iter().map(|b| b.txs).collect::<Vec<_>>(), [5, 0, 4]);
        assert_eq!(b.iter().map(|b| b.height).collect::<Vec<_>>(), [7, 7, 8]);
        assert_eq!(b[0].p50_latency_ms, Some(250.0));
        assert_eq!(b[1].p50_latency_ms, None);
        assert_eq!(b[2].p50_latency_ms, Some(2000.0));
        assert_eq!(
            b.iter().map(|b| b.later_rounds).collect::<Vec<_>>(),
            [1, 0, 0]
        );
        let total: u64 = b.iter().map(|b| b.heights).sum();
        assert_eq!(total, 8 - 5, "heights inside the window");
    }

    #[test]
    fn proc_stat_with_spaces_and_parens_in_the_name() {
        let line = "4242 (agora (node) 1) S 1 4242 4242 0 -1 4194560 1500 0 3 0 \
                    1234 567 0 0 20 0 9 0 100 1000000 500 18446744073709551615";
        let t = parse_proc_stat(line).unwrap();
        assert_eq!(
            t,
            CpuTicks {
                user: 1234,
                system: 567
            }
        );
        assert_eq!(t.total(), 1801);
        assert!(parse_proc_stat("12 (x) S 1 2").is_none());
        assert!(parse_proc_stat("no parens at all").is_none());
        // This very process is readable.
        assert!(read_cpu_ticks(std::process::id()).is_some());
    }
}
