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

/// Counts the work of one operation (feature `crypto-counters`; nothing
/// otherwise).
macro_rules! count {
    ($($op:ident += $n:expr),* $(,)?) => {
        #[cfg(feature = "crypto-counters")]
        {
            $($crate::crypto::bls::counters::add($crate::crypto::bls::counters::Op::$op, $n as u64);)*
        }
    };
}

mod batch;
pub use batch::{BatchItem, batch_verify, first_invalid};

mod hashed;
pub use hashed::HashedMessage;

mod weighted;
pub use weighted::{WeightedItem, verify_weighted};

mod one_message;
pub use one_message::verify_each_of_one_message;

/// Process-wide counters of the cryptographic operations actually performed
/// (feature `crypto-counters`, for the benches that count the consensus
/// path's crypto per validator-height; off in every build that does not
/// name the feature). Relaxed atomics: a few nanoseconds against
/// microseconds of curve arithmetic.
#[cfg(feature = "crypto-counters")]
pub mod counters;

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
        count!(signings += 1, hash_to_curve += 1);
        Signature(self.0.sign(msg, SIG_DST, &[]))
    }

    /// The proof of possession: a signature of the compressed public key under the PoP DST.
    pub fn prove_possession(&self) -> Signature {
        let pk = self.public_key().to_bytes();
        count!(signings += 1, hash_to_curve += 1);
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

/// e(key, H(msg)) = e(g1, sig) for a checked key and signature, computed on
/// the calling thread. (blst's `verify` and `fast_aggregate_verify` hand
/// the hash and one Miller loop to its thread pool: the same CPU, plus a
/// thread hop, and invisible to a per-thread CPU budget; the core is meant
/// to be single-threaded.)
fn pairing_check(key: &imp::PublicKey, msg: &[u8], sig: &imp::Signature) -> Result<(), BlsError> {
    weighted::check_one(&PublicKey(*key), msg, None, &Signature(*sig))
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
        count!(pk_decodes += 1);
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
        let verify = || {
            count!(
                single_verifies += 1,
                pairing_checks += 1,
                miller_loops += 2,
                hash_to_curve += 1
            );
            pairing_check(&self.0, msg, &sig.0)
        };
        #[cfg(feature = "verify-memo")]
        if memo::is_on() {
            return memo::verdict(&[b"v", &self.to_bytes(), &sig.to_bytes(), msg], verify);
        }
        verify()
    }

    /// Verifies a proof of possession of this key.
    pub fn verify_possession(&self, pop: &Signature) -> Result<(), BlsError> {
        let pk = self.to_bytes();
        count!(
            single_verifies += 1,
            pairing_checks += 1,
            miller_loops += 2,
            hash_to_curve += 1
        );
        check(pop.0.verify(false, &pk, POP_DST, &[], &self.0, false))
    }

    /// Sums public keys (for FastAggregateVerify against a pre-aggregated key).
    pub fn aggregate(keys: &[&PublicKey]) -> Result<PublicKey, BlsError> {
        if keys.is_empty() {
            return Err(BlsError::Empty);
        }
        count!(pk_points_added += keys.len());
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
            count!(sig_decompressions += 1, sig_subgroup_checks += 1);
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
        count!(sig_aggregations += 1, sig_points_added += sigs.len());
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
        let verify = || {
            count!(
                fast_aggregate_verifies += 1,
                pairing_checks += 1,
                miller_loops += 2,
                hash_to_curve += 1,
                pk_points_added += raw.len(),
            );
            let key = imp::AggregatePublicKey::aggregate(&raw, false)
                .map_err(map_decode)?
                .to_public_key();
            pairing_check(&key, msg, &self.0)
        };
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
        count!(
            fast_aggregate_verifies += 1,
            pairing_checks += 1,
            miller_loops += 2,
            hash_to_curve += 1,
        );
        pairing_check(&aggregate_key.0, msg, &self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.to_bytes();
        write!(f, "Signature({}..)", hex::encode(&b[..8]))
    }
}

/// A signature decompressed from its 96 bytes (a point on the curve, not the
/// point at infinity) whose membership in the prime-order subgroup has **not**
/// been checked. It cannot be verified on its own: it is either checked
/// ([`Self::check`], which gives a [`Signature`]) or summed with others and
/// the sum checked ([`Self::aggregate_checked`]).
///
/// Vote quorums no longer use it: a counted vote must be its signer's own
/// signature, which a plain sum does not show (see
/// [`verify_each_of_one_message`]); it remains the rule of the test fault
/// that restores the old check. Why checking the sum is enough to *count*
/// the signers of a FastAggregateVerify (ARCHITECTURE.md, "The consensus
/// path's crypto"): the curve group E2(Fp2) is G2 × T with T the cofactor
/// part (gcd(r, h2) = 1), so each σᵢ = aᵢ + tᵢ with aᵢ ∈ G2, tᵢ ∈ T, and
/// Σσᵢ = Σaᵢ + Σtᵢ. The sum passing the subgroup check means Σtᵢ = 0, so the
/// sum *is* Σaᵢ, and the pairing equation then says exactly what it says for
/// subgroup-checked inputs. The projection σ ↦ aᵢ is efficiently computable
/// ([h2·(h2⁻¹ mod r)]σ), so an adversary who makes a false aggregate pass
/// with torsion parts yields one who does so without them: no forgery against
/// an honest signer becomes possible. What torsion can do is what colluding
/// signers can always do with FastAggregateVerify (shift value between their
/// own signatures while the sum stays right); an individual vote of theirs
/// may then not verify alone.
///
/// With random weights (batch verification of *distinct* messages) this
/// argument fails — a small-order tᵢ cancels with probability 1/ord(tᵢ) — so
/// [`batch_verify`] and [`verify_weighted`] keep taking checked [`Signature`]s.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UncheckedSignature(imp::Signature);

impl UncheckedSignature {
    /// Decompresses 96 bytes: on the curve, not infinity; no subgroup check.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        if bytes.len() != SIGNATURE_LEN {
            return Err(BlsError::WrongLength {
                expected: SIGNATURE_LEN,
                got: bytes.len(),
            });
        }
        // Compressed form with the infinity flag: never a valid signature.
        if bytes[0] & 0x40 != 0 {
            return Err(BlsError::Infinity);
        }
        count!(sig_decompressions += 1);
        imp::Signature::uncompress(bytes)
            .map(Self)
            .map_err(map_decode)
    }

    /// The subgroup check: a [`Signature`] if the point is in G2.
    pub fn check(&self) -> Result<Signature, BlsError> {
        count!(sig_subgroup_checks += 1);
        if self.0.subgroup_check() {
            Ok(Signature(self.0))
        } else {
            Err(BlsError::NotInSubgroup)
        }
    }

    /// Sums the signatures (no check of the parts) and subgroup-checks the
    /// sum; see the type's documentation for why that is sound before a
    /// FastAggregateVerify of the sum.
    pub fn aggregate_checked(sigs: &[&UncheckedSignature]) -> Result<Signature, BlsError> {
        if sigs.is_empty() {
            return Err(BlsError::Empty);
        }
        count!(
            sig_aggregations += 1,
            sig_points_added += sigs.len(),
            sig_subgroup_checks += 1
        );
        let raw: Vec<&imp::Signature> = sigs.iter().map(|s| &s.0).collect();
        let agg = imp::AggregateSignature::aggregate(&raw, false).map_err(map_decode)?;
        if !agg.subgroup_check() {
            return Err(BlsError::NotInSubgroup);
        }
        let sig = agg.to_signature();
        if sig.compress()[0] & 0x40 != 0 {
            return Err(BlsError::Infinity);
        }
        Ok(Signature(sig))
    }
}

