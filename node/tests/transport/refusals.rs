//! What a hostile or mismatched peer meets: a Hello whose signature does not
//! bind its identity, oversized or garbage frames, another chain or genesis.

use super::*;

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
    send_raw(&conn, &wire::encode_frame(&filler_vote(3))).await;
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
    let mut big = filler_vote(0);
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
