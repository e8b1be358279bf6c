//! The properties checked on every run.
//!
//! At every honest commit: agreement (one block per height), app-hash
//! agreement (every honest node computed the same state after each height),
//! the header of h carries the app hash the committing node computed after
//! h − 1, the body matches the header (`engine::block_rules::check_body`),
//! `time_ms` after the parent's and at most the allowed drift ahead of the
//! clock, validity (the creator won the lottery of some round and its VRF
//! proof verifies), and no honest validator is slashed. Whenever an
//! honest engine penalises a peer: that peer is not honest.
//!
//! At the end: every honest node's chain passes the chain verifier from
//! genesis (what `agora audit` runs: parent links, validator-set hashes,
//! the lottery winner of `proposal_round`, the VRF proof, the certificate
//! against the set derived from genesis); every equivocation an honest node
//! received became evidence at that node (or its pool already named the
//! offender); the evidence honest engines found verifies and names only
//! Byzantine validators; every equivocation that reached an honest
//! validator was included and its offender slashed and tombstoned within
//! [`EVIDENCE_BOUND`]; liveness (the target height, and the heights that
//! decide each equivocation's inclusion, within the bound after GST).

use super::host::StoredBlock;
use super::{Sim, Violation};
use agora_proto::v1 as pb;
use agora_validator::chain_verifier::ChainVerifier;
use agora_validator::consensus::GateStatus;
use agora_validator::consensus::evidence::{InfractionKey, verify_evidence};
use agora_validator::crypto::{Signature, ZERO_HASH, vrf};
use agora_validator::engine::{CommitRecord, TICK_MS, block_rules};
use agora_validator::ledger::{Ledger, slashing};
use agora_validator::{Address, Height, lottery};
use std::collections::BTreeSet;

/// The evidence bound: an equivocation that reached an honest validator is
/// included, and its offender slashed, by the `EVIDENCE_BOUND`-th block
/// created by an honest validator above the reference height R: the
/// highest height an honest validator had committed one tick and one
/// maximal network delay after the later of GST and the time the
/// equivocation first reached an honest validator (and at least the
/// infraction height).
///
/// Why it holds: the engine keeps what its core finds in its pool
/// (persisted across restarts) and broadcasts it at once and on every tick,
/// so from that moment on every honest pool holds it (a pool takes evidence
/// about the height it decides or the next, and a node further behind
/// catches up by sync and gets it with the next tick). Every block above
/// R + 1 was created after that moment (its creator committed the height
/// below it, above R), and every honest creator includes its pool's ready
/// evidence. Block R + 1 may have been created earlier, and a Byzantine
/// creator may leave the evidence out, which is why only honest-created
/// blocks count and the bound is 2.
pub const EVIDENCE_BOUND: u64 = 2;

/// Checks a commit of an honest node when it happens (before its store
/// takes the block).
pub(super) fn on_commit(sim: &mut Sim, node: usize, rec: &CommitRecord) {
    if !sim.honest(node) {
        return;
    }
    let h = rec.height;
    let mut found = Vec::new();
    agreement(sim, node, rec, &mut found);
    if let Err(e) = block_rules::check_body(&rec.block) {
        found.push(Violation::BodyMismatch {
            height: h,
            node,
            error: e.to_string(),
        });
    }
    let parent = sim.nodes[node].store.blocks.get(&(h - 1));
    match rec.block.header.as_ref() {
        None => found.push(Violation::Validity { height: h, node }),
        Some(header) => {
            app_hash_link(sim, node, rec, header, parent, &mut found);
            time_rule(sim, node, rec, header, parent, &mut found);
            validity(sim, node, rec, header, parent, &mut found);
        }
    }
    honest_slashed(sim, rec, &mut found);
    sim.violations.extend(found);
}

/// Agreement with the height's first honest decision: the same block, and
/// the same state computed after it.
fn agreement(sim: &Sim, node: usize, rec: &CommitRecord, found: &mut Vec<Violation>) {
    let h = rec.height;
    if let Some(d) = sim.decided.get(&h) {
        if d.hash != rec.block_hash {
            found.push(Violation::Agreement {
                height: h,
                first: (d.node, hex::encode(d.hash)),
                second: (node, hex::encode(rec.block_hash)),
            });
        } else if d.app_hash != rec.app_hash {
            found.push(Violation::AppHash {
                height: h,
                node,
                detail: format!(
                    "state after {h}: node {} computed {}, node {node} {}",
                    d.node,
                    hex::encode(d.app_hash),
                    hex::encode(rec.app_hash)
                ),
            });
        }
    }
}

