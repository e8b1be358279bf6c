//! The consensus driver — first increment: carrying out the core's
//! [`Output`]s safely, and turning transport events into [`Input`]s.
//!
//! What is here: the output executor with the persist-before-send rule, timer
//! scheduling, evidence storage and gossip, restoring the signing state at
//! start, and the admission rule for network inputs. What is not yet here
//! (it needs the ledger wired in): answering `RequestProposal` /
//! `ValidateBlock`, committing `Decided` blocks, `StartHeight`, the WAL
//! replay, and block sync. Those come back to the caller as [`HostRequest`]s.

use std::sync::Arc;
use std::time::Duration;

use agora_proto::v1::{PeerMessage, peer_message::Kind};
use agora_validator::consensus::{Decision, Input, Output, SigningState, Timeout};
use agora_validator::{Height, Round};
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use crate::metrics::Metrics;
use crate::storage::{Storage, StorageError};
use crate::transport::{PeerId, PeerIdentity, Transport, TransportEvent};

/// Why the driver must stop.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The signing state could not be made durable. Nothing signed after it
    /// was sent; the node must stop rather than risk equivocation.
    #[error("persisting the signing state failed; refusing to send what was signed: {0}")]
    Persist(StorageError),
    /// The stored signing state does not decode.
    #[error("stored signing state is corrupt: {0}")]
    CorruptSigningState(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Where the executor makes things durable.
pub trait DurableStore {
    /// Makes the signing state durable before returning (fsync).
    fn persist_signing_state(&self, s: &SigningState) -> Result<(), StorageError>;
    /// Stores evidence; true if new.
    fn store_evidence(&self, ev: &agora_proto::v1::Evidence) -> Result<bool, StorageError>;
}

impl DurableStore for Storage {
    fn persist_signing_state(&self, s: &SigningState) -> Result<(), StorageError> {
        // Durability promise: Storage::save_signing_state commits with
        // Durability::Immediate (see storage/mod.rs).
        self.save_signing_state(&s.to_bytes())
    }
    fn store_evidence(&self, ev: &agora_proto::v1::Evidence) -> Result<bool, StorageError> {
        self.put_evidence(ev)
    }
}

impl<T: DurableStore> DurableStore for Arc<T> {
    fn persist_signing_state(&self, s: &SigningState) -> Result<(), StorageError> {
        (**self).persist_signing_state(s)
    }
    fn store_evidence(&self, ev: &agora_proto::v1::Evidence) -> Result<bool, StorageError> {
        (**self).store_evidence(ev)
    }
}

/// Where the executor sends messages.
pub trait Gossip {
    /// Sends to every connected peer.
    fn broadcast(&self, msg: &PeerMessage) -> usize;
}

impl Gossip for Transport {
    fn broadcast(&self, msg: &PeerMessage) -> usize {
        Transport::broadcast(self, msg)
    }
}

/// Requests the executor cannot answer itself: they need the ledger and the
/// chain state, and are answered by the caller with the named `Input`.
#[derive(Debug, Clone)]
pub enum HostRequest {
    /// Build a block template → `Input::ProposalContent`.
    Propose {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
    },
    /// Check a block's content → `Input::BlockValidity`.
    Validate {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// The block.
        block: Box<agora_proto::v1::Block>,
    },
    /// Execute and store the decided block, then `Input::StartHeight` for the next.
    Commit(Box<Decision>),
}

/// Carries out the core's outputs in order.
pub struct Executor<S, G> {
    store: S,
    gossip: G,
    metrics: Arc<Metrics>,
    timers: mpsc::Sender<Input>,
    double_sign: Option<(agora_validator::SecretKey, agora_validator::ChainId)>,
}

impl<S: DurableStore, G: Gossip> Executor<S, G> {
    /// An executor; fired timeouts are sent as `Input::TimeoutFired` on `timers`.
    pub fn new(store: S, gossip: G, metrics: Arc<Metrics>, timers: mpsc::Sender<Input>) -> Self {
        Self {
            store,
            gossip,
            metrics,
            timers,
            double_sign: None,
        }
    }

    /// Testnet only (`testing.double_sign`): beside every non-nil prevote,
    /// also send a conflicting nil prevote signed with `key`, on purpose.
    pub fn with_double_sign(
        mut self,
        key: agora_validator::SecretKey,
        chain: agora_validator::ChainId,
    ) -> Self {
        self.double_sign = Some((key, chain));
        self
    }

    fn conflicting_prevote(&self, v: &agora_proto::v1::Vote) -> Option<agora_proto::v1::Vote> {
        use agora_validator::VoteType;
        let (key, chain) = self.double_sign.as_ref()?;
        if v.vote_type != VoteType::Prevote as i32 || v.block_hash.iter().all(|b| *b == 0) {
            return None;
        }
        let nil = [0u8; 32];
        let sig = key.sign(&agora_validator::signing::vote_bytes(
            chain,
            VoteType::Prevote,
            v.height,
            v.round,
            &nil,
        ));
        tracing::warn!(
            height = v.height,
            round = v.round,
            "testing.double_sign: sending a conflicting nil prevote"
        );
        Some(agora_proto::v1::Vote {
            block_hash: nil.to_vec(),
            signature: sig.to_bytes().to_vec(),
            ..v.clone()
        })
    }

    /// Executes `outputs` in order and returns what the caller must answer.
    ///
    /// SAFETY RULE (DESIGN §6, consensus contract): a `PersistSigningState`
    /// is durable before any later output is looked at; if persisting fails,
    /// execution stops there with an error and nothing after it — in
    /// particular no signed vote or proposal — leaves the node.
    pub fn execute(&self, outputs: Vec<Output>) -> Result<Vec<HostRequest>, DriverError> {
        let mut requests = Vec::new();
        for out in outputs {
            match out {
                Output::PersistSigningState(s) => {
                    self.store
                        .persist_signing_state(&s)
                        .map_err(DriverError::Persist)?;
                }
                Output::BroadcastProposal(p) => {
                    self.gossip.broadcast(&PeerMessage {
                        kind: Some(Kind::Proposal(*p)),
                    });
                }
                Output::BroadcastVote(v) => {
                    if let Some(twin) = self.conflicting_prevote(&v) {
                        self.gossip.broadcast(&PeerMessage {
                            kind: Some(Kind::Vote(twin)),
                        });
                    }
                    self.gossip.broadcast(&PeerMessage {
                        kind: Some(Kind::Vote(v)),
                    });
                }
                Output::ScheduleTimeout {
                    timeout,
                    duration_ms,
                } => self.schedule(timeout, duration_ms),
                Output::RequestProposal { height, round } => {
                    requests.push(HostRequest::Propose { height, round });
                }
                Output::ValidateBlock {
                    height,
                    round,
                    block,
                } => requests.push(HostRequest::Validate {
                    height,
                    round,
                    block,
                }),
                Output::Decided(d) => requests.push(HostRequest::Commit(d)),
                Output::EvidenceFound(ev) => {
                    // Evidence is re-derivable and re-gossiped, so its write
                    // need not be durable on its own.
                    if self.store.store_evidence(&ev)? {
                        Metrics::inc(&self.metrics.evidence_seen);
                    }
                    self.gossip.broadcast(&PeerMessage {
                        kind: Some(Kind::Evidence(ev)),
                    });
                }
                Output::Rejected(r) => debug!(reason = %r, "consensus rejected an input"),
            }
        }
        Ok(requests)
    }

    fn schedule(&self, timeout: Timeout, duration_ms: u64) {
        let tx = self.timers.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(duration_ms)).await;
            // The driver may have stopped; a late timeout is then moot.
            let _ = tx.send(Input::TimeoutFired(timeout)).await;
        });
    }
}

