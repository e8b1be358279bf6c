//! The properties checked on every run.

use super::{Behaviour, Sim};
use agora_validator::consensus::Decision;
use agora_validator::consensus::evidence::{InfractionKey, infraction_key, verify_evidence};
use agora_validator::crypto::{Signature, vrf};
use agora_validator::{Address, Height, lottery};
use std::collections::BTreeSet;

/// A property that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Two honest validators decided different blocks at one height.
    Agreement {
        /// Height.
        height: Height,
        /// First decider and block.
        first: (usize, String),
        /// Conflicting decider and block.
        second: (usize, String),
    },
    /// A decided block was not proposed by that height's lottery winner.
    Validity {
        /// Height.
        height: Height,
        /// Decider.
        node: usize,
    },
    /// A decision's certificate does not verify.
    Certificate {
        /// Height.
        height: Height,
        /// Decider.
        node: usize,
        /// Why.
        error: String,
    },
    /// An equivocation an honest validator received did not become evidence.
    MissingEvidence {
        /// The receiver.
        node: usize,
        /// The infraction.
        key: String,
    },
    /// Evidence that does not verify or names an honest validator.
    BadEvidence {
        /// The reporter.
        node: usize,
        /// Why.
        reason: String,
    },
    /// An honest validator did not reach the target height in time.
    Liveness {
        /// The validator.
        node: usize,
        /// Its height at the end.
        reached: Height,
    },
    /// The run needed more events than the budget.
    EventBudget,
}

impl Violation {
    /// Whether this is a safety violation (agreement or validity).
    pub fn is_safety(&self) -> bool {
        matches!(self, Self::Agreement { .. } | Self::Validity { .. })
    }
}

/// Checks a decision when it happens: agreement, validity, certificate.
pub(super) fn on_decision(sim: &mut Sim, node: usize, d: &Decision) {
    if sim.nodes[node].behaviour != Behaviour::Honest {
        return;
    }
    match sim.decided.get(&d.height) {
        Some((hash, first)) if *hash != d.block_hash => {
            sim.violations.push(Violation::Agreement {
                height: d.height,
                first: (*first, hex::encode(hash)),
                second: (node, hex::encode(d.block_hash)),
            });
        }
        Some(_) => {}
        None => {
            sim.decided.insert(d.height, (d.block_hash, node));
        }
    }
    if let Err(e) = d
        .certificate
        .verify_for(&sim.chain, &sim.set, d.height, &d.block_hash)
    {
        sim.violations.push(Violation::Certificate {
            height: d.height,
            node,
            error: e.to_string(),
        });
    }
    // Validity: the block's creator won the lottery of some round up to the
    // decision round, and its VRF proof verifies.
    let prev_seed = if d.height == 1 {
        sim.genesis_seed
    } else {
        match sim.nodes[node].chain.get(&(d.height - 1)) {
            Some(p) => p.seed,
            None => return,
        }
    };
    let ok = d.block.header.as_ref().is_some_and(|h| {
        let Ok(creator) = Address::from_slice(&h.proposer_address) else {
            return false;
        };
        let won = (0..=d.round.max(64))
            .any(|r| lottery::proposer(&sim.set, &prev_seed, d.height, r).address == creator);
        let vrf_ok = sim.set.get(&creator).is_some_and(|v| {
            Signature::from_bytes(&h.vrf_proof).is_ok_and(|p| {
                vrf::verify(&v.public_key, &sim.chain, d.height, &prev_seed, &p).is_ok()
            })
        });
        won && vrf_ok
    });
    if !ok {
        sim.violations.push(Violation::Validity {
            height: d.height,
            node,
        });
    }
}

/// Checks at the end of a run: evidence completeness and soundness, liveness.
pub(super) fn final_checks(sim: &mut Sim) {
    let byzantine: BTreeSet<Address> = (0..sim.nodes.len())
        .filter(|i| sim.nodes[*i].behaviour != Behaviour::Honest)
        .filter_map(|i| Address::from_slice(&sim.address(i)).ok())
        .collect();
    let mut found = Vec::new();
    for (i, n) in sim.nodes.iter().enumerate() {
        if n.behaviour != Behaviour::Honest {
            continue;
        }
        let reported: BTreeSet<InfractionKey> =
            n.evidence.iter().filter_map(infraction_key).collect();
        for (key, contents) in &n.received {
            if contents.len() >= 2 && !reported.contains(key) {
                found.push(Violation::MissingEvidence {
                    node: i,
                    key: format!("{key:?}"),
                });
            }
        }
        for ev in &n.evidence {
            match verify_evidence(&sim.chain, &sim.set, ev) {
                Err(e) => found.push(Violation::BadEvidence {
                    node: i,
                    reason: e.to_string(),
                }),
                Ok(info) => {
                    for o in info.offenders {
                        if !byzantine.contains(&o) {
                            found.push(Violation::BadEvidence {
                                node: i,
                                reason: format!("names honest validator {o}"),
                            });
                        }
                    }
                }
            }
        }
        if !n.chain.contains_key(&sim.sc.target_height) {
            found.push(Violation::Liveness {
                node: i,
                reached: n.chain.keys().next_back().copied().unwrap_or(0),
            });
        }
    }
    sim.violations.extend(found);
}
