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
//! "invalid block proposed" at info level. So after each commit the committed block's time is compared with
//! our clock: more than the drift ahead of it means our clock is behind
//! the chain's. That is said once per crossing (a warning naming the clock
//! and NTP, an info line when it agrees again, below half the drift), and
//! the gauge `agora_clock_behind_ms` holds by how much (0 when not behind).
//!
//! A clock running *ahead* is not detected here: the committed times of a
//! chain that decides in later rounds, or that re-proposes an older block,
//! lag behind any clock honestly, so a lag says nothing about ours.

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
    /// Back within half the drift.
    Agrees,
}

/// Whether our clock was last seen behind the chain's (see the module doc).
#[derive(Debug, Clone, Copy)]
pub(super) struct ClockWatch {
    drift_ms: u64,
    behind: bool,
}

impl ClockWatch {
    /// A watch against the drift this node accepts in a proposal.
    pub(super) fn new(drift_ms: u64) -> Self {
        Self {
            drift_ms,
            behind: false,
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
        match change {
            Some(ClockChange::Behind { by_ms }) => warn!(
                height,
                behind_ms = by_ms,
                max_clock_drift_ms = self.drift_ms,
                "this machine's clock is behind the chain's: the block just committed is {by_ms} ms ahead of it, so proposals are refused as from the future and this validator prevotes nil on them (the chain then needs the others' votes alone); is NTP running?"
            ),
            Some(ClockChange::Agrees) => {
                info!(height, "this machine's clock agrees with the chain's again")
            }
            None => {}
        }
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
    fn the_offset_shifts_the_wall_clock_both_ways() {
        let wall = Clock::default().now_ms();
        let behind = Clock::with_offset(-60_000).now_ms();
        let ahead = Clock::with_offset(60_000).now_ms();
        assert!(behind + 59_000 < wall && wall < behind + 61_000 + 1_000);
        assert!(ahead > wall + 59_000);
        assert_eq!(Clock::with_offset(i64::MIN).now_ms(), 0);
    }
}
