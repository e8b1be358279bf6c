//! The peer-to-peer transport: QUIC (quinn) over mutually authenticated TLS
//! 1.3 (rustls with the ring provider), a Hello exchange that binds each
//! connection to a validator identity, length-prefixed protobuf frames with
//! hard size limits, one connection per peer, reconnection with exponential
//! backoff to configured peers, and de-duplication of gossip.
//!
//! Each message travels on its own unidirectional stream, so a 4 MiB block
//! response never holds up a vote behind it. Inbound messages come out of the
//! `mpsc` channel returned by [`Transport::start`] together with the sender's
//! [`PeerId`] and the identity it *proved* ([`PeerIdentity`]); the caller must
//! count a vote only when the identity says so.
//!
//! Connection de-duplication: when two connections to the same peer exist
//! (both sides dialled at once, or a peer restarted), both sides keep the same
//! one: a newer connection from the same initiator replaces the older one
//! (the initiator only dials when it has none), and otherwise the connection
//! initiated by the smaller `PeerId` wins.
//!
//! Layout: `config` and `event` are what a user passes in and gets out,
//! `error` why something failed; `connect` accepts and dials, `handshake`
//! exchanges and checks Hellos, `peer_table` keeps one connection per peer;
//! `inbound` reads, decodes and delivers frames, `outbound` writes them;
//! [`accounting`] charges and admits peers.

pub mod accounting;
pub mod budget;
mod config;
mod connect;
pub mod decoded;
mod error;
mod event;
mod handshake;
pub mod handshake_rate;
pub mod hello;
mod inbound;
mod outbound;
mod peer_table;
pub mod peers;
pub mod score;
pub mod tls;
pub mod wire;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use agora_proto::v1::{PeerMessage, peer_message::Kind};
use agora_validator::crypto::sha3_256;
use agora_validator::{ChainId, SecretKey};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::debug;

use crate::host_network::Shares;
use crate::metrics::BudgetKind;
pub use config::{DEFAULT_STRANGERS_PER_NETWORK, TransportConfig};
pub use error::TransportError;
pub use event::{EventBytes, PeerInfo, TransportEvent};
pub use hello::PeerIdentity;
use peer_table::PeerEntry;
use peers::SeenCache;
pub use score::ChargeReason;
use score::{AddrKey, Scores};
pub use tls::TlsIdentity;

/// QUIC application close codes.
pub mod close_code {
    /// Normal shutdown.
    pub const SHUTDOWN: u32 = 0;
    /// The Hello was missing, malformed or late.
    pub const HANDSHAKE: u32 = 1;
    /// The peer is on another chain.
    pub const CHAIN_MISMATCH: u32 = 2;
    /// Another connection to the same peer is kept.
    pub const DUPLICATE: u32 = 3;
    /// The peer sent an oversized or undecodable frame, or was penalised.
    pub const MISBEHAVED: u32 = 4;
    /// The peer is banned for earlier misbehaviour.
    pub const BANNED: u32 = 5;
    /// Too many peers.
    pub const FULL: u32 = 6;
    /// A connection presenting the same identity from another incarnation
    /// (another process: a restart, or a copy of the node's home running
    /// elsewhere) took this one's place. The closed side, if it still
    /// runs, is the copy's twin: it says so and redials late
    /// (`Transport::note_superseded`).
    pub const SUPERSEDED: u32 = 7;
    /// The peer runs the same chain id from another genesis file.
    pub const GENESIS_MISMATCH: u32 = 8;
}

/// A peer's transport identity: SHA3-256 of the DER of its TLS certificate.
/// Stable as long as the peer keeps its TLS key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 32]);

impl PeerId {
    /// The peer id of a certificate.
    pub fn of_cert(der: &[u8]) -> Self {
        Self(sha3_256(der))
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0[..8]))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

