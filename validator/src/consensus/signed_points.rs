//! The hashed messages of the last votes this validator signed, so that
//! the checks of the same bytes do not hash them again.
//!
//! A validator that prevotes for a value then verifies the prevote quorum
//! of that value: the same signing bytes. The same holds for its precommit
//! and the precommit quorum, and at the next height for the certificate
//! the proposer carries (precommits of the decided round). Hashing to G2 is
//! about a quarter of each of those checks, so the point computed to sign
//! is kept ([`bls::HashedMessage`]) and handed to them. A point is found by
//! comparing the full message bytes, never a digest or a position, so it
//! can only stand for the bytes it was computed from.
//!
//! Bound: [`KEPT`] entries of one point (288 bytes) and one vote's signing
//! bytes (under 128) each, about 3.3 KiB; the oldest entry goes first.

use crate::crypto::bls::{self, HashedMessage};
use crate::crypto::{SecretKey, Signature};
use std::collections::VecDeque;

/// How many signed messages are kept: two votes per round, so the rounds
/// of one height and the decided round of the last (for its certificate)
/// are there unless a height ran more than three rounds.
pub const KEPT: usize = 8;

/// The last [`KEPT`] vote messages this validator signed, hashed to G2.
#[derive(Debug, Default, Clone)]
pub struct SignedPoints {
    points: VecDeque<HashedMessage>,
}

impl SignedPoints {
    /// Signs `msg` with `key`, keeping its hashed form for later checks of
    /// the same bytes.
    pub fn sign(&mut self, key: &SecretKey, msg: &[u8]) -> Signature {
        if let Some(known) = self.get(msg) {
            return key.sign_hashed(known);
        }
        let hashed = HashedMessage::new(msg);
        let sig = key.sign_hashed(&hashed);
        if self.points.len() == KEPT {
            self.points.pop_front();
        }
        self.points.push_back(hashed);
        debug_assert!(self.points.len() <= KEPT);
        sig
    }

    /// The hashed form of `msg`, if this validator signed exactly these
    /// bytes recently.
    pub fn get(&self, msg: &[u8]) -> Option<&HashedMessage> {
        self.points.iter().rev().find(|p| p.message() == msg)
    }
}

/// Verifies one signature over `msg`, from the kept point when there is one.
pub fn verify(
    points: &SignedPoints,
    key: &bls::PublicKey,
    msg: &[u8],
    sig: &Signature,
) -> Result<(), bls::BlsError> {
    match points.get(msg) {
        Some(hashed) => key.verify_hashed(hashed, sig),
        None => key.verify(msg, sig),
    }
}

/// FastAggregateVerify of `sig` over `msg`, from the kept point when there
/// is one.
pub fn fast_aggregate_verify(
    points: &SignedPoints,
    sig: &Signature,
    msg: &[u8],
    keys: &[&bls::PublicKey],
) -> Result<(), bls::BlsError> {
    match points.get(msg) {
        Some(hashed) => sig.fast_aggregate_verify_hashed(hashed, keys),
        None => sig.fast_aggregate_verify(msg, keys),
    }
}

/// The weighted check of many signatures over `msg`
/// ([`bls::verify_each_of_one_message`]), from the kept point when there is
/// one.
pub fn verify_each(
    points: &SignedPoints,
    msg: &[u8],
    keys: &[&bls::PublicKey],
    sigs: &[&Signature],
    weights: &[u64],
) -> Result<(), bls::BlsError> {
    bls::verify_each_of_one_message(msg, points.get(msg), keys, sigs, weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> SecretKey {
        SecretKey::from_seed(&[i; 32]).expect("key")
    }

    #[test]
    fn a_kept_point_signs_and_verifies_as_the_plain_path_does() {
        let (k, other) = (key(1), key(2));
        let mut points = SignedPoints::default();
        let sig = points.sign(&k, b"prevote bytes");
        assert_eq!(sig, k.sign(b"prevote bytes"), "same signature as sign()");
        assert!(points.get(b"prevote bytes").is_some());
        let pk = k.public_key();
        assert!(verify(&points, &pk, b"prevote bytes", &sig).is_ok());
        // Negative controls: the kept point does not pass another message,
        // key or signature.
        assert!(verify(&points, &pk, b"prevote bytez", &sig).is_err());
        assert!(verify(&points, &other.public_key(), b"prevote bytes", &sig).is_err());
        let forged = other.sign(b"prevote bytes");
        assert!(verify(&points, &pk, b"prevote bytes", &forged).is_err());
        let agg = Signature::aggregate(&[&sig, &forged]).expect("aggregate");
        let both = [&pk, &other.public_key()];
        assert!(fast_aggregate_verify(&points, &agg, b"prevote bytes", &both).is_ok());
        assert!(fast_aggregate_verify(&points, &agg, b"prevote bytes", &both[..1]).is_err());
    }

    #[test]
    fn only_the_last_kept_messages_stay() {
        let k = key(3);
        let mut points = SignedPoints::default();
        for i in 0..=KEPT {
            points.sign(&k, format!("vote {i}").as_bytes());
        }
        assert!(points.get(b"vote 0").is_none(), "the oldest was dropped");
        assert!(points.get(format!("vote {KEPT}").as_bytes()).is_some());
        assert_eq!(points.points.len(), KEPT);
        // Signing kept bytes again adds nothing.
        points.sign(&k, format!("vote {KEPT}").as_bytes());
        assert!(points.get(b"vote 1").is_some());
    }
}