/// The header carries the app hash the committing node computed after the
/// parent (genesis for height 1).
fn app_hash_link(
    sim: &Sim,
    node: usize,
    rec: &CommitRecord,
    header: &pb::Header,
    parent: Option<&StoredBlock>,
    found: &mut Vec<Violation>,
) {
    let h = rec.height;
    let prev_app = match parent {
        Some(p) => Some(p.app_hash),
        None if h == 1 => Some(sim.g.ledger.app_hash()),
        None => None,
    };
    if prev_app.is_some_and(|a| a.as_slice() != header.app_hash.as_slice()) {
        found.push(Violation::AppHash {
            height: h,
            node,
            detail: format!(
                "header carries {}, node {node} computed {} after {}",
                hex::encode(&header.app_hash),
                hex::encode(prev_app.unwrap_or(ZERO_HASH)),
                h - 1
            ),
        });
    }
}

/// `time_ms` after the parent's and at most the allowed drift ahead of the
/// clock.
fn time_rule(
    sim: &Sim,
    node: usize,
    rec: &CommitRecord,
    header: &pb::Header,
    parent: Option<&StoredBlock>,
    found: &mut Vec<Violation>,
) {
    let h = rec.height;
    let parent_time = parent
        .and_then(|p| p.block.header.as_ref())
        .map(|p| p.time_ms);
    if h > 1 && parent_time.is_some_and(|t| header.time_ms <= t) {
        found.push(Violation::Time {
            height: h,
            node,
            detail: format!("{} not after the parent's {parent_time:?}", header.time_ms),
        });
    }
    let drift = sim.config.limits.max_clock_drift_ms;
    if header.time_ms > sim.now + drift {
        found.push(Violation::Time {
            height: h,
            node,
            detail: format!(
                "{} more than {drift} ms ahead of the clock {}",
                header.time_ms, sim.now
            ),
        });
    }
}

/// Validity: the creator won the lottery of some round up to the commit
/// round and its VRF proof verifies (the chain verifier checks the exact
/// round).
fn validity(
    sim: &Sim,
    node: usize,
    rec: &CommitRecord,
    header: &pb::Header,
    parent: Option<&StoredBlock>,
    found: &mut Vec<Violation>,
) {
    let h = rec.height;
    let store = &sim.nodes[node].store;
    let prev_seed = match parent {
        Some(p) => Some(p.seed),
        None if h == 1 => Some(sim.g.seed0),
        None => None,
    };
    if let (Some(set), Some(prev_seed)) = (store.set_at(h), prev_seed) {
        let ok = Address::from_slice(&header.proposer_address).is_ok_and(|creator| {
            let won = (0..=rec.round)
                .any(|r| lottery::proposer(set, &prev_seed, h, r).address == creator);
            won && set.get(&creator).is_some_and(|v| {
                Signature::from_bytes(&header.vrf_proof).is_ok_and(|p| {
                    vrf::verify(&v.public_key, &sim.g.chain, h, &prev_seed, &p).is_ok()
                })
            })
        });
        if !ok {
            found.push(Violation::Validity { height: h, node });
        }
    }
}

/// No validator the block slashed is honest.
fn honest_slashed(sim: &Sim, rec: &CommitRecord, found: &mut Vec<Violation>) {
    let h = rec.height;
    for ev in rec.result.evidence.iter().flatten().flatten() {
        let j = sim.g.addresses.iter().position(|a| *a == ev.validator);
        if j.is_none_or(|j| sim.honest(j)) {
            found.push(Violation::HonestSlashed {
                height: h,
                validator: ev.validator.to_string(),
            });
        }
    }
}

/// Where an equivocation stands.
enum Inclusion {
    /// Its offender was slashed at this height, in time.
    Included(Height),
    /// Not slashed by this height, when it was due.
    Late(Height),
    /// Not slashed, and the chain has not reached the deadline yet.
    Pending,
}

