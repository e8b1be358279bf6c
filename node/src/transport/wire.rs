//! Framing of peer messages on QUIC streams: a 4-byte big-endian length, then
//! the protobuf `PeerMessage`. Every frame is bounded by its kind's maximum
//! *before* its body is read or allocated: the body of a `PeerMessage` is its
//! one `oneof` field, so the body's first byte is that field's key (field
//! number × 8 + 2), which names the kind ([`kind_of_key`]). A vote frame
//! therefore cannot make the node allocate more than [`MAX_SMALL_FRAME`],
//! whatever its length prefix claims. This changes nothing on the wire
//! (prost writes the only field first, as every encoder does); a body whose
//! first byte is no known kind gets the smallest limit and then fails to
//! decode. The limit is checked again after decoding.

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
    /// The body would decode into far more memory than its length (empty
    /// entries of a repeated field; see [`super::decoded`]).
    #[error("a body of {len} bytes would decode into about {estimate} bytes")]
    Amplified {
        /// The body's length.
        len: usize,
        /// Its decoded estimate.
        estimate: usize,
    },
    /// The peer finished the stream (a clean end, not a reset or a lost
    /// connection) before the frame it announced was complete: an honest
    /// sender finishes a stream only after writing the whole frame.
    #[error("stream finished after {got} bytes of a frame part of {wanted}")]
    Truncated {
        /// Bytes of the part being read that arrived.
        got: usize,
        /// Bytes that part needed.
        wanted: usize,
    },
    /// The stream failed (reset, connection lost) before a whole frame arrived.
    #[error("stream error: {0}")]
    Stream(String),
}

/// The error of a `read_exact` of `wanted` bytes: a clean early finish is
/// the peer's doing ([`WireError::Truncated`]), anything else a broken stream.
fn read_error(e: quinn::ReadExactError, wanted: usize) -> WireError {
    match e {
        quinn::ReadExactError::FinishedEarly(got) => WireError::Truncated { got, wanted },
        quinn::ReadExactError::ReadError(e) => WireError::Stream(e.to_string()),
    }
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
        Kind::Proposal(_)
        | Kind::BlockResponse(_)
        | Kind::SnapshotOffer(_)
        | Kind::ChunkResponse(_) => MAX_BLOCK_FRAME,
        Kind::Transaction(_) | Kind::Evidence(_) => MAX_TX_FRAME,
        Kind::Transactions(_) => MAX_TX_BATCH_FRAME,
        Kind::Hello(_)
        | Kind::Vote(_)
        | Kind::BlockRequest(_)
        | Kind::Status(_)
        | Kind::SnapshotRequest(_)
        | Kind::ChunkRequest(_) => MAX_SMALL_FRAME,
    }
}

/// The limit of a frame whose body starts with `key`: the limit of the kind
/// that key names, or [`MAX_SMALL_FRAME`] for anything else.
pub fn limit_for_key(key: u8) -> usize {
    match kind_of_key(key) {
        Some(2 | 7 | 11 | 13) => MAX_BLOCK_FRAME,
        Some(4 | 5) => MAX_TX_FRAME,
        Some(9) => MAX_TX_BATCH_FRAME,
        _ => MAX_SMALL_FRAME,
    }
}

