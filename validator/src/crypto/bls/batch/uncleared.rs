//! Hashing to G2 without the last step, for sums of many hashes.
//!
//! RFC 9380's hash_to_curve for G2 (the ciphersuite's
//! `BLS12381G2_XMD:SHA-256_SSWU_RO_`) ends with clear_cofactor, a
//! multiplication by the constant h_eff, and here that step is about nine
//! tenths of the whole hash (blst's `POINTonE2_times_minus_z` under
//! `blst_hash_to_g2` in a profile of catch-up). Multiplication by a
//! constant is linear, so for the weighted sum the batch check needs,
//!
//! Σ rᵢ·H(mᵢ) = Σ rᵢ·h_eff·Qᵢ = h_eff·(Σ rᵢ·Qᵢ),
//!
//! where Qᵢ is hash_to_curve before clearing: the sum of the two mapped
//! field elements on E2. So a chunk of hashes costs one clearing instead
//! of one per message. blst does not expose Qᵢ, so it is computed here
//! from the RFC's definitions on blst's field arithmetic: hash_to_field
//! (expand_message_xmd, 64 bytes per Fp element), the simplified SWU map to
//! the 3-isogenous curve E2' and the 3-isogeny to E2 (§6.6.2, §6.6.3 and
//! Appendix E.3 of RFC 9380). Tests hold it to blst: h_eff·Q(m) equals
//! `blst_hash_to_g2(m)` for many messages, and the map equals
//! `blst_map_to_g2` for random field elements and the exceptional one.
//! Not constant-time: it only hashes public messages.

use super::super::SIG_DST;
use blst::{blst_fp, blst_fp2, blst_p2};
use std::sync::OnceLock;

/// Qᵢ for `msg`: h_eff·Q is H(msg) of the signature ciphersuite.
pub(super) fn hash_to_e2(msg: &[u8]) -> blst_p2 {
    let [u0, u1] = hash_to_field(msg);
    map_to_e2(&u0, &u1)
}

/// h_eff·P: the point of G2 that a sum of [`hash_to_e2`] outputs stands for.
pub(super) fn clear_cofactor(p: &blst_p2) -> blst_p2 {
    let mut out = blst_p2::default();
    // SAFETY: blst reads the valid point and 80 bytes of the scalar (636
    // bits, little-endian) and writes the exclusive out-parameter. The
    // unchecked multiplication is the plain windowed one, valid on all of
    // E2 (blst_p2_mult would use the G2-only endomorphism).
    unsafe { blst::blst_p2_unchecked_mult(&mut out, p, consts().h_eff.as_ptr(), 636) };
    out
}

/// hash_to_field(msg, 2) over Fp2: expand_message_xmd to 256 bytes, each
/// 64 bytes reduced mod p.
fn hash_to_field(msg: &[u8]) -> [blst_fp2; 2] {
    let mut bytes = [0u8; 256];
    // SAFETY: blst writes `bytes.len()` bytes into `bytes` and reads the
    // message and the DST with their lengths.
    unsafe {
        blst::blst_expand_message_xmd(
            bytes.as_mut_ptr(),
            bytes.len(),
            msg.as_ptr(),
            msg.len(),
            SIG_DST.as_ptr(),
            SIG_DST.len(),
        );
    }
    let e: Vec<blst_fp> = bytes.chunks_exact(64).map(fp_from_64).collect();
    [blst_fp2 { fp: [e[0], e[1]] }, blst_fp2 { fp: [e[2], e[3]] }]
}

/// A 64-byte big-endian integer reduced mod p (Montgomery form).
fn fp_from_64(bytes: &[u8]) -> blst_fp {
    debug_assert_eq!(bytes.len(), 64);
    let mut out = blst_fp::default();
    // SAFETY: blst reads `bytes.len()` bytes and writes the out-parameter.
    unsafe { blst::blst_fp_from_be_bytes(&mut out, bytes.as_ptr(), bytes.len()) };
    out
}

/// map_to_curve(u0) + map_to_curve(u1), both through E2' and the isogeny.
fn map_to_e2(u0: &blst_fp2, u1: &blst_fp2) -> blst_p2 {
    let (p0, p1) = (iso_map(sswu(u0)), iso_map(sswu(u1)));
    let mut q = blst_p2::default();
    // SAFETY: valid points in, one exclusive point out.
    unsafe { blst::blst_p2_add_or_double(&mut q, &p0, &p1) };
    q
}

