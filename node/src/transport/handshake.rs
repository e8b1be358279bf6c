//! The Hello exchange that follows the QUIC handshake: refusing ourselves
//! and banned peers, trading Hellos on the connection's one bidirectional
//! stream, and establishing what the peer proved to be.

use std::sync::atomic::Ordering;
use std::time::Instant;

use agora_proto::v1::{Hello, PeerMessage, peer_message::Kind};
use tracing::warn;

use super::error::ConnectError;
use super::hello::{self, PeerIdentity};
use super::score::ChargeReason;
use super::wire::{self, WireError};
use super::{PeerId, Transport, close_code, lock, tls};

/// A connection whose Hellos were exchanged and checked.
pub(super) struct Handshaken {
    pub(super) conn: quinn::Connection,
    pub(super) peer: PeerId,
    pub(super) identity: PeerIdentity,
    /// The peer's `Hello.incarnation`.
    pub(super) incarnation: u64,
}

impl Transport {
    /// Exchanges Hellos on the connection's one bidirectional stream (the
    /// dialler opens it and speaks first) and checks the peer's.
    pub(super) async fn handshake(
        &self,
        conn: quinn::Connection,
        dialer: bool,
    ) -> Result<Handshaken, ConnectError> {
        let cert = tls::peer_certificate(&conn).ok_or(ConnectError::NoCertificate)?;
        let peer = PeerId::of_cert(&cert);
        self.refuse_self_or_banned(&conn, peer)?;
        let theirs = self.exchange_hellos(&conn, dialer).await?;
        let identity = self.proven_identity(&conn, peer, &cert, &theirs)?;
        Ok(Handshaken {
            conn,
            peer,
            identity,
            incarnation: theirs.incarnation,
        })
    }

    /// Closes a connection to ourselves, or from a certificate or address
    /// that is banned now.
    fn refuse_self_or_banned(
        &self,
        conn: &quinn::Connection,
        peer: PeerId,
    ) -> Result<(), ConnectError> {
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
        Ok(())
    }

    /// Our Hello: the chain, the validator key's proof (if any), our height
    /// and incarnation.
    fn own_hello(&self) -> PeerMessage {
        let mut hello = hello::make_hello(
            &self.inner.chain,
            &self.inner.cfg.genesis_hash,
            self.inner.key.as_ref(),
            &self.inner.own_cert,
            self.inner.height.load(Ordering::Relaxed),
        );
        hello.incarnation = self.inner.incarnation;
        PeerMessage {
            kind: Some(Kind::Hello(hello)),
        }
    }

    /// Sends our Hello and reads the peer's. The dialler opens the stream
    /// and speaks first; the acceptor answers only once it has read a frame.
    async fn exchange_hellos(
        &self,
        conn: &quinn::Connection,
        dialer: bool,
    ) -> Result<Hello, ConnectError> {
        let ours = wire::encode_frame(&self.own_hello());
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
        expect_hello(conn, theirs)
    }

    /// What the peer's Hello proves it to be. A peer on another chain or
    /// genesis is refused (and, when we dialled it, the operator told); one that fails to prove a validator identity is charged and
    /// treated as a full node, unless that charge banned it.
    fn proven_identity(
        &self,
        conn: &quinn::Connection,
        peer: PeerId,
        cert: &[u8],
        theirs: &Hello,
    ) -> Result<PeerIdentity, ConnectError> {
        let genesis = &self.inner.cfg.genesis_hash;
        match hello::verify_hello(theirs, &self.inner.chain, genesis, cert) {
            Ok(id) => Ok(id),
            // The close reason names ours (public anyway), so that the
            // dialler's operator sees both sides in one log line.
            Err(e @ hello::HelloError::ChainMismatch { .. }) => {
                let ours = self.inner.chain.as_str().as_bytes();
                conn.close(close_code::CHAIN_MISMATCH.into(), ours);
                Err(e.into())
            }
            Err(e @ hello::HelloError::GenesisMismatch { .. }) => {
                let ours = hex::encode(genesis);
                conn.close(close_code::GENESIS_MISMATCH.into(), ours.as_bytes());
                Err(e.into())
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
                Ok(PeerIdentity::FullNode)
            }
        }
    }
}

/// The Hello in the peer's first frame; anything else closes the connection.
fn expect_hello(
    conn: &quinn::Connection,
    theirs: Result<(PeerMessage, usize), WireError>,
) -> Result<Hello, ConnectError> {
    match theirs {
        Ok((
            PeerMessage {
                kind: Some(Kind::Hello(h)),
            },
            _,
        )) => Ok(h),
        Ok(_) => {
            conn.close(close_code::HANDSHAKE.into(), b"expected hello");
            Err(ConnectError::NotHello)
        }
        Err(e) => {
            if let Some(refusal) = refused_network(conn) {
                return Err(refusal);
            }
            conn.close(close_code::HANDSHAKE.into(), b"bad hello");
            Err(e.into())
        }
    }
}

/// The refusal, when the peer closed the connection because our Hello
/// names another chain id or genesis (the dialler learns it only from the
/// close code; the reason carries the peer's own, shown as at most 64
/// printable characters).
fn refused_network(conn: &quinn::Connection) -> Option<ConnectError> {
    let quinn::ConnectionError::ApplicationClosed(c) = conn.close_reason()? else {
        return None;
    };
    let what = match u32::try_from(c.error_code.into_inner()) {
        Ok(close_code::CHAIN_MISMATCH) => "chain id",
        Ok(close_code::GENESIS_MISMATCH) => "genesis file hash",
        _ => return None,
    };
    Some(ConnectError::RefusedNetwork {
        what,
        theirs: shown_reason(&c.reason),
    })
}

/// Most characters of a peer's close reason we show.
const MAX_SHOWN_REASON: usize = 64;

/// A close reason as our logs show it: the peer chose those bytes, so at
/// most [`MAX_SHOWN_REASON`] of them, printable ASCII only (no line breaks
/// or escape sequences to forge log lines or move a terminal's cursor).
fn shown_reason(reason: &[u8]) -> String {
    reason
        .iter()
        .take(MAX_SHOWN_REASON)
        .filter(|b| b.is_ascii_graphic())
        .map(|&b| char::from(b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_close_reason_is_shown_short_and_printable() {
        // What an honest peer sends: its chain id or genesis hash in hex.
        let hash = "ab".repeat(32);
        assert_eq!(shown_reason(hash.as_bytes()), hash);
        // A forged log line, a terminal escape, bytes that are not UTF-8.
        let hostile = b"x\n2026-12-04T00:00:00Z  WARN forged\x1b[2J\xff\xfe";
        let shown = shown_reason(hostile);
        assert_eq!(shown, "x2026-12-04T00:00:00ZWARNforged[2J");
        // A long reason (QUIC lets a peer send about a kilobyte).
        let long = vec![b'z'; 1_000];
        assert_eq!(shown_reason(&long).len(), MAX_SHOWN_REASON);
    }
}
