//! Double-sign evidence and slashing (DESIGN §8).
//!
//! Three kinds of evidence are accepted, each in one canonical encoding (the
//! half with the smaller block hash first):
//! - two votes by one validator for the same height, round and type with
//!   different block hashes (an empty hash is nil, the same as 32 zero bytes);
//! - two different proposals by one validator for the same height and round;
//! - two valid commit certificates for different blocks at the same height,
//!   against every validator that signed both.
//!
//! Signatures are checked against the validator set in effect at the
//! infraction height, which the ledger keeps for the evidence window.
//! Evidence is accepted while `current − infraction < unbonding_period`:
//! every unbonding entry that still carried stake at the infraction height is
//! then still pending (it completes at the end of its completion height,
//! after the block's evidence is applied), so no stake escapes.
//!
//! The slash is `slash_fraction_double_sign` of the power at the infraction
//! height h (in tokens: `power · power_reduction · bps / 10_000`, rounded
//! down). Unbonding entries of the validator created at h−1 or later lose
//! `floor(initial_balance · bps / 10_000)`, never more than they hold; the
//! rest comes from the validator's bonded tokens (never more than it holds),
//! so every delegator loses in proportion to its shares. The offender is
//! jailed and tombstoned; a tombstoned validator is never slashed again.

use super::amount::{fraction_bps, mul_div_floor};
use super::state::{SlashEvent, State};
use crate::certificate::{CertificateError, CommitCertificate};
use crate::crypto::{Hash, Signature, ZERO_HASH, hash::hash_from_slice, sha3_256};
use crate::signing::{proposal_bytes, vote_bytes};
use crate::types::{Address, Height, VoteType};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;
use prost::Message;

/// Largest encoded evidence accepted (two certificates with their bitmaps).
pub const MAX_EVIDENCE_BYTES: usize = 64 * 1024;

/// Why evidence was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// A field is missing or does not decode.
    #[error("malformed evidence: {0}")]
    Malformed(String),
    /// The two halves are in the wrong order (smaller block hash first).
    #[error("evidence is not in canonical order: the half with the smaller block hash goes first")]
    NotCanonical,
    /// The two halves do not conflict (same block, or different height/round/type/signer).
    #[error("the two halves do not conflict: {0}")]
    NotConflicting(String),
    /// The infraction is at or after the current height.
    #[error("infraction height {infraction} is not before the current height {current}")]
    FromTheFuture {
        /// Height of the infraction.
        infraction: Height,
        /// Height of the block applying the evidence.
        current: Height,
    },
    /// The infraction is outside the evidence window.
    #[error(
        "evidence from height {infraction} is too old at height {current}: the window is {window} heights"
    )]
    TooOld {
        /// Height of the infraction.
        infraction: Height,
        /// Height of the block applying the evidence.
        current: Height,
        /// The unbonding period.
        window: Height,
    },
    /// The ledger has no validator set for that height.
    #[error("no validator set known for height {0}")]
    UnknownHeight(Height),
    /// The accused key was not in the validator set of the infraction height.
    #[error("{address} was not a validator at height {height}")]
    NotAValidator {
        /// Accused address.
        address: Address,
        /// Infraction height.
        height: Height,
    },
    /// A signature does not verify.
    #[error("signature of {0} does not verify")]
    BadSignature(&'static str),
    /// A certificate does not verify against the set of its height.
    #[error("certificate {which} is invalid: {source}")]
    BadCertificate {
        /// "a" or "b".
        which: &'static str,
        /// Why.
        source: CertificateError,
    },
    /// The offender was already tombstoned (this infraction or an earlier one was punished).
    #[error("validator {0} is already tombstoned")]
    AlreadyTombstoned(Address),
    /// `apply_evidence` was called outside a block.
    #[error("no block in progress")]
    NoBlockInProgress,
    /// Every validator that signed both certificates is already tombstoned.
    #[error("every validator that signed both certificates is already tombstoned")]
    NothingToSlash,
}

/// A verified infraction: who, and at which height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Infraction {
    /// Height of the double signing.
    pub height: Height,
    /// The offenders (not yet tombstoned), in ascending address order.
    pub offenders: Vec<Address>,
    /// Hash of the encoded evidence.
    pub evidence_hash: Hash,
}

fn vote_hash(b: &[u8]) -> Result<Hash, EvidenceError> {
    if b.is_empty() {
        return Ok(ZERO_HASH);
    }
    hash_from_slice(b).ok_or_else(|| EvidenceError::Malformed("block hash must be 32 bytes".into()))
}

fn sig(b: &[u8], which: &str) -> Result<Signature, EvidenceError> {
    Signature::from_bytes(b)
        .map_err(|e| EvidenceError::Malformed(format!("{which} signature: {e}")))
}

fn addr(b: &[u8]) -> Result<Address, EvidenceError> {
    Address::from_slice(b).map_err(|e| EvidenceError::Malformed(e.to_string()))
}

