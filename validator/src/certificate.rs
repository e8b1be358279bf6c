//! Commit certificates (DESIGN §7): proof that more than 2/3 of a height's
//! voting power precommitted one block, in constant size plus a bitmap.

use crate::consensus::signed_points::{self, SignedPoints};
use crate::crypto::{BlsError, Hash, PublicKey, Signature, hash::hash_from_slice, sha3_256};
use crate::signing::vote_bytes;
use crate::types::{ChainId, Height, Power, Round, VoteType};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;
use prost::Message;

/// Why a certificate is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// A bit is set for a validator index the set does not have.
    #[error("signer bit {index} out of range for a set of {set_len} validators")]
    SignerOutOfRange {
        /// The offending bit index.
        index: usize,
        /// Size of the validator set.
        set_len: usize,
    },
    /// The bitmap is longer than the set needs (one encoding per certificate).
    #[error("signer bitmap has {got} bytes, the set needs {expected}")]
    BitmapLength {
        /// Bytes needed for the set.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The signers hold at most 2/3 of the power.
    #[error("insufficient power: signers hold {signed} of {total}")]
    InsufficientPower {
        /// Power of the signers.
        signed: Power,
        /// Total power of the set.
        total: Power,
    },
    /// The aggregate signature does not verify for the signers.
    #[error("aggregate signature does not verify")]
    BadSignature,
    /// The certificate is for another height than expected.
    #[error("certificate is for height {got}, expected {expected}")]
    WrongHeight {
        /// Height expected by the caller.
        expected: Height,
        /// Height in the certificate.
        got: Height,
    },
    /// The certificate commits another block than expected.
    #[error("certificate commits block {got}, expected {expected}")]
    WrongBlock {
        /// Block hash expected (hex).
        expected: String,
        /// Block hash in the certificate (hex).
        got: String,
    },
    /// A field does not decode (hash length, signature encoding).
    #[error("malformed certificate: {0}")]
    Malformed(String),
}

/// A decoded commit certificate. The signature is already subgroup-checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitCertificate {
    /// Height of the committed block.
    pub height: Height,
    /// Round in which it was committed.
    pub round: Round,
    /// Hash of the committed block's header.
    pub block_hash: Hash,
    /// Bitmap of signers over the canonical validator order (LSB first).
    pub signers: Vec<u8>,
    /// Aggregate of the signers' precommit signatures.
    pub aggregate_signature: Signature,
}

/// What ties an encoded certificate to a chain, its height and block,
/// read without decoding its signature: all a certified block's rules need
/// of the certificate it carries (`engine::block_rules`), whose signature
/// the signers of that block checked. Decoding the signature (a square
/// root and a subgroup check) was a seventh of a catching-up node's CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateLink {
    /// Height of the committed block.
    pub height: Height,
    /// Hash of the committed block's header.
    pub block_hash: Hash,
}

impl CertificateLink {
    /// The link of `p`, refused on the same field errors as
    /// [`CommitCertificate::from_proto`] bar the signature's.
    pub fn of_proto(p: &pb::CommitCertificate) -> Result<Self, CertificateError> {
        let block_hash = hash_from_slice(&p.block_hash)
            .ok_or_else(|| CertificateError::Malformed("block hash must be 32 bytes".into()))?;
        // 100,000 validators need 12,500 bytes; anything longer is junk.
        if p.signers.len() > 16 * 1024 {
            return Err(CertificateError::Malformed("signer bitmap too long".into()));
        }
        Ok(Self {
            height: p.height,
            block_hash,
        })
    }
}

/// The hash of a certificate as encoded (`last_commit_hash`), without
/// decoding it. For a certificate that decodes it equals
/// [`CommitCertificate::hash`] of the decoding: prost encodes fields in
/// order and drops unknown ones, and a signature that decodes is in its one
/// compressed form, so decoding and encoding again gives the same bytes.
pub fn encoded_hash(p: &pb::CommitCertificate) -> Hash {
    sha3_256(&p.encode_to_vec())
}

/// Number of bitmap bytes a set of `n` validators needs.
pub fn bitmap_len(n: usize) -> usize {
    n.div_ceil(8)
}

/// Whether bit `i` of a bitmap is set.
pub fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// Sets bit `i` of a bitmap, growing it as needed.
pub fn set_bit(bitmap: &mut Vec<u8>, i: usize) {
    if bitmap.len() <= i / 8 {
        bitmap.resize(i / 8 + 1, 0);
    }
    bitmap[i / 8] |= 1 << (i % 8);
}

