//! The certificate a proposed block carries, made ready for the core's
//! check of the proposal: the core verifies the proposal's signature, the
//! block's VRF proof and this certificate's aggregate signature in one
//! weighted multi-pairing (`consensus::state::proposal`), one final
//! exponentiation and one Miller loop fewer than checking the certificate
//! alone when the block is validated.
//!
//! Everything of the certificate's check but the pairing happens here, as
//! `block_rules::verify_last_commit` would do it: it commits the parent
//! block, its bitmap fits the parent height's set, and its signers hold
//! more than 2/3 of that set's power. A certificate that fails any of that
//! is not offered, and the block rules reject it with their own error.
//! The core names the certificate it verified by hash, and the block rules
//! skip the pairing only for a block whose header commits to that hash
//! (`Provenance::Proposal::carried_verified`).

use super::block_rules::Context;
use crate::certificate::CommitCertificate;
use crate::consensus::CarriedCommit;
use crate::crypto::Hash;

/// The offer for the block hashing to `block_hash` that carries `carried`,
/// or None when there is no pairing to save (block 1, our own certificate
/// of the tip, verified already) or the cheap checks fail.
pub fn offer(
    ctx: &Context<'_>,
    block_hash: Hash,
    carried: CommitCertificate,
) -> Option<CarriedCommit> {
    if ctx.height <= 1 || ctx.tip.certificate.as_ref() == Some(&carried) {
        return None;
    }
    carried.matches(ctx.height - 1, &ctx.tip.block_hash).ok()?;
    let set = ctx.ledger.validator_set(ctx.height - 1)?;
    let (key, msg) = carried.stage(ctx.chain, set).ok()?;
    Some(CarriedCommit {
        block_hash,
        certificate_hash: carried.hash(),
        key,
        msg,
        sig: carried.aggregate_signature,
    })
}
