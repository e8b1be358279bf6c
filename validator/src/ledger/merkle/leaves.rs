//! The state as tree leaves: the key layout and value encoding defined in
//! `proto/agora/v1/state.proto` (and ARCHITECTURE.md, "Authenticated
//! state"), so another implementation can recompute the app hash.
//!
//! Keys are one kind byte then fixed-width fields; values are the protobuf
//! encoding of the kind's message. Every item of [`State`] that is not a
//! derived index has exactly one leaf.

use super::super::state::{
    Account, Delegation, RedelegationEntry, SigningInfo, SlashEvent, SlashReason, State,
    UnbondingEntry, ValidatorRecord,
};
use super::delegator_counts::DelegatorCounts;
use crate::types::{Address, Height};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;
use prost::Message;
use std::collections::BTreeSet;

/// The kind byte that starts every leaf key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LeafKind {
    /// Chain-wide scalars (`StateGlobals`); the key is this byte alone.
    Globals = 0x00,
    /// `AccountLeaf`, by address.
    Account = 0x01,
    /// `ValidatorLeaf`, by consensus address.
    Validator = 0x02,
    /// `DelegationLeaf`, by delegator and validator.
    Delegation = 0x03,
    /// `UnbondingLeaf`, by delegator, validator and id.
    Unbonding = 0x04,
    /// `RedelegationLeaf`, by delegator, source, destination and id.
    Redelegation = 0x05,
    /// `SlashEventLeaf`, by id.
    SlashEvent = 0x06,
    /// `ValidatorSetLeaf`, by the height the set is in effect at.
    ValidatorSet = 0x07,
    /// `SigningInfoLeaf`, by consensus address.
    SigningInfo = 0x08,
}

/// A leaf key: the kind byte and its fields.
pub type LeafKey = Vec<u8>;