/// The simplified SWU map of RFC 9380 §6.6.2 onto E2': y² = x³ + A'x + B'.
fn sswu(u: &blst_fp2) -> (blst_fp2, blst_fp2) {
    let c = consts();
    let zu2 = mul(&c.z, &sqr(u));
    let tv = add(&sqr(&zu2), &zu2);
    let x1 = if is_zero(&tv) {
        c.b_over_za
    } else {
        mul(&c.minus_b_over_a, &add(&c.one, &inverse(&tv)))
    };
    // The cheap Legendre symbol first: a square root attempted on a
    // non-square costs as much as one that succeeds.
    let gx1 = g_prime(&x1);
    let (x, gx) = if is_square(&gx1) {
        (x1, gx1)
    } else {
        let x2 = mul(&zu2, &x1);
        (x2, g_prime(&x2))
    };
    let y = sqrt(&gx).expect("g(x1) or else g(x2) is square");
    let y = if sgn0(u) == sgn0(&y) { y } else { neg(&y) };
    (x, y)
}

/// x³ + A'x + B'.
fn g_prime(x: &blst_fp2) -> blst_fp2 {
    let c = consts();
    add(&mul(&add(&sqr(x), &c.a), x), &c.b)
}

/// The 3-isogeny E2' → E2 (RFC 9380 Appendix E.3) of an affine point, as a
/// Jacobian point with Z = x_den·y_den, so that no inversion is needed:
/// X = x_num·x_den·y_den², Y = y·y_num·x_den³·y_den².
fn iso_map((x, y): (blst_fp2, blst_fp2)) -> blst_p2 {
    let c = consts();
    let x_num = horner(&c.x_num, &x);
    let x_den = horner(&c.x_den, &x);
    let y_num = horner(&c.y_num, &x);
    let y_den = horner(&c.y_den, &x);
    let y_den2 = sqr(&y_den);
    let x_den3 = mul(&sqr(&x_den), &x_den);
    blst_p2 {
        x: mul(&mul(&x_num, &x_den), &y_den2),
        y: mul(&mul(&mul(&y, &y_num), &x_den3), &y_den2),
        z: mul(&x_den, &y_den),
    }
}

/// Σ kᵢ·xⁱ, the coefficients from degree 0 up.
fn horner(k: &[blst_fp2], x: &blst_fp2) -> blst_fp2 {
    let (last, rest) = k.split_last().expect("a polynomial has coefficients");
    rest.iter()
        .rev()
        .fold(*last, |acc, ki| add(&mul(&acc, x), ki))
}

/// sgn0 of RFC 9380 §4.1 for Fp2: the parity of the first non-zero
/// coordinate (as an integer, out of Montgomery form).
fn sgn0(a: &blst_fp2) -> bool {
    let canon = |f: &blst_fp| {
        let mut out = blst_fp::default();
        // SAFETY: reads one valid element, writes the out-parameter
        // (blst's `fp_from` leaves the Montgomery form; `fp_to` enters it).
        unsafe { blst::blst_fp_from(&mut out, f) };
        out.l
    };
    let (a0, a1) = (canon(&a.fp[0]), canon(&a.fp[1]));
    let zero0 = a0.iter().all(|l| *l == 0);
    (a0[0] & 1 == 1) || (zero0 && a1[0] & 1 == 1)
}

fn add(a: &blst_fp2, b: &blst_fp2) -> blst_fp2 {
    let mut out = blst_fp2::default();
    // SAFETY: reads two valid elements, writes the out-parameter.
    unsafe { blst::blst_fp2_add(&mut out, a, b) };
    out
}

fn mul(a: &blst_fp2, b: &blst_fp2) -> blst_fp2 {
    let mut out = blst_fp2::default();
    // SAFETY: as for `add`.
    unsafe { blst::blst_fp2_mul(&mut out, a, b) };
    out
}

fn sqr(a: &blst_fp2) -> blst_fp2 {
    let mut out = blst_fp2::default();
    // SAFETY: as for `add`.
    unsafe { blst::blst_fp2_sqr(&mut out, a) };
    out
}

