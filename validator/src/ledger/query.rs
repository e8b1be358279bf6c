//! Read-only views of the ledger for the query API, their protobuf forms, and
//! deterministic pagination (start after a key, at most `limit` items).

use super::Ledger;
use super::rewards;
use super::staking::shares_to_tokens;
use super::state::{
    Account, Commission, Delegation, JailReason, RedelegationEntry, SlashEvent, SlashReason, State,
    Supply, UnbondingEntry, ValidatorRecord,
};
use super::validator_updates::voting_power;
use crate::crypto::PublicKey;
use crate::types::{Address, Height, Power};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;

/// Largest page a query returns.
pub const MAX_PAGE: usize = 1000;
/// Page size when the caller asks for 0.
pub const DEFAULT_PAGE: usize = 100;

/// Clamps a requested page size to `1..=MAX_PAGE` (0 means the default).
pub fn page_limit(limit: usize) -> usize {
    if limit == 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    }
}

/// A validator as the query API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorView {
    /// Consensus address.
    pub address: Address,
    /// Operator account.
    pub operator: Address,
    /// Consensus key.
    pub public_key: PublicKey,
    /// Bonded tokens.
    pub tokens: u128,
    /// Shares issued.
    pub shares: u128,
    /// Voting power its tokens give (whether or not it is active).
    pub power: Power,
    /// Jailed.
    pub jailed: bool,
    /// First height an unjail is accepted (if jailed and not tombstoned).
    pub jailed_until: Height,
    /// Tombstoned for double signing.
    pub tombstoned: bool,
    /// In the most recently computed active set (the one in effect two heights on).
    pub active: bool,
    /// Commission rate and bounds.
    pub commission: Commission,
    /// Precommits missing from the current signing window.
    pub missed_blocks: u64,
    /// Certificates counted in the current window (at most its size).
    pub window_counted: u64,
    /// Why it is jailed.
    pub jail_reason: JailReason,
    /// Delegators' rewards not yet withdrawn.
    pub outstanding_rewards: u128,
}

impl ValidatorView {
    pub(crate) fn new(state: &State, v: &ValidatorRecord) -> Self {
        let active = state
            .validator_sets
            .last_key_value()
            .is_some_and(|(_, s)| s.index_of(&v.address).is_some());
        Self {
            address: v.address,
            operator: v.operator,
            public_key: v.public_key,
            tokens: v.tokens,
            shares: v.shares,
            power: voting_power(v.tokens, &state.params),
            jailed: v.jailed,
            jailed_until: v.jailed_until,
            tombstoned: v.tombstoned,
            active,
            commission: v.commission,
            missed_blocks: state.signing.get(&v.address).map_or(0, |i| i.missed),
            window_counted: state
                .signing
                .get(&v.address)
                .map_or(0, |i| i.counted.min(state.params.signed_blocks_window)),
            jail_reason: if v.jailed {
                v.jail_reason
            } else {
                JailReason::None
            },
            outstanding_rewards: v.outstanding_rewards,
        }
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> pb::ValidatorRecord {
        pb::ValidatorRecord {
            address: self.address.0.to_vec(),
            operator: self.operator.0.to_vec(),
            consensus_public_key: self.public_key.to_bytes().to_vec(),
            tokens: self.tokens.to_string(),
            shares: self.shares.to_string(),
            power: self.power,
            jailed: self.jailed,
            tombstoned: self.tombstoned,
            jailed_until: self.jailed_until,
            active: self.active,
            commission_rate_bps: self.commission.rate_bps,
            commission_max_rate_bps: self.commission.max_rate_bps,
            commission_max_change_bps: self.commission.max_change_bps,
            commission_changed_at: self.commission.changed_at,
            missed_blocks: self.missed_blocks,
            window_counted: self.window_counted,
            jail_reason: match self.jail_reason {
                JailReason::None => pb::JailReason::Unspecified,
                JailReason::SelfBond => pb::JailReason::SelfBond,
                JailReason::Downtime => pb::JailReason::Downtime,
                JailReason::DoubleSign => pb::JailReason::DoubleSign,
            } as i32,
            outstanding_rewards: self.outstanding_rewards.to_string(),
        }
    }
}

/// A delegation with the current token value of its shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationView {
    /// The account that delegated the stake.
    pub delegator: Address,
    /// The validator the stake is delegated to.
    pub validator: Address,
    /// Shares held.
    pub shares: u128,
    /// Their value in tokens at the current exchange rate, rounded down.
    pub tokens: u128,
    /// Rewards accrued and not yet withdrawn.
    pub rewards: u128,
}

