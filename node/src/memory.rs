//! The worst-case memory of a node with N peers, as a sum of the bounded
//! buffers in the code (ARCHITECTURE.md, "Worst-case memory").
//!
//! Each [`Term`] names the constant that bounds it and the file it lives
//! in, so the document, this function and the code cannot drift apart
//! silently: the terms are computed from the constants themselves, and the
//! attack tests (`tests/tests/attacks/`) compare a node's RSS with
//! [`worst_case`] of the peers it had.
//!
//! Where a buffer's elements carry bookkeeping besides their bytes (hash
//! maps, queues of `Arc`s), a per-entry overhead is stated next to it; it
//! is an upper estimate of the allocator's and the collection's share, not
//! a measurement.

use crate::config::Config;
use crate::mempool::MempoolConfig;
use crate::rpc::ServerLimits;
use crate::transport;
use crate::transport::wire::MAX_BLOCK_FRAME;
use agora_proto::v1 as pb;
use agora_validator::consensus::buffer::MAX_BUFFER_BYTES;
use agora_validator::consensus::vote_set::MAX_UNKNOWN_VALUES_PER_VOTER;
use agora_validator::consensus::{ConsensusConfig, PAST_ROUNDS_KEPT, PROPOSAL_ROUNDS_AHEAD};
use agora_validator::crypto::AccountKeyCache;
use agora_validator::engine::MAX_CHECKED_BODIES;
use agora_validator::engine::evidence_pool::MAX_POOL_BYTES;

/// Resident memory of an idle node besides its buffers: code, tokio's
/// worker and blocking threads, TLS and QUIC state of the endpoint,
/// allocator slack. An upper estimate: an idle debug-build node on the
/// 4-validator testnet resides in about 30 MiB.
pub const BASELINE: u64 = 96 * MIB;
/// Per-connection state that is not a buffer: quinn's connection (packet
/// spaces, crypto, congestion control), the reader task of every open
/// stream ([`transport::MAX_UNI_STREAMS`]) and the writer's 64 stream tasks,
/// the peer's budgets and score entries. An upper estimate.
pub const CONNECTION_STATE: u64 = 2 * MIB;
/// Bookkeeping per queued outbound frame (the `Arc<Vec<u8>>` and its slot).
pub const FRAME_OVERHEAD: u64 = 64;
/// Bookkeeping per remembered gossip hash (hash-map entry with its key and
/// time at ≤ 50% load, plus the eviction queue's slot).
pub const SEEN_ENTRY: u64 = 192;
/// Bookkeeping per mempool transaction besides its encoding (the decoded
/// form with its parsed key, the index entries by hash, sender and fee).
pub const MEMPOOL_ENTRY: u64 = 1024;
/// Bookkeeping and bytes of one vote of the current height: in the core
/// about 430 B (the decoded `pb::Vote` with its three byte fields, the
/// stored vote's value, power and flag, the vote set's key and node), in
/// the engine about 320 B (its first sender, `engine/vote_senders.rs`),
/// and its hash in the WAL filter. An upper estimate.
pub const VOTE_ENTRY: u64 = 800;
/// A carried certificate decoded, with its bitmap (under 13 KiB for the
/// largest validator set a frame can carry).
const CERTIFICATE_BYTES: u64 = 13 * 1024;
/// redb's page cache ([`crate::storage::CACHE_BYTES`], which
/// `storage::Storage::open` sets): filled only with pages read and pages
/// written, so a young chain uses far less.
pub const REDB_CACHE: u64 = crate::storage::CACHE_BYTES as u64;

const MIB: u64 = 1024 * 1024;
/// `VERIFY_QUEUE` of `node/src/runner/mod.rs` (private there): the
/// capacity of each of the signature checker's two channels.
const VERIFY_QUEUE: u64 = 4096;
/// The capacity of the channel from gRPC to the runner (`node/src/node.rs`).
const API_QUEUE: u64 = 1024;

/// One bounded buffer in the sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// What the buffer holds.
    pub what: &'static str,
    /// The constants or settings bounding it, and where they live.
    pub bound_by: &'static str,
    /// Whether the term is counted once per peer.
    pub per_peer: bool,
    /// Bytes, for one peer if `per_peer`.
    pub bytes: u64,
}

/// What the chain itself makes a node hold, as opposed to what its peers
/// send: it grows with the chain's accounts and validators and with how
/// long the height being decided has run, none of which a peer moves for
/// free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainAllowance {
    /// Bytes of ledger state (in memory; it grows with the accounts, which
    /// cost fees).
    pub state_bytes: u64,
    /// Validators in the set (at most the chain's `max_validators`, 100 by
    /// default).
    pub validators: u64,
    /// Rounds the height being decided has passed. Each lasts at least its
    /// propose timeout (1 s + 0.5 s per round by default: 16 rounds take
    /// at least 76 s), and a skip to a later round needs more than a third
    /// of the power, so an honest validator that waited them.
    pub rounds_passed: u64,
}

