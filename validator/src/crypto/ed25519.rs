//! Account keys: Ed25519 under the ZIP-215 validation rules (DESIGN §4),
//! through the `ed25519-consensus` crate, so that single and batch
//! verification accept exactly the same signatures.
//!
//! ZIP-215 in short: the encodings of A (public key) and R may be
//! non-canonical (y ≥ p is accepted, as the curve library decodes it), small-order
//! points are accepted, `s` must be below the group order ℓ, and the
//! cofactored equation `[8][s]B = [8]R + [8][k]A` decides. A key that is
//! not the encoding of a curve point is refused when it is decoded.
//!
//! The core has no randomness of its own: batch verification takes a
//! 32-byte seed from the caller and draws its scalars from [`SeedRng`], a
//! SHA3-256 counter stream. Verdicts never depend on the seed (a failed
//! batch falls back to single checks; see [`verify_batch`]).

use std::collections::BTreeMap;
use std::fmt;

use ed25519_consensus::{SigningKey, VerificationKey, VerificationKeyBytes, batch};
use sha3::{Digest, Sha3_256};
use zeroize::Zeroize;

/// Bytes of an account public key.
pub const ACCOUNT_PUBLIC_KEY_LEN: usize = 32;
/// Bytes of an account signature.
pub const ACCOUNT_SIGNATURE_LEN: usize = 64;
/// Bytes of an account secret key (the RFC 8032 seed).
pub const ACCOUNT_SECRET_KEY_LEN: usize = 32;

/// Why account-key material was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountKeyError {
    /// Wrong number of bytes.
    #[error("expected {expected} bytes, got {got}")]
    Length {
        /// Length required.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// The bytes are not the encoding of a point on the curve.
    #[error("not an Ed25519 public key (no curve point has this encoding)")]
    NotOnCurve,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

/// An account's secret key (an RFC 8032 seed and the scalar expanded from
/// it). Zeroized on drop; never printed.
#[derive(Clone)]
pub struct AccountSecretKey(SigningKey);

impl AccountSecretKey {
    /// The key of a 32-byte seed (RFC 8032: the seed is the secret key).
    pub fn from_seed(seed: &[u8; ACCOUNT_SECRET_KEY_LEN]) -> Self {
        Self(SigningKey::from(*seed))
    }

    /// Reads a secret key from bytes (32 bytes, the seed).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AccountKeyError> {
        let seed: &[u8; 32] = bytes.try_into().map_err(|_| AccountKeyError::Length {
            expected: ACCOUNT_SECRET_KEY_LEN,
            got: bytes.len(),
        })?;
        Ok(Self::from_seed(seed))
    }

    /// The seed, in a buffer that is wiped when dropped.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; ACCOUNT_SECRET_KEY_LEN]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The public key.
    pub fn public_key(&self) -> AccountPublicKey {
        AccountPublicKey(self.0.verification_key())
    }

    /// Signs `msg` (deterministic, RFC 8032).
    pub fn sign(&self, msg: &[u8]) -> AccountSignature {
        AccountSignature(self.0.sign(msg))
    }
}

impl Drop for AccountSecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for AccountSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountSecretKey(<redacted>)")
    }
}

impl fmt::Display for AccountSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted account key>")
    }
}

/// An account's public key: 32 bytes, decoded to a curve point (ZIP-215:
/// non-canonical encodings and small-order points are accepted; the bytes
/// are kept as given, and the address and signatures commit to them).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountPublicKey(VerificationKey);

impl AccountPublicKey {
    /// Decodes 32 bytes from outside.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AccountKeyError> {
        let b: [u8; 32] = bytes.try_into().map_err(|_| AccountKeyError::Length {
            expected: ACCOUNT_PUBLIC_KEY_LEN,
            got: bytes.len(),
        })?;
        VerificationKey::try_from(b)
            .map(Self)
            .map_err(|_| AccountKeyError::NotOnCurve)
    }

    /// The 32 bytes, as given when decoded.
    pub fn to_bytes(&self) -> [u8; ACCOUNT_PUBLIC_KEY_LEN] {
        self.0.to_bytes()
    }

    /// The 32 bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; ACCOUNT_PUBLIC_KEY_LEN] {
        self.0.as_bytes()
    }

    /// Verifies `sig` over `msg` (ZIP-215, cofactored).
    pub fn verify(&self, msg: &[u8], sig: &AccountSignature) -> Result<(), AccountKeyError> {
        self.0
            .verify(&sig.0, msg)
            .map_err(|_| AccountKeyError::BadSignature)
    }
}