fn key(kind: LeafKind, parts: &[&[u8]]) -> LeafKey {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(kind as u8);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// Key of the chain-wide scalars.
pub fn globals_key() -> LeafKey {
    key(LeafKind::Globals, &[])
}

/// Key of an account.
pub fn account_key(a: &Address) -> LeafKey {
    key(LeafKind::Account, &[&a.0])
}

/// The address of an account leaf's key; None for a key of another kind.
pub fn account_of_key(k: &[u8]) -> Option<Address> {
    match k.split_first() {
        Some((&kind, rest)) if kind == LeafKind::Account as u8 => Address::from_slice(rest).ok(),
        _ => None,
    }
}

/// Key of a validator.
pub fn validator_key(a: &Address) -> LeafKey {
    key(LeafKind::Validator, &[&a.0])
}

/// Key of a delegation.
pub fn delegation_key(delegator: &Address, validator: &Address) -> LeafKey {
    key(LeafKind::Delegation, &[&delegator.0, &validator.0])
}

/// Key of an unbonding entry.
pub fn unbonding_key(delegator: &Address, validator: &Address, id: u64) -> LeafKey {
    key(
        LeafKind::Unbonding,
        &[&delegator.0, &validator.0, &id.to_be_bytes()],
    )
}

/// Key of a redelegation entry.
pub fn redelegation_key(delegator: &Address, src: &Address, dst: &Address, id: u64) -> LeafKey {
    key(
        LeafKind::Redelegation,
        &[&delegator.0, &src.0, &dst.0, &id.to_be_bytes()],
    )
}

/// Key of a slash event.
pub fn slash_event_key(id: u64) -> LeafKey {
    key(LeafKind::SlashEvent, &[&id.to_be_bytes()])
}

/// Key of the validator set in effect at a height.
pub fn validator_set_key(height: Height) -> LeafKey {
    key(LeafKind::ValidatorSet, &[&height.to_be_bytes()])
}

/// Key of a validator's missed-precommit window.
pub fn signing_info_key(a: &Address) -> LeafKey {
    key(LeafKind::SigningInfo, &[&a.0])
}

fn globals(s: &State) -> Vec<u8> {
    pb::StateGlobals {
        chain_id: s.chain_id.as_str().to_owned(),
        params: Some(s.params.to_proto()),
        height: s.height,
        genesis_supply: s.genesis_supply.to_string(),
        slashed_total: s.slashed_total.to_string(),
        minted_total: s.minted_total.to_string(),
        community_pool: s.community_pool.to_string(),
        next_unbonding_id: s.next_unbonding_id,
        next_redelegation_id: s.next_redelegation_id,
        slash_events: s.slash_events.len() as u64,
    }
    .encode_to_vec()
}

fn account(a: &Account, c: DelegatorCounts) -> Vec<u8> {
    pb::AccountLeaf {
        balance: a.balance.to_string(),
        nonce: a.nonce,
        delegations: c.delegations,
        unbonding_entries: c.unbonding_entries,
        redelegations: c.redelegations,
    }
    .encode_to_vec()
}

fn validator(v: &ValidatorRecord) -> Vec<u8> {
    pb::ValidatorLeaf {
        operator: v.operator.0.to_vec(),
        public_key: v.public_key.to_bytes().to_vec(),
        tokens: v.tokens.to_string(),
        shares: v.shares.to_string(),
        jailed: v.jailed,
        jailed_until: v.jailed_until,
        tombstoned: v.tombstoned,
        jail_reason: u32::from(v.jail_reason.code()),
        commission_rate_bps: v.commission.rate_bps,
        commission_max_rate_bps: v.commission.max_rate_bps,
        commission_max_change_bps: v.commission.max_change_bps,
        commission_changed_at: v.commission.changed_at,
        reward_per_share: v.reward_per_share.to_string(),
        outstanding_rewards: v.outstanding_rewards.to_string(),
    }
    .encode_to_vec()
}

fn delegation(d: &Delegation) -> Vec<u8> {
    pb::DelegationLeaf {
        shares: d.shares.to_string(),
        reward_entry: d.reward_entry.to_string(),
    }
    .encode_to_vec()
}

fn unbonding(e: &UnbondingEntry) -> Vec<u8> {
    pb::UnbondingLeaf {
        creation_height: e.creation_height,
        completion_height: e.completion_height,
        initial_balance: e.initial_balance.to_string(),
        balance: e.balance.to_string(),
    }
    .encode_to_vec()
}

fn redelegation(e: &RedelegationEntry) -> Vec<u8> {
    pb::RedelegationLeaf {
        creation_height: e.creation_height,
        completion_height: e.completion_height,
        initial_balance: e.initial_balance.to_string(),
        shares_dst: e.shares_dst.to_string(),
    }
    .encode_to_vec()
}

fn slash_event(e: &SlashEvent) -> Vec<u8> {
    pb::SlashEventLeaf {
        validator: e.validator.0.to_vec(),
        infraction_height: e.infraction_height,
        slash_height: e.slash_height,
        amount: e.amount.to_string(),
        from_bonded: e.from_bonded.to_string(),
        from_unbonding: e.from_unbonding.to_string(),
        from_redelegations: e.from_redelegations.to_string(),
        fraction_bps: e.fraction_bps,
        evidence_hash: e.evidence_hash.to_vec(),
        tombstoned: e.tombstoned,
        reason: match e.reason {
            SlashReason::DoubleSign => 0,
            SlashReason::Downtime => 1,
        },
    }
    .encode_to_vec()
}

fn validator_set(set: &ValidatorSet) -> Vec<u8> {
    pb::ValidatorSetLeaf {
        validators: set
            .validators()
            .iter()
            .map(|v| pb::ValidatorSetMember {
                public_key: v.public_key.to_bytes().to_vec(),
                power: v.power,
            })
            .collect(),
    }
    .encode_to_vec()
}

fn signing_info(i: &SigningInfo) -> Vec<u8> {
    pb::SigningInfoLeaf {
        counted: i.counted,
        missed: i.missed,
        bits: i.bits.clone(),
    }
    .encode_to_vec()
}

/// Every leaf of a state, in ascending key order (kinds in byte order, and
/// within a kind the fixed-width big-endian fields sort as the maps do):
/// for building its tree whole, and what a store holds at genesis.
pub(crate) fn all(s: &State) -> Vec<(LeafKey, Vec<u8>)> {
    let mut out = Vec::with_capacity(
        1 + s.accounts.len() + s.validators.len() * 2 + s.delegations.len() + s.unbonding.len(),
    );
    out.push((globals_key(), globals(s)));
    let counts = DelegatorCounts::all(s);
    debug_assert!(
        counts.keys().all(|d| s.accounts.contains_key(d)),
        "every delegator has an account"
    );
    out.extend(s.accounts.iter().map(|(a, v)| {
        let c = counts.get(a).copied().unwrap_or_default();
        (account_key(a), account(v, c))
    }));
    out.extend(
        s.validators
            .iter()
            .map(|(a, v)| (validator_key(a), validator(v))),
    );
    out.extend(
        s.delegations
            .iter()
            .map(|((d, v), x)| (delegation_key(d, v), delegation(x))),
    );
    out.extend(
        s.unbonding
            .iter()
            .map(|((d, v, id), e)| (unbonding_key(d, v, *id), unbonding(e))),
    );
    out.extend(
        s.redelegations
            .iter()
            .map(|((d, a, b, id), e)| (redelegation_key(d, a, b, *id), redelegation(e))),
    );
    out.extend(
        s.slash_events
            .iter()
            .map(|e| (slash_event_key(e.id), slash_event(e))),
    );
    out.extend(
        s.validator_sets
            .iter()
            .map(|(h, set)| (validator_set_key(*h), validator_set(set))),
    );
    out.extend(
        s.signing
            .iter()
            .map(|(a, i)| (signing_info_key(a), signing_info(i))),
    );
    out
}

/// A changed leaf: its new value, or `None` when it was removed.
pub type LeafChange = (LeafKey, Option<Vec<u8>>);

/// Appends the changes of `map`'s touched keys and returns those keys.
fn changes_of<K: Ord + Clone, V>(
    map: &mut super::super::tracked::TrackedMap<K, V>,
    key: impl Fn(&K) -> LeafKey,
    value: impl Fn(&V) -> Vec<u8>,
    out: &mut Vec<LeafChange>,
) -> BTreeSet<K> {
    let dirty = map.take_dirty();
    for k in &dirty {
        let v = map.get(k).map(&value);
        out.push((key(k), v));
    }
    dirty
}

/// The account leaves a block changed: the accounts it touched, and the
/// delegators whose delegator leaves it touched (their counts may have
/// moved). One change per address.
fn account_changes(
    s: &State,
    touched: BTreeSet<Address>,
    delegators: BTreeSet<Address>,
) -> Vec<LeafChange> {
    let mut out = Vec::with_capacity(touched.len() + delegators.len());
    for a in touched.union(&delegators) {
        let v = s
            .accounts
            .get(a)
            .map(|acct| account(acct, DelegatorCounts::of(s, a)));
        debug_assert!(
            v.is_some() || DelegatorCounts::of(s, a) == DelegatorCounts::default(),
            "every delegator has an account"
        );
        // A delegator's account that was not touched and does not exist
        // has no leaf to remove.
        if v.is_some() || touched.contains(a) {
            out.push((account_key(a), v));
        }
    }
    out
}

/// The leaves a block changed: every key its maps recorded, the slash
/// events appended after the first `slash_events_in_tree`, and the globals
/// (which change every block, with the height).
pub(crate) fn changed(s: &mut State, slash_events_in_tree: usize) -> Vec<LeafChange> {
    let mut out = vec![(globals_key(), Some(globals(s)))];
    let touched = s.accounts.take_dirty();
    changes_of(&mut s.validators, validator_key, validator, &mut out);
    let mut delegators: BTreeSet<Address> = changes_of(
        &mut s.delegations,
        |(d, v)| delegation_key(d, v),
        delegation,
        &mut out,
    )
    .into_iter()
    .map(|(d, _)| d)
    .collect();
    let unbonding_keys = changes_of(
        &mut s.unbonding,
        |(d, v, id)| unbonding_key(d, v, *id),
        unbonding,
        &mut out,
    );
    delegators.extend(unbonding_keys.into_iter().map(|(d, _, _)| d));
    let redelegation_keys = changes_of(
        &mut s.redelegations,
        |(d, a, b, id)| redelegation_key(d, a, b, *id),
        redelegation,
        &mut out,
    );
    delegators.extend(redelegation_keys.into_iter().map(|(d, _, _, _)| d));
    out.extend(account_changes(s, touched, delegators));
    changes_of(
        &mut s.validator_sets,
        |h| validator_set_key(*h),
        validator_set,
        &mut out,
    );
    changes_of(&mut s.signing, signing_info_key, signing_info, &mut out);
    // Slash events are only ever appended (`id` is the index).
    debug_assert!(slash_events_in_tree <= s.slash_events.len());
    out.extend(
        s.slash_events
            .iter()
            .skip(slash_events_in_tree)
            .map(|e| (slash_event_key(e.id), Some(slash_event(e)))),
    );
    out
}

/// Forgets what was touched (after the tree was built whole).
pub(crate) fn clear_changes(s: &mut State) {
    s.accounts.take_dirty();
    s.validators.take_dirty();
    s.delegations.take_dirty();
    s.unbonding.take_dirty();
    s.redelegations.take_dirty();
    s.validator_sets.take_dirty();
    s.signing.take_dirty();
}
