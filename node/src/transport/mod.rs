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

pub mod accounting;
pub mod budget;
pub mod decoded;
pub mod hello;
pub mod peers;
pub mod score;
pub mod tls;
pub mod wire;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use agora_proto::v1::{PeerMessage, peer_message::Kind};
use agora_validator::crypto::sha3_256;
use agora_validator::{ChainId, SecretKey};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{debug, info, warn};

use crate::metrics::{BudgetKind, Metrics};
use budget::{BudgetConfig, PeerBudget};
pub use hello::PeerIdentity;
use peers::SeenCache;
pub use score::ChargeReason;
use score::Scores;
pub use tls::TlsIdentity;
use wire::WireError;

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

/// Settings of a [`Transport`].
#[derive(Clone)]
pub struct TransportConfig {
    /// UDP address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Peers on another chain are refused.
    pub chain_id: ChainId,
    /// The BLS key proved in the Hello; `None` runs as a full node.
    pub validator_key: Option<SecretKey>,
    /// The TLS certificate and key.
    pub tls: TlsIdentity,
    /// Addresses to keep connections to.
    pub peers: Vec<SocketAddr>,
    /// Connections at most (inbound and outbound).
    pub max_peers: usize,
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
    pub ban: Duration,
    /// Whether charges lead to bans (always, except in the negative
    /// control of the attack tests: `testing.disable_bans`).
    pub bans: bool,
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

impl TransportConfig {
    /// A configuration with defaults for everything but identity and address.
    pub fn new(
        listen: SocketAddr,
        chain_id: ChainId,
        tls: TlsIdentity,
        validator_key: Option<SecretKey>,
    ) -> Self {
        Self {
            listen,
            chain_id,
            validator_key,
            tls,
            peers: Vec::new(),
            max_peers: 200,
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

/// Something that happened on the transport.
// Messages dominate the channel, so boxing them would add an allocation to
// nearly every event for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum TransportEvent {
    /// A peer finished the Hello exchange.
    Connected {
        /// The peer.
        peer: PeerId,
        /// What it proved to be.
        identity: PeerIdentity,
        /// Its address.
        remote: SocketAddr,
    },
    /// A message from a peer (gossip already seen is not repeated).
    Message {
        /// The sender.
        peer: PeerId,
        /// What the sender proved to be: only `Validator` may speak for a key.
        identity: PeerIdentity,
        /// The message.
        message: PeerMessage,
        /// Its share of [`MAX_EVENT_BYTES`], given back when the event is
        /// dropped (after the runner handled it).
        held: EventBytes,
    },
    /// A peer's connection closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
}

/// A message's share of [`MAX_EVENT_BYTES`]; freed when the last clone of
/// its event is dropped.
#[derive(Debug, Clone)]
pub struct EventBytes(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

/// A connected peer as listed by [`Transport::peers`].
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer.
    pub id: PeerId,
    /// What it proved to be.
    pub identity: PeerIdentity,
    /// Its address.
    pub remote: SocketAddr,
    /// Whether we dialled it.
    pub outbound: bool,
}

/// Why the transport failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The UDP socket could not be bound.
    #[error("binding QUIC endpoint on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A configured timeout is out of QUIC's range.
    #[error("bad timeout: {0}")]
    Config(String),
    /// No connection to this peer.
    #[error("peer {0} is not connected")]
    NotConnected(PeerId),
    /// The peer's outbound queue is full (in frames or bytes); the message
    /// was dropped.
    #[error("outbound queue of peer {0} is full")]
    QueueFull(PeerId),
}

/// Why a connection attempt or handshake failed.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("no peer certificate")]
    NoCertificate,
    #[error("hello: {0}")]
    Wire(#[from] WireError),
    #[error("hello: first message was not a Hello")]
    NotHello,
    #[error("hello: {0}")]
    Hello(#[from] hello::HelloError),
    #[error("handshake timed out")]
    Timeout,
    #[error("peer is banned")]
    Banned,
    #[error("connected to ourselves")]
    SelfConnection,
    #[error("write: {0}")]
    Write(String),
}

/// A connection whose Hellos were exchanged and checked.
struct Handshaken {
    conn: quinn::Connection,
    peer: PeerId,
    identity: PeerIdentity,
    /// The peer's `Hello.incarnation`.
    incarnation: u64,
}

struct PeerEntry {
    conn: quinn::Connection,
    identity: PeerIdentity,
    remote: SocketAddr,
    outbound: bool,
    initiator: PeerId,
    /// The peer process's Hello incarnation (new on each restart).
    incarnation: u64,
    queue: mpsc::Sender<Arc<Vec<u8>>>,
    /// Bytes in `queue` (and not yet handed to QUIC).
    queued: Arc<AtomicUsize>,
    /// Its budgets for expensive work.
    budget: PeerBudget,
}

impl PeerEntry {
    /// Queues a frame if the peer's queue has room in frames and bytes.
    fn enqueue(&self, frame: Arc<Vec<u8>>, max_bytes: usize) -> bool {
        let len = frame.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > max_bytes || self.queue.try_send(frame).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }
}

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
    /// Permits for handshakes in progress.
    handshakes: Arc<Semaphore>,
    /// Bytes of messages handed to the runner and not yet handled
    /// ([`MAX_EVENT_BYTES`]).
    event_bytes: Arc<Semaphore>,
    events: mpsc::Sender<TransportEvent>,
    height: AtomicU64,
    changes: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
}

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
            event_bytes: Arc::new(Semaphore::new(MAX_EVENT_BYTES)),
            cfg,
            peers: Mutex::new(HashMap::new()),
            scores: Mutex::new(Scores::default()),
            events,
            height: AtomicU64::new(0),
            changes: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
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

