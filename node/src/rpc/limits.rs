//! Bounds on what a gRPC client may ask for.

use std::time::Duration;

/// Largest request body the server decodes (a transaction or evidence with
/// two votes is a few hundred bytes; this leaves room and nothing more).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
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
