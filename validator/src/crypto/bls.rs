//! BLS12-381 signatures with blst, variant `min_pk` (public keys in G1, 48
//! bytes; signatures in G2, 96 bytes) and the IETF proof-of-possession
//! ciphersuite, the one Ethereum uses (DESIGN §4).
//!
//! Decoding is strict: every public key and signature that comes from bytes is
//! subgroup-checked and the point at infinity is rejected, once, when it is
//! decoded. Values of [`PublicKey`] and [`Signature`] are therefore always
//! valid, and the verification functions below skip the (costly) checks.

use blst::BLST_ERROR;
use blst::min_pk as imp;
use std::fmt;
use zeroize::Zeroize;

/// Domain separation tag of ordinary signatures.
pub const SIG_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// Domain separation tag of proofs of possession.
pub const POP_DST: &[u8] = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// Length of a compressed public key.
pub const PUBLIC_KEY_LEN: usize = 48;
/// Length of a compressed signature.
pub const SIGNATURE_LEN: usize = 96;
/// Length of a serialised secret key.
pub const SECRET_KEY_LEN: usize = 32;

/// Why a BLS operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlsError {
    /// The bytes have the wrong length for the object.
    #[error("wrong length: expected {expected} bytes, got {got}")]
    WrongLength {
        /// Required length.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// The bytes do not encode a curve point (or a scalar in range).
    #[error("bytes do not encode a valid point or scalar")]
    BadEncoding,
    /// The point is the point at infinity, which is never a valid key or signature.
    #[error("point at infinity")]
    Infinity,
    /// The point is on the curve but not in the prime-order subgroup.
    #[error("point not in the prime-order subgroup")]
    NotInSubgroup,
    /// The signature does not verify.
    #[error("signature does not verify")]
    VerifyFailed,
    /// Nothing to aggregate or verify.
    #[error("empty input")]
    Empty,
    /// Key generation needs at least 32 bytes of seed.
    #[error("seed must be at least 32 bytes")]
    SeedTooShort,
}

fn map_decode(e: BLST_ERROR) -> BlsError {
    match e {
        BLST_ERROR::BLST_PK_IS_INFINITY => BlsError::Infinity,
        BLST_ERROR::BLST_POINT_NOT_IN_GROUP => BlsError::NotInSubgroup,
        _ => BlsError::BadEncoding,
    }
}

fn check(e: BLST_ERROR) -> Result<(), BlsError> {
    if e == BLST_ERROR::BLST_SUCCESS {
        Ok(())
    } else {
        Err(BlsError::VerifyFailed)
    }
}

/// A BLS secret key. Zeroized on drop (blst's key zeroizes itself; the
/// serialised copies this type hands out are [`zeroize::Zeroizing`]), and
/// never printed by `Debug`.
#[derive(Clone)]
pub struct SecretKey(imp::SecretKey);

impl SecretKey {
    /// Derives a key from a seed of at least 32 bytes with the IETF KeyGen.
    pub fn from_seed(seed: &[u8]) -> Result<Self, BlsError> {
        if seed.len() < 32 {
            return Err(BlsError::SeedTooShort);
        }
        imp::SecretKey::key_gen(seed, &[])
            .map(Self)
            .map_err(|_| BlsError::BadEncoding)
    }

    /// Reads a 32-byte big-endian scalar; rejects zero and values out of range.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        if bytes.len() != SECRET_KEY_LEN {
            return Err(BlsError::WrongLength {
                expected: SECRET_KEY_LEN,
                got: bytes.len(),
            });
        }
        if bytes.iter().all(|b| *b == 0) {
            return Err(BlsError::BadEncoding);
        }
        imp::SecretKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| BlsError::BadEncoding)
    }

    /// The 32-byte big-endian scalar, in a buffer that is wiped when dropped.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; SECRET_KEY_LEN]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.sk_to_pk())
    }

    /// Signs `msg` with the signature DST.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg, SIG_DST, &[]))
    }

    /// The proof of possession: a signature of the compressed public key under the PoP DST.
    pub fn prove_possession(&self) -> Signature {
        let pk = self.public_key().to_bytes();
        Signature(self.0.sign(&pk, POP_DST, &[]))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted secret key>")
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        // blst's SecretKey zeroizes itself on drop too; this keeps the promise
        // even if that ever changes.
        self.0.zeroize();
    }
}

/// A validated BLS public key (in G1, not infinity, in the subgroup).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(imp::PublicKey);

