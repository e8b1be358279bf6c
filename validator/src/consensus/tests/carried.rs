//! The certificate a proposed block carries, offered by the host with the
//! proposal: checked in the proposal's multi-pairing, and named in
//! `ValidateBlock` only when it is valid and carried by that block. The
//! proposal's own verdict never depends on the offer.

use super::*;
use crate::crypto::{PublicKey, Signature};

/// An offer for `block_hash`: validators `signers` over `msg`, with the sum
/// of `signed_by`'s signatures (the same validators for a valid one).
fn offer(n: &Net, block_hash: Hash, signers: &[usize], signed_by: &[usize]) -> CarriedCommit {
    let msg = vote_bytes(&n.chain, VoteType::Precommit, 7, 0, &[9; 32]);
    let keys: Vec<PublicKey> = signers.iter().map(|i| n.keys[*i].public_key()).collect();
    let sigs: Vec<Signature> = signed_by.iter().map(|i| n.keys[*i].sign(&msg)).collect();
    CarriedCommit {
        block_hash,
        certificate_hash: sha3_256(&msg),
        key: PublicKey::aggregate(&keys.iter().collect::<Vec<_>>()).expect("keys"),
        msg,
        sig: Signature::aggregate(&sigs.iter().collect::<Vec<_>>()).expect("signatures"),
    }
}

/// What a core with `key` does with `proposal` after `offered`: the
/// rejections, and what `ValidateBlock` said of the certificate (None when
/// the block was not sent for validation).
fn verdict(
    n: &Net,
    key: Option<SecretKey>,
    offered: Option<CarriedCommit>,
    proposal: &pb::Proposal,
) -> (Vec<RejectReason>, Option<Option<Hash>>, u64) {
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), key, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    if let Some(o) = offered {
        c.offer_carried_commit(o);
    }
    let out = c.handle(Input::Proposal(proposal.clone()));
    let validate = vouched(&out);
    (
        rejections(&out),
        validate,
        c.stats().carried_commits_verified,
    )
}

/// What `ValidateBlock` said of the carried certificate; None when the
/// block was not sent for validation.
fn vouched(out: &[Output]) -> Option<Option<Hash>> {
    out.iter().find_map(|o| match o {
        Output::ValidateBlock {
            carried_commit_verified,
            ..
        } => Some(*carried_commit_verified),
        _ => None,
    })
}

#[test]
fn a_valid_offer_is_vouched_for_and_a_bad_one_only_left_to_the_host() {
    let n = net(&[1, 1, 1, 1]);
    let p = n.proposer(1, 0);
    let me = (p + 1) % 4;
    let (block, hash) = n.block(p, 1, 1);
    let proposal = n.proposal(p, 1, 0, -1, &block);
    let good = offer(&n, hash, &[0, 1, 2], &[0, 1, 2]);
    let cert_hash = good.certificate_hash;
    let accepted = |vouched: Option<Hash>, count| (Vec::new(), Some(vouched), count);
    assert_eq!(
        verdict(&n, Some(n.key(me)), Some(good.clone()), &proposal),
        accepted(Some(cert_hash), 1)
    );
    // Negative controls: a signature missing one signer, an offer for
    // another block, an observer (no weights), no offer at all. The
    // proposal is accepted each time; the certificate is not vouched for.
    let short = offer(&n, hash, &[0, 1, 2], &[0, 1]);
    assert_eq!(
        verdict(&n, Some(n.key(me)), Some(short), &proposal),
        accepted(None, 0)
    );
    let elsewhere = offer(&n, [5; 32], &[0, 1, 2], &[0, 1, 2]);
    assert_eq!(
        verdict(&n, Some(n.key(me)), Some(elsewhere), &proposal),
        accepted(None, 0)
    );
    assert_eq!(
        verdict(&n, None, Some(good.clone()), &proposal),
        accepted(None, 0)
    );
    assert_eq!(
        verdict(&n, Some(n.key(me)), None, &proposal),
        accepted(None, 0)
    );
    // A bad proposal signature is rejected as before, with a good offer.
    let mut forged = proposal.clone();
    forged.signature = n.keys[me].sign(b"not the proposal").to_bytes().to_vec();
    let (rejected, validate, count) = verdict(&n, Some(n.key(me)), Some(good), &forged);
    assert!(
        matches!(rejected.as_slice(), [RejectReason::BadSignature(_)]),
        "{rejected:?}"
    );
    assert_eq!((validate, count), (None, 0));
}

/// An offer is taken by the next proposal fed, whatever its block: it
/// cannot vouch for a later proposal of the block it names.
#[test]
fn an_offer_is_spent_by_the_next_proposal() {
    let n = net(&[1, 1, 1, 1]);
    let p = n.proposer(1, 0);
    let me = (p + 1) % 4;
    let (block, hash) = n.block(p, 1, 1);
    let proposal = n.proposal(p, 1, 0, -1, &block);
    let mut c = Consensus::new(
        ConsensusConfig::default(),
        n.chain.clone(),
        Some(n.key(me)),
        None,
    );
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    c.offer_carried_commit(offer(&n, hash, &[0, 1, 2], &[0, 1, 2]));
    // A proposal from the wrong sender takes the offer and is rejected.
    let mut wrong = proposal.clone();
    wrong.proposer_address = n.set.validators()[me].address.0.to_vec();
    let out = c.handle(Input::Proposal(wrong));
    assert_eq!(rejections(&out).len(), 1, "{out:?}");
    let out = c.handle(Input::Proposal(proposal));
    assert_eq!(vouched(&out), Some(None));
}
