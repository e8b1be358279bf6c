//! Weighted vote tallies for one height, per (round, type, value), with lazy
//! aggregate verification.
//!
//! An incoming vote is stored with its signature *bytes*; nothing about the
//! signature is computed on arrival. Votes for the same (round, type, value)
//! sign the same bytes, so when the pending votes of a value could complete
//! a threshold the protocol asks about, their signatures are decompressed,
//! summed, the *sum* subgroup-checked once, and checked with one
//! FastAggregateVerify ([`UncheckedSignature`] explains why checking the sum
//! is sound there). Only if that fails are they checked one by one (each
//! with its own subgroup check), and the bad ones dropped. Votes that arrive
//! after their threshold was verified are never decoded at all. Thresholds
//! are only ever answered from *verified* power. The sum of the verified
//! signatures of each value is kept, so a decision's certificate costs no
//! re-aggregation. [`VerifyMode::PerVote`] checks each vote on arrival
//! instead (the baseline the benchmark compares against).
//!
//! **What an aggregate does not prove.** A verified aggregate proves that
//! each of its signers signed the message (proofs of possession rule out
//! rogue keys), so counting its votes is sound. It does not prove that each
//! vote's *bytes* are that signer's signature: a Byzantine validator can
//! send its own vote shifted by +X with a copy of an honest validator's
//! vote shifted by −X, and only their sum verifies. Such bytes must never
//! be taken for the honest validator's: they are not relayed, not used as
//! evidence and do not shadow the real vote when it comes. So whatever
//! depends on one vote's bytes first checks that vote alone ([`Alone`]):
//! the vote replacing a conflicting stored one, the votes relayed to peers
//! ([`VoteSet::relayable_votes`]) and the halves of evidence. A stored
//! vote whose bytes fail alone is handed to the host
//! ([`VoteSet::take_failed_alone`]) to charge whoever delivered it: an
//! honest node relays only votes it checked alone.

use super::TestFault;
use super::signed_points::{self, SignedPoints};
use crate::crypto::bls::UncheckedSignature;
use crate::crypto::{Hash, PublicKey, Signature};
use crate::signing::vote_bytes;
use crate::types::{ChainId, Height, Power, Round, VoteType};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;
use std::collections::{BTreeMap, BTreeSet};

/// How vote signatures are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyMode {
    /// Defer and aggregate per threshold (the default).
    #[default]
    Aggregate,
    /// Verify each vote when it arrives.
    PerVote,
}

/// A vote's value: a block hash, or None for nil.
pub type Value = Option<Hash>;

/// One stored vote.
#[derive(Debug, Clone)]
pub struct StoredVote {
    /// What it votes for.
    pub value: Value,
    /// The voter's power.
    pub power: Power,
    /// Whether the pairing check has passed (alone or in an aggregate).
    pub verified: bool,
    /// What checking this vote's own signature alone found, if it was.
    pub alone: Alone,
    /// The vote as received (kept for evidence; its signature bytes are
    /// decoded only when the vote is verified).
    pub vote: pb::Vote,
}

/// What checking one vote's signature alone (its own subgroup and pairing
/// checks, not only inside an aggregate) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alone {
    /// Not checked alone: pending, or verified only inside an aggregate.
    Unchecked,
    /// The bytes are the validator's signature.
    Good,
    /// The bytes fail alone, although an aggregate holding them verified:
    /// the vote stays counted, but its bytes are never used.
    Bad,
}

/// Result of inserting a vote.
#[derive(Debug, Clone)]
pub enum Insert {
    /// New vote stored (possibly still unverified).
    Added,
    /// The same vote was already stored; ignored.
    Duplicate,
    /// Bytes of a stored vote that an aggregate verified but that fail
    /// alone were replaced by these, which verify alone (already counted).
    Replaced,
    /// The vote's own signature does not verify (checked eagerly here).
    BadSignature,
    /// The validator already voted differently in this round and type, and
    /// both signatures verify: an equivocation. The first vote stays counted.
    Equivocation(Box<pb::Vote>),
}

/// How many values one validator may have stored in one (round, type)
/// before votes for blocks this node does not know are no longer kept.
pub const MAX_UNKNOWN_VALUES_PER_VOTER: usize = 3;

