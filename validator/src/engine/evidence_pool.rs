//! The evidence pool: double-sign evidence waiting to be included in a block.
//!
//! One entry point ([`EvidencePool::add`]) for evidence our own core found,
//! evidence a peer sent and evidence submitted over gRPC. Evidence about the
//! height still being decided (or the next) cannot be included yet (the
//! ledger accepts only infractions below the block's height), so it is
//! *held*: its signatures are checked against that height's validator set at
//! once, and it becomes *ready* when the chain passes its height. Nothing
//! valid is dropped for being early.
//!
//! Pruning happens at each commit and is a state check only (no signature
//! is verified twice): an entry goes when a block includes it, when it
//! leaves the evidence window (`unbonding_period`), or when every offender
//! it names is tombstoned (moot: the same infraction is never slashed twice).
//!
//! Bounds (a hostile peer can send any number of *valid* evidence items only
//! for validators that really double signed, and each is checked before it
//! takes room): at most [`MAX_PER_OFFENDER`] entries name one offender, and
//! the pool holds at most [`MAX_POOL_BYTES`] of encoded evidence (each item
//! is at most `slashing::MAX_EVIDENCE_BYTES`). The host persists entries
//! (kept across restarts) and gossips [`EvidencePool::all`] until included.

use crate::consensus::CheckedEvidence;
use crate::consensus::evidence as consensus_evidence;
use crate::crypto::{Hash, sha3_256};
use crate::ledger::{Ledger, slashing};
use crate::types::{Address, Height};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;
use prost::Message;
use std::collections::BTreeMap;

/// Entries naming one offender, at most: one is enough to slash it.
pub const MAX_PER_OFFENDER: usize = 4;
/// Encoded evidence held in total, at most.
pub const MAX_POOL_BYTES: usize = 1 << 20;
/// Evidence items one block carries, at most.
pub const MAX_PER_BLOCK: usize = 16;

/// Why evidence was not taken into the pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// It does not verify, or cannot be included (too old, tombstoned...).
    #[error("evidence refused: {0}")]
    Invalid(String),
    /// It verifies but can no longer be included: its offenders are all
    /// tombstoned already, or it left the evidence window. Gossip races
    /// with commits, so an honest peer may send it: not a fault.
    #[error("evidence moot: {0}")]
    Moot(String),
    /// It is about a height more than one above the one being decided.
    #[error("evidence about height {infraction} is too far ahead of height {deciding}")]
    TooFarAhead {
        /// The infraction height.
        infraction: Height,
        /// The height this node is deciding.
        deciding: Height,
    },
    /// It was checked (on another thread) against a validator set that is
    /// not this node's set of its infraction height: the check was made on a
    /// stale view and must be made again.
    #[error("evidence was checked against a stale validator set for height {0}; submit it again")]
    StaleCheck(Height),
    /// The pool already holds enough evidence against its offenders, or is full.
    #[error("evidence pool full: {0}")]
    Full(&'static str),
}

/// What `add` did with valid evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// New: persist it and gossip it.
    New(Hash),
    /// Already held.
    Duplicate,
}

#[derive(Debug, Clone)]
struct Entry {
    evidence: pb::Evidence,
    infraction: Height,
    offenders: Vec<Address>,
    /// Includable (infraction below the height being decided) and checked
    /// by the ledger's inclusion rule.
    ready: bool,
    bytes: usize,
}

/// Evidence waiting for inclusion, by the hash of its encoding.
#[derive(Debug, Clone, Default)]
pub struct EvidencePool {
    entries: BTreeMap<Hash, Entry>,
    bytes: usize,
}

/// The hash that names evidence in the pool and in storage.
pub fn evidence_id(ev: &pb::Evidence) -> Hash {
    sha3_256(&ev.encode_to_vec())
}

