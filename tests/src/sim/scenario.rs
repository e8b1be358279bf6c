//! Random scenarios: one seed fixes the validators, their power, who is
//! Byzantine and how, and every network fault.

use rand::{Rng, SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

/// How a validator behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Follows the protocol (it may still crash and restart).
    Honest,
    /// Byzantine: never sends anything.
    Silent,
    /// Byzantine: proposes two blocks to two halves of the peers and sends
    /// conflicting votes to different peers.
    Equivocator,
    /// Byzantine: follows the protocol but also sends junk bytes, bad
    /// signatures and votes forged in other validators' names.
    Junk,
}

/// Everything a run depends on.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The seed.
    pub seed: u64,
    /// Voting power per node.
    pub powers: Vec<u64>,
    /// Behaviour per node.
    pub behaviours: Vec<Behaviour>,
    /// Least one-way delay (ms).
    pub delay_min_ms: u64,
    /// Largest one-way delay (ms).
    pub delay_max_ms: u64,
    /// Loss probability before GST.
    pub loss: f64,
    /// Duplication probability.
    pub duplication: f64,
    /// One side of a partition, and when it starts and heals (ms).
    pub partition: Option<(BTreeSet<usize>, u64, u64)>,
    /// (node, crash time, restart time) for honest nodes.
    pub crashes: Vec<(usize, u64, u64)>,
    /// Global stabilisation time: every partition healed, every node restarted, loss off.
    pub gst_ms: u64,
    /// Height every honest validator must reach.
    pub target_height: u64,
    /// Simulated time after GST within which the target must be reached (ms).
    pub liveness_bound_ms: u64,
}

impl Scenario {
    /// The scenario of `seed`.
    pub fn generate(seed: u64, target_height: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = rng.random_range(4..=10usize);
        let powers: Vec<u64> = (0..n).map(|_| rng.random_range(1..=10u64)).collect();
        let total: u64 = powers.iter().sum();
        let mut behaviours = vec![Behaviour::Honest; n];
        if rng.random_bool(0.75) {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            let mut byz = 0;
            for i in order {
                // Strictly less than a third of the power.
                if 3 * (byz + powers[i]) < total {
                    byz += powers[i];
                    behaviours[i] = match rng.random_range(0..4) {
                        0 => Behaviour::Silent,
                        1 => Behaviour::Junk,
                        _ => Behaviour::Equivocator,
                    };
                    if rng.random_bool(0.5) {
                        break;
                    }
                }
            }
        }
        let delay_min_ms = rng.random_range(1..=20);
        let delay_max_ms = delay_min_ms + rng.random_range(5..=300);
        let loss = if rng.random_bool(0.5) {
            rng.random_range(0.0..0.2)
        } else {
            0.0
        };
        let duplication = if rng.random_bool(0.5) {
            rng.random_range(0.0..0.15)
        } else {
            0.0
        };
        let partition = rng.random_bool(0.5).then(|| {
            let mut side = BTreeSet::new();
            while side.is_empty() || side.len() == n {
                side = (0..n).filter(|_| rng.random_bool(0.5)).collect();
            }
            let start = rng.random_range(0..3_000);
            (side, start, start + rng.random_range(500..6_000))
        });
        let honest: Vec<usize> = (0..n)
            .filter(|i| behaviours[*i] == Behaviour::Honest)
            .collect();
        let mut crashes = Vec::new();
        if rng.random_bool(0.4) {
            let k = rng.random_range(1..=2usize.min(honest.len()));
            let mut pick = honest.clone();
            pick.shuffle(&mut rng);
            for node in pick.into_iter().take(k) {
                let at = rng.random_range(0..6_000);
                crashes.push((node, at, at + rng.random_range(300..4_000)));
            }
        }
        let gst_ms = partition
            .iter()
            .map(|p| p.2)
            .chain(crashes.iter().map(|c| c.2))
            .max()
            .unwrap_or(0);
        Self {
            seed,
            powers,
            behaviours,
            delay_min_ms,
            delay_max_ms,
            loss,
            duplication,
            partition,
            crashes,
            gst_ms,
            target_height,
            liveness_bound_ms: 60_000,
        }
    }

    /// Summed power of the Byzantine validators.
    pub fn byzantine_power(&self) -> u64 {
        self.powers
            .iter()
            .zip(&self.behaviours)
            .filter(|(_, b)| **b != Behaviour::Honest)
            .map(|(p, _)| *p)
            .sum()
    }
}
