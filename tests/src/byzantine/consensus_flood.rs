//! Votes and proposals signed with a self-made BLS key, proven in the
//! Hello (so the node hears them as a validator's), for the height the
//! node is deciding. The key is in no validator set: every message is a
//! fault the node can check and charge, and each ban sends the attacker
//! back with a fresh key, certificate and socket.

use agora_proto::v1::{Block, Header, Proposal, Vote, peer_message::Kind};
use agora_validator::crypto::sha3_256;
use agora_validator::{Address, ChainId, SecretKey, VoteType, signing};
use tokio::time::Instant;

use super::flood::{Pace, flood, frame};
use super::peer::self_made_key;
use super::{AttackError, Report, Target};

/// A vote of `key` for `height`, distinct for every `n`.
pub fn vote(chain: &ChainId, key: &SecretKey, height: u64, n: u64) -> Vote {
    let hash = sha3_256(&n.to_be_bytes());
    let sig = key.sign(&signing::vote_bytes(
        chain,
        VoteType::Prevote,
        height,
        0,
        &hash,
    ));
    Vote {
        vote_type: VoteType::Prevote as i32,
        height,
        round: 0,
        block_hash: hash.to_vec(),
        validator_address: Address::of(&key.public_key()).0.to_vec(),
        signature: sig.to_bytes().to_vec(),
    }
}

/// A proposal of `key` for `height` with a made-up block, distinct for
/// every `n`.
pub fn proposal(chain: &ChainId, key: &SecretKey, height: u64, n: u64) -> Proposal {
    let proposer = Address::of(&key.public_key()).0.to_vec();
    // The body hashes match the (empty) body, so the node gets past the
    // body check to the proposer's and signatures' checks.
    let empty = agora_validator::block::list_hash::<agora_proto::v1::Transaction>(&[]).to_vec();
    let header = Header {
        chain_id: chain.as_str().to_string(),
        height,
        parent_hash: sha3_256(&n.to_be_bytes()).to_vec(),
        proposer_address: proposer.clone(),
        time_ms: n,
        txs_hash: empty.clone(),
        evidence_hash: empty,
        last_commit_hash: vec![0; 32],
        ..Default::default()
    };
    let hash = agora_validator::block::header_hash(&header);
    let sig = key.sign(&signing::proposal_bytes(chain, height, 0, -1, &hash));
    Proposal {
        height,
        round: 0,
        pol_round: -1,
        block: Some(Block {
            header: Some(header),
            ..Default::default()
        }),
        proposer_address: proposer,
        signature: sig.to_bytes().to_vec(),
    }
}

/// Floods votes and proposals (every fourth message) for the height the
/// node is deciding until `deadline`, at about `per_sec` messages a second.
pub async fn run(target: &Target, deadline: Instant, per_sec: u64) -> Result<Report, AttackError> {
    let chain = target.chain.clone();
    let key = std::cell::RefCell::new(None);
    flood(
        target,
        deadline,
        Pace::per_sec(per_sec),
        |i| {
            let k = self_made_key(0xc0de_0000 + i)?;
            *key.borrow_mut() = Some(k.clone());
            Ok(Some(k))
        },
        |n, tip| {
            let key = key.borrow();
            let Some(k) = key.as_ref() else {
                unreachable!("a key is made before the first message")
            };
            if n % 4 == 3 {
                frame(Kind::Proposal(proposal(&chain, k, tip + 1, n)))
            } else {
                frame(Kind::Vote(vote(&chain, k, tip + 1, n)))
            }
        },
    )
    .await
}