fn neg(a: &blst_fp2) -> blst_fp2 {
    let mut out = blst_fp2::default();
    // SAFETY: as for `add`.
    unsafe { blst::blst_fp2_cneg(&mut out, a, true) };
    out
}

fn inverse(a: &blst_fp2) -> blst_fp2 {
    let mut out = blst_fp2::default();
    // SAFETY: as for `add` (the caller never passes zero).
    unsafe { blst::blst_fp2_eucl_inverse(&mut out, a) };
    out
}

fn sqrt(a: &blst_fp2) -> Option<blst_fp2> {
    let mut out = blst_fp2::default();
    // SAFETY: as for `add`; blst says whether a root exists.
    unsafe { blst::blst_fp2_sqrt(&mut out, a) }.then_some(out)
}

fn is_square(a: &blst_fp2) -> bool {
    // SAFETY: reads one valid element.
    unsafe { blst::blst_fp2_is_square(a) }
}

fn is_zero(a: &blst_fp2) -> bool {
    a.fp.iter().all(|f| f.l.iter().all(|l| *l == 0))
}

/// The constants of the map, from the RFC's values.
struct Consts {
    one: blst_fp2,
    z: blst_fp2,
    a: blst_fp2,
    b: blst_fp2,
    /// −B'/A'.
    minus_b_over_a: blst_fp2,
    /// B'/(Z·A'), x1 in the exceptional case.
    b_over_za: blst_fp2,
    x_num: [blst_fp2; 4],
    x_den: [blst_fp2; 3],
    y_num: [blst_fp2; 4],
    y_den: [blst_fp2; 4],
    /// h_eff, little-endian (80 bytes, 636 bits).
    h_eff: [u8; 80],
}

fn consts() -> &'static Consts {
    static CONSTS: OnceLock<Consts> = OnceLock::new();
    CONSTS.get_or_init(Consts::new)
}

/// An element of Fp from hex (big-endian, below p).
fn fp(hex_be: &str) -> blst_fp {
    let digits = format!("{hex_be:0>96}");
    let bytes = hex::decode(digits).expect("constant hex");
    let mut out = blst_fp::default();
    // SAFETY: reads 48 bytes, writes the out-parameter.
    unsafe { blst::blst_fp_from_bendian(&mut out, bytes.as_ptr()) };
    out
}

fn fp2(c0: &str, c1: &str) -> blst_fp2 {
    blst_fp2 {
        fp: [fp(c0), fp(c1)],
    }
}

