//! The ZIP-215 batch equation for account signatures.
//!
//! For items (Aᵢ, Mᵢ, Rᵢ ‖ sᵢ) and weights zᵢ drawn from the caller's seed,
//! the batch holds when
//!
//! ```text
//! [8] ( −(Σ zᵢ·sᵢ)·B + Σ zᵢ·Rᵢ + Σ_A (Σ_{i: Aᵢ = A} zᵢ·kᵢ)·A ) = 0,
//! kᵢ = SHA-512(Rᵢ bytes ‖ Aᵢ bytes ‖ Mᵢ) mod ℓ,
//! ```
//!
//! the weighted sum of every item's cofactored single equation
//! `[8][s]B = [8]R + [8][k]A`. Multiplying by 8 removes every torsion
//! part, so what is left lives in the prime-order group: if any single
//! equation fails, the sum vanishes for at most one weight in 2¹²⁸ of the
//! failing item's. An item whose `s` is not below ℓ or whose R is no
//! curve point fails the batch, as it fails alone. The encodings hashed
//! are the bytes as given (ZIP-215 accepts non-canonical ones), never
//! re-encoded points.
//!
//! Cost: one multiscalar multiplication of 1 + n + (distinct keys)
//! points, one R decompression and one SHA-512 per item; keys arrive
//! decoded ([`AccountPublicKey`] holds its point).

use std::collections::BTreeMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand_core_06::RngCore;
use sha2::{Digest, Sha512};

use super::{AccountBatchItem, SeedRng};

/// Whether the batch equation holds for `items`, with weights drawn from
/// `seed`. False as soon as an item cannot take part (`s` not below ℓ, R
/// not a curve point). An empty batch holds.
pub(super) fn equation_holds(items: &[AccountBatchItem<'_>], seed: &[u8; 32]) -> bool {
    let mut rng = SeedRng::new(seed);
    // Terms of the sum: [0] is B (its coefficient set last), then each
    // item's R and each distinct key's A.
    let mut scalars: Vec<Scalar> = Vec::with_capacity(2 * items.len() + 1);
    let mut points: Vec<EdwardsPoint> = Vec::with_capacity(2 * items.len() + 1);
    scalars.push(Scalar::ZERO);
    points.push(ED25519_BASEPOINT_POINT);
    // Where each key's term sits, so a key signing several items is one
    // point of the multiplication (a BTreeMap: no hidden randomness).
    let mut key_term: BTreeMap<&[u8; 32], usize> = BTreeMap::new();
    let mut base = Scalar::ZERO;
    for it in items {
        let sig = it.sig.to_bytes();
        let (r_bytes, s_bytes) = sig.split_at(32);
        let r_bytes: [u8; 32] = r_bytes.try_into().expect("32 bytes");
        let s_bytes: [u8; 32] = s_bytes.try_into().expect("32 bytes");
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        let a_bytes = it.key.as_bytes();
        let k = challenge(&r_bytes, a_bytes, it.msg);
        let z = weight(&mut rng);
        base -= z * s;
        scalars.push(z);
        points.push(r);
        match key_term.get(a_bytes) {
            Some(&at) => scalars[at] += z * k,
            None => {
                key_term.insert(a_bytes, scalars.len());
                scalars.push(z * k);
                points.push(*it.key.point());
            }
        }
    }
    scalars[0] = base;
    debug_assert_eq!(scalars.len(), points.len());
    debug_assert_eq!(points.len(), 1 + items.len() + key_term.len());
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points)
        .mul_by_cofactor()
        .is_identity()
}

/// k = SHA-512(R ‖ A ‖ M) reduced mod ℓ (RFC 8032 §5.1.7), over the bytes
/// as sent.
fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(msg);
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&h.finalize());
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// A 128-bit weight: enough that a failing item escapes the batch with
/// probability 2⁻¹²⁸, at half the cost of a full scalar.
fn weight(rng: &mut SeedRng) -> Scalar {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    Scalar::from(u128::from_le_bytes(b))
}
