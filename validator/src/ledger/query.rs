//! Read-only views of the ledger for the query API, their protobuf forms, and
//! deterministic pagination (start after a key, at most `limit` items).

use super::staking::shares_to_tokens;
use super::state::{SlashEvent, State, UnbondingEntry, ValidatorRecord};
use super::validator_updates::voting_power;
use crate::crypto::PublicKey;
use crate::types::{Address, Height, Power};
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
            public_key: v.public_key.clone(),
            tokens: v.tokens,
            shares: v.shares,
            power: voting_power(v.tokens, &state.params),
            jailed: v.jailed,
            jailed_until: v.jailed_until,
            tombstoned: v.tombstoned,
            active,
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
        }
    }
}

/// A delegation with the current token value of its shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationView {
    /// Delegator.
    pub delegator: Address,
    /// Validator.
    pub validator: Address,
    /// Shares held.
    pub shares: u128,
    /// Their value in tokens at the current exchange rate, rounded down.
    pub tokens: u128,
}

impl DelegationView {
    pub(crate) fn new(state: &State, delegator: Address, validator: Address, shares: u128) -> Self {
        let tokens = state
            .validators
            .get(&validator)
            .map(|v| shares_to_tokens(v, shares))
            .unwrap_or(0);
        Self {
            delegator,
            validator,
            shares,
            tokens,
        }
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> pb::Delegation {
        pb::Delegation {
            delegator: self.delegator.0.to_vec(),
            validator: self.validator.0.to_vec(),
            shares: self.shares.to_string(),
            tokens: self.tokens.to_string(),
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
            evidence_hash: self.evidence_hash.to_vec(),
            tombstoned: self.tombstoned,
        }
    }
}
