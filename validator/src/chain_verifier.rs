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
//!
//! [`ChainVerifier::verify_batch`] does the same for many heights at once: the
//! cheap checks run per header in order, the pairing checks (VRF proof under
//! the proposer's key; certificate signature under the sum of its signers'
//! keys over the precommit bytes) are deferred into one randomised
//! multi-pairing with scalars from the caller, and a failing batch is bisected
//! so the error names the same check and height as block-by-block
//! verification would.

use crate::block::{header_hash, list_hash};
use crate::certificate::{CertificateError, CommitCertificate};
use crate::crypto::bls::{self, BatchItem, BlsError};
use crate::crypto::{Hash, PublicKey, Signature, ZERO_HASH, vrf};
use crate::lottery;
use crate::signing::{vote_bytes, vrf_input};
use crate::types::{Address, ChainId, Height, Power, Round, VoteType};
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

    /// Starts after a block already trusted (the base a node installed by
    /// state sync, bound to a header its light client verified): its
    /// height, hash and the seed after it, and the set of the next height.
    pub fn after(
        chain: ChainId,
        height: Height,
        block_hash: Hash,
        seed: Hash,
        next_set: ValidatorSet,
    ) -> Self {
        Self {
            chain,
            next_height: height + 1,
            prev_hash: block_hash,
            seed,
            set: next_set,
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
    /// trusts `next_set` for it. Its two pairings are checked right away, in
    /// the order the checks are listed in the module documentation.
    pub fn verify_next(
        &mut self,
        header: &pb::Header,
        cert: &CommitCertificate,
        next_set: &ValidatorSet,
    ) -> Result<VerifiedBlock, ChainError> {
        let mut deferred = Vec::with_capacity(2);
        let staged = stage(
            &self.chain,
            &self.cursor(),
            ChainStep {
                header,
                cert,
                next_set,
                vrf_proof: None,
            },
            &mut deferred,
        );
        // The pairings staged before a structural failure come first in the
        // order of checks, so they are settled before that failure is reported.
        for d in &deferred {
            d.verify_alone()?;
        }
        let block = staged?;
        self.advance(&block, next_set);
        Ok(block)
    }

    /// Verifies consecutive blocks, doing every cheap check per header in
    /// order but deferring the pairing checks (each header's VRF proof and each
    /// certificate's aggregate signature, over the aggregate of its signers'
    /// keys) into one randomised batch verification.
    ///
    /// `randomness` holds [`SCALARS_PER_STEP`] non-zero scalars per step from
    /// a source the chain's authors cannot predict (the core has no randomness
    /// of its own). With fewer, or a zero among them, every pairing is checked
    /// on its own: same verdicts, only slower.
    ///
    /// The verdict is the one [`Self::verify_next`] would give block by block
    /// (up to the batch's 2^-64 soundness error): when the batch fails, halves
    /// are re-checked (the first half first) down to single items, so the
    /// error names the first failing check and its height. On success the
    /// verifier stands after the last step; on failure it stands at the
    /// failing height, every block before it verified.
    pub fn verify_batch(
        &mut self,
        steps: &[ChainStep<'_>],
        randomness: &[u64],
    ) -> Result<Vec<VerifiedBlock>, ChainError> {
        let mut deferred = Vec::with_capacity(steps.len() * SCALARS_PER_STEP);
        let mut blocks = Vec::with_capacity(steps.len());
        let mut cursor = self.cursor();
        let mut structural = None;
        for step in steps {
            let staged = stage(&self.chain, &cursor, *step, &mut deferred);
            match staged {
                Ok(block) => {
                    cursor = Cursor {
                        next_height: block.height + 1,
                        prev_hash: block.block_hash,
                        seed: block.seed,
                        set: step.next_set,
                    };
                    blocks.push(block);
                }
                Err(e) => {
                    structural = Some(e);
                    break;
                }
            }
        }
        // A failing pairing precedes any structural failure in the order of
        // checks: the structural one is only reached if all staged pairings pass.
        let (error, good) = match settle(&deferred, randomness) {
            Some(bad) => {
                let good = blocks.iter().take_while(|b| b.height < bad.height).count();
                (Some(bad.error()), good)
            }
            None => (structural, blocks.len()),
        };
        for (block, step) in blocks.iter().zip(steps).take(good) {
            self.advance(block, step.next_set);
        }
        match error {
            Some(e) => Err(e),
            None => Ok(blocks),
        }
    }

    fn cursor(&self) -> Cursor<'_> {
        Cursor {
            next_height: self.next_height,
            prev_hash: self.prev_hash,
            seed: self.seed,
            set: &self.set,
        }
    }

    fn advance(&mut self, block: &VerifiedBlock, next_set: &ValidatorSet) {
        self.seed = block.seed;
        self.prev_hash = block.block_hash;
        self.next_height = block.height + 1;
        if self.set.hash() != next_set.hash() {
            self.set = next_set.clone();
        }
    }
}

/// Random scalars [`ChainVerifier::verify_batch`] needs per block: one for
/// the VRF proof, one for the certificate.
pub const SCALARS_PER_STEP: usize = 2;

/// One block for [`ChainVerifier::verify_batch`].
#[derive(Debug, Clone, Copy)]
pub struct ChainStep<'a> {
    /// The block's header.
    pub header: &'a pb::Header,
    /// The certificate that commits it.
    pub cert: &'a CommitCertificate,
    /// The validator set of the next height, which the header commits to.
    pub next_set: &'a ValidatorSet,
    /// The header's VRF proof if the caller already decoded it (from
    /// exactly `header.vrf_proof`, e.g. on another thread), else None and
    /// it is decoded here.
    pub vrf_proof: Option<&'a Signature>,
}

