//! The canonical byte encoding of the whole state, for tests, fuzzing and
//! [`super::Ledger::state_digest`]. The node does not store it and the app
//! hash is not taken over it: both use the state's tree leaves
//! ([`super::merkle`]), so a block costs what it changed.
//!
//! Fixed-width big-endian fields, collections as a u32 count then their
//! entries in ascending key order. Decoding is strict: every count is bounded
//! by the bytes left, keys must be strictly ascending (one state, one
//! encoding), keys and signatures are strictly decoded, and the invariants
//! that tie the collections together are re-checked
//! ([`super::invariants::check`], shared with restoring from leaves), so
//! malformed or tampered bytes are rejected without a panic.

use super::params::Params;
use super::state::{
    Account, Commission, Delegation, JailReason, RedelegationEntry, SigningInfo, SlashEvent,
    SlashReason, State, UnbondingEntry, ValidatorRecord,
};
use crate::crypto::{Hash, PublicKey};
use crate::types::{Address, ChainId, Height};
use crate::validator_set::{Validator, ValidatorSet};
use std::collections::{BTreeMap, BTreeSet};

/// Leading bytes of every snapshot; changes when the format does.
pub const MAGIC: &[u8] = b"agora/ledger/v2";

/// Why snapshot bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes end early.
    #[error("snapshot truncated while reading {0}")]
    Truncated(&'static str),
    /// Bytes follow the state.
    #[error("snapshot has {0} trailing bytes")]
    Trailing(usize),
    /// The magic/version does not match.
    #[error("not a ledger snapshot of this version")]
    BadMagic,
    /// A field holds an impossible value, or the parts disagree.
    #[error("invalid snapshot: {0}")]
    Invalid(String),
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    fn count(&mut self, n: usize) {
        // Collections are bounded far below 2^32 by the bytes they take.
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn addr(&mut self, a: &Address) {
        self.bytes(&a.0);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SnapshotError> {
        if self.buf.len() < n {
            return Err(SnapshotError::Truncated(what));
        }
        let (h, t) = self.buf.split_at(n);
        self.buf = t;
        Ok(h)
    }
    fn arr<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], SnapshotError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, SnapshotError> {
        Ok(self.arr::<1>(what)?[0])
    }
    fn bool(&mut self, what: &'static str) -> Result<bool, SnapshotError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(SnapshotError::Invalid(format!("{what} is not 0 or 1"))),
        }
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(self.arr(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, SnapshotError> {
        Ok(u64::from_be_bytes(self.arr(what)?))
    }
    fn u128(&mut self, what: &'static str) -> Result<u128, SnapshotError> {
        Ok(u128::from_be_bytes(self.arr(what)?))
    }
    fn addr(&mut self, what: &'static str) -> Result<Address, SnapshotError> {
        Ok(Address(self.arr(what)?))
    }
    /// A count of items each at least `min_size` bytes long, bounded by what is left.
    fn count(&mut self, min_size: usize, what: &'static str) -> Result<usize, SnapshotError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_size) > self.buf.len() {
            return Err(SnapshotError::Truncated(what));
        }
        Ok(n)
    }
}

fn invalid(s: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid(s.into())
}

/// Encodes the state canonically.
pub fn encode(s: &State) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(
        256 + s.accounts.len() * 44 + s.validators.len() * 140 + s.delegations.len() * 56,
    ));
    w.bytes(MAGIC);
    let chain = s.chain_id.as_str().as_bytes();
    w.u8(chain.len() as u8);
    w.bytes(chain);
    write_params(&mut w, &s.params);
    w.u64(s.height);
    w.u128(s.genesis_supply);
    w.u128(s.slashed_total);
    w.u128(s.minted_total);
    w.u128(s.community_pool);
    w.u64(s.next_unbonding_id);
    w.u64(s.next_redelegation_id);

    w.count(s.accounts.len());
    for (a, acct) in &s.accounts {
        w.addr(a);
        w.u128(acct.balance);
        w.u64(acct.nonce);
    }
    w.count(s.validators.len());
    for v in s.validators.values() {
        write_validator(&mut w, v);
    }
    w.count(s.delegations.len());
    for ((d, v), del) in &s.delegations {
        w.addr(d);
        w.addr(v);
        w.u128(del.shares);
        w.u128(del.reward_entry);
    }
    write_entries(&mut w, s);
    w.count(s.signing.len());
    for (a, info) in &s.signing {
        w.addr(a);
        w.u64(info.counted);
        w.u64(info.missed);
        w.bytes(&info.bits);
    }
    w.count(s.slash_events.len());
    for ev in &s.slash_events {
        write_slash_event(&mut w, ev);
    }
    w.count(s.validator_sets.len());
    for (h, set) in &s.validator_sets {
        w.u64(*h);
        w.count(set.len());
        for v in set.validators() {
            // Keys are resolved through the validator records on decode.
            w.addr(&v.address);
            w.u64(v.power);
        }
    }
    w.0
}