impl CommitCertificate {
    /// Builds a certificate from precommits for (height, round, block_hash),
    /// given as (canonical index, signature) pairs whose signatures the caller
    /// has verified. Duplicate indices are counted once.
    pub fn from_precommits(
        set: &ValidatorSet,
        height: Height,
        round: Round,
        block_hash: Hash,
        precommits: &[(usize, Signature)],
    ) -> Result<Self, CertificateError> {
        let mut signers = vec![0u8; bitmap_len(set.len())];
        let mut sigs = Vec::with_capacity(precommits.len());
        for (i, s) in precommits {
            if *i >= set.len() {
                return Err(CertificateError::SignerOutOfRange {
                    index: *i,
                    set_len: set.len(),
                });
            }
            if !bit(&signers, *i) {
                set_bit(&mut signers, *i);
                sigs.push(s);
            }
        }
        let aggregate_signature =
            Signature::aggregate(&sigs).map_err(|e| CertificateError::Malformed(e.to_string()))?;
        Ok(Self {
            height,
            round,
            block_hash,
            signers,
            aggregate_signature,
        })
    }

    /// The same certificate with more signers: `extra` precommit signatures
    /// (canonical index, signature) of the same (height, round, block) are
    /// added to the aggregate and the bitmap; indices already signing are
    /// skipped. The caller verifies the result (one FastAggregateVerify):
    /// a proposer widens the certificate of the previous block with the
    /// precommits that arrived after the quorum, so that the block rewards
    /// and the downtime window (DESIGN §8) count every validator that signed
    /// in time for the next proposal, not only the first > 2/3.
    pub fn with_more_signers(
        &self,
        set: &ValidatorSet,
        extra: &[(usize, Signature)],
    ) -> Result<Self, CertificateError> {
        let mut signers = self.signers.clone();
        let mut sigs = vec![&self.aggregate_signature];
        for (i, s) in extra {
            if *i >= set.len() {
                return Err(CertificateError::SignerOutOfRange {
                    index: *i,
                    set_len: set.len(),
                });
            }
            if !bit(&signers, *i) {
                set_bit(&mut signers, *i);
                sigs.push(s);
            }
        }
        let aggregate_signature =
            Signature::aggregate(&sigs).map_err(|e| CertificateError::Malformed(e.to_string()))?;
        Ok(Self {
            signers,
            aggregate_signature,
            ..self.clone()
        })
    }

    /// Builds a certificate from the aggregate of verified precommits for
    /// (height, round, block_hash) of the validators at `signers` (canonical
    /// indices): the vote set keeps that sum as it verifies, so the decision
    /// costs no re-aggregation. Duplicate indices are an error.
    pub fn from_aggregate(
        set: &ValidatorSet,
        height: Height,
        round: Round,
        block_hash: Hash,
        signers: &[usize],
        aggregate_signature: Signature,
    ) -> Result<Self, CertificateError> {
        let mut bitmap = vec![0u8; bitmap_len(set.len())];
        for i in signers {
            if *i >= set.len() {
                return Err(CertificateError::SignerOutOfRange {
                    index: *i,
                    set_len: set.len(),
                });
            }
            if bit(&bitmap, *i) {
                return Err(CertificateError::Malformed(format!("signer {i} twice")));
            }
            set_bit(&mut bitmap, *i);
        }
        Ok(Self {
            height,
            round,
            block_hash,
            signers: bitmap,
            aggregate_signature,
        })
    }

    /// Indices of the signers; checks that every set bit is in range and that
    /// the bitmap has exactly the length the set needs.
    pub fn signer_indices(&self, set_len: usize) -> Result<Vec<usize>, CertificateError> {
        let mut out = Vec::new();
        for (byte_i, b) in self.signers.iter().enumerate() {
            for bit_i in 0..8 {
                if b & (1 << bit_i) != 0 {
                    let i = byte_i * 8 + bit_i;
                    if i >= set_len {
                        return Err(CertificateError::SignerOutOfRange { index: i, set_len });
                    }
                    out.push(i);
                }
            }
        }
        if self.signers.len() != bitmap_len(set_len) {
            return Err(CertificateError::BitmapLength {
                expected: bitmap_len(set_len),
                got: self.signers.len(),
            });
        }
        Ok(out)
    }

    /// Summed power of the signers.
    pub fn signed_power(&self, set: &ValidatorSet) -> Result<Power, CertificateError> {
        let idx = self.signer_indices(set.len())?;
        Ok(idx.iter().map(|i| set.validators()[*i].power).sum())
    }

    /// Verifies the certificate against the validator set of its height: the
    /// bitmap, the power (> 2/3), then one FastAggregateVerify over the
    /// precommit signing bytes. The cheap checks come first so a bad
    /// certificate costs no pairing.
    pub fn verify(&self, chain: &ChainId, set: &ValidatorSet) -> Result<(), CertificateError> {
        // Nothing kept: the plain check (an empty deque allocates nothing).
        self.verify_reusing(chain, set, &SignedPoints::default())
    }

