//! Messages hashed to G2 once and then signed and verified from the point.
//!
//! Hashing to G2 is a third of a signing and a quarter of a
//! FastAggregateVerify here, and a validator meets the same bytes several
//! times in one height: it signs its prevote, then verifies the prevote
//! quorum for the same value (the same bytes); it signs its precommit, then
//! verifies the precommit quorum, and at the next height it checks the
//! certificate the proposer carries over those bytes again. The core keeps
//! the point of what it signed ([`HashedMessage`]) and hands it to the
//! checks of the same bytes, so each is hashed once.
//!
//! The point is H(msg) under [`SIG_DST`], exactly what `sign` and `verify`
//! compute inside blst, so a signature made or checked from it is the same
//! signature and the same verdict (test `hashed_paths_agree_with_the_plain_ones`).

use super::{BlsError, PublicKey, SIG_DST, SecretKey, Signature, imp};
use blst::{blst_p2, blst_p2_affine};

/// H(msg) in G2 for the signature DST, with the bytes it was computed from
/// (so a caller can tell whether it may stand for a given message).
#[derive(Clone)]
pub struct HashedMessage {
    msg: Vec<u8>,
    point: blst_p2,
    affine: blst_p2_affine,
}

impl HashedMessage {
    /// Hashes `msg` to G2 (hash_to_curve of RFC 9380, the ciphersuite's DST).
    pub fn new(msg: &[u8]) -> Self {
        let point = hash_to_g2(msg);
        let mut affine = blst_p2_affine::default();
        // SAFETY: blst reads the valid point and writes the exclusive affine.
        unsafe { blst::blst_p2_to_affine(&mut affine, &point) };
        Self {
            msg: msg.to_vec(),
            point,
            affine,
        }
    }

    /// The bytes this point is the hash of.
    pub fn message(&self) -> &[u8] {
        &self.msg
    }

    /// The point in projective form (for sums of points).
    pub(super) fn point(&self) -> &blst_p2 {
        &self.point
    }

    /// The point, in the form blst's pairing takes.
    pub(super) fn affine(&self) -> &blst_p2_affine {
        &self.affine
    }
}

/// H(msg) in G2 under [`SIG_DST`], in projective form (the batch check
/// converts many at once to affine, with one inversion).
pub(super) fn hash_to_g2(msg: &[u8]) -> blst_p2 {
    count!(hash_to_curve += 1);
    hash_to_g2_uncounted(msg)
}

/// [`hash_to_g2`] for a caller that counted the hash itself.
pub(super) fn hash_to_g2_uncounted(msg: &[u8]) -> blst_p2 {
    let mut point = blst_p2::default();
    // SAFETY: blst reads `msg.len()` bytes of `msg` and `SIG_DST.len()`
    // bytes of the DST, an empty augmentation (null, 0), and writes one
    // point into the out-parameter, which is valid and exclusive.
    unsafe {
        blst::blst_hash_to_g2(
            &mut point,
            msg.as_ptr(),
            msg.len(),
            SIG_DST.as_ptr(),
            SIG_DST.len(),
            std::ptr::null(),
            0,
        );
    }
    point
}

impl std::fmt::Debug for HashedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashedMessage({} bytes)", self.msg.len())
    }
}

impl SecretKey {
    /// Signs the message `hashed` was made from: the same signature as
    /// [`SecretKey::sign`] of those bytes, without hashing them again.
    pub fn sign_hashed(&self, hashed: &HashedMessage) -> Signature {
        count!(signings += 1);
        let scalar: &blst::blst_scalar = (&self.0).into();
        let mut sig = blst_p2::default();
        let mut affine = blst_p2_affine::default();
        // SAFETY: every pointer is to a valid, initialised value; blst writes
        // only the two out-parameters, which are exclusive here.
        unsafe {
            blst::blst_sign_pk_in_g1(&mut sig, &hashed.point, scalar);
            blst::blst_p2_to_affine(&mut affine, &sig);
        }
        Signature(imp::Signature::from(affine))
    }
}

impl PublicKey {
    /// [`PublicKey::verify`] of the message `hashed` was made from.
    pub fn verify_hashed(&self, hashed: &HashedMessage, sig: &Signature) -> Result<(), BlsError> {
        let verify = || {
            count!(single_verifies += 1, pairing_checks += 1, miller_loops += 2);
            super::weighted::check_one(self, hashed.message(), Some(hashed), sig)
        };
        // The simulator's memo, under the key of the plain check (same verdict).
        #[cfg(feature = "verify-memo")]
        if super::memo::is_on() {
            let (key, sig) = (self.to_bytes(), sig.to_bytes());
            return super::memo::verdict(&[b"v", &key, &sig, hashed.message()], verify);
        }
        verify()
    }
}

impl Signature {
    /// [`Signature::fast_aggregate_verify`] of the message `hashed` was made
    /// from.
    pub fn fast_aggregate_verify_hashed(
        &self,
        hashed: &HashedMessage,
        keys: &[&PublicKey],
    ) -> Result<(), BlsError> {
        let verify = || {
            let key = PublicKey::aggregate(keys)?;
            count!(
                fast_aggregate_verifies += 1,
                pairing_checks += 1,
                miller_loops += 2
            );
            super::weighted::check_one(&key, hashed.message(), Some(hashed), self)
        };
        // The simulator's memo, under the key of the plain check (same verdict).
        #[cfg(feature = "verify-memo")]
        if super::memo::is_on() {
            let sig = self.to_bytes();
            let key_bytes: Vec<[u8; super::PUBLIC_KEY_LEN]> =
                keys.iter().map(|k| k.to_bytes()).collect();
            let mut parts: Vec<&[u8]> = vec![b"f", &sig, hashed.message()];
            parts.extend(key_bytes.iter().map(|k| &k[..]));
            return super::memo::verdict(&parts, verify);
        }
        verify()
    }
}
