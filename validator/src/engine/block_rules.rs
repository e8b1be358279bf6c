//! What a block must be: how this validator builds one, and what it checks
//! in a block proposed to it or fetched by sync (DESIGN §3, §5).
//!
//! The header commits to everything in the block and to the state it is
//! built on, so the checks here are the whole content rule; the consensus
//! core has already checked what it signs over (height, chain, parent,
//! proposer, VRF proof, proposal signature) before it asks.

use crate::block::{hash_list, header_hash, list_hash, tx_hashes};
use crate::certificate::{self, CertificateLink, CommitCertificate};
use crate::consensus::signed_points::SignedPoints;
use crate::crypto::{Hash, ZERO_HASH};
use crate::ledger::{DecodedTx, Ledger};
use crate::lottery;
use crate::types::{Address, ChainId, Height, Round};
use agora_proto::v1 as pb;
use prost::Message;

/// Bytes kept free for the header and certificate when a block is filled.
const HEADER_BUDGET: usize = 2048;

/// Limits on block content, from the node's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    /// Largest encoded block accepted or built.
    pub max_block_bytes: usize,
    /// Most transactions in a block.
    pub max_block_txs: usize,
    /// How far ahead of the local clock a live proposal's `time_ms` may be.
    pub max_clock_drift_ms: u64,
}

impl Default for BlockLimits {
    fn default() -> Self {
        Self {
            max_block_bytes: 4 << 20,
            max_block_txs: 10_000,
            max_clock_drift_ms: 2_000,
        }
    }
}

/// The pending transactions a block can be filled from: the node's mempool,
/// or the simulator's. Kept decoded and signature-checked (decode once).
pub trait MempoolView {
    /// Transactions in the order a proposer should include them, within the budget.
    fn reap(&self, max_bytes: usize, max_txs: usize) -> Vec<pb::Transaction>;
    /// The decoded, signature-checked form of a pending transaction.
    fn decoded(&self, hash: &Hash) -> Option<&DecodedTx>;
}

/// A view with nothing pending.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMempool;

impl MempoolView for NoMempool {
    fn reap(&self, _: usize, _: usize) -> Vec<pb::Transaction> {
        Vec::new()
    }
    fn decoded(&self, _: &Hash) -> Option<&DecodedTx> {
        None
    }
}

/// The committed block a new one builds on.
#[derive(Debug, Clone)]
pub struct Tip {
    /// seed of the tip height (the genesis seed before block 1).
    pub seed: Hash,
    /// Hash of the tip block (zero before block 1).
    pub block_hash: Hash,
    /// `time_ms` of the tip block (0 before block 1).
    pub time_ms: u64,
    /// The certificate that committed the tip (None before block 1).
    pub certificate: Option<CommitCertificate>,
}

/// Why a block is refused. Each names the header field or rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The block has no header.
    #[error("block has no header")]
    NoHeader,
    /// The header is for another height.
    #[error("header height {got}, expected {expected}")]
    Height {
        /// Height the block should have.
        expected: Height,
        /// Height it claims.
        got: Height,
    },
    /// A body commitment in the header does not match the body.
    #[error("{0} does not match the block body")]
    BodyMismatch(&'static str),
    /// The carried certificate of the parent is missing, malformed, for
    /// another block, or does not verify.
    #[error("last commit: {0}")]
    LastCommit(String),
    /// A header field differs from what this node derived from its own state.
    #[error("{0} differs from this node's state")]
    StateMismatch(&'static str),
    /// `proposal_round` is not the round the block was proposed in, or its
    /// lottery winner is not the header's proposer.
    #[error("proposal_round {got}: {why}")]
    ProposalRound {
        /// The header's value.
        got: Round,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `time_ms` is not after the parent's, or too far ahead of our clock.
    #[error("time_ms {got}: {why}")]
    Time {
        /// The header's value.
        got: u64,
        /// What is wrong with it.
        why: String,
    },
    /// Too many bytes or transactions.
    #[error("block too large: {0}")]
    TooLarge(String),
    /// Evidence in the block is not valid for inclusion.
    #[error("evidence {index}: {reason}")]
    Evidence {
        /// Position in the block.
        index: usize,
        /// Why.
        reason: String,
    },
}

/// Where a block comes from, which decides the checks that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// A live proposal of (height, round), checked against the local clock.
    Proposal {
        /// Round of the proposal carrying the block.
        round: Round,
        /// The local clock (ms since the Unix epoch).
        now_ms: u64,
        /// The hash of the carried certificate whose signature the core
        /// verified with the proposal's (`Output::ValidateBlock`), which
        /// is not verified again here.
        carried_verified: Option<Hash>,
    },
    /// A block fetched by sync whose certificate the core verifies: no
    /// clock check (it may be old), and neither the carried certificate nor
    /// the evidence is verified again. More than 2/3 of the power signed
    /// this header, so honest validators among them checked both; the body
    /// is bound to the header by its hashes, and the ledger skips evidence
    /// that does not verify when it applies the block.
    Certified,
}

/// Everything the rules need to know about this node's chain.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The chain.
    pub chain: &'a ChainId,
    /// The ledger after the tip block.
    pub ledger: &'a Ledger,
    /// The tip block.
    pub tip: &'a Tip,
    /// The height being built or checked (tip + 1).
    pub height: Height,
    /// Content limits.
    pub limits: &'a BlockLimits,
    /// What our core signed recently, hashed: the carried certificate's
    /// precommit bytes are usually among them.
    pub signed: &'a SignedPoints,
}

