//! Weighted vote tallies for one height, per (round, type, value), with lazy
//! verification of a quorum at once.
//!
//! An incoming vote is stored with its signature *bytes*; nothing about the
//! signature is computed on arrival. Votes for the same (round, type, value)
//! sign the same bytes, so when the pending votes of a value could complete
//! a threshold the protocol asks about, their signatures are decoded (each
//! subgroup-checked) and checked together with random weights
//! ([`crate::crypto::bls::verify_each_of_one_message`]): one pairing check, as
//! FastAggregateVerify, plus a multi-scalar sum. Only if that fails are they
//! checked one by one, and the bad ones dropped. Votes that arrive after
//! their threshold was verified are never decoded at all. Thresholds are
//! only ever answered from *verified* power. The plain sum of the verified
//! signatures of each value is kept, so a decision's certificate costs no
//! re-aggregation. [`VerifyMode::PerVote`] checks each vote on arrival
//! instead (the baseline the benchmark compares against).
//!
//! **Verified means valid alone.** The check is weighted, not the plain sum
//! FastAggregateVerify, because a plain sum proves that each signer signed
//! but not that each vote's *bytes* are its signer's signature: a Byzantine
//! validator can send its own vote shifted by +X with a copy of an honest
//! validator's vote shifted by −X, and only their sum verifies. Counted,
//! such bytes would be relayed (and charged by every peer that checks them
//! alone), used as evidence, or shadow the real vote when it comes; held
//! uncounted-but-unrelayable, they let this node lock on a polka no other
//! node can be shown (seed 9,026,407 of the simulator). With weights, every
//! verified vote is its signer's signature, so every verified vote may be
//! relayed and used as evidence. A vote dropped as bad is handed to the
//! host ([`VoteSet::take_failed_alone`]) to charge whoever delivered it.

mod verify;

use crate::crypto::{Hash, Signature};
use crate::types::Power;
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;
use std::collections::BTreeMap;

pub use verify::VoteContext;
#[cfg(test)]
pub(super) use verify::quorum_weights;

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
    /// Whether its signature has been checked (alone, or in a weighted check
    /// that vouches for each signature alone): counted, relayable, usable
    /// as evidence.
    pub verified: bool,
    /// The vote as received (kept for evidence; its signature bytes are
    /// decoded only when the vote is verified).
    pub vote: pb::Vote,
}

/// Result of inserting a vote.
#[derive(Debug, Clone)]
pub enum Insert {
    /// New vote stored (possibly still unverified).
    Added,
    /// The same vote was already stored; ignored.
    Duplicate,
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
/// caller allows (nil and the blocks votes of this round can matter for,
/// `state/votes.rs`) and [`MAX_UNKNOWN_VALUES_PER_VOTER`] others, so the
/// size stays bounded. Counting
/// an equivocator's vote for each value it signed is sound for per-value
/// quorums (two quorums for different values would need more than a third of
/// the power to equivocate), and it is what lets an honest node see a polka
/// that other honest nodes saw, whichever of the conflicting votes it got first.
#[derive(Debug, Clone, Default)]
pub struct VoteSet {
    votes: BTreeMap<(usize, Value), StoredVote>,
    verified_power: BTreeMap<Value, Power>,
    pending_power: BTreeMap<Value, Power>,
    /// Per value, the plain sum of the verified votes' signatures (a sum of
    /// checked signatures, so itself in G2): a certificate's aggregate.
    verified_sums: BTreeMap<Value, Signature>,
    /// Votes dropped as bad since the host last took them (bounded by the
    /// votes stored: each is dropped at most once).
    failed_alone: Vec<pb::Vote>,
    aggregate_checks: u64,
    single_checks: u64,
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

    /// Whether a stored vote's signature is good: a verified one is; a
    /// pending one is checked alone now and verified or dropped. None if
    /// not stored.
    fn check_stored(&mut self, ctx: &VoteContext<'_>, key: (usize, Value)) -> Option<bool> {
        let v = self.votes.get(&key)?;
        if v.verified {
            return Some(true);
        }
        let checked = ctx.verify_one(key.0, &key.1, &v.vote.signature);
        self.single_checks += 1;
        let ok = checked.is_some();
        self.settle(key, checked);
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
            // most one of them is the validator's signature. If the stored
            // one is (verified, or checked alone now), these are not.
            if self.check_stored(ctx, (idx, value)) == Some(true) {
                return Insert::BadSignature;
            }
            // The stored one was bad and is dropped: this vote is inserted
            // as any other.
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
        // Evidence needs both halves valid alone: a pending stored side is
        // checked now (and dropped if it fails).
        let mut first = None;
        for k in &others {
            if self.check_stored(ctx, *k) == Some(true) && first.is_none() {
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

    /// Stores a vote: verified if `checked` is its checked signature,
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
            self.add_to_sum(value, &[&sig]);
        }
        self.votes.insert(
            (idx, value),
            StoredVote {
                value,
                power,
                verified,
                vote,
            },
        );
    }

    /// Adds checked signatures of votes for `value` to its kept sum.
    fn add_to_sum(&mut self, value: Value, sigs: &[&Signature]) {
        let mut parts: Vec<&Signature> = sigs.to_vec();
        if let Some(old) = self.verified_sums.get(&value) {
            parts.push(old);
        }
        // Checked signatures sum without error (Err only for no input).
        if let Ok(sum) = Signature::aggregate(&parts) {
            self.verified_sums.insert(value, sum);
        }
    }

    /// Marks a pending vote as verified (`ok`), or drops it (handing it to
    /// the host, to charge who delivered it). The caller adds verified
    /// signatures to the value's sum.
    fn settle_only(&mut self, key: (usize, Value), ok: bool) {
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
            *self.verified_power.entry(value).or_default() += power;
        } else if let Some(dropped) = self.votes.remove(&key) {
            self.failed_alone.push(dropped.vote);
        }
    }

    /// Settles one vote checked alone (`checked` is its signature if good).
    fn settle(&mut self, key: (usize, Value), checked: Option<Signature>) {
        let pending = self.votes.get(&key).is_some_and(|v| !v.verified);
        self.settle_only(key, checked.is_some());
        if pending && let Some(sig) = checked {
            self.add_to_sum(key.1, &[&sig]);
        }
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

    /// The stored votes dropped as bad since the last call (each failed
    /// alone), for the host to charge whoever delivered them.
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

    /// Whether validator `idx` has a vote stored here, for any value.
    pub fn has_vote_of(&self, idx: usize) -> bool {
        self.votes.range(slot_range(idx)).next().is_some()
    }

    /// Votes stored, verified or pending.
    pub fn len(&self) -> usize {
        self.votes.len()
    }

    /// Whether no vote is stored.
    pub fn is_empty(&self) -> bool {
        self.votes.is_empty()
    }

    /// (aggregate checks, single checks) done so far.
    pub fn checks(&self) -> (u64, u64) {
        (self.aggregate_checks, self.single_checks)
    }
}