impl ChainAllowance {
    /// The figures ARCHITECTURE.md quotes: the default `max_validators`
    /// (100), a height 16 rounds old, and `state_bytes` of state.
    pub fn quoted(state_bytes: u64) -> Self {
        Self {
            state_bytes,
            validators: 100,
            rounds_passed: 16,
        }
    }
}

/// The worst case of a node: every term and their sum for `peers` peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBound {
    /// The number of peers the sum is for.
    pub peers: u64,
    /// The terms.
    pub terms: Vec<Term>,
}

impl MemoryBound {
    /// Bytes per peer (the sum of the per-peer terms).
    pub fn per_peer(&self) -> u64 {
        self.terms
            .iter()
            .filter(|t| t.per_peer)
            .map(|t| t.bytes)
            .sum()
    }

    /// Bytes that do not grow with the peers.
    pub fn fixed(&self) -> u64 {
        self.terms
            .iter()
            .filter(|t| !t.per_peer)
            .map(|t| t.bytes)
            .sum()
    }

    /// The bound: `fixed + peers × per_peer`.
    pub fn total(&self) -> u64 {
        self.fixed() + self.peers * self.per_peer()
    }
}

impl std::fmt::Display for MemoryBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for t in &self.terms {
            let scope = if t.per_peer { "per peer" } else { "once" };
            writeln!(
                f,
                "{:>12} B {scope:>8}  {} ({})",
                t.bytes, t.what, t.bound_by
            )?;
        }
        write!(
            f,
            "{} + {} × {} = {} B ({} MiB)",
            self.fixed(),
            self.peers,
            self.per_peer(),
            self.total(),
            self.total() / MIB
        )
    }
}

/// The worst-case memory of a node configured by `config` with `peers`
/// connections, on a chain of the size `chain` allows for.
pub fn worst_case(config: &Config, peers: u64, chain: &ChainAllowance) -> MemoryBound {
    let mut bound = worst_case_with(&config.grpc.limits(), &config.mempool, peers, chain);
    if config.explorer.enabled {
        bound.terms.push(Term {
            what: "explorer answers being built (a block and its JSON each at most)",
            bound_by: "explorer::MAX_CONNECTIONS × explorer::MAX_ANSWER_FACTOR × MAX_BLOCK_FRAME, node/src/explorer/mod.rs",
            per_peer: false,
            bytes: (crate::explorer::MAX_CONNECTIONS * crate::explorer::MAX_ANSWER_FACTOR) as u64
                * MAX_BLOCK_FRAME as u64,
        });
    }
    bound
}

/// [`worst_case`] from the parts of the configuration that matter.
pub fn worst_case_with(
    grpc: &ServerLimits,
    mempool: &MempoolConfig,
    peers: u64,
    chain: &ChainAllowance,
) -> MemoryBound {
    let mut terms = per_peer_terms();
    terms.extend(node_terms(mempool));
    terms.extend(height_terms(chain));
    terms.extend(grpc_terms(grpc));
    terms.extend(state_terms(chain.state_bytes));
    MemoryBound { peers, terms }
}

fn u(n: usize) -> u64 {
    n as u64
}

/// What each connected peer can make the node hold.
fn per_peer_terms() -> Vec<Term> {
    vec![
        Term {
            what: "frame bodies being read or waiting to be decoded",
            bound_by: "MAX_INBOUND_BYTES, node/src/transport/mod.rs",
            per_peer: true,
            bytes: u(transport::MAX_INBOUND_BYTES),
        },
        Term {
            what: "QUIC receive buffers (data on open streams not read yet)",
            bound_by: "RECEIVE_WINDOW, node/src/transport/mod.rs",
            per_peer: true,
            bytes: u64::from(transport::RECEIVE_WINDOW),
        },
        Term {
            what: "outbound queue",
            bound_by: "MAX_OUTBOUND_BYTES + OUTBOUND_QUEUE_FRAMES × FRAME_OVERHEAD, node/src/transport/mod.rs, node/src/memory.rs",
            per_peer: true,
            bytes: u(transport::MAX_OUTBOUND_BYTES)
                + u(transport::OUTBOUND_QUEUE_FRAMES) * FRAME_OVERHEAD,
        },
        Term {
            what: "QUIC send buffer (sent, not acknowledged)",
            bound_by: "SEND_WINDOW, node/src/transport/mod.rs",
            per_peer: true,
            bytes: transport::SEND_WINDOW,
        },
        Term {
            what: "a snapshot offer kept while joining by state sync (one per peer, of a possible shape)",
            bound_by: "MAX_OFFER_BYTES, validator/src/state_sync/offers.rs",
            per_peer: true,
            bytes: u(agora_validator::state_sync::offers::MAX_OFFER_BYTES),
        },
        Term {
            what: "connection state, stream tasks, budgets",
            bound_by: "CONNECTION_STATE, node/src/memory.rs",
            per_peer: true,
            bytes: CONNECTION_STATE,
        },
    ]
}

