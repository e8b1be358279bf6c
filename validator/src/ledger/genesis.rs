//! The state at height 0, built from a genesis file: funded accounts, then
//! validators registered with their self-bonds taken from their operators'
//! balances (each proof of possession checked), then the active set of
//! heights 1 and 2. Every entry is checked; the first bad one is named by
//! its position in the file.

use super::amount::parse_amount;
use super::merkle::StateTree;
use super::params::{Params, ParamsError};
use super::state::{Account, Commission, Delegation, JailReason, State, ValidatorRecord};
use super::{Ledger, staking, validator_updates};
use crate::crypto::{PublicKey, Signature};
use crate::types::{Address, ChainId};
use agora_proto::v1 as pb;
use std::collections::{BTreeMap, BTreeSet};

/// Most accounts a genesis file may fund.
pub const MAX_GENESIS_ACCOUNTS: usize = 1_000_000;
/// Most validators a genesis file may register.
pub const MAX_GENESIS_VALIDATORS: usize = 10_000;

/// Why a genesis file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// The chain id is not valid.
    #[error("bad chain id: {0}")]
    ChainId(String),
    /// The parameters are not valid.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// An account entry is malformed or repeated.
    #[error("genesis account #{index}: {reason}")]
    Account {
        /// Zero-based index of the entry in the genesis `accounts` list.
        index: usize,
        /// The first problem found with that entry.
        reason: String,
    },
    /// A validator entry is malformed, repeated, unfunded or lacks a valid proof of possession.
    #[error("genesis validator #{index}: {reason}")]
    Validator {
        /// Zero-based index of the entry in the genesis `validators` list.
        index: usize,
        /// The first problem found with that entry.
        reason: String,
    },
    /// Too many entries.
    #[error("genesis has too many {0}")]
    TooMany(&'static str),
    /// The supply does not fit the voting-power arithmetic.
    #[error("total supply {supply} is too large for power_reduction {power_reduction}")]
    SupplyTooLarge {
        /// Sum of the genesis account balances, in base units.
        supply: u128,
        /// Base units per unit of voting power, from the genesis parameters.
        power_reduction: u128,
    },
    /// No validator has at least one unit of voting power.
    #[error("no genesis validator has at least one unit of voting power")]
    NoActiveValidators,
}

impl Ledger {
    /// Builds the state at height 0 from a genesis file: funds the accounts,
    /// registers the validators (each proof of possession checked) with
    /// their self-bonds taken from their operators' balances, and computes
    /// the set in effect at heights 1 and 2.
    pub fn from_genesis(g: &pb::Genesis) -> Result<Self, GenesisError> {
        let chain_id =
            ChainId::new(g.chain_id.clone()).map_err(|e| GenesisError::ChainId(e.to_string()))?;
        let params = Params::from_proto(g.params.as_ref())?;
        if g.accounts.len() > MAX_GENESIS_ACCOUNTS {
            return Err(GenesisError::TooMany("accounts"));
        }
        if g.validators.len() > MAX_GENESIS_VALIDATORS {
            return Err(GenesisError::TooMany("validators"));
        }
        let (accounts, supply) = genesis_accounts(&g.accounts)?;
        if supply / params.power_reduction > u128::from(crate::validator_set::MAX_TOTAL_POWER) {
            return Err(GenesisError::SupplyTooLarge {
                supply,
                power_reduction: params.power_reduction,
            });
        }
        let mut state = State {
            chain_id,
            params,
            height: 0,
            genesis_supply: supply,
            slashed_total: 0,
            minted_total: 0,
            community_pool: 0,
            accounts: accounts.into(),
            validators: Default::default(),
            delegations: Default::default(),
            unbonding: Default::default(),
            next_unbonding_id: 0,
            slash_events: Vec::new(),
            validator_sets: Default::default(),
            maturity: BTreeSet::new(),
            redelegations: Default::default(),
            next_redelegation_id: 0,
            redelegation_maturity: BTreeSet::new(),
            signing: Default::default(),
        };
        for (index, gv) in g.validators.iter().enumerate() {
            register_validator(&mut state, index, gv)?;
        }
        let set = validator_updates::compute_active_set(&state)
            .ok_or(GenesisError::NoActiveValidators)?;
        state.validator_sets.insert(1, set.clone());
        state.validator_sets.insert(2, set);
        let tree = StateTree::build(&mut state);
        Ok(Self {
            state,
            block: None,
            tree,
        })
    }
}