impl PublicKey {
    /// Decodes a 48-byte compressed key with the subgroup and infinity checks.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(BlsError::WrongLength {
                expected: PUBLIC_KEY_LEN,
                got: bytes.len(),
            });
        }
        imp::PublicKey::key_validate(bytes)
            .map(Self)
            .map_err(map_decode)
    }

    /// The 48-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.compress()
    }

    /// Verifies `sig` over `msg` under the signature DST.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), BlsError> {
        let verify = || check(sig.0.verify(false, msg, SIG_DST, &[], &self.0, false));
        #[cfg(feature = "verify-memo")]
        if memo::is_on() {
            return memo::verdict(&[b"v", &self.to_bytes(), &sig.to_bytes(), msg], verify);
        }
        verify()
    }

    /// Verifies a proof of possession of this key.
    pub fn verify_possession(&self, pop: &Signature) -> Result<(), BlsError> {
        let pk = self.to_bytes();
        check(pop.0.verify(false, &pk, POP_DST, &[], &self.0, false))
    }

    /// Sums public keys (for FastAggregateVerify against a pre-aggregated key).
    pub fn aggregate(keys: &[&PublicKey]) -> Result<PublicKey, BlsError> {
        if keys.is_empty() {
            return Err(BlsError::Empty);
        }
        let raw: Vec<&imp::PublicKey> = keys.iter().map(|k| &k.0).collect();
        imp::AggregatePublicKey::aggregate(&raw, false)
            .map(|a| PublicKey(a.to_public_key()))
            .map_err(map_decode)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.to_bytes()))
    }
}

impl std::hash::Hash for PublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.to_bytes().hash(state);
    }
}

/// A validated BLS signature (in G2, not infinity, in the subgroup).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(imp::Signature);

impl Signature {
    /// Decodes a 96-byte compressed signature with the subgroup and infinity checks.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        if bytes.len() != SIGNATURE_LEN {
            return Err(BlsError::WrongLength {
                expected: SIGNATURE_LEN,
                got: bytes.len(),
            });
        }
        let decode = || {
            imp::Signature::sig_validate(bytes, true)
                .map(Self)
                .map_err(map_decode)
        };
        #[cfg(feature = "verify-memo")]
        if memo::is_on() {
            return memo::decoded(bytes, decode);
        }
        decode()
    }

    /// The 96-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0.compress()
    }

    /// Sums signatures. The inputs are already subgroup-checked, so the sum is
    /// computed without re-checking them.
    pub fn aggregate(sigs: &[&Signature]) -> Result<Signature, BlsError> {
        if sigs.is_empty() {
            return Err(BlsError::Empty);
        }
        let raw: Vec<&imp::Signature> = sigs.iter().map(|s| &s.0).collect();
        imp::AggregateSignature::aggregate(&raw, false)
            .map(|a| Signature(a.to_signature()))
            .map_err(map_decode)
    }

    /// FastAggregateVerify: every key signed the same `msg` and `self` is the
    /// sum of their signatures. Sound only for keys with a verified proof of
    /// possession (DESIGN §4).
    pub fn fast_aggregate_verify(&self, msg: &[u8], keys: &[&PublicKey]) -> Result<(), BlsError> {
        if keys.is_empty() {
            return Err(BlsError::Empty);
        }
        let raw: Vec<&imp::PublicKey> = keys.iter().map(|k| &k.0).collect();
        let verify = || check(self.0.fast_aggregate_verify(false, msg, SIG_DST, &raw));
        #[cfg(feature = "verify-memo")]
        if memo::is_on() {
            let sig = self.to_bytes();
            let key_bytes: Vec<[u8; PUBLIC_KEY_LEN]> = keys.iter().map(|k| k.to_bytes()).collect();
            let mut parts: Vec<&[u8]> = vec![b"f", &sig, msg];
            parts.extend(key_bytes.iter().map(|k| &k[..]));
            return memo::verdict(&parts, verify);
        }
        verify()
    }

    /// Like [`Self::fast_aggregate_verify`] with the keys already summed.
    pub fn fast_aggregate_verify_pre_aggregated(
        &self,
        msg: &[u8],
        aggregate_key: &PublicKey,
    ) -> Result<(), BlsError> {
        check(
            self.0
                .fast_aggregate_verify_pre_aggregated(false, msg, SIG_DST, &aggregate_key.0),
        )
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.to_bytes();
        write!(f, "Signature({}..)", hex::encode(&b[..8]))
    }
}

/// One item of a batch verification: a key, a message and its signature.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The signer's key.
    pub key: &'a PublicKey,
    /// The signed message.
    pub msg: &'a [u8],
    /// The signature to check.
    pub sig: &'a Signature,
}