impl Consts {
    fn new() -> Self {
        // RFC 9380 §8.8.2 (E2': A', B', Z) and Appendix E.3 (the isogeny).
        const K1: &str = "5c759507e8e333ebb5b7a9a47d7ed8532c52d39fd3a042a88b58423c50ae15d5c2638e343d9c71c6238aaaaaaaa97d6";
        const K2: &str = "11560bf17baa99bc32126fced787c88f984f87adf7ae0c7f9a208c6b4f20a4181472aaa9cb8d555526a9ffffffffc71a";
        const K3: &str = "11560bf17baa99bc32126fced787c88f984f87adf7ae0c7f9a208c6b4f20a4181472aaa9cb8d555526a9ffffffffc71e";
        const K4: &str = "8ab05f8bdd54cde190937e76bc3e447cc27c3d6fbd7063fcd104635a790520c0a395554e5c6aaaa9354ffffffffe38d";
        const K5: &str = "171d6541fa38ccfaed6dea691f5fb614cb14b4e7f4e810aa22d6108f142b85757098e38d0f671c7188e2aaaaaaaa5ed1";
        const K6: &str = "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaa63";
        const K7: &str = "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaa9f";
        const K8: &str = "1530477c7ab4113b59a4c18b076d11930f7da5d4a07f649bf54439d87d27e500fc8c25ebf8c92f6812cfc71c71c6d706";
        const K9: &str = "5c759507e8e333ebb5b7a9a47d7ed8532c52d39fd3a042a88b58423c50ae15d5c2638e343d9c71c6238aaaaaaaa97be";
        const K10: &str = "11560bf17baa99bc32126fced787c88f984f87adf7ae0c7f9a208c6b4f20a4181472aaa9cb8d555526a9ffffffffc71c";
        const K11: &str = "8ab05f8bdd54cde190937e76bc3e447cc27c3d6fbd7063fcd104635a790520c0a395554e5c6aaaa9354ffffffffe38f";
        const K12: &str = "124c9ad43b6cf79bfbf7043de3811ad0761b0f37a1e26286b0e977c69aa274524e79097a56dc4bd9e1b371c71c718b10";
        const K13: &str = "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffa8fb";
        const K14: &str = "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffa9d3";
        const K15: &str = "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaa99";
        const H_EFF: &str = "0bc69f08f2ee75b3584c6a0ea91b352888e2a8e9145ad7689986ff031508ffe1329c2f178731db956d82bf015d1212b02ec0ec69d7477c1ae954cbc06689f6a359894c0adebbf6b4e8020005aaa95551";
        let one = fp2("1", "0");
        let a = fp2("0", "f0"); // 240·i
        let b = fp2("3f4", "3f4"); // 1012·(1 + i)
        let z = neg(&fp2("2", "1")); // −(2 + i)
        let minus_b_over_a = neg(&mul(&b, &inverse(&a)));
        let b_over_za = mul(&b, &inverse(&mul(&z, &a)));
        let mut h_eff = [0u8; 80];
        let be = hex::decode(H_EFF).expect("constant hex");
        for (i, byte) in be.iter().rev().enumerate() {
            h_eff[i] = *byte;
        }
        Self {
            one,
            z,
            a,
            b,
            minus_b_over_a,
            b_over_za,
            x_num: [fp2(K1, K1), fp2("0", K2), fp2(K3, K4), fp2(K5, "0")],
            x_den: [fp2("0", K6), fp2("c", K7), one],
            y_num: [fp2(K8, K8), fp2("0", K9), fp2(K10, K11), fp2(K12, "0")],
            y_den: [fp2(K13, K13), fp2("0", K14), fp2("12", K15), one],
            h_eff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::bls::hashed::hash_to_g2;

    fn equal(a: &blst_p2, b: &blst_p2) -> bool {
        // SAFETY: reads two valid points.
        unsafe { blst::blst_p2_is_equal(a, b) }
    }

    /// h_eff·Q(m) is blst's H(m), for messages of many lengths.
    #[test]
    fn cleared_it_is_blsts_hash_to_g2() {
        for n in 0..40usize {
            let msg: Vec<u8> = (0..n * 7).map(|i| (i * 31 + n) as u8).collect();
            let q = hash_to_e2(&msg);
            assert!(
                equal(&clear_cofactor(&q), &hash_to_g2(&msg)),
                "length {}",
                n * 7
            );
        }
    }

    /// The map alone against blst's, for field elements hashed from
    /// seeds and for zero (the exceptional case of the SWU map).
    #[test]
    fn the_map_is_blsts_map_to_g2_before_clearing() {
        let zero = blst_fp2::default();
        let mut cases: Vec<[blst_fp2; 2]> = (0..20u8).map(|i| hash_to_field(&[i; 9])).collect();
        cases.push([zero, hash_to_field(b"x")[1]]);
        cases.push([zero, zero]);
        for [u0, u1] in cases {
            let mut theirs = blst_p2::default();
            // SAFETY: reads two valid elements, writes the out-parameter.
            unsafe { blst::blst_map_to_g2(&mut theirs, &u0, &u1) };
            assert!(equal(&clear_cofactor(&map_to_e2(&u0, &u1)), &theirs));
        }
    }

    /// Negative control: the points are not in G2 before clearing (so the
    /// clearing is doing work the sum relies on), and a wrong sign choice
    /// would not give blst's point.
    #[test]
    fn before_clearing_the_point_is_not_blsts() {
        let q = hash_to_e2(b"agora");
        assert!(!equal(&q, &hash_to_g2(b"agora")));
        let (x, y) = sswu(&hash_to_field(b"agora")[0]);
        let flipped = iso_map((x, neg(&y)));
        let [_, u1] = hash_to_field(b"agora");
        let mut other = blst_p2::default();
        let p1 = iso_map(sswu(&u1));
        // SAFETY: valid points in, one exclusive point out.
        unsafe { blst::blst_p2_add_or_double(&mut other, &flipped, &p1) };
        assert!(!equal(&clear_cofactor(&other), &hash_to_g2(b"agora")));
    }
}
