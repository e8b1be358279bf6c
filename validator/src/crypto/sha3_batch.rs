//! SHA3-256 of many messages at once, for the places that hash hundreds of
//! independent short messages in a row (the state tree's leaves and
//! ranges, a block's transactions).
//!
//! Where the CPU has AVX-512F, eight Keccak-f[1600] instances run side by
//! side, one per 64-bit lane of 25 registers: one instruction does a step
//! of all eight, and the χ step is one ternary-logic instruction per word.
//! Where it has AVX2 only (this project's 2-core VM since session 36),
//! four instances run the same way in 256-bit registers, a rotation being
//! two shifts and an OR. Elsewhere, and for the last few messages of a
//! batch, the `sha3` crate hashes them one at a time. The digests are the same either way (tests
//! below against `sha3`, for every length around the block boundaries).
//! Which path runs depends only on the CPU, never on the data, and both
//! give SHA3-256 as FIPS 202 defines it, so a node's verdicts cannot
//! depend on it.

use super::hash::{Hash, sha3_256_parts};

/// SHA3-256's rate: the bytes absorbed per permutation.
const RATE: usize = 136;
/// Words of the rate.
const RATE_WORDS: usize = RATE / 8;
/// Instances per SIMD batch, at most (the AVX-512 path).
const LANES: usize = 8;

/// The widest path this CPU runs: instances per permutation, and the
/// smallest group worth it (a remainder below is hashed one at a time: a
/// permutation of eight lanes costs about as much as two or three single
/// ones, one of four lanes about as much as one and a half).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Avx512,
    Avx2,
    Scalar,
}

impl Path {
    fn of_this_cpu() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Path::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") {
                return Path::Avx2;
            }
        }
        Path::Scalar
    }

    /// (instances per permutation, smallest group run on it).
    fn width(self) -> (usize, usize) {
        match self {
            Path::Avx512 => (LANES, 3),
            Path::Avx2 => (4, 2),
            Path::Scalar => (1, usize::MAX),
        }
    }
}

/// SHA3-256 of each message, a message being the concatenation of its
/// parts (as [`sha3_256_parts`]); digests in the messages' order.
pub fn sha3_256_batch<'a, M: AsRef<[&'a [u8]]>>(messages: &[M]) -> Vec<Hash> {
    let mut out = Vec::with_capacity(messages.len());
    sha3_256_batch_into(messages, &mut out);
    out
}

/// [`sha3_256_batch`], appending the digests to `out` (a buffer the
/// caller reuses).
pub fn sha3_256_batch_into<'a, M: AsRef<[&'a [u8]]>>(messages: &[M], out: &mut Vec<Hash>) {
    let before = out.len();
    out.reserve(messages.len());
    let mut rest = messages;
    let path = Path::of_this_cpu();
    let (width, smallest) = path.width();
    if rest.len() >= smallest {
        let mut padded: [Vec<u8>; LANES] = Default::default();
        while rest.len() >= smallest {
            let (group, tail) = rest.split_at(rest.len().min(width));
            hash_group(path, group, &mut padded, out);
            rest = tail;
        }
    }
    out.extend(rest.iter().map(|m| sha3_256_parts(m.as_ref())));
    debug_assert_eq!(out.len() - before, messages.len());
}

/// Pads a message (FIPS 202 `pad10*1` after SHA-3's `01` suffix) into
/// `out`, whole rate blocks; returns how many.
fn pad_into(parts: &[&[u8]], out: &mut Vec<u8>) -> usize {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let blocks = len / RATE + 1;
    out.clear();
    out.reserve(blocks * RATE);
    for p in parts {
        out.extend_from_slice(p);
    }
    out.resize(blocks * RATE, 0);
    out[len] ^= 0x06;
    out[blocks * RATE - 1] ^= 0x80;
    blocks
}