fn write_params(w: &mut Writer, p: &Params) {
    w.u128(p.power_reduction);
    w.u64(p.unbonding_period);
    w.u32(p.max_validators);
    w.u128(p.min_self_bond);
    w.u32(p.slash_fraction_double_sign_bps);
    w.u32(p.max_unbonding_entries);
    w.u64(p.jail_period);
    w.u128(p.min_fee);
    w.u128(p.block_reward);
    w.u32(p.proposer_bonus_bps);
    w.u64(p.commission_epoch);
    w.u64(p.signed_blocks_window);
    w.u32(p.min_signed_per_window_bps);
    w.u64(p.downtime_jail_heights);
    w.u32(p.slash_fraction_downtime_bps);
    w.u32(p.max_redelegation_entries);
}

fn write_validator(w: &mut Writer, v: &ValidatorRecord) {
    w.addr(&v.address);
    w.addr(&v.operator);
    w.bytes(&v.public_key.to_bytes());
    w.u128(v.tokens);
    w.u128(v.shares);
    w.u8(u8::from(v.jailed));
    w.u64(v.jailed_until);
    w.u8(u8::from(v.tombstoned));
    w.u8(v.jail_reason.code());
    w.u32(v.commission.rate_bps);
    w.u32(v.commission.max_rate_bps);
    w.u32(v.commission.max_change_bps);
    w.u64(v.commission.changed_at);
    w.u128(v.reward_per_share);
    w.u128(v.outstanding_rewards);
}

/// The unbonding, then the redelegation entries.
fn write_entries(w: &mut Writer, s: &State) {
    w.count(s.unbonding.len());
    for e in s.unbonding.values() {
        w.addr(&e.delegator);
        w.addr(&e.validator);
        w.u64(e.id);
        w.u64(e.creation_height);
        w.u64(e.completion_height);
        w.u128(e.initial_balance);
        w.u128(e.balance);
    }
    w.count(s.redelegations.len());
    for e in s.redelegations.values() {
        w.addr(&e.delegator);
        w.addr(&e.src);
        w.addr(&e.dst);
        w.u64(e.id);
        w.u64(e.creation_height);
        w.u64(e.completion_height);
        w.u128(e.initial_balance);
        w.u128(e.shares_dst);
    }
}

fn write_slash_event(w: &mut Writer, ev: &SlashEvent) {
    w.addr(&ev.validator);
    w.u64(ev.infraction_height);
    w.u64(ev.slash_height);
    w.u128(ev.from_bonded);
    w.u128(ev.from_unbonding);
    w.u128(ev.from_redelegations);
    w.u32(ev.fraction_bps);
    w.bytes(&ev.evidence_hash);
    w.u8(u8::from(ev.tombstoned));
    w.u8(match ev.reason {
        SlashReason::DoubleSign => 0,
        SlashReason::Downtime => 1,
    });
}

/// Decodes and validates a snapshot.
pub fn decode(bytes: &[u8]) -> Result<State, SnapshotError> {
    let mut r = Reader { buf: bytes };
    if r.take(MAGIC.len(), "magic")? != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let n = r.u8("chain id length")? as usize;
    let chain = std::str::from_utf8(r.take(n, "chain id")?).map_err(|_| invalid("chain id"))?;
    let chain_id = ChainId::new(chain).map_err(|e| invalid(e.to_string()))?;
    let params = read_params(&mut r)?;
    let height = r.u64("height")?;
    let genesis_supply = r.u128("genesis supply")?;
    let slashed_total = r.u128("slashed total")?;
    let minted_total = r.u128("minted total")?;
    let community_pool = r.u128("community pool")?;
    let next_unbonding_id = r.u64("next unbonding id")?;
    let next_redelegation_id = r.u64("next redelegation id")?;
    let accounts = r.sorted(44, "accounts", "accounts out of order", read_account)?;
    let validators = r.sorted(183, "validators", "validators out of order", read_validator)?;
    let delegations = r.sorted(
        72,
        "delegations",
        "delegations out of order",
        read_delegation,
    )?;
    let unbonding = r.sorted(
        96,
        "unbonding",
        "unbonding entries out of order",
        read_unbonding,
    )?;
    let redelegations = r.sorted(
        116,
        "redelegations",
        "redelegation entries out of order",
        read_redelegation,
    )?;
    let signing = read_signing_windows(&mut r, params.signed_blocks_window)?;
    let slash_events = read_slash_events(&mut r)?;
    let validator_sets = r.sorted(12, "validator sets", "validator sets out of order", |r| {
        read_validator_set(r, &validators)
    })?;
    if !r.buf.is_empty() {
        return Err(SnapshotError::Trailing(r.buf.len()));
    }
    let mut state = State {
        chain_id,
        params,
        height,
        genesis_supply,
        slashed_total,
        minted_total,
        community_pool,
        accounts: accounts.into(),
        validators: validators.into(),
        delegations: delegations.into(),
        unbonding: unbonding.into(),
        next_unbonding_id,
        slash_events,
        validator_sets: validator_sets.into(),
        maturity: BTreeSet::new(),
        redelegations: redelegations.into(),
        next_redelegation_id,
        redelegation_maturity: BTreeSet::new(),
        signing: signing.into(),
    };
    state.rebuild_maturity();
    // What ties the collections together: shared with restoring from leaves.
    super::invariants::check(&state).map_err(|e| invalid(e.0))?;
    Ok(state)
}