/// Verifies many signatures over distinct messages at once, weighting each by
/// a random scalar so that invalid signatures cannot cancel out.
///
/// The core has no randomness of its own: the caller supplies one non-zero
/// 64-bit scalar per item from a source the adversary cannot predict (the node
/// uses the OS generator; the simulator a seeded one). `Ok` means every
/// signature is valid; on `Err` the caller falls back to per-item checks to
/// find the bad ones.
pub fn batch_verify(items: &[BatchItem<'_>], randomness: &[u64]) -> Result<(), BlsError> {
    if items.is_empty() {
        return Err(BlsError::Empty);
    }
    if randomness.len() != items.len() || randomness.contains(&0) {
        return Err(BlsError::BadEncoding);
    }
    let msgs: Vec<&[u8]> = items.iter().map(|i| i.msg).collect();
    let keys: Vec<&imp::PublicKey> = items.iter().map(|i| &i.key.0).collect();
    let sigs: Vec<&imp::Signature> = items.iter().map(|i| &i.sig.0).collect();
    let rands: Vec<blst::blst_scalar> = randomness
        .iter()
        .map(|r| {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&r.to_le_bytes());
            blst::blst_scalar { b }
        })
        .collect();
    check(imp::Signature::verify_multiple_aggregate_signatures(
        &msgs, SIG_DST, &keys, false, &sigs, false, &rands, 64,
    ))
}

/// Per-thread memoisation of signature decoding and verification, for the
/// deterministic simulator only: there, every in-process validator checks
/// the same signatures, and a seed would otherwise spend most of its time
/// re-verifying what another simulated validator already verified.
/// Verification is a pure function of its inputs, so a remembered verdict is
/// exactly the verdict a fresh check would give; nothing else changes.
/// Compiled only with the `verify-memo` feature, and off until
/// [`enable_verify_memo`] is called on a thread.
#[cfg(feature = "verify-memo")]
mod memo {
    use super::{BlsError, SIGNATURE_LEN, Signature};
    use crate::crypto::hash::{Hash, sha3_256_parts};
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    /// Entries kept per table before it is cleared (bounds the memory).
    const MAX_ENTRIES: usize = 200_000;

    thread_local! {
        static ON: Cell<bool> = const { Cell::new(false) };
        static VERDICTS: RefCell<HashMap<Hash, Result<(), BlsError>>> = RefCell::new(HashMap::new());
        static DECODED: RefCell<HashMap<[u8; SIGNATURE_LEN], Result<Signature, BlsError>>> =
            RefCell::new(HashMap::new());
    }

    pub fn enable() {
        ON.with(|on| on.set(true));
    }

    pub fn is_on() -> bool {
        ON.with(Cell::get)
    }

    fn remember<K: std::hash::Hash + Eq, V: Clone>(
        table: &RefCell<HashMap<K, V>>,
        key: K,
        compute: impl FnOnce() -> V,
    ) -> V {
        if let Some(v) = table.borrow().get(&key) {
            return v.clone();
        }
        let v = compute();
        let mut t = table.borrow_mut();
        if t.len() >= MAX_ENTRIES {
            t.clear();
        }
        t.insert(key, v.clone());
        v
    }

    /// The verdict for the check identified by `parts`, computed at most
    /// once per thread.
    pub fn verdict(
        parts: &[&[u8]],
        check: impl FnOnce() -> Result<(), BlsError>,
    ) -> Result<(), BlsError> {
        let key = sha3_256_parts(parts);
        VERDICTS.with(|t| remember(t, key, check))
    }

    /// The decoding of a signature, computed at most once per thread.
    pub fn decoded(
        bytes: &[u8],
        decode: impl FnOnce() -> Result<Signature, BlsError>,
    ) -> Result<Signature, BlsError> {
        match <[u8; SIGNATURE_LEN]>::try_from(bytes) {
            Ok(key) => DECODED.with(|t| remember(t, key, decode)),
            Err(_) => decode(),
        }
    }
}

