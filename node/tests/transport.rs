//! Real QUIC on loopback: mesh formation and gossip, identity binding, frame
//! limits, chain separation and reconnection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_node::transport::{
    PeerId, PeerIdentity, TlsIdentity, Transport, TransportConfig, TransportEvent, close_code,
    hello, tls, wire,
};
use agora_proto::v1::{PeerMessage, StatusUpdate, Vote, peer_message::Kind};
use agora_validator::{Address, ChainId, SecretKey};
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

fn vote(round: u32) -> PeerMessage {
    PeerMessage {
        kind: Some(Kind::Vote(Vote {
            vote_type: 1,
            height: 1,
            round,
            block_hash: vec![7; 32],
            validator_address: vec![1; 20],
            signature: vec![2; 96],
        })),
    }
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
        from.broadcast(&vote(round));
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
    let v0 = vote(0);
    assert_eq!(a.broadcast(&v0), 2);
    assert_eq!(a.broadcast(&v0), 2);
    for r in 1..=20 {
        a.broadcast(&vote(r));
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

/// A hand-rolled peer: connects with its own TLS identity and sends the given Hello.
async fn raw_peer(
    server: SocketAddr,
    hello_msg: agora_proto::v1::Hello,
    id: &TlsIdentity,
) -> (
    quinn::Endpoint,
    quinn::Connection,
    Result<PeerMessage, wire::WireError>,
) {
    let (_, client) = tls::quic_configs(id, Arc::new(quinn::TransportConfig::default())).unwrap();
    let mut ep = quinn::Endpoint::client(local()).unwrap();
    ep.set_default_client_config(client);
    let conn = ep.connect(server, "agora").unwrap().await.unwrap();
    let frame = wire::encode_frame(&PeerMessage {
        kind: Some(Kind::Hello(hello_msg)),
    });
    let reply = async {
        // The server may refuse us at once (banned, other chain): not a test failure here.
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| wire::WireError::Stream(e.to_string()))?;
        let _ = send.write_all(&frame).await;
        let _ = send.finish();
        wire::read_frame(&mut recv, wire::MAX_SMALL_FRAME)
            .await
            .map(|(m, _)| m)
    }
    .await;
    (ep, conn, reply)
}

async fn send_raw(conn: &quinn::Connection, bytes: &[u8]) {
    let mut s = conn.open_uni().await.unwrap();
    // The server may close the connection before we finish; that is the point.
    let _ = s.write_all(bytes).await;
    let _ = s.finish();
}

async fn closed_with(conn: &quinn::Connection) -> Option<u32> {
    match timeout(DEADLINE, conn.closed())
        .await
        .expect("connection not closed")
    {
        quinn::ConnectionError::ApplicationClosed(c) => {
            u32::try_from(c.error_code.into_inner()).ok()
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hello_signature_is_only_a_full_node() {
    let (a, mut ra) = start(Some(key(1)), vec![]);
    let a_addr = a.local_addr().unwrap();
    let tls_id = TlsIdentity::generate().unwrap();
    // Signed with a real key, but over another certificate: a replayed or forged Hello.
    let forged = hello::make_hello(
        &chain(),
        &GENESIS,
        Some(&key(9)),
        b"someone else's certificate",
        0,
    );
    let (_ep, conn, reply) = raw_peer(a_addr, forged, &tls_id).await;
    assert!(matches!(
        reply,
        Ok(PeerMessage {
            kind: Some(Kind::Hello(_))
        })
    ));
    send_raw(&conn, &wire::encode_frame(&vote(3))).await;
    let (peer, identity) = wait_for(&mut ra, |e| match e {
        TransportEvent::Message { peer, identity, .. } => Some((*peer, identity.clone())),
        _ => None,
    })
    .await;
    assert_eq!(peer, PeerId::of_cert(&tls_id.cert));
    assert_eq!(identity, PeerIdentity::FullNode);
    assert_eq!(a.peers()[0].identity, PeerIdentity::FullNode);

    // The same key with a correct Hello for this certificate is a validator.
    let tls2 = TlsIdentity::generate().unwrap();
    let good = hello::make_hello(&chain(), &GENESIS, Some(&key(9)), &tls2.cert, 0);
    let (_ep2, _conn2, _) = raw_peer(a_addr, good, &tls2).await;
    let id2 = wait_for(&mut ra, |e| match e {
        TransportEvent::Connected { peer, identity, .. }
            if *peer == PeerId::of_cert(&tls2.cert) =>
        {
            Some(identity.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(
        id2.validator_address(),
        Some(Address::of(&key(9).public_key()))
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_garbage_frames_drop_the_sender() {
    let (a, mut ra) = start(Some(key(1)), vec![]);
    let a_addr = a.local_addr().unwrap();

    // 1. A length prefix beyond the hard maximum.
    let t1 = TlsIdentity::generate().unwrap();
    let h1 = hello::make_hello(&chain(), &GENESIS, Some(&key(5)), &t1.cert, 0);
    let (_e1, c1, _) = raw_peer(a_addr, h1, &t1).await;
    send_raw(&c1, &(100u32 << 20).to_be_bytes()).await;
    assert_eq!(closed_with(&c1).await, Some(close_code::MISBEHAVED));
    let p1 = PeerId::of_cert(&t1.cert);
    wait_until(&mut ra, || {
        a.penalty_count(&p1) == 1 && a.peers().is_empty()
    })
    .await;

    // 2. A vote within the hard maximum but over the limit for votes.
    let t2 = TlsIdentity::generate().unwrap();
    let h2 = hello::make_hello(&chain(), &GENESIS, Some(&key(6)), &t2.cert, 0);
    let (_e2, c2, _) = raw_peer(a_addr, h2, &t2).await;
    let mut big = vote(0);
    if let Some(Kind::Vote(v)) = big.kind.as_mut() {
        v.signature = vec![0; wire::MAX_SMALL_FRAME + 1];
    }
    send_raw(&c2, &wire::encode_frame(&big)).await;
    assert_eq!(closed_with(&c2).await, Some(close_code::MISBEHAVED));

    // 3. Undecodable bytes.
    let t3 = TlsIdentity::generate().unwrap();
    let h3 = hello::make_hello(&chain(), &GENESIS, None, &t3.cert, 0);
    let (_e3, c3, _) = raw_peer(a_addr, h3, &t3).await;
    let mut garbage = 5u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 5]);
    send_raw(&c3, &garbage).await;
    assert_eq!(closed_with(&c3).await, Some(close_code::MISBEHAVED));
    let p3 = PeerId::of_cert(&t3.cert);
    wait_until(&mut ra, || a.penalty_count(&p3) == 1).await;

    // A banned peer that comes back is refused.
    let h1b = hello::make_hello(&chain(), &GENESIS, Some(&key(5)), &t1.cert, 0);
    let (_e4, c4, _) = raw_peer(a_addr, h1b, &t1).await;
    assert_eq!(closed_with(&c4).await, Some(close_code::BANNED));

    // Nothing of that reached the application.
    while let Ok(e) = ra.try_recv() {
        assert!(!matches!(e, TransportEvent::Message { .. }), "{e:?}");
    }
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_chain_is_refused() {
    let (a, _ra) = start(Some(key(1)), vec![]);
    let t = TlsIdentity::generate().unwrap();
    let other = ChainId::new("another-chain").unwrap();
    let h = hello::make_hello(&other, &GENESIS, Some(&key(2)), &t.cert, 0);
    let (_e, c, _) = raw_peer(a.local_addr().unwrap(), h, &t).await;
    assert_eq!(closed_with(&c).await, Some(close_code::CHAIN_MISMATCH));
    assert!(a.peers().is_empty());
    a.shutdown().await;
}

/// Same chain id, another genesis file (a testnet generated twice): refused
/// at the handshake, validator or full node, before any message counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_genesis_is_refused() {
    let (a, _ra) = start(Some(key(1)), vec![]);
    for k in [Some(key(2)), None] {
        let t = TlsIdentity::generate().unwrap();
        let h = hello::make_hello(&chain(), &[9; 32], k.as_ref(), &t.cert, 0);
        let (_e, c, _) = raw_peer(a.local_addr().unwrap(), h, &t).await;
        assert_eq!(closed_with(&c).await, Some(close_code::GENESIS_MISMATCH));
    }
    assert!(a.peers().is_empty());
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_peer_restart() {
    let kb = key(2);
    let tls_b = TlsIdentity::generate().unwrap();
    let (b, _rb) = Transport::start(config(tls_b.clone(), Some(kb.clone()), vec![])).unwrap();
    let b_addr = b.local_addr().unwrap();
    let b_id = b.local_peer_id();
    let (a, mut ra) = start(Some(key(1)), vec![b_addr]);
    wait_for(&mut ra, |e| {
        matches!(e, TransportEvent::Connected { peer, .. } if *peer == b_id).then_some(())
    })
    .await;

    b.shutdown().await;
    drop(b);
    wait_for(&mut ra, |e| {
        matches!(e, TransportEvent::Disconnected { peer } if *peer == b_id).then_some(())
    })
    .await;

    // Restart B on the same address (the old socket may take a moment to be released).
    let end = Instant::now() + DEADLINE;
    let (b2, mut rb2) = loop {
        let mut cfg = config(tls_b.clone(), Some(kb.clone()), vec![]);
        cfg.listen = b_addr;
        match Transport::start(cfg) {
            Ok(x) => break x,
            Err(e) => {
                assert!(Instant::now() < end, "could not rebind {b_addr}: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(&mut ra, |e| {
        matches!(e, TransportEvent::Connected { peer, .. } if *peer == b_id).then_some(())
    })
    .await;
    a.broadcast(&vote(9));
    wait_for(&mut rb2, |e| match e {
        TransportEvent::Message {
            message: PeerMessage {
                kind: Some(Kind::Vote(v)),
            },
            ..
        } if v.round == 9 => Some(()),
        _ => None,
    })
    .await;
    a.shutdown().await;
    b2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dial_settles_on_one_connection() {
    let tls_a = TlsIdentity::generate().unwrap();
    let tls_b = TlsIdentity::generate().unwrap();
    let (a, mut ra) = Transport::start(config(tls_a, Some(key(1)), vec![])).unwrap();
    let (b, mut rb) = Transport::start(config(tls_b, Some(key(2)), vec![])).unwrap();
    a.add_peer(b.local_addr().unwrap());
    b.add_peer(a.local_addr().unwrap());
    wait_until(&mut ra, || a.peers().len() == 1).await;
    wait_until(&mut rb, || b.peers().len() == 1).await;
    // Gossip is best effort while duplicate connections are being closed:
    // resend until one copy arrives, then check that both sides still hold one connection.
    assert!(
        resend_until_received(&a, &mut rb, 100, DEADLINE).await,
        "no message got through"
    );
    assert_eq!(a.peers().len(), 1);
    assert_eq!(b.peers().len(), 1);
    a.shutdown().await;
    b.shutdown().await;
}

/// A peer that crashes (no CONNECTION_CLOSE reaches us) and restarts must be
/// back at once, not after our idle timeout: its new connection carries a
/// new Hello incarnation and replaces the dead one, even where the
/// duplicate tie-break would otherwise keep the old connection (ours,
/// dialled by the lower id).
#[test]
fn restarted_peer_replaces_its_dead_connection_at_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A must hold the lower id, so the tie-break alone would favour A's
    // connection to the crashed B.
    let tls_a = TlsIdentity::generate().unwrap();
    let a_id = PeerId::of_cert(&tls_a.cert);
    let tls_b = loop {
        let t = TlsIdentity::generate().unwrap();
        if PeerId::of_cert(&t.cert) > a_id {
            break t;
        }
    };
    let kb = key(2);
    // B runs on a runtime of its own, so that it can die without a word.
    let b_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (b, _rb) = b_rt
        .block_on(async { Transport::start(config(tls_b.clone(), Some(kb.clone()), vec![])) })
        .unwrap();
    let b_addr = b.local_addr().unwrap();
    let b_id = b.local_peer_id();
    rt.block_on(async {
        let mut cfg = config(tls_a, Some(key(1)), vec![b_addr]);
        // Far longer than the deadline below: only the incarnation can help.
        cfg.idle_timeout = Duration::from_secs(60);
        let a_metrics = cfg.metrics.clone();
        let (a, mut ra) = Transport::start(cfg).unwrap();
        let a_addr = a.local_addr().unwrap();
        wait_for(&mut ra, |e| {
            matches!(e, TransportEvent::Connected { peer, .. } if *peer == b_id).then_some(())
        })
        .await;

        // Crash: B's tasks (its endpoint driver among them) vanish with its
        // runtime, so nothing more is sent; then its socket is released.
        b_rt.shutdown_background();
        drop(b);

        // B restarts on the same address and dials A.
        let end = Instant::now() + DEADLINE;
        let (b2, mut rb2) = loop {
            let mut cfg = config(tls_b.clone(), Some(kb.clone()), vec![a_addr]);
            cfg.listen = b_addr;
            match Transport::start(cfg) {
                Ok(x) => break x,
                Err(e) => {
                    assert!(Instant::now() < end, "could not rebind {b_addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        // A's gossip reaches the new B well within the old idle timeout.
        assert!(
            resend_until_received(&a, &mut rb2, 200, Duration::from_secs(10)).await,
            "the restarted peer was not reconnected"
        );
        // A restart is no copy.
        assert_eq!(a_metrics.peer_copies_seen(), 0);
        a.shutdown().await;
        b2.shutdown().await;
    });
}

/// Two processes presenting one TLS identity (a node's home copied whole,
/// both started) must not take each other's place at a peer several times
/// a second: the peer closes the older connection as superseded, and the
/// process that hears it says so, counts it and redials only after
/// `backoff_max`. Negative control: two nodes that dial each other at once
/// (one connection is dropped as a duplicate) count nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_one_identity_do_not_flap_at_a_peer() {
    let with_metrics = |c: TransportConfig| {
        let m = c.metrics.clone();
        let (t, rx) = Transport::start(c).unwrap();
        (t, rx, m)
    };
    let (p, mut rp, pm) = with_metrics(config(
        TlsIdentity::generate().unwrap(),
        Some(key(1)),
        vec![],
    ));
    let p_addr = p.local_addr().unwrap();
    let twin_tls = TlsIdentity::generate().unwrap();
    let twin_id = PeerId::of_cert(&twin_tls.cert);
    let copy = || {
        let mut c = config(twin_tls.clone(), Some(key(2)), vec![p_addr]);
        c.backoff_max = Duration::from_secs(30);
        with_metrics(c)
    };
    let (a1, _r1, m1) = copy();
    let (a2, _r2, m2) = copy();
    let window = Instant::now() + Duration::from_secs(3);
    let mut connects = 0;
    while Instant::now() < window {
        if let Ok(Some(TransportEvent::Connected { peer, .. })) =
            timeout(Duration::from_millis(100), rp.recv()).await
            && peer == twin_id
        {
            connects += 1;
        }
    }
    // One each, and perhaps one more if their first dials crossed.
    assert!((2..=3).contains(&connects), "{connects} connections in 3 s");
    let superseded = m1.connections_superseded() + m2.connections_superseded();
    assert!((1..=2).contains(&superseded), "{superseded}");
    assert_eq!(pm.connections_superseded(), 0);

    // Two distinct nodes dialling each other at once.
    let (b, _rb, bm) = with_metrics(config(
        TlsIdentity::generate().unwrap(),
        Some(key(3)),
        vec![p_addr],
    ));
    p.add_peer(b.local_addr().unwrap());
    let b_id = b.local_peer_id();
    wait_until(&mut rp, || p.peers().iter().any(|x| x.id == b_id)).await;
    assert_eq!(bm.connections_superseded(), 0);
    assert_eq!(pm.connections_superseded(), 0);
    for t in [p, a1, a2, b] {
        t.shutdown().await;
    }
}

/// The peer's side of a copied identity: an incarnation it superseded
/// connecting again cannot be a restart (a restarted process draws a new
/// incarnation), so two processes present that identity; the peer counts
/// it (and warns). The restart test above is the negative control: its new
/// incarnation replaces a dead one and counts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_tells_two_processes_behind_one_identity() {
    let pc = config(TlsIdentity::generate().unwrap(), Some(key(1)), vec![]);
    let pm = pc.metrics.clone();
    let (p, mut rp) = Transport::start(pc).unwrap();
    let twin_tls = TlsIdentity::generate().unwrap();
    // The test config's 500 ms backoff_max: the copies come back quickly.
    let (a1, _r1) = Transport::start(config(
        twin_tls.clone(),
        Some(key(2)),
        vec![p.local_addr().unwrap()],
    ))
    .unwrap();
    let (a2, _r2) = Transport::start(config(
        twin_tls,
        Some(key(2)),
        vec![p.local_addr().unwrap()],
    ))
    .unwrap();
    wait_until(&mut rp, || pm.peer_copies_seen() >= 1).await;
    for t in [p, a1, a2] {
        t.shutdown().await;
    }
}
