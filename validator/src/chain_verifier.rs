//! Verifying a chain from genesis while trusting nothing but the genesis.
//!
//! Used by `agora audit` and by block sync: each step takes the next header,
//! the certificate that commits it and the validator set the header commits
//! to for the following height, and checks, in order of cost:
//! the height and parent link; that the header names the validator set we
//! trust for this height; that the next set matches `next_validators_hash`;
//! that the proposer is the lottery winner of (height, proposal_round) and its
//! VRF proof verifies (which yields the next seed); and finally the
//! certificate (one FastAggregateVerify).
//!
//! Trust flows forward: the set of height 1 comes from genesis; the header of
//! height h, certified by the set of h, commits to the set of h+1 in
//! `next_validators_hash` (that set was computed at the end of h−1: DESIGN §6,
//! a set computed at the end of h takes effect at h+2 and header h+1 carries it).

use crate::block::{header_hash, list_hash};
use crate::certificate::{CertificateError, CommitCertificate};
use crate::crypto::{Hash, Signature, ZERO_HASH, vrf};
use crate::lottery;
use crate::types::{Address, ChainId, Height};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;

/// The first check a block failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The header is for another chain.
    #[error("height {height}: header chain id {got:?}, expected {expected:?}")]
    WrongChain {
        /// Height of the block.
        height: Height,
        /// Chain id expected.
        expected: String,
        /// Chain id found.
        got: String,
    },
    /// Heights must follow one another.
    #[error("expected height {expected}, got {got}")]
    HeightGap {
        /// Height expected.
        expected: Height,
        /// Height found.
        got: Height,
    },
    /// The parent hash does not link to the previous block.
    #[error("height {height}: parent hash {got} does not match previous block {expected}")]
    BrokenLink {
        /// Height of the block.
        height: Height,
        /// Previous block's hash (hex).
        expected: String,
        /// Parent hash in the header (hex).
        got: String,
    },
    /// The header names another validator set than the one trusted for its height.
    #[error("height {height}: header validators_hash does not match the trusted set")]
    ValidatorsHashMismatch {
        /// Height of the block.
        height: Height,
    },
    /// The offered next validator set is not the one the header commits to.
    #[error("height {height}: next validator set does not match next_validators_hash")]
    NextValidatorsMismatch {
        /// Height of the block.
        height: Height,
    },
    /// The header's proposer did not win the lottery.
    #[error("height {height} round {round}: proposer {got} is not the lottery winner {expected}")]
    WrongProposer {
        /// Height of the block.
        height: Height,
        /// Proposal round in the header.
        round: u32,
        /// Winner (hex address).
        expected: String,
        /// Header's proposer (hex bytes).
        got: String,
    },
    /// The block was proposed in a round after the one that committed it.
    #[error("height {height}: proposal round {proposal_round} after commit round {commit_round}")]
    RoundOrder {
        /// Height of the block.
        height: Height,
        /// Round in the header.
        proposal_round: u32,
        /// Round in the certificate.
        commit_round: u32,
    },
    /// The VRF proof is malformed or does not verify.
    #[error("height {height}: bad VRF proof: {reason}")]
    BadVrf {
        /// Height of the block.
        height: Height,
        /// What failed.
        reason: String,
    },
    /// The certificate commits another block than this header.
    #[error("height {height}: certificate is for another block or height")]
    CertificateMismatch {
        /// Height of the block.
        height: Height,
    },
    /// The certificate does not verify against the trusted set.
    #[error("height {height}: certificate: {source}")]
    Certificate {
        /// Height of the block.
        height: Height,
        /// Why the certificate failed.
        source: CertificateError,
    },
    /// The block body does not match the header's commitments.
    #[error("height {height}: body does not match header ({what})")]
    BodyMismatch {
        /// Height of the block.
        height: Height,
        /// Which commitment failed.
        what: &'static str,
    },
    /// A header field is missing or has the wrong size.
    #[error("height {height}: malformed header: {what}")]
    Malformed {
        /// Height of the block.
        height: Height,
        /// Which field.
        what: &'static str,
    },
}

/// What a verified step established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBlock {
    /// Height verified.
    pub height: Height,
    /// Its block hash.
    pub block_hash: Hash,
    /// The chain seed after this block.
    pub seed: Hash,
    /// The lottery winner that proposed it.
    pub proposer: Address,
}

/// Verifies consecutive blocks from a trusted starting point.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    chain: ChainId,
    next_height: Height,
    prev_hash: Hash,
    seed: Hash,
    set: ValidatorSet,
}

impl ChainVerifier {
    /// Starts at genesis: `seed0` from the genesis file, and the validator set
    /// of height 1 derived from the genesis file.
    pub fn from_genesis(chain: ChainId, seed0: Hash, genesis_set: ValidatorSet) -> Self {
        Self {
            chain,
            next_height: 1,
            prev_hash: ZERO_HASH,
            seed: seed0,
            set: genesis_set,
        }
    }

