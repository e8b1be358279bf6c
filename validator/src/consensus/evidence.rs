//! Evidence of double signing in its canonical form (DESIGN §8) and its
//! verification.
//!
//! One infraction has exactly one encoding: the two halves are ordered by
//! block hash (nil counts as 32 zero bytes), smaller first; halves with equal
//! hashes (proposals that differ only in their POL round) are ordered by their
//! protobuf encoding. [`EvidenceLog`] remembers which infractions were already
//! reported so each is emitted once. [`verify_evidence`] is pure and is what
//! the ledger uses to accept submitted evidence.

use crate::certificate::{CertificateError, CommitCertificate};
use crate::crypto::{Hash, Signature, ZERO_HASH, hash::hash_from_slice};
use crate::signing::{proposal_bytes, vote_bytes};
use crate::types::{Address, ChainId, Height, Round, VoteType};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;
use prost::Message;
use std::collections::BTreeSet;

/// Why evidence is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// The evidence has no kind or a half is missing.
    #[error("evidence is incomplete: {0}")]
    Incomplete(&'static str),
    /// The halves are not about the same signer, height, round and type.
    #[error("halves do not match: {0}")]
    Mismatch(&'static str),
    /// The halves sign the same thing; that is not an equivocation.
    #[error("halves are identical in what they sign")]
    NotConflicting,
    /// The halves are not in canonical order.
    #[error("halves are not in canonical order (smaller block hash first)")]
    NotCanonical,
    /// A field does not decode.
    #[error("malformed evidence: {0}")]
    Malformed(String),
    /// The offender is not in the validator set of that height.
    #[error("{0} is not a validator at that height")]
    NotAValidator(Address),
    /// A signature does not verify.
    #[error("signature of half {0} does not verify")]
    BadSignature(char),
    /// A conflicting-certificates half does not verify.
    #[error("certificate {0} does not verify: {1}")]
    BadCertificate(char, String),
}

/// What verified evidence proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceInfo {
    /// Height of the infraction.
    pub height: Height,
    /// Validators that double signed (one for votes and proposals; the
    /// intersection of the signers for conflicting certificates).
    pub offenders: Vec<Address>,
}

/// Identity of one infraction, used to deduplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InfractionKey {
    /// The offender.
    pub offender: Address,
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// 0 for proposals, else the vote type code.
    pub kind: u8,
}

/// Block hash of a vote, with nil (empty or zeros) as zeros; None if malformed.
pub fn vote_hash(v: &pb::Vote) -> Option<Hash> {
    if v.block_hash.is_empty() {
        Some(ZERO_HASH)
    } else {
        hash_from_slice(&v.block_hash)
    }
}

fn block_hash_of(bytes: &[u8]) -> Option<Hash> {
    hash_from_slice(bytes)
}

fn ordered<M: Message>(a: M, ha: Hash, b: M, hb: Hash) -> (M, M) {
    let swap = match ha.cmp(&hb) {
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => a.encode_to_vec() > b.encode_to_vec(),
    };
    if swap { (b, a) } else { (a, b) }
}

/// Canonical DuplicateVote evidence from two conflicting votes (either order).
/// Votes with malformed hashes order as nil; verification rejects them anyway.
pub fn duplicate_vote(a: pb::Vote, b: pb::Vote) -> pb::Evidence {
    let ha = vote_hash(&a).unwrap_or(ZERO_HASH);
    let hb = vote_hash(&b).unwrap_or(ZERO_HASH);
    let (vote_a, vote_b) = ordered(a, ha, b, hb);
    pb::Evidence {
        kind: Some(pb::evidence::Kind::DuplicateVote(
            pb::DuplicateVoteEvidence {
                vote_a: Some(vote_a),
                vote_b: Some(vote_b),
            },
        )),
    }
}

/// The signed part of a proposal (what evidence carries instead of the block).
pub fn signed_proposal(p: &pb::Proposal, block_hash: &Hash) -> pb::SignedProposal {
    pb::SignedProposal {
        height: p.height,
        round: p.round,
        pol_round: p.pol_round,
        block_hash: block_hash.to_vec(),
        proposer_address: p.proposer_address.clone(),
        signature: p.signature.clone(),
    }
}

/// Canonical ConflictingProposals evidence from two signed proposals (either order).
pub fn conflicting_proposals(a: pb::SignedProposal, b: pb::SignedProposal) -> pb::Evidence {
    let ha = block_hash_of(&a.block_hash).unwrap_or(ZERO_HASH);
    let hb = block_hash_of(&b.block_hash).unwrap_or(ZERO_HASH);
    let (proposal_a, proposal_b) = ordered(a, ha, b, hb);
    pb::Evidence {
        kind: Some(pb::evidence::Kind::ConflictingProposals(
            pb::ConflictingProposalsEvidence {
                proposal_a: Some(proposal_a),
                proposal_b: Some(proposal_b),
            },
        )),
    }
}