/// The reference height R of [`EVIDENCE_BOUND`] (None while that moment
/// is still ahead).
fn reference(sim: &Sim, key: &InfractionKey) -> Option<Height> {
    let (reached, _) = sim.infractions.get(key)?;
    let moment = (*reached).max(sim.sc.gst_ms) + TICK_MS + sim.sc.delay_max_ms;
    if sim.now < moment {
        return None;
    }
    let committed = sim
        .decided
        .iter()
        .take_while(|(_, d)| d.time <= moment)
        .last()
        .map_or(0, |(h, _)| *h);
    Some(committed.max(key.height))
}

fn deadline(sim: &Sim, key: &InfractionKey) -> Option<Height> {
    let r = reference(sim, key)?;
    sim.decided
        .range(r + 1..)
        .filter(|(_, d)| d.honest_creator)
        .nth(EVIDENCE_BOUND as usize - 1)
        .map(|(h, _)| *h)
}

fn slash_height(sim: &Sim, offender: &Address) -> Option<Height> {
    sim.decided
        .iter()
        .find(|(_, d)| d.slashed.contains(offender))
        .map(|(h, _)| *h)
}

fn inclusion(sim: &Sim, key: &InfractionKey) -> Inclusion {
    let due = deadline(sim, key);
    match (slash_height(sim, &key.offender), due) {
        (Some(s), Some(d)) if s <= d => Inclusion::Included(s),
        (Some(s), None) => Inclusion::Included(s),
        (_, Some(d)) => Inclusion::Late(d),
        (None, None) => Inclusion::Pending,
    }
}

/// Whether some equivocation's inclusion is still to be seen, and the
/// height every honest node must reach to see each one decided.
pub(super) fn evidence_progress(sim: &Sim) -> (bool, Height) {
    let mut pending = false;
    let mut height = 0;
    for key in sim.infractions.keys() {
        match inclusion(sim, key) {
            Inclusion::Included(h) | Inclusion::Late(h) => height = height.max(h),
            Inclusion::Pending => pending = true,
        }
    }
    (pending, height)
}

/// The most honest-created blocks above the reference height that an
/// inclusion took (what [`EVIDENCE_BOUND`] bounds).
pub(super) fn max_evidence_delay(sim: &Sim) -> u64 {
    sim.infractions
        .keys()
        .filter_map(|k| {
            let s = slash_height(sim, &k.offender)?;
            let r = reference(sim, k)?;
            if s <= r {
                return Some(0);
            }
            Some(
                sim.decided
                    .range(r + 1..=s)
                    .filter(|(_, d)| d.honest_creator)
                    .count() as u64,
            )
        })
        .max()
        .unwrap_or(0)
}

/// Validator-set changes along the decided chain.
pub(super) fn set_changes(sim: &Sim) -> u64 {
    sim.decided.values().filter(|d| d.set_change).count() as u64
}

/// Transactions executed successfully along the decided chain.
pub(super) fn txs_ok(sim: &Sim) -> u64 {
    sim.decided.values().map(|d| d.txs_ok).sum()
}

fn tombstoned(ledger: &Ledger, a: &Address) -> bool {
    ledger.validator(a).is_some_and(|v| v.tombstoned)
        && ledger
            .slash_events(Some(a), None, 100)
            .iter()
            .any(|e| e.evidence_hash != ZERO_HASH)
}

/// Checks at the end of a run.
pub(super) fn final_checks(sim: &mut Sim) {
    let byzantine: BTreeSet<Address> = (0..sim.nodes.len())
        .filter(|i| !sim.honest(*i))
        .map(|i| sim.g.addresses[i])
        .collect();
    let mut found = Vec::new();
    for i in sim.honest_nodes() {
        chain_from_genesis(sim, i, &mut found);
        evidence_became_own(sim, i, &mut found);
        own_evidence_valid(sim, i, &byzantine, &mut found);
        let n = &sim.nodes[i];
        // Alarmed is final, so the gate at the end tells (a node that
        // crashed after alarming restarts with a gate of its own, and is
        // missed here).
        if let Some(GateStatus::Alarmed { height }) =
            n.engine.as_ref().map(|e| e.signing_gate().status())
        {
            found.push(Violation::HonestAlarm { node: i, height });
        }
        // The target, and the heights that decide each equivocation's
        // inclusion (so that every node's ledger can be checked for it).
        if n.store.tip_height() < sim.required {
            found.push(Violation::Liveness {
                node: i,
                reached: n.store.tip_height(),
            });
        }
    }
    for (i, _) in &sim.sc.joiners {
        if !sim.joiner_settled(*i) {
            found.push(Violation::Join {
                node: *i,
                joined_at: sim.nodes[*i].joined_at,
            });
        }
    }
    for key in sim.infractions.keys() {
        match inclusion(sim, key) {
            Inclusion::Included(s) => tombstoned_everywhere(sim, key, s, &mut found),
            Inclusion::Late(d) => found.push(Violation::EvidenceNotIncluded {
                key: format!("{key:?}"),
                due: Some(d),
            }),
            Inclusion::Pending => found.push(Violation::EvidenceNotIncluded {
                key: format!("{key:?}"),
                due: None,
            }),
        }
    }
    found.dedup();
    sim.violations.extend(found);
}