impl fmt::Debug for AccountPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountPublicKey({})", hex::encode(self.as_bytes()))
    }
}

/// An Ed25519 signature: R (32 bytes) ‖ s (32 bytes). Any 64 bytes decode;
/// an `s` not below ℓ or an R that is not a curve point fails verification.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AccountSignature(ed25519_consensus::Signature);

impl AccountSignature {
    /// Reads 64 bytes from outside.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AccountKeyError> {
        let b: [u8; 64] = bytes.try_into().map_err(|_| AccountKeyError::Length {
            expected: ACCOUNT_SIGNATURE_LEN,
            got: bytes.len(),
        })?;
        Ok(Self(ed25519_consensus::Signature::from(b)))
    }

    /// The 64 bytes.
    pub fn to_bytes(&self) -> [u8; ACCOUNT_SIGNATURE_LEN] {
        self.0.to_bytes()
    }
}

impl fmt::Debug for AccountSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountSignature({})", hex::encode(self.to_bytes()))
    }
}

/// One signature to check in a batch.
#[derive(Debug, Clone, Copy)]
pub struct AccountBatchItem<'a> {
    /// Signer.
    pub key: &'a AccountPublicKey,
    /// Signed bytes.
    pub msg: &'a [u8],
    /// Signature.
    pub sig: &'a AccountSignature,
}

