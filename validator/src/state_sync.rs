//! What a node joining by state sync must prove before it stores anything:
//! the anchor (the block of the snapshot's height, the certificate that
//! commits it and the seed after it), tied to a header the light client
//! verified from the operator's checkpoint. The snapshot itself is checked
//! against that header's app hash chunk by chunk
//! ([`crate::ledger::merkle::chunks`]).
//!
//! The joiner trusts one header, `next` (height S + 1), verified by
//! [`crate::light_client`]; everything else is bound to it by hashes and
//! one signature:
//! - block S: its header hashes to `next.parent_hash` and its body matches
//!   its header;
//! - the certificate of S: it is block S + 1's `last_commit`, which
//!   `next.last_commit_hash` commits to (and it names block S);
//! - the seed after S: header S + 1's VRF proof is its proposer's BLS
//!   signature over the VRF input of S + 1, which holds the seed of S; a
//!   BLS signature verifies for one message only, so no other seed passes
//!   (the lottery of S + 1 and later then runs as for any node);
//! - the state after S: its root is `next.app_hash`.
//!
//! The course of the join (when to ask, whom to charge or set aside, when
//! to start over) is [`join`]; which offer to fetch (and which to keep at
//! all) is [`offers`]; which chunk to ask of which peer, and what to make
//! of each answer, is [`fetcher`].

pub mod fetcher;
pub mod join;
pub mod offers;

use agora_proto::v1 as pb;

use crate::block::header_hash;
use crate::certificate::CommitCertificate;
use crate::crypto::{Hash, Signature, vrf};
use crate::engine::block_rules::check_body;
use crate::light_client::LightBlock;
use crate::types::{Address, ChainId, Height};

/// Why a served anchor does not belong to the verified header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// Block S + 1 as served is not the verified header's block.
    #[error("block {height}: {what}")]
    NextBlock {
        /// S + 1.
        height: Height,
        /// What does not fit.
        what: String,
    },
    /// Block S does not fit the verified header.
    #[error("block {height}: {what}")]
    Block {
        /// S.
        height: Height,
        /// What does not fit.
        what: String,
    },
    /// The seed does not verify against header S + 1's VRF proof.
    #[error("the seed offered for height {height} does not verify against the VRF proof of height {}", height + 1)]
    Seed {
        /// S.
        height: Height,
    },
}

/// A verified anchor: what the store needs to start at height S.
#[derive(Debug, Clone)]
pub struct Anchor {
    /// S: the snapshot's height (the state is the one after block S).
    pub height: Height,
    /// The root the snapshot must hash to (`next.app_hash`).
    pub app_hash: Hash,
    /// Block S.
    pub block: pb::Block,
    /// The certificate that commits block S.
    pub certificate: CommitCertificate,
    /// The chain seed after block S.
    pub seed: Hash,
}

/// Checks that `block` (S), `next_block` (S + 1) and `seed` belong to the
/// verified light block `next` (S + 1).
pub fn verify_anchor(
    chain: &ChainId,
    next: &LightBlock,
    next_block: &pb::Block,
    block: &pb::Block,
    seed: &Hash,
) -> Result<Anchor, AnchorError> {
    let h = &next.header;
    let s = h
        .height
        .checked_sub(1)
        .filter(|s| *s >= 1)
        .ok_or_else(|| AnchorError::NextBlock {
            height: h.height,
            what: "a snapshot starts after block 1 at the earliest".into(),
        })?;
    let next_err = |what: String| AnchorError::NextBlock {
        height: h.height,
        what,
    };
    if next_block.header.as_ref() != Some(h) {
        return Err(next_err("its header is not the verified one".into()));
    }
    check_body(next_block).map_err(|e| next_err(e.to_string()))?;
    let certificate = next_block
        .last_commit
        .as_ref()
        .ok_or_else(|| next_err("it carries no certificate of its parent".into()))
        .and_then(|c| CommitCertificate::from_proto(c).map_err(|e| next_err(e.to_string())))?;

    let block_err = |what: String| AnchorError::Block { height: s, what };
    let header = block
        .header
        .as_ref()
        .ok_or_else(|| block_err("no header".into()))?;
    let hash = header_hash(header);
    if header.height != s || hash[..] != h.parent_hash[..] {
        return Err(block_err(
            "its header is not the parent of the verified one".into(),
        ));
    }
    check_body(block).map_err(|e| block_err(e.to_string()))?;
    if certificate.height != s || certificate.block_hash != hash {
        return Err(block_err(
            "the carried certificate commits another block".into(),
        ));
    }
    verify_seed(chain, next, seed).map_err(|()| AnchorError::Seed { height: s })?;
    let app_hash = h
        .app_hash
        .as_slice()
        .try_into()
        .map_err(|_| next_err("its app hash is not 32 bytes".into()))?;
    Ok(Anchor {
        height: s,
        app_hash,
        block: block.clone(),
        certificate,
        seed: *seed,
    })
}

/// Whether header S + 1's VRF proof verifies over `seed` as the seed of S,
/// under the key of its proposer in the verified set.
fn verify_seed(chain: &ChainId, next: &LightBlock, seed: &Hash) -> Result<(), ()> {
    let h = &next.header;
    let proposer = Address::from_slice(&h.proposer_address).map_err(|_| ())?;
    let key = &next.validators.get(&proposer).ok_or(())?.public_key;
    let proof = Signature::from_bytes(&h.vrf_proof).map_err(|_| ())?;
    vrf::verify(key, chain, h.height, seed, &proof).map_err(|_| ())?;
    Ok(())
}
