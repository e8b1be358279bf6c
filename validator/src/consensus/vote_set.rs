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

use super::TestFault;
use super::signed_points::{self, SignedPoints};
use crate::crypto::bls::UncheckedSignature;
use crate::crypto::hash::sha3_256_parts;
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
    /// This node's secret salt for the weights of quorum checks (None for
    /// an observer without a key: its weights are then a public hash of
    /// the signatures; see `quorum_weights`).
    pub salt: Option<&'a Hash>,
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
        self.verify_decoded(idx, &self.msg(value), &sig)
            .then_some(sig)
    }

    /// The pairing check of one decoded (subgroup-checked) signature.
    fn verify_decoded(&self, idx: usize, msg: &[u8], sig: &Signature) -> bool {
        let key = &self.set.validators()[idx].public_key;
        signed_points::verify(self.signed, key, msg, sig).is_ok()
    }
}

/// Domain prefix of the weights of a quorum check.
const QUORUM_WEIGHT_PREFIX: &[u8] = b"agora/vote-quorum-weights/v1";

/// The weights of a weighted quorum check
/// ([`crate::crypto::bls::verify_each_of_one_message`]) of the signatures `sigs` by the
/// validators `signers` over `msg`: SHA3-256 over the salt, the message and
/// every (signer, signature), then, after a first weight of 1, 8 bytes per
/// weight from SHA3-256 of that digest and a counter, never zero.
///
/// With a salt (a one-way hash of this validator's secret key, never sent)
/// the weights are unknown to whoever chose the signatures: a false pass
/// has probability 2⁻⁶⁴ per try, and each failed try has the bad votes
/// dropped and their senders charged. Without one (an observer) the weights
/// are a public hash of the signatures (Fiat–Shamir): the sender must then
/// grind about 2⁶⁴ hashes per false pass, for a batch whose composition it
/// must also predict. Deterministic either way, so the simulator replays it.
pub(super) fn quorum_weights(
    salt: Option<&Hash>,
    msg: &[u8],
    signers: &[usize],
    sigs: &[&[u8]],
) -> Vec<u64> {
    debug_assert!(!sigs.is_empty() && signers.len() == sigs.len());
    let indices: Vec<[u8; 8]> = signers.iter().map(|i| (*i as u64).to_le_bytes()).collect();
    let len = (msg.len() as u64).to_le_bytes();
    let salted = [u8::from(salt.is_some())];
    let mut input: Vec<&[u8]> = vec![QUORUM_WEIGHT_PREFIX, &salted];
    if let Some(salt) = salt {
        input.push(salt);
    }
    // The message's length first: every other part has a fixed length.
    input.extend([&len[..], msg]);
    // Signatures are 96 bytes each (they decoded).
    for (i, sig) in indices.iter().zip(sigs) {
        input.extend([&i[..], sig]);
    }
    let digest = sha3_256_parts(&input);
    // The first weight is 1: fixing one weight leaves the argument whole
    // (if only the first signature were wrong, the sum would be too) and
    // saves its two scalar multiplications.
    let mut weights = Vec::with_capacity(sigs.len());
    weights.push(1);
    for block in 0..(sigs.len() - 1).div_ceil(4) as u64 {
        let h = sha3_256_parts(&[&digest, &block.to_le_bytes()]);
        for chunk in h.chunks_exact(8) {
            if weights.len() < sigs.len() {
                let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                weights.push(w.max(1));
            }
        }
    }
    weights
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

    /// Verifies every pending vote for `value`: one weighted check over all
    /// of them (module docs), and per-vote checks only if that fails.
    /// Returns the indices of the validators whose votes were dropped as bad.
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
        if pending.len() == 1 {
            let bad = self.check_stored(ctx, (pending[0], *value)) == Some(false);
            return if bad { pending } else { Vec::new() };
        }
        if trusts_aggregated_bytes(ctx.fault) {
            return self.verify_plain_sum(ctx, value, &pending);
        }
        let (signers, sigs, mut bad) = self.decode_pending(value, pending);
        if sigs.is_empty() {
            return bad;
        }
        let msg = ctx.msg(value);
        let sig_refs: Vec<&Signature> = sigs.iter().collect();
        let all_good = if sigs.len() == 1 {
            self.single_checks += 1;
            ctx.verify_decoded(signers[0], &msg, &sigs[0])
        } else {
            self.aggregate_checks += 1;
            let keys: Vec<&PublicKey> = signers
                .iter()
                .map(|i| &ctx.set.validators()[*i].public_key)
                .collect();
            // The weights hash the bytes as received, not a re-encoding.
            let bytes: Vec<&[u8]> = signers
                .iter()
                .map(|i| &self.votes[&(*i, *value)].vote.signature[..])
                .collect();
            let weights = quorum_weights(ctx.salt, &msg, &signers, &bytes);
            signed_points::verify_each(ctx.signed, &msg, &keys, &sig_refs, &weights).is_ok()
        };
        if all_good {
            for i in &signers {
                self.settle_only((*i, *value), true);
            }
            self.add_to_sum(*value, &sig_refs);
            return bad;
        }
        for (i, sig) in signers.into_iter().zip(sigs) {
            self.single_checks += 1;
            let ok = ctx.verify_decoded(i, &msg, &sig);
            self.settle((i, *value), ok.then_some(sig));
            if !ok {
                bad.push(i);
            }
        }
        bad
    }

    /// Decodes the pending votes `pending` of `value`, each with its
    /// subgroup check: the signers and signatures that decode, and the
    /// signers of those that do not (dropped as bad).
    fn decode_pending(
        &mut self,
        value: &Value,
        pending: Vec<usize>,
    ) -> (Vec<usize>, Vec<Signature>, Vec<usize>) {
        let mut bad = Vec::new();
        let mut signers = Vec::with_capacity(pending.len());
        let mut sigs = Vec::with_capacity(pending.len());
        for i in pending {
            match Signature::from_bytes(&self.votes[&(i, *value)].vote.signature) {
                Ok(s) => {
                    signers.push(i);
                    sigs.push(s);
                }
                Err(_) => {
                    self.settle_only((i, *value), false);
                    bad.push(i);
                }
            }
        }
        (signers, sigs, bad)
    }

    /// The rule before weighted checks, kept as a test fault
    /// (`TestFault::TrustAggregatedBytes`): the pending votes' plain sum,
    /// one FastAggregateVerify, and each vote in a passing sum taken as
    /// verified: cancelling errors then pass (module docs).
    fn verify_plain_sum(
        &mut self,
        ctx: &VoteContext<'_>,
        value: &Value,
        pending: &[usize],
    ) -> Vec<usize> {
        let decoded: Vec<(usize, UncheckedSignature)> = pending
            .iter()
            .filter_map(|i| {
                let bytes = &self.votes[&(*i, *value)].vote.signature;
                UncheckedSignature::from_bytes(bytes).ok().map(|s| (*i, s))
            })
            .collect();
        let sigs: Vec<&UncheckedSignature> = decoded.iter().map(|(_, s)| s).collect();
        let keys: Vec<&PublicKey> = decoded
            .iter()
            .map(|(i, _)| &ctx.set.validators()[*i].public_key)
            .collect();
        let msg = ctx.msg(value);
        self.aggregate_checks += 1;
        let sum = UncheckedSignature::aggregate_checked(&sigs).and_then(|agg| {
            signed_points::fast_aggregate_verify(ctx.signed, &agg, &msg, &keys).map(|()| agg)
        });
        if let Ok(sum) = sum {
            for (i, _) in &decoded {
                self.settle_only((*i, *value), true);
            }
            self.add_to_sum(*value, &[&sum]);
        }
        let mut bad = Vec::new();
        for i in pending {
            if self.check_stored(ctx, (*i, *value)) == Some(false) {
                bad.push(*i);
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
