//! The state back from its leaves ([`super::leaves`]): what a node
//! restores from its stored `state_leaves` table.
//!
//! Strict, like [`super::super::snapshot::decode`]: an unknown kind byte, a
//! key of the wrong length, a repeated key, a value that does not decode or
//! holds an impossible field is an error, never a panic. Each value must be
//! the canonical encoding of what it decodes to (the leaves of the rebuilt
//! state are compared with the input, byte for byte), so one state has one
//! set of leaves and the app hash of a restored ledger is the one its
//! leaves were stored under. The invariants tying the collections together
//! are [`super::super::invariants::check`], shared with the snapshot.

use super::super::amount::parse_amount;
use super::super::invariants::{self, InvariantError};
use super::super::params::Params;
use super::super::state::{
    Account, Commission, Delegation, JailReason, RedelegationEntry, SigningInfo, SlashEvent,
    SlashReason, State, UnbondingEntry, ValidatorRecord,
};
use super::leaves::{self, LeafKind};
use crate::crypto::PublicKey;
use crate::types::{Address, ChainId, Height};
use crate::validator_set::{Validator, ValidatorSet};
use agora_proto::v1 as pb;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};

/// Why a set of leaves is not a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    /// The key starts with no known kind byte (or is empty).
    #[error("leaf {key}: unknown kind")]
    UnknownKind {
        /// The key, hex.
        key: String,
    },
    /// The key's length is not its kind's.
    #[error("leaf {key}: a {kind:?} key is {expected} bytes, this one {len}")]
    KeyLength {
        /// The key, hex.
        key: String,
        /// Its kind.
        kind: LeafKind,
        /// Its length.
        len: usize,
        /// The kind's key length.
        expected: usize,
    },
    /// The same key twice.
    #[error("leaf {key}: given twice")]
    Duplicate {
        /// The key, hex.
        key: String,
    },
    /// The value does not decode, or holds an impossible field.
    #[error("leaf {key}: {reason}")]
    Value {
        /// The key, hex.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The value decodes but is not the canonical encoding of what it holds.
    #[error("leaf {key}: not the canonical encoding of its value")]
    NotCanonical {
        /// The key, hex.
        key: String,
    },
    /// There is no globals leaf (no chain id, parameters or height).
    #[error("no globals leaf")]
    NoGlobals,
    /// The slash events are not numbered 0, 1, 2, …
    #[error("slash event {0} is missing")]
    SlashEventGap(u64),
    /// The leaves decode but their parts disagree.
    #[error("the leaves are not a consistent state: {0}")]
    Inconsistent(#[from] InvariantError),
}

impl LeafKind {
    /// The kind a key byte names.
    pub fn from_byte(b: u8) -> Option<Self> {
        use LeafKind::*;
        [
            Globals,
            Account,
            Validator,
            Delegation,
            Unbonding,
            Redelegation,
            SlashEvent,
            ValidatorSet,
            SigningInfo,
        ]
        .into_iter()
        .find(|k| *k as u8 == b)
    }

    /// The length of this kind's keys, the kind byte included.
    pub fn key_len(self) -> usize {
        use LeafKind::*;
        1 + match self {
            Globals => 0,
            Account | Validator | SigningInfo => 20,
            Delegation => 40,
            Unbonding => 48,
            Redelegation => 68,
            SlashEvent | ValidatorSet => 8,
        }
    }
}

/// The parts of a state, filled leaf by leaf.
#[derive(Default)]
struct Parts {
    globals: Option<pb::StateGlobals>,
    accounts: BTreeMap<Address, Account>,
    validators: BTreeMap<Address, ValidatorRecord>,
    delegations: BTreeMap<(Address, Address), Delegation>,
    unbonding: BTreeMap<(Address, Address, u64), UnbondingEntry>,
    redelegations: BTreeMap<(Address, Address, Address, u64), RedelegationEntry>,
    slash_events: BTreeMap<u64, SlashEvent>,
    validator_sets: BTreeMap<Height, ValidatorSet>,
    signing: BTreeMap<Address, SigningInfo>,
}

/// Rebuilds and checks the state the leaves describe.
pub(crate) fn state<K, V>(input: impl IntoIterator<Item = (K, V)>) -> Result<State, LeafError>
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut given: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut parts = Parts::default();
    for (k, v) in input {
        let (k, v) = (k.as_ref(), v.as_ref());
        if given.contains_key(k) {
            return Err(LeafError::Duplicate {
                key: hex::encode(k),
            });
        }
        parts.add(k, v).map_err(|reason| value_error(k, reason))?;
        given.insert(k.to_vec(), v.to_vec());
    }
    let mut state = parts.into_state()?;
    state.rebuild_maturity();
    invariants::check(&state)?;
    // Canonical: the rebuilt state's leaves are exactly the input.
    let rebuilt: BTreeMap<Vec<u8>, Vec<u8>> = leaves::all(&state).into_iter().collect();
    if let Some(k) = first_difference(&given, &rebuilt) {
        return Err(LeafError::NotCanonical {
            key: hex::encode(k),
        });
    }
    Ok(state)
}