/// Checks many signatures: one randomised batch equation for the lot (its
/// scalars drawn from `seed`, which should be unpredictable to whoever
/// made the signatures); if it fails, each signature on its own. Returns
/// one verdict per item. Under ZIP-215 a batch accepts only when every
/// single check does, so the verdicts are exactly the single verdicts,
/// whatever the seed.
pub fn verify_batch(items: &[AccountBatchItem<'_>], seed: &[u8; 32]) -> Vec<bool> {
    match items {
        [] => Vec::new(),
        [one] => vec![one.key.verify(one.msg, one.sig).is_ok()],
        _ => {
            let mut v = batch::Verifier::new();
            for it in items {
                v.queue((
                    VerificationKeyBytes::from(*it.key.as_bytes()),
                    it.sig.0,
                    it.msg,
                ));
            }
            if v.verify(SeedRng::new(seed)).is_ok() {
                vec![true; items.len()]
            } else {
                items
                    .iter()
                    .map(|it| it.key.verify(it.msg, it.sig).is_ok())
                    .collect()
            }
        }
    }
}

/// The batch equation alone, with no fallback: for tests and benches that
/// compare it with single verification.
pub fn batch_equation_holds(items: &[AccountBatchItem<'_>], seed: &[u8; 32]) -> bool {
    let mut v = batch::Verifier::new();
    for it in items {
        v.queue((
            VerificationKeyBytes::from(*it.key.as_bytes()),
            it.sig.0,
            it.msg,
        ));
    }
    v.verify(SeedRng::new(seed)).is_ok()
}

/// A deterministic CSPRNG from a caller's 32-byte seed: block i of the
/// stream is SHA3-256(`"agora/batch-rng/v1"` ‖ seed ‖ i as u64 big-endian).
/// Unpredictable exactly as far as the seed is; the core has no randomness
/// of its own.
pub struct SeedRng {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeedRng {
    /// A stream from `seed`.
    pub fn new(seed: &[u8; 32]) -> Self {
        Self {
            seed: *seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    fn refill(&mut self) {
        let mut h = Sha3_256::new();
        h.update(b"agora/batch-rng/v1");
        h.update(self.seed);
        h.update(self.counter.to_be_bytes());
        self.block = h.finalize().into();
        self.counter = self.counter.wrapping_add(1);
        self.used = 0;
    }
}

impl Drop for SeedRng {
    fn drop(&mut self) {
        self.seed.zeroize();
        self.block.zeroize();
    }
}

impl rand_core_06::RngCore for SeedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let mut off = 0;
        while off < dest.len() {
            if self.used == self.block.len() {
                self.refill();
            }
            let n = (dest.len() - off).min(self.block.len() - self.used);
            dest[off..off + n].copy_from_slice(&self.block[self.used..self.used + n]);
            self.used += n;
            off += n;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core_06::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core_06::CryptoRng for SeedRng {}

/// Decoded account keys by their 32 bytes, so a host decodes (decompresses)
/// each account's key once, not once per transaction. Bounded: two
/// generations of at most `capacity / 2` keys each; a key used in the old
/// generation moves to the young one, and when the young one is full the
/// old one is dropped (an approximate LRU with no per-hit bookkeeping).
#[derive(Debug, Clone)]
pub struct AccountKeyCache {
    young: BTreeMap<[u8; 32], AccountPublicKey>,
    old: BTreeMap<[u8; 32], AccountPublicKey>,
    half: usize,
    decodes: u64,
}

impl AccountKeyCache {
    /// A cache holding at most `capacity` keys (at least 2).
    pub fn new(capacity: usize) -> Self {
        Self {
            young: BTreeMap::new(),
            old: BTreeMap::new(),
            half: (capacity / 2).max(1),
            decodes: 0,
        }
    }

    /// The decoded key of `bytes`, decoding it only if not cached.
    pub fn get(&mut self, bytes: &[u8]) -> Result<AccountPublicKey, AccountKeyError> {
        let b: [u8; 32] = bytes.try_into().map_err(|_| AccountKeyError::Length {
            expected: ACCOUNT_PUBLIC_KEY_LEN,
            got: bytes.len(),
        })?;
        if let Some(k) = self.young.get(&b) {
            return Ok(*k);
        }
        let k = match self.old.remove(&b) {
            Some(k) => k,
            None => {
                self.decodes += 1;
                AccountPublicKey::from_bytes(&b)?
            }
        };
        if self.young.len() >= self.half {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(b, k);
        Ok(k)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many keys were decoded (cache misses) since creation.
    pub fn decodes(&self) -> u64 {
        self.decodes
    }
}

impl Default for AccountKeyCache {
    fn default() -> Self {
        Self::new(65_536)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sk(i: u8) -> AccountSecretKey {
        AccountSecretKey::from_seed(&[i; 32])
    }

    /// ℓ, the order of the prime subgroup, little-endian.
    const ELL: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    fn le_add(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let s = a[i] as u16 + b[i] as u16 + carry;
            out[i] = s as u8;
            carry = s >> 8;
        }
        out
    }

    fn hx(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// Encodings of the eight small-order points (torsion subgroup E[8])
    /// plus non-canonical encodings (y ≥ p) of some of them. Computed
    /// from the curve equation: y = 1 (identity), y = −1 (order 2), y = 0
    /// (order 4, both signs of x) and the two y of the order-8 points.
    fn small_order_encodings() -> Vec<([u8; 32], &'static str)> {
        let mut p_minus_1 = [0xffu8; 32];
        p_minus_1[0] = 0xec;
        p_minus_1[31] = 0x7f;
        let mut p = p_minus_1;
        p[0] = 0xed; // y = p ≡ 0, non-canonical
        let mut p_plus_1 = p_minus_1;
        p_plus_1[0] = 0xee; // y = p + 1 ≡ 1, non-canonical identity
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut neg_zero_identity = identity;
        neg_zero_identity[31] = 0x80; // x = 0 with the sign bit set
        let zero = [0u8; 32];
        let mut zero_neg = zero;
        zero_neg[31] = 0x80;
        let o8a = hx("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05");
        let mut o8a_neg = o8a;
        o8a_neg[31] |= 0x80;
        let o8b = hx("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a");
        let mut o8b_neg = o8b;
        o8b_neg[31] |= 0x80;
        vec![
            (identity, "identity"),
            (neg_zero_identity, "identity, sign bit set (non-canonical)"),
            (p_plus_1, "identity, y = p + 1 (non-canonical)"),
            (p_minus_1, "order 2"),
            (zero, "order 4"),
            (zero_neg, "order 4, other x"),
            (p, "order 4, y = p (non-canonical)"),
            (o8a, "order 8"),
            (o8a_neg, "order 8, other x"),
            (o8b, "order 8, second y"),
            (o8b_neg, "order 8, second y, other x"),
        ]
    }

    fn sig_of(r: &[u8; 32], s: &[u8; 32]) -> AccountSignature {
        let mut b = [0u8; 64];
        b[..32].copy_from_slice(r);
        b[32..].copy_from_slice(s);
        AccountSignature::from_bytes(&b).unwrap()
    }

    /// Single verdict, batch equation alone, batch with a valid signature
    /// beside it, and the fallback API all agree.
    fn agree(key: &AccountPublicKey, msg: &[u8], sig: &AccountSignature) -> bool {
        let single = key.verify(msg, sig).is_ok();
        let item = AccountBatchItem { key, msg, sig };
        assert_eq!(
            batch_equation_holds(&[item], &[1; 32]),
            single,
            "{key:?} {sig:?}"
        );
        let good_key = sk(9).public_key();
        let good_sig = sk(9).sign(b"other");
        let good = AccountBatchItem {
            key: &good_key,
            msg: b"other",
            sig: &good_sig,
        };
        for seed in [[2u8; 32], [3u8; 32]] {
            assert_eq!(batch_equation_holds(&[good, item], &seed), single);
            assert_eq!(verify_batch(&[good, item], &seed), vec![true, single]);
        }
        single
    }

    #[test]
    fn sign_verify_and_redaction() {
        let k = sk(1);
        let pk = k.public_key();
        let s = k.sign(b"hello");
        assert!(pk.verify(b"hello", &s).is_ok());
        assert!(pk.verify(b"hellp", &s).is_err());
        assert!(sk(2).public_key().verify(b"hello", &s).is_err());
        assert_eq!(AccountPublicKey::from_bytes(&pk.to_bytes()), Ok(pk));
        assert_eq!(AccountSignature::from_bytes(&s.to_bytes()), Ok(s));
        assert_eq!(
            AccountSecretKey::from_bytes(k.to_bytes().as_ref())
                .unwrap()
                .public_key(),
            pk
        );
        assert!(!format!("{k:?}{k}").contains(&hex::encode(k.to_bytes().as_ref())));
        assert!(AccountPublicKey::from_bytes(&[0; 31]).is_err());
        assert!(AccountSignature::from_bytes(&[0; 63]).is_err());
        // RFC 8032 test 1: the seed → public key mapping is standard.
        let rfc = AccountSecretKey::from_seed(&hx(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        ));
        assert_eq!(
            hex::encode(rfc.public_key().to_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex::encode(rfc.sign(b"").to_bytes()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn small_order_and_non_canonical_points_agree_in_batch_and_single() {
        let points = small_order_encodings();
        for (a, an) in &points {
            let key = AccountPublicKey::from_bytes(a)
                .unwrap_or_else(|_| panic!("ZIP-215 accepts the encoding of {an}"));
            assert_eq!(key.as_bytes(), a, "bytes are kept as given");
            for (r, rn) in &points {
                // s = 0 with small-order A and R: [8]R + [8][k]A = 0 = [8][0]B,
                // so ZIP-215 accepts it for any message.
                let sig = sig_of(r, &[0; 32]);
                assert!(agree(&key, b"any message", &sig), "A {an}, R {rn}, s = 0");
                // s = ℓ: the same equation, but s is not reduced: refused.
                let sig = sig_of(r, &ELL);
                assert!(!agree(&key, b"any message", &sig), "A {an}, R {rn}, s = ℓ");
                // s = 1: [8]B is not small order, so the equation fails.
                let mut one = [0u8; 32];
                one[0] = 1;
                assert!(
                    !agree(&key, b"m", &sig_of(r, &one)),
                    "A {an}, R {rn}, s = 1"
                );
            }
        }
    }

    #[test]
    fn s_not_below_ell_is_refused_in_batch_and_single() {
        let k = sk(3);
        let pk = k.public_key();
        let good = k.sign(b"msg");
        assert!(agree(&pk, b"msg", &good));
        let b = good.to_bytes();
        let r: [u8; 32] = b[..32].try_into().unwrap();
        let s: [u8; 32] = b[32..].try_into().unwrap();
        // s + ℓ is the same scalar mod ℓ: the malleated twin RFC 8032 forbids.
        let twin = sig_of(&r, &le_add(&s, &ELL));
        assert!(!agree(&pk, b"msg", &twin));
        let mut high = s;
        high[31] |= 0xf0;
        assert!(!agree(&pk, b"msg", &sig_of(&r, &high)));
    }

    #[test]
    fn non_canonical_r_of_a_real_key_and_off_curve_points() {
        let k = sk(4);
        let pk = k.public_key();
        // A real key with R = a non-canonical small-order encoding and
        // s = 0: [8]R = 0 but [8][k]A ≠ 0, so both paths refuse.
        let mut p_plus_1 = [0xffu8; 32];
        p_plus_1[0] = 0xee;
        p_plus_1[31] = 0x7f;
        assert!(!agree(&pk, b"m", &sig_of(&p_plus_1, &[0; 32])));
        // y = 2 is not on the curve (x² = 3/(4d+1) is not a square): the key
        // does not decode, and as R it fails both paths.
        let mut two = [0u8; 32];
        two[0] = 2;
        assert_eq!(
            AccountPublicKey::from_bytes(&two),
            Err(AccountKeyError::NotOnCurve)
        );
        let s_bytes: [u8; 32] = k.sign(b"m").to_bytes()[32..].try_into().unwrap();
        assert!(!agree(&pk, b"m", &sig_of(&two, &s_bytes)));
    }

    #[test]
    fn batch_verdicts_never_depend_on_the_seed() {
        let keys: Vec<_> = (0..8).map(sk).collect();
        let pks: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
        let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
        let mut sigs: Vec<_> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
        sigs[5] = keys[5].sign(b"something else");
        let items: Vec<_> = (0..8)
            .map(|i| AccountBatchItem {
                key: &pks[i],
                msg: &msgs[i],
                sig: &sigs[i],
            })
            .collect();
        let want: Vec<bool> = (0..8).map(|i| i != 5).collect();
        for s in 0..4u8 {
            assert_eq!(verify_batch(&items, &[s; 32]), want);
            assert!(verify_batch(&items[..5], &[s; 32]).iter().all(|v| *v));
        }
        assert!(verify_batch(&[], &[0; 32]).is_empty());
    }

    #[test]
    fn seed_rng_is_a_deterministic_stream() {
        use rand_core_06::RngCore;
        let mut a = SeedRng::new(&[1; 32]);
        let mut b = SeedRng::new(&[1; 32]);
        let mut c = SeedRng::new(&[2; 32]);
        let mut x = [0u8; 100];
        let mut y = [0u8; 100];
        a.fill_bytes(&mut x[..7]);
        a.fill_bytes(&mut x[7..]);
        b.fill_bytes(&mut y);
        assert_eq!(x, y);
        assert_ne!(c.next_u64(), u64::from_le_bytes(y[..8].try_into().unwrap()));
    }

    #[test]
    fn key_cache_decodes_each_key_once_and_stays_bounded() {
        let mut cache = AccountKeyCache::new(4);
        let pks: Vec<_> = (0..6).map(|i| sk(i).public_key().to_bytes()).collect();
        for _ in 0..3 {
            assert_eq!(cache.get(&pks[0]).unwrap().to_bytes(), pks[0]);
            assert_eq!(cache.get(&pks[1]).unwrap().to_bytes(), pks[1]);
        }
        assert_eq!(cache.decodes(), 2);
        for p in &pks {
            cache.get(p).unwrap();
        }
        assert!(cache.len() <= 4);
        let mut two = [0u8; 32];
        two[0] = 2;
        assert_eq!(cache.get(&two), Err(AccountKeyError::NotOnCurve));
        assert!(cache.get(&[0; 5]).is_err());
    }
}