/// The funded accounts and their total (the genesis supply).
fn genesis_accounts(
    entries: &[pb::GenesisAccount],
) -> Result<(BTreeMap<Address, Account>, u128), GenesisError> {
    let mut accounts = BTreeMap::new();
    let mut supply: u128 = 0;
    for (index, a) in entries.iter().enumerate() {
        let bad = |reason: String| GenesisError::Account { index, reason };
        let addr = Address::from_slice(&a.address).map_err(|e| bad(e.to_string()))?;
        let balance = parse_amount(&a.balance).map_err(|e| bad(format!("balance: {e}")))?;
        if accounts
            .insert(addr, Account { balance, nonce: 0 })
            .is_some()
        {
            return Err(bad(format!("duplicate account {addr}")));
        }
        supply = supply
            .checked_add(balance)
            .ok_or_else(|| bad("total supply overflows 128 bits".into()))?;
    }
    Ok((accounts, supply))
}

/// Registers genesis validator `index`, its self-bond paid from its
/// operator's funded account.
fn register_validator(
    state: &mut State,
    index: usize,
    gv: &pb::GenesisValidator,
) -> Result<(), GenesisError> {
    let bad = |reason: String| GenesisError::Validator { index, reason };
    let (operator, key, bond, commission) = genesis_validator(index, gv)?;
    let address = Address::of(&key);
    if state.validators.contains_key(&address) {
        return Err(bad(format!("duplicate validator {address}")));
    }
    if bond < state.params.min_self_bond {
        return Err(bad(format!(
            "self_bond {bond} is below min_self_bond {}",
            state.params.min_self_bond
        )));
    }
    let acct = state
        .accounts
        .get_mut(&operator)
        .ok_or_else(|| bad(format!("operator {operator} has no genesis account")))?;
    acct.balance = acct.balance.checked_sub(bond).ok_or_else(|| {
        bad(format!(
            "operator {operator} holds {} but self-bonds {bond}",
            acct.balance
        ))
    })?;
    state.validators.insert(
        address,
        ValidatorRecord {
            address,
            operator,
            public_key: key,
            tokens: bond,
            shares: bond,
            jailed: false,
            jailed_until: 0,
            tombstoned: false,
            jail_reason: JailReason::None,
            commission,
            reward_per_share: 0,
            outstanding_rewards: 0,
        },
    );
    state.delegations.insert(
        (operator, address),
        Delegation {
            shares: bond,
            reward_entry: 0,
        },
    );
    Ok(())
}

/// The decoded and checked fields of a genesis validator entry: operator,
/// consensus key, self-bond and commission.
fn genesis_validator(
    index: usize,
    gv: &pb::GenesisValidator,
) -> Result<(Address, PublicKey, u128, Commission), GenesisError> {
    let bad = |reason: String| GenesisError::Validator { index, reason };
    let operator = Address::from_slice(&gv.operator).map_err(|e| bad(format!("operator: {e}")))?;
    let key = PublicKey::from_bytes(&gv.consensus_public_key)
        .map_err(|e| bad(format!("consensus public key: {e}")))?;
    let pop = Signature::from_bytes(&gv.proof_of_possession)
        .map_err(|e| bad(format!("proof of possession: {e}")))?;
    key.verify_possession(&pop)
        .map_err(|_| bad("proof of possession does not verify".into()))?;
    let bond = parse_amount(&gv.self_bond).map_err(|e| bad(format!("self_bond: {e}")))?;
    let commission = Commission {
        rate_bps: gv.commission_rate_bps,
        max_rate_bps: gv.commission_max_rate_bps,
        max_change_bps: gv.commission_max_change_bps,
        changed_at: 0,
    };
    staking::check_commission(&commission).map_err(|e| bad(e.to_string()))?;
    Ok((operator, key, bond, commission))
}
