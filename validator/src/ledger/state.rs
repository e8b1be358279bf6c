//! The ledger's state: accounts, validators, delegations, unbonding entries,
//! slash events and the recent validator sets. Every collection is a
//! `BTreeMap`, so iteration order (and therefore every hash and every
//! decision) is the same on every node.

use super::params::Params;
use super::tracked::TrackedMap;
use crate::crypto::{Hash, PublicKey};
use crate::types::{Address, ChainId, Height};
use crate::validator_set::ValidatorSet;
use std::collections::BTreeSet;

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
    /// Why it is jailed (meaningless unless jailed).
    pub jail_reason: JailReason,
    /// Its commission and the bounds on changing it.
    pub commission: Commission,
    /// Cumulative delegator reward per share since registration, scaled by
    /// [`super::rewards::REWARD_SCALE`]; wraps modulo 2^128 (only differences are used).
    pub reward_per_share: u128,
    /// Delegator rewards credited and not yet withdrawn, rounding remainders included.
    pub outstanding_rewards: u128,
}

/// Why a validator is jailed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JailReason {
    /// Not jailed.
    #[default]
    None,
    /// The operator's self-bond fell below `min_self_bond`.
    SelfBond,
    /// Too many precommits missing from the signing window.
    Downtime,
    /// Double signed: tombstoned.
    DoubleSign,
}

impl JailReason {
    /// Stable code used by the snapshot encoding.
    pub fn code(self) -> u8 {
        match self {
            JailReason::None => 0,
            JailReason::SelfBond => 1,
            JailReason::Downtime => 2,
            JailReason::DoubleSign => 3,
        }
    }

    /// Inverse of [`JailReason::code`].
    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => JailReason::None,
            1 => JailReason::SelfBond,
            2 => JailReason::Downtime,
            3 => JailReason::DoubleSign,
            _ => return None,
        })
    }
}

/// A validator's commission on its delegators' rewards, in basis points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Commission {
    /// Current rate.
    pub rate_bps: u32,
    /// Highest rate it may ever set.
    pub max_rate_bps: u32,
    /// Largest change in one edit.
    pub max_change_bps: u32,
    /// Height of the last change (0: set at registration).
    pub changed_at: Height,
}

/// A delegation: shares of a validator and where its reward accounting starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delegation {
    /// Shares held.
    pub shares: u128,
    /// The validator's `reward_per_share` when rewards were last settled.
    pub reward_entry: u128,
}

/// Stake moved from `src` to `dst` that stays slashable for `src`'s
/// infractions committed before the move, until `completion_height`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedelegationEntry {
    /// Whose stake moved.
    pub delegator: Address,
    /// The validator it left.
    pub src: Address,
    /// The validator it joined.
    pub dst: Address,
    /// Unique, increasing id.
    pub id: u64,
    /// Height of the block that executed the move.
    pub creation_height: Height,
    /// Height at whose end the entry stops being slashable for `src`.
    pub completion_height: Height,
    /// Tokens moved.
    pub initial_balance: u128,
    /// Shares of `dst` the move bought and that a slash of `src` may still take.
    pub shares_dst: u128,
}

/// Key of a redelegation entry: (delegator, source, destination, id).
pub type RedelegationKey = (Address, Address, Address, u64);

/// Which of the recent certificates a validator's precommit was missing
/// from: a ring of `signed_blocks_window` bits (1 = missed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningInfo {
    /// Certificates counted since the validator entered a set or was unjailed.
    pub counted: u64,
    /// Missed precommits among the last `min(counted, window)` certificates.
    pub missed: u64,
    /// One bit per position `counted mod window`.
    pub bits: Vec<u8>,
}

impl SigningInfo {
    /// An empty window of `window` certificates.
    pub fn new(window: u64) -> Self {
        Self {
            counted: 0,
            missed: 0,
            bits: vec![0; usize::try_from(window.div_ceil(8)).unwrap_or(0)],
        }
    }
}

/// Why stake was slashed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SlashReason {
    /// Double signing (evidence).
    #[default]
    DoubleSign,
    /// Downtime (missed precommits).
    Downtime,
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
    /// Of which from stake redelegated away after the infraction.
    pub from_redelegations: u128,
    /// Fraction slashed, basis points.
    pub fraction_bps: u32,
    /// Hash of the encoded evidence (zero for downtime).
    pub evidence_hash: Hash,
    /// Whether the validator was tombstoned (always, for double signing).
    pub tombstoned: bool,
    /// What the slash punished.
    pub reason: SlashReason,
}

/// Where the tokens are. The ledger keeps
/// `genesis + minted = balances + bonded + unbonding + unclaimed_rewards + burned`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Supply {
    /// Sum of the genesis balances.
    pub genesis: u128,
    /// Minted by block rewards since genesis.
    pub minted: u128,
    /// In accounts.
    pub balances: u128,
    /// Bonded to validators.
    pub bonded: u128,
    /// In pending unbonding entries.
    pub unbonding: u128,
    /// Credited to delegators and not yet withdrawn, community pool included.
    pub unclaimed_rewards: u128,
    /// Of `unclaimed_rewards`, what no one can claim (rounding remainders).
    pub community_pool: u128,
    /// Burnt by slashing.
    pub burned: u128,
}

