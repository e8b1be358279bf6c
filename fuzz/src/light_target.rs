//! Target for what an auditor's light client takes from a node it does not
//! trust (`agora audit --trust`, `agora query … --prove`): a header, its
//! certificate and the validator set it names, checked by
//! `light_client::verify_step` from the genesis set: sequentially for
//! height 1, by skipping for heights 2 and 3 (over more than a third of
//! the trusted power).
//!
//! It asserts soundness: a light block accepted is a block of the
//! reference chain (its header hashes to that chain's block at its
//! height). Nobody can sign for the fuzz validators, so anything else
//! accepted means a check was skipped.

use agora_proto::v1 as pb;
use agora_validator::block::header_hash;
use agora_validator::light_client::{LightBlock, Trusted, verify_step};
use agora_validator::{CommitCertificate, ValidatorSet};
use prost::Message;

use crate::fixtures::world;
use crate::parts::{join_parts, split_part};

/// Light blocks: a `pb::Header` and a `pb::CommitCertificate`, each
/// behind a 2-byte length, then a `pb::ValidatorSet`; verified from the
/// genesis set. Whatever is accepted is the reference chain's block.
pub fn light_block(data: &[u8]) {
    check_light_block(data, verify_step);
}

/// [`light_block`] with `step` in place of `verify_step` (tests weaken it).
pub fn check_light_block<E>(
    data: &[u8],
    step: impl Fn(&agora_validator::ChainId, &Trusted, &LightBlock) -> Result<Trusted, E>,
) {
    let Some((header, rest)) = split_part(data) else {
        return;
    };
    let Some((certificate, set)) = split_part(rest) else {
        return;
    };
    let (Ok(header), Ok(certificate), Ok(set)) = (
        pb::Header::decode(header),
        pb::CommitCertificate::decode(certificate),
        pb::ValidatorSet::decode(set),
    ) else {
        return;
    };
    let (Ok(certificate), Ok(validators)) = (
        CommitCertificate::from_proto(&certificate),
        ValidatorSet::from_proto(&set),
    ) else {
        return;
    };
    let block = LightBlock {
        header,
        certificate,
        validators,
    };
    let w = world();
    let trusted = Trusted::from_genesis(w.set.clone());
    let Ok(next) = step(&w.chain, &trusted, &block) else {
        return;
    };
    let h = block.header.height;
    let real = usize::try_from(h)
        .ok()
        .and_then(|h| w.light_blocks.get(h.checked_sub(1)?))
        .unwrap_or_else(|| panic!("a light block of height {h} was accepted; the chain has none"));
    assert_eq!(
        header_hash(&block.header),
        header_hash(&real.header),
        "an accepted header of height {h} is not the chain's"
    );
    assert_eq!(next.height, h);
}

/// A [`light_block`] input.
pub fn light_input(b: &LightBlock) -> Vec<u8> {
    join_parts(
        &[
            b.header.encode_to_vec(),
            b.certificate.to_proto().encode_to_vec(),
        ],
        b.validators.to_proto().encode_to_vec(),
    )
}