/// The signing state persisted before the last stop, to hand to `Consensus::new`.
pub fn restore_signing_state(storage: &Storage) -> Result<Option<SigningState>, DriverError> {
    storage
        .signing_state()?
        .map(|b| {
            SigningState::from_bytes(&b)
                .map_err(|e| DriverError::CorruptSigningState(e.to_string()))
        })
        .transpose()
}

/// Turns a transport event into a consensus input, if it is one.
///
/// Only peers that proved a validator identity in the Hello feed proposals
/// and votes to consensus; a full node's copies are ignored (the core still
/// verifies every signature, so this is about who may speak, not about trust
/// in the content).
pub fn consensus_input(ev: TransportEvent) -> Option<(PeerId, Input)> {
    let TransportEvent::Message {
        peer,
        identity,
        message,
    } = ev
    else {
        return None;
    };
    if identity == PeerIdentity::FullNode {
        if matches!(message.kind, Some(Kind::Vote(_)) | Some(Kind::Proposal(_))) {
            warn!(%peer, "vote or proposal from a full node ignored");
        }
        return None;
    }
    match message.kind? {
        Kind::Proposal(p) => Some((peer, Input::Proposal(p))),
        Kind::Vote(v) => Some((peer, Input::Vote(v))),
        _ => None,
    }
}

