//! The node's clock (the engine's only notion of time) and a check that it
//! agrees with the chain's.
//!
//! Block times are their proposers' clocks, and a proposal whose `time_ms`
//! is more than `consensus.max_clock_drift_ms` ahead of our clock is
//! refused as from the future (DESIGN §6). A validator whose clock runs
//! behind the others' by more than that refuses every proposal and
//! prevotes nil at every height (it still precommits and commits the
//! block the others' polka carries), so its power no longer helps any
//! polka form: the chain decides only while the others alone hold more
//! than two thirds, and a few such clocks stall it. Its log said only
//! "invalid block proposed" at info level. So after each commit the
//! committed block's time is compared with our clock: more than the drift
//! ahead of it means our clock is behind the chain's. That is said once per crossing (a warning naming the clock
//! and NTP, an info line when it agrees again, below half the drift), and
//! the gauge `agora_clock_behind_ms` holds by how much (0 when not behind).
//!
//! A clock running *ahead* shows the other way, and only in the blocks of
//! others: this node's own proposals carry its clock's time, which the
//! others refuse as from the future, so every round it proposes is lost
//! (a timeout, then the next round) while its log shows nothing. The
//! others' blocks are stamped by their clocks, so here they look old on
//! arrival. One block's lag proves nothing (a chain decides in later
//! rounds, a proposer's clock may lag a little, a Byzantine proposer picks
//! any time above its parent's), so only blocks that others proposed and
//! that were decided live in the round that proposed them count (their
//! lag is the round's latency on a healthy chain), and the check takes
//! the median of the last [`LAG_WINDOW`]: a minority of proposers cannot
//! move it. A median past the drift is said once (a warning naming the
//! clock and NTP), an info line when it falls below half of it again; the
//! gauge `agora_block_lag_ms` holds that median.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::metrics::Metrics;

/// The local clock: wall time in milliseconds since the Unix epoch, shifted
/// by `testing.clock_offset_ms` (0 on every real node; tests set it to
/// play a machine whose clock is wrong).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Clock {
    offset_ms: i64,
}

impl Clock {
    /// A clock shifted by `offset_ms`.
    pub(super) fn with_offset(offset_ms: i64) -> Self {
        Self { offset_ms }
    }

    /// Milliseconds since the Unix epoch, as this node sees them.
    pub(super) fn now_ms(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        wall.saturating_add_signed(self.offset_ms)
    }
}

/// A change of our clock's agreement with the chain worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClockChange {
    /// The committed block's time is `by_ms` ahead of our clock, more than
    /// the drift we accept in a proposal.
    Behind { by_ms: u64 },
    /// The median lag of the last [`LAG_WINDOW`] blocks others proposed,
    /// at their live commit here, is `lag_ms`: more than the drift, so
    /// our clock runs ahead of the proposers'.
    Ahead { lag_ms: u64 },
    /// Back within half the drift (of whichever of the two was told).
    Agrees,
}

/// How many recent blocks the ahead check takes the median lag of: a
/// minority of proposers (a third at most are Byzantine) cannot move it.
pub(super) const LAG_WINDOW: usize = 16;

/// Whether our clock was last seen behind or ahead of the chain's, and
/// the lags the ahead check takes its median of (see the module doc).
#[derive(Debug, Clone)]
pub(super) struct ClockWatch {
    drift_ms: u64,
    behind: bool,
    ahead: bool,
    /// The last [`LAG_WINDOW`] lags, oldest first.
    lags: VecDeque<u64>,
}

impl ClockWatch {
    /// A watch against the drift this node accepts in a proposal.
    pub(super) fn new(drift_ms: u64) -> Self {
        Self {
            drift_ms,
            behind: false,
            ahead: false,
            lags: VecDeque::with_capacity(LAG_WINDOW),
        }
    }

    /// How far `block_time_ms` is ahead of `now_ms` (0 when it is not), and
    /// the change if this crosses a threshold: past the drift, or back below
    /// half of it (the gap keeps a clock at the edge from flapping).
    pub(super) fn observe(
        &mut self,
        block_time_ms: u64,
        now_ms: u64,
    ) -> (u64, Option<ClockChange>) {
        let ahead = block_time_ms.saturating_sub(now_ms);
        let change = if !self.behind && ahead > self.drift_ms {
            self.behind = true;
            Some(ClockChange::Behind { by_ms: ahead })
        } else if self.behind && ahead <= self.drift_ms / 2 {
            self.behind = false;
            Some(ClockChange::Agrees)
        } else {
            None
        };
        (ahead, change)
    }

    /// [`Self::observe`], told: the gauge set, a change logged.
    pub(super) fn report(
        &mut self,
        height: u64,
        block_time_ms: u64,
        now_ms: u64,
        metrics: &Metrics,
    ) {
        let (ahead, change) = self.observe(block_time_ms, now_ms);
        Metrics::set(&metrics.clock_behind_ms, ahead);
        self.tell(height, change);
    }

    /// The log line of a change, if any.
    fn tell(&self, height: u64, change: Option<ClockChange>) {
        match change {
            Some(ClockChange::Behind { by_ms }) => warn!(
                height,
                behind_ms = by_ms,
                max_clock_drift_ms = self.drift_ms,
                "this machine's clock is behind the chain's: the block just committed is {by_ms} ms ahead of it, so proposals are refused as from the future and this validator prevotes nil on them (the chain then needs the others' votes alone); is NTP running?"
            ),
            Some(ClockChange::Ahead { lag_ms }) => warn!(
                height,
                median_lag_ms = lag_ms,
                max_clock_drift_ms = self.drift_ms,
                "this machine's clock is ahead of the chain's: the last {LAG_WINDOW} blocks others proposed were committed here a median {lag_ms} ms after their own time, so this validator's proposals carry a time the others refuse as from the future and every round it proposes is lost; is NTP running?"
            ),
            Some(ClockChange::Agrees) => {
                info!(height, "this machine's clock agrees with the chain's again")
            }
            None => {}
        }
    }