/// Turns on memoised signature checks for the calling thread (simulator
/// only; see the `verify-memo` feature). Results are unchanged: only repeated
/// work is skipped.
#[cfg(feature = "verify-memo")]
pub fn enable_verify_memo() {
    memo::enable();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memoised checks give exactly the fresh verdicts, for good and bad
    /// signatures alike, however often they are asked.
    #[cfg(feature = "verify-memo")]
    #[test]
    fn memoised_checks_give_the_same_verdicts() {
        std::thread::spawn(|| {
            enable_verify_memo();
            let (k1, k2) = (key(1).public_key(), key(2).public_key());
            let s1 = key(1).sign(b"m");
            let s2 = key(2).sign(b"m");
            let agg = Signature::aggregate(&[&s1, &s2]).unwrap();
            for _ in 0..3 {
                assert!(k1.verify(b"m", &s1).is_ok());
                assert_eq!(k1.verify(b"n", &s1), Err(BlsError::VerifyFailed));
                assert_eq!(k2.verify(b"m", &s1), Err(BlsError::VerifyFailed));
                assert!(agg.fast_aggregate_verify(b"m", &[&k1, &k2]).is_ok());
                assert!(agg.fast_aggregate_verify(b"m", &[&k1]).is_err());
                assert!(agg.fast_aggregate_verify(b"x", &[&k1, &k2]).is_err());
                assert_eq!(Signature::from_bytes(&s1.to_bytes()), Ok(s1));
                assert!(Signature::from_bytes(&[0xff; SIGNATURE_LEN]).is_err());
            }
        })
        .join()
        .unwrap();
    }

    fn key(i: u8) -> SecretKey {
        SecretKey::from_seed(&[i; 32]).expect("32-byte seed")
    }

    #[test]
    fn sign_verify_roundtrip_and_wrong_message_fails() {
        let sk = key(1);
        let pk = sk.public_key();
        let sig = sk.sign(b"hello");
        assert!(pk.verify(b"hello", &sig).is_ok());
        assert_eq!(pk.verify(b"hellO", &sig), Err(BlsError::VerifyFailed));
        assert_eq!(
            key(2).public_key().verify(b"hello", &sig),
            Err(BlsError::VerifyFailed)
        );
        let round = Signature::from_bytes(&sig.to_bytes()).expect("valid");
        assert_eq!(round, sig);
        let pk2 = PublicKey::from_bytes(&pk.to_bytes()).expect("valid");
        assert_eq!(pk2, pk);
    }

    #[test]
    fn pop_is_domain_separated_from_signatures() {
        let sk = key(3);
        let pk = sk.public_key();
        let pop = sk.prove_possession();
        assert!(pk.verify_possession(&pop).is_ok());
        // A plain signature of the key bytes is not a proof of possession.
        let plain = sk.sign(&pk.to_bytes());
        assert!(pk.verify_possession(&plain).is_err());
        assert!(key(4).public_key().verify_possession(&pop).is_err());
    }

    #[test]
    fn secret_key_is_never_printed() {
        let sk = key(5);
        let hexed = hex::encode(*sk.to_bytes());
        assert!(!format!("{sk:?}").contains(&hexed[..16]));
        assert!(!format!("{sk}").contains(&hexed[..16]));
    }

    #[test]
    fn short_seed_and_zero_key_rejected() {
        assert_eq!(
            SecretKey::from_seed(&[1; 31]).err(),
            Some(BlsError::SeedTooShort)
        );
        assert!(SecretKey::from_bytes(&[0; 32]).is_err());
        assert!(SecretKey::from_bytes(&[0xff; 32]).is_err());
    }

    #[test]
    fn batch_verify_accepts_good_and_rejects_one_bad() {
        let sks: Vec<SecretKey> = (0..6).map(key).collect();
        let pks: Vec<PublicKey> = sks.iter().map(|s| s.public_key()).collect();
        let msgs: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 10]).collect();
        let mut sigs: Vec<Signature> = sks.iter().zip(&msgs).map(|(s, m)| s.sign(m)).collect();
        let rands: Vec<u64> = (1..=6u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
            .collect();
        let items = |sigs: &[Signature]| -> Vec<(usize, Signature)> {
            sigs.iter().copied().enumerate().collect()
        };
        let build = |v: &Vec<(usize, Signature)>| -> Result<(), BlsError> {
            let items: Vec<BatchItem<'_>> = v
                .iter()
                .map(|(i, s)| BatchItem {
                    key: &pks[*i],
                    msg: &msgs[*i],
                    sig: s,
                })
                .collect();
            batch_verify(&items, &rands)
        };
        assert!(build(&items(&sigs)).is_ok());
        sigs[3] = sks[3].sign(b"other");
        assert!(build(&items(&sigs)).is_err());
        assert_eq!(build(&Vec::new()), Err(BlsError::Empty));
    }

    #[test]
    fn aggregate_of_two_swapped_signatures_fails_fast_aggregate() {
        let (a, b) = (key(7), key(8));
        let (pa, pb) = (a.public_key(), b.public_key());
        let agg = Signature::aggregate(&[&a.sign(b"m"), &b.sign(b"m")]).expect("two");
        assert!(agg.fast_aggregate_verify(b"m", &[&pa, &pb]).is_ok());
        let aggk = PublicKey::aggregate(&[&pa, &pb]).expect("two");
        assert!(
            agg.fast_aggregate_verify_pre_aggregated(b"m", &aggk)
                .is_ok()
        );
        assert!(agg.fast_aggregate_verify(b"m", &[&pa]).is_err());
        let wrong = Signature::aggregate(&[&a.sign(b"m"), &b.sign(b"n")]).expect("two");
        assert!(wrong.fast_aggregate_verify(b"m", &[&pa, &pb]).is_err());
    }
}