fn first_difference<'a>(
    a: &'a BTreeMap<Vec<u8>, Vec<u8>>,
    b: &'a BTreeMap<Vec<u8>, Vec<u8>>,
) -> Option<&'a [u8]> {
    let key_set: BTreeSet<&Vec<u8>> = a.keys().chain(b.keys()).collect();
    key_set
        .into_iter()
        .find(|k| a.get(*k) != b.get(*k))
        .map(Vec::as_slice)
}

/// A key or value error, with the key in hex (kind and length errors are
/// already typed; the rest are value errors).
pub(super) enum AddError {
    Kind,
    Length(LeafKind, usize),
    Value(String),
}

impl From<String> for AddError {
    fn from(s: String) -> Self {
        Self::Value(s)
    }
}

pub(super) fn value_error(k: &[u8], e: AddError) -> LeafError {
    let key = hex::encode(k);
    match e {
        AddError::Kind => LeafError::UnknownKind { key },
        AddError::Length(kind, expected) => LeafError::KeyLength {
            key,
            kind,
            len: k.len(),
            expected,
        },
        AddError::Value(reason) => LeafError::Value { key, reason },
    }
}

pub(super) fn addr(b: &[u8]) -> Address {
    let mut a = [0u8; 20];
    a.copy_from_slice(&b[..20]);
    Address(a)
}