/// Hashes 1 to `path`'s width of messages side by side (unused lanes
/// absorb nothing and are dropped) and appends their digests; `padded` is
/// scratch space, reused across groups.
fn hash_group<'a, M: AsRef<[&'a [u8]]>>(
    path: Path,
    group: &[M],
    padded: &mut [Vec<u8>; LANES],
    out: &mut Vec<Hash>,
) {
    debug_assert!(!group.is_empty() && group.len() <= path.width().0);
    let mut blocks = [0usize; LANES];
    for (i, m) in group.iter().enumerate() {
        blocks[i] = pad_into(m.as_ref(), &mut padded[i]);
    }
    let mut digests = [[0u64; 4]; LANES];
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Path::of_this_cpu` saw AVX-512F.
        Path::Avx512 => unsafe { avx512::absorb(padded, &blocks, &mut digests) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Path::of_this_cpu` saw AVX2.
        Path::Avx2 => unsafe { avx2::absorb(padded, &blocks, &mut digests) },
        _ => unreachable!("no SIMD path {path:?} here ({blocks:?})"),
    }
    for d in &digests[..group.len()] {
        let mut h = [0u8; 32];
        for (i, w) in d.iter().enumerate() {
            h[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        out.push(h);
    }
}

/// Keccak-f[1600]'s round constants (FIPS 202, ι).
#[cfg(target_arch = "x86_64")]
const RC: [u64; 24] = [
    0x0000_0000_0000_0001,
    0x0000_0000_0000_8082,
    0x8000_0000_0000_808A,
    0x8000_0000_8000_8000,
    0x0000_0000_0000_808B,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8009,
    0x0000_0000_0000_008A,
    0x0000_0000_0000_0088,
    0x0000_0000_8000_8009,
    0x0000_0000_8000_000A,
    0x0000_0000_8000_808B,
    0x8000_0000_0000_008B,
    0x8000_0000_0000_8089,
    0x8000_0000_0000_8003,
    0x8000_0000_0000_8002,
    0x8000_0000_0000_0080,
    0x0000_0000_0000_800A,
    0x8000_0000_8000_000A,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8080,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8008,
];

/// Keccak's ρ and π as (source word, destination word, rotation), for
/// every word but (0, 0), which neither moves nor rotates: word (x, y)
/// rotated moves to (y, 2x + 3y). Handed to each SIMD path's own macro,
/// which needs every rotation as a literal (its shift or rotate
/// intrinsics take it as a const generic).
#[cfg(target_arch = "x86_64")]
macro_rules! rho_pi_table {
    ($apply:ident) => {
        $apply!(
            (1, 10, 1),
            (2, 20, 62),
            (3, 5, 28),
            (4, 15, 27),
            (5, 16, 36),
            (6, 1, 44),
            (7, 11, 6),
            (8, 21, 55),
            (9, 6, 20),
            (10, 7, 3),
            (11, 17, 10),
            (12, 2, 43),
            (13, 12, 25),
            (14, 22, 39),
            (15, 23, 41),
            (16, 8, 45),
            (17, 18, 15),
            (18, 3, 21),
            (19, 13, 8),
            (20, 14, 18),
            (21, 24, 2),
            (22, 9, 61),
            (23, 19, 56),
            (24, 4, 14)
        )
    };
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{LANES, RATE_WORDS, RC};
    use std::arch::x86_64::*;

    /// Absorbs each lane's padded message (`blocks[i]` rate blocks in
    /// `padded[i]`; a lane with none is unused) and writes each lane's
    /// first four state words after its own last block: its digest.
    #[target_feature(enable = "avx512f")]
    pub(super) fn absorb(
        padded: &[Vec<u8>; LANES],
        blocks: &[usize; LANES],
        digests: &mut [[u64; 4]; LANES],
    ) {
        let most = blocks.iter().copied().max().unwrap_or(0);
        let mut s = [_mm512_setzero_si512(); 25];
        for b in 0..most {
            for (w, sw) in s.iter_mut().enumerate().take(RATE_WORDS) {
                let mut lane = [0u64; LANES];
                for (i, l) in lane.iter_mut().enumerate() {
                    // A lane past its last block absorbs nothing more; its
                    // digest was taken already.
                    if b < blocks[i] {
                        let at = (b * RATE_WORDS + w) * 8;
                        let word = padded[i][at..at + 8].try_into().expect("8 bytes");
                        *l = u64::from_le_bytes(word);
                    }
                }
                *sw = _mm512_xor_si512(*sw, from_lanes(lane));
            }
            permute(&mut s);
            for (i, d) in digests.iter_mut().enumerate() {
                if blocks[i] == b + 1 {
                    for (k, dw) in d.iter_mut().enumerate() {
                        *dw = to_lanes(s[k])[i];
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    fn from_lanes(l: [u64; LANES]) -> __m512i {
        // `_mm512_set_epi64` takes the highest lane first.
        _mm512_set_epi64(
            l[7] as i64,
            l[6] as i64,
            l[5] as i64,
            l[4] as i64,
            l[3] as i64,
            l[2] as i64,
            l[1] as i64,
            l[0] as i64,
        )
    }

    #[target_feature(enable = "avx512f")]
    fn to_lanes(v: __m512i) -> [u64; LANES] {
        let mut out = [0u64; LANES];
        // SAFETY: `out` is 64 writable bytes; the store is unaligned.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), v) };
        out
    }

    /// Keccak-f[1600] on eight states at once: `s[x + 5y]` holds word
    /// (x, y) of each state in its lane.
    #[target_feature(enable = "avx512f")]
    fn permute(s: &mut [__m512i; 25]) {
        /// a ^ b ^ c in one instruction (truth table 0x96).
        macro_rules! xor3 {
            ($a:expr, $b:expr, $c:expr) => {
                _mm512_ternarylogic_epi64::<0x96>($a, $b, $c)
            };
        }
        for rc in RC {
            // θ: each word takes the parities of two neighbouring columns.
            let mut c = [_mm512_setzero_si512(); 5];
            for (x, cx) in c.iter_mut().enumerate() {
                let t = xor3!(s[x], s[x + 5], s[x + 10]);
                *cx = xor3!(t, s[x + 15], s[x + 20]);
            }
            for x in 0..5 {
                let d = _mm512_xor_si512(c[(x + 4) % 5], _mm512_rol_epi64::<1>(c[(x + 1) % 5]));
                for y in 0..5 {
                    s[x + 5 * y] = _mm512_xor_si512(s[x + 5 * y], d);
                }
            }
            // ρ and π: word (x, y) rotated moves to (y, 2x + 3y).
            let mut b = [_mm512_setzero_si512(); 25];
            macro_rules! rho_pi {
                ($(($src:literal, $dst:literal, $rot:literal)),*) => {
                    $( b[$dst] = _mm512_rol_epi64::<$rot>(s[$src]); )*
                };
            }
            b[0] = s[0];
            rho_pi_table!(rho_pi);
            // χ: a ^ (!b & c) along each row, one instruction (0xD2).
            for y in 0..5 {
                for x in 0..5 {
                    s[x + 5 * y] = _mm512_ternarylogic_epi64::<0xD2>(
                        b[x + 5 * y],
                        b[(x + 1) % 5 + 5 * y],
                        b[(x + 2) % 5 + 5 * y],
                    );
                }
            }
            // ι
            s[0] = _mm512_xor_si512(s[0], _mm512_set1_epi64(rc as i64));
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{LANES, RATE_WORDS, RC};
    use std::arch::x86_64::*;

    /// Instances per permutation: four 64-bit lanes of a 256-bit register.
    const WIDTH: usize = 4;

    /// Absorbs each of the first four lanes' padded messages (`blocks[i]`
    /// rate blocks in `padded[i]`; a lane with none is unused) and writes
    /// each lane's first four state words after its own last block: its
    /// digest. The four-lane twin of `avx512::absorb`.
    #[target_feature(enable = "avx2")]
    pub(super) fn absorb(
        padded: &[Vec<u8>; LANES],
        blocks: &[usize; LANES],
        digests: &mut [[u64; 4]; LANES],
    ) {
        debug_assert!(blocks[WIDTH..].iter().all(|b| *b == 0));
        let most = blocks[..WIDTH].iter().copied().max().unwrap_or(0);
        let mut s = [_mm256_setzero_si256(); 25];
        for b in 0..most {
            for (w, sw) in s.iter_mut().enumerate().take(RATE_WORDS) {
                let mut lane = [0i64; WIDTH];
                for (i, l) in lane.iter_mut().enumerate() {
                    // A lane past its last block absorbs nothing more.
                    if b < blocks[i] {
                        let at = (b * RATE_WORDS + w) * 8;
                        let word = padded[i][at..at + 8].try_into().expect("8 bytes");
                        *l = i64::from_le_bytes(word);
                    }
                }
                // `_mm256_set_epi64x` takes the highest lane first.
                let v = _mm256_set_epi64x(lane[3], lane[2], lane[1], lane[0]);
                *sw = _mm256_xor_si256(*sw, v);
            }
            permute(&mut s);
            for (i, d) in digests.iter_mut().enumerate().take(WIDTH) {
                if blocks[i] == b + 1 {
                    for (k, dw) in d.iter_mut().enumerate() {
                        *dw = to_lanes(s[k])[i];
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx2")]
    fn to_lanes(v: __m256i) -> [u64; WIDTH] {
        let mut out = [0u64; WIDTH];
        // SAFETY: `out` is 32 writable bytes; the store is unaligned.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), v) };
        out
    }

    /// Keccak-f[1600] on four states at once: `s[x + 5y]` holds word
    /// (x, y) of each state in its lane. AVX2 has no 64-bit rotation nor
    /// ternary logic: a rotation is two shifts and an OR, χ an AND-NOT and
    /// an XOR.
    #[target_feature(enable = "avx2")]
    fn permute(s: &mut [__m256i; 25]) {
        macro_rules! rol {
            ($v:expr, $n:literal) => {
                _mm256_or_si256(
                    _mm256_slli_epi64::<$n>($v),
                    _mm256_srli_epi64::<{ 64 - $n }>($v),
                )
            };
        }
        for rc in RC {
            // θ: each word takes the parities of two neighbouring columns.
            let mut c = [_mm256_setzero_si256(); 5];
            for (x, cx) in c.iter_mut().enumerate() {
                let t = _mm256_xor_si256(s[x], s[x + 5]);
                let t = _mm256_xor_si256(t, s[x + 10]);
                let t = _mm256_xor_si256(t, s[x + 15]);
                *cx = _mm256_xor_si256(t, s[x + 20]);
            }
            for x in 0..5 {
                let d = _mm256_xor_si256(c[(x + 4) % 5], rol!(c[(x + 1) % 5], 1));
                for y in 0..5 {
                    s[x + 5 * y] = _mm256_xor_si256(s[x + 5 * y], d);
                }
            }
            // ρ and π: word (x, y) rotated moves to (y, 2x + 3y).
            let mut b = [_mm256_setzero_si256(); 25];
            b[0] = s[0];
            macro_rules! rho_pi {
                ($(($src:literal, $dst:literal, $rot:literal)),*) => {
                    $( b[$dst] = rol!(s[$src], $rot); )*
                };
            }
            rho_pi_table!(rho_pi);
            // χ: a ^ (!b & c) along each row.
            for y in 0..5 {
                for x in 0..5 {
                    let not_b_and_c =
                        _mm256_andnot_si256(b[(x + 1) % 5 + 5 * y], b[(x + 2) % 5 + 5 * y]);
                    s[x + 5 * y] = _mm256_xor_si256(b[x + 5 * y], not_b_and_c);
                }
            }
            // ι
            s[0] = _mm256_xor_si256(s[0], _mm256_set1_epi64x(rc as i64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hash::sha3_256;

    /// Messages of every length from 0 to three blocks and a bit, so that
    /// each padding case (the suffix and the final bit in one byte at
    /// length 135, a block of padding alone at 136) meets the SIMD path,
    /// in groups where the lanes' block counts differ.
    #[test]
    fn every_length_hashes_as_sha3_does() {
        let data: Vec<u8> = (0..450u32).map(|i| (i * 7 + 3) as u8).collect();
        let messages: Vec<[&[u8]; 1]> = (0..=data.len()).map(|n| [&data[..n]]).collect();
        let got = sha3_256_batch(&messages);
        for (m, g) in messages.iter().zip(&got) {
            assert_eq!(*g, sha3_256(m[0]), "length {}", m[0].len());
        }
        assert_eq!(got.len(), messages.len());
    }

    /// Parts are concatenated, and every batch size from empty to two
    /// groups and a remainder gives each message its own digest in order.
    #[test]
    fn parts_and_batch_sizes_keep_each_digest_in_place() {
        let keys: Vec<[u8; 32]> = (0..20u8).map(|i| [i; 32]).collect();
        for n in 0..keys.len() {
            let messages: Vec<[&[u8]; 3]> = keys[..n]
                .iter()
                .map(|k| [b"JMT::IntrnalNode".as_slice(), k, &keys[n - 1]])
                .collect();
            let got = sha3_256_batch(&messages);
            let want: Vec<Hash> = messages.iter().map(|m| sha3_256_parts(m)).collect();
            assert_eq!(got, want, "{n} messages");
        }
    }

    /// Each SIMD path this CPU has, called directly (whatever the widest
    /// is), on groups of one to its width of lanes with mixed block
    /// counts.
    #[test]
    fn every_simd_path_of_this_cpu_agrees_with_sha3() {
        let mut paths = vec![];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                paths.push(Path::Avx512);
            }
            if std::is_x86_feature_detected!("avx2") {
                paths.push(Path::Avx2);
            }
        }
        let data: Vec<u8> = (0..300u32).map(|i| (i * 13) as u8).collect();
        for path in paths {
            for n in 1..=path.width().0 {
                let group: Vec<[&[u8]; 1]> =
                    (0..n).map(|i| [&data[..(i * 37 + n) % 300]]).collect();
                let mut got = Vec::new();
                hash_group(path, &group, &mut Default::default(), &mut got);
                let want: Vec<Hash> = group.iter().map(|m| sha3_256(m[0])).collect();
                assert_eq!(got, want, "{path:?}, {n} lanes");
            }
        }
    }
}