impl Reader<'_> {
    /// A counted run of records (each at least `min_size` bytes) whose keys
    /// strictly ascend: one state, one encoding.
    fn sorted<K: Ord, V>(
        &mut self,
        min_size: usize,
        what: &'static str,
        out_of_order: &'static str,
        mut read: impl FnMut(&mut Self) -> Result<(K, V), SnapshotError>,
    ) -> Result<BTreeMap<K, V>, SnapshotError> {
        let mut map = BTreeMap::new();
        for _ in 0..self.count(min_size, what)? {
            let (k, v) = read(self)?;
            if map.last_key_value().is_some_and(|(last, _)| *last >= k) {
                return Err(invalid(out_of_order));
            }
            map.insert(k, v);
        }
        Ok(map)
    }
}

fn read_params(r: &mut Reader) -> Result<Params, SnapshotError> {
    Ok(Params {
        power_reduction: r.u128("params")?,
        unbonding_period: r.u64("params")?,
        max_validators: r.u32("params")?,
        min_self_bond: r.u128("params")?,
        slash_fraction_double_sign_bps: r.u32("params")?,
        max_unbonding_entries: r.u32("params")?,
        jail_period: r.u64("params")?,
        min_fee: r.u128("params")?,
        block_reward: r.u128("params")?,
        proposer_bonus_bps: r.u32("params")?,
        commission_epoch: r.u64("params")?,
        signed_blocks_window: r.u64("params")?,
        min_signed_per_window_bps: r.u32("params")?,
        downtime_jail_heights: r.u64("params")?,
        slash_fraction_downtime_bps: r.u32("params")?,
        max_redelegation_entries: r.u32("params")?,
    })
}

/// One account record: address, balance, nonce (44 bytes).
fn read_account(r: &mut Reader) -> Result<(Address, Account), SnapshotError> {
    let a = r.addr("account")?;
    let balance = r.u128("account")?;
    let nonce = r.u64("account")?;
    Ok((a, Account { balance, nonce }))
}

/// One delegation record: delegator, validator, shares, reward entry (72 bytes).
fn read_delegation(r: &mut Reader) -> Result<((Address, Address), Delegation), SnapshotError> {
    let k = (r.addr("delegation")?, r.addr("delegation")?);
    let shares = r.u128("delegation")?;
    let reward_entry = r.u128("delegation")?;
    Ok((
        k,
        Delegation {
            shares,
            reward_entry,
        },
    ))
}

fn read_validator(r: &mut Reader) -> Result<(Address, ValidatorRecord), SnapshotError> {
    let address = r.addr("validator")?;
    let operator = r.addr("validator")?;
    let public_key = PublicKey::from_bytes(r.take(48, "validator key")?)
        .map_err(|e| invalid(format!("validator key: {e}")))?;
    let v = ValidatorRecord {
        address,
        operator,
        public_key,
        tokens: r.u128("validator")?,
        shares: r.u128("validator")?,
        jailed: r.bool("jailed")?,
        jailed_until: r.u64("validator")?,
        tombstoned: r.bool("tombstoned")?,
        jail_reason: JailReason::from_code(r.u8("jail reason")?)
            .ok_or_else(|| invalid("unknown jail reason"))?,
        commission: Commission {
            rate_bps: r.u32("commission")?,
            max_rate_bps: r.u32("commission")?,
            max_change_bps: r.u32("commission")?,
            changed_at: r.u64("commission")?,
        },
        reward_per_share: r.u128("validator")?,
        outstanding_rewards: r.u128("validator")?,
    };
    Ok((address, v))
}

