//! A raw peer over real QUIC: a client endpoint, a connection that sends
//! a Hello of our choosing, and frames written and closes read by hand, for
//! tests that play a misbehaving or forging peer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_node::transport::{TlsIdentity, hello, tls, wire};
use agora_proto::v1::{PeerMessage, peer_message::Kind};
use agora_validator::{ChainId, SecretKey};
use tokio::time::timeout;

/// SHA3-256 of the genesis file in a node's home (what its Hello names).
pub fn genesis_of(home: &std::path::Path) -> [u8; 32] {
    agora_validator::crypto::sha3_256(&std::fs::read(home.join("genesis.json")).unwrap())
}

/// A client endpoint on its own UDP socket.
pub fn client_endpoint() -> quinn::Endpoint {
    quinn::Endpoint::client("127.0.0.1:0".parse().expect("address")).unwrap()
}

/// Connects from `ep` with a TLS identity and a Hello proving `k` (or no
/// key); the connection, or why it failed.
pub async fn connect(
    ep: &quinn::Endpoint,
    server: SocketAddr,
    chain_id: &ChainId,
    genesis: &[u8; 32],
    k: Option<&SecretKey>,
    id: &TlsIdentity,
) -> Result<quinn::Connection, String> {
    let (_, client) = tls::quic_configs(id, Arc::new(quinn::TransportConfig::default())).unwrap();
    let conn = ep
        .connect_with(client, server, "agora")
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let frame = wire::encode_frame(&PeerMessage {
        kind: Some(Kind::Hello(hello::make_hello(
            chain_id, genesis, k, &id.cert, 0,
        ))),
    });
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(&frame).await.map_err(|e| e.to_string())?;
    let _ = send.finish();
    wire::read_frame(&mut recv, wire::MAX_SMALL_FRAME)
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

pub async fn send_raw(conn: &quinn::Connection, bytes: &[u8], finish: bool) -> quinn::SendStream {
    let mut s = conn.open_uni().await.unwrap();
    let _ = s.write_all(bytes).await;
    if finish {
        let _ = s.finish();
    }
    s
}

pub async fn closed_with(conn: &quinn::Connection, within: Duration) -> Option<u32> {
    match timeout(within, conn.closed())
        .await
        .expect("connection not closed in time")
    {
        quinn::ConnectionError::ApplicationClosed(c) => {
            u32::try_from(c.error_code.into_inner()).ok()
        }
        _ => None,
    }
}

/// A frame holding one message of `kind`.
pub fn frame(kind: Kind) -> Vec<u8> {
    wire::encode_frame(&PeerMessage { kind: Some(kind) })
}

/// A prevote of height 1 and `round` from a made-up validator with filler
/// signature bytes: a well-formed frame for tests of the transport, which
/// carries votes without judging their signatures.
pub fn filler_vote(round: u32) -> PeerMessage {
    PeerMessage {
        kind: Some(Kind::Vote(agora_proto::v1::Vote {
            vote_type: 1,
            height: 1,
            round,
            block_hash: vec![7; 32],
            validator_address: vec![1; 20],
            signature: vec![2; 96],
        })),
    }
}
