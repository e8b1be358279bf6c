//! [`TransportConfig`]: the settings a [`Transport`](super::Transport) is
//! started with, and their defaults.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_validator::{ChainId, Hash, SecretKey};

use super::budget::BudgetConfig;
use super::tls::TlsIdentity;
use super::{
    EVENT_CAPACITY, MAX_HANDSHAKES, MAX_OUTBOUND_BYTES, OUTBOUND_QUEUE_FRAMES, SEEN_CACHE,
};
use crate::metrics::Metrics;

/// The stranger slots one network may hold by default: a few nodes behind
/// one NAT, or a sentry pair, fit; one host cannot take the table (200
/// slots by default) by presenting a fresh certificate per connection.
pub const DEFAULT_STRANGERS_PER_NETWORK: usize = 4;

/// Settings of a [`Transport`].
///
/// [`Transport`]: super::Transport
#[derive(Clone)]
pub struct TransportConfig {
    /// UDP address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Peers on another chain are refused.
    pub chain_id: ChainId,
    /// SHA3-256 of the genesis file: peers with another one are refused.
    pub genesis_hash: Hash,
    /// The BLS key proved in the Hello; `None` runs as a full node.
    pub validator_key: Option<SecretKey>,
    /// The TLS certificate and key.
    pub tls: TlsIdentity,
    /// Addresses to keep connections to.
    pub peers: Vec<SocketAddr>,
    /// Connections at most (inbound and outbound).
    pub max_peers: usize,
    /// Of the stranger slots (inbound, not from a configured address), the
    /// most one network holds: an IPv4 address or IPv6 /64, or one ip:port
    /// on loopback ([`DEFAULT_STRANGERS_PER_NETWORK`] by default).
    pub max_strangers_per_network: usize,
    /// First reconnection delay.
    pub backoff_initial: Duration,
    /// Largest reconnection delay.
    pub backoff_max: Duration,
    /// The QUIC handshake plus the Hello exchange must finish within this.
    pub handshake_timeout: Duration,
    /// Keep-alive interval (also how fast a silently restarted peer is noticed).
    pub keep_alive: Duration,
    /// A connection silent for this long is closed.
    pub idle_timeout: Duration,
    /// A stream must deliver its frame within this.
    pub stream_timeout: Duration,
    /// Capacity of the inbound event channel.
    pub event_capacity: usize,
    /// Frames queued per peer before further ones are dropped.
    pub outbound_queue: usize,
    /// Bytes of frames queued per peer before further ones are dropped
    /// ([`MAX_OUTBOUND_BYTES`] by default).
    pub outbound_bytes: usize,
    /// Handshakes (QUIC + Hello) in progress at most
    /// ([`MAX_HANDSHAKES`] by default); more incoming ones are refused.
    pub max_handshakes: usize,
    /// Per-peer budgets for expensive work.
    pub budget: BudgetConfig,
    /// Where charges, bans and budget drops are counted.
    pub metrics: Arc<Metrics>,
    /// How many gossip hashes are remembered for de-duplication.
    pub seen_cache: usize,
    /// The first ban's length (doubling on repeats, see [`score`]).
    ///
    /// [`score`]: super::score
    pub ban: Duration,
    /// Whether charges lead to bans (always, except in the negative
    /// control of the attack tests: `testing.disable_bans`).
    pub bans: bool,
}

impl TransportConfig {
    /// A configuration with defaults for everything but identity and address.
    pub fn new(
        listen: SocketAddr,
        chain_id: ChainId,
        genesis_hash: Hash,
        tls: TlsIdentity,
        validator_key: Option<SecretKey>,
    ) -> Self {
        Self {
            listen,
            chain_id,
            genesis_hash,
            validator_key,
            tls,
            peers: Vec::new(),
            max_peers: 200,
            max_strangers_per_network: DEFAULT_STRANGERS_PER_NETWORK,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
            stream_timeout: Duration::from_secs(30),
            event_capacity: EVENT_CAPACITY,
            outbound_queue: OUTBOUND_QUEUE_FRAMES,
            outbound_bytes: MAX_OUTBOUND_BYTES,
            max_handshakes: MAX_HANDSHAKES,
            budget: BudgetConfig::default(),
            metrics: Metrics::new(),
            seen_cache: SEEN_CACHE,
            ban: Duration::from_secs(30),
            bans: true,
        }
    }
}
