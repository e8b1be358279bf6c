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
/// Items per page at most when each carries a state proof. A proof is at
/// most 256 sibling hashes (one per key-hash bit, about 8.7 KiB encoded and
/// twice that decoded), so this keeps a proven page within
/// [`MAX_SMALL_ANSWER`]: 32 × (8.9 KiB + the item) ≈ 300 KiB encoded.
pub const MAX_PROVEN_PAGE: usize = 32;
/// The most encoded bytes of any answer that takes no place of a pool
/// (`place_pool`): everything but `GetBlock`, `GetBlocks`,
/// `GetValidatorSet` and certificate streams. The largest such answers: a
/// proven page ([`MAX_PROVEN_PAGE`]), a `SubmitTxs` result for 1,000
/// transactions (a hash and a log of at most 300 bytes each, about 350
/// KiB), a page of
/// [`MAX_PAGE`] validator records (about 80 KiB). The memory bound counts
/// each held answer at twice this (decoded and encoded); `answer_places`
/// asserts it in debug builds.
pub const MAX_SMALL_ANSWER: usize = 512 * 1024;
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
///   Any answer but the ones below is at most [`MAX_SMALL_ANSWER`] (512
///   KiB) encoded, so held answers are at most 512 × 2 × 512 KiB = 512 MiB;
/// - block-range reads (`GetBlocks`, up to [`MAX_RANGE_BYTES`] = 8 MiB each,
///   twice while encoding): `max_block_ranges` (4) at once, read or being
///   sent, 64 MiB;
/// - single blocks and validator sets (`GetBlock`, `GetValidatorSet`, a
///   block frame of about 4 MiB at most, twice while encoding):
///   `max_large_answers` (32) at once, read or being sent, 266 MiB;
/// - each of those three pools (ranges, large answers, certificate streams)
///   gives one client address (an IPv4 address or an IPv6 /64) a quarter of
///   its places at most (`place_pool`);
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
    /// `StreamCommitCertificates` streams open at most (a quarter of them
    /// to one client address).
    pub max_certificate_streams: usize,
    /// `GetBlocks` answers being read or sent at most (a quarter of them
    /// to one client address, `place_pool`).
    pub max_block_ranges: usize,
    /// `GetBlock` and `GetValidatorSet` answers being read or sent at most
    /// (a quarter of them to one client address): the answers that may be
    /// larger than [`MAX_SMALL_ANSWER`] besides ranges.
    pub max_large_answers: usize,
    /// Longest a connection may send nothing before it is closed
    /// (`conn_limit::LimitedConn`). The server pings an idle HTTP/2 client
    /// every third of it ([`ServerLimits::keepalive`]), so only a client that
    /// never answers (one that opened a socket and holds it without a word)
    /// reaches it.
    pub silent_client: Duration,
    /// How long an answer may wait on its client (ready, with no room in
    /// the client's window) before the connection is closed (`stalls`).
    pub stalled_answer: Duration,
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
            max_large_answers: 32,
            silent_client: Duration::from_secs(60),
            stalled_answer: Duration::from_secs(30),
        }
    }
}