impl Context<'_> {
    fn set_hash(&self, h: Height) -> Vec<u8> {
        self.ledger
            .validator_set(h)
            .map(|s| s.hash().to_vec())
            .unwrap_or_default()
    }
}

/// The block this node proposes for (height, round): transactions from the
/// mempool view, the evidence given, and a header committing to both and to
/// this node's state. `proposer_address` and `vrf_proof` are filled by the
/// core when it signs.
pub fn build_block(
    ctx: &Context<'_>,
    round: Round,
    now_ms: u64,
    mempool: &dyn MempoolView,
    evidence: Vec<pb::Evidence>,
) -> pb::Block {
    let budget = ctx.limits.max_block_bytes.saturating_sub(HEADER_BUDGET);
    let evidence_bytes: usize = evidence.iter().map(|e| e.encoded_len() + 8).sum();
    let txs = mempool.reap(
        budget.saturating_sub(evidence_bytes),
        ctx.limits.max_block_txs,
    );
    let header = pb::Header {
        chain_id: ctx.chain.as_str().to_string(),
        height: ctx.height,
        parent_hash: ctx.tip.block_hash.to_vec(),
        txs_hash: list_hash(&txs).to_vec(),
        evidence_hash: list_hash(&evidence).to_vec(),
        last_commit_hash: ctx
            .tip
            .certificate
            .as_ref()
            .map_or(ZERO_HASH, |c| c.hash())
            .to_vec(),
        app_hash: ctx.ledger.app_hash().to_vec(),
        validators_hash: ctx.set_hash(ctx.height),
        next_validators_hash: ctx.set_hash(ctx.height + 1),
        // Strictly after the parent even if our clock is behind it.
        time_ms: now_ms.max(ctx.tip.time_ms.saturating_add(1)),
        proposal_round: round,
        ..Default::default()
    };
    pb::Block {
        header: Some(header),
        txs,
        evidence,
        last_commit: ctx.tip.certificate.as_ref().map(|c| c.to_proto()),
    }
}

/// Whether the body is the one the header commits to: transactions,
/// evidence and carried certificate, by their hashes. A certified header
/// with a body that passes this is the genuine block.
pub fn check_body(block: &pb::Block) -> Result<(), BlockError> {
    check_body_hashes(block).map(|_| ())
}

/// What [`check_body_hashes`] computed on the way.
#[derive(Debug)]
pub struct CheckedBody {
    /// The hash of each transaction (for `BodyHashes`, so that they are
    /// not computed again).
    pub tx_hashes: Vec<Hash>,
    /// The carried certificate, decoded.
    pub carried: Option<CommitCertificate>,
}

/// [`check_body`], returning what it computed.
pub fn check_body_hashes(block: &pb::Block) -> Result<CheckedBody, BlockError> {
    let tx_hashes = tx_hashes(&block.txs);
    let carried = check_body_with(block, &tx_hashes, None)?;
    Ok(CheckedBody { tx_hashes, carried })
}

/// [`check_body`] with the transactions' hashes given (computed from
/// `block.txs`, or remembered from a body of the same header that passed),
/// that decodes the carried certificate once and returns it; `known` is a
/// certificate already decoded (the tip's): when the block carries exactly
/// its bytes it is used instead of decoding them again.
fn check_body_with(
    block: &pb::Block,
    tx_hashes: &[Hash],
    known: Option<&CommitCertificate>,
) -> Result<Option<CommitCertificate>, BlockError> {
    let h = block.header.as_ref().ok_or(BlockError::NoHeader)?;
    check_listed(h, block, tx_hashes)?;
    let carried = match &block.last_commit {
        None => None,
        Some(c) => match known.filter(|k| k.to_proto() == *c) {
            Some(k) => Some(k.clone()),
            None => Some(
                CommitCertificate::from_proto(c)
                    .map_err(|e| BlockError::LastCommit(e.to_string()))?,
            ),
        },
    };
    if h.last_commit_hash != carried.as_ref().map_or(ZERO_HASH, CommitCertificate::hash) {
        return Err(BlockError::BodyMismatch("last_commit_hash"));
    }
    Ok(carried)
}