/// Votes of one (round, type). A validator normally has one vote here; an
/// equivocating one may have more, one per value, but only for values the
/// caller allows (nil and blocks it knows), so the size stays bounded. Counting
/// an equivocator's vote for each value it signed is sound for per-value
/// quorums (two quorums for different values would need more than a third of
/// the power to equivocate), and it is what lets an honest node see a polka
/// that other honest nodes saw, whichever of the conflicting votes it got first.
#[derive(Debug, Clone, Default)]
pub struct VoteSet {
    votes: BTreeMap<(usize, Value), StoredVote>,
    verified_power: BTreeMap<Value, Power>,
    pending_power: BTreeMap<Value, Power>,
    /// Per value, the sum of the verified votes' signatures (a sum of
    /// checked signatures and of checked aggregates, so itself in G2).
    verified_sums: BTreeMap<Value, Signature>,
    /// Stored votes whose bytes failed alone since the host last took
    /// them (bounded by the stored votes: each fails alone at most once).
    failed_alone: Vec<pb::Vote>,
    aggregate_checks: u64,
    single_checks: u64,
}

/// Everything needed to check signatures of one (height, round, type).
#[derive(Debug, Clone, Copy)]
pub struct VoteContext<'a> {
    /// Chain id for the signing bytes.
    pub chain: &'a ChainId,
    /// The height's validator set.
    pub set: &'a ValidatorSet,
    /// Height the votes are for.
    pub height: Height,
    /// Round the votes are for.
    pub round: Round,
    /// Prevotes or precommits.
    pub vote_type: VoteType,
    /// What this validator signed recently, hashed: a vote message found
    /// there is not hashed again ([`super::signed_points`]).
    pub signed: &'a SignedPoints,
    /// The core's test fault (`TestFault::None` in production).
    pub fault: TestFault,
}

impl VoteContext<'_> {
    /// The signing bytes of a vote for `value` in this context.
    pub fn msg(&self, value: &Value) -> Vec<u8> {
        vote_bytes(
            self.chain,
            self.vote_type,
            self.height,
            self.round,
            &value.unwrap_or([0u8; 32]),
        )
    }

    /// The full check of one vote's signature bytes: strict decoding
    /// (subgroup check) and the pairing check. The checked signature if good.
    fn verify_one(&self, idx: usize, value: &Value, signature: &[u8]) -> Option<Signature> {
        let sig = Signature::from_bytes(signature).ok()?;
        let key = &self.set.validators()[idx].public_key;
        signed_points::verify(self.signed, key, &self.msg(value), &sig)
            .ok()
            .map(|()| sig)
    }
}

#[cfg(feature = "test-faults")]
fn trusts_aggregated_bytes(f: TestFault) -> bool {
    f == TestFault::TrustAggregatedBytes
}
#[cfg(not(feature = "test-faults"))]
fn trusts_aggregated_bytes(_: TestFault) -> bool {
    false
}

fn slot_range(idx: usize) -> std::ops::RangeInclusive<(usize, Value)> {
    (idx, None)..=(idx, Some([0xff; 32]))
}

impl VoteSet {
    /// Whether exactly this vote (value and signature bytes) is stored.
    pub fn contains(&self, idx: usize, value: &Value, signature: &[u8]) -> bool {
        self.votes
            .get(&(idx, *value))
            .is_some_and(|v| v.vote.signature == signature)
    }

    /// Checks a stored vote's signature alone, at most once: a pending one
    /// is then verified or dropped, a verified one marked good or bad (it
    /// stays counted). Whether its bytes verify alone; None if not stored.
    fn check_alone(&mut self, ctx: &VoteContext<'_>, key: (usize, Value)) -> Option<bool> {
        let v = self.votes.get(&key)?;
        match v.alone {
            Alone::Good => return Some(true),
            Alone::Bad => return Some(false),
            Alone::Unchecked if v.verified && trusts_aggregated_bytes(ctx.fault) => {
                if let Some(v) = self.votes.get_mut(&key) {
                    v.alone = Alone::Good;
                }
                return Some(true);
            }
            Alone::Unchecked => {}
        }
        let verified = v.verified;
        let checked = ctx.verify_one(key.0, &key.1, &v.vote.signature);
        self.single_checks += 1;
        let ok = checked.is_some();
        if !verified {
            self.settle(key, checked);
        } else if let Some(v) = self.votes.get_mut(&key) {
            v.alone = if ok { Alone::Good } else { Alone::Bad };
            if !ok {
                self.failed_alone.push(v.vote.clone());
            }
        }
        Some(ok)
    }

