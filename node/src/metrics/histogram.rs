//! Prometheus histograms in atomics: fixed bucket bounds per histogram
//! type, cumulative counts kept as the exposition format wants them.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

/// The bucket upper bounds of one kind of histogram.
pub trait Buckets {
    /// Upper bounds, ascending (`+Inf` is implied).
    const BOUNDS: &'static [f64];
}

/// Buckets for consensus step durations, in seconds: from a step passed
/// within one input (0 s) to rounds slowed by grown timeouts.
#[derive(Debug)]
pub struct StepSeconds;

impl Buckets for StepSeconds {
    const BOUNDS: &'static [f64] = &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
}

/// Buckets for the rounds a height took.
#[derive(Debug)]
pub struct Rounds;

impl Buckets for Rounds {
    const BOUNDS: &'static [f64] = &[1.0, 2.0, 3.0, 5.0, 10.0];
}

/// Observations are summed in millionths, so a sum stays an integer.
const SUM_SCALE: f64 = 1e6;

/// One histogram: a cumulative count per bucket, the total count and the
/// sum of the observed values. Every update is a few relaxed atomic adds.
#[derive(Debug)]
pub struct Histogram<B: Buckets> {
    /// `buckets[i]` counts observations `<= B::BOUNDS[i]` (cumulative).
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// Sum of observations, in millionths of the unit.
    sum_millionths: AtomicU64,
    bounds: PhantomData<B>,
}

impl<B: Buckets> Default for Histogram<B> {
    fn default() -> Self {
        Self {
            buckets: B::BOUNDS.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_millionths: AtomicU64::new(0),
            bounds: PhantomData,
        }
    }
}

/// A histogram's values read at one moment (for rendering and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `(upper bound, cumulative count)` for every finite bound.
    pub buckets: Vec<(f64, u64)>,
    /// Observations in all (the `+Inf` bucket).
    pub count: u64,
    /// Sum of the observations.
    pub sum: f64,
}

impl<B: Buckets> Histogram<B> {
    /// Records one observation (negative or NaN values count as 0).
    pub fn observe(&self, v: f64) {
        let v = if v.is_nan() || v < 0.0 { 0.0 } else { v };
        for (bound, c) in B::BOUNDS.iter().zip(self.buckets.iter()) {
            if v <= *bound {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        // `as` saturates: an absurd value cannot wrap the sum.
        let scaled = (v * SUM_SCALE).round() as u64;
        self.sum_millionths.fetch_add(scaled, Ordering::Relaxed);
    }

    /// The current values. Each atomic is read on its own, so a snapshot
    /// taken during an update may see it in some buckets only; a running
    /// maximum keeps the buckets and the count cumulative anyway (a
    /// scraper must never see a bucket above a wider one).
    pub fn snapshot(&self) -> Snapshot {
        let mut seen = 0;
        let buckets = B::BOUNDS
            .iter()
            .zip(self.buckets.iter())
            .map(|(b, c)| {
                seen = seen.max(c.load(Ordering::Relaxed));
                (*b, seen)
            })
            .collect();
        let sum = self.sum_millionths.load(Ordering::Relaxed) as f64 / SUM_SCALE;
        let count = self.count.load(Ordering::Relaxed).max(seen);
        Snapshot {
            buckets,
            count,
            sum,
        }
    }
}