/// The page size for a client's `limit`, and whether each item is proven.
pub fn page_size(limit: u32, proven: bool) -> usize {
    let most = if proven { MAX_PROVEN_PAGE } else { MAX_PAGE };
    match limit as usize {
        0 => DEFAULT_PAGE.min(most),
        n => n.min(most),
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
    use agora_proto::v1 as pb;
    use prost::Message;

    /// A 39-digit amount, the longest a u128 prints.
    fn amount() -> String {
        u128::MAX.to_string()
    }

    /// A proof as deep as a key hash is long, with both non-membership
    /// fields and a generous leaf value.
    fn deepest_proof() -> pb::StateProof {
        pb::StateProof {
            height: u64::MAX,
            key: vec![0xff; MAX_KEY_BYTES],
            value: vec![0xff; 512],
            present: true,
            other_key_hash: vec![0xff; 32],
            other_value_hash: vec![0xff; 32],
            siblings: vec![vec![0xff; 32]; 256],
        }
    }

    /// A page of `items` slash events, each with the deepest proof.
    fn proven_page(items: usize) -> pb::ListSlashingEventsResponse {
        let event = pb::SlashingEvent {
            validator: vec![0xff; 20],
            infraction_height: u64::MAX,
            slash_height: u64::MAX,
            amount: amount(),
            fraction_bps: u32::MAX,
            evidence_hash: vec![0xff; 32],
            tombstoned: true,
            reason: 1,
            from_bonded: amount(),
            from_unbonding: amount(),
            from_redelegations: amount(),
            id: u64::MAX,
        };
        pb::ListSlashingEventsResponse {
            events: vec![event; items],
            proofs: vec![deepest_proof(); items],
            count_proof: Some(deepest_proof()),
            page: Some(pb::PageResponse {
                next_page_token: vec![0xff; MAX_KEY_BYTES],
            }),
        }
    }

    /// A full proven page of a delegator's delegations (session 43).
    fn proven_delegations() -> pb::ListDelegationsResponse {
        let delegation = pb::Delegation {
            delegator: vec![0xff; 20],
            validator: vec![0xff; 20],
            shares: amount(),
            tokens: amount(),
            rewards: amount(),
        };
        pb::ListDelegationsResponse {
            delegations: vec![delegation; MAX_PROVEN_PAGE],
            proofs: vec![deepest_proof(); MAX_PROVEN_PAGE],
            count_proof: Some(deepest_proof()),
            page: Some(pb::PageResponse {
                next_page_token: vec![0xff; MAX_KEY_BYTES],
            }),
        }
    }

    /// The result of the largest `SubmitTxs` batch, every log at its cut.
    fn largest_submit_result() -> pb::SubmitTxsResponse {
        let one = pb::SubmitTxResponse {
            tx_hash: vec![0xff; 32],
            status: 1,
            height: u64::MAX,
            log: "x".repeat(crate::rpc::staking::MAX_BATCH_LOG_BYTES),
        };
        pb::SubmitTxsResponse {
            results: vec![one; crate::rpc::staking::MAX_SUBMIT_BATCH],
        }
    }

    /// A full page of validator records with every field at its longest.
    fn largest_validator_page() -> pb::ListValidatorsResponse {
        let record = pb::ValidatorRecord {
            address: vec![0xff; 20],
            operator: vec![0xff; 20],
            consensus_public_key: vec![0xff; 48],
            tokens: amount(),
            shares: amount(),
            outstanding_rewards: amount(),
            power: u64::MAX,
            jailed_until: u64::MAX,
            commission_changed_at: u64::MAX,
            missed_blocks: u64::MAX,
            window_counted: u64::MAX,
            ..Default::default()
        };
        pb::ListValidatorsResponse {
            validators: vec![record; MAX_PAGE],
            page: None,
        }
    }

    #[test]
    fn the_largest_answers_without_a_pool_place_fit_the_small_answer_bound() {
        for (what, len) in [
            ("a proven page", proven_page(MAX_PROVEN_PAGE).encoded_len()),
            (
                "a proven page of delegations",
                proven_delegations().encoded_len(),
            ),
            ("a SubmitTxs result", largest_submit_result().encoded_len()),
            (
                "a page of validators",
                largest_validator_page().encoded_len(),
            ),
            (
                "every descriptor reflection may send",
                agora_proto::FILE_DESCRIPTOR_SET.len()
                    + tonic_health::pb::FILE_DESCRIPTOR_SET.len(),
            ),
        ] {
            assert!(
                len <= MAX_SMALL_ANSWER,
                "{what}: {len} bytes > {MAX_SMALL_ANSWER}"
            );
        }
        // The proven page is the largest; the cap on its items is what keeps
        // it within the bound (negative control: the plain page size).
        assert!(proven_page(MAX_PAGE).encoded_len() > MAX_SMALL_ANSWER);
    }

    #[test]
    fn limits_clamp() {
        assert_eq!(page_size(0, false), DEFAULT_PAGE);
        assert_eq!(page_size(7, false), 7);
        assert_eq!(page_size(u32::MAX, false), MAX_PAGE);
        assert_eq!(page_size(0, true), MAX_PROVEN_PAGE);
        assert_eq!(page_size(7, true), 7);
        assert_eq!(page_size(u32::MAX, true), MAX_PROVEN_PAGE);
        assert_eq!(wait_timeout(0), DEFAULT_WAIT);
        assert_eq!(wait_timeout(u64::MAX), MAX_WAIT);
        assert_eq!(wait_timeout(5), Duration::from_millis(5));
    }
}