/// The validator set in effect at `height`, after the window checks.
fn set_at(state: &State, height: Height, current: Height) -> Result<&ValidatorSet, EvidenceError> {
    if height == 0 || height >= current {
        return Err(EvidenceError::FromTheFuture {
            infraction: height,
            current,
        });
    }
    if current - height >= state.params.unbonding_period {
        return Err(EvidenceError::TooOld {
            infraction: height,
            current,
            window: state.params.unbonding_period,
        });
    }
    state
        .validator_sets
        .get(&height)
        .ok_or(EvidenceError::UnknownHeight(height))
}

fn not_tombstoned(state: &State, a: Address) -> Result<(), EvidenceError> {
    match state.validators.get(&a) {
        Some(v) if v.tombstoned => Err(EvidenceError::AlreadyTombstoned(a)),
        _ => Ok(()),
    }
}

/// Verifies evidence for inclusion in the block at height `current`.
/// Cheap structural checks come before any pairing.
pub fn verify_evidence(
    state: &State,
    ev: &pb::Evidence,
    current: Height,
) -> Result<Infraction, EvidenceError> {
    let size = ev.encoded_len();
    if size > MAX_EVIDENCE_BYTES {
        return Err(EvidenceError::Malformed(format!(
            "evidence is {size} bytes, the limit is {MAX_EVIDENCE_BYTES}"
        )));
    }
    let evidence_hash = sha3_256(&ev.encode_to_vec());
    let chain = &state.chain_id;
    use pb::evidence::Kind;
    match ev
        .kind
        .as_ref()
        .ok_or_else(|| EvidenceError::Malformed("no evidence kind".into()))?
    {
        Kind::DuplicateVote(d) => {
            let (Some(a), Some(b)) = (d.vote_a.as_ref(), d.vote_b.as_ref()) else {
                return Err(EvidenceError::Malformed("both votes are required".into()));
            };
            let vt = VoteType::from_i32(a.vote_type)
                .ok_or_else(|| EvidenceError::Malformed("unknown vote type".into()))?;
            if a.vote_type != b.vote_type
                || a.height != b.height
                || a.round != b.round
                || a.validator_address != b.validator_address
            {
                return Err(EvidenceError::NotConflicting(
                    "votes differ in type, height, round or validator".into(),
                ));
            }
            let (ha, hb) = (vote_hash(&a.block_hash)?, vote_hash(&b.block_hash)?);
            if ha == hb {
                return Err(EvidenceError::NotConflicting(
                    "both votes are for the same block".into(),
                ));
            }
            if ha > hb {
                return Err(EvidenceError::NotCanonical);
            }
            let who = addr(&a.validator_address)?;
            let (sa, sb) = (sig(&a.signature, "vote a")?, sig(&b.signature, "vote b")?);
            let set = set_at(state, a.height, current)?;
            let v = set.get(&who).ok_or(EvidenceError::NotAValidator {
                address: who,
                height: a.height,
            })?;
            not_tombstoned(state, who)?;
            v.public_key
                .verify(&vote_bytes(chain, vt, a.height, a.round, &ha), &sa)
                .map_err(|_| EvidenceError::BadSignature("vote a"))?;
            v.public_key
                .verify(&vote_bytes(chain, vt, b.height, b.round, &hb), &sb)
                .map_err(|_| EvidenceError::BadSignature("vote b"))?;
            Ok(Infraction {
                height: a.height,
                offenders: vec![who],
                evidence_hash,
            })
        }
        Kind::ConflictingProposals(c) => {
            let (Some(a), Some(b)) = (c.proposal_a.as_ref(), c.proposal_b.as_ref()) else {
                return Err(EvidenceError::Malformed(
                    "both proposals are required".into(),
                ));
            };
            if a.height != b.height
                || a.round != b.round
                || a.proposer_address != b.proposer_address
            {
                return Err(EvidenceError::NotConflicting(
                    "proposals differ in height, round or proposer".into(),
                ));
            }
            let ha = hash_from_slice(&a.block_hash)
                .ok_or_else(|| EvidenceError::Malformed("block hash must be 32 bytes".into()))?;
            let hb = hash_from_slice(&b.block_hash)
                .ok_or_else(|| EvidenceError::Malformed("block hash must be 32 bytes".into()))?;
            if a.pol_round < -1 || b.pol_round < -1 {
                return Err(EvidenceError::Malformed("pol_round below -1".into()));
            }
            match (ha, a.pol_round).cmp(&(hb, b.pol_round)) {
                std::cmp::Ordering::Equal => {
                    return Err(EvidenceError::NotConflicting(
                        "the proposals are identical".into(),
                    ));
                }
                std::cmp::Ordering::Greater => return Err(EvidenceError::NotCanonical),
                std::cmp::Ordering::Less => {}
            }
            let who = addr(&a.proposer_address)?;
            let (sa, sb) = (
                sig(&a.signature, "proposal a")?,
                sig(&b.signature, "proposal b")?,
            );
            let set = set_at(state, a.height, current)?;
            let v = set.get(&who).ok_or(EvidenceError::NotAValidator {
                address: who,
                height: a.height,
            })?;
            not_tombstoned(state, who)?;
            v.public_key
                .verify(
                    &proposal_bytes(chain, a.height, a.round, a.pol_round, &ha),
                    &sa,
                )
                .map_err(|_| EvidenceError::BadSignature("proposal a"))?;
            v.public_key
                .verify(
                    &proposal_bytes(chain, b.height, b.round, b.pol_round, &hb),
                    &sb,
                )
                .map_err(|_| EvidenceError::BadSignature("proposal b"))?;
            Ok(Infraction {
                height: a.height,
                offenders: vec![who],
                evidence_hash,
            })
        }
        Kind::ConflictingCertificates(c) => {
            let (Some(a), Some(b)) = (c.cert_a.as_ref(), c.cert_b.as_ref()) else {
                return Err(EvidenceError::Malformed(
                    "both certificates are required".into(),
                ));
            };
            let ca = CommitCertificate::from_proto(a)
                .map_err(|source| EvidenceError::BadCertificate { which: "a", source })?;
            let cb = CommitCertificate::from_proto(b)
                .map_err(|source| EvidenceError::BadCertificate { which: "b", source })?;
            if ca.height != cb.height {
                return Err(EvidenceError::NotConflicting(
                    "certificates differ in height".into(),
                ));
            }
            if ca.block_hash == cb.block_hash {
                return Err(EvidenceError::NotConflicting(
                    "both certificates commit the same block".into(),
                ));
            }
            if ca.block_hash > cb.block_hash {
                return Err(EvidenceError::NotCanonical);
            }
            let set = set_at(state, ca.height, current)?;
            let ia = ca
                .signer_indices(set.len())
                .map_err(|source| EvidenceError::BadCertificate { which: "a", source })?;
            let ib = cb
                .signer_indices(set.len())
                .map_err(|source| EvidenceError::BadCertificate { which: "b", source })?;
            // Indices are ascending, so the intersection comes out in address order.
            let offenders: Vec<Address> = ia
                .iter()
                .filter(|i| ib.binary_search(i).is_ok())
                .map(|i| set.validators()[*i].address)
                .filter(|a| not_tombstoned(state, *a).is_ok())
                .collect();
            if offenders.is_empty() {
                return Err(EvidenceError::NothingToSlash);
            }
            ca.verify(chain, set)
                .map_err(|source| EvidenceError::BadCertificate { which: "a", source })?;
            cb.verify(chain, set)
                .map_err(|source| EvidenceError::BadCertificate { which: "b", source })?;
            Ok(Infraction {
                height: ca.height,
                offenders,
                evidence_hash,
            })
        }
    }
}

