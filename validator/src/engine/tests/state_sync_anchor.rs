//! The state-sync anchor (`crate::state_sync::verify_anchor`) on a real
//! chain: the block before a verified header, its certificate and the seed
//! after it are accepted; another seed, another block, a block whose body
//! does not match, and a next block that is not the verified one are not.

use super::*;
use crate::light_client::LightBlock;
use crate::state_sync::{AnchorError, verify_anchor};

fn setup() -> (Vec<CommitRecord>, LightBlock, ChainId) {
    let (records, _) = make_chain(4, 4);
    let next = &records[2]; // height 3
    let light = LightBlock {
        header: next.block.header.clone().unwrap(),
        certificate: next.certificate.clone(),
        // The set never changes in this chain: the genesis set certifies 3.
        validators: at_genesis(4).ledger.validator_set(1).unwrap().clone(),
    };
    let chain = ChainId::new("agora-engine-test".to_string()).unwrap();
    (records, light, chain)
}

#[test]
fn the_genuine_anchor_verifies_and_carries_what_the_store_needs() {
    let (records, light, chain) = setup();
    let (s, next) = (&records[1], &records[2]);
    let a = verify_anchor(&chain, &light, &next.block, &s.block, &s.seed).expect("anchor");
    assert_eq!(a.height, 2);
    assert_eq!(
        a.app_hash, s.app_hash,
        "the state after S is the one S+1 commits to"
    );
    assert_eq!(a.certificate.block_hash, s.block_hash);
    assert_eq!(a.seed, s.seed);
}

#[test]
fn another_seed_does_not_verify() {
    let (records, light, chain) = setup();
    let (s, next) = (&records[1], &records[2]);
    for seed in [records[0].seed, [0; 32], next.seed] {
        assert_eq!(
            verify_anchor(&chain, &light, &next.block, &s.block, &seed).unwrap_err(),
            AnchorError::Seed { height: 2 }
        );
    }
}

#[test]
fn blocks_that_do_not_fit_the_verified_header_are_refused() {
    let (records, light, chain) = setup();
    let (s, next) = (&records[1], &records[2]);
    // Not the parent.
    let e = verify_anchor(
        &chain,
        &light,
        &next.block,
        &records[0].block,
        &records[0].seed,
    );
    assert!(
        matches!(e, Err(AnchorError::Block { height: 2, .. })),
        "{e:?}"
    );
    // The parent with a body it does not commit to.
    let mut forged = s.block.clone();
    forged.evidence.push(pb::Evidence::default());
    let e = verify_anchor(&chain, &light, &next.block, &forged, &s.seed);
    assert!(
        matches!(e, Err(AnchorError::Block { height: 2, .. })),
        "{e:?}"
    );
    // A next block whose carried certificate was swapped.
    let mut swapped = next.block.clone();
    swapped.last_commit = Some(records[0].certificate.to_proto());
    let e = verify_anchor(&chain, &light, &swapped, &s.block, &s.seed);
    assert!(
        matches!(e, Err(AnchorError::NextBlock { height: 3, .. })),
        "{e:?}"
    );
    // Another block as the next one.
    let e = verify_anchor(&chain, &light, &records[3].block, &s.block, &s.seed);
    assert!(
        matches!(e, Err(AnchorError::NextBlock { height: 3, .. })),
        "{e:?}"
    );
}
