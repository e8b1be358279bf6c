//! What a run reports: its violations, how far it got, what it exercised
//! ([`Coverage`], summed over seeds by the test for its coverage asserts)
//! and each node's final state, for diagnosing a failing seed.

use super::host::Node;
use super::{Behaviour, MAX_CLOCK_SKEW_MS, Sim, Violation, checks};
use agora_validator::{Address, Height};
use std::collections::BTreeMap;

/// What the seeds exercised, summed by the test for its coverage asserts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Blocks honest nodes applied through sync.
    pub synced_blocks: u64,
    /// Honest nodes that restarted and then synced at least two blocks.
    pub restarted_and_synced: u64,
    /// Crashes inside a signing-state write (the WAL ahead of it).
    pub torn_crashes: u64,
    /// Sync requests honest nodes sent to a tampering server.
    pub tampering_asked: u64,
    /// Sync requests honest nodes sent to a false-height peer.
    pub false_height_asked: u64,
    /// Penalties honest nodes charged to Byzantine peers.
    pub penalties: u64,
    /// Counters of the Byzantine modules, by name.
    pub byzantine: BTreeMap<&'static str, u64>,
    /// Equivocations that reached an honest validator.
    pub equivocations: u64,
    /// Offenders slashed by a committed block.
    pub slashed: u64,
    /// Validator-set changes committed.
    pub set_changes: u64,
    /// Transactions executed successfully.
    pub txs_ok: u64,
    /// Largest number of honest-created blocks after the reference height
    /// an inclusion took (see `checks::EVIDENCE_BOUND`).
    pub max_evidence_delay: u64,
    /// Honest nodes that joined by state sync (installed a snapshot).
    pub state_synced: u64,
    /// Of those, the ones that then signed (their signing state names a
    /// height above the snapshot's).
    pub state_synced_then_signed: u64,
    /// Bad snapshots honest joiners charged.
    pub snapshot_charges: u64,
    /// Joiners that joined trusting a decided header, not the genesis set.
    pub joined_from_checkpoint: u64,
    /// Joiners that crashed while joining and joined again from the start.
    pub rejoins: u64,
    /// Joiners that crashed after joining and restarted from their base.
    pub restarts_after_join: u64,
    /// Heights decided in runs whose fastest and slowest clocks were at
    /// least `MAX_CLOCK_SKEW_MS` apart.
    pub skewed_heights: u64,
    /// Clocks stepped backwards (every step falls before GST, so before
    /// the run ends).
    pub clock_steps_back: u64,
}

impl Coverage {
    /// Adds `o` in (sums; the largest evidence delay).
    pub fn add(&mut self, o: &Coverage) {
        self.synced_blocks += o.synced_blocks;
        self.restarted_and_synced += o.restarted_and_synced;
        self.torn_crashes += o.torn_crashes;
        self.tampering_asked += o.tampering_asked;
        self.false_height_asked += o.false_height_asked;
        self.penalties += o.penalties;
        for (k, v) in &o.byzantine {
            *self.byzantine.entry(k).or_default() += v;
        }
        self.equivocations += o.equivocations;
        self.slashed += o.slashed;
        self.set_changes += o.set_changes;
        self.txs_ok += o.txs_ok;
        self.max_evidence_delay = self.max_evidence_delay.max(o.max_evidence_delay);
        self.state_synced += o.state_synced;
        self.state_synced_then_signed += o.state_synced_then_signed;
        self.snapshot_charges += o.snapshot_charges;
        self.joined_from_checkpoint += o.joined_from_checkpoint;
        self.rejoins += o.rejoins;
        self.restarts_after_join += o.restarts_after_join;
        self.skewed_heights += o.skewed_heights;
        self.clock_steps_back += o.clock_steps_back;
    }
}

/// Outcome of one run.
#[derive(Debug)]
pub struct Report {
    /// The seed the run was generated from (`SIM_SEED` replays it).
    pub seed: u64,
    /// What went wrong (empty if the run passed).
    pub violations: Vec<Violation>,
    /// Lowest committed height among honest validators at the end.
    pub min_honest_height: Height,
    /// Simulated time at the end (ms).
    pub end_time_ms: u64,
    /// Events processed (bounded by the event budget).
    pub events: u64,
    /// Evidence items honest validators' engines found.
    pub evidence_count: usize,
    /// What the run exercised.
    pub coverage: Coverage,
    /// Each node's final state, for diagnosing a failing seed.
    pub final_states: Vec<String>,
    /// How many of the certificates carried by the first honest node's
    /// blocks (those of heights 2 and up: the ones that pay rewards and
    /// count downtime) hold each node's precommit, by node index, and how
    /// many certificates were counted.
    pub carried_signatures: (Vec<u64>, u64),
}

