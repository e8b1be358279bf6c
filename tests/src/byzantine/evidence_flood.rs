//! Evidence that does not hold: two conflicting votes of a self-made key
//! (no validator at that height), alternating with two "conflicting" votes
//! in a real validator's name whose signatures are made up. Each is a
//! distinct message (de-duplication does not catch it) that the node must
//! check and charge as `bad_evidence`.

use agora_proto::v1::{DuplicateVoteEvidence, Evidence, evidence::Kind as EvidenceKind};
use agora_proto::v1::{Vote, peer_message::Kind};
use tokio::time::Instant;

use super::consensus_flood::vote;
use super::flood::{Pace, flood, frame};
use super::peer::self_made_key;
use super::{AttackError, Report, Target};

/// The `n`-th piece of bad evidence at `height`: a self-made key's double
/// vote for even `n`, forged signatures in `victim`'s name for odd `n`.
pub fn bad_evidence(
    target: &Target,
    height: u64,
    victim: &[u8],
    n: u64,
) -> Result<Evidence, AttackError> {
    let (mut a, mut b): (Vote, Vote);
    if n.is_multiple_of(2) {
        let key = self_made_key(0xe0_0000 + n)?;
        a = vote(&target.chain, &key, height, 2 * n);
        b = vote(&target.chain, &key, height, 2 * n + 1);
    } else {
        let key = self_made_key(0xe1_0000 + n)?;
        a = vote(&target.chain, &key, height, 2 * n);
        b = vote(&target.chain, &key, height, 2 * n + 1);
        for v in [&mut a, &mut b] {
            v.validator_address = victim.to_vec();
        }
    }
    // Canonical order: the smaller block hash first.
    if a.block_hash > b.block_hash {
        std::mem::swap(&mut a, &mut b);
    }
    Ok(Evidence {
        kind: Some(EvidenceKind::DuplicateVote(DuplicateVoteEvidence {
            vote_a: Some(a),
            vote_b: Some(b),
        })),
    })
}

/// Floods bad evidence about the node's latest height (in `victim`'s name
/// every other time) until `deadline`, at about `per_sec` pieces a second.
pub async fn run(
    target: &Target,
    victim: &[u8],
    deadline: Instant,
    per_sec: u64,
) -> Result<Report, AttackError> {
    let mut failed = None;
    let report = flood(
        target,
        deadline,
        Pace::per_sec(per_sec),
        |_| Ok(None),
        |n, tip| match bad_evidence(target, tip.max(1), victim, n) {
            Ok(ev) => frame(Kind::Evidence(ev)),
            Err(e) => {
                failed = Some(e);
                Vec::new()
            }
        },
    )
    .await?;
    match failed {
        Some(e) => Err(e),
        None => Ok(report),
    }
}