    /// Takes the lag (`now_ms` − `block_time_ms`, 0 if negative) of a
    /// block another validator proposed, decided live in its proposal's
    /// round; returns the median of the window once it is full, and the
    /// change if that median crosses the drift (or falls back below half
    /// of it).
    pub(super) fn observe_lag(
        &mut self,
        block_time_ms: u64,
        now_ms: u64,
    ) -> (Option<u64>, Option<ClockChange>) {
        if self.lags.len() == LAG_WINDOW {
            self.lags.pop_front();
        }
        self.lags.push_back(now_ms.saturating_sub(block_time_ms));
        debug_assert!(self.lags.len() <= LAG_WINDOW);
        if self.lags.len() < LAG_WINDOW {
            return (None, None);
        }
        let mut sorted = [0u64; LAG_WINDOW];
        for (slot, lag) in sorted.iter_mut().zip(&self.lags) {
            *slot = *lag;
        }
        sorted.sort_unstable();
        // The lower median: more than half the window must lag.
        let median = sorted[(LAG_WINDOW - 1) / 2];
        let change = if !self.ahead && median > self.drift_ms {
            self.ahead = true;
            Some(ClockChange::Ahead { lag_ms: median })
        } else if self.ahead && median <= self.drift_ms / 2 {
            self.ahead = false;
            Some(ClockChange::Agrees)
        } else {
            None
        };
        (Some(median), change)
    }

    /// [`Self::observe_lag`], told: the gauge set once the window is full,
    /// a change logged.
    pub(super) fn report_lag(
        &mut self,
        height: u64,
        block_time_ms: u64,
        now_ms: u64,
        metrics: &Metrics,
    ) {
        let (median, change) = self.observe_lag(block_time_ms, now_ms);
        if let Some(m) = median {
            Metrics::set(&metrics.block_lag_ms, m);
        }
        self.tell(height, change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behind_is_said_once_per_crossing_with_a_gap_before_agreeing() {
        let mut w = ClockWatch::new(2_000);
        // Committed times lag our clock (latency, later rounds): fine.
        assert_eq!(w.observe(10_000, 10_300), (0, None));
        // Ahead, but within the drift a proposal may have.
        assert_eq!(w.observe(12_000, 10_500), (1_500, None));
        assert_eq!(
            w.observe(15_001, 13_000),
            (2_001, Some(ClockChange::Behind { by_ms: 2_001 }))
        );
        assert_eq!(w.observe(16_000, 13_100), (2_900, None));
        // Below the drift but above half of it: still behind, no line.
        assert_eq!(w.observe(17_000, 15_200), (1_800, None));
        assert_eq!(
            w.observe(18_000, 17_000),
            (1_000, Some(ClockChange::Agrees))
        );
        assert_eq!(w.observe(19_000, 19_100), (0, None));
    }

    #[test]
    fn ahead_is_told_from_a_full_window_of_more_than_half_late_blocks() {
        let mut w = ClockWatch::new(2_000);
        // Until the window is full nothing is judged, however late.
        for i in 0..LAG_WINDOW as u64 - 1 {
            assert_eq!(w.observe_lag(1_000 + i, 9_000 + i), (None, None));
        }
        assert_eq!(
            w.observe_lag(2_000, 10_000),
            (Some(8_000), Some(ClockChange::Ahead { lag_ms: 8_000 }))
        );
        // Said once; the behind check is not disturbed.
        assert_eq!(w.observe_lag(3_000, 11_000), (Some(8_000), None));
        assert_eq!(w.observe(10_000, 11_000), (0, None));
        // Fresh blocks push the old lags out...
        let mut changes = Vec::new();
        for i in 0..LAG_WINDOW as u64 {
            changes.push(w.observe_lag(20_000 + i, 20_030 + i).1);
        }
        // ...and agrees once more than half the window is fresh.
        let agreed: Vec<usize> = (0..changes.len())
            .filter(|&i| changes[i].is_some())
            .collect();
        assert_eq!(agreed, vec![LAG_WINDOW / 2 - 1]);
        assert_eq!(changes[LAG_WINDOW / 2 - 1], Some(ClockChange::Agrees));
    }

    #[test]
    fn a_minority_of_old_blocks_does_not_make_a_clock_ahead() {
        // Half the window stamped long ago (a Byzantine proposer's times,
        // a proposer whose clock lags, later rounds): not a majority.
        let mut w = ClockWatch::new(2_000);
        let mut last = (None, None);
        for i in 0..LAG_WINDOW as u64 {
            let lag = if i % 2 == 1 { 60_000 } else { 25 };
            last = w.observe_lag(100_000 + i, 100_000 + i + lag);
            assert_eq!(last.1, None, "block {i}");
        }
        assert_eq!(last.0, Some(25));
        // Negative control: one more old block (the first, fresh one
        // leaves the window) makes a majority.
        assert_eq!(
            w.observe_lag(200_000, 260_000),
            (Some(60_000), Some(ClockChange::Ahead { lag_ms: 60_000 }))
        );
    }

    #[test]
    fn the_offset_shifts_the_wall_clock_both_ways() {
        let wall = Clock::default().now_ms();
        let behind = Clock::with_offset(-60_000).now_ms();
        let ahead = Clock::with_offset(60_000).now_ms();
        assert!(behind + 59_000 < wall && wall < behind + 61_000 + 1_000);
        assert!(ahead > wall + 59_000);
        assert_eq!(Clock::with_offset(i64::MIN).now_ms(), 0);
    }
}
