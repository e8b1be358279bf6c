//! What the transport tells its user: the [`TransportEvent`]s coming out of
//! [`Transport::start`](super::Transport::start)'s channel, and the
//! [`PeerInfo`] of a connected peer.

use std::net::SocketAddr;
use std::sync::Arc;

use agora_proto::v1::PeerMessage;

use super::PeerId;
use super::hello::PeerIdentity;

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
        ///
        /// [`MAX_EVENT_BYTES`]: super::MAX_EVENT_BYTES
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
///
/// [`MAX_EVENT_BYTES`]: super::MAX_EVENT_BYTES
#[derive(Debug, Clone)]
pub struct EventBytes(#[allow(dead_code)] pub(super) Arc<tokio::sync::OwnedSemaphorePermit>);

/// A connected peer as listed by [`Transport::peers`].
///
/// [`Transport::peers`]: super::Transport::peers
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