/// Canonical ConflictingCertificates evidence from two certificates of
/// different blocks at the same height and round (either order); None when
/// they do not conflict that way. Not verified here.
pub fn conflicting_certificates(
    a: &CommitCertificate,
    b: &CommitCertificate,
) -> Option<pb::Evidence> {
    if a.height != b.height || a.round != b.round || a.block_hash == b.block_hash {
        return None;
    }
    let (a, b) = if a.block_hash < b.block_hash {
        (a, b)
    } else {
        (b, a)
    };
    Some(pb::Evidence {
        kind: Some(pb::evidence::Kind::ConflictingCertificates(
            pb::ConflictingCertificatesEvidence {
                cert_a: Some(a.to_proto()),
                cert_b: Some(b.to_proto()),
            },
        )),
    })
}

/// The infraction an evidence is about, without verifying it (None for
/// conflicting certificates, which may name many validators, or malformed input).
pub fn infraction_key(ev: &pb::Evidence) -> Option<InfractionKey> {
    match ev.kind.as_ref()? {
        pb::evidence::Kind::DuplicateVote(d) => {
            let a = d.vote_a.as_ref()?;
            Some(InfractionKey {
                offender: Address::from_slice(&a.validator_address).ok()?,
                height: a.height,
                round: a.round,
                kind: u8::try_from(a.vote_type).ok()?,
            })
        }
        pb::evidence::Kind::ConflictingProposals(c) => {
            let a = c.proposal_a.as_ref()?;
            Some(InfractionKey {
                offender: Address::from_slice(&a.proposer_address).ok()?,
                height: a.height,
                round: a.round,
                kind: 0,
            })
        }
        pb::evidence::Kind::ConflictingCertificates(_) => None,
    }
}

/// What `ev` claims, for a person reading why it was refused: its kind, the
/// offender, height and round, and the first bytes of each half's block
/// hash and signature (enough to tell which messages were paired).
pub fn describe(ev: &pb::Evidence) -> String {
    let short = |b: &[u8]| -> String { b.iter().take(4).map(|x| format!("{x:02x}")).collect() };
    match ev.kind.as_ref() {
        Some(pb::evidence::Kind::DuplicateVote(d)) => {
            let half = |v: Option<&pb::Vote>| {
                v.map_or("missing".to_string(), |v| {
                    format!(
                        "type {} h {} r {} block {} sig {}",
                        v.vote_type,
                        v.height,
                        v.round,
                        short(&v.block_hash),
                        short(&v.signature)
                    )
                })
            };
            format!(
                "duplicate vote of {}: a [{}], b [{}]",
                short(d.vote_a.as_ref().map_or(&[][..], |v| &v.validator_address)),
                half(d.vote_a.as_ref()),
                half(d.vote_b.as_ref())
            )
        }
        Some(pb::evidence::Kind::ConflictingProposals(c)) => {
            let half = |p: Option<&pb::SignedProposal>| {
                p.map_or("missing".to_string(), |p| {
                    format!(
                        "h {} r {} pol {} block {} sig {}",
                        p.height,
                        p.round,
                        p.pol_round,
                        short(&p.block_hash),
                        short(&p.signature)
                    )
                })
            };
            format!(
                "conflicting proposals: a [{}], b [{}]",
                half(c.proposal_a.as_ref()),
                half(c.proposal_b.as_ref())
            )
        }
        Some(pb::evidence::Kind::ConflictingCertificates(_)) => "conflicting certificates".into(),
        None => "no kind".into(),
    }
}

/// Remembers reported infractions so each is emitted once.
#[derive(Debug, Clone, Default)]
pub struct EvidenceLog {
    seen: BTreeSet<InfractionKey>,
}

impl EvidenceLog {
    /// Records `ev`; returns it if its infraction is new.
    pub fn admit(&mut self, ev: pb::Evidence) -> Option<pb::Evidence> {
        let key = infraction_key(&ev)?;
        self.seen.insert(key).then_some(ev)
    }

    /// Whether the infraction was already reported.
    pub fn contains(&self, key: &InfractionKey) -> bool {
        self.seen.contains(key)
    }

    /// Forgets infractions below `height` (they can no longer occur live).
    pub fn prune_below(&mut self, height: Height) {
        self.seen.retain(|k| k.height >= height);
    }
}

