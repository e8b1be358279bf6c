//! Floods of block responses, each holding thousands of made-up blocks
//! with forged certificates: if the node verified them it would run one
//! pairing check per certificate. Nobody asked for them, so the node must
//! drop them unverified (and its check budget caps what even reaches that
//! decision).

use agora_proto::v1::{BlockResponse, peer_message::Kind};
use tokio::time::Instant;

use super::flood::{Pace, flood, frame};
use super::sync_responses::fake_certified_block;
use super::{AttackError, Report, Target};

/// Sends responses of `blocks_per_response` forged blocks above `tip`
/// until `deadline`, about `per_sec` responses a second.
pub async fn run(
    target: &Target,
    tip: u64,
    blocks_per_response: u64,
    deadline: Instant,
    per_sec: u64,
) -> Result<Report, AttackError> {
    // Encoded once: the attacker's CPU is the nodes' CPU on this machine.
    let response = frame(Kind::BlockResponse(BlockResponse {
        blocks: (0..blocks_per_response)
            .map(|i| fake_certified_block(&target.chain, tip + 1 + i, i))
            .collect(),
        latest_height: tip + blocks_per_response,
        lowest_height: 0,
    }));
    flood(
        target,
        deadline,
        Pace::per_sec(per_sec),
        |_| Ok(None),
        |_, _| response.clone(),
    )
    .await
}
