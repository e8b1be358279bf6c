//! Many signatures over one message checked at once, so that a pass vouches
//! for each signature alone: how a quorum of votes (which all sign the same
//! bytes) is verified.
//!
//! FastAggregateVerify of the plain sum Σσᵢ proves that every signer signed
//! (proofs of possession rule out rogue keys), but not that each σᵢ is its
//! signer's signature: errors that sum to zero pass. A Byzantine validator
//! that sends its own vote shifted by +X with a copy of an honest vote
//! shifted by −X gets both counted, and a node that counted them holds
//! votes it cannot relay (each fails alone at the peer that checks it).
//! Weighting each signature and key with a 64-bit wᵢ that whoever chose the
//! signatures cannot know closes that:
//!
//! e(Σ wᵢ·pkᵢ, H(m)) = e(g1, Σ wᵢ·σᵢ)
//!
//! Why a pass means each σᵢ verifies alone: every σᵢ is subgroup-checked
//! (a [`Signature`]), so in G2, of prime order r, write σᵢ = skᵢ·H(m) + Δᵢ;
//! the equation holds iff Σ wᵢ·Δᵢ = 0. If some Δⱼ ≠ 0, fixing every other
//! weight leaves one value of wⱼ mod r that satisfies it, hit with
//! probability 2⁻⁶⁴. The per-signature subgroup checks are what this needs:
//! a torsion error of small order q would vanish under any weight divisible
//! by q, one time in q (E2's cofactor has 13 among its factors).
//!
//! Cost: the two weighted sums are multi-scalar multiplications on the
//! calling thread (blst's windowed method below 32 points, Pippenger above;
//! a weight of 1 is a plain addition, and a caller may give one signature
//! that weight without weakening the argument), then one pairing check of
//! two Miller loops, as FastAggregateVerify.
//! Against the plain sum this adds, per signature, its subgroup check and
//! its share of the two sums (benchmark `bls/quorum_from_bytes`).

use super::{BlsError, HashedMessage, PublicKey, Signature, imp};
use blst::{blst_p1, blst_p1_affine, blst_p2, blst_p2_affine, limb_t};

/// Whether each of `sigs[i]` is `keys[i]`'s signature of `msg` (`hashed` is
/// `msg` hashed to G2, when the caller has it), with the weights `weights`,
/// one per signature, non-zero and unknown to whoever chose the signatures
/// (module docs). `Err(Empty)` for no signatures, `Err(BadEncoding)` for
/// lengths that differ or a zero weight, `Err(VerifyFailed)` otherwise; a
/// caller that needs to know which signature is bad checks them alone.
pub fn verify_each_of_one_message(
    msg: &[u8],
    hashed: Option<&HashedMessage>,
    keys: &[&PublicKey],
    sigs: &[&Signature],
    weights: &[u64],
) -> Result<(), BlsError> {
    if sigs.is_empty() {
        return Err(BlsError::Empty);
    }
    if keys.len() != sigs.len() || weights.len() != sigs.len() || weights.contains(&0) {
        return Err(BlsError::BadEncoding);
    }
    debug_assert!(hashed.is_none_or(|h| h.message() == msg));
    let verify = || {
        count!(
            one_message_weighted_checks += 1,
            pairing_checks += 1,
            miller_loops += 2,
            hash_to_curve += usize::from(hashed.is_none()),
            weighted_points += 2 * weights.iter().filter(|w| **w != 1).count(),
        );
        let key_points: Vec<&blst_p1_affine> = keys.iter().map(|k| (&k.0).into()).collect();
        let sig_points: Vec<&blst_p2_affine> = sigs.iter().map(|s| (&s.0).into()).collect();
        let key = g1_affine(&g1_weighted(&key_points, weights));
        let sig = g2_affine(&g2_weighted(&sig_points, weights));
        let (key, sig) = (
            PublicKey(imp::PublicKey::from(key)),
            Signature(imp::Signature::from(sig)),
        );
        super::weighted::check_one(&key, msg, hashed, &sig)
    };
    #[cfg(feature = "verify-memo")]
    if super::memo::is_on() {
        let key_bytes: Vec<[u8; super::PUBLIC_KEY_LEN]> =
            keys.iter().map(|k| k.to_bytes()).collect();
        let sig_bytes: Vec<[u8; super::SIGNATURE_LEN]> =
            sigs.iter().map(|s| s.to_bytes()).collect();
        let weight_bytes: Vec<[u8; 8]> = weights.iter().map(|w| w.to_le_bytes()).collect();
        let mut parts: Vec<&[u8]> = vec![b"w", msg];
        parts.extend(key_bytes.iter().map(|k| &k[..]));
        parts.extend(sig_bytes.iter().map(|s| &s[..]));
        parts.extend(weight_bytes.iter().map(|w| &w[..]));
        return super::memo::verdict(&parts, verify);
    }
    verify()
}