fn sig(bytes: &[u8], half: char) -> Result<Signature, EvidenceError> {
    Signature::from_bytes(bytes).map_err(|e| EvidenceError::Malformed(format!("half {half}: {e}")))
}

/// Checks that both halves of a double-sign (signature and the bytes it
/// must sign, halves `a` then `b`) were signed by the member of `set` whose
/// address is `address`, and returns that address (the offender).
fn both_signed_by(
    set: &ValidatorSet,
    address: &[u8],
    halves: [(&Vec<u8>, Vec<u8>); 2],
) -> Result<Address, EvidenceError> {
    let addr = Address::from_slice(address).map_err(|e| EvidenceError::Malformed(e.to_string()))?;
    let v = set.get(&addr).ok_or(EvidenceError::NotAValidator(addr))?;
    for (half, (signature, msg)) in ['a', 'b'].into_iter().zip(halves) {
        let s = sig(signature, half)?;
        v.public_key
            .verify(&msg, &s)
            .map_err(|_| EvidenceError::BadSignature(half))?;
    }
    Ok(addr)
}

/// Whether one vote's own signature verifies under its validator's key in
/// `set`. For the rare refusal that must tell which half was bad; evidence
/// itself is verified by [`verify_evidence`].
pub fn vote_verifies(chain: &ChainId, set: &ValidatorSet, v: &pb::Vote) -> bool {
    let (Some(vt), Some(hash)) = (VoteType::from_i32(v.vote_type), vote_hash(v)) else {
        return false;
    };
    let Some(validator) = Address::from_slice(&v.validator_address)
        .ok()
        .and_then(|a| set.get(&a))
    else {
        return false;
    };
    Signature::from_bytes(&v.signature).is_ok_and(|s| {
        validator
            .public_key
            .verify(&vote_bytes(chain, vt, v.height, v.round, &hash), &s)
            .is_ok()
    })
}

/// Verifies evidence against the validator set of its height: shape,
/// canonical order, conflict, membership and both signatures.
pub fn verify_evidence(
    chain: &ChainId,
    set: &ValidatorSet,
    ev: &pb::Evidence,
) -> Result<EvidenceInfo, EvidenceError> {
    match ev
        .kind
        .as_ref()
        .ok_or(EvidenceError::Incomplete("no kind"))?
    {
        pb::evidence::Kind::DuplicateVote(d) => verify_duplicate_vote(chain, set, d),
        pb::evidence::Kind::ConflictingProposals(c) => verify_conflicting_proposals(chain, set, c),
        pb::evidence::Kind::ConflictingCertificates(c) => {
            verify_conflicting_certificates(chain, set, c)
        }
    }
}

/// Two votes of one validator for different values at the same height,
/// round and type.
fn verify_duplicate_vote(
    chain: &ChainId,
    set: &ValidatorSet,
    d: &pb::DuplicateVoteEvidence,
) -> Result<EvidenceInfo, EvidenceError> {
    let a = d
        .vote_a
        .as_ref()
        .ok_or(EvidenceError::Incomplete("vote a"))?;
    let b = d
        .vote_b
        .as_ref()
        .ok_or(EvidenceError::Incomplete("vote b"))?;
    if a.validator_address != b.validator_address {
        return Err(EvidenceError::Mismatch("validator"));
    }
    if a.height != b.height || a.round != b.round || a.vote_type != b.vote_type {
        return Err(EvidenceError::Mismatch("height, round or type"));
    }
    let vt = VoteType::from_i32(a.vote_type)
        .ok_or_else(|| EvidenceError::Malformed("vote type".into()))?;
    let ha = vote_hash(a).ok_or_else(|| EvidenceError::Malformed("hash a".into()))?;
    let hb = vote_hash(b).ok_or_else(|| EvidenceError::Malformed("hash b".into()))?;
    if ha == hb {
        return Err(EvidenceError::NotConflicting);
    }
    if ha > hb {
        return Err(EvidenceError::NotCanonical);
    }
    let signed = |v: &pb::Vote, h| vote_bytes(chain, vt, v.height, v.round, &h);
    let addr = both_signed_by(
        set,
        &a.validator_address,
        [(&a.signature, signed(a, ha)), (&b.signature, signed(b, hb))],
    )?;
    Ok(EvidenceInfo {
        height: a.height,
        offenders: vec![addr],
    })
}