/// The node's own queues and buffers, held once whatever the peer count.
fn node_terms(mempool: &MempoolConfig) -> Vec<Term> {
    let block_frame = u(MAX_BLOCK_FRAME);
    vec![
        Term {
            what: "baseline: code, threads, endpoint",
            bound_by: "BASELINE, node/src/memory.rs",
            per_peer: false,
            bytes: BASELINE,
        },
        Term {
            what: "decoded messages, until the runner handled them (by their decoded estimate; twice it for the allocator's headers)",
            bound_by: "2 × MAX_EVENT_BYTES, node/src/transport/mod.rs, decoded.rs",
            per_peer: false,
            bytes: 2 * u(transport::MAX_EVENT_BYTES),
        },
        Term {
            what: "transactions waiting for or leaving the signature checker",
            bound_by: "2 × VERIFY_QUEUE × (mempool.max_tx_bytes + MEMPOOL_ENTRY), node/src/runner/mod.rs, node/src/tx_verifier.rs",
            per_peer: false,
            bytes: 2 * VERIFY_QUEUE * (u(mempool.max_tx_bytes) + MEMPOOL_ENTRY),
        },
        Term {
            what: "decoded account keys of the signature checker",
            bound_by: "KEY_CACHE × AccountKeyCache::ENTRY_BYTES, node/src/tx_verifier.rs, validator/src/crypto/ed25519.rs",
            per_peer: false,
            bytes: u(crate::tx_verifier::KEY_CACHE * AccountKeyCache::ENTRY_BYTES),
        },
        Term {
            what: "WAL records waiting for the next durable write",
            bound_by: "WAL_PENDING_MAX, node/src/storage/wal_log.rs",
            per_peer: false,
            bytes: u(crate::storage::WAL_PENDING_MAX),
        },
        Term {
            what: "a journal fold: the rows waiting (under FOLD_BYTES before the commit that folds them; that commit's own rows are its blocks' changes, counted with the block being decided and the sync answer), copied into the merged map and read back",
            bound_by: "2 × FOLD_BYTES, node/src/storage/journal/mod.rs",
            per_peer: false,
            bytes: 2 * crate::storage::journal::FOLD_BYTES,
        },
        Term {
            what: "gRPC writes waiting for the runner",
            bound_by: "API_QUEUE × MAX_REQUEST_BYTES, node/src/node.rs, node/src/rpc/limits.rs",
            per_peer: false,
            bytes: API_QUEUE * u(crate::rpc::limits::MAX_REQUEST_BYTES),
        },
        Term {
            what: "gossip de-duplication cache",
            bound_by: "SEEN_CACHE × SEEN_ENTRY, node/src/transport/mod.rs, node/src/memory.rs",
            per_peer: false,
            bytes: u(transport::SEEN_CACHE) * SEEN_ENTRY,
        },
        Term {
            what: "future-height buffers (engine and core, each)",
            bound_by: "2 × MAX_BUFFER_BYTES, validator/src/consensus/buffer.rs",
            per_peer: false,
            bytes: 2 * u(MAX_BUFFER_BYTES),
        },
        Term {
            what: "evidence pool",
            bound_by: "MAX_POOL_BYTES, validator/src/engine/evidence_pool.rs",
            per_peer: false,
            bytes: u(MAX_POOL_BYTES),
        },
        Term {
            what: "sync: the answer being applied and the one being served",
            bound_by: "2 × MAX_BLOCK_FRAME, node/src/transport/wire.rs (engine/sync.rs queues ≤ one answer)",
            per_peer: false,
            bytes: 2 * block_frame,
        },
        Term {
            what: "the block being decided (proposal, our copy, its execution)",
            bound_by: "3 × MAX_BLOCK_FRAME, node/src/transport/wire.rs",
            per_peer: false,
            bytes: 3 * block_frame,
        },
        Term {
            what: "mempool",
            bound_by: "mempool.max_bytes + mempool.max_txs × MEMPOOL_ENTRY, node/src/mempool/mod.rs",
            per_peer: false,
            bytes: u(mempool.max_bytes) + u(mempool.max_txs) * MEMPOOL_ENTRY,
        },
    ]
}

