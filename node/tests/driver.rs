//! The executor against real storage and a real QUIC peer: when a peer
//! receives a signed vote, the signing state that allowed it is already on
//! disk (its file), and so is the WAL record of the vote.

use std::sync::Arc;
use std::time::Duration;

use agora_node::metrics::Metrics;
use agora_node::runner::{Executor, NodeStore, restore_signing_state};
use agora_node::storage::Storage;
use agora_node::storage::signing_file::SigningFile;
use agora_node::transport::{TlsIdentity, Transport, TransportConfig, TransportEvent};
use agora_proto::v1::{PeerMessage, Vote, peer_message::Kind};
use agora_validator::consensus::{SignStep, SigningState};
use agora_validator::engine::Action;
use agora_validator::{ChainId, SecretKey};
use tokio::sync::mpsc;
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_state_is_durable_before_the_vote_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::open(dir.path().join("db")).unwrap());
    let chain = ChainId::new("drv").unwrap();
    let key = |b: u8| SecretKey::from_seed(&[b; 32]).unwrap();
    let local = "127.0.0.1:0".parse().unwrap();
    let (a, _ra) = Transport::start(TransportConfig::new(
        local,
        chain.clone(),
        [0; 32],
        TlsIdentity::generate().unwrap(),
        Some(key(1)),
    ))
    .unwrap();
    let mut bcfg = TransportConfig::new(
        local,
        chain,
        [0; 32],
        TlsIdentity::generate().unwrap(),
        Some(key(2)),
    );
    bcfg.peers = vec![a.local_addr().unwrap()];
    let (b, mut rb) = Transport::start(bcfg).unwrap();
    timeout(Duration::from_secs(20), async {
        while a.peers().is_empty() || b.peers().is_empty() {
            let _ = timeout(Duration::from_millis(100), rb.recv()).await;
        }
    })
    .await
    .unwrap();

    let (tx, _timers) = mpsc::channel(4);
    let file = SigningFile::new(
        dir.path().join("signing_state.json"),
        ChainId::new("drv").unwrap(),
        key(1).public_key(),
    );
    let store = NodeStore::new(storage.clone(), file.clone());
    let mut ex = Executor::new(store, a.clone(), Metrics::new(), tx);
    for h in 1..=5u64 {
        let s = SigningState {
            height: h,
            round: 0,
            step: SignStep::Precommit,
            signed_hash: [h as u8; 32],
            value: [h as u8; 32],
            locked: None,
        };
        let v = Vote {
            vote_type: 2,
            height: h,
            ..Default::default()
        };
        let wal = Action::Wal(agora_validator::consensus::Input::Vote(v.clone()));
        for action in [
            wal,
            Action::PersistSigningState(s),
            Action::BroadcastVote(v),
        ] {
            ex.execute(action).unwrap();
        }
        let got = timeout(Duration::from_secs(20), async {
            loop {
                if let Some(TransportEvent::Message {
                    message:
                        PeerMessage {
                            kind: Some(Kind::Vote(v)),
                        },
                    ..
                }) = rb.recv().await
                {
                    return v;
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(got.height, h);
        // At arrival, the state that allowed signing it is in its file, and
        // the vote's WAL record (appended before it, made durable by it) is
        // in the store.
        assert_eq!(restore_signing_state(&storage, &file).unwrap(), Some(s));
        assert_eq!(storage.wal_records().unwrap().last().unwrap().0, h);
    }
    a.shutdown().await;
    b.shutdown().await;
}