/// Points of weight 1, the other points, and the others' weights as
/// 64-bit little-endian scalars.
type Split<'a, T> = (Vec<&'a T>, Vec<&'a T>, Vec<[u8; 8]>);

/// Splits `points` by weight: those of weight 1 are summed plainly.
fn split_by_weight<'a, T>(points: &[&'a T], weights: &[u64]) -> Split<'a, T> {
    let mut unit = Vec::new();
    let (mut weighted, mut scalars) = (Vec::new(), Vec::new());
    for (p, w) in points.iter().zip(weights) {
        if *w == 1 {
            unit.push(*p);
        } else {
            weighted.push(*p);
            scalars.push(w.to_le_bytes());
        }
    }
    (unit, weighted, scalars)
}

/// The pointer arrays blst's multi-scalar multiplication reads: one entry
/// per point and scalar, then a null. (blst reads a null second entry as
/// "the first points at a contiguous array", which for one point is the
/// same thing.)
fn pointers<T>(items: &[&T]) -> Vec<*const T> {
    let mut out: Vec<*const T> = items.iter().map(|p| *p as *const T).collect();
    out.push(std::ptr::null());
    out
}

/// Scratch space of `bytes` bytes, in blst's limbs.
fn scratch(bytes: usize) -> Vec<limb_t> {
    vec![0; bytes.div_ceil(std::mem::size_of::<limb_t>())]
}

/// The same three functions for G1 and G2 (blst names their operations
/// per group): `$weighted` is Σ wᵢ·pointᵢ (weight-1 points added plainly,
/// the others through `$sum`), `$sum` blst's multi-scalar multiplication
/// with 64-bit scalars on the calling thread, `$affine` the result in
/// affine form.
macro_rules! weighted_sum_in {
    ($weighted:ident, $sum:ident, $affine:ident, $point:ty, $point_affine:ty,
     $sizeof:path, $mult:path, $add_affine:path, $to_affine:path) => {
        fn $weighted(points: &[&$point_affine], weights: &[u64]) -> $point {
            let (unit, weighted, scalars) = split_by_weight(points, weights);
            let mut sum = if weighted.is_empty() {
                <$point>::default()
            } else {
                $sum(&weighted, &scalars)
            };
            for p in unit {
                let acc = sum;
                // SAFETY: valid points; `sum` is an exclusive out-parameter.
                unsafe { $add_affine(&mut sum, &acc, p) };
            }
            sum
        }

        fn $sum(points: &[&$point_affine], scalars: &[[u8; 8]]) -> $point {
            debug_assert!(!points.is_empty() && points.len() == scalars.len());
            let scalar_refs: Vec<&[u8; 8]> = scalars.iter().collect();
            let (p, s) = (pointers(points), pointers(&scalar_refs));
            let mut out = <$point>::default();
            // SAFETY: `p` and `s` hold `points.len()` valid pointers (to
            // affine points and to 8-byte scalars, read as 64 bits) and a
            // trailing null; the scratch has the size blst asks for that
            // many points; `out` is an exclusive out-parameter. Everything
            // outlives the call.
            unsafe {
                let mut space = scratch($sizeof(points.len()));
                $mult(
                    &mut out,
                    p.as_ptr(),
                    points.len(),
                    s.as_ptr().cast(),
                    64,
                    space.as_mut_ptr(),
                );
            }
            out
        }

        fn $affine(p: &$point) -> $point_affine {
            let mut out = <$point_affine>::default();
            // SAFETY: `p` is a valid point and `out` an exclusive out-parameter.
            unsafe { $to_affine(&mut out, p) };
            out
        }
    };
}

weighted_sum_in!(
    g1_weighted,
    g1_sum,
    g1_affine,
    blst_p1,
    blst_p1_affine,
    blst::blst_p1s_mult_pippenger_scratch_sizeof,
    blst::blst_p1s_mult_pippenger,
    blst::blst_p1_add_or_double_affine,
    blst::blst_p1_to_affine
);
weighted_sum_in!(
    g2_weighted,
    g2_sum,
    g2_affine,
    blst_p2,
    blst_p2_affine,
    blst::blst_p2s_mult_pippenger_scratch_sizeof,
    blst::blst_p2s_mult_pippenger,
    blst::blst_p2_add_or_double_affine,
    blst::blst_p2_to_affine
);

