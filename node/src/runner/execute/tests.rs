use super::*;
use agora_proto::v1::Vote;
use agora_validator::consensus::{RejectReason, SignStep, TimeoutStep};
use agora_validator::engine::BlockError;
use std::sync::Mutex;

#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct FakeStore<'a> {
    log: &'a Log,
    fail: bool,
}

impl DurableStore for FakeStore<'_> {
    fn persist_signing_state(&self, s: &SigningState, wal_first: bool) -> Result<(), StorageError> {
        if self.fail {
            return Err(StorageError::Invalid("disk full".into()));
        }
        if wal_first {
            self.log.push("sync wal".into());
        }
        self.log.push(format!("persist {}", s.height));
        Ok(())
    }
    fn append_wal(&self, height: u64, _: &[u8]) -> Result<(), StorageError> {
        self.log.push(format!("wal {height}"));
        Ok(())
    }
    fn persist_evidence(&self, _: &Hash, _: &pb::Evidence) -> Result<bool, StorageError> {
        self.log.push("evidence".into());
        Ok(true)
    }
}

impl Network for &Log {
    fn broadcast(&self, msg: &PeerMessage) -> usize {
        if let Some(Kind::Vote(v)) = &msg.kind {
            self.push(format!(
                "vote {} {}",
                v.height,
                hex::encode(&v.block_hash[..1])
            ));
        }
        1
    }
    fn send(&self, _: PeerId, msg: &PeerMessage) {
        if let Some(Kind::BlockRequest(r)) = &msg.kind {
            self.push(format!("request {}", r.from_height));
        }
    }
    fn charge(&self, _: PeerId, reason: ChargeReason, detail: String) {
        self.push(format!("charge {} {detail}", reason.label()));
    }
}

fn state(h: u64) -> SigningState {
    SigningState {
        height: h,
        round: 0,
        step: SignStep::Prevote,
        signed_hash: [1; 32],
        value: [2; 32],
        locked: None,
    }
}

fn vote(h: u64) -> Vote {
    Vote {
        vote_type: VoteType::Prevote as i32,
        height: h,
        block_hash: vec![0xab; 32],
        ..Default::default()
    }
}

use agora_validator::VoteType;

fn executor<'a>(log: &'a Log, fail: bool) -> Executor<FakeStore<'a>, &'a Log> {
    let (tx, _rx) = mpsc::channel(4);
    Executor::new(FakeStore { log, fail }, log, Metrics::new(), tx)
}

fn run<S: DurableStore, N: Network>(
    ex: &mut Executor<S, N>,
    actions: Vec<Action<PeerId>>,
) -> Result<(), ExecError> {
    for a in actions {
        ex.execute(a)?;
    }
    Ok(())
}

#[tokio::test]
async fn persists_before_sending_and_stops_when_persisting_fails() {
    let log = Log::default();
    let actions = || {
        vec![
            Action::Wal(agora_validator::consensus::Input::Vote(vote(1))),
            Action::PersistSigningState(state(1)),
            Action::BroadcastVote(vote(1)),
            Action::PersistSigningState(state(2)),
            Action::BroadcastVote(vote(2)),
        ]
    };
    run(&mut executor(&log, false), actions()).unwrap();
    assert_eq!(
        log.take(),
        vec!["wal 1", "persist 1", "vote 1 ab", "persist 2", "vote 2 ab"]
    );
    let err = run(&mut executor(&log, true), actions());
    assert!(matches!(err, Err(ExecError::Persist(_))));
    assert_eq!(
        log.take(),
        vec!["wal 1"],
        "nothing may be sent after a failed persist"
    );
}

#[tokio::test]
async fn the_wal_is_synced_before_precommits_and_a_second_prevote_of_a_height() {
    let log = Log::default();
    let at = |h: u64, round: u32, step: SignStep| {
        Action::PersistSigningState(SigningState {
            round,
            step,
            ..state(h)
        })
    };
    run(
        &mut executor(&log, false),
        vec![
            at(1, 0, SignStep::Prevote),
            at(1, 0, SignStep::Precommit),
            at(2, 0, SignStep::Prevote),
            // A skip to round 2 before precommitting in round 0.
            at(2, 2, SignStep::Prevote),
        ],
    )
    .unwrap();
    assert_eq!(
        log.take(),
        vec![
            "persist 1",
            "sync wal",
            "persist 1",
            "persist 2",
            "sync wal",
            "persist 2"
        ]
    );
    // Restarted with a prevote of height 2 in its file: the first
    // signature at that height syncs the WAL first.
    let restored = SigningState {
        step: SignStep::Prevote,
        ..state(2)
    };
    let mut ex = executor(&log, false).with_restored_signing(Some(&restored));
    run(&mut ex, vec![at(2, 1, SignStep::Prevote)]).unwrap();
    assert_eq!(log.take(), vec!["sync wal", "persist 2"]);
}