    /// The next height this verifier expects.
    pub fn next_height(&self) -> Height {
        self.next_height
    }

    /// The seed after the last verified block.
    pub fn seed(&self) -> Hash {
        self.seed
    }

    /// The trusted validator set of the next height.
    pub fn validator_set(&self) -> &ValidatorSet {
        &self.set
    }

    /// Hash of the last verified block (zero before height 1).
    pub fn last_block_hash(&self) -> Hash {
        self.prev_hash
    }

    /// Verifies the next header with its certificate. `next_set` is the
    /// validator set of height + 1, which this header commits to in
    /// `next_validators_hash`. On success the verifier advances one height and
    /// trusts `next_set` for it.
    pub fn verify_next(
        &mut self,
        header: &pb::Header,
        cert: &CommitCertificate,
        next_set: &ValidatorSet,
    ) -> Result<VerifiedBlock, ChainError> {
        let h = header.height;
        if h != self.next_height {
            return Err(ChainError::HeightGap {
                expected: self.next_height,
                got: h,
            });
        }
        if header.chain_id != self.chain.as_str() {
            return Err(ChainError::WrongChain {
                height: h,
                expected: self.chain.to_string(),
                got: header.chain_id.chars().take(64).collect(),
            });
        }
        if header.parent_hash.as_slice() != self.prev_hash.as_slice() {
            return Err(ChainError::BrokenLink {
                height: h,
                expected: hex::encode(self.prev_hash),
                got: hex::encode(&header.parent_hash),
            });
        }
        if header.validators_hash.as_slice() != self.set.hash().as_slice() {
            return Err(ChainError::ValidatorsHashMismatch { height: h });
        }
        if header.next_validators_hash.as_slice() != next_set.hash().as_slice() {
            return Err(ChainError::NextValidatorsMismatch { height: h });
        }
        if header.proposal_round > cert.round {
            return Err(ChainError::RoundOrder {
                height: h,
                proposal_round: header.proposal_round,
                commit_round: cert.round,
            });
        }
        let winner = lottery::proposer(&self.set, &self.seed, h, header.proposal_round);
        if header.proposer_address.as_slice() != winner.address.0.as_slice() {
            return Err(ChainError::WrongProposer {
                height: h,
                round: header.proposal_round,
                expected: winner.address.to_string(),
                got: hex::encode(&header.proposer_address),
            });
        }
        let proof = Signature::from_bytes(&header.vrf_proof).map_err(|e| ChainError::BadVrf {
            height: h,
            reason: e.to_string(),
        })?;
        let output =
            vrf::verify(&winner.public_key, &self.chain, h, &self.seed, &proof).map_err(|e| {
                ChainError::BadVrf {
                    height: h,
                    reason: e.to_string(),
                }
            })?;
        let block_hash = header_hash(header);
        if cert.height != h || cert.block_hash != block_hash {
            return Err(ChainError::CertificateMismatch { height: h });
        }
        cert.verify(&self.chain, &self.set)
            .map_err(|source| ChainError::Certificate { height: h, source })?;

        let seed = vrf::next_seed(&self.seed, &output);
        let proposer = winner.address;
        self.seed = seed;
        self.prev_hash = block_hash;
        self.next_height = h + 1;
        self.set = next_set.clone();
        Ok(VerifiedBlock {
            height: h,
            block_hash,
            seed,
            proposer,
        })
    }
}

/// Checks that a block's body matches the commitments in its header:
/// transactions, evidence and the carried certificate of the parent.
pub fn verify_body(block: &pb::Block) -> Result<(), ChainError> {
    let header = block.header.as_ref().ok_or(ChainError::Malformed {
        height: 0,
        what: "missing header",
    })?;
    let h = header.height;
    if header.txs_hash.as_slice() != list_hash(&block.txs).as_slice() {
        return Err(ChainError::BodyMismatch {
            height: h,
            what: "txs_hash",
        });
    }
    if header.evidence_hash.as_slice() != list_hash(&block.evidence).as_slice() {
        return Err(ChainError::BodyMismatch {
            height: h,
            what: "evidence_hash",
        });
    }
    let last_commit_hash = match &block.last_commit {
        Some(c) => CommitCertificate::from_proto(c)
            .map_err(|_| ChainError::BodyMismatch {
                height: h,
                what: "last_commit",
            })?
            .hash(),
        None => ZERO_HASH,
    };
    if header.last_commit_hash.as_slice() != last_commit_hash.as_slice() {
        return Err(ChainError::BodyMismatch {
            height: h,
            what: "last_commit_hash",
        });
    }
    Ok(())
}