impl Supply {
    /// Whether the accounting identity holds.
    pub fn balances_out(&self) -> bool {
        let left = self.genesis.checked_add(self.minted);
        let right = self
            .balances
            .checked_add(self.bonded)
            .and_then(|t| t.checked_add(self.unbonding))
            .and_then(|t| t.checked_add(self.unclaimed_rewards))
            .and_then(|t| t.checked_add(self.burned));
        left.is_some() && left == right
    }
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
    /// Tokens minted as block rewards so far.
    pub minted_total: u128,
    /// Rewards nobody could receive: rounding remainders of the pro-rata
    /// split and pools without a recipient. Counted as unclaimed rewards.
    pub community_pool: u128,
    /// Accounts by address.
    pub accounts: TrackedMap<Address, Account>,
    /// Validators by consensus address (never removed, so old sets stay resolvable).
    pub validators: TrackedMap<Address, ValidatorRecord>,
    /// Delegations by (delegator, validator).
    pub delegations: TrackedMap<(Address, Address), Delegation>,
    /// Pending unbonding entries.
    pub unbonding: TrackedMap<UnbondingKey, UnbondingEntry>,
    /// Id of the next unbonding entry.
    pub next_unbonding_id: u64,
    /// Every slash so far, in order (`id` is the index).
    pub slash_events: Vec<SlashEvent>,
    /// Validator sets by the height they are in effect at: the evidence
    /// window behind, the current height and the two ahead.
    pub validator_sets: TrackedMap<Height, ValidatorSet>,
    /// Derived index of `unbonding` by completion height (not encoded).
    pub maturity: BTreeSet<(Height, UnbondingKey)>,
    /// Pending redelegation entries.
    pub redelegations: TrackedMap<RedelegationKey, RedelegationEntry>,
    /// Id of the next redelegation entry.
    pub next_redelegation_id: u64,
    /// Derived index of `redelegations` by completion height (not encoded).
    pub redelegation_maturity: BTreeSet<(Height, RedelegationKey)>,
    /// Missed-precommit windows of validators that have been in a set.
    pub signing: TrackedMap<Address, SigningInfo>,
}

impl State {
    /// The account of an address (empty if it has none).
    pub fn account(&self, a: &Address) -> Account {
        self.accounts.get(a).copied().unwrap_or_default()
    }

    /// Where every token is (`None` only if a sum overflowed, which the
    /// supply bound of genesis and of `block_reward` rules out).
    pub fn supply(&self) -> Option<Supply> {
        let mut s = Supply {
            genesis: self.genesis_supply,
            minted: self.minted_total,
            burned: self.slashed_total,
            unclaimed_rewards: self.community_pool,
            community_pool: self.community_pool,
            ..Supply::default()
        };
        for a in self.accounts.values() {
            s.balances = s.balances.checked_add(a.balance)?;
        }
        for v in self.validators.values() {
            s.bonded = s.bonded.checked_add(v.tokens)?;
            s.unclaimed_rewards = s.unclaimed_rewards.checked_add(v.outstanding_rewards)?;
        }
        for e in self.unbonding.values() {
            s.unbonding = s.unbonding.checked_add(e.balance)?;
        }
        Some(s)
    }

    /// Sum of every account balance, bonded token, unbonding balance and
    /// unclaimed reward: the tokens in existence.
    pub fn total_supply(&self) -> Option<u128> {
        let s = self.supply()?;
        s.balances
            .checked_add(s.bonded)?
            .checked_add(s.unbonding)?
            .checked_add(s.unclaimed_rewards)
    }

    /// Shares a delegator holds with a validator (0 if none).
    pub fn shares_of(&self, delegator: Address, validator: Address) -> u128 {
        self.delegations
            .get(&(delegator, validator))
            .map_or(0, |d| d.shares)
    }

    /// Pending redelegation entries of one (delegator, source, destination).
    pub fn redelegations_of(
        &self,
        delegator: Address,
        src: Address,
        dst: Address,
    ) -> impl Iterator<Item = &RedelegationEntry> {
        self.redelegations
            .range((delegator, src, dst, 0)..=(delegator, src, dst, u64::MAX))
            .map(|(_, e)| e)
    }

    /// Whether some of the delegator's stake with `validator` arrived by a
    /// redelegation that has not completed (such stake may not move on).
    pub fn is_redelegating_into(&self, delegator: Address, validator: Address) -> bool {
        self.redelegations
            .range((delegator, Address([0; 20]), Address([0; 20]), 0)..)
            .take_while(|(k, _)| k.0 == delegator)
            .any(|(_, e)| e.dst == validator)
    }

    /// Adds a redelegation entry and indexes it.
    pub fn insert_redelegation(&mut self, e: RedelegationEntry) {
        let key = (e.delegator, e.src, e.dst, e.id);
        self.redelegation_maturity
            .insert((e.completion_height, key));
        self.redelegations.insert(key, e);
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

    /// Rebuilds the derived maturity indexes from the entries.
    pub fn rebuild_maturity(&mut self) {
        self.maturity = self
            .unbonding
            .iter()
            .map(|(k, e)| (e.completion_height, *k))
            .collect();
        self.redelegation_maturity = self
            .redelegations
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