    /// Sets the height announced in future Hellos.
    pub fn set_height(&self, h: u64) {
        self.inner.height.store(h, Ordering::Relaxed);
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

    /// Closes every connection and the endpoint, and waits (bounded) until
    /// the peers were told.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner
            .endpoint
            .close(close_code::SHUTDOWN.into(), b"shutdown");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.inner.endpoint.wait_idle()).await;
    }

    fn is_shut_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    async fn accept_loop(self) {
        let mut stop = self.inner.shutdown.subscribe();
        loop {
            let incoming = tokio::select! {
                i = self.inner.endpoint.accept() => i,
                _ = stop.wait_for(|s| *s) => None,
            };
            let Some(incoming) = incoming else { break };
            let remote = incoming.remote_address();
            if let Err(why) = self.admits(remote) {
                self.inner.cfg.metrics.budget_drop(why);
                debug!(%remote, ?why, "incoming connection refused");
                incoming.refuse();
                continue;
            }
            let Ok(permit) = self.inner.handshakes.clone().try_acquire_owned() else {
                self.inner.cfg.metrics.budget_drop(BudgetKind::Handshakes);
                incoming.refuse();
                continue;
            };
            let t = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let res = tokio::time::timeout(t.inner.cfg.handshake_timeout, async {
                    let conn = incoming.await?;
                    t.handshake(conn, false).await
                })
                .await
                .unwrap_or(Err(ConnectError::Timeout));
                match res {
                    Ok(h) => {
                        t.register(h, false);
                    }
                    Err(e) => debug!(%remote, error = %e, "inbound handshake failed"),
                }
            });
        }
    }

    /// Keeps a connection to `addr` alive, redialling with exponential backoff.
    async fn dial_loop(self, addr: SocketAddr) {
        let mut backoff = self.inner.cfg.backoff_initial;
        let mut known: Option<PeerId> = None;
        let mut stop = self.inner.shutdown.subscribe();
        while !self.is_shut_down() {
            // Don't dial a peer we are already connected to (it dialled us).
            // Before we know its id, its address tells: an endpoint dials
            // from the same UDP socket it listens on.
            if known.is_none() {
                known = self.connected_at(addr);
            }
            if let Some(id) = known {
                let mut changes = self.inner.changes.subscribe();
                while self.is_connected(&id) && !self.is_shut_down() {
                    tokio::select! {
                        r = changes.changed() => if r.is_err() { return },
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
            let attempt = tokio::time::timeout(self.inner.cfg.handshake_timeout, async {
                let conn = self.inner.endpoint.connect(addr, "agora")?.await?;
                self.handshake(conn, true).await
            })
            .await
            .unwrap_or(Err(ConnectError::Timeout));
            match attempt {
                Ok(h) => {
                    known = Some(h.peer);
                    let conn = h.conn.clone();
                    if self.register(h, true) {
                        backoff = self.inner.cfg.backoff_initial;
                        tokio::select! {
                            _ = conn.closed() => {},
                            _ = stop.wait_for(|s| *s) => return,
                        }
                    }
                }
                Err(e) => debug!(%addr, error = %e, "dial failed"),
            }
            // Jitter keeps restarted nodes from redialling in lock-step.
            let jitter = rand::random_range(0..=backoff.as_millis() as u64 / 4 + 1);
            let delay = backoff + Duration::from_millis(jitter);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {},
                _ = stop.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(self.inner.cfg.backoff_max);
        }
    }

    fn connected_at(&self, addr: SocketAddr) -> Option<PeerId> {
        lock(&self.inner.peers)
            .iter()
            .find(|(_, e)| e.remote == addr && e.conn.close_reason().is_none())
            .map(|(id, _)| *id)
    }

    fn is_connected(&self, id: &PeerId) -> bool {
        lock(&self.inner.peers)
            .get(id)
            .is_some_and(|e| e.conn.close_reason().is_none())
    }

    /// Exchanges Hellos on the connection's one bidirectional stream (the
    /// dialler opens it and speaks first) and checks the peer's.
    async fn handshake(
        &self,
        conn: quinn::Connection,
        dialer: bool,
    ) -> Result<Handshaken, ConnectError> {
        let cert = tls::peer_certificate(&conn).ok_or(ConnectError::NoCertificate)?;
        let peer = PeerId::of_cert(&cert);
        if peer == self.inner.local_id {
            conn.close(close_code::HANDSHAKE.into(), b"self");
            return Err(ConnectError::SelfConnection);
        }
        let banned = {
            let scores = lock(&self.inner.scores);
            let now = Instant::now();
            scores.is_banned(&peer, now)
                || self
                    .ban_key(conn.remote_address())
                    .is_some_and(|a| scores.is_addr_banned(&a, now))
        };
        if banned {
            conn.close(close_code::BANNED.into(), b"banned");
            return Err(ConnectError::Banned);
        }
        let mut hello = hello::make_hello(
            &self.inner.chain,
            self.inner.key.as_ref(),
            &self.inner.own_cert,
            self.inner.height.load(Ordering::Relaxed),
        );
        hello.incarnation = self.inner.incarnation;
        let ours = PeerMessage {
            kind: Some(Kind::Hello(hello)),
        };
        let ours = wire::encode_frame(&ours);
        let theirs = if dialer {
            let (mut send, mut recv) = conn.open_bi().await?;
            send.write_all(&ours)
                .await
                .map_err(|e| ConnectError::Write(e.to_string()))?;
            let _ = send.finish();
            wire::read_frame(&mut recv, wire::MAX_SMALL_FRAME).await
        } else {
            let (mut send, mut recv) = conn.accept_bi().await?;
            let theirs = wire::read_frame(&mut recv, wire::MAX_SMALL_FRAME).await;
            if theirs.is_ok() {
                send.write_all(&ours)
                    .await
                    .map_err(|e| ConnectError::Write(e.to_string()))?;
                let _ = send.finish();
            }
            theirs
        };
        let theirs = match theirs {
            Ok((
                PeerMessage {
                    kind: Some(Kind::Hello(h)),
                },
                _,
            )) => h,
            Ok(_) => {
                conn.close(close_code::HANDSHAKE.into(), b"expected hello");
                return Err(ConnectError::NotHello);
            }
            Err(e) => {
                conn.close(close_code::HANDSHAKE.into(), b"bad hello");
                return Err(e.into());
            }
        };
        let identity = match hello::verify_hello(&theirs, &self.inner.chain, &cert) {
            Ok(id) => id,
            Err(e @ hello::HelloError::ChainMismatch { .. }) => {
                conn.close(close_code::CHAIN_MISMATCH.into(), b"chain mismatch");
                return Err(e.into());
            }
            Err(e) => {
                // A claimed but unproven validator identity: it may still
                // relay gossip as a full node, but never speaks as a validator.
                warn!(%peer, error = %e, "peer failed to prove its validator identity; treating it as a full node");
                self.charge_at(
                    peer,
                    Some(conn.remote_address()),
                    ChargeReason::BadHello,
                    &e.to_string(),
                );
                if lock(&self.inner.scores).is_banned(&peer, Instant::now()) {
                    conn.close(close_code::BANNED.into(), b"banned");
                    return Err(ConnectError::Banned);
                }
                PeerIdentity::FullNode
            }
        };
        Ok(Handshaken {
            conn,
            peer,
            identity,
            incarnation: theirs.incarnation,
        })
    }

    /// Adds a connection to the peer table (or drops it as a duplicate) and
    /// starts its reader and writer. Returns whether it was kept.
    ///
    /// Two live connections to one peer arise when both sides dial at once;
    /// the one initiated by the lower id wins, so both sides keep the same
    /// one. A connection from a new incarnation (the peer restarted) always
    /// wins: the old one is dead even if it has not timed out yet.
    fn register(&self, h: Handshaken, outbound: bool) -> bool {
        let Handshaken {
            conn,
            peer,
            identity,
            incarnation,
        } = h;
        let initiator = if outbound { self.inner.local_id } else { peer };
        let (queue, rx) = mpsc::channel(self.inner.cfg.outbound_queue.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        {
            let mut peers = lock(&self.inner.peers);
            let stranger = !outbound && !self.is_configured(conn.remote_address());
            if stranger && !peers.contains_key(&peer) && !self.stranger_slot_free(&peers) {
                self.inner.cfg.metrics.budget_drop(BudgetKind::Slots);
                conn.close(close_code::FULL.into(), b"full");
                return false;
            }
            if let Some(old) = peers.get(&peer)
                && old.conn.close_reason().is_none()
            {
                let preferred = self.inner.local_id.min(peer);
                let keep_old = old.incarnation == incarnation
                    && old.initiator != initiator
                    && old.initiator == preferred;
                if keep_old {
                    conn.close(close_code::DUPLICATE.into(), b"duplicate");
                    return false;
                }
                old.conn.close(close_code::DUPLICATE.into(), b"replaced");
            }
            peers.insert(
                peer,
                PeerEntry {
                    conn: conn.clone(),
                    identity: identity.clone(),
                    remote: conn.remote_address(),
                    outbound,
                    initiator,
                    incarnation,
                    queue,
                    queued: queued.clone(),
                    budget: PeerBudget::new(&self.inner.cfg.budget, Instant::now()),
                },
            );
        }
        info!(%peer, remote = %conn.remote_address(), ?identity, outbound, "peer connected");
        self.inner.changes.send_modify(|g| *g += 1);
        let _ = self.inner.events.try_send(TransportEvent::Connected {
            peer,
            identity: identity.clone(),
            remote: conn.remote_address(),
        });
        tokio::spawn(write_loop(conn.clone(), rx, queued));
        tokio::spawn(self.clone().read_loop(conn, peer, identity));
        true
    }

    async fn read_loop(self, conn: quinn::Connection, peer: PeerId, identity: PeerIdentity) {
        let inbound = Arc::new(Semaphore::new(MAX_INBOUND_BYTES));
        loop {
            let mut recv = match conn.accept_uni().await {
                Ok(r) => r,
                Err(_) => break,
            };
            let t = self.clone();
            let conn = conn.clone();
            let identity = identity.clone();
            let inbound = inbound.clone();
            tokio::spawn(async move {
                let res = tokio::time::timeout(t.inner.cfg.stream_timeout, async {
                    let (body, reading) =
                        wire::read_body_within(&mut recv, wire::MAX_FRAME, &inbound).await?;
                    t.decode(body, reading).await
                })
                .await;
                match res {
                    Ok(Ok((msg, held))) => t.deliver(peer, identity, msg, held).await,
                    Ok(Err(e)) if e.is_misbehaviour() => {
                        t.charge_at(
                            peer,
                            Some(conn.remote_address()),
                            ChargeReason::Frame,
                            &e.to_string(),
                        );
                        conn.close(close_code::MISBEHAVED.into(), b"bad frame");
                    }
                    Ok(Err(e)) => debug!(%peer, error = %e, "stream failed"),
                    Err(_) => debug!(%peer, "stream timed out"),
                }
            });
        }
        let removed = {
            let mut peers = lock(&self.inner.peers);
            let same = peers
                .get(&peer)
                .is_some_and(|e| e.conn.stable_id() == conn.stable_id());
            if same {
                peers.remove(&peer);
            }
            same
        };
        if removed {
            info!(%peer, reason = ?conn.close_reason(), "peer disconnected");
            self.inner.changes.send_modify(|g| *g += 1);
            let _ = self
                .inner
                .events
                .send(TransportEvent::Disconnected { peer })
                .await;
        }
    }

    /// Decodes a frame's body once its decoded estimate (refused if out of
    /// proportion, see [`decoded`]) is taken from [`MAX_EVENT_BYTES`]:
    /// meanwhile only the body's bytes are held, under `reading`, the
    /// connection's share of [`MAX_INBOUND_BYTES`], let go once decoded.
    async fn decode(
        &self,
        body: Vec<u8>,
        reading: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(PeerMessage, tokio::sync::OwnedSemaphorePermit), WireError> {
        let estimate = decoded::checked_estimate(&body)?;
        let held = self
            .inner
            .event_bytes
            .clone()
            .acquire_many_owned(u32::try_from(estimate).unwrap_or(u32::MAX))
            .await
            .map_err(|e| WireError::Stream(e.to_string()))?;
        let msg = wire::decode_body(&body)?;
        drop((body, reading));
        Ok((msg, held))
    }

    /// Hands a message to the runner if the peer's budget allows and it is
    /// not a gossip copy already seen. `held` is its share of
    /// [`MAX_EVENT_BYTES`], travelling with the event.
    async fn deliver(
        &self,
        peer: PeerId,
        identity: PeerIdentity,
        message: PeerMessage,
        held: tokio::sync::OwnedSemaphorePermit,
    ) {
        let Some(kind) = message.kind.as_ref() else {
            return;
        };
        if matches!(kind, Kind::Hello(_)) {
            return;
        }
        // Within the peer's budget, or dropped before anything verifies it.
        // Checked before the seen-cache: a copy dropped here must not make
        // another peer's copy of the same message look like a duplicate.
        let cost = accounting::check_cost(kind);
        if cost > 0 {
            let fits = lock(&self.inner.peers)
                .get_mut(&peer)
                .is_some_and(|e| e.budget.checks.try_take(cost, Instant::now()));
            if !fits {
                self.inner.cfg.metrics.budget_drop(BudgetKind::Checks);
                return;
            }
        }
        if is_gossip(kind) {
            use prost::Message;
            let h = sha3_256(&message.encode_to_vec());
            if !lock(&self.inner.seen).insert(h) {
                return;
            }
        }
        let _ = self
            .inner
            .events
            .send(TransportEvent::Message {
                peer,
                identity,
                message,
                held: EventBytes(Arc::new(held)),
            })
            .await;
    }
}

/// Writes queued frames, each on a new unidirectional stream. Streams are
/// opened in queue order and written concurrently (bounded), so a large frame
/// does not delay small ones behind it. A frame's bytes leave `queued` once
/// written to its stream.
async fn write_loop(
    conn: quinn::Connection,
    mut rx: mpsc::Receiver<Arc<Vec<u8>>>,
    queued: Arc<AtomicUsize>,
) {
    let permits = Arc::new(Semaphore::new(64));
    while let Some(frame) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let mut send = tokio::select! {
            s = conn.open_uni() => match s { Ok(s) => s, Err(_) => break },
            _ = conn.closed() => break,
        };
        let queued = queued.clone();
        tokio::spawn(async move {
            if send.write_all(&frame).await.is_ok() {
                let _ = send.finish();
            }
            // Written (QUIC holds it now, within its flow control window).
            queued.fetch_sub(frame.len(), Ordering::AcqRel);
            drop(permit);
        });
    }
}