impl From<Signature> for UncheckedSignature {
    fn from(s: Signature) -> Self {
        Self(s.0)
    }
}

impl fmt::Debug for UncheckedSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.compress();
        write!(f, "UncheckedSignature({}..)", hex::encode(&b[..8]))
    }
}

#[cfg(feature = "verify-memo")]
mod memo;

/// Turns on memoised signature checks for the calling thread (simulator
/// only; see the `verify-memo` feature). Results are unchanged: only repeated
/// work is skipped.
#[cfg(feature = "verify-memo")]
pub fn enable_verify_memo() {
    memo::enable();
}

#[cfg(test)]
/// Test support: a point X and −X of G2 as two signatures, H(m) signed
/// with the scalars 1 and r − 1 (r the group order), so no point
/// arithmetic is needed. Added to two signatures they cancel in the sum.
pub(crate) fn cancelling_pair(m: &[u8]) -> (Signature, Signature) {
    let one = {
        let mut b = [0u8; 32];
        b[31] = 1;
        b
    };
    let r_minus_one =
        hex::decode("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000000")
            .expect("hex");
    let sign = |k: &[u8]| SecretKey::from_bytes(k).expect("scalar").sign(m);
    (sign(&one), sign(&r_minus_one))
}

#[cfg(test)]
/// Test support: `vote` with its signature shifted by `x` (their sum).
pub(crate) fn shifted(vote: agora_proto::v1::Vote, x: &Signature) -> agora_proto::v1::Vote {
    let sig = Signature::from_bytes(&vote.signature).expect("a signature");
    let sum = Signature::aggregate(&[&sig, x]).expect("sum");
    agora_proto::v1::Vote {
        signature: sum.to_bytes().to_vec(),
        ..vote
    }
}

#[cfg(test)]
mod tests;