#[cfg(test)]
mod tests {
    use super::super::{SecretKey, cancelling_pair};
    use super::*;

    fn keys(n: u8) -> Vec<SecretKey> {
        (0..n)
            .map(|i| SecretKey::from_seed(&[i + 90; 32]).expect("32-byte seed"))
            .collect()
    }

    /// Weights as a quorum check makes them: the first 1, the others not.
    fn weights(n: usize) -> Vec<u64> {
        (0..n as u64)
            .map(|i| match i {
                0 => 1,
                _ => 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i),
            })
            .collect()
    }

    fn check(msg: &[u8], pks: &[PublicKey], sigs: &[Signature], w: &[u64]) -> bool {
        let k: Vec<&PublicKey> = pks.iter().collect();
        let s: Vec<&Signature> = sigs.iter().collect();
        verify_each_of_one_message(msg, None, &k, &s, w).is_ok()
    }

    #[test]
    fn good_signatures_pass_at_every_size_and_with_a_hashed_message() {
        let msg = b"prevote";
        for n in [1u8, 2, 3, 31, 32, 40] {
            let sks = keys(n);
            let pks: Vec<PublicKey> = sks.iter().map(SecretKey::public_key).collect();
            let sigs: Vec<Signature> = sks.iter().map(|k| k.sign(msg)).collect();
            assert!(check(msg, &pks, &sigs, &weights(n.into())), "n={n}");
            let hashed = HashedMessage::new(msg);
            let k: Vec<&PublicKey> = pks.iter().collect();
            let s: Vec<&Signature> = sigs.iter().collect();
            let r = verify_each_of_one_message(msg, Some(&hashed), &k, &s, &weights(n.into()));
            assert!(r.is_ok(), "n={n} hashed");
            // One wrong signature among them fails the whole check.
            let mut wrong = sigs.clone();
            wrong[usize::from(n) - 1] = sks[0].sign(b"other");
            assert!(!check(msg, &pks, &wrong, &weights(n.into())), "n={n} wrong");
        }
    }

    /// The attack of the module docs: two signatures shifted by +X and −X.
    /// Their plain sum passes FastAggregateVerify; with weights the check
    /// fails, and with all weights 1 (the plain sum) it would pass: the
    /// weights are what catches it.
    #[test]
    fn errors_that_cancel_fail_with_weights_and_pass_without() {
        let msg = b"precommit";
        let sks = keys(3);
        let pks: Vec<PublicKey> = sks.iter().map(SecretKey::public_key).collect();
        let (x, minus_x) = cancelling_pair(b"anything");
        let shift = |s: &Signature, d: &Signature| Signature::aggregate(&[s, d]).expect("sum");
        let sigs = vec![
            shift(&sks[0].sign(msg), &x),
            shift(&sks[1].sign(msg), &minus_x),
            sks[2].sign(msg),
        ];
        let plain = Signature::aggregate(&sigs.iter().collect::<Vec<_>>()).expect("sum");
        let key_refs: Vec<&PublicKey> = pks.iter().collect();
        assert!(plain.fast_aggregate_verify(msg, &key_refs).is_ok());
        assert!(
            check(msg, &pks, &sigs, &[1, 1, 1]),
            "unit weights are the plain sum"
        );
        assert!(!check(msg, &pks, &sigs, &weights(3)));
    }

    #[test]
    fn malformed_calls_are_refused() {
        let sks = keys(2);
        let pks: Vec<PublicKey> = sks.iter().map(SecretKey::public_key).collect();
        let sigs: Vec<Signature> = sks.iter().map(|k| k.sign(b"m")).collect();
        let k: Vec<&PublicKey> = pks.iter().collect();
        let s: Vec<&Signature> = sigs.iter().collect();
        let run = |k: &[&PublicKey], s: &[&Signature], w: &[u64]| {
            verify_each_of_one_message(b"m", None, k, s, w)
        };
        assert!(matches!(run(&[], &[], &[]), Err(BlsError::Empty)));
        assert!(matches!(run(&k, &s, &[1]), Err(BlsError::BadEncoding)));
        assert!(matches!(
            run(&k[..1], &s, &[1, 2]),
            Err(BlsError::BadEncoding)
        ));
        assert!(matches!(run(&k, &s, &[0, 2]), Err(BlsError::BadEncoding)));
        assert!(run(&k, &s, &[3, 2]).is_ok());
    }
}
