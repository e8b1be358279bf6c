//! Checking a vote set's pending signatures: the context a check needs,
//! the weights of a quorum check, and the weighted check of a value's
//! pending votes with its per-vote fallback (module docs of
//! [`super`]: verified means valid alone).

use super::{Value, VoteSet};
use crate::consensus::TestFault;
use crate::consensus::signed_points::{self, SignedPoints};
use crate::crypto::bls::UncheckedSignature;
use crate::crypto::hash::sha3_256_parts;
use crate::crypto::{Hash, PublicKey, Signature};
use crate::signing::vote_bytes;
use crate::types::{ChainId, Height, Round, VoteType};
use crate::validator_set::ValidatorSet;
use std::collections::BTreeSet;

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
    pub(super) fn verify_one(
        &self,
        idx: usize,
        value: &Value,
        signature: &[u8],
    ) -> Option<Signature> {
        let sig = Signature::from_bytes(signature).ok()?;
        self.verify_decoded(idx, &self.msg(value), &sig)
            .then_some(sig)
    }

    /// The pairing check of one decoded (subgroup-checked) signature.
    pub(super) fn verify_decoded(&self, idx: usize, msg: &[u8], sig: &Signature) -> bool {
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
pub(in crate::consensus) fn quorum_weights(
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

impl VoteSet {
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
}