impl DelegationView {
    pub(crate) fn new(
        state: &State,
        delegator: Address,
        validator: Address,
        d: &Delegation,
    ) -> Self {
        let v = state.validators.get(&validator);
        Self {
            delegator,
            validator,
            shares: d.shares,
            tokens: v.map_or(0, |v| shares_to_tokens(v, d.shares)),
            rewards: v.map_or(0, |v| rewards::pending(v, d)),
        }
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> pb::Delegation {
        pb::Delegation {
            delegator: self.delegator.0.to_vec(),
            validator: self.validator.0.to_vec(),
            shares: self.shares.to_string(),
            tokens: self.tokens.to_string(),
            rewards: self.rewards.to_string(),
        }
    }
}

impl UnbondingEntry {
    /// The protobuf form.
    pub fn to_proto(&self) -> pb::UnbondingEntry {
        pb::UnbondingEntry {
            delegator: self.delegator.0.to_vec(),
            validator: self.validator.0.to_vec(),
            creation_height: self.creation_height,
            completion_height: self.completion_height,
            initial_balance: self.initial_balance.to_string(),
            balance: self.balance.to_string(),
            id: self.id,
        }
    }
}

impl SlashEvent {
    /// The protobuf form.
    pub fn to_proto(&self) -> pb::SlashingEvent {
        pb::SlashingEvent {
            validator: self.validator.0.to_vec(),
            infraction_height: self.infraction_height,
            slash_height: self.slash_height,
            amount: self.amount.to_string(),
            fraction_bps: self.fraction_bps,
            evidence_hash: match self.reason {
                SlashReason::DoubleSign => self.evidence_hash.to_vec(),
                SlashReason::Downtime => Vec::new(),
            },
            tombstoned: self.tombstoned,
            reason: match self.reason {
                SlashReason::DoubleSign => pb::SlashReason::DoubleSign,
                SlashReason::Downtime => pb::SlashReason::Downtime,
            } as i32,
            from_bonded: self.from_bonded.to_string(),
            from_unbonding: self.from_unbonding.to_string(),
            from_redelegations: self.from_redelegations.to_string(),
            id: self.id,
        }
    }
}

impl RedelegationEntry {
    /// The protobuf form.
    pub fn to_proto(&self) -> pb::RedelegationEntry {
        pb::RedelegationEntry {
            delegator: self.delegator.0.to_vec(),
            src_validator: self.src.0.to_vec(),
            dst_validator: self.dst.0.to_vec(),
            creation_height: self.creation_height,
            completion_height: self.completion_height,
            initial_balance: self.initial_balance.to_string(),
            shares_dst: self.shares_dst.to_string(),
            id: self.id,
        }
    }
}

impl Supply {
    /// The protobuf form, after block `height`.
    pub fn to_proto(&self, height: Height) -> pb::GetSupplyResponse {
        pb::GetSupplyResponse {
            height,
            genesis_supply: self.genesis.to_string(),
            minted: self.minted.to_string(),
            balances: self.balances.to_string(),
            bonded: self.bonded.to_string(),
            unbonding: self.unbonding.to_string(),
            unclaimed_rewards: self.unclaimed_rewards.to_string(),
            burned: self.burned.to_string(),
            community_pool: self.community_pool.to_string(),
            proof: None,
        }
    }
}

/// The read side of the ledger, as the query API serves it.
impl Ledger {
    /// The validator set in effect at `height`, if still kept (the evidence
    /// window behind the last block, and up to two heights ahead).
    pub fn validator_set(&self, height: Height) -> Option<&ValidatorSet> {
        self.state.validator_sets.get(&height)
    }

    /// Tokens in existence: balances, bonded, unbonding and unclaimed rewards.
    pub fn total_supply(&self) -> u128 {
        // Bounded by the genesis supply, which fits; saturation is unreachable.
        self.state.total_supply().unwrap_or(u128::MAX)
    }

    /// Tokens burnt by slashing since genesis.
    pub fn slashed_total(&self) -> u128 {
        self.state.slashed_total
    }