pub(super) fn u64_at(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

pub(super) fn amount(field: &str, s: &str) -> Result<u128, String> {
    parse_amount(s).map_err(|e| format!("{field}: {e}"))
}

fn decode<M: Message + Default>(v: &[u8]) -> Result<M, String> {
    M::decode(v).map_err(|e| format!("value does not decode: {e}"))
}

/// One leaf, decoded.
pub(super) enum Leaf {
    Globals(pb::StateGlobals),
    Account(Address, Account),
    Validator(ValidatorRecord),
    Delegation((Address, Address), Delegation),
    Unbonding(UnbondingEntry),
    Redelegation(RedelegationEntry),
    SlashEvent(SlashEvent),
    ValidatorSet(Height, ValidatorSet),
    SigningInfo(Address, SigningInfo),
}

/// A key's kind and fields, its length checked before any field is read.
pub(super) fn parse_key(k: &[u8]) -> Result<(LeafKind, &[u8]), AddError> {
    let kind = k
        .first()
        .and_then(|b| LeafKind::from_byte(*b))
        .ok_or(AddError::Kind)?;
    if k.len() != kind.key_len() {
        return Err(AddError::Length(kind, kind.key_len()));
    }
    Ok((kind, &k[1..]))
}

/// Decodes one leaf, checking every BLS key it holds.
pub(super) fn parse(k: &[u8], v: &[u8]) -> Result<Leaf, AddError> {
    parse_with(k, v, &|_| None)
}

/// A key already checked, found by its 48 bytes (None: decode and check).
pub(super) type KnownKey<'a> = &'a dyn Fn(&[u8]) -> Option<PublicKey>;

/// Decodes one leaf; a BLS key `known` returns is taken as it is instead
/// of being decoded and subgroup-checked again.
pub(super) fn parse_with(k: &[u8], v: &[u8], known: KnownKey<'_>) -> Result<Leaf, AddError> {
    let (kind, f) = parse_key(k)?;
    Ok(match kind {
        LeafKind::Globals => Leaf::Globals(decode(v)?),
        LeafKind::Account => {
            let a: pb::AccountLeaf = decode(v)?;
            let balance = amount("balance", &a.balance)?;
            Leaf::Account(
                addr(f),
                Account {
                    balance,
                    nonce: a.nonce,
                },
            )
        }
        LeafKind::Validator => Leaf::Validator(validator(addr(f), decode(v)?, known)?),
        LeafKind::Delegation => {
            let d: pb::DelegationLeaf = decode(v)?;
            let del = Delegation {
                shares: amount("shares", &d.shares)?,
                reward_entry: amount("reward_entry", &d.reward_entry)?,
            };
            Leaf::Delegation((addr(f), addr(&f[20..])), del)
        }
        LeafKind::Unbonding => Leaf::Unbonding(unbonding(
            addr(f),
            addr(&f[20..]),
            u64_at(&f[40..]),
            decode(v)?,
        )?),
        LeafKind::Redelegation => {
            let (d, s, t) = (addr(f), addr(&f[20..]), addr(&f[40..]));
            Leaf::Redelegation(redelegation(d, s, t, u64_at(&f[60..]), decode(v)?)?)
        }
        LeafKind::SlashEvent => Leaf::SlashEvent(slash_event(u64_at(f), decode(v)?)?),
        LeafKind::ValidatorSet => Leaf::ValidatorSet(u64_at(f), validator_set(decode(v)?, known)?),
        LeafKind::SigningInfo => {
            let i: pb::SigningInfoLeaf = decode(v)?;
            let info = SigningInfo {
                counted: i.counted,
                missed: i.missed,
                bits: i.bits,
            };
            Leaf::SigningInfo(addr(f), info)
        }
    })
}

impl Parts {
    /// Files one leaf.
    fn add(&mut self, k: &[u8], v: &[u8]) -> Result<(), AddError> {
        match parse(k, v)? {
            Leaf::Globals(g) => self.globals = Some(g),
            Leaf::Account(a, acct) => {
                self.accounts.insert(a, acct);
            }
            Leaf::Validator(r) => {
                self.validators.insert(r.address, r);
            }
            Leaf::Delegation(k, d) => {
                self.delegations.insert(k, d);
            }
            Leaf::Unbonding(e) => {
                self.unbonding.insert((e.delegator, e.validator, e.id), e);
            }
            Leaf::Redelegation(e) => {
                self.redelegations
                    .insert((e.delegator, e.src, e.dst, e.id), e);
            }
            Leaf::SlashEvent(e) => {
                self.slash_events.insert(e.id, e);
            }
            Leaf::ValidatorSet(h, set) => {
                self.validator_sets.insert(h, set);
            }
            Leaf::SigningInfo(a, i) => {
                self.signing.insert(a, i);
            }
        }
        Ok(())
    }

    fn into_state(self) -> Result<State, LeafError> {
        let g = self.globals.ok_or(LeafError::NoGlobals)?;
        let bad = |reason: String| LeafError::Value {
            key: hex::encode(leaves::globals_key()),
            reason,
        };
        let chain_id = ChainId::new(g.chain_id).map_err(|e| bad(format!("chain id: {e}")))?;
        let params =
            params(g.params.as_ref().ok_or_else(|| bad("no params".into()))?).map_err(bad)?;
        let mut slash_events = Vec::with_capacity(self.slash_events.len());
        for (i, (id, e)) in self.slash_events.into_iter().enumerate() {
            if id != i as u64 {
                return Err(LeafError::SlashEventGap(i as u64));
            }
            slash_events.push(e);
        }
        Ok(State {
            chain_id,
            params,
            height: g.height,
            genesis_supply: amount("genesis_supply", &g.genesis_supply).map_err(bad)?,
            slashed_total: amount("slashed_total", &g.slashed_total).map_err(bad)?,
            minted_total: amount("minted_total", &g.minted_total).map_err(bad)?,
            community_pool: amount("community_pool", &g.community_pool).map_err(bad)?,
            accounts: self.accounts.into(),
            validators: self.validators.into(),
            delegations: self.delegations.into(),
            unbonding: self.unbonding.into(),
            next_unbonding_id: g.next_unbonding_id,
            slash_events,
            validator_sets: self.validator_sets.into(),
            maturity: BTreeSet::new(),
            redelegations: self.redelegations.into(),
            next_redelegation_id: g.next_redelegation_id,
            redelegation_maturity: BTreeSet::new(),
            signing: self.signing.into(),
        })
    }
}

/// The parameters exactly as stored: unlike a genesis file's, no field
/// falls back to a default.
fn params(p: &pb::GenesisParams) -> Result<Params, String> {
    let params = Params {
        power_reduction: amount("power_reduction", &p.power_reduction)?,
        unbonding_period: p.unbonding_period,
        max_validators: p.max_validators,
        min_self_bond: amount("min_self_bond", &p.min_self_bond)?,
        slash_fraction_double_sign_bps: p.slash_fraction_double_sign_bps,
        max_unbonding_entries: p.max_unbonding_entries,
        jail_period: p.jail_period,
        min_fee: amount("min_fee", &p.min_fee)?,
        block_reward: amount("block_reward", &p.block_reward)?,
        proposer_bonus_bps: p.proposer_bonus_bps,
        commission_epoch: p.commission_epoch,
        signed_blocks_window: p.signed_blocks_window,
        min_signed_per_window_bps: p.min_signed_per_window_bps,
        downtime_jail_heights: p.downtime_jail_heights,
        slash_fraction_downtime_bps: p.slash_fraction_downtime_bps,
        max_redelegation_entries: p.max_redelegation_entries,
    };
    params.validate().map_err(|e| format!("params: {e}"))?;
    Ok(params)
}

/// `bytes` as a checked key: the one `known` holds, or decoded and checked.
fn key(bytes: &[u8], known: KnownKey<'_>) -> Result<PublicKey, String> {
    match known(bytes) {
        Some(k) => Ok(k),
        None => PublicKey::from_bytes(bytes).map_err(|e| e.to_string()),
    }
}

fn validator(
    address: Address,
    v: pb::ValidatorLeaf,
    known: KnownKey<'_>,
) -> Result<ValidatorRecord, String> {
    let jail_reason = u8::try_from(v.jail_reason)
        .ok()
        .and_then(JailReason::from_code)
        .ok_or("unknown jail reason")?;
    Ok(ValidatorRecord {
        address,
        operator: Address::from_slice(&v.operator).map_err(|e| format!("operator: {e}"))?,
        public_key: key(&v.public_key, known).map_err(|e| format!("public key: {e}"))?,
        tokens: amount("tokens", &v.tokens)?,
        shares: amount("shares", &v.shares)?,
        jailed: v.jailed,
        jailed_until: v.jailed_until,
        tombstoned: v.tombstoned,
        jail_reason,
        commission: Commission {
            rate_bps: v.commission_rate_bps,
            max_rate_bps: v.commission_max_rate_bps,
            max_change_bps: v.commission_max_change_bps,
            changed_at: v.commission_changed_at,
        },
        reward_per_share: amount("reward_per_share", &v.reward_per_share)?,
        outstanding_rewards: amount("outstanding_rewards", &v.outstanding_rewards)?,
    })
}

fn unbonding(
    delegator: Address,
    validator: Address,
    id: u64,
    e: pb::UnbondingLeaf,
) -> Result<UnbondingEntry, String> {
    Ok(UnbondingEntry {
        delegator,
        validator,
        id,
        creation_height: e.creation_height,
        completion_height: e.completion_height,
        initial_balance: amount("initial_balance", &e.initial_balance)?,
        balance: amount("balance", &e.balance)?,
    })
}

fn redelegation(
    delegator: Address,
    src: Address,
    dst: Address,
    id: u64,
    e: pb::RedelegationLeaf,
) -> Result<RedelegationEntry, String> {
    Ok(RedelegationEntry {
        delegator,
        src,
        dst,
        id,
        creation_height: e.creation_height,
        completion_height: e.completion_height,
        initial_balance: amount("initial_balance", &e.initial_balance)?,
        shares_dst: amount("shares_dst", &e.shares_dst)?,
    })
}

fn slash_event(id: u64, e: pb::SlashEventLeaf) -> Result<SlashEvent, String> {
    Ok(SlashEvent {
        id,
        validator: Address::from_slice(&e.validator).map_err(|e| format!("validator: {e}"))?,
        infraction_height: e.infraction_height,
        slash_height: e.slash_height,
        amount: amount("amount", &e.amount)?,
        from_bonded: amount("from_bonded", &e.from_bonded)?,
        from_unbonding: amount("from_unbonding", &e.from_unbonding)?,
        from_redelegations: amount("from_redelegations", &e.from_redelegations)?,
        fraction_bps: e.fraction_bps,
        evidence_hash: e
            .evidence_hash
            .as_slice()
            .try_into()
            .map_err(|_| "evidence hash is not 32 bytes")?,
        tombstoned: e.tombstoned,
        reason: match e.reason {
            0 => SlashReason::DoubleSign,
            1 => SlashReason::Downtime,
            r => return Err(format!("unknown slash reason {r}")),
        },
    })
}

fn validator_set(s: pb::ValidatorSetLeaf, known: KnownKey<'_>) -> Result<ValidatorSet, String> {
    let members = s
        .validators
        .iter()
        .map(|m| {
            key(&m.public_key, known)
                .map(|k| Validator::new(k, m.power))
                .map_err(|e| format!("member key: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    ValidatorSet::new(members).map_err(|e| format!("validator set: {e}"))
}