/// Logs a fatal driver error (the node must stop).
pub fn report_fatal(e: &DriverError) {
    error!(error = %e, "consensus driver stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::Vote;
    use agora_validator::consensus::SignStep;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    struct FakeStore<'a> {
        log: &'a Log,
        fail: bool,
    }

    impl DurableStore for FakeStore<'_> {
        fn persist_signing_state(&self, s: &SigningState) -> Result<(), StorageError> {
            if self.fail {
                return Err(StorageError::Invalid("disk full".into()));
            }
            self.log
                .0
                .lock()
                .unwrap()
                .push(format!("persist {}", s.height));
            Ok(())
        }
        fn store_evidence(&self, _: &agora_proto::v1::Evidence) -> Result<bool, StorageError> {
            Ok(true)
        }
    }

    impl Gossip for &Log {
        fn broadcast(&self, msg: &PeerMessage) -> usize {
            if let Some(Kind::Vote(v)) = &msg.kind {
                self.0.lock().unwrap().push(format!("vote {}", v.height));
            }
            1
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
            height: h,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn persists_before_sending_and_stops_when_persisting_fails() {
        let log = Log::default();
        let (tx, _rx) = mpsc::channel(4);
        let ex = Executor::new(
            FakeStore {
                log: &log,
                fail: false,
            },
            &log,
            Metrics::new(),
            tx.clone(),
        );
        let outs = vec![
            Output::PersistSigningState(state(1)),
            Output::BroadcastVote(vote(1)),
            Output::PersistSigningState(state(2)),
            Output::BroadcastVote(vote(2)),
        ];
        ex.execute(outs.clone()).unwrap();
        assert_eq!(
            *log.0.lock().unwrap(),
            vec!["persist 1", "vote 1", "persist 2", "vote 2"]
        );

        let log2 = Log::default();
        let ex = Executor::new(
            FakeStore {
                log: &log2,
                fail: true,
            },
            &log2,
            Metrics::new(),
            tx,
        );
        assert!(matches!(ex.execute(outs), Err(DriverError::Persist(_))));
        assert!(
            log2.0.lock().unwrap().is_empty(),
            "nothing may be sent after a failed persist"
        );
    }

    #[tokio::test]
    async fn timeouts_fire_and_full_nodes_do_not_vote() {
        let log = Log::default();
        let (tx, mut rx) = mpsc::channel(4);
        let ex = Executor::new(
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
            step: agora_validator::consensus::TimeoutStep::Propose,
        };
        ex.execute(vec![Output::ScheduleTimeout {
            timeout: t,
            duration_ms: 5,
        }])
        .unwrap();
        let fired = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap();
        assert!(matches!(fired, Some(Input::TimeoutFired(x)) if x == t));

        let msg = PeerMessage {
            kind: Some(Kind::Vote(vote(1))),
        };
        let from_full = TransportEvent::Message {
            peer: PeerId([1; 32]),
            identity: PeerIdentity::FullNode,
            message: msg.clone(),
        };
        assert!(consensus_input(from_full).is_none());
        let key = agora_validator::SecretKey::from_seed(&[1; 32]).unwrap();
        let from_validator = TransportEvent::Message {
            peer: PeerId([1; 32]),
            identity: PeerIdentity::Validator {
                public_key: key.public_key(),
                address: agora_validator::Address::of(&key.public_key()),
            },
            message: msg,
        };
        assert!(matches!(
            consensus_input(from_validator),
            Some((_, Input::Vote(_)))
        ));
    }
}
