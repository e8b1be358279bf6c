//! A proposal whose carried certificate is not the one this validator
//! committed the tip with: the engine offers it to the core, which verifies
//! it in the proposal's multi-pairing; a valid one is counted once and the
//! block prevoted, and one whose aggregate signature is wrong makes the
//! block invalid, with the block rules' own error.

use super::*;
use crate::certificate::CommitCertificate;
use crate::crypto::Signature;
use crate::signing::proposal_bytes;

/// Validator `me`'s engine at height 2 (block 1 synced from the chain),
/// and the chain's proposal of height 2 with its proposer's index.
pub(super) fn at_height_two(
    records: &[CommitRecord],
    msgs: &BTreeMap<Height, Vec<Msg>>,
) -> (Engine<usize>, pb::Proposal, usize) {
    let (proposal, proposer) = proposal_of_height_two(msgs);
    let proposer = usize::from(proposer);
    let set = at_genesis(4).ledger.validator_set(2).expect("set").clone();
    assert!(set.len() == 4);
    let me = (proposer + 1) % 4;
    let mut e = synced_to_one(Some(key(me as u8)), records);
    e.start_height(NOW, &NoMempool).expect("start");
    assert_eq!(e.height(), 2);
    (e, proposal, proposer)
}

/// `proposal` carrying `cert` instead, signed again by its proposer.
fn carrying(
    chain: &ChainId,
    proposal: &pb::Proposal,
    proposer: usize,
    cert: &CommitCertificate,
) -> pb::Proposal {
    let mut p = proposal.clone();
    let block = p.block.as_mut().expect("block");
    block.last_commit = Some(cert.to_proto());
    let header = block.header.as_mut().expect("header");
    header.last_commit_hash = cert.hash().to_vec();
    let hash = crate::block::header_hash(header);
    let bytes = proposal_bytes(chain, p.height, p.round, p.pol_round, &hash);
    p.signature = key(proposer as u8).sign(&bytes).to_bytes().to_vec();
    p
}

/// The precommits of height 1 for block 1 in its decided round, by signer.
fn precommits_of_height_one(records: &[CommitRecord], chain: &ChainId) -> Vec<(usize, Signature)> {
    let c = &records[0].certificate;
    let msg = vote_bytes(chain, VoteType::Precommit, 1, c.round, &c.block_hash);
    let set = at_genesis(4).ledger.validator_set(1).expect("set").clone();
    (0..4u8)
        .map(|i| {
            let index = set
                .index_of(&Address::of(&key(i).public_key()))
                .expect("in set");
            (index, key(i).sign(&msg))
        })
        .collect()
}

fn prevoted(actions: &[Action<usize>]) -> Option<Vec<u8>> {
    votes_of(actions)
        .into_iter()
        .find(|v| v.vote_type == VoteType::Prevote as i32)
        .map(|v| v.block_hash)
}

#[test]
fn another_valid_certificate_is_verified_with_the_proposal_and_a_bad_one_refused() {
    let (records, msgs) = make_chain(4, 2);
    let (e, proposal, proposer) = at_height_two(&records, &msgs);
    let chain = e.chain().clone();
    let ours = e.tip().certificate.clone().expect("tip certificate");
    let set = e.ledger().validator_set(1).expect("set").clone();
    let all = precommits_of_height_one(&records, &chain);
    // Three signers that are not exactly ours: the first three, or the
    // last three if ours are the first three.
    let mut three =
        CommitCertificate::from_precommits(&set, 1, ours.round, ours.block_hash, &all[..3])
            .expect("certificate");
    if three == ours {
        three = CommitCertificate::from_precommits(&set, 1, ours.round, ours.block_hash, &all[1..])
            .expect("certificate");
    }
    assert_ne!(three, ours);

    let (mut e, _, _) = at_height_two(&records, &msgs);
    let good = carrying(&chain, &proposal, proposer, &three);
    let out = e
        .on_proposal(9, good.clone(), NOW, &NoMempool)
        .expect("engine");
    assert!(
        !out.iter().any(|a| matches!(a, Action::InvalidBlock { .. })),
        "{out:?}"
    );
    let hash = crate::block::header_hash(good.block.as_ref().unwrap().header.as_ref().unwrap());
    assert_eq!(prevoted(&out), Some(hash.to_vec()), "prevoted the block");
    assert_eq!(
        e.core().stats().carried_commits_verified,
        1,
        "verified with the proposal"
    );
    assert_eq!(e.certificates_verified().carried, 1, "and counted once");

    // The same signers with another valid point as their aggregate: the
    // cheap checks pass, the pairing does not.
    let mut bad = three.clone();
    bad.aggregate_signature = key(0).sign(b"not a precommit");
    let (mut e, _, _) = at_height_two(&records, &msgs);
    let out = e
        .on_proposal(
            9,
            carrying(&chain, &proposal, proposer, &bad),
            NOW,
            &NoMempool,
        )
        .expect("engine");
    let refused = out.iter().find_map(|a| match a {
        Action::InvalidBlock { error, .. } => Some(error.clone()),
        _ => None,
    });
    assert!(
        matches!(refused, Some(BlockError::LastCommit(_))),
        "{out:?}"
    );
    assert_eq!(prevoted(&out), Some(Vec::new()), "prevoted nil");
    assert_eq!(e.core().stats().carried_commits_verified, 0);
    assert_eq!(e.certificates_verified().carried, 0);
}