impl EvidencePool {
    /// Checks `ev` and keeps it. `ledger` is the state after the last
    /// committed block, so `ledger.height() + 1` is the height being decided.
    pub fn add(&mut self, ev: pb::Evidence, ledger: &Ledger) -> Result<Added, PoolError> {
        let id = evidence_id(&ev);
        if self.entries.contains_key(&id) {
            return Ok(Added::Duplicate);
        }
        let infraction =
            slashing::infraction_height(&ev).map_err(|e| PoolError::Invalid(e.to_string()))?;
        let (offenders, ready) = match Self::stage(infraction, ledger)? {
            Stage::Ready => (ledger.check_evidence(&ev).map_err(refusal)?.offenders, true),
            Stage::Held(set) => {
                // Held: the ledger cannot include it yet, but the set of that
                // height is known (sets are kept two heights ahead), so its
                // signatures are checked now and junk never takes room.
                check_held_size(&ev)?;
                let info = consensus_evidence::verify_evidence(ledger.chain_id(), set, &ev)
                    .map_err(|e| PoolError::Invalid(e.to_string()))?;
                (info.offenders, false)
            }
        };
        self.insert(id, ev, infraction, offenders, ready)
    }

    /// [`Self::add`] for evidence whose signatures were checked on another
    /// thread (gRPC submissions): state checks only, after making sure it
    /// was checked against this ledger's set of its infraction height.
    pub fn add_checked(
        &mut self,
        checked: CheckedEvidence,
        ledger: &Ledger,
    ) -> Result<Added, PoolError> {
        let id = evidence_id(checked.evidence());
        if self.entries.contains_key(&id) {
            return Ok(Added::Duplicate);
        }
        let infraction = checked.info().height;
        let (offenders, ready) = match Self::stage(infraction, ledger)? {
            Stage::Ready => (
                ledger
                    .check_checked_evidence(&checked)
                    .map_err(refusal)?
                    .offenders,
                true,
            ),
            Stage::Held(set) => {
                check_held_size(checked.evidence())?;
                if !checked.checked_against(set) {
                    return Err(PoolError::StaleCheck(infraction));
                }
                (checked.info().offenders.clone(), false)
            }
        };
        let ev = checked.evidence().clone();
        self.insert(id, ev, infraction, offenders, ready)
    }