/// Slashes, jails and tombstones one offender for an infraction at
/// `infraction_height`, in the block at `current`. The caller has verified
/// the evidence (and that the validator is not tombstoned).
pub fn slash(
    state: &mut State,
    offender: Address,
    infraction_height: Height,
    current: Height,
    evidence_hash: Hash,
) -> Option<SlashEvent> {
    let bps = state.params.slash_fraction_double_sign_bps;
    let power = state
        .validator_sets
        .get(&infraction_height)?
        .get(&offender)?
        .power;
    // power · power_reduction ≤ the tokens bonded at h, which fit in u128.
    let stake_at_h = u128::from(power)
        .checked_mul(state.params.power_reduction)
        .unwrap_or(u128::MAX);
    let target = mul_div_floor(stake_at_h, u128::from(bps), 10_000).unwrap_or(0);

    let first_counted = infraction_height.saturating_sub(1);
    let mut from_unbonding: u128 = 0;
    for e in state.unbonding.values_mut() {
        if e.validator == offender && e.creation_height >= first_counted {
            let cut = fraction_bps(e.initial_balance, bps).min(e.balance);
            e.balance -= cut;
            from_unbonding = from_unbonding.saturating_add(cut);
        }
    }
    let v = state.validators.get_mut(&offender)?;
    let from_bonded = target.saturating_sub(from_unbonding).min(v.tokens);
    v.tokens -= from_bonded;
    v.jailed = true;
    v.jailed_until = Height::MAX;
    v.tombstoned = true;
    let amount = from_bonded.saturating_add(from_unbonding);
    state.slashed_total = state.slashed_total.saturating_add(amount);
    let event = SlashEvent {
        id: state.slash_events.len() as u64,
        validator: offender,
        infraction_height,
        slash_height: current,
        amount,
        from_bonded,
        from_unbonding,
        fraction_bps: bps,
        evidence_hash,
        tombstoned: true,
    };
    state.slash_events.push(event.clone());
    Some(event)
}
