//! Transaction signatures, checked off the consensus loop and in batches.
//!
//! Checked one by one on the runner's loop, a stream of gossiped
//! transactions delayed proposals and votes past their timeouts (with BLS
//! account signatures the bench at 200 tx/s fell to about one height per
//! second). Here a dedicated thread takes what has queued up, decodes it
//! (each account's Ed25519 key is decompressed once and cached), and checks
//! all signatures in one randomised Ed25519 batch (ZIP-215: the batch
//! accepts exactly what single checks accept), falling back to single
//! checks only when the batch fails. The runner then admits the decoded,
//! verified transactions to the mempool with the state checks alone, and
//! the mempool keeps them decoded: a transaction is decoded and verified
//! once per node.
//!
//! The queue is bounded: when it is full, gossip is dropped (peers re-send
//! nothing, but the sender's node still has the transaction) and a client
//! is told to retry.
//!
//! Every node relays what it admits, so a transaction reaches a node once
//! from each peer, and the copies often arrive while the first is still
//! queued here (the mempool's duplicate check only sees what was already
//! admitted). The verifier therefore remembers the hashes it holds, and a
//! peer's copy of one of them is dropped before it is queued: under load
//! this cut the verification time per committed transaction from 88 µs to
//! about 51 µs (a batch of 64 costs 43 µs per signature).

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;

use agora_proto::v1 as pb;
use agora_validator::ChainId;
use agora_validator::crypto::AccountKeyCache;
use agora_validator::ledger::DecodedTx;
use agora_validator::ledger::tx::{TxError, decode_cached, verify_signatures};
use tokio::sync::{mpsc, oneshot};

use crate::rpc::ApiError;
use crate::transport::PeerId;
use agora_validator::Hash;

/// Most transactions checked in one batch. Larger batches do not pay
/// here: criterion `ed25519/batch_verify_per_signature` measured 32, 31,
/// 30, 29, 34 and 31 µs per signature at 32 to 1,024 (2026-12-04), while a
/// failed batch (a bad signature) costs single checks of all it holds.
const MAX_BATCH: usize = 128;
/// Most decoded account keys kept (`AccountKeyCache::ENTRY_BYTES` each,
/// counted in `memory::node_terms`).
pub(crate) const KEY_CACHE: usize = 100_000;

/// A transaction to check, with its hash (computed by the mempool's
/// precheck) and who waits for the verdict.
type Job = (pb::Transaction, Hash, Origin);

/// Who is waiting for a transaction's verdict.
#[derive(Debug)]
pub enum Origin {
    /// A peer gossiped it: admit it (and gossip it on) if valid; if not,
    /// drop it and charge the peer.
    Peer(PeerId),
    /// A client submitted it and waits for the hash or an error.
    Client(oneshot::Sender<Result<Hash, ApiError>>),
}

/// A transaction whose signature was checked.
#[derive(Debug)]
pub struct Checked {
    /// The transaction.
    pub tx: pb::Transaction,
    /// Its hash, as submitted.
    pub hash: Hash,
    /// Who waits for it.
    pub origin: Origin,
    /// The decoded transaction if it decodes and its signature is valid,
    /// else why not.
    pub verdict: Result<DecodedTx, TxError>,
}

/// Why [`TxVerifier::submit`] did not queue a transaction; the origin is
/// handed back so that a waiting client can be answered.
#[derive(Debug)]
pub enum NotQueued {
    /// The queue is full (or the thread is gone).
    Busy(Origin),
    /// A peer's copy of a transaction already queued or being checked.
    AlreadyChecking(Origin),
}

/// The sending side of the verifier; dropping it stops the thread.
pub struct TxVerifier {
    jobs: std_mpsc::SyncSender<Job>,
    /// Hashes queued or being checked, with how many copies (a client may
    /// submit what a peer already sent). Every entry is a job in the queue,
    /// in the thread's current batch or a verdict not yet handed to
    /// [`TxVerifier::finished`], so the map holds at most the queue's
    /// capacity + `MAX_BATCH` + the verdict channel's capacity entries
    /// (about 8,300 × 40 B with the runner's 4,096: inside the 1 KiB per
    /// transaction that `memory::worst_case` allows for these jobs).
    in_flight: HashMap<Hash, u32>,
}

