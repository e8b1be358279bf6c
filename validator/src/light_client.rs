//! Light-client verification from a trusted checkpoint, as CometBFT's light
//! client does it: no replay, no seed chain, only headers, certificates and
//! validator sets.
//!
//! **Trust assumption.** The checkpoint (height and block hash) is one the
//! user trusts (from their own node, a block explorer they verified, a
//! friend). From it:
//! - *sequential* steps accept header h+1 when its `validators_hash` is the
//!   `next_validators_hash` of the trusted header h and its certificate has
//!   more than 2/3 of that set's power: each set was authenticated by the
//!   certified header before it, so this holds while no set walked through
//!   had more than 1/3 faulty power (the same assumption as `agora audit`
//!   from genesis, minus the lottery and state checks);
//! - *skipping* steps accept a later header when validators holding **more
//!   than 1/3 of the trusted set's power** signed its certificate (so at
//!   least one of them is honest, if the trusted set still has less than
//!   1/3 faulty power) and its own set's quorum signed it too. When the
//!   overlap is too small, the range is bisected until the steps succeed,
//!   down to sequential steps.
//!
//! A set that has since unbonded could sign another history (long-range
//! attack): start from a recent checkpoint, within the unbonding period.
//!
//! Not checked here (they need the chain from genesis): the proposer
//! lottery and VRF (the seed chain), and the app hash (replay).
//!
//! Everything is pure; blocks come from a `fetch` closure the caller
//! supplies (the CLI asks a node over gRPC).

use agora_proto::v1 as pb;

use crate::block::header_hash;
use crate::certificate::{CertificateError, CommitCertificate};
use crate::crypto::Hash;
use crate::types::{ChainId, Height};
use crate::validator_set::ValidatorSet;

/// A header, the certificate that commits it, and the validator set the
/// header names (all as served, untrusted until verified).
#[derive(Debug, Clone)]
pub struct LightBlock {
    /// The header.
    pub header: pb::Header,
    /// Its commit certificate.
    pub certificate: CommitCertificate,
    /// The validator set of the header's height.
    pub validators: ValidatorSet,
}

/// What a light client trusts: a verified (or checkpointed) header and its set.
#[derive(Debug, Clone)]
pub struct Trusted {
    /// Height of the trusted header.
    pub height: Height,
    /// Its block hash.
    pub block_hash: Hash,
    /// The set that certified it.
    pub validators: ValidatorSet,
    /// The hash of the next height's set, which the header commits to.
    pub next_validators_hash: Vec<u8>,
}

/// Why a light block was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum LightError {
    /// The checkpoint's header is not the trusted hash.
    #[error("height {height}: the served header hashes to {got}, the checkpoint says {expected}")]
    CheckpointMismatch {
        /// Checkpoint height.
        height: Height,
        /// Trusted hash (hex).
        expected: String,
        /// Served header's hash (hex).
        got: String,
    },
    /// A header field does not fit.
    #[error("height {height}: {what}")]
    Header {
        /// The header's height.
        height: Height,
        /// What is wrong.
        what: String,
    },
    /// The certificate does not verify against the header's own set.
    #[error("height {height}: certificate: {source}")]
    Certificate {
        /// The header's height.
        height: Height,
        /// Why.
        source: CertificateError,
    },
    /// Too little of the trusted set signed to skip to this height.
    #[error(
        "height {height}: signers hold {overlap} of the trusted set's {total} power at height {trusted}, not more than 1/3"
    )]
    NotEnoughTrust {
        /// The target height.
        height: Height,
        /// The trusted height.
        trusted: Height,
        /// Trusted-set power among the signers.
        overlap: u64,
        /// The trusted set's total power.
        total: u64,
    },
    /// The block source failed.
    #[error("fetching height {height}: {message}")]
    Fetch {
        /// The height asked for.
        height: Height,
        /// Why.
        message: String,
    },
}

impl Trusted {
    /// Trust the genesis set, as the state "after height 0": the header of
    /// height 1 must name this set and have the all-zero parent hash.
    pub fn from_genesis(validators: ValidatorSet) -> Self {
        Self {
            height: 0,
            block_hash: [0; 32],
            next_validators_hash: validators.hash().to_vec(),
            validators,
        }
    }

    /// Trust `block` because its header hashes to `checkpoint` (the user's
    /// trusted hash); its set must be the one the header names.
    pub fn from_checkpoint(block: &LightBlock, checkpoint: &Hash) -> Result<Self, LightError> {
        let h = block.header.height;
        let got = header_hash(&block.header);
        if &got != checkpoint {
            return Err(LightError::CheckpointMismatch {
                height: h,
                expected: hex::encode(checkpoint),
                got: hex::encode(got),
            });
        }
        names_its_set(block)?;
        Ok(Self::of(block, got))
    }

    fn of(block: &LightBlock, block_hash: Hash) -> Self {
        Self {
            height: block.header.height,
            block_hash,
            validators: block.validators.clone(),
            next_validators_hash: block.header.next_validators_hash.clone(),
        }
    }
}

