//! Frames no honest peer sends, and streams no honest peer opens:
//!
//! - [`BadFrame::Garbage`] — a length prefix and then bytes that are no
//!   `PeerMessage` (a vote's kind byte followed by noise);
//! - [`BadFrame::Oversized`] — a vote's kind byte under a length prefix of
//!   3 MiB (a vote frame is at most 2 KiB);
//! - [`BadFrame::Truncated`] — a proposal announced at 64 KiB, 1 KiB of it
//!   sent, then the stream finished;
//! - [`amplifying_frames`] — block responses that fill a maximal frame
//!   with empty entries (2 bytes each on the wire, hundreds once decoded);
//! - [`stream_flood`] — every stream the node allows, each announcing a
//!   4 MiB proposal and sending as much of it as flow control lets
//!   through, none ever finished.

use std::time::Duration;

use tokio::time::Instant;

use super::peer::{connect_until, record_close};
use super::{AttackError, Report, Target};

/// The field key of `PeerMessage.vote` (field 3, length-delimited).
const VOTE_KEY: u8 = 3 << 3 | 2;
/// The field key of `PeerMessage.proposal` (field 2, length-delimited).
const PROPOSAL_KEY: u8 = 2 << 3 | 2;

/// A frame that breaks the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadFrame {
    /// Undecodable bytes within the kind's limit.
    Garbage,
    /// A length prefix beyond the kind's limit.
    Oversized,
    /// Fewer bytes than announced, then a clean end of the stream.
    Truncated,
}

impl BadFrame {
    /// The bytes of the frame (as much of it as is ever sent).
    pub fn bytes(self) -> Vec<u8> {
        match self {
            Self::Garbage => {
                let mut f = 200u32.to_be_bytes().to_vec();
                f.push(VOTE_KEY);
                // A length varint claiming far more than the frame holds.
                f.extend(std::iter::repeat_n(0xff, 199));
                f
            }
            Self::Oversized => {
                let mut f = (3u32 << 20).to_be_bytes().to_vec();
                f.push(VOTE_KEY);
                f.extend(std::iter::repeat_n(0, 1024));
                f
            }
            Self::Truncated => {
                let mut f = (64u32 << 10).to_be_bytes().to_vec();
                f.push(PROPOSAL_KEY);
                f.extend(std::iter::repeat_n(0, 1024));
                f
            }
        }
    }
}

/// One bad frame per connection (the first is already grounds for a ban),
/// a fresh certificate and socket each time, about `per_sec` connections
/// a second, until `deadline`.
pub async fn bad_frames(
    target: &Target,
    frame: BadFrame,
    deadline: Instant,
    per_sec: u64,
) -> Result<Report, AttackError> {
    let mut report = Report::default();
    let gap = Duration::from_millis(1000 / per_sec.max(1));
    let bytes = frame.bytes();
    while Instant::now() < deadline {
        let started = Instant::now();
        let Some(peer) = connect_until(target, None, deadline, &mut report).await? else {
            break;
        };
        // An oversized frame's stream stays open (its body never comes);
        // the others end as a clean finish.
        let finish = frame != BadFrame::Oversized;
        let _stream = peer.send_raw(&bytes, finish).await;
        report.sent += 1;
        let _ = tokio::time::timeout(Duration::from_secs(2), peer.conn.closed()).await;
        record_close(&peer, &mut report);
        peer.conn.close(0u32.into(), b"done");
        tokio::time::sleep(gap.saturating_sub(started.elapsed())).await;
    }
    Ok(report)
}

/// Opens `streams` streams on one connection, each announcing a 4 MiB
/// proposal and then writing its body for as long as flow control takes
/// it, never finishing any; holds them until `deadline`.
/// `report.bytes_written` is what the node let through.
pub async fn stream_flood(
    target: &Target,
    streams: u32,
    deadline: Instant,
) -> Result<Report, AttackError> {
    let mut report = Report::default();
    let Some(peer) = connect_until(target, None, deadline, &mut report).await? else {
        return Ok(report);
    };
    let peer = std::sync::Arc::new(peer);
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let mut head = (4u32 << 20).to_be_bytes().to_vec();
        head.push(PROPOSAL_KEY);
        let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_millis(500), peer.conn.open_uni()).await
        else {
            // The node allows no more streams at once: flow control.
            break;
        };
        if s.write_all(&head).await.is_err() {
            break;
        }
        report.sent += 1;
        tasks.push(tokio::spawn(async move {
            let chunk = vec![0u8; 64 * 1024];
            let mut written = 0u64;
            while Instant::now() < deadline {
                match tokio::time::timeout_at(deadline, s.write(&chunk)).await {
                    Ok(Ok(n)) => written += n as u64,
                    _ => break,
                }
                // 4 MiB announced: stop one byte short, never finishing.
                if written + chunk.len() as u64 >= 4 << 20 {
                    break;
                }
            }
            // Hold the stream open until the deadline.
            tokio::time::sleep_until(deadline).await;
            drop(s);
            written
        }));
    }
    for t in tasks {
        report.bytes_written += t.await.unwrap_or(0);
    }
    record_close(&peer, &mut report);
    peer.conn.close(0u32.into(), b"done");
    Ok(report)
}

/// The field key of `PeerMessage.block_response` (field 7, length-delimited).
const BLOCK_RESPONSE_KEY: u8 = 7 << 3 | 2;

/// A block-response frame of `bytes` body bytes holding nothing but empty
/// `CertifiedBlock` entries (`0a 00` each): valid protobuf, a million
/// entries in 2 MiB, each a few hundred bytes once decoded.
pub fn amplifying_frame(bytes: usize) -> Vec<u8> {
    let entries = (bytes.saturating_sub(8)) / 2;
    let inner_len = entries * 2;
    let mut body = vec![BLOCK_RESPONSE_KEY];
    let mut n = inner_len as u64;
    while n >= 0x80 {
        body.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    body.push(n as u8);
    for _ in 0..entries {
        body.extend_from_slice(&[0x0a, 0x00]);
    }
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

/// Sends amplifying block responses of `bytes` each, about `per_sec` a
/// second, on connection after connection, until `deadline`.
pub async fn amplifying_frames(
    target: &Target,
    bytes: usize,
    deadline: Instant,
    per_sec: u64,
) -> Result<Report, AttackError> {
    let frame = amplifying_frame(bytes);
    super::flood::flood(
        target,
        deadline,
        super::flood::Pace::per_sec(per_sec),
        |_| Ok(None),
        |_, _| frame.clone(),
    )
    .await
}