    /// Whether evidence about `infraction` is includable now, held (with the
    /// set to check it against), or too far ahead.
    fn stage(infraction: Height, ledger: &Ledger) -> Result<Stage<'_>, PoolError> {
        let deciding = ledger.height() + 1;
        if infraction < deciding {
            return Ok(Stage::Ready);
        }
        let too_far = PoolError::TooFarAhead {
            infraction,
            deciding,
        };
        if infraction > deciding + 1 {
            return Err(too_far);
        }
        ledger
            .validator_set(infraction)
            .map(Stage::Held)
            .ok_or(too_far)
    }

    /// Takes verified evidence in, within the bounds.
    fn insert(
        &mut self,
        id: Hash,
        evidence: pb::Evidence,
        infraction: Height,
        offenders: Vec<Address>,
        ready: bool,
    ) -> Result<Added, PoolError> {
        let bytes = evidence.encoded_len();
        if offenders
            .iter()
            .any(|o| self.count_naming(o) >= MAX_PER_OFFENDER)
        {
            return Err(PoolError::Full("enough evidence against this offender"));
        }
        if self.bytes + bytes > MAX_POOL_BYTES {
            return Err(PoolError::Full("byte bound reached"));
        }
        self.bytes += bytes;
        self.entries.insert(
            id,
            Entry {
                evidence,
                infraction,
                offenders,
                ready,
                bytes,
            },
        );
        Ok(Added::New(id))
    }

    fn count_naming(&self, offender: &Address) -> usize {
        self.entries
            .values()
            .filter(|e| e.offenders.contains(offender))
            .count()
    }

    /// Evidence for the next block: ready entries, one per offender, oldest
    /// infraction first, at most [`MAX_PER_BLOCK`]. Not re-verified: each
    /// was checked when it became ready, and `on_commit` prunes what the
    /// state made invalid since.
    pub fn for_block(&self) -> Vec<pb::Evidence> {
        let mut ready: Vec<(&Hash, &Entry)> =
            self.entries.iter().filter(|(_, e)| e.ready).collect();
        ready.sort_by_key(|(id, e)| (e.infraction, **id));
        let mut named: Vec<Address> = Vec::new();
        let mut out = Vec::new();
        for (_, e) in ready {
            if out.len() == MAX_PER_BLOCK {
                break;
            }
            if e.offenders.iter().any(|o| named.contains(o)) {
                continue;
            }
            named.extend(e.offenders.iter().copied());
            out.push(e.evidence.clone());
        }
        out
    }

    /// After a block was applied to `ledger`: drops what it included, what
    /// expired and what is moot; held entries whose height passed become
    /// ready (checked by the ledger's rule once). Returns the ids removed,
    /// for the host to delete from storage in the block's transaction.
    pub fn on_commit(&mut self, ledger: &Ledger, included: &[pb::Evidence]) -> Vec<Hash> {
        let deciding = ledger.height() + 1;
        let window = ledger.params().unbonding_period;
        let included: Vec<Hash> = included.iter().map(evidence_id).collect();
        let mut removed = Vec::new();
        for (id, e) in self.entries.iter_mut() {
            let gone = included.contains(id)
                || deciding.saturating_sub(e.infraction) >= window
                || e.offenders.iter().all(|o| tombstoned(ledger, o))
                || (!e.ready
                    && e.infraction < deciding
                    && match ledger.check_evidence(&e.evidence) {
                        Ok(inf) => {
                            e.offenders = inf.offenders;
                            e.ready = true;
                            false
                        }
                        Err(_) => true,
                    });
            if gone {
                removed.push(*id);
            }
        }
        for id in &removed {
            if let Some(e) = self.entries.remove(id) {
                self.bytes -= e.bytes;
            }
        }
        removed
    }

    /// Every entry, ready or held: gossiped until included.
    pub fn all(&self) -> impl Iterator<Item = &pb::Evidence> {
        self.entries.values().map(|e| &e.evidence)
    }

    /// The infraction height and offenders of an entry.
    pub fn offenders_of(&self, id: &Hash) -> Option<(Height, &[Address])> {
        self.entries
            .get(id)
            .map(|e| (e.infraction, e.offenders.as_slice()))
    }

    /// Whether the pool holds this evidence.
    pub fn contains(&self, id: &Hash) -> bool {
        self.entries.contains_key(id)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encoded bytes held (bounded by [`MAX_POOL_BYTES`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Why the ledger's inclusion rule refuses evidence, as a pool error.
/// Where evidence about a height stands against the chain.
enum Stage<'a> {
    /// Below the height being decided: the ledger's inclusion rule applies.
    Ready,
    /// The height being decided or the next: checked against this set, held.
    Held(&'a ValidatorSet),
}

fn check_held_size(ev: &pb::Evidence) -> Result<(), PoolError> {
    let bytes = ev.encoded_len();
    if bytes > slashing::MAX_EVIDENCE_BYTES {
        return Err(PoolError::Invalid(format!("{bytes} bytes")));
    }
    Ok(())
}

fn refusal(e: slashing::EvidenceError) -> PoolError {
    use slashing::EvidenceError as E;
    match e {
        E::TooOld { .. } | E::UnknownHeight(_) | E::AlreadyTombstoned(_) | E::NothingToSlash => {
            PoolError::Moot(e.to_string())
        }
        E::OtherSet(height) => PoolError::StaleCheck(height),
        other => PoolError::Invalid(other.to_string()),
    }
}

fn tombstoned(ledger: &Ledger, a: &Address) -> bool {
    ledger.validator(a).is_some_and(|v| v.tombstoned)
}