    /// [`Self::verify`] from the hashed precommit bytes when `signed` holds
    /// them (this validator precommitted the same block in the same round),
    /// so they are not hashed to G2 again.
    pub fn verify_reusing(
        &self,
        chain: &ChainId,
        set: &ValidatorSet,
        signed: &SignedPoints,
    ) -> Result<(), CertificateError> {
        let keys = self.quorum_keys(set)?;
        signed_points::fast_aggregate_verify(
            signed,
            &self.aggregate_signature,
            &self.signing_bytes(chain),
            &keys,
        )
        .map_err(|_| CertificateError::BadSignature)
    }

    /// The signers' keys, once the bitmap fits `set` and their power is
    /// more than 2/3 of it (the cheap checks, before any pairing).
    fn quorum_keys<'s>(
        &self,
        set: &'s ValidatorSet,
    ) -> Result<Vec<&'s PublicKey>, CertificateError> {
        let idx = self.signer_indices(set.len())?;
        let signed: Power = idx.iter().map(|i| set.validators()[*i].power).sum();
        if !set.is_quorum(signed) {
            return Err(CertificateError::InsufficientPower {
                signed,
                total: set.total_power(),
            });
        }
        Ok(idx
            .iter()
            .map(|i| &set.validators()[*i].public_key)
            .collect())
    }

    /// The precommit signing bytes every signer signed.
    fn signing_bytes(&self, chain: &ChainId) -> Vec<u8> {
        vote_bytes(
            chain,
            VoteType::Precommit,
            self.height,
            self.round,
            &self.block_hash,
        )
    }

    /// [`Self::verify`], and that it commits `block_hash` at `height`.
    pub fn verify_for(
        &self,
        chain: &ChainId,
        set: &ValidatorSet,
        height: Height,
        block_hash: &Hash,
    ) -> Result<(), CertificateError> {
        self.matches(height, block_hash)?;
        self.verify(chain, set)
    }

    /// That it commits `block_hash` at `height` (no signature check).
    pub fn matches(&self, height: Height, block_hash: &Hash) -> Result<(), CertificateError> {
        if self.height != height {
            return Err(CertificateError::WrongHeight {
                expected: height,
                got: self.height,
            });
        }
        if &self.block_hash != block_hash {
            return Err(CertificateError::WrongBlock {
                expected: hex::encode(block_hash),
                got: hex::encode(self.block_hash),
            });
        }
        Ok(())
    }

    /// Every check of [`Self::verify`] but the pairing: the bitmap and the
    /// power, then the signers' keys summed. Returns the summed key and the
    /// precommit signing bytes the aggregate signature must verify over, for
    /// a randomised batch of many certificates (`crate::crypto::bls::batch_verify`).
    pub fn stage(
        &self,
        chain: &ChainId,
        set: &ValidatorSet,
    ) -> Result<(PublicKey, Vec<u8>), CertificateError> {
        let keys = self.quorum_keys(set)?;
        // Keys with proofs of possession never sum to infinity; if they did,
        // FastAggregateVerify would fail too.
        let key = PublicKey::aggregate(&keys).map_err(|_| CertificateError::BadSignature)?;
        let msg = self.signing_bytes(chain);
        Ok((key, msg))
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> pb::CommitCertificate {
        pb::CommitCertificate {
            height: self.height,
            round: self.round,
            block_hash: self.block_hash.to_vec(),
            signers: self.signers.clone(),
            aggregate_signature: self.aggregate_signature.to_bytes().to_vec(),
        }
    }

    /// Decodes a certificate from the wire (strict signature decoding).
    pub fn from_proto(p: &pb::CommitCertificate) -> Result<Self, CertificateError> {
        let CertificateLink { height, block_hash } = CertificateLink::of_proto(p)?;
        let aggregate_signature =
            Signature::from_bytes(&p.aggregate_signature).map_err(|e: BlsError| {
                CertificateError::Malformed(format!("aggregate signature: {e}"))
            })?;
        Ok(Self {
            height,
            round: p.round,
            block_hash,
            signers: p.signers.clone(),
            aggregate_signature,
        })
    }

    /// Its height and block.
    pub fn link(&self) -> CertificateLink {
        CertificateLink {
            height: self.height,
            block_hash: self.block_hash,
        }
    }

    /// Hash of the encoded certificate, carried by the next header as `last_commit_hash`.
    pub fn hash(&self) -> Hash {
        sha3_256(&self.to_proto().encode_to_vec())
    }
}