/// The body's transactions and evidence against the header's hashes.
fn check_listed(h: &pb::Header, block: &pb::Block, tx_hashes: &[Hash]) -> Result<(), BlockError> {
    debug_assert_eq!(tx_hashes.len(), block.txs.len());
    if tx_hashes.len() != block.txs.len() || h.txs_hash != hash_list(tx_hashes) {
        return Err(BlockError::BodyMismatch("txs_hash"));
    }
    if h.evidence_hash != list_hash(&block.evidence) {
        return Err(BlockError::BodyMismatch("evidence_hash"));
    }
    Ok(())
}

/// [`check_body_with`] for a certified block: the carried certificate is
/// bound to the header by the hash of its bytes as received, and only its
/// height and block are read. Its signature is not decoded: the block's
/// signers (more than 2/3 of the power) checked it before they signed, as
/// they checked the evidence, which a certified block skips too.
fn check_certified_body(
    block: &pb::Block,
    tx_hashes: &[Hash],
) -> Result<Option<CertificateLink>, BlockError> {
    let h = block.header.as_ref().ok_or(BlockError::NoHeader)?;
    check_listed(h, block, tx_hashes)?;
    let Some(c) = &block.last_commit else {
        if h.last_commit_hash != ZERO_HASH {
            return Err(BlockError::BodyMismatch("last_commit_hash"));
        }
        return Ok(None);
    };
    if h.last_commit_hash != certificate::encoded_hash(c) {
        return Err(BlockError::BodyMismatch("last_commit_hash"));
    }
    CertificateLink::of_proto(c)
        .map(Some)
        .map_err(|e| BlockError::LastCommit(e.to_string()))
}

/// What [`check_block`] did beyond passing a block, for the host's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checked {
    /// The carried certificate's signature was verified (and is valid),
    /// here or by the core with the proposal's: false for a synced block,
    /// block 1, or a certificate that is the one we committed the tip with
    /// (verified already).
    pub carried_certificate_verified: bool,
}

/// Every content rule for a block at `ctx.height` (see the module docs).
/// Cheap comparisons run first; for a live proposal the carried
/// certificate's pairing (skipped when it is the certificate we committed
/// the tip with) and the evidence checks run last.
pub fn check_block(
    ctx: &Context<'_>,
    block: &pb::Block,
    provenance: Provenance,
) -> Result<Checked, BlockError> {
    check_block_with(ctx, block, provenance, None)
}

/// [`check_block`] with what the body check computed, when a body of this
/// block's header passed it already (`BodyHashes`): the transactions'
/// hashes and the carried certificate are not computed or decoded again.
pub fn check_block_with(
    ctx: &Context<'_>,
    block: &pb::Block,
    provenance: Provenance,
    body: Option<&CheckedBody>,
) -> Result<Checked, BlockError> {
    let h = check_height_and_size(ctx, block)?;
    let computed;
    let tx_hashes = match body {
        Some(b) => &b.tx_hashes,
        None => {
            computed = self::tx_hashes(&block.txs);
            &computed
        }
    };
    let (carried, link) = if provenance == Provenance::Certified {
        (None, check_certified_body(block, tx_hashes)?)
    } else {
        let known = body.and_then(|b| b.carried.as_ref());
        let c = check_body_with(block, tx_hashes, known.or(ctx.tip.certificate.as_ref()))?;
        let link = c.as_ref().map(CommitCertificate::link);
        (c, link)
    };
    check_state_hashes(ctx, h)?;
    check_proposal_round(ctx, h, provenance)?;
    check_time(ctx, h, provenance)?;
    check_last_commit_links(ctx, link)?;
    if provenance == Provenance::Certified {
        return Ok(Checked::default());
    }
    let carried_certificate_verified = match provenance {
        Provenance::Proposal {
            carried_verified: Some(hash),
            ..
        } if h.last_commit_hash == hash => true, // hash of `carried`, checked above
        _ => verify_last_commit(ctx, carried.as_ref())?,
    };
    for (index, e) in block.evidence.iter().enumerate() {
        ctx.ledger
            .check_evidence(e)
            .map_err(|err| BlockError::Evidence {
                index,
                reason: err.to_string(),
            })?;
    }
    Ok(Checked {
        carried_certificate_verified,
    })
}

