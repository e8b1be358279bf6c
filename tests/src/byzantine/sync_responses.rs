//! Block responses the node must not believe:
//!
//! - **unsolicited** — answers to requests the node never sent, each with
//!   one made-up block at the node's next height;
//! - **tampered** — the attacker claims a height far ahead, so the node
//!   asks it for blocks, and it answers each request with made-up blocks at
//!   exactly the heights asked for (headers that chain to nothing, forged
//!   certificates): a solicited answer whose content fails.

use std::time::Duration;

use agora_proto::v1::{
    Block, BlockResponse, CertifiedBlock, CommitCertificate, Header, StatusUpdate,
    peer_message::Kind,
};
use agora_validator::ChainId;
use agora_validator::crypto::sha3_256;
use tokio::time::Instant;

use super::false_height::CLAIM_AHEAD;
use super::flood::{Pace, flood, frame};
use super::peer::{connect_until, record_close};
use super::{AttackError, Report, Target};

/// A made-up block at `height` with a forged certificate over it;
/// `salt` makes it distinct.
pub fn fake_certified_block(chain: &ChainId, height: u64, salt: u64) -> CertifiedBlock {
    let header = Header {
        chain_id: chain.as_str().to_string(),
        height,
        parent_hash: sha3_256(&salt.to_be_bytes()).to_vec(),
        time_ms: salt,
        ..Default::default()
    };
    let hash = agora_validator::block::header_hash(&header);
    CertifiedBlock {
        block: Some(Block {
            header: Some(header),
            ..Default::default()
        }),
        certificate: Some(CommitCertificate {
            height,
            round: 0,
            block_hash: hash.to_vec(),
            // Everyone signed, says the bitmap; the signature is noise.
            signers: vec![0xff],
            aggregate_signature: sha3_256(&hash).repeat(3),
        }),
    }
}

/// Unsolicited responses until `deadline`, about `per_sec` a second.
pub async fn unsolicited(
    target: &Target,
    tip: u64,
    deadline: Instant,
    per_sec: u64,
) -> Result<Report, AttackError> {
    let chain = target.chain.clone();
    flood(
        target,
        deadline,
        Pace::per_sec(per_sec),
        |_| Ok(None),
        |n, now| {
            let tip = now.max(tip);
            frame(Kind::BlockResponse(BlockResponse {
                blocks: vec![fake_certified_block(&chain, tip + 1, n)],
                latest_height: tip + 1,
                lowest_height: 0,
            }))
        },
    )
    .await
}

/// Claims a height far ahead and answers every block request with
/// made-up blocks at the heights asked for, until `deadline`.
/// `report.accepted` counts the requests answered.
pub async fn tampered(target: &Target, tip: u64, deadline: Instant) -> Result<Report, AttackError> {
    let mut report = Report::default();
    let mut salt = 0u64;
    while Instant::now() < deadline {
        let Some(peer) = connect_until(target, None, deadline, &mut report).await? else {
            break;
        };
        let claim = Kind::Status(StatusUpdate {
            latest_height: tip + CLAIM_AHEAD,
        });
        let mut last_claim = None::<Instant>;
        while Instant::now() < deadline && !peer.is_closed() {
            if last_claim.is_none_or(|t| t.elapsed() > Duration::from_millis(500)) {
                if peer.send(claim.clone()).await {
                    report.sent += 1;
                }
                last_claim = Some(Instant::now());
            }
            let Some(kind) = peer.next_message(Duration::from_millis(100)).await else {
                continue;
            };
            report.received += 1;
            if let Kind::BlockRequest(req) = kind {
                let blocks = (0..u64::from(req.count.clamp(1, 16)))
                    .map(|i| {
                        salt += 1;
                        fake_certified_block(&target.chain, req.from_height + i, salt)
                    })
                    .collect();
                let answer = Kind::BlockResponse(BlockResponse {
                    blocks,
                    latest_height: tip + CLAIM_AHEAD,
                    lowest_height: 0,
                });
                if peer.send(answer).await {
                    report.accepted += 1;
                    report.sent += 1;
                }
            }
        }
        record_close(&peer, &mut report);
        peer.conn.close(0u32.into(), b"done");
    }
    Ok(report)
}
