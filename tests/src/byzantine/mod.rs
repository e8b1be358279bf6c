//! A Byzantine peer for real-process tests: it connects to an `agora` node
//! over QUIC like any peer (a fresh self-signed certificate, a fresh UDP
//! socket, optionally a self-made BLS key proven in its Hello) and speaks
//! the real wire protocol (`agora_node::transport::{wire, hello, tls}`),
//! but misbehaves. One module per behaviour:
//!
//! - [`false_height`] — announces a height far ahead and never serves it;
//! - [`sync_responses`] — block responses nobody asked for, and tampered
//!   answers to the requests its false height draws;
//! - [`fake_certificates`] — floods of block responses full of forged
//!   certificates;
//! - [`request_flood`] — block requests as fast as it can, never reading
//!   a reply;
//! - [`frames`] — garbage, oversized and truncated frames, and floods of
//!   streams that never finish;
//! - [`connections`] — as many connections as it can, each with a fresh
//!   certificate;
//! - [`consensus_flood`] — votes and proposals signed with a self-made key;
//! - [`evidence_flood`] — evidence that does not hold;
//! - [`snapshot_offers`] — snapshot offers of impossible shape, to a node
//!   joining by state sync;
//! - [`grpc_flood`] — a gRPC client opening thousands of certificate
//!   streams, asking for block ranges it never reads, and submitting
//!   malformed and forged transactions and evidence.
//!
//! [`peer`] (one attacker connection) and [`flood`] (connect, send until
//! closed, come back as someone new) are what they share. Every behaviour
//! runs until a deadline and returns a [`Report`] of what it did and how
//! the node answered (how often it was disconnected, refused,
//! held back); the tests compare that with the node's metrics.

pub mod connections;
pub mod consensus_flood;
pub mod evidence_flood;
pub mod fake_certificates;
pub mod false_height;
pub mod flood;
pub mod frames;
pub mod grpc_flood;
pub mod peer;
pub mod request_flood;
pub mod snapshot_offers;
pub mod sync_responses;

use std::net::SocketAddr;

use agora_validator::{ChainId, Hash};

pub use peer::Peer;

/// The node under attack.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its QUIC (p2p) address.
    pub p2p: SocketAddr,
    /// Its gRPC address.
    pub grpc: SocketAddr,
    /// The chain it runs.
    pub chain: ChainId,
    /// SHA3-256 of its genesis file (the Hello must name it).
    pub genesis_hash: Hash,
}

impl Target {
    /// A node on this machine, by its ports, running `chain` from the
    /// genesis file at `genesis`.
    pub fn loopback(p2p: u16, grpc: u16, chain: &str, genesis: &std::path::Path) -> Self {
        let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let file = std::fs::read(genesis).expect("the target's genesis file");
        Self {
            p2p: at(p2p),
            grpc: at(grpc),
            chain: ChainId::new(chain).expect("a valid chain id"),
            genesis_hash: agora_validator::crypto::sha3_256(&file),
        }
    }

    /// A runtime for the attacker: one core's worth of threads, since it
    /// shares the machine with the nodes it attacks.
    pub fn attacker_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    }
}

/// Why the attacker itself failed (not how the node answered: that is
/// in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum AttackError {
    /// The TLS identity or QUIC configuration could not be built.
    #[error("TLS: {0}")]
    Tls(#[from] agora_node::transport::tls::TlsError),
    /// The local UDP socket could not be bound.
    #[error("binding a UDP socket: {0}")]
    Bind(#[from] std::io::Error),
    /// A self-made BLS key could not be made.
    #[error("making a BLS key: {0}")]
    Key(String),
    /// The gRPC endpoint address is unusable.
    #[error("gRPC endpoint: {0}")]
    Grpc(String),
}

/// What a behaviour did and how the node answered it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Connections (QUIC or gRPC) the node accepted.
    pub connected: u64,
    /// Connections the node refused or closed before the handshake ended.
    pub refused: u64,
    /// Established connections the node closed, and with which QUIC
    /// application codes (`agora_node::transport::close_code`).
    pub closed: Vec<u32>,
    /// Messages, frames, streams or requests sent.
    pub sent: u64,
    /// Requests the node answered with an error or refused (gRPC).
    pub rejected: u64,
    /// Requests the node accepted or served.
    pub accepted: u64,
    /// Bytes the node let the attacker hand to QUIC (flow control holds
    /// the rest back).
    pub bytes_written: u64,
    /// Messages the node sent us (block requests, answers, gossip).
    pub received: u64,
}

impl Report {
    /// How many connections the node closed with `code`.
    pub fn closed_with(&self, code: u32) -> usize {
        self.closed.iter().filter(|c| **c == code).count()
    }
}