#[tokio::test]
async fn every_fault_is_counted_and_charged_with_its_reason() {
    let log = Log::default();
    let (tx, _rx) = mpsc::channel(4);
    let metrics = Metrics::new();
    let mut ex = Executor::new(
        FakeStore {
            log: &log,
            fail: false,
        },
        &log,
        metrics.clone(),
        tx,
    );
    let peer = PeerId([1; 32]);
    run(
        &mut ex,
        vec![
            Action::Penalize {
                peer,
                fault: PeerFault::Consensus(RejectReason::Malformed("vote")),
            },
            Action::Penalize {
                peer,
                fault: PeerFault::BadBlock(BlockError::NoHeader),
            },
            Action::Penalize {
                peer,
                fault: PeerFault::Unsolicited,
            },
            Action::RequestBlocks {
                peer,
                from: 7,
                count: 3,
            },
        ],
    )
    .unwrap();
    let got = log.take();
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got[0].starts_with("charge consensus "), "{got:?}");
    assert!(got[1].starts_with("charge bad_block bad block"), "{got:?}");
    assert!(got[2].starts_with("charge unsolicited "), "{got:?}");
    assert_eq!(got[3], "request 7");
    assert_eq!(metrics.penalties(PenaltyReason::Consensus), 1);
    assert_eq!(metrics.penalties(PenaltyReason::BadBlock), 1);
    assert_eq!(metrics.penalties(PenaltyReason::Unsolicited), 1);
    assert_eq!(metrics.penalties(PenaltyReason::FalseHeight), 0);
}

#[tokio::test]
async fn timeouts_fire() {
    let log = Log::default();
    let (tx, mut rx) = mpsc::channel(4);
    let mut ex = Executor::new(
        FakeStore {
            log: &log,
            fail: false,
        },
        &log,
        Metrics::new(),
        tx,
    );
    let t = Timeout {
        height: 3,
        round: 1,
        step: TimeoutStep::Propose,
    };
    run(
        &mut ex,
        vec![Action::ScheduleTimeout {
            timeout: t,
            duration_ms: 5,
        }],
    )
    .unwrap();
    let fired = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap();
    assert_eq!(fired, Some(t));
}

#[tokio::test]
async fn double_sign_once_sends_one_conflicting_prevote_even_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let key = agora_validator::SecretKey::from_seed(&[3; 32]).unwrap();
    let chain = agora_validator::ChainId::new("once").unwrap();
    let log = Log::default();
    {
        let storage = Arc::new(Storage::open(&path).unwrap());
        let d = DoubleSigner::once(key.clone(), chain.clone(), storage).unwrap();
        let mut ex = executor(&log, false).with_double_signer(d);
        let mut nil = vote(4);
        nil.block_hash = vec![0; 32];
        let votes = [vote(1), vote(2), nil, vote(3), vote(4), vote(5)];
        // Our own votes (only those get a twin).
        let me = agora_validator::Address::of(&key.public_key())
            .as_bytes()
            .to_vec();
        run(
            &mut ex,
            votes
                .into_iter()
                .map(|v| {
                    Action::BroadcastVote(Vote {
                        validator_address: me.clone(),
                        ..v
                    })
                })
                .collect(),
        )
        .unwrap();
    }
    // Heights 1 and 2 are too early and a nil prevote has no twin; at 3
    // the nil twin goes first, then the genuine vote; then never again.
    assert_eq!(
        log.take(),
        vec![
            "vote 1 ab",
            "vote 2 ab",
            "vote 4 00",
            "vote 3 00",
            "vote 3 ab",
            "vote 4 ab",
            "vote 5 ab"
        ]
    );
    let storage = Arc::new(Storage::open(&path).unwrap());
    let me = agora_validator::Address::of(&key.public_key())
        .as_bytes()
        .to_vec();
    let d = DoubleSigner::once(key, chain, storage).unwrap();
    let mut ex = executor(&log, false).with_double_signer(d);
    let ours = Vote {
        validator_address: me,
        ..vote(9)
    };
    run(&mut ex, vec![Action::BroadcastVote(ours)]).unwrap();
    assert_eq!(log.take(), vec!["vote 9 ab"], "once, also after a restart");
}
