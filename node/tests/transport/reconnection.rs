//! Connections that end and begin again: a restarted peer, simultaneous
//! dials, copies of one identity, two processes behind one identity.

use super::*;

/// Starts a transport on `addr` again, retrying while the old socket is
/// still being released (until [`DEADLINE`]).
async fn restart_on(
    addr: SocketAddr,
    mut cfg: TransportConfig,
) -> (Transport, Receiver<TransportEvent>) {
    cfg.listen = addr;
    let end = Instant::now() + DEADLINE;
    loop {
        match Transport::start(cfg.clone()) {
            Ok(x) => return x,
            Err(e) => {
                assert!(Instant::now() < end, "could not rebind {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
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
    let (b2, mut rb2) = restart_on(b_addr, config(tls_b.clone(), Some(kb.clone()), vec![])).await;
    wait_for(&mut ra, |e| {
        matches!(e, TransportEvent::Connected { peer, .. } if *peer == b_id).then_some(())
    })
    .await;
    a.broadcast(&filler_vote(9));
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
    // Settled: one connection on each side, and the same one (dialled by
    // one side, accepted by the other).
    let settled = || {
        let (pa, pb) = (a.peers(), b.peers());
        pa.len() == 1 && pb.len() == 1 && pa[0].outbound != pb[0].outbound
    };
    wait_until(&mut ra, settled).await;
    // Gossip is best effort while a duplicate is being closed: resend until
    // one copy arrives. A side may then be empty for a moment (the other
    // closed the one connection it held as the duplicate before its own
    // dial finished: the acceptor's Hello exchange ends half a round trip
    // before the dialler's), so settling is waited for again, not sampled.
    assert!(
        resend_until_received(&a, &mut rb, 100, DEADLINE).await,
        "no message got through"
    );
    wait_until(&mut ra, settled).await;
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
        let (b2, mut rb2) = restart_on(
            b_addr,
            config(tls_b.clone(), Some(kb.clone()), vec![a_addr]),
        )
        .await;
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

/// Stopping tells each connected peer at once, and does not wait out a dial
/// still in its handshake (whose draining period, with no RTT measured,
/// is about three seconds: quinn-rs/quinn#2147).
#[test]
fn shutdown_tells_peers_and_does_not_wait_for_a_dial_in_its_handshake() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A runs on a runtime of its own, dropped as soon as its shutdown
    // returns: what it had not sent by then is never sent.
    let a_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // A UDP socket that never answers: A's dial to it stays in its handshake.
    let silent = std::net::UdpSocket::bind(local()).unwrap();
    let long = |tls, k, peers| {
        let mut c = config(tls, Some(k), peers);
        // Far longer than the deadline: only A's close frame can end the
        // connection at B in time, and only A's shutdown the silent dial.
        c.idle_timeout = Duration::from_secs(60);
        c.handshake_timeout = Duration::from_secs(60);
        c
    };
    let (b, mut rb) = rt
        .block_on(async {
            Transport::start(long(TlsIdentity::generate().unwrap(), key(2), vec![]))
        })
        .unwrap();
    let peers = vec![b.local_addr().unwrap(), silent.local_addr().unwrap()];
    let (a, mut ra) = a_rt
        .block_on(async { Transport::start(long(TlsIdentity::generate().unwrap(), key(1), peers)) })
        .unwrap();
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    // Both ends hold the connection (each registers when its own side of
    // the Hello exchange ends).
    rt.block_on(async {
        wait_for(&mut rb, |e| {
            matches!(e, TransportEvent::Connected { peer, .. } if *peer == a_id).then_some(())
        })
        .await;
        wait_for(&mut ra, |e| {
            matches!(e, TransportEvent::Connected { peer, .. } if *peer == b_id).then_some(())
        })
        .await;
    });

    let t0 = std::time::Instant::now();
    a_rt.block_on(a.shutdown());
    let took = t0.elapsed();
    a_rt.shutdown_background();
    // Before, `wait_idle` waited for the silent dial until its 2 s cap.
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
    rt.block_on(async {
        wait_for(&mut rb, |e| {
            matches!(e, TransportEvent::Disconnected { peer } if *peer == a_id).then_some(())
        })
        .await;
        b.shutdown().await;
    });
}
