//! Bounds on what a gRPC client may ask for.

use std::time::Duration;

/// Largest request body the server decodes. A transaction or evidence with
/// two votes is a few hundred bytes; the largest request is a `SubmitTxs`
/// batch, and this lets one carry its 1,000 transactions at their usual
/// size (a transfer is about 150 bytes). A batch of larger transactions
/// must be split by its sender; the refusal names both limits.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// Largest response (a full block).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Blocks per GetBlocks response at most.
pub const MAX_RANGE_BLOCKS: usize = 256;
/// Encoded bytes of the blocks in a GetBlocks response at most, past the
/// first block (one block is at most a block frame, about 4 MiB, so a
/// response stays well within [`MAX_RESPONSE_BYTES`]).
pub const MAX_RANGE_BYTES: usize = 8 * 1024 * 1024;
/// Items per page when the client does not say.
pub const DEFAULT_PAGE: usize = 50;
/// Items per page at most.
pub const MAX_PAGE: usize = 200;
/// Default wait for a transaction's commit.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// Longest wait a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(120);
/// Longest accepted address or page token.
pub const MAX_KEY_BYTES: usize = 64;

/// How much of the server its clients may hold at once. Each bound caps
/// memory as well as work; the worst case with the defaults:
/// - connections: `max_connections` (256) sockets, each with at most
///   `max_streams_per_connection` (64) HTTP/2 streams whose request bodies
///   are cut at [`MAX_REQUEST_BYTES`] (256 KiB) and whose flow-control windows
///   are hyper's defaults (64 KiB per stream, 1 MiB per connection with
///   adaptive windows off): about 256 MiB if every window is filled;
/// - requests being answered: `max_requests` (512) in total, counted until
///   each answer has been handed to HTTP/2 (`answer_places`: an unread
///   answer holds its place), `max_requests_per_ip` (128) of them from one
///   client address, and `max_requests_per_connection` (32)
///   handlers running per connection; the excess is refused with
///   UNAVAILABLE at once (load shedding), never queued. Their decoded
///   bodies: at most 512 × 256 KiB = 128 MiB;
/// - block-range reads (`GetBlocks`, up to [`MAX_RANGE_BYTES`] = 8 MiB each,
///   twice while encoding): `max_block_ranges` (4) at once, read or being
///   sent, 64 MiB;
/// - an answer's last piece (`answer_places::PIECE`, 8 KiB) may wait in
///   HTTP/2 after its place is freed: one per open stream, 256 × 64 × 8 KiB
///   = 128 MiB;
/// - certificate streams: `max_certificate_streams` (128) open, each
///   buffering at most 64 certificates (a few KiB each): under 64 MiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections from one IP address at most.
    pub max_connections_per_ip: usize,
    /// Concurrent HTTP/2 streams per connection (advertised to the client).
    pub max_streams_per_connection: u32,
    /// Requests being answered on one connection at most.
    pub max_requests_per_connection: usize,
    /// Requests being answered in total at most (until their answers are
    /// handed to HTTP/2).
    pub max_requests: usize,
    /// Of those, held by one client address at most.
    pub max_requests_per_ip: usize,
    /// `StreamCommitCertificates` streams open at most.
    pub max_certificate_streams: usize,
    /// `GetBlocks` answers being read or sent at most.
    pub max_block_ranges: usize,
    /// Longest a connection may send nothing before it is closed
    /// (`conn_limit::LimitedConn`). The server pings an idle HTTP/2 client
    /// every third of it ([`ServerLimits::keepalive`]), so only a client that
    /// never answers (one that opened a socket and holds it without a word)
    /// reaches it.
    pub silent_client: Duration,
}

impl ServerLimits {
    /// The HTTP/2 keep-alive ping interval and the wait for its answer: a
    /// third of [`ServerLimits::silent_client`] each, so a live client's
    /// answer always comes before the silence bound.
    pub fn keepalive(&self) -> Duration {
        self.silent_client / 3
    }
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_connections_per_ip: 64,
            max_streams_per_connection: 64,
            max_requests_per_connection: 32,
            max_requests: 512,
            max_requests_per_ip: 128,
            max_certificate_streams: 128,
            max_block_ranges: 4,
            silent_client: Duration::from_secs(60),
        }
    }
}

/// The page size for a client's `limit`.
pub fn page_size(limit: u32) -> usize {
    match limit as usize {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

/// The wait for a client's `timeout_ms`.
pub fn wait_timeout(ms: u64) -> Duration {
    if ms == 0 {
        DEFAULT_WAIT
    } else {
        Duration::from_millis(ms).min(MAX_WAIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_clamp() {
        assert_eq!(page_size(0), DEFAULT_PAGE);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(u32::MAX), MAX_PAGE);
        assert_eq!(wait_timeout(0), DEFAULT_WAIT);
        assert_eq!(wait_timeout(u64::MAX), MAX_WAIT);
        assert_eq!(wait_timeout(5), Duration::from_millis(5));
    }
}
