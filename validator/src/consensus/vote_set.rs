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

/// Votes of one (round, type): at most one per validator, so its size is
/// bounded by the validator set.
#[derive(Debug, Clone, Default)]
pub struct VoteSet {
    votes: BTreeMap<usize, StoredVote>,
    verified_power: BTreeMap<Value, Power>,
    pending_power: BTreeMap<Value, Power>,
    verified_any: Power,
    pending_any: Power,
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

impl VoteSet {
    /// Inserts a decoded vote of validator `idx`. In per-vote mode, or when a
    /// conflict must be judged, signatures are checked here.
    pub fn insert(
        &mut self,
        ctx: &VoteContext<'_>,
        mode: VerifyMode,
        idx: usize,
        value: Value,
        signature: Signature,
        vote: pb::Vote,
    ) -> Insert {
        if let Some(existing) = self.votes.get(&idx) {
            if existing.value == value && existing.vote.signature == vote.signature {
                return Insert::Duplicate;
            }
            // Something different arrived for a slot: settle the stored vote
            // first, so that a forged first vote can neither hide the real one
            // nor frame its validator.
            if !existing.verified {
                let ok = ctx.verify_one(idx, &existing.value, &existing.signature);
                self.single_checks += 1;
                self.settle(idx, ok);
            }
        }
        if let Some(existing) = self.votes.get(&idx) {
            if existing.value == value {
                // Same value, other bytes: BLS is deterministic, so these are bad.
                return Insert::BadSignature;
            }
            self.single_checks += 1;
            if !ctx.verify_one(idx, &value, &signature) {
                return Insert::BadSignature;
            }
            return Insert::Equivocation(Box::new(existing.vote.clone()));
        }
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
            StoredVote {
                value,
                power: ctx.set.validators()[idx].power,
                signature,
                verified,
                vote,
            },
        );
        Insert::Added
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
        if self.votes.contains_key(&idx) {
            return;
        }
        self.add(
            idx,
            StoredVote {
                value,
                power: set.validators()[idx].power,
                signature,
                verified: true,
                vote,
            },
        );
    }

    fn add(&mut self, idx: usize, v: StoredVote) {
        if v.verified {
            *self.verified_power.entry(v.value).or_default() += v.power;
            self.verified_any += v.power;
        } else {
            *self.pending_power.entry(v.value).or_default() += v.power;
            self.pending_any += v.power;
        }
        self.votes.insert(idx, v);
    }

    /// Marks a pending vote as verified (`ok`), or drops it.
    fn settle(&mut self, idx: usize, ok: bool) {
        let Some(v) = self.votes.get_mut(&idx) else {
            return;
        };
        if v.verified {
            return;
        }
        let (value, power) = (v.value, v.power);
        if let Some(p) = self.pending_power.get_mut(&value) {
            *p -= power;
        }
        self.pending_any -= power;
        if ok {
            v.verified = true;
            *self.verified_power.entry(value).or_default() += power;
            self.verified_any += power;
        } else {
            self.votes.remove(&idx);
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
            .map(|(i, _)| *i)
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
                .verify(&msg, &self.votes[&i].signature)
                .is_ok()
        } else {
            self.aggregate_checks += 1;
            let sigs: Vec<&Signature> = pending.iter().map(|i| &self.votes[i].signature).collect();
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
                self.settle(i, true);
            }
        } else if pending.len() == 1 {
            self.settle(pending[0], false);
            bad.push(pending[0]);
        } else {
            for i in pending {
                self.single_checks += 1;
                let ok = ctx.set.validators()[i]
                    .public_key
                    .verify(&msg, &self.votes[&i].signature)
                    .is_ok();
                self.settle(i, ok);
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

    /// Verified power over all values.
    pub fn verified_any(&self) -> Power {
        self.verified_any
    }

    /// Verified plus pending power over all values.
    pub fn potential_any(&self) -> Power {
        self.verified_any + self.pending_any
    }

    /// Whether a verified quorum voted for `value`, verifying pending votes
    /// for it only if they could make the difference.
    pub fn quorum_for(&mut self, ctx: &VoteContext<'_>, value: &Value, quorum: &impl Fn(Power) -> bool) -> bool {
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
    pub fn threshold_any(&mut self, ctx: &VoteContext<'_>, threshold: &impl Fn(Power) -> bool) -> bool {
        if threshold(self.verified_any) {
            return true;
        }
        if !threshold(self.potential_any()) {
            return false;
        }
        self.verify_all_pending(ctx);
        threshold(self.verified_any)
    }

    /// Verified voters (canonical indices), for counting distinct senders.
    pub fn verified_voters(&self) -> impl Iterator<Item = usize> + '_ {
        self.votes.iter().filter(|(_, v)| v.verified).map(|(i, _)| *i)
    }

    /// All voters, verified or not.
    pub fn all_voters(&self) -> impl Iterator<Item = usize> + '_ {
        self.votes.keys().copied()
    }

    /// (index, signature) of the verified votes for `value`, in canonical order.
    pub fn verified_signatures(&self, value: &Value) -> Vec<(usize, Signature)> {
        self.votes
            .iter()
            .filter(|(_, v)| v.verified && v.value == *value)
            .map(|(i, v)| (*i, v.signature))
            .collect()
    }

    /// The stored vote of validator `idx`.
    pub fn get(&self, idx: usize) -> Option<&StoredVote> {
        self.votes.get(&idx)
    }

    /// (aggregate checks, single checks) done so far.
    pub fn checks(&self) -> (u64, u64) {
        (self.aggregate_checks, self.single_checks)
    }
}