/// Two proposals of one proposer for the same height and round that differ
/// in block or valid round.
fn verify_conflicting_proposals(
    chain: &ChainId,
    set: &ValidatorSet,
    c: &pb::ConflictingProposalsEvidence,
) -> Result<EvidenceInfo, EvidenceError> {
    let a = c
        .proposal_a
        .as_ref()
        .ok_or(EvidenceError::Incomplete("proposal a"))?;
    let b = c
        .proposal_b
        .as_ref()
        .ok_or(EvidenceError::Incomplete("proposal b"))?;
    if a.proposer_address != b.proposer_address {
        return Err(EvidenceError::Mismatch("proposer"));
    }
    if a.height != b.height || a.round != b.round {
        return Err(EvidenceError::Mismatch("height or round"));
    }
    let ha =
        block_hash_of(&a.block_hash).ok_or_else(|| EvidenceError::Malformed("hash a".into()))?;
    let hb =
        block_hash_of(&b.block_hash).ok_or_else(|| EvidenceError::Malformed("hash b".into()))?;
    if ha == hb && a.pol_round == b.pol_round {
        return Err(EvidenceError::NotConflicting);
    }
    if ha > hb || (ha == hb && a.encode_to_vec() > b.encode_to_vec()) {
        return Err(EvidenceError::NotCanonical);
    }
    let signed =
        |p: &pb::SignedProposal, h| proposal_bytes(chain, p.height, p.round, p.pol_round, &h);
    let addr = both_signed_by(
        set,
        &a.proposer_address,
        [(&a.signature, signed(a, ha)), (&b.signature, signed(b, hb))],
    )?;
    Ok(EvidenceInfo {
        height: a.height,
        offenders: vec![addr],
    })
}

/// Two valid certificates of one height and round for different blocks:
/// every validator that signed both is an offender.
fn verify_conflicting_certificates(
    chain: &ChainId,
    set: &ValidatorSet,
    c: &pb::ConflictingCertificatesEvidence,
) -> Result<EvidenceInfo, EvidenceError> {
    let bad =
        |side: char| move |e: CertificateError| EvidenceError::BadCertificate(side, e.to_string());
    let pa = c
        .cert_a
        .as_ref()
        .ok_or(EvidenceError::Incomplete("cert a"))?;
    let pb_ = c
        .cert_b
        .as_ref()
        .ok_or(EvidenceError::Incomplete("cert b"))?;
    let a = CommitCertificate::from_proto(pa).map_err(bad('a'))?;
    let b = CommitCertificate::from_proto(pb_).map_err(bad('b'))?;
    if a.height != b.height {
        return Err(EvidenceError::Mismatch("height"));
    }
    // Across rounds an honest validator may precommit two values
    // (after a later polka); only the same round is accountable.
    if a.round != b.round {
        return Err(EvidenceError::Mismatch("round"));
    }
    if a.block_hash == b.block_hash {
        return Err(EvidenceError::NotConflicting);
    }
    if a.block_hash > b.block_hash {
        return Err(EvidenceError::NotCanonical);
    }
    a.verify(chain, set).map_err(bad('a'))?;
    b.verify(chain, set).map_err(bad('b'))?;
    let ia = a.signer_indices(set.len()).map_err(bad('a'))?;
    let ib: BTreeSet<usize> = b
        .signer_indices(set.len())
        .map_err(bad('b'))?
        .into_iter()
        .collect();
    let offenders = ia
        .into_iter()
        .filter(|i| ib.contains(i))
        .map(|i| set.validators()[i].address)
        .collect();
    Ok(EvidenceInfo {
        height: a.height,
        offenders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused duplicate vote is described by both halves, so a ban line
    /// says which two messages were paired.
    #[test]
    fn a_duplicate_vote_is_described_by_both_halves() {
        let vote = |hash: u8, sig: u8| pb::Vote {
            vote_type: 1,
            height: 103,
            round: 2,
            block_hash: vec![hash; 32],
            validator_address: vec![0xab; 20],
            signature: vec![sig; 96],
        };
        let ev = pb::Evidence {
            kind: Some(pb::evidence::Kind::DuplicateVote(
                pb::DuplicateVoteEvidence {
                    vote_a: Some(vote(0, 0x11)),
                    vote_b: Some(vote(0x7f, 0x22)),
                },
            )),
        };
        let d = describe(&ev);
        assert!(d.starts_with("duplicate vote of abababab"), "{d}");
        assert!(
            d.contains("a [type 1 h 103 r 2 block 00000000 sig 11111111]"),
            "{d}"
        );
        assert!(
            d.contains("b [type 1 h 103 r 2 block 7f7f7f7f sig 22222222]"),
            "{d}"
        );
        assert_eq!(describe(&pb::Evidence { kind: None }), "no kind");
    }
}