/// Node `i`'s chain passes the chain verifier from genesis, as `agora
/// audit` checks it, with the validator sets its store recorded; for a
/// node that joined by state sync, from its base, which must be the
/// block and state the honest nodes decided at that height.
fn chain_from_genesis(sim: &Sim, i: usize, found: &mut Vec<Violation>) {
    let n = &sim.nodes[i];
    let mut verifier =
        ChainVerifier::from_genesis(sim.g.chain.clone(), sim.g.seed0, sim.g.set().clone());
    if let Some(s) = n.joined_at {
        let base = n.store.blocks.get(&s);
        let decided = sim.decided.get(&s);
        let next_set = n.store.set_at(s + 1);
        let (Some(base), Some(decided), Some(next_set)) = (base, decided, next_set) else {
            found.push(Violation::Chain {
                node: i,
                error: format!("joined at {s}: no base, no decision or no set"),
            });
            return;
        };
        if (base.block_hash, base.app_hash) != (decided.hash, decided.app_hash) {
            found.push(Violation::Chain {
                node: i,
                error: format!("joined at {s}: its base is not the decided block and state"),
            });
            return;
        }
        verifier = ChainVerifier::after(
            sim.g.chain.clone(),
            s,
            base.block_hash,
            base.seed,
            next_set.clone(),
        );
    }
    let first = verifier.next_height();
    for (h, b) in n.store.blocks.range(first..) {
        let (Some(header), Some(next)) = (b.block.header.as_ref(), n.store.set_at(h + 1)) else {
            found.push(Violation::Chain {
                node: i,
                error: format!("height {h}: no header or no set of {}", h + 1),
            });
            break;
        };
        if let Err(e) = verifier.verify_next(header, &b.certificate, next) {
            found.push(Violation::Chain {
                node: i,
                error: e.to_string(),
            });
            break;
        }
    }
}

/// Every equivocation node `i` received both halves of became evidence
/// there (unless its pool already named the offender, or the offender is
/// tombstoned).
fn evidence_became_own(sim: &Sim, i: usize, found: &mut Vec<Violation>) {
    let n = &sim.nodes[i];
    let ledger = n.engine.as_ref().map(|e| e.ledger());
    for key in &n.infractions_seen {
        if !n.evidence_offenders.contains(&key.offender)
            && !ledger.is_some_and(|l| tombstoned(l, &key.offender))
        {
            found.push(Violation::MissingEvidence {
                node: i,
                key: format!("{key:?}"),
            });
        }
    }
}

/// The evidence node `i`'s engine found verifies against the set of its
/// height and names only Byzantine validators.
fn own_evidence_valid(
    sim: &Sim,
    i: usize,
    byzantine: &BTreeSet<Address>,
    found: &mut Vec<Violation>,
) {
    let n = &sim.nodes[i];
    for ev in &n.own_evidence {
        let set = slashing::infraction_height(ev)
            .ok()
            .and_then(|h| n.store.set_at(h));
        let Some(set) = set else {
            found.push(Violation::BadEvidence {
                node: i,
                reason: "no validator set for its height".into(),
            });
            continue;
        };
        match verify_evidence(&sim.g.chain, set, ev) {
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
}

/// The offender of an equivocation included at height `s` is tombstoned
/// in the ledger of every honest node that is up and has reached `s`.
fn tombstoned_everywhere(sim: &Sim, key: &InfractionKey, s: Height, found: &mut Vec<Violation>) {
    for i in sim.honest_nodes() {
        let n = &sim.nodes[i];
        if n.store.tip_height() >= s
            && let Some(e) = n.engine.as_ref()
            && !tombstoned(e.ledger(), &key.offender)
        {
            found.push(Violation::NotTombstoned {
                node: i,
                offender: key.offender.to_string(),
            });
        }
    }
}