/// Default bound of the bytes queued for one peer: 32 MiB, eight maximal
/// block frames (a proposal or sync answer is at most one 4 MiB frame).
pub const MAX_OUTBOUND_BYTES: usize = 32 * 1024 * 1024;
/// Bytes of frames one connection may have in the reading at once: 16 MiB
/// (four maximal block frames). A frame's length is reserved from it
/// before its body is allocated; a peer opening many large streams waits.
pub const MAX_INBOUND_BYTES: usize = 16 * 1024 * 1024;
/// Bytes of decoded messages of all peers together (by their
/// [`decoded::estimate`]), from the moment they are decoded until the
/// runner has handled them (in the event channel, or the one being
/// handled): 64 MiB. A frame's body takes its estimate from this budget
/// *before* it is decoded and the event gives it back when the runner drops
/// it; the reader waits meanwhile, holding only the body's bytes under its
/// connection's [`MAX_INBOUND_BYTES`] share. Without it the channel's
/// [`EVENT_CAPACITY`] messages of up to 4 MiB each could hold 32 GiB.
pub const MAX_EVENT_BYTES: usize = 64 * 1024 * 1024;
/// Default bound of the handshakes in progress: 64.
pub const MAX_HANDSHAKES: usize = 64;
/// Default capacity of the inbound event channel (messages of every peer
/// waiting for the runner).
pub const EVENT_CAPACITY: usize = 8192;
/// Default bound of the frames queued per peer.
pub const OUTBOUND_QUEUE_FRAMES: usize = 4096;
/// Default number of gossip hashes remembered for de-duplication.
pub const SEEN_CACHE: usize = 100_000;
/// Unidirectional streams a peer may have open towards us at once (one
/// message each).
pub const MAX_UNI_STREAMS: u32 = 256;
/// QUIC flow-control window of one stream: bytes a peer may send on a
/// stream before we read them. quinn's default, set here by name because
/// it is part of what quinn may buffer per connection (see
/// [`RECEIVE_WINDOW`] and `crate::memory`).
pub const STREAM_RECEIVE_WINDOW: u32 = 1_250_000;
/// QUIC flow-control window of a whole connection: bytes a peer may have
/// sent on all its streams together that we have not read yet: 32 MiB,
/// [`MAX_INBOUND_BYTES`] for the frames being read plus 16 MiB for the
/// beginnings of frames waiting for their turn. Without it (quinn's default
/// is unlimited) only the per-stream window bounded a connection, and a
/// peer opening [`MAX_UNI_STREAMS`] streams of large frames made the node
/// buffer 320 MB (the attack tests' stream flood measured 421 MiB of RSS).
/// An honest peer never comes near it: it has a few large frames in flight
/// at most (one proposal per round, one sync answer per request). The
/// frames being read find room for their bodies as long as the frames
/// waiting for [`MAX_INBOUND_BYTES`] hold less than 16 MiB of beginnings
/// (a dozen maximal frames at once); a peer that sends more stalls only
/// its own connection, until the stream timeout drops its streams.
pub const RECEIVE_WINDOW: u32 = (MAX_INBOUND_BYTES + 16 * 1024 * 1024) as u32;
/// Bytes QUIC keeps sent but unacknowledged per connection (quinn's
/// default, named for the same reason).
pub const SEND_WINDOW: u64 = 10_000_000;

/// How long [`Transport::shutdown`] waits for its close frames to be sent
/// (normally well under a millisecond each on loopback).
pub const CLOSE_NOTICE_WAIT: Duration = Duration::from_secs(2);
/// How long [`Transport::shutdown`] waits for the close frame of a
/// connection that sent a datagram while it was being closed (which may
/// have been the close frame itself).
pub const AMBIGUOUS_NOTICE_WAIT: Duration = Duration::from_millis(200);

/// The state shared by a transport's clones and tasks.
struct Inner {
    endpoint: quinn::Endpoint,
    chain: ChainId,
    key: Option<SecretKey>,
    own_cert: Vec<u8>,
    local_id: PeerId,
    /// Ours, sent in every Hello (see `Hello.incarnation`).
    incarnation: u64,
    cfg: TransportConfig,
    peers: Mutex<HashMap<PeerId, PeerEntry>>,
    seen: Mutex<SeenCache>,
    scores: Mutex<Scores>,
    /// Permits for strangers' handshakes in progress (`max_handshakes`).
    handshakes: Arc<Semaphore>,
    /// Handshakes in progress per network (a stranger's or a configured
    /// address's), at most a quarter of `max_handshakes` each.
    handshake_shares: Arc<Shares<AddrKey>>,
    /// Handshakes strangers' networks may start (`handshake_rate`).
    handshake_rates: Mutex<handshake_rate::HandshakeRates>,
    /// Bytes of messages handed to the runner and not yet handled
    /// ([`MAX_EVENT_BYTES`]).
    event_bytes: Arc<Semaphore>,
    events: mpsc::Sender<TransportEvent>,
    height: AtomicU64,
    changes: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    /// When each peer last closed a connection of ours as superseded by
    /// another process presenting our identity; entries older than
    /// `backoff_max` are dropped at each insert, so it holds at most the
    /// peers that did so within that time.
    superseded: Mutex<HashMap<PeerId, Instant>>,
}