    /// The supply at genesis.
    pub fn genesis_supply(&self) -> u128 {
        self.state.genesis_supply
    }

    /// Where every token is; `supply().balances_out()` always holds.
    pub fn supply(&self) -> Supply {
        // Every part is bounded by genesis + minted, which fits in u128.
        self.state.supply().unwrap_or_default()
    }

    /// Rewards a delegation has accrued and not yet withdrawn.
    pub fn rewards(&self, delegator: &Address, validator: &Address) -> Option<u128> {
        let d = self.state.delegations.get(&(*delegator, *validator))?;
        let v = self.state.validators.get(validator)?;
        Some(rewards::pending(v, d))
    }

    /// A delegator's pending redelegation entries by (source, destination,
    /// id), starting after `start_after`.
    pub fn redelegations(
        &self,
        delegator: &Address,
        start_after: Option<(Address, Address, u64)>,
        limit: usize,
    ) -> Vec<RedelegationEntry> {
        use std::ops::Bound::{Excluded, Included};
        let d = *delegator;
        let (zero, ff) = (Address([0; 20]), Address([0xff; 20]));
        let lo = match start_after {
            Some((s, t, id)) => Excluded((d, s, t, id)),
            None => Included((d, zero, zero, 0)),
        };
        self.state
            .redelegations
            .range((lo, Included((d, ff, ff, u64::MAX))))
            .take(page_limit(limit))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// An account (zero balance and nonce if it does not exist).
    pub fn account(&self, a: &Address) -> Account {
        self.state.account(a)
    }

    /// A validator.
    pub fn validator(&self, a: &Address) -> Option<ValidatorView> {
        self.state
            .validators
            .get(a)
            .map(|v| ValidatorView::new(&self.state, v))
    }

    /// Validators in address order, starting after `start_after`.
    pub fn validators(&self, start_after: Option<Address>, limit: usize) -> Vec<ValidatorView> {
        use std::ops::Bound::{Excluded, Unbounded};
        let lo = start_after.map_or(Unbounded, Excluded);
        self.state
            .validators
            .range((lo, Unbounded))
            .take(page_limit(limit))
            .map(|(_, v)| ValidatorView::new(&self.state, v))
            .collect()
    }

    /// One delegation with its token value.
    pub fn delegation(&self, delegator: &Address, validator: &Address) -> Option<DelegationView> {
        self.state
            .delegations
            .get(&(*delegator, *validator))
            .map(|d| DelegationView::new(&self.state, *delegator, *validator, d))
    }

    /// A delegator's delegations in validator order, starting after `start_after`.
    pub fn delegations(
        &self,
        delegator: &Address,
        start_after: Option<Address>,
        limit: usize,
    ) -> Vec<DelegationView> {
        use std::ops::Bound::{Excluded, Included};
        let d = *delegator;
        let lo = match start_after {
            Some(v) => Excluded((d, v)),
            None => Included((d, Address([0; 20]))),
        };
        self.state
            .delegations
            .range((lo, Included((d, Address([0xff; 20])))))
            .take(page_limit(limit))
            .map(|((d, v), del)| DelegationView::new(&self.state, *d, *v, del))
            .collect()
    }

    /// A delegator's pending unbonding entries, by (validator, id), starting after `start_after`.
    pub fn unbonding(
        &self,
        delegator: &Address,
        start_after: Option<(Address, u64)>,
        limit: usize,
    ) -> Vec<UnbondingEntry> {
        use std::ops::Bound::{Excluded, Included};
        let d = *delegator;
        let lo = match start_after {
            Some((v, id)) => Excluded((d, v, id)),
            None => Included((d, Address([0; 20]), 0)),
        };
        self.state
            .unbonding
            .range((lo, Included((d, Address([0xff; 20]), u64::MAX))))
            .take(page_limit(limit))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Slash events in order, optionally of one validator, with ids after `start_after`.
    pub fn slash_events(
        &self,
        validator: Option<&Address>,
        start_after: Option<u64>,
        limit: usize,
    ) -> Vec<SlashEvent> {
        let from = start_after.map_or(0, |i| i.saturating_add(1));
        let from = usize::try_from(from).unwrap_or(usize::MAX);
        self.state
            .slash_events
            .iter()
            .skip(from)
            .filter(|e| validator.is_none_or(|v| e.validator == *v))
            .take(page_limit(limit))
            .cloned()
            .collect()
    }
}