/// The block is of the height being decided and within the size limits;
/// returns its header.
fn check_height_and_size<'b>(
    ctx: &Context<'_>,
    block: &'b pb::Block,
) -> Result<&'b pb::Header, BlockError> {
    let h = block.header.as_ref().ok_or(BlockError::NoHeader)?;
    if h.height != ctx.height {
        return Err(BlockError::Height {
            expected: ctx.height,
            got: h.height,
        });
    }
    let size = block.encoded_len();
    if size > ctx.limits.max_block_bytes || block.txs.len() > ctx.limits.max_block_txs {
        return Err(BlockError::TooLarge(format!(
            "{size} bytes and {} transactions; the limits are {} and {}",
            block.txs.len(),
            ctx.limits.max_block_bytes,
            ctx.limits.max_block_txs
        )));
    }
    Ok(h)
}

/// The header's app hash is our state's, and its validator-set hashes are
/// those of this height's set and the next.
fn check_state_hashes(ctx: &Context<'_>, h: &pb::Header) -> Result<(), BlockError> {
    if h.app_hash != ctx.ledger.app_hash() {
        return Err(BlockError::StateMismatch("app_hash"));
    }
    if h.validators_hash != ctx.set_hash(ctx.height) {
        return Err(BlockError::StateMismatch("validators_hash"));
    }
    if h.next_validators_hash != ctx.set_hash(ctx.height + 1) {
        return Err(BlockError::StateMismatch("next_validators_hash"));
    }
    Ok(())
}

/// `proposal_round` names the lottery round the block's creator won: the
/// round of the proposal itself for a fresh block (the core checks that
/// equality, since only it knows the POL round), an earlier one for a
/// re-proposed valid block. Auditors check the creator against it.
fn check_proposal_round(
    ctx: &Context<'_>,
    h: &pb::Header,
    provenance: Provenance,
) -> Result<(), BlockError> {
    let got = h.proposal_round;
    if let Provenance::Proposal { round, .. } = provenance
        && got > round
    {
        return Err(BlockError::ProposalRound {
            got,
            why: "after the round of the proposal carrying it",
        });
    }
    let set = ctx
        .ledger
        .validator_set(ctx.height)
        .ok_or(BlockError::StateMismatch("validators_hash"))?;
    let winner = lottery::proposer(set, &ctx.tip.seed, ctx.height, got);
    if Address::from_slice(&h.proposer_address).ok() != Some(winner.address) {
        return Err(BlockError::ProposalRound {
            got,
            why: "its lottery winner is not the block's proposer",
        });
    }
    Ok(())
}

fn check_time(ctx: &Context<'_>, h: &pb::Header, provenance: Provenance) -> Result<(), BlockError> {
    if ctx.height > 1 && h.time_ms <= ctx.tip.time_ms {
        return Err(BlockError::Time {
            got: h.time_ms,
            why: format!("not after the parent's {}", ctx.tip.time_ms),
        });
    }
    if let Provenance::Proposal { now_ms, .. } = provenance {
        let limit = now_ms.saturating_add(ctx.limits.max_clock_drift_ms);
        if h.time_ms > limit {
            return Err(BlockError::Time {
                got: h.time_ms,
                why: format!(
                    "more than {} ms ahead of our clock {now_ms}",
                    ctx.limits.max_clock_drift_ms
                ),
            });
        }
    }
    Ok(())
}

/// The carried certificate (decoded by the body check) commits the parent block.
fn check_last_commit_links(
    ctx: &Context<'_>,
    carried: Option<CertificateLink>,
) -> Result<(), BlockError> {
    let carried = match (carried, ctx.height) {
        (None, 1) => return Ok(()),
        (Some(c), h) if h > 1 => c,
        (None, _) => return Err(BlockError::LastCommit("missing".into())),
        (Some(_), _) => return Err(BlockError::LastCommit("block 1 carries one".into())),
    };
    if carried.height != ctx.height - 1 || carried.block_hash != ctx.tip.block_hash {
        return Err(BlockError::LastCommit(
            "it does not commit the parent block".into(),
        ));
    }
    Ok(())
}

/// The one we committed the tip with was verified already; another one
/// (other signers) is checked against the parent's set. True if a
/// signature was verified.
fn verify_last_commit(
    ctx: &Context<'_>,
    carried: Option<&CommitCertificate>,
) -> Result<bool, BlockError> {
    let Some(carried) = carried else {
        return Ok(false);
    };
    if ctx
        .tip
        .certificate
        .as_ref()
        .is_some_and(|ours| ours.hash() == carried.hash())
    {
        return Ok(false);
    }
    let set = ctx
        .ledger
        .validator_set(ctx.height - 1)
        .ok_or_else(|| BlockError::LastCommit("no validator set for the parent".into()))?;
    carried
        .verify_reusing(ctx.chain, set, ctx.signed)
        .map_err(|e| BlockError::LastCommit(e.to_string()))?;
    Ok(true)
}

/// The hash of a block's header (zero if it has none).
pub fn block_hash(block: &pb::Block) -> Hash {
    block.header.as_ref().map_or(ZERO_HASH, header_hash)
}