/// Locks one of the transport's tables.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks leaves plain data behind;
    // keep going rather than poisoning the whole transport.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running transport. Cheap to clone; all clones drive the same endpoint.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

/// Whether messages of this kind are relayed, and so de-duplicated.
fn is_gossip(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Proposal(_) | Kind::Vote(_) | Kind::Evidence(_) | Kind::Transaction(_)
    )
}

impl Transport {
    /// Binds the endpoint, starts accepting and dialling, and returns the
    /// transport with the receiver of its events.
    pub fn start(
        cfg: TransportConfig,
    ) -> Result<(Self, mpsc::Receiver<TransportEvent>), TransportError> {
        let mut tc = quinn::TransportConfig::default();
        tc.max_concurrent_uni_streams(MAX_UNI_STREAMS.into());
        tc.stream_receive_window(STREAM_RECEIVE_WINDOW.into());
        tc.receive_window(RECEIVE_WINDOW.into());
        tc.send_window(SEND_WINDOW);
        // One bidirectional stream per connection: the Hello.
        tc.max_concurrent_bidi_streams(1u32.into());
        tc.keep_alive_interval(Some(cfg.keep_alive));
        tc.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(cfg.idle_timeout)
                .map_err(|e| TransportError::Config(e.to_string()))?,
        ));
        let (server, client) = tls::quic_configs(&cfg.tls, Arc::new(tc))?;
        let mut endpoint =
            quinn::Endpoint::server(server, cfg.listen).map_err(|source| TransportError::Bind {
                addr: cfg.listen,
                source,
            })?;
        endpoint.set_default_client_config(client);
        let (events, rx) = mpsc::channel(cfg.event_capacity.max(1));
        let own_cert = cfg.tls.cert.to_vec();
        let inner = Arc::new(Inner {
            endpoint,
            chain: cfg.chain_id.clone(),
            key: cfg.validator_key.clone(),
            local_id: PeerId::of_cert(&own_cert),
            incarnation: rand::random(),
            own_cert,
            seen: Mutex::new(SeenCache::new(cfg.seen_cache)),
            handshakes: Arc::new(Semaphore::new(cfg.max_handshakes.max(1))),
            handshake_shares: Shares::quarter_of(cfg.max_handshakes.max(1)),
            handshake_rates: Mutex::new(handshake_rate::HandshakeRates::new(
                cfg.budget.handshakes_per_sec,
                cfg.budget.handshake_burst,
            )),
            event_bytes: Arc::new(Semaphore::new(MAX_EVENT_BYTES)),
            cfg,
            peers: Mutex::new(HashMap::new()),
            scores: Mutex::new(Scores::default()),
            events,
            height: AtomicU64::new(0),
            changes: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
            superseded: Mutex::new(HashMap::new()),
        });
        let t = Self { inner };
        tokio::spawn(t.clone().accept_loop());
        for addr in t.inner.cfg.peers.clone() {
            tokio::spawn(t.clone().dial_loop(addr));
        }
        Ok((t, rx))
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.endpoint.local_addr().ok()
    }

    /// Our own peer id (hash of our certificate).
    pub fn local_peer_id(&self) -> PeerId {
        self.inner.local_id
    }

    /// Sets the height announced in future Hellos and status messages
    /// (only an acknowledged, durable height).
    pub fn set_height(&self, h: u64) {
        self.inner.height.store(h, Ordering::Relaxed);
    }

    /// Tells every connected peer the height [`Self::set_height`] last set.
    pub fn announce_height(&self) {
        let status = agora_proto::v1::StatusUpdate {
            latest_height: self.inner.height.load(Ordering::Relaxed),
        };
        self.broadcast(&PeerMessage {
            kind: Some(Kind::Status(status)),
        });
    }

    /// The connected peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        lock(&self.inner.peers)
            .iter()
            .map(|(id, e)| PeerInfo {
                id: *id,
                identity: e.identity.clone(),
                remote: e.remote,
                outbound: e.outbound,
            })
            .collect()
    }

    /// How many times a peer was charged.
    pub fn penalty_count(&self, peer: &PeerId) -> u32 {
        lock(&self.inner.scores).get(peer).map_or(0, |p| p.charges)
    }

    /// Whether a peer's certificate is banned now.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        lock(&self.inner.scores).is_banned(peer, Instant::now())
    }

    /// Starts dialling (and keeps redialling) another address.
    pub fn add_peer(&self, addr: SocketAddr) {
        tokio::spawn(self.clone().dial_loop(addr));
    }

    /// Sends a message to one peer. Fails if it is not connected or its queue is full.
    pub fn send(&self, peer: PeerId, msg: &PeerMessage) -> Result<(), TransportError> {
        let frame = Arc::new(wire::encode_frame(msg));
        let peers = lock(&self.inner.peers);
        let e = peers.get(&peer).ok_or(TransportError::NotConnected(peer))?;
        if e.enqueue(frame, self.inner.cfg.outbound_bytes) {
            Ok(())
        } else {
            self.inner.cfg.metrics.budget_drop(BudgetKind::Outbound);
            Err(TransportError::QueueFull(peer))
        }
    }

    /// Sends a message to every connected peer; returns to how many it was queued.
    /// The message is remembered as seen, so copies relayed back are not delivered.
    pub fn broadcast(&self, msg: &PeerMessage) -> usize {
        let frame = Arc::new(wire::encode_frame(msg));
        if msg.kind.as_ref().is_some_and(is_gossip) {
            lock(&self.inner.seen).insert(sha3_256(&frame[4..]));
        }
        let peers = lock(&self.inner.peers);
        let mut n = 0;
        for (id, e) in peers.iter() {
            if e.enqueue(frame.clone(), self.inner.cfg.outbound_bytes) {
                n += 1;
            } else {
                self.inner.cfg.metrics.budget_drop(BudgetKind::Outbound);
                debug!(peer = %id, "outbound queue full; gossip dropped");
            }
        }
        n
    }

    /// Closes every connection and the endpoint, and returns once each
    /// connected peer was sent our CONNECTION_CLOSE (at most
    /// [`CLOSE_NOTICE_WAIT`]), so that it drops us at once rather than
    /// after its idle timeout.
    ///
    /// Not `Endpoint::wait_idle`, which waits out every connection's
    /// draining period (three PTOs). A dial still in its handshake has no
    /// RTT sample, so its PTO is about a second (quinn's 333 ms initial
    /// RTT) and its draining about three (quinn-rs/quinn#2147): a node
    /// stopping while it redialled a peer (one that had just stopped, as
    /// when a whole testnet stops) waited out the whole 2 s cap. RFC 9000
    /// §10.2 lets an endpoint that closes its socket end draining early;
    /// what a peer needs is the close frame itself.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        // Each open connection, with the datagrams it had sent just before
        // and just after its close. A closed connection sends nothing but
        // its CONNECTION_CLOSE, so a datagram after the second count is the
        // notice. One between the two counts is ambiguous: ordinary traffic
        // sent before the close, or the notice already (the driver may send
        // it before the second count is read). Taking it for the notice let
        // a shutdown return unsent, and the peer learned by its idle
        // timeout (a CI run of the transport test once failed so); so such
        // a connection is waited for up to [`AMBIGUOUS_NOTICE_WAIT`] only.
        let open: Vec<quinn::Connection> = lock(&self.inner.peers)
            .values()
            .filter(|e| e.conn.close_reason().is_none())
            .map(|e| e.conn.clone())
            .collect();
        let sent = |conn: &quinn::Connection| conn.stats().udp_tx.datagrams;
        let counted: Vec<(quinn::Connection, u64, u64)> = open
            .into_iter()
            .map(|conn| {
                let before = sent(&conn);
                conn.close(close_code::SHUTDOWN.into(), b"shutdown");
                let after = sent(&conn);
                (conn, before, after)
            })
            .collect();
        // The rest: connections still in their handshake, unregistered ones.
        self.inner
            .endpoint
            .close(close_code::SHUTDOWN.into(), b"shutdown");
        let started = tokio::time::Instant::now();
        let told = async {
            // The stats are read under the connection's lock, which its
            // driver holds from building a packet to handing it to the
            // socket. A connection the peer closed first needs no notice.
            while counted.iter().any(|(conn, before, after)| {
                let unsure = after > before && started.elapsed() >= AMBIGUOUS_NOTICE_WAIT;
                matches!(
                    conn.close_reason(),
                    Some(quinn::ConnectionError::LocallyClosed)
                ) && sent(conn) == *after
                    && !unsure
            }) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        if tokio::time::timeout(CLOSE_NOTICE_WAIT, told).await.is_err() {
            debug!("shutdown: a peer may not have been sent our close");
        }
    }

    /// Whether [`Self::shutdown`] was called.
    fn is_shut_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }
}