impl Sim {
    /// The report of a finished run.
    pub(super) fn report(self) -> Report {
        let min_honest_height = self
            .honest_nodes()
            .map(|i| self.nodes[i].store.tip_height())
            .min()
            .unwrap_or(0);
        let evidence_count = self
            .honest_nodes()
            .map(|i| self.nodes[i].own_evidence.len())
            .sum();
        let coverage = self.coverage();
        let carried_signatures = self.carried_signatures();
        let final_states = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| final_state(i, n))
            .collect();
        Report {
            seed: self.sc.seed,
            violations: self.violations,
            min_honest_height,
            end_time_ms: self.now,
            events: self.processed,
            evidence_count,
            coverage,
            final_states,
            carried_signatures,
        }
    }

    /// See [`Report::carried_signatures`]. Bits are mapped to nodes in
    /// genesis's canonical order (by address): meaningful for scenarios
    /// whose set keeps its members (no workload, no slashing), which are
    /// the ones that read it.
    fn carried_signatures(&self) -> (Vec<u64>, u64) {
        let n = self.g.addresses.len();
        let mut counts = vec![0u64; n];
        let mut certificates = 0;
        let Some(first) = self.honest_nodes().next() else {
            return (counts, 0);
        };
        let mut order: Vec<(usize, Address)> =
            self.g.addresses.iter().copied().enumerate().collect();
        order.sort_by_key(|(_, a)| *a);
        for b in self.nodes[first].store.blocks.values() {
            let Some(c) = b.block.last_commit.as_ref().filter(|c| c.height >= 2) else {
                continue;
            };
            certificates += 1;
            for (position, (node, _)) in order.iter().enumerate() {
                if c.signers
                    .get(position / 8)
                    .is_some_and(|byte| byte >> (position % 8) & 1 == 1)
                {
                    counts[*node] += 1;
                }
            }
        }
        (counts, certificates)
    }

    /// What the run exercised.
    fn coverage(&self) -> Coverage {
        let mut c = Coverage {
            equivocations: self.infractions.len() as u64,
            ..Default::default()
        };
        for i in self.honest_nodes() {
            let s = &self.nodes[i].stats;
            c.synced_blocks += s.synced;
            for (peer, k) in &s.asked {
                match self.nodes[*peer].behaviour {
                    Behaviour::TamperingServer => c.tampering_asked += k,
                    Behaviour::FalseHeight { .. } => c.false_height_asked += k,
                    _ => {}
                }
            }
            c.penalties += s.penalized.values().sum::<u64>();
            c.torn_crashes += s.torn_crashes;
            c.snapshot_charges += s.snapshot_charges;
            c.rejoins += s.rejoins;
            c.restarts_after_join += s.restarts_after_join;
            let n = &self.nodes[i];
            if let Some(s) = n.joined_at {
                c.state_synced += 1;
                c.joined_from_checkpoint += u64::from(n.checkpoint.is_some());
                c.state_synced_then_signed +=
                    u64::from(n.store.signing.is_some_and(|g| g.height > s));
            }
        }
        let skews = &self.sc.clock_skews_ms;
        let spread = skews
            .iter()
            .max()
            .zip(skews.iter().min())
            .map_or(0, |(a, b)| a - b);
        if spread >= MAX_CLOCK_SKEW_MS {
            c.skewed_heights = self.decided.len() as u64;
        }
        // At most one step per node: each is from the node's first skew.
        c.clock_steps_back = self
            .sc
            .clock_steps
            .iter()
            .filter(|(i, _, to)| *to < skews[*i])
            .count() as u64;
        c.restarted_and_synced = self
            .honest_nodes()
            .filter(|i| self.nodes[*i].stats.restarts > 0 && self.nodes[*i].stats.synced >= 2)
            .count() as u64;
        for n in &self.nodes {
            if let Some(b) = &n.byz {
                for (k, v) in b.counters() {
                    *c.byzantine.entry(k).or_default() += v;
                }
            }
        }
        for d in self.decided.values() {
            c.slashed += d.slashed.len() as u64;
        }
        c.set_changes = checks::set_changes(self);
        c.txs_ok = checks::txs_ok(self);
        c.max_evidence_delay = checks::max_evidence_delay(self);
        c
    }
}

/// One line on node `i` at the end of a run: its engine's height, round,
/// step, locks, pool, mempool and counters (or that it is down).
fn final_state(i: usize, n: &Node) -> String {
    match &n.engine {
        Some(e) => {
            let c = e.core();
            format!(
                "node {i} {:?}: tip={} h={} r={} step={:?} locked={:?} valid={:?} pool={} mempool={} stats={:?} core={:?}",
                n.behaviour,
                e.tip_height(),
                c.height(),
                c.round(),
                c.step(),
                c.locked().map(|(v, r)| (hex::encode(&v[..4]), r)),
                c.valid().map(|(v, r)| (hex::encode(&v[..4]), r)),
                e.pool().len(),
                n.mempool.len(),
                n.stats,
                c.stats()
            )
        }
        None => format!("node {i} {:?}: down", n.behaviour),
    }
}