    /// Inserts a vote of validator `idx` (its signature still bytes). In
    /// per-vote mode, or when a conflict must be judged, signatures are
    /// checked here. `keep_conflicting` says whether a verified vote that
    /// conflicts with an earlier one may be stored too (the caller allows nil
    /// and known blocks).
    pub fn insert(
        &mut self,
        ctx: &VoteContext<'_>,
        mode: VerifyMode,
        idx: usize,
        value: Value,
        vote: pb::Vote,
        keep_conflicting: bool,
    ) -> Insert {
        if let Some(existing) = self.votes.get(&(idx, value)) {
            if existing.vote.signature == vote.signature {
                return Insert::Duplicate;
            }
            // Same value, other bytes: BLS signing is deterministic, so at
            // most one of them is the validator's signature. Which one is
            // decided alone, never by an aggregate, so that neither a forged
            // first vote nor a shifted copy verified inside an aggregate
            // can hide the real one (module docs).
            if self.check_alone(ctx, (idx, value)) == Some(true) {
                return Insert::BadSignature;
            }
            // Still stored: an aggregate verified it. Else it was pending
            // and is dropped, and this vote is inserted as any other.
            if self.votes.contains_key(&(idx, value)) {
                return self.replace_bytes(ctx, (idx, value), vote);
            }
        }
        let others: Vec<(usize, Value)> =
            self.votes.range(slot_range(idx)).map(|(k, _)| *k).collect();
        let power = ctx.set.validators()[idx].power;
        if others.is_empty() {
            let checked = match mode {
                VerifyMode::PerVote => {
                    self.single_checks += 1;
                    let Some(sig) = ctx.verify_one(idx, &value, &vote.signature) else {
                        return Insert::BadSignature;
                    };
                    Some(sig)
                }
                VerifyMode::Aggregate => None,
            };
            self.add(idx, value, power, checked, vote);
            return Insert::Added;
        }
        // A conflict: judge both sides by their own signatures, so that a
        // forgery can neither frame a validator nor hide its real vote.
        self.single_checks += 1;
        let Some(sig) = ctx.verify_one(idx, &value, &vote.signature) else {
            return Insert::BadSignature;
        };
        // Evidence needs both halves valid alone: the stored side is
        // checked alone too (a pending one that fails is dropped).
        let mut first = None;
        for k in &others {
            if self.check_alone(ctx, *k) == Some(true) && first.is_none() {
                first = Some(*k);
            }
        }
        let still_stored = others.iter().any(|k| self.votes.contains_key(k));
        if !still_stored || keep_conflicting || others.len() < MAX_UNKNOWN_VALUES_PER_VOTER {
            self.add(idx, value, power, Some(sig), vote);
        }
        match first {
            Some(first) => Insert::Equivocation(Box::new(self.votes[&first].vote.clone())),
            None => Insert::Added,
        }
    }

    /// `vote` for a stored vote whose bytes an aggregate verified but which
    /// fail alone: it replaces those bytes if it verifies alone. The vote
    /// stays counted, and the value's sum stays that of the aggregate that
    /// verified (the same signers), whichever bytes are kept.
    fn replace_bytes(
        &mut self,
        ctx: &VoteContext<'_>,
        key: (usize, Value),
        vote: pb::Vote,
    ) -> Insert {
        self.single_checks += 1;
        if ctx.verify_one(key.0, &key.1, &vote.signature).is_none() {
            return Insert::BadSignature;
        }
        let Some(stored) = self.votes.get_mut(&key) else {
            unreachable!("replace_bytes is called for a stored vote");
        };
        debug_assert!(stored.verified && stored.alone == Alone::Bad);
        stored.vote = vote;
        stored.alone = Alone::Good;
        Insert::Replaced
    }

    /// Inserts this validator's own vote, which needs no check.
    pub fn insert_own(
        &mut self,
        set: &ValidatorSet,
        idx: usize,
        value: Value,
        signature: Signature,
        vote: pb::Vote,
    ) {
        if self.votes.contains_key(&(idx, value)) {
            return;
        }
        self.add(
            idx,
            value,
            set.validators()[idx].power,
            Some(signature),
            vote,
        );
    }

    /// Stores a vote: verified alone if `checked` is its checked signature,
    /// pending otherwise.
    fn add(
        &mut self,
        idx: usize,
        value: Value,
        power: Power,
        checked: Option<Signature>,
        vote: pb::Vote,
    ) {
        let verified = checked.is_some();
        let bucket = if verified {
            &mut self.verified_power
        } else {
            &mut self.pending_power
        };
        *bucket.entry(value).or_default() += power;
        if let Some(sig) = checked {
            self.add_to_sum(value, sig);
        }
        self.votes.insert(
            (idx, value),
            StoredVote {
                value,
                power,
                verified,
                alone: if verified {
                    Alone::Good
                } else {
                    Alone::Unchecked
                },
                vote,
            },
        );
    }