/// What the verifier trusts before a block: the state after its parent.
#[derive(Debug, Clone, Copy)]
struct Cursor<'a> {
    next_height: Height,
    prev_hash: Hash,
    seed: Hash,
    set: &'a ValidatorSet,
}

/// Which pairing check a deferred item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// The header's VRF proof under the proposer's key.
    Vrf,
    /// The certificate's aggregate signature under its signers' summed key.
    Certificate,
}

/// A pairing check left for later: `sig` over `msg` under `key`.
#[derive(Debug, Clone)]
struct Deferred {
    height: Height,
    check: Check,
    key: PublicKey,
    msg: Vec<u8>,
    sig: Signature,
}

impl Deferred {
    /// The error [`ChainVerifier::verify_next`] reports when this check fails.
    fn error(&self) -> ChainError {
        match self.check {
            Check::Vrf => ChainError::BadVrf {
                height: self.height,
                reason: BlsError::VerifyFailed.to_string(),
            },
            Check::Certificate => ChainError::Certificate {
                height: self.height,
                source: CertificateError::BadSignature,
            },
        }
    }

    fn verify_alone(&self) -> Result<(), ChainError> {
        self.key
            .verify(&self.msg, &self.sig)
            .map_err(|_| self.error())
    }
}

/// The first failing deferred check in order, if any: one randomised batch,
/// then halves (the earlier half first) when it fails.
fn settle<'a>(items: &'a [Deferred], randomness: &[u64]) -> Option<&'a Deferred> {
    if items.is_empty() {
        return None;
    }
    if randomness.len() < items.len() || randomness[..items.len()].contains(&0) {
        return items.iter().find(|d| d.verify_alone().is_err());
    }
    first_failure(items, &randomness[..items.len()])
}

fn first_failure<'a>(items: &'a [Deferred], randomness: &[u64]) -> Option<&'a Deferred> {
    if items.len() == 1 {
        return items.iter().find(|d| d.verify_alone().is_err());
    }
    let batch: Vec<BatchItem<'_>> = items
        .iter()
        .map(|d| BatchItem {
            key: &d.key,
            msg: &d.msg,
            sig: &d.sig,
        })
        .collect();
    if bls::batch_verify(&batch, randomness).is_ok() {
        return None;
    }
    let mid = items.len() / 2;
    first_failure(&items[..mid], &randomness[..mid])
        .or_else(|| first_failure(&items[mid..], &randomness[mid..]))
}