fn names_its_set(block: &LightBlock) -> Result<(), LightError> {
    if block.header.validators_hash != block.validators.hash() {
        return Err(LightError::Header {
            height: block.header.height,
            what: format!(
                "validators_hash {} is not the hash of the served set {}",
                hex::encode(&block.header.validators_hash),
                hex::encode(block.validators.hash())
            ),
        });
    }
    Ok(())
}

/// The block's own checks: chain, its set, its certificate (> 2/3 of its
/// set, over its hash). Returns its hash.
fn self_consistent(chain: &ChainId, block: &LightBlock) -> Result<Hash, LightError> {
    let h = block.header.height;
    if block.header.chain_id != chain.as_str() {
        return Err(LightError::Header {
            height: h,
            what: format!(
                "chain_id {:?} is not {:?}",
                block.header.chain_id,
                chain.as_str()
            ),
        });
    }
    names_its_set(block)?;
    let hash = header_hash(&block.header);
    block
        .certificate
        .verify_for(chain, &block.validators, h, &hash)
        .map_err(|source| LightError::Certificate { height: h, source })?;
    Ok(hash)
}

/// Power of `trusted`'s validators (same address and key) among the
/// certificate's signers.
fn overlap(trusted: &ValidatorSet, block: &LightBlock) -> Result<u64, LightError> {
    let idx = block
        .certificate
        .signer_indices(block.validators.len())
        .map_err(|source| LightError::Certificate {
            height: block.header.height,
            source,
        })?;
    Ok(idx
        .iter()
        .map(|i| &block.validators.validators()[*i])
        .filter_map(|v| {
            trusted
                .get(&v.address)
                .filter(|t| t.public_key == v.public_key)
                .map(|t| t.power)
        })
        .sum())
}

/// Verifies `block` (above the trusted height) from `trusted`: sequentially
/// when it is the next height, by > 1/3 overlap otherwise. Returns the new
/// trusted state.
pub fn verify_step(
    chain: &ChainId,
    trusted: &Trusted,
    block: &LightBlock,
) -> Result<Trusted, LightError> {
    let h = block.header.height;
    if h <= trusted.height {
        return Err(LightError::Header {
            height: h,
            what: format!("not above the trusted height {}", trusted.height),
        });
    }
    let hash = self_consistent(chain, block)?;
    if h == trusted.height + 1 {
        if block.header.validators_hash != trusted.next_validators_hash {
            return Err(LightError::Header {
                height: h,
                what: format!(
                    "validators_hash {} is not the next_validators_hash {} of trusted height {}",
                    hex::encode(&block.header.validators_hash),
                    hex::encode(&trusted.next_validators_hash),
                    trusted.height
                ),
            });
        }
        if block.header.parent_hash != trusted.block_hash {
            return Err(LightError::Header {
                height: h,
                what: "parent_hash is not the trusted block".into(),
            });
        }
    } else {
        let overlap = overlap(&trusted.validators, block)?;
        if !trusted.validators.is_one_third(overlap) {
            return Err(LightError::NotEnoughTrust {
                height: h,
                trusted: trusted.height,
                overlap,
                total: trusted.validators.total_power(),
            });
        }
    }
    Ok(Trusted::of(block, hash))
}

/// Verifies `target` from `trusted` by skipping, bisecting where the
/// overlap is too small (CometBFT's bisection). `fetch` serves light
/// blocks; every block it serves is checked. Returns the trusted state at
/// `target` and the heights verified on the way, in order.
pub fn verify_skipping<E: std::fmt::Display>(
    chain: &ChainId,
    trusted: Trusted,
    target: Height,
    mut fetch: impl FnMut(Height) -> Result<LightBlock, E>,
) -> Result<(Trusted, Vec<Height>), LightError> {
    let mut trusted = trusted;
    let mut path = Vec::new();
    // Heights still to reach, the nearest last: the target first, then the
    // pivots bisection adds. Each pivot halves a range, so the stack stays
    // below 64 entries.
    let mut pending = vec![target];
    while let Some(&h) = pending.last() {
        debug_assert!(
            h > trusted.height,
            "pending heights lie above the trusted one"
        );
        let block = fetch(h).map_err(|e| LightError::Fetch {
            height: h,
            message: e.to_string(),
        })?;
        if block.header.height != h {
            return Err(LightError::Header {
                height: h,
                what: format!("the source served height {}", block.header.height),
            });
        }
        match verify_step(chain, &trusted, &block) {
            Ok(next) => {
                trusted = next;
                path.push(h);
                pending.pop();
            }
            Err(LightError::NotEnoughTrust { .. }) => {
                // A sequential step never fails for overlap, so h > trusted + 1.
                let pivot = trusted.height + (h - trusted.height) / 2;
                debug_assert!(pivot > trusted.height && pivot < h);
                pending.push(pivot);
            }
            Err(e) => return Err(e),
        }
    }
    Ok((trusted, path))
}