    fn add_to_sum(&mut self, value: Value, sig: Signature) {
        let sum = match self.verified_sums.get(&value) {
            Some(old) => Signature::aggregate(&[old, &sig]).unwrap_or(sig),
            None => sig,
        };
        self.verified_sums.insert(value, sum);
    }

    /// Marks a pending vote as verified (`ok`), or drops it (handing it to
    /// the host, to charge who delivered it). The caller adds verified
    /// signatures to the value's sum; `alone` says whether the vote was
    /// checked alone.
    fn settle_only(&mut self, key: (usize, Value), ok: bool, alone: bool) {
        let Some(v) = self.votes.get_mut(&key) else {
            return;
        };
        if v.verified {
            return;
        }
        let (value, power) = (v.value, v.power);
        if let Some(p) = self.pending_power.get_mut(&value) {
            *p -= power;
        }
        if ok {
            v.verified = true;
            if alone {
                v.alone = Alone::Good;
            }
            *self.verified_power.entry(value).or_default() += power;
        } else if let Some(dropped) = self.votes.remove(&key) {
            self.failed_alone.push(dropped.vote);
        }
    }

    /// Settles one vote checked alone (`checked` is its signature if good).
    fn settle(&mut self, key: (usize, Value), checked: Option<Signature>) {
        let pending = self.votes.get(&key).is_some_and(|v| !v.verified);
        self.settle_only(key, checked.is_some(), true);
        if pending && let Some(sig) = checked {
            self.add_to_sum(key.1, sig);
        }
    }

    /// Verifies every pending vote for `value`: one FastAggregateVerify over
    /// all of them, and per-vote checks only if that fails. Returns the indices
    /// of the validators whose votes were dropped as bad.
    pub fn verify_pending(&mut self, ctx: &VoteContext<'_>, value: &Value) -> Vec<usize> {
        let pending: Vec<usize> = self
            .votes
            .iter()
            .filter(|(_, v)| !v.verified && v.value == *value)
            .map(|((i, _), _)| *i)
            .collect();
        if pending.is_empty() {
            return Vec::new();
        }
        let mut bad = Vec::new();
        if pending.len() == 1 {
            if self.check_alone(ctx, (pending[0], *value)) == Some(false) {
                bad.push(pending[0]);
            }
            return bad;
        }
        // Decompress (no subgroup check); what does not decode is bad.
        let mut decoded: Vec<(usize, UncheckedSignature)> = Vec::with_capacity(pending.len());
        for i in pending {
            match UncheckedSignature::from_bytes(&self.votes[&(i, *value)].vote.signature) {
                Ok(s) => decoded.push((i, s)),
                Err(_) => {
                    self.settle_only((i, *value), false, false);
                    bad.push(i);
                }
            }
        }
        if decoded.is_empty() {
            return bad;
        }
        let msg = ctx.msg(value);
        self.aggregate_checks += 1;
        let sigs: Vec<&UncheckedSignature> = decoded.iter().map(|(_, s)| s).collect();
        let keys: Vec<&PublicKey> = decoded
            .iter()
            .map(|(i, _)| &ctx.set.validators()[*i].public_key)
            .collect();
        // One subgroup check of the sum, then one FastAggregateVerify.
        let aggregate = UncheckedSignature::aggregate_checked(&sigs).and_then(|agg| {
            signed_points::fast_aggregate_verify(ctx.signed, &agg, &msg, &keys).map(|()| agg)
        });
        match aggregate {
            Ok(agg) => {
                for (i, _) in &decoded {
                    self.settle_only((*i, *value), true, false);
                }
                self.add_to_sum(*value, agg);
            }
            Err(_) => {
                for (i, _) in decoded {
                    if self.check_alone(ctx, (i, *value)) == Some(false) {
                        bad.push(i);
                    }
                }
            }
        }
        bad
    }

    /// Verifies the pending votes of every value.
    pub fn verify_all_pending(&mut self, ctx: &VoteContext<'_>) -> Vec<usize> {
        let values: BTreeSet<Value> = self
            .pending_power
            .iter()
            .filter(|(_, p)| **p > 0)
            .map(|(v, _)| *v)
            .collect();
        let mut bad = Vec::new();
        for v in values {
            bad.extend(self.verify_pending(ctx, &v));
        }
        bad
    }