/// Every check of one block but the pairings, in order; the pairings are
/// pushed to `deferred` at the point of the order where they belong (a
/// structural error after the VRF check leaves the VRF item pushed).
fn stage(
    chain: &ChainId,
    at: &Cursor<'_>,
    step: ChainStep<'_>,
    deferred: &mut Vec<Deferred>,
) -> Result<VerifiedBlock, ChainError> {
    let ChainStep {
        header,
        cert,
        next_set,
        vrf_proof,
    } = step;
    let h = header.height;
    check_links(chain, at, header, next_set, cert.round)?;
    let winner = lottery::proposer(at.set, &at.seed, h, header.proposal_round);
    if header.proposer_address.as_slice() != winner.address.0.as_slice() {
        return Err(ChainError::WrongProposer {
            height: h,
            round: header.proposal_round,
            expected: winner.address.to_string(),
            got: hex::encode(&header.proposer_address),
        });
    }
    let proof = match vrf_proof {
        Some(p) => *p,
        None => Signature::from_bytes(&header.vrf_proof).map_err(|e| ChainError::BadVrf {
            height: h,
            reason: e.to_string(),
        })?,
    };
    deferred.push(Deferred {
        height: h,
        check: Check::Vrf,
        key: winner.public_key,
        msg: vrf_input(chain, h, &at.seed),
        sig: proof,
    });
    let block_hash = header_hash(header);
    if cert.height != h || cert.block_hash != block_hash {
        return Err(ChainError::CertificateMismatch { height: h });
    }
    deferred.push(certificate_item(chain, at.set, cert)?);
    Ok(VerifiedBlock {
        height: h,
        block_hash,
        seed: vrf::next_seed(&at.seed, &vrf::output(&proof)),
        proposer: winner.address,
    })
}

/// The header's links to the chain so far: height, chain id, parent,
/// validator sets, and a proposal round no later than the commit round.
fn check_links(
    chain: &ChainId,
    at: &Cursor<'_>,
    header: &pb::Header,
    next_set: &ValidatorSet,
    commit_round: Round,
) -> Result<(), ChainError> {
    let h = header.height;
    if h != at.next_height {
        return Err(ChainError::HeightGap {
            expected: at.next_height,
            got: h,
        });
    }
    if header.chain_id != chain.as_str() {
        return Err(ChainError::WrongChain {
            height: h,
            expected: chain.to_string(),
            got: header.chain_id.chars().take(64).collect(),
        });
    }
    if header.parent_hash.as_slice() != at.prev_hash.as_slice() {
        return Err(ChainError::BrokenLink {
            height: h,
            expected: hex::encode(at.prev_hash),
            got: hex::encode(&header.parent_hash),
        });
    }
    if header.validators_hash.as_slice() != at.set.hash().as_slice() {
        return Err(ChainError::ValidatorsHashMismatch { height: h });
    }
    if header.next_validators_hash.as_slice() != next_set.hash().as_slice() {
        return Err(ChainError::NextValidatorsMismatch { height: h });
    }
    if header.proposal_round > commit_round {
        return Err(ChainError::RoundOrder {
            height: h,
            proposal_round: header.proposal_round,
            commit_round,
        });
    }
    Ok(())
}

/// The certificate's pairing, deferred to the batch, once its signers are
/// known to hold more than two thirds of the set's power.
fn certificate_item(
    chain: &ChainId,
    set: &ValidatorSet,
    cert: &CommitCertificate,
) -> Result<Deferred, ChainError> {
    let h = cert.height;
    let idx = cert
        .signer_indices(set.len())
        .map_err(|source| ChainError::Certificate { height: h, source })?;
    let signed: Power = idx.iter().map(|i| set.validators()[*i].power).sum();
    if !set.is_quorum(signed) {
        return Err(ChainError::Certificate {
            height: h,
            source: CertificateError::InsufficientPower {
                signed,
                total: set.total_power(),
            },
        });
    }
    let keys: Vec<&PublicKey> = idx
        .iter()
        .map(|i| &set.validators()[*i].public_key)
        .collect();
    // Keys with proofs of possession never sum to infinity; if they did,
    // FastAggregateVerify would fail too.
    let key = PublicKey::aggregate(&keys).map_err(|_| ChainError::Certificate {
        height: h,
        source: CertificateError::BadSignature,
    })?;
    Ok(Deferred {
        height: h,
        check: Check::Certificate,
        key,
        msg: vote_bytes(chain, VoteType::Precommit, h, cert.round, &cert.block_hash),
        sig: cert.aggregate_signature,
    })
}

/// Checks that a block's body matches the commitments in its header:
/// transactions, evidence and the carried certificate of the parent. The
/// carried certificate is bound by the hash of its bytes
/// ([`crate::certificate::encoded_hash`]) and not decoded: the block's own
/// certificate, verified apart, shows that more than 2/3 of the power
/// signed this header after checking it, and no rule here reads its
/// signature (the replay reads its signer bitmap only). Decoding it was a
/// square root and a subgroup check per height for nothing.
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
    let last_commit_hash = block
        .last_commit
        .as_ref()
        .map_or(ZERO_HASH, crate::certificate::encoded_hash);
    if header.last_commit_hash.as_slice() != last_commit_hash.as_slice() {
        return Err(ChainError::BodyMismatch {
            height: h,
            what: "last_commit_hash",
        });
    }
    Ok(())
}
