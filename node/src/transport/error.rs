//! The transport's errors: [`TransportError`] for its users, and
//! [`ConnectError`] for a connection that could not be set up (logged, never
//! returned).

use std::net::SocketAddr;

use super::wire::WireError;
use super::{PeerId, hello, tls};

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
pub(super) enum ConnectError {
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
    /// The peer closed the handshake because our Hello names another
    /// chain id or genesis file than its own.
    #[error("the peer refused our Hello: its {what} is {theirs:?}, not ours")]
    RefusedNetwork {
        /// "chain id" or "genesis file hash".
        what: &'static str,
        /// The peer's, from its close reason.
        theirs: String,
    },
}

impl ConnectError {
    /// The two sides run different chains (chain id or genesis file): a
    /// configuration error an operator must see, not a transient failure.
    pub(super) fn is_network_mismatch(&self) -> bool {
        matches!(
            self,
            Self::RefusedNetwork { .. }
                | Self::Hello(
                    hello::HelloError::ChainMismatch { .. }
                        | hello::HelloError::GenesisMismatch { .. }
                )
        )
    }
}