/// What the height being decided holds, in the core and the engine:
/// votes of rounds up to `max_rounds_ahead` past the current one are
/// admitted, proposals up to `PROPOSAL_ROUNDS_AHEAD`, and every round the
/// height passed keeps its votes (a later decision may need them); blocks
/// are held for the rounds from `PAST_ROUNDS_KEPT` before the current one
/// to `PROPOSAL_ROUNDS_AHEAD` past it, older ones only as the locked and
/// the valid value. A block is held decoded, up to `MAX_DECODE_RATIO`
/// times its frame (the transport refuses more; honest blocks decode into
/// at most about four times their length); only a validator's signed
/// proposal gets one held, a second one per round only as evidence of
/// double signing.
fn height_terms(chain: &ChainAllowance) -> Vec<Term> {
    let rounds = u64::from(ConsensusConfig::default().max_rounds_ahead) + 1 + chain.rounds_passed;
    // Two a round in the window, plus the locked and valid values; not
    // growing with the rounds passed.
    let blocks = 2 * (u64::from(PAST_ROUNDS_KEPT) + 1 + u64::from(PROPOSAL_ROUNDS_AHEAD)) + 2;
    let decoded_block = u(transport::decoded::MAX_DECODE_RATIO) * u(MAX_BLOCK_FRAME);
    // The most transactions a block frame can hold within the decode
    // estimate (each priced at twice its in-memory size): their hashes.
    let most_txs = decoded_block / (2 * u(std::mem::size_of::<pb::Transaction>()));
    // Per voter, round and type: nil, the round's proposal's block, one per
    // later proposal naming the round as its POL round (at most one per
    // round in all), and the unknown values an equivocator may add
    // (`consensus/state/votes.rs`). An honest voter has one: the term is
    // every validator equivocating.
    let values = 3 + u(MAX_UNKNOWN_VALUES_PER_VOTER);
    vec![
        Term {
            what: "blocks held at the current height (the first verified proposal's and one conflicting one per round in the window, the locked and valid values; decoded)",
            bound_by: "(2 × (PAST_ROUNDS_KEPT + 1 + PROPOSAL_ROUNDS_AHEAD) + 2) × MAX_DECODE_RATIO × MAX_BLOCK_FRAME, validator/src/consensus/state/held_blocks.rs, node/src/transport/decoded.rs",
            per_peer: false,
            bytes: blocks * decoded_block,
        },
        Term {
            what: "votes held at the current height (core and engine)",
            bound_by: "validators × 2 types × (max_rounds_ahead + 1 + rounds passed) × (3 + MAX_UNKNOWN_VALUES_PER_VOTER) × VOTE_ENTRY, validator/src/consensus/state/votes.rs, node/src/memory.rs",
            per_peer: false,
            bytes: chain.validators * 2 * rounds * values * VOTE_ENTRY,
        },
        Term {
            what: "block sync: each peer's pace, kept across reconnections",
            bound_by: "MAX_REMEMBERED × 80 B, validator/src/engine/sync_pace.rs",
            per_peer: false,
            bytes: u(agora_validator::engine::SYNC_PACES_REMEMBERED) * 80,
        },
        Term {
            what: "checked bodies' transaction hashes and carried certificates",
            bound_by: "MAX_CHECKED_BODIES × (the transactions a block frame can decode into × 32 B + 13 KiB), validator/src/engine/body_hashes.rs",
            per_peer: false,
            bytes: u(MAX_CHECKED_BODIES) * (most_txs * 32 + CERTIFICATE_BYTES),
        },
    ]
}