fn read_unbonding(
    r: &mut Reader,
) -> Result<((Address, Address, u64), UnbondingEntry), SnapshotError> {
    let e = UnbondingEntry {
        delegator: r.addr("unbonding")?,
        validator: r.addr("unbonding")?,
        id: r.u64("unbonding")?,
        creation_height: r.u64("unbonding")?,
        completion_height: r.u64("unbonding")?,
        initial_balance: r.u128("unbonding")?,
        balance: r.u128("unbonding")?,
    };
    Ok(((e.delegator, e.validator, e.id), e))
}

type RedelegationKey = (Address, Address, Address, u64);

fn read_redelegation(
    r: &mut Reader,
) -> Result<(RedelegationKey, RedelegationEntry), SnapshotError> {
    let e = RedelegationEntry {
        delegator: r.addr("redelegation")?,
        src: r.addr("redelegation")?,
        dst: r.addr("redelegation")?,
        id: r.u64("redelegation")?,
        creation_height: r.u64("redelegation")?,
        completion_height: r.u64("redelegation")?,
        initial_balance: r.u128("redelegation")?,
        shares_dst: r.u128("redelegation")?,
    };
    Ok(((e.delegator, e.src, e.dst, e.id), e))
}

fn read_signing_windows(
    r: &mut Reader,
    window: u64,
) -> Result<BTreeMap<Address, SigningInfo>, SnapshotError> {
    let bit_bytes = usize::try_from(window.div_ceil(8)).map_err(|_| invalid("window"))?;
    r.sorted(
        36 + bit_bytes,
        "signing windows",
        "signing windows out of order",
        |r| {
            let a = r.addr("signing window")?;
            let info = SigningInfo {
                counted: r.u64("signing window")?,
                missed: r.u64("signing window")?,
                bits: r.take(bit_bytes, "signing window")?.to_vec(),
            };
            Ok((a, info))
        },
    )
}

fn read_slash_events(r: &mut Reader) -> Result<Vec<SlashEvent>, SnapshotError> {
    let n = r.count(122, "slash events")?;
    let mut slash_events = Vec::with_capacity(n);
    for id in 0..n {
        let validator = r.addr("slash event")?;
        let infraction_height = r.u64("slash event")?;
        let slash_height = r.u64("slash event")?;
        let from_bonded = r.u128("slash event")?;
        let from_unbonding = r.u128("slash event")?;
        let from_redelegations = r.u128("slash event")?;
        let fraction_bps = r.u32("slash event")?;
        let evidence_hash: Hash = r.arr("slash event")?;
        let tombstoned = r.bool("slash event")?;
        let reason = match r.u8("slash event")? {
            0 => SlashReason::DoubleSign,
            1 => SlashReason::Downtime,
            _ => return Err(invalid("unknown slash reason")),
        };
        let amount = from_bonded
            .checked_add(from_unbonding)
            .and_then(|a| a.checked_add(from_redelegations))
            .ok_or_else(|| invalid("slash amount overflow"))?;
        slash_events.push(SlashEvent {
            id: id as u64,
            validator,
            infraction_height,
            slash_height,
            amount,
            from_bonded,
            from_unbonding,
            from_redelegations,
            fraction_bps,
            evidence_hash,
            tombstoned,
            reason,
        });
    }
    Ok(slash_events)
}

/// One height's validator set; keys come from the validator records.
fn read_validator_set(
    r: &mut Reader,
    validators: &BTreeMap<Address, ValidatorRecord>,
) -> Result<(Height, ValidatorSet), SnapshotError> {
    let h = r.u64("validator set")?;
    let m = r.count(28, "validator set members")?;
    let mut members: Vec<Validator> = Vec::with_capacity(m);
    for _ in 0..m {
        let a = r.addr("validator set member")?;
        if members.last().is_some_and(|l| l.address >= a) {
            return Err(invalid("validator set members out of order"));
        }
        let power = r.u64("validator set member")?;
        let rec = validators
            .get(&a)
            .ok_or_else(|| invalid("validator set names an unknown validator"))?;
        members.push(Validator {
            address: a,
            public_key: rec.public_key,
            power,
        });
    }
    let set = ValidatorSet::new(members).map_err(|e| invalid(e.to_string()))?;
    Ok((h, set))
}