impl TxVerifier {
    /// Starts the verifier thread for `chain` with room for `capacity`
    /// queued transactions; verdicts arrive on the returned receiver.
    pub fn start(
        chain: ChainId,
        capacity: usize,
    ) -> std::io::Result<(Self, mpsc::Receiver<Checked>)> {
        let (jobs, rx) = std_mpsc::sync_channel(capacity.max(1));
        let (out, verdicts) = mpsc::channel(capacity.max(1));
        std::thread::Builder::new()
            .name("tx-verifier".into())
            .spawn(move || run(chain, rx, out))?;
        let in_flight = HashMap::new();
        Ok((TxVerifier { jobs, in_flight }, verdicts))
    }

    /// Queues a transaction. A peer's copy of one already held is dropped
    /// (a client's is queued: it waits for its own verdict); if the queue
    /// is full (or the thread is gone) the transaction is dropped. Either
    /// way its origin is handed back for an answer.
    pub fn submit(
        &mut self,
        tx: pb::Transaction,
        hash: Hash,
        origin: Origin,
    ) -> Result<(), NotQueued> {
        if matches!(origin, Origin::Peer(_)) && self.in_flight.contains_key(&hash) {
            return Err(NotQueued::AlreadyChecking(origin));
        }
        match self.jobs.try_send((tx, hash, origin)) {
            Ok(()) => {
                *self.in_flight.entry(hash).or_default() += 1;
                Ok(())
            }
            Err(
                std_mpsc::TrySendError::Full((_, _, o))
                | std_mpsc::TrySendError::Disconnected((_, _, o)),
            ) => Err(NotQueued::Busy(o)),
        }
    }

    /// Forgets one copy of `hash` once its verdict was taken; call it for
    /// every [`Checked`] received.
    pub fn finished(&mut self, hash: &Hash) {
        if let Some(n) = self.in_flight.get_mut(hash) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(hash);
            }
        } else {
            debug_assert!(false, "a verdict for a transaction never submitted");
        }
    }
}

fn run(chain: ChainId, jobs: std_mpsc::Receiver<Job>, out: mpsc::Sender<Checked>) {
    let mut keys = AccountKeyCache::new(KEY_CACHE);
    // Blocks for the first job, then takes whatever else is already queued.
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        for c in check_batch(&chain, &mut keys, batch) {
            if out.blocking_send(c).is_err() {
                return; // the runner is gone
            }
        }
    }
}