/// What gRPC clients can make the node hold, by the server's limits.
fn grpc_terms(grpc: &ServerLimits) -> Vec<Term> {
    let block_frame = u(MAX_BLOCK_FRAME);
    vec![
        Term {
            what: "gRPC HTTP/2 receive windows",
            bound_by: "max_connections × 1 MiB (hyper's connection window), node/src/rpc/limits.rs",
            per_peer: false,
            bytes: u(grpc.max_connections) * MIB,
        },
        Term {
            what: "gRPC answers being built or sent (each decoded and encoded at most MAX_SMALL_ANSWER)",
            bound_by: "max_requests × 2 × MAX_SMALL_ANSWER, places held until sent (node/src/rpc/answer_places.rs, limits.rs)",
            per_peer: false,
            bytes: u(grpc.max_requests) * 2 * u(crate::rpc::limits::MAX_SMALL_ANSWER),
        },
        Term {
            what: "gRPC single blocks and validator sets being read or sent (a block and its encoding each)",
            bound_by: "max_large_answers × 2 × MAX_BLOCK_FRAME, places held until sent (node/src/rpc/query.rs)",
            per_peer: false,
            bytes: u(grpc.max_large_answers) * 2 * block_frame,
        },
        Term {
            what: "gRPC answers' last pieces waiting in h2 (their places freed)",
            bound_by: "max_connections × max_streams_per_connection × PIECE, node/src/rpc/answer_places.rs",
            per_peer: false,
            bytes: u(grpc.max_connections)
                * u(grpc.max_streams_per_connection as usize)
                * u(crate::rpc::answer_places::PIECE),
        },
        Term {
            what: "gRPC block ranges being read or sent (encoded twice)",
            bound_by: "max_block_ranges × 2 × (MAX_RANGE_BYTES + MAX_BLOCK_FRAME), places held until sent (node/src/rpc/query.rs)",
            per_peer: false,
            bytes: u(grpc.max_block_ranges)
                * 2
                * (u(crate::rpc::limits::MAX_RANGE_BYTES) + block_frame),
        },
        Term {
            what: "gRPC certificate streams",
            bound_by: "max_certificate_streams × STREAM_BUFFER (64) × 8 KiB, node/src/rpc/query.rs",
            per_peer: false,
            bytes: u(grpc.max_certificate_streams) * 64 * 8 * 1024,
        },
    ]
}

/// The state and what is kept of it: the page cache, the ledger and the
/// snapshots served to syncing peers.
fn state_terms(state_bytes: u64) -> Vec<Term> {
    vec![
        Term {
            what: "redb page cache",
            bound_by: "CACHE_BYTES, node/src/storage/mod.rs",
            per_peer: false,
            bytes: REDB_CACHE,
        },
        Term {
            what: "ledger state",
            bound_by: "the state_bytes argument",
            per_peer: false,
            bytes: state_bytes,
        },
        Term {
            what: "state-sync snapshots served (leaves split in chunks)",
            bound_by: "state_sync::serve::KEEP × the state_bytes argument",
            per_peer: false,
            bytes: crate::state_sync::serve::KEEP as u64 * state_bytes,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_fixed_plus_peers_times_per_peer() {
        let cfg = Config::default();
        let chain = ChainAllowance::quoted(0);
        let zero = worst_case(&cfg, 0, &chain);
        let four = worst_case(&cfg, 4, &chain);
        assert_eq!(zero.total(), zero.fixed());
        assert_eq!(four.total() - zero.total(), 4 * four.per_peer());
        // Every per-peer buffer is in: inbound, QUIC both ways, outbound.
        assert!(
            four.per_peer() > (transport::MAX_INBOUND_BYTES + transport::MAX_OUTBOUND_BYTES) as u64
        );
        assert!(four.to_string().contains("MAX_INBOUND_BYTES"));
        // The table ARCHITECTURE.md quotes (`cargo test -p agora-node --lib
        // memory -- --nocapture`).
        eprintln!(
            "{}\n{}",
            worst_case(&cfg, 3, &chain),
            worst_case(&cfg, 200, &chain)
        );
    }

    /// The height's votes grow with the rounds it passed and the
    /// validators, not with the peers; its blocks with neither.
    #[test]
    fn the_votes_grow_with_rounds_and_validators_the_blocks_do_not() {
        let cfg = Config::default();
        let small = ChainAllowance {
            state_bytes: 0,
            validators: 4,
            rounds_passed: 0,
        };
        let base = worst_case(&cfg, 4, &small);
        let later = worst_case(
            &cfg,
            4,
            &ChainAllowance {
                rounds_passed: 10,
                ..small
            },
        );
        let more = worst_case(
            &cfg,
            4,
            &ChainAllowance {
                validators: 100,
                ..small
            },
        );
        assert!(later.fixed() > base.fixed() && more.fixed() > base.fixed());
        assert_eq!(later.per_peer(), base.per_peer());
        let held = |b: &MemoryBound| {
            b.terms
                .iter()
                .find(|t| t.what.starts_with("blocks held"))
                .map(|t| t.bytes)
        };
        // The blocks held do not grow with the rounds passed (a window of
        // three rounds, two blocks each, and the locked and valid values);
        // the votes do.
        assert_eq!(held(&later), held(&base));
        let one_block = transport::decoded::MAX_DECODE_RATIO as u64 * MAX_BLOCK_FRAME as u64;
        assert_eq!(held(&base), Some(8 * one_block));
    }
}
