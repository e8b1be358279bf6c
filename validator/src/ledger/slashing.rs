//! Double-sign evidence and slashing (DESIGN §8).
//!
//! Three kinds of evidence are accepted, each in the one canonical encoding
//! that `consensus::evidence` defines and checks (the half with the smaller
//! block hash first), so the node that reports evidence and the ledger that
//! punishes it agree byte for byte:
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
//!
//! Stake redelegated away from the offender at h−1 or later (still counted
//! in its power at h) and whose entry is pending pays too: the entry's
//! `floor(initial_balance · bps / 10_000)` tokens are taken back from the
//! destination as shares of the delegation the move bought (never more than
//! the entry's shares or the delegation holds), and burnt. Those tokens
//! count towards the slash, like unbonding entries.

use super::amount::{fraction_bps, mul_div_floor};
use super::rewards;
use super::staking::shares_to_tokens;
use super::state::{JailReason, SlashEvent, SlashReason, State};
use crate::consensus::CheckedEvidence;
use crate::consensus::evidence as consensus_evidence;
use crate::crypto::{Hash, sha3_256};
use crate::types::{Address, Height};
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
    /// The consensus verifier refused it: not canonical, not conflicting,
    /// mismatched halves, or a signature or certificate that does not verify.
    #[error(transparent)]
    Invalid(#[from] consensus_evidence::EvidenceError),
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
    /// The offender was already tombstoned (this infraction or an earlier one was punished).
    #[error("validator {0} is already tombstoned")]
    AlreadyTombstoned(Address),
    /// `apply_evidence` was called outside a block.
    #[error("no block in progress")]
    NoBlockInProgress,
    /// Every validator that signed both certificates is already tombstoned.
    #[error("every validator that signed both certificates is already tombstoned")]
    NothingToSlash,
    /// The evidence was checked against another validator set than this
    /// state's set of its infraction height (a stale view; check again).
    #[error("evidence was checked against another validator set than this node's for height {0}")]
    OtherSet(Height),
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

/// Height of the infraction, read from the first half (the structural
/// checks that both halves agree come later, in the consensus verifier).
pub fn infraction_height(ev: &pb::Evidence) -> Result<Height, EvidenceError> {
    use pb::evidence::Kind;
    let missing = || EvidenceError::Malformed("a half of the evidence is missing".into());
    match ev
        .kind
        .as_ref()
        .ok_or_else(|| EvidenceError::Malformed("no evidence kind".into()))?
    {
        Kind::DuplicateVote(d) => d.vote_a.as_ref().map(|v| v.height).ok_or_else(missing),
        Kind::ConflictingProposals(c) => {
            c.proposal_a.as_ref().map(|p| p.height).ok_or_else(missing)
        }
        Kind::ConflictingCertificates(c) => c.cert_a.as_ref().map(|c| c.height).ok_or_else(missing),
    }
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

/// Verifies evidence for inclusion in the block at height `current`: size,
/// evidence window, then the consensus verifier (canonical form, conflict,
/// signatures against the set of the infraction height), then drops
/// offenders that are already tombstoned.
pub fn verify_evidence(
    state: &State,
    ev: &pb::Evidence,
    current: Height,
) -> Result<Infraction, EvidenceError> {
    check_size(ev)?;
    let height = infraction_height(ev)?;
    let set = set_at(state, height, current)?;
    let info =
        consensus_evidence::verify_evidence(&state.chain_id, set, ev).map_err(|e| match e {
            consensus_evidence::EvidenceError::NotAValidator(address) => {
                EvidenceError::NotAValidator { address, height }
            }
            other => EvidenceError::Invalid(other),
        })?;
    infraction_of(state, ev, height, info)
}

/// [`verify_evidence`] for evidence whose signatures were already checked
/// (on another thread): the same window and tombstone rules, and the set it
/// was checked against must be this state's set of the infraction height.
/// No signature is checked here.
pub fn verify_checked_evidence(
    state: &State,
    checked: &CheckedEvidence,
    current: Height,
) -> Result<Infraction, EvidenceError> {
    let ev = checked.evidence();
    check_size(ev)?;
    let height = infraction_height(ev)?;
    let set = set_at(state, height, current)?;
    if !checked.checked_against(set) {
        return Err(EvidenceError::OtherSet(height));
    }
    infraction_of(state, ev, height, checked.info().clone())
}

fn check_size(ev: &pb::Evidence) -> Result<(), EvidenceError> {
    let size = ev.encoded_len();
    if size > MAX_EVIDENCE_BYTES {
        return Err(EvidenceError::Malformed(format!(
            "evidence is {size} bytes, the limit is {MAX_EVIDENCE_BYTES}"
        )));
    }
    Ok(())
}

/// The infraction verified evidence proves, without the offenders already
/// tombstoned (the same infraction is never slashed twice).
fn infraction_of(
    state: &State,
    ev: &pb::Evidence,
    height: Height,
    info: consensus_evidence::EvidenceInfo,
) -> Result<Infraction, EvidenceError> {
    if info.height != height {
        return Err(EvidenceError::Malformed(
            "halves at different heights".into(),
        ));
    }
    let single = (info.offenders.len() == 1).then(|| info.offenders[0]);
    let offenders: Vec<Address> = info
        .offenders
        .into_iter()
        .filter(|a| !state.validators.get(a).is_some_and(|v| v.tombstoned))
        .collect();
    if offenders.is_empty() {
        return Err(match single {
            Some(a) => EvidenceError::AlreadyTombstoned(a),
            None => EvidenceError::NothingToSlash,
        });
    }
    Ok(Infraction {
        height,
        offenders,
        evidence_hash: sha3_256(&ev.encode_to_vec()),
    })
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
    let stake_at_h = u128::from(power).saturating_mul(state.params.power_reduction);
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
    let from_redelegations = slash_redelegations(state, offender, first_counted, bps);
    let v = state.validators.get_mut(&offender)?;
    let from_bonded = target
        .saturating_sub(from_unbonding)
        .saturating_sub(from_redelegations)
        .min(v.tokens);
    v.tokens -= from_bonded;
    v.jailed = true;
    v.jailed_until = Height::MAX;
    v.tombstoned = true;
    v.jail_reason = JailReason::DoubleSign;
    let amount = from_bonded
        .saturating_add(from_unbonding)
        .saturating_add(from_redelegations);
    state.slashed_total = state.slashed_total.saturating_add(amount);
    let event = SlashEvent {
        id: state.slash_events.len() as u64,
        validator: offender,
        infraction_height,
        slash_height: current,
        amount,
        from_bonded,
        from_unbonding,
        from_redelegations,
        fraction_bps: bps,
        evidence_hash,
        tombstoned: true,
        reason: SlashReason::DoubleSign,
    };
    state.slash_events.push(event.clone());
    Some(event)
}

/// Slashes the pending redelegations away from `offender` created at
/// `first_counted` or later; returns the tokens burnt.
fn slash_redelegations(
    state: &mut State,
    offender: Address,
    first_counted: Height,
    bps: u32,
) -> u128 {
    let keys: Vec<_> = state
        .redelegations
        .iter()
        .filter(|(_, e)| e.src == offender && e.creation_height >= first_counted)
        .map(|(k, _)| *k)
        .collect();
    let mut burnt: u128 = 0;
    for key in keys {
        let Some(e) = state.redelegations.get(&key).cloned() else {
            continue;
        };
        let want = fraction_bps(e.initial_balance, bps);
        let Some(dst) = state.validators.get(&e.dst).cloned() else {
            continue;
        };
        let Some(d) = state.delegations.get(&(e.delegator, e.dst)).copied() else {
            continue;
        };
        // Shares worth `want` tokens, rounded up so rounding does not shorten
        // the slash, then capped by what the entry and delegation hold.
        let mut shares = mul_div_floor(want, dst.shares, dst.tokens.max(1)).unwrap_or(u128::MAX);
        if shares_to_tokens(&dst, shares) < want {
            shares = shares.saturating_add(1);
        }
        let shares = shares.min(e.shares_dst).min(d.shares);
        let mut nd = dst;
        let tokens = shares_to_tokens(&nd, shares).min(want);
        // Settle the delegation's rewards before its shares change.
        let owed = rewards::settle(&mut nd, Some(&d));
        nd.shares -= shares;
        nd.tokens -= tokens;
        let left = d.shares - shares;
        let entry = nd.reward_per_share;
        state.validators.insert(nd.address, nd);
        if left == 0 {
            state.delegations.remove(&(e.delegator, e.dst));
        } else {
            state.delegations.insert(
                (e.delegator, e.dst),
                super::state::Delegation {
                    shares: left,
                    reward_entry: entry,
                },
            );
        }
        let acct = state.accounts.entry(e.delegator).or_default();
        acct.balance = acct.balance.saturating_add(owed);
        if let Some(entry) = state.redelegations.get_mut(&key) {
            entry.shares_dst -= shares;
        }
        burnt = burnt.saturating_add(tokens);
    }
    burnt
}