/// Decodes and verifies a batch; one verdict per job, in order.
fn check_batch(chain: &ChainId, keys: &mut AccountKeyCache, batch: Vec<Job>) -> Vec<Checked> {
    let decoded: Vec<_> = batch
        .iter()
        .map(|(tx, hash, _)| decode_cached(chain, tx, *hash, keys))
        .collect();
    let ok: Vec<_> = decoded.iter().filter_map(|d| d.as_ref().ok()).collect();
    // An unpredictable seed for the batch's scalars, so invalid signatures
    // cannot be crafted to cancel out.
    let seed: [u8; 32] = rand::random();
    let mut sig_ok = verify_signatures(&ok, &seed).into_iter();
    batch
        .into_iter()
        .zip(decoded)
        .map(|((tx, hash, origin), d)| {
            let verdict = match d {
                Err(e) => Err(e),
                Ok(d) if sig_ok.next().unwrap_or(false) => Ok(d),
                Ok(_) => Err(TxError::BadSignature),
            };
            Checked {
                tx,
                hash,
                origin,
                verdict,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_validator::AccountSecretKey;

    fn tx(seed: u8, nonce: u64) -> pb::Transaction {
        let sk = AccountSecretKey::from_seed(&[seed; 32]);
        agora_validator::ledger::tx::sign(
            &sk,
            &ChainId::new("verifier-test").expect("chain"),
            pb::TxBody {
                chain_id: "verifier-test".into(),
                nonce,
                kind: Some(pb::tx_body::Kind::Transfer(pb::Transfer {
                    to: vec![9; 20],
                    amount: "1".into(),
                })),
                fee: "1000".into(),
            },
        )
    }

    /// Good transactions pass, a forged signature and an undecodable
    /// transaction fail, each with its own verdict, in submission order.
    #[tokio::test]
    async fn batches_give_each_transaction_its_own_verdict() {
        let chain = ChainId::new("verifier-test").expect("chain");
        let (mut v, mut out) = TxVerifier::start(chain, 16).expect("thread");
        let mut forged = tx(2, 0);
        forged.signature = tx(3, 0).signature;
        let garbage = pb::Transaction::default();
        let jobs = [tx(1, 0), forged, tx(1, 1), garbage];
        for j in jobs.iter().cloned() {
            let hash = agora_validator::block::tx_hash(&j);
            v.submit(j, hash, Origin::Peer(PeerId([0; 32])))
                .expect("room");
        }
        let mut verdicts = Vec::new();
        while verdicts.len() < jobs.len() {
            let c = out.recv().await.expect("verdict");
            assert_eq!(c.hash, agora_validator::block::tx_hash(&c.tx));
            v.finished(&c.hash);
            if let Ok(d) = &c.verdict {
                assert_eq!(d.hash, agora_validator::block::tx_hash(&c.tx));
            }
            verdicts.push((c.tx, c.verdict.is_ok()));
        }
        let expected: Vec<_> = jobs
            .iter()
            .cloned()
            .zip([true, false, true, false])
            .collect();
        assert_eq!(verdicts, expected);
        assert!(v.in_flight.is_empty(), "every verdict was taken");
    }

    #[test]
    fn a_full_queue_gives_the_transaction_back() {
        let (jobs, _rx) = std_mpsc::sync_channel(1);
        let mut v = TxVerifier {
            jobs,
            in_flight: HashMap::new(),
        };
        let (a, b) = (tx(1, 0), tx(1, 1));
        let (ha, hb) = (
            agora_validator::block::tx_hash(&a),
            agora_validator::block::tx_hash(&b),
        );
        assert!(v.submit(a, ha, Origin::Peer(PeerId([0; 32]))).is_ok());
        assert!(matches!(
            v.submit(b, hb, Origin::Peer(PeerId([0; 32]))),
            Err(NotQueued::Busy(Origin::Peer(_)))
        ));
    }

    /// A peer's copy of a transaction still being checked is not queued
    /// again (negative control: once its verdict was taken, a copy is); a
    /// client's copy always is, since the client waits for a verdict.
    #[test]
    fn a_copy_in_flight_is_checked_once() {
        let (jobs, rx) = std_mpsc::sync_channel(8);
        let mut v = TxVerifier {
            jobs,
            in_flight: HashMap::new(),
        };
        let a = tx(1, 0);
        let h = agora_validator::block::tx_hash(&a);
        let peer = || Origin::Peer(PeerId([1; 32]));
        assert!(v.submit(a.clone(), h, peer()).is_ok());
        assert!(matches!(
            v.submit(a.clone(), h, peer()),
            Err(NotQueued::AlreadyChecking(Origin::Peer(_)))
        ));
        let (reply, _wait) = oneshot::channel();
        assert!(v.submit(a.clone(), h, Origin::Client(reply)).is_ok());
        assert_eq!(rx.try_iter().count(), 2, "the first copy and the client's");
        v.finished(&h);
        assert!(
            matches!(
                v.submit(a.clone(), h, peer()),
                Err(NotQueued::AlreadyChecking(_))
            ),
            "the client's copy is still in flight"
        );
        v.finished(&h);
        assert!(v.submit(a, h, peer()).is_ok(), "nothing in flight any more");
        assert_eq!(v.in_flight.get(&h), Some(&1));
    }
}
