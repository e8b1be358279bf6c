//! The ledger's state: accounts, validators, delegations, unbonding entries,
//! slash events and the recent validator sets. Every collection is a
//! `BTreeMap`, so iteration order (and therefore every hash and every
//! decision) is the same on every node.

use super::params::Params;
use crate::crypto::{Hash, PublicKey};
use crate::types::{Address, ChainId, Height};
use crate::validator_set::ValidatorSet;
use std::collections::{BTreeMap, BTreeSet};

/// An account: spendable tokens and the number of transactions it has had
/// executed (its next nonce).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Account {
    /// Spendable tokens.
    pub balance: u128,
    /// Next nonce to use.
    pub nonce: u64,
}

/// A registered validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorRecord {
    /// Address of the consensus key; the validator's identity.
    pub address: Address,
    /// Account that registered it and holds its self-bond.
    pub operator: Address,
    /// Consensus key (its proof of possession was verified at registration).
    pub public_key: PublicKey,
    /// Bonded tokens backing all its shares.
    pub tokens: u128,
    /// Total shares issued to its delegators.
    pub shares: u128,
    /// Excluded from the active set until unjailed.
    pub jailed: bool,
    /// First height at which an unjail is accepted (meaningless unless jailed).
    pub jailed_until: Height,
    /// Double signed: permanently jailed, never validates again.
    pub tombstoned: bool,
}

/// Tokens on their way out of a validator, still slashable until paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnbondingEntry {
    /// Who gets the tokens.
    pub delegator: Address,
    /// The validator they were bonded to.
    pub validator: Address,
    /// Unique, increasing id (orders entries of one pair).
    pub id: u64,
    /// Height of the block that executed the unbond.
    pub creation_height: Height,
    /// Height at whose end the tokens are paid out.
    pub completion_height: Height,
    /// Tokens at creation.
    pub initial_balance: u128,
    /// Tokens still owed (less after a slash).
    pub balance: u128,
}

/// One slash, recorded so delegators and auditors can see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashEvent {
    /// Sequence number, from 0; the order slashes happened in.
    pub id: u64,
    /// The offender.
    pub validator: Address,
    /// Height of the double signing.
    pub infraction_height: Height,
    /// Height of the block that included the evidence.
    pub slash_height: Height,
    /// Tokens burnt in total.
    pub amount: u128,
    /// Of which from the validator's bonded tokens.
    pub from_bonded: u128,
    /// Of which from unbonding entries.
    pub from_unbonding: u128,
    /// Fraction slashed, basis points.
    pub fraction_bps: u32,
    /// Hash of the encoded evidence.
    pub evidence_hash: Hash,
    /// Whether the validator was tombstoned (always, for double signing).
    pub tombstoned: bool,
}

/// Key of an unbonding entry: (delegator, validator, id).
pub type UnbondingKey = (Address, Address, u64);

/// The whole ledger state between blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Chain the ledger belongs to.
    pub chain_id: ChainId,
    /// Staking parameters.
    pub params: Params,
    /// Height of the last executed block (0 right after genesis).
    pub height: Height,
    /// Sum of all genesis balances; never changes.
    pub genesis_supply: u128,
    /// Tokens burnt by slashing so far.
    pub slashed_total: u128,
    /// Accounts by address.
    pub accounts: BTreeMap<Address, Account>,
    /// Validators by consensus address (never removed, so old sets stay resolvable).
    pub validators: BTreeMap<Address, ValidatorRecord>,
    /// Shares held, by (delegator, validator).
    pub delegations: BTreeMap<(Address, Address), u128>,
    /// Pending unbonding entries.
    pub unbonding: BTreeMap<UnbondingKey, UnbondingEntry>,
    /// Id of the next unbonding entry.
    pub next_unbonding_id: u64,
    /// Every slash so far, in order (`id` is the index).
    pub slash_events: Vec<SlashEvent>,
    /// Validator sets by the height they are in effect at: the evidence
    /// window behind, the current height and the two ahead.
    pub validator_sets: BTreeMap<Height, ValidatorSet>,
    /// Derived index of `unbonding` by completion height (not encoded).
    pub maturity: BTreeSet<(Height, UnbondingKey)>,
}

impl State {
    /// The account of an address (empty if it has none).
    pub fn account(&self, a: &Address) -> Account {
        self.accounts.get(a).copied().unwrap_or_default()
    }

    /// Tokens held outside of accounts: bonded plus unbonding.
    pub fn staked_total(&self) -> Option<u128> {
        let mut t: u128 = 0;
        for v in self.validators.values() {
            t = t.checked_add(v.tokens)?;
        }
        for e in self.unbonding.values() {
            t = t.checked_add(e.balance)?;
        }
        Some(t)
    }

    /// Sum of every account balance, bonded token and unbonding balance.
    pub fn total_supply(&self) -> Option<u128> {
        let mut t = self.staked_total()?;
        for a in self.accounts.values() {
            t = t.checked_add(a.balance)?;
        }
        Some(t)
    }

    /// Pending unbonding entries of one delegator–validator pair.
    pub fn entries_of_pair(
        &self,
        delegator: Address,
        validator: Address,
    ) -> impl Iterator<Item = &UnbondingEntry> {
        self.unbonding
            .range((delegator, validator, 0)..=(delegator, validator, u64::MAX))
            .map(|(_, e)| e)
    }

    /// Rebuilds the derived maturity index from the entries.
    pub fn rebuild_maturity(&mut self) {
        self.maturity = self
            .unbonding
            .iter()
            .map(|(k, e)| (e.completion_height, *k))
            .collect();
    }

    /// Adds an unbonding entry and indexes it.
    pub fn insert_unbonding(&mut self, e: UnbondingEntry) {
        let key = (e.delegator, e.validator, e.id);
        self.maturity.insert((e.completion_height, key));
        self.unbonding.insert(key, e);
    }
}
