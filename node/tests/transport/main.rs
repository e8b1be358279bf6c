//! Real QUIC on loopback: mesh formation and gossip (here), identity
//! binding, frame limits and chain separation ([`refusals`]), and
//! reconnection ([`reconnection`]). The helpers below are shared by both.

mod reconnection;
mod refusals;
#[path = "../support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_node::transport::{
    PeerId, PeerIdentity, TlsIdentity, Transport, TransportConfig, TransportEvent, close_code,
    hello, tls, wire,
};
use agora_proto::v1::{PeerMessage, StatusUpdate, peer_message::Kind};
use agora_validator::{Address, ChainId, SecretKey};
use support::raw_peer::filler_vote;
use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, timeout};

const DEADLINE: Duration = Duration::from_secs(20);

/// The genesis hash every transport of these tests announces.
const GENESIS: [u8; 32] = [0; 32];

fn chain() -> ChainId {
    ChainId::new("agora-test").unwrap()
}

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed(&[seed; 32]).unwrap()
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn config(tls: TlsIdentity, k: Option<SecretKey>, peers: Vec<SocketAddr>) -> TransportConfig {
    let mut c = TransportConfig::new(local(), chain(), GENESIS, tls, k);
    c.peers = peers;
    c.backoff_initial = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(500);
    c.keep_alive = Duration::from_millis(200);
    c
}

fn start(k: Option<SecretKey>, peers: Vec<SocketAddr>) -> (Transport, Receiver<TransportEvent>) {
    Transport::start(config(TlsIdentity::generate().unwrap(), k, peers)).unwrap()
}

/// Receives events until `f` returns Some, or panics at the deadline.
async fn wait_for<T>(
    rx: &mut Receiver<TransportEvent>,
    mut f: impl FnMut(&TransportEvent) -> Option<T>,
) -> T {
    timeout(DEADLINE, async {
        loop {
            let e = rx.recv().await.expect("event channel closed");
            if let Some(t) = f(&e) {
                return t;
            }
        }
    })
    .await
    .expect("condition not met before the deadline")
}

/// Waits (driven by events, bounded by the deadline) until `cond` holds.
async fn wait_until(rx: &mut Receiver<TransportEvent>, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            Instant::now() < end,
            "condition not met before the deadline"
        );
        let _ = timeout(Duration::from_millis(100), rx.recv()).await;
    }
}

fn validator_peers(t: &Transport) -> Vec<Address> {
    let mut v: Vec<_> = t
        .peers()
        .into_iter()
        .filter_map(|p| p.identity.validator_address())
        .collect();
    v.sort();
    v
}

/// Broadcasts a fresh vote from `from` every 200 ms until `to` receives a
/// message; false if none arrives within `within` (gossip is best effort
/// while connections are replaced).
async fn resend_until_received(
    from: &Transport,
    to: &mut Receiver<TransportEvent>,
    first_round: u32,
    within: Duration,
) -> bool {
    let end = Instant::now() + within;
    let mut round = first_round;
    while Instant::now() < end {
        round += 1;
        from.broadcast(&filler_vote(round));
        let got = timeout(Duration::from_millis(200), async {
            loop {
                if let Some(TransportEvent::Message { .. }) = to.recv().await {
                    return;
                }
            }
        })
        .await;
        if got.is_ok() {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_validators_mesh_gossip_and_dedup() {
    let (ka, kb, kc) = (key(1), key(2), key(3));
    let (a, mut ra) = start(Some(ka.clone()), vec![]);
    let a_addr = a.local_addr().unwrap();
    let (b, mut rb) = start(Some(kb.clone()), vec![a_addr]);
    let b_addr = b.local_addr().unwrap();
    let (c, mut rc) = start(Some(kc.clone()), vec![a_addr, b_addr]);

    let addr = |k: &SecretKey| Address::of(&k.public_key());
    let mut want_a = vec![addr(&kb), addr(&kc)];
    want_a.sort();
    wait_until(&mut ra, || validator_peers(&a) == want_a).await;
    wait_until(&mut rb, || validator_peers(&b).len() == 2).await;
    wait_until(&mut rc, || validator_peers(&c).len() == 2).await;
    assert_eq!(a.peers().len(), 2, "one connection per peer");

    // Broadcast a vote from A, twice, then twenty more distinct ones.
    let v0 = filler_vote(0);
    assert_eq!(a.broadcast(&v0), 2);
    assert_eq!(a.broadcast(&v0), 2);
    for r in 1..=20 {
        a.broadcast(&filler_vote(r));
    }
    for (rx, name) in [(&mut rb, "b"), (&mut rc, "c")] {
        let mut rounds = Vec::new();
        wait_for(rx, |e| {
            if let TransportEvent::Message {
                identity,
                message:
                    PeerMessage {
                        kind: Some(Kind::Vote(v)),
                    },
                ..
            } = e
            {
                assert_eq!(
                    identity.validator_address(),
                    Some(addr(&ka)),
                    "{name}: sender identity"
                );
                rounds.push(v.round);
            }
            (rounds.len() == 21).then_some(())
        })
        .await;
        rounds.sort();
        assert_eq!(
            rounds,
            (0..=20).collect::<Vec<_>>(),
            "{name}: each vote exactly once"
        );
    }

    // Direct send B -> C with the sender's proven identity.
    let c_id = c.local_peer_id();
    let status = PeerMessage {
        kind: Some(Kind::Status(StatusUpdate { latest_height: 42 })),
    };
    b.send(c_id, &status).unwrap();
    let (from, id) = wait_for(&mut rc, |e| match e {
        TransportEvent::Message {
            peer,
            identity,
            message: PeerMessage {
                kind: Some(Kind::Status(s)),
            },
            ..
        } if s.latest_height == 42 => Some((*peer, identity.clone())),
        _ => None,
    })
    .await;
    assert_eq!(from, b.local_peer_id());
    assert_eq!(id.validator_address(), Some(addr(&kb)));

    for t in [a, b, c] {
        t.shutdown().await;
    }
}
