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
//!
//! Single verification is `ed25519-consensus`'s. The batch equation is
//! ours ([`batch`]), on `curve25519-dalek` 4, for speed: that library
//! picks its AVX2 backend at run time on stable Rust, and the key points
//! come decoded with the keys instead of being decompressed in every
//! batch. It is the same ZIP-215 equation, and the tests hold it to
//! `ed25519-consensus`'s single and batch verdicts.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use ed25519_consensus::{SigningKey, VerificationKey};
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
        let bytes = self.0.verification_key().to_bytes();
        AccountPublicKey::from_bytes(&bytes).expect("the key of a secret key is a curve point")
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
/// Compared, ordered and hashed by its bytes.
#[derive(Clone, Copy)]
pub struct AccountPublicKey {
    /// The key as `ed25519-consensus` decoded it, for single verification.
    key: VerificationKey,
    /// The same point as `curve25519-dalek` 4 decoded it, for the batch
    /// equation ([`batch`]), so that a batch decompresses no key.
    point: EdwardsPoint,
}

impl AccountPublicKey {
    /// Decodes 32 bytes from outside.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AccountKeyError> {
        let b: [u8; 32] = bytes.try_into().map_err(|_| AccountKeyError::Length {
            expected: ACCOUNT_PUBLIC_KEY_LEN,
            got: bytes.len(),
        })?;
        let key = VerificationKey::try_from(b).map_err(|_| AccountKeyError::NotOnCurve)?;
        // The two libraries decode with the same rule (the high bit is x's
        // sign, y is taken mod p, no canonicity check), so one refusing
        // what the other accepted would be a bug in one of them; the key
        // is refused then too, so both paths always see the same keys
        // (test `both_libraries_decode_the_same_keys`).
        let point = CompressedEdwardsY(b)
            .decompress()
            .ok_or(AccountKeyError::NotOnCurve)?;
        Ok(Self { key, point })
    }

    /// The 32 bytes, as given when decoded.
    pub fn to_bytes(&self) -> [u8; ACCOUNT_PUBLIC_KEY_LEN] {
        self.key.to_bytes()
    }

    /// The 32 bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; ACCOUNT_PUBLIC_KEY_LEN] {
        self.key.as_bytes()
    }

    /// The decoded point, for the batch equation.
    pub(crate) fn point(&self) -> &EdwardsPoint {
        &self.point
    }

    /// Verifies `sig` over `msg` (ZIP-215, cofactored).
    pub fn verify(&self, msg: &[u8], sig: &AccountSignature) -> Result<(), AccountKeyError> {
        self.key
            .verify(&sig.0, msg)
            .map_err(|_| AccountKeyError::BadSignature)
    }
}

impl PartialEq for AccountPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for AccountPublicKey {}

impl PartialOrd for AccountPublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AccountPublicKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for AccountPublicKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
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
        _ if batch::equation_holds(items, seed) => vec![true; items.len()],
        _ => items
            .iter()
            .map(|it| it.key.verify(it.msg, it.sig).is_ok())
            .collect(),
    }
}

/// The batch equation alone, with no fallback: for tests and benches that
/// compare it with single verification.
pub fn batch_equation_holds(items: &[AccountBatchItem<'_>], seed: &[u8; 32]) -> bool {
    batch::equation_holds(items, seed)
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
    /// Bytes one cached key takes at most: its 32 bytes as the map's key,
    /// the decoded key (two curve points), and a generous share of the
    /// B-tree's node.
    pub const ENTRY_BYTES: usize = 32 + std::mem::size_of::<AccountPublicKey>() + 64;

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

mod batch;
#[cfg(test)]
mod tests;
