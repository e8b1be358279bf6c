//! Weighted vote tallies for one height, per (round, type, value), with lazy
//! aggregate verification.
//!
//! Every incoming signature is decoded with the subgroup check when it
//! arrives (`Signature::from_bytes`), but its pairing check is deferred: votes
//! for the same (round, type, value) sign the same bytes, so when the pending
//! votes of a value could complete a threshold the protocol asks about, they
//! are aggregated and checked with one FastAggregateVerify. Only if that fails
//! are they checked one by one, and the bad ones dropped. Thresholds are only
//! ever answered from *verified* power. [`VerifyMode::PerVote`] checks each
//! vote on arrival instead (the baseline the benchmark compares against).

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
    /// The decoded, subgroup-checked signature.
    pub signature: Signature,
    /// Whether the pairing check has passed.
    pub verified: bool,
    /// The vote as received (kept for evidence).
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
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// Type.
    pub vote_type: VoteType,
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

    fn verify_one(&self, idx: usize, value: &Value, sig: &Signature) -> bool {
        self.set.validators()[idx]
            .public_key
            .verify(&self.msg(value), sig)
            .is_ok()
    }
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

    fn check_stored(&mut self, ctx: &VoteContext<'_>, key: (usize, Value)) {
        if let Some(v) = self.votes.get(&key)
            && !v.verified
        {
            let ok = ctx.verify_one(key.0, &key.1, &v.signature);
            self.single_checks += 1;
            self.settle(key, ok);
        }
    }

    /// Inserts a decoded vote of validator `idx`. In per-vote mode, or when a
    /// conflict must be judged, signatures are checked here. `keep_conflicting`
    /// says whether a verified vote that conflicts with an earlier one may be
    /// stored too (the caller allows nil and known blocks).
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        ctx: &VoteContext<'_>,
        mode: VerifyMode,
        idx: usize,
        value: Value,
        signature: Signature,
        vote: pb::Vote,
        keep_conflicting: bool,
    ) -> Insert {
        if let Some(existing) = self.votes.get(&(idx, value)) {
            if existing.vote.signature == vote.signature {
                return Insert::Duplicate;
            }
            // Same value, other bytes: BLS is deterministic, so one of them is
            // bad. Settle the stored one so a forged first vote cannot hide
            // the real one.
            self.check_stored(ctx, (idx, value));
            if self.votes.contains_key(&(idx, value)) {
                return Insert::BadSignature;
            }
        }
        let others: Vec<(usize, Value)> =
            self.votes.range(slot_range(idx)).map(|(k, _)| *k).collect();
        if others.is_empty() {
            let verified = match mode {
                VerifyMode::PerVote => {
                    self.single_checks += 1;
                    if !ctx.verify_one(idx, &value, &signature) {
                        return Insert::BadSignature;
                    }
                    true
                }
                VerifyMode::Aggregate => false,
            };
            self.add(
                idx,
                value,
                ctx.set.validators()[idx].power,
                signature,
                verified,
                vote,
            );
            return Insert::Added;
        }
        // A conflict: judge both sides by their own signatures, so that a
        // forgery can neither frame a validator nor hide its real vote.
        self.single_checks += 1;
        if !ctx.verify_one(idx, &value, &signature) {
            return Insert::BadSignature;
        }
        for k in &others {
            self.check_stored(ctx, *k);
        }
        let first = others
            .iter()
            .find_map(|k| self.votes.get(k).map(|v| v.vote.clone()));
        let power = ctx.set.validators()[idx].power;
        match first {
            None => {
                self.add(idx, value, power, signature, true, vote);
                Insert::Added
            }
            Some(first) => {
                if keep_conflicting || others.len() < MAX_UNKNOWN_VALUES_PER_VOTER {
                    self.add(idx, value, power, signature, true, vote);
                }
                Insert::Equivocation(Box::new(first))
            }
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
            signature,
            true,
            vote,
        );
    }

    fn add(
        &mut self,
        idx: usize,
        value: Value,
        power: Power,
        signature: Signature,
        verified: bool,
        vote: pb::Vote,
    ) {
        let bucket = if verified {
            &mut self.verified_power
        } else {
            &mut self.pending_power
        };
        *bucket.entry(value).or_default() += power;
        self.votes.insert(
            (idx, value),
            StoredVote {
                value,
                power,
                signature,
                verified,
                vote,
            },
        );
    }

    /// Marks a pending vote as verified (`ok`), or drops it.
    fn settle(&mut self, key: (usize, Value), ok: bool) {
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
        } else {
            self.votes.remove(&key);
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
        let msg = ctx.msg(value);
        let ok_all = if pending.len() == 1 {
            self.single_checks += 1;
            let i = pending[0];
            ctx.set.validators()[i]
                .public_key
                .verify(&msg, &self.votes[&(i, *value)].signature)
                .is_ok()
        } else {
            self.aggregate_checks += 1;
            let sigs: Vec<&Signature> = pending
                .iter()
                .map(|i| &self.votes[&(*i, *value)].signature)
                .collect();
            let keys: Vec<&PublicKey> = pending
                .iter()
                .map(|i| &ctx.set.validators()[*i].public_key)
                .collect();
            Signature::aggregate(&sigs)
                .and_then(|agg| agg.fast_aggregate_verify(&msg, &keys))
                .is_ok()
        };
        let mut bad = Vec::new();
        if ok_all {
            for i in pending {
                self.settle((i, *value), true);
            }
        } else if pending.len() == 1 {
            self.settle((pending[0], *value), false);
            bad.push(pending[0]);
        } else {
            for i in pending {
                self.single_checks += 1;
                let ok = ctx.set.validators()[i]
                    .public_key
                    .verify(&msg, &self.votes[&(i, *value)].signature)
                    .is_ok();
                self.settle((i, *value), ok);
                if !ok {
                    bad.push(i);
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

    /// All voters, verified or not.
    pub fn all_voters(&self) -> impl Iterator<Item = usize> + '_ {
        self.votes.keys().map(|(i, _)| *i)
    }

    /// (index, signature) of the verified votes for `value`, in canonical order.
    pub fn verified_signatures(&self, value: &Value) -> Vec<(usize, Signature)> {
        self.votes
            .iter()
            .filter(|(_, v)| v.verified && v.value == *value)
            .map(|((i, _), v)| (*i, v.signature))
            .collect()
    }

    /// (aggregate checks, single checks) done so far.
    pub fn checks(&self) -> (u64, u64) {
        (self.aggregate_checks, self.single_checks)
    }
}
