//! One attacker connection: a fresh certificate on a fresh UDP socket (so
//! neither a certificate ban nor, on loopback where the node bans ip:port,
//! an address ban carries over), the Hello exchange, and sending frames or
//! raw bytes on new unidirectional streams, as the node's transport does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_node::transport::{TlsIdentity, hello, tls, wire};
use agora_proto::v1::{PeerMessage, peer_message::Kind};
use agora_validator::SecretKey;

use super::{AttackError, Target};

/// The handshake (QUIC, TLS, Hello) must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected attacker.
pub struct Peer {
    /// Its own endpoint (dropping it frees the socket).
    pub endpoint: quinn::Endpoint,
    /// The connection to the node.
    pub conn: quinn::Connection,
    /// The certificate it presented.
    pub tls: TlsIdentity,
    /// The Hello the node sent back.
    pub their_hello: agora_proto::v1::Hello,
}

/// How a connection attempt ended when it did not connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The node closed or refused the connection (with the QUIC application
    /// code, when it gave one).
    Refused(Option<u32>),
    /// Nothing within [`HANDSHAKE_TIMEOUT`].
    Timeout,
}

/// A client endpoint on a fresh loopback socket whose TLS identity is
/// `tls` and whose QUIC limits are `transport`.
pub fn endpoint(
    tls: &TlsIdentity,
    transport: quinn::TransportConfig,
) -> Result<quinn::Endpoint, AttackError> {
    let (_, client) = tls::quic_configs(tls, Arc::new(transport))?;
    let mut ep = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    ep.set_default_client_config(client);
    Ok(ep)
}

/// A self-made BLS key from `seed` (not in any validator set).
pub fn self_made_key(seed: u64) -> Result<SecretKey, AttackError> {
    let mut bytes = [0x5au8; 32];
    bytes[..8].copy_from_slice(&seed.to_be_bytes());
    SecretKey::from_seed(&bytes).map_err(|e| AttackError::Key(e.to_string()))
}

impl Peer {
    /// Connects with a fresh certificate and socket, default QUIC limits,
    /// and a Hello proving `key` (or none: a full node).
    pub async fn connect(
        target: &Target,
        key: Option<&SecretKey>,
    ) -> Result<Result<Self, Refusal>, AttackError> {
        Self::connect_with(target, key, quinn::TransportConfig::default()).await
    }

    /// [`Self::connect`] with the attacker's own QUIC limits.
    pub async fn connect_with(
        target: &Target,
        key: Option<&SecretKey>,
        transport: quinn::TransportConfig,
    ) -> Result<Result<Self, Refusal>, AttackError> {
        let tls = TlsIdentity::generate()?;
        let endpoint = endpoint(&tls, transport)?;
        let attempt = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            let conn = endpoint
                .connect(target.p2p, "agora")
                .map_err(|_| Refusal::Refused(None))?
                .await
                .map_err(|e| Refusal::Refused(close_code(&e)))?;
            let hello = hello::make_hello(&target.chain, &target.genesis_hash, key, &tls.cert, 0);
            let frame = wire::encode_frame(&PeerMessage {
                kind: Some(Kind::Hello(hello)),
            });
            let refused = |conn: &quinn::Connection| {
                Refusal::Refused(conn.close_reason().as_ref().and_then(close_code))
            };
            let (mut send, mut recv) = conn.open_bi().await.map_err(|_| refused(&conn))?;
            send.write_all(&frame).await.map_err(|_| refused(&conn))?;
            let _ = send.finish();
            match wire::read_frame(&mut recv, wire::MAX_SMALL_FRAME).await {
                Ok((
                    PeerMessage {
                        kind: Some(Kind::Hello(h)),
                    },
                    _,
                )) => Ok((conn, h)),
                _ => Err(refused(&conn)),
            }
        })
        .await;
        Ok(match attempt {
            Ok(Ok((conn, their_hello))) => Ok(Self {
                endpoint,
                conn,
                tls,
                their_hello,
            }),
            Ok(Err(r)) => Err(r),
            Err(_) => Err(Refusal::Timeout),
        })
    }

    /// Sends one message as one frame on a new stream. False when the
    /// connection is gone.
    pub async fn send(&self, kind: Kind) -> bool {
        let frame = wire::encode_frame(&PeerMessage { kind: Some(kind) });
        self.send_raw(&frame, true).await.is_some()
    }

    /// Writes `bytes` on a new unidirectional stream, finishing it if
    /// asked; the stream (still open when not finished), or None when the
    /// connection is gone.
    pub async fn send_raw(&self, bytes: &[u8], finish: bool) -> Option<quinn::SendStream> {
        let mut s = self.conn.open_uni().await.ok()?;
        s.write_all(bytes).await.ok()?;
        if finish {
            let _ = s.finish();
        }
        Some(s)
    }

    /// The code the node closed the connection with, once closed.
    pub fn closed_code(&self) -> Option<Option<u32>> {
        self.conn.close_reason().map(|e| close_code(&e))
    }

    /// Whether the node closed the connection.
    pub fn is_closed(&self) -> bool {
        self.conn.close_reason().is_some()
    }

    /// The next message the node sends us, if one arrives within `wait`.
    pub async fn next_message(&self, wait: Duration) -> Option<Kind> {
        let mut recv = tokio::time::timeout(wait, self.conn.accept_uni())
            .await
            .ok()?
            .ok()?;
        let (msg, _) = tokio::time::timeout(wait, wire::read_frame(&mut recv, wire::MAX_FRAME))
            .await
            .ok()?
            .ok()?;
        msg.kind
    }
}

/// The QUIC application close code of a connection error, if it is one.
pub fn close_code(e: &quinn::ConnectionError) -> Option<u32> {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => {
            u32::try_from(c.error_code.into_inner()).ok()
        }
        _ => None,
    }
}

/// Connects until one attempt succeeds or `deadline` passes (a node that
/// banned our last socket refuses none of our fresh ones, but it may be
/// busy), counting refusals in `report`.
pub async fn connect_until(
    target: &Target,
    key: Option<&SecretKey>,
    deadline: tokio::time::Instant,
    report: &mut super::Report,
) -> Result<Option<Peer>, AttackError> {
    while tokio::time::Instant::now() < deadline {
        match Peer::connect(target, key).await? {
            Ok(p) => {
                report.connected += 1;
                return Ok(Some(p));
            }
            Err(_) => report.refused += 1,
        }
    }
    Ok(None)
}

/// Records how `peer`'s connection ended, if the node closed it.
pub fn record_close(peer: &Peer, report: &mut super::Report) {
    if let Some(code) = peer.closed_code() {
        report.closed.push(code.unwrap_or(u32::MAX));
    }
}