/// The `PeerMessage.kind` field number a body's first byte (a protobuf key
/// of wire type 2, length-delimited) names, if it is one of ours (1–13).
pub fn kind_of_key(key: u8) -> Option<u8> {
    let (field, wire_type) = (key >> 3, key & 7);
    (wire_type == 2 && (1..=13).contains(&field)).then_some(field)
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

/// Decodes and bounds a frame body; a body that would decode into far more
/// than its length is refused before decoding
/// ([`super::decoded::checked_estimate`]).
pub fn decode_body(body: &[u8]) -> Result<PeerMessage, WireError> {
    super::decoded::checked_estimate(body)?;
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

/// Reads one frame from a stream. `max` bounds the length prefix; the
/// kind's limit (from the body's first byte) bounds it before the rest of
/// the body is read.
pub async fn read_frame(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<(PeerMessage, usize), WireError> {
    let (len, first) = read_head(recv, max).await?;
    read_body(recv, len, first).await
}

/// Reads one frame's body, undecoded, after taking its length in permits
/// (bytes) from `budget`, and returns it with them: the bytes a
/// connection's frames may hold at once, while they are read and until the
/// caller lets go of them, are bounded by the budget, and a sender beyond
/// it waits (and QUIC flow control holds it back).
pub async fn read_body_within(
    recv: &mut quinn::RecvStream,
    max: usize,
    budget: &std::sync::Arc<tokio::sync::Semaphore>,
) -> Result<(Vec<u8>, tokio::sync::OwnedSemaphorePermit), WireError> {
    let (len, first) = read_head(recv, max).await?;
    let permits = u32::try_from(len).unwrap_or(u32::MAX);
    let held = budget
        .clone()
        .acquire_many_owned(permits)
        .await
        .map_err(|e| WireError::Stream(e.to_string()))?;
    let body = read_raw_body(recv, len, first).await?;
    Ok((body, held))
}

/// The length prefix and the body's first byte, checked against `max` and
/// against the limit of the kind that byte names.
async fn read_head(recv: &mut quinn::RecvStream, max: usize) -> Result<(usize, u8), WireError> {
    let mut head = [0u8; 5];
    recv.read_exact(&mut head[..4])
        .await
        .map_err(|e| read_error(e, 4))?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > max {
        return Err(WireError::Oversized { len, limit: max });
    }
    if len == 0 {
        return Err(WireError::Undecodable("empty message".into()));
    }
    recv.read_exact(&mut head[4..])
        .await
        .map_err(|e| read_error(e, 1))?;
    let limit = limit_for_key(head[4]).min(max);
    if len > limit {
        return Err(WireError::Oversized { len, limit });
    }
    Ok((len, head[4]))
}

async fn read_body(
    recv: &mut quinn::RecvStream,
    len: usize,
    first: u8,
) -> Result<(PeerMessage, usize), WireError> {
    let body = read_raw_body(recv, len, first).await?;
    Ok((decode_body(&body)?, len))
}

async fn read_raw_body(
    recv: &mut quinn::RecvStream,
    len: usize,
    first: u8,
) -> Result<Vec<u8>, WireError> {
    debug_assert!((1..=MAX_FRAME).contains(&len));
    let mut body = vec![0u8; len];
    body[0] = first;
    recv.read_exact(&mut body[1..])
        .await
        .map_err(|e| read_error(e, len - 1))?;
    Ok(body)
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
    fn the_first_body_byte_names_the_kind_and_its_limit() {
        let kinds = [
            (Kind::Hello(Default::default()), MAX_SMALL_FRAME),
            (Kind::Proposal(Default::default()), MAX_BLOCK_FRAME),
            (Kind::Vote(Default::default()), MAX_SMALL_FRAME),
            (Kind::Evidence(Default::default()), MAX_TX_FRAME),
            (Kind::Transaction(Default::default()), MAX_TX_FRAME),
            (Kind::BlockRequest(Default::default()), MAX_SMALL_FRAME),
            (Kind::BlockResponse(Default::default()), MAX_BLOCK_FRAME),
            (Kind::Status(Default::default()), MAX_SMALL_FRAME),
            (Kind::Transactions(Default::default()), MAX_TX_BATCH_FRAME),
            (Kind::SnapshotRequest(Default::default()), MAX_SMALL_FRAME),
            (Kind::SnapshotOffer(Default::default()), MAX_BLOCK_FRAME),
            (Kind::ChunkRequest(Default::default()), MAX_SMALL_FRAME),
            (Kind::ChunkResponse(Default::default()), MAX_BLOCK_FRAME),
        ];
        for (kind, limit) in kinds {
            let f = encode_frame(&PeerMessage {
                kind: Some(kind.clone()),
            });
            assert_eq!(limit_for_key(f[4]), limit, "{kind:?}");
            assert_eq!(limit_for(&kind), limit, "{kind:?}");
        }
        // Not a length-delimited field 1..=9: the smallest limit.
        for key in [0x00, 0x08, 0x50, 0x52, 0xff] {
            assert_eq!(limit_for_key(key), MAX_SMALL_FRAME, "{key:#x}");
        }
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
