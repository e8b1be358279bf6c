//! Framing of peer messages on QUIC streams: a 4-byte big-endian length, then
//! the protobuf `PeerMessage`. Every frame is bounded twice: by a hard maximum
//! checked against the length prefix *before* reading the body, and by a
//! per-kind maximum checked after decoding (a vote has no business being
//! 1 MiB even if the hard maximum would allow it).

use agora_proto::v1::{PeerMessage, peer_message::Kind};
use prost::Message;

/// Hard maximum of any frame body: large enough for a block response of 4 MiB
/// of blocks plus protobuf overhead.
pub const MAX_FRAME: usize = 4 * 1024 * 1024 + 64 * 1024;
/// Maximum of frames that carry a whole block (proposals, block responses).
pub const MAX_BLOCK_FRAME: usize = MAX_FRAME;
/// Maximum of transaction and evidence frames.
pub const MAX_TX_FRAME: usize = 64 * 1024;
/// Maximum of a gossiped transaction batch frame (the sender stops filling a
/// batch at half of this, see `runner::tx_gossip`).
pub const MAX_TX_BATCH_FRAME: usize = 512 * 1024;
/// Maximum of small control frames: votes, hello, status, block requests.
pub const MAX_SMALL_FRAME: usize = 2 * 1024;

/// Why a frame was rejected. Every variant except `Stream` is the peer's fault.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The length prefix or the decoded message is larger than allowed.
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    Oversized {
        /// Declared or actual length.
        len: usize,
        /// Limit that applied.
        limit: usize,
    },
    /// The body is not a valid `PeerMessage`, or carries no message at all.
    #[error("undecodable peer message: {0}")]
    Undecodable(String),
    /// The stream ended or failed before a whole frame arrived.
    #[error("stream error: {0}")]
    Stream(String),
}

impl WireError {
    /// Whether the error proves the peer misbehaved (as opposed to a broken stream).
    pub fn is_misbehaviour(&self) -> bool {
        !matches!(self, Self::Stream(_))
    }
}

/// The largest encoding allowed for a message of this kind.
pub fn limit_for(kind: &Kind) -> usize {
    match kind {
        Kind::Proposal(_) | Kind::BlockResponse(_) => MAX_BLOCK_FRAME,
        Kind::Transaction(_) | Kind::Evidence(_) => MAX_TX_FRAME,
        Kind::Transactions(_) => MAX_TX_BATCH_FRAME,
        Kind::Hello(_) | Kind::Vote(_) | Kind::BlockRequest(_) | Kind::Status(_) => MAX_SMALL_FRAME,
    }
}

/// Encodes a message as one frame (length prefix + body).
pub fn encode_frame(msg: &PeerMessage) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut out = Vec::with_capacity(4 + len);
    // Callers only encode messages they built; a frame longer than u32 cannot occur
    // because the receiver would reject it anyway, and saturating keeps it rejected.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    msg.encode(&mut out)
        .unwrap_or_else(|_| unreachable!("Vec<u8> grows as needed"));
    out
}

/// Decodes and bounds a frame body.
pub fn decode_body(body: &[u8]) -> Result<PeerMessage, WireError> {
    let msg = PeerMessage::decode(body).map_err(|e| WireError::Undecodable(e.to_string()))?;
    let kind = msg
        .kind
        .as_ref()
        .ok_or_else(|| WireError::Undecodable("empty message".into()))?;
    let limit = limit_for(kind);
    if body.len() > limit {
        return Err(WireError::Oversized {
            len: body.len(),
            limit,
        });
    }
    Ok(msg)
}

/// Reads one frame from a stream. `max` bounds the length prefix.
pub async fn read_frame(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<(PeerMessage, usize), WireError> {
    let mut len_buf = [0u8; 4];
    recv.read_exact(&mut len_buf)
        .await
        .map_err(|e| WireError::Stream(e.to_string()))?;
    let len = u32::from_be_bytes(len_buf) as usize;
    if len > max {
        return Err(WireError::Oversized { len, limit: max });
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| WireError::Stream(e.to_string()))?;
    Ok((decode_body(&body)?, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::{StatusUpdate, Vote};

    #[test]
    fn frame_round_trip() {
        let msg = PeerMessage {
            kind: Some(Kind::Status(StatusUpdate { latest_height: 7 })),
        };
        let f = encode_frame(&msg);
        assert_eq!(
            u32::from_be_bytes(f[..4].try_into().unwrap()) as usize,
            f.len() - 4
        );
        assert_eq!(decode_body(&f[4..]).unwrap(), msg);
    }

    #[test]
    fn oversized_vote_and_garbage_are_rejected() {
        let msg = PeerMessage {
            kind: Some(Kind::Vote(Vote {
                signature: vec![0; MAX_SMALL_FRAME],
                ..Default::default()
            })),
        };
        let f = encode_frame(&msg);
        assert!(matches!(
            decode_body(&f[4..]),
            Err(WireError::Oversized { .. })
        ));
        assert!(matches!(
            decode_body(&[0xff, 0xff, 0xff]),
            Err(WireError::Undecodable(_))
        ));
        assert!(matches!(decode_body(&[]), Err(WireError::Undecodable(_))));
    }
}