    /// Verified power for `value`.
    pub fn verified_power(&self, value: &Value) -> Power {
        self.verified_power.get(value).copied().unwrap_or(0)
    }

    /// Verified plus pending power for `value`.
    pub fn potential_power(&self, value: &Value) -> Power {
        self.verified_power(value) + self.pending_power.get(value).copied().unwrap_or(0)
    }

    /// Power of the distinct validators with a verified vote.
    pub fn verified_any(&self) -> Power {
        self.any_power(true)
    }

    /// Power of the distinct validators with any vote, verified or not.
    pub fn potential_any(&self) -> Power {
        self.any_power(false)
    }

    fn any_power(&self, verified_only: bool) -> Power {
        let mut last = None;
        let mut sum = 0;
        for ((i, _), v) in &self.votes {
            if (v.verified || !verified_only) && last != Some(*i) {
                sum += v.power;
                last = Some(*i);
            }
        }
        sum
    }

    /// Whether a verified quorum voted for `value`, verifying pending votes
    /// for it only if they could make the difference.
    pub fn quorum_for(
        &mut self,
        ctx: &VoteContext<'_>,
        value: &Value,
        quorum: &impl Fn(Power) -> bool,
    ) -> bool {
        if quorum(self.verified_power(value)) {
            return true;
        }
        if !quorum(self.potential_power(value)) {
            return false;
        }
        self.verify_pending(ctx, value);
        quorum(self.verified_power(value))
    }

    /// Whether verified votes of any values reach `threshold`, verifying
    /// pending votes only if they could make the difference.
    pub fn threshold_any(
        &mut self,
        ctx: &VoteContext<'_>,
        threshold: &impl Fn(Power) -> bool,
    ) -> bool {
        if threshold(self.verified_any()) {
            return true;
        }
        if !threshold(self.potential_any()) {
            return false;
        }
        self.verify_all_pending(ctx);
        threshold(self.verified_any())
    }

    /// Verified voters (canonical indices), for counting distinct senders.
    pub fn verified_voters(&self) -> impl Iterator<Item = usize> + '_ {
        self.votes
            .iter()
            .filter(|(_, v)| v.verified)
            .map(|((i, _), _)| *i)
    }

    /// The verified votes as received, in canonical order.
    pub fn verified_votes(&self) -> impl Iterator<Item = &pb::Vote> + '_ {
        self.votes.values().filter(|v| v.verified).map(|v| &v.vote)
    }

    /// The verified votes whose bytes verify alone, checking alone (once)
    /// those verified only inside an aggregate: what may be relayed to
    /// peers, who charge us for a vote that fails alone. In canonical order.
    pub fn relayable_votes(&mut self, ctx: &VoteContext<'_>) -> Vec<pb::Vote> {
        let unchecked: Vec<(usize, Value)> = self
            .votes
            .iter()
            .filter(|(_, v)| v.verified && v.alone == Alone::Unchecked)
            .map(|(k, _)| *k)
            .collect();
        for k in unchecked {
            self.check_alone(ctx, k);
        }
        self.votes
            .values()
            .filter(|v| v.verified && v.alone == Alone::Good)
            .map(|v| v.vote.clone())
            .collect()
    }

    /// The stored votes whose bytes failed alone since the last call, for
    /// the host to charge whoever delivered them.
    pub fn take_failed_alone(&mut self) -> Vec<pb::Vote> {
        std::mem::take(&mut self.failed_alone)
    }

    /// All voters, verified or not.
    pub fn all_voters(&self) -> impl Iterator<Item = usize> + '_ {
        self.votes.keys().map(|(i, _)| *i)
    }

    /// The canonical indices of the verified votes for `value` and the sum
    /// of their signatures (None if there are none).
    pub fn verified_aggregate(&self, value: &Value) -> Option<(Vec<usize>, Signature)> {
        let sum = *self.verified_sums.get(value)?;
        let signers = self
            .votes
            .iter()
            .filter(|(_, v)| v.verified && v.value == *value)
            .map(|((i, _), _)| *i)
            .collect();
        Some((signers, sum))
    }

    /// (aggregate checks, single checks) done so far.
    pub fn checks(&self) -> (u64, u64) {
        (self.aggregate_checks, self.single_checks)
    }
}
