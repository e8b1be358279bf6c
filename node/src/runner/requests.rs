//! API writes and transaction admission.
//!
//! A transaction (from a client or gossiped) passes the mempool's cheap
//! checks, then its signature is checked on the verifier thread; the
//! verdict comes back to [`Runner::on_checked`], which admits the decoded
//! form with the ledger's state checks alone and gossips it in a batch.
//! Evidence from a client arrives with its signatures already checked on a
//! worker thread (`Api::check_evidence`); the engine's pool takes it with
//! state checks only.

use agora_proto::v1 as pb;
use agora_validator::Hash;
use agora_validator::engine::PoolError;
use agora_validator::ledger::{DecodedTx, Ledger, TxError, recheck};

use super::{RunError, Runner};
use crate::api::ApiRequest;
use crate::mempool::{Admission, CheckMode, MempoolError, api_error};
use crate::metrics::{BudgetKind, Metrics};
use crate::rpc::ApiError;
use crate::transport::ChargeReason;
use crate::tx_verifier::{Checked, NotQueued, Origin};

impl Runner {
    pub(super) fn on_api(&mut self, req: ApiRequest) -> Result<(), RunError> {
        match req {
            ApiRequest::SubmitTx { tx, reply } => {
                self.verify_then_admit(tx, Origin::Client(reply));
            }
            ApiRequest::SubmitEvidence { evidence, reply } => {
                let res = match self.engine.submit_checked_evidence(evidence) {
                    Ok((id, actions)) => {
                        // Persisted (fsync) before the client hears "accepted".
                        self.execute(actions)?;
                        Ok(id)
                    }
                    Err(e @ (PoolError::Full(_) | PoolError::StaleCheck(_))) => {
                        Err(ApiError::Unavailable(e.to_string()))
                    }
                    Err(e) => Err(ApiError::FailedPrecondition(e.to_string())),
                };
                let _ = reply.send(res);
            }
        }
        Ok(())
    }

    /// Sends a transaction to the signature checker after the cheap checks
    /// (size, duplicate, room); its verdict comes back to `on_checked`.
    pub(super) fn verify_then_admit(&mut self, tx: pb::Transaction, origin: Origin) {
        // A peer's copy of a pending (key, nonce), or of a nonce the
        // committed state already used (a relay that arrived after its
        // block: 7% of the relayed copies verified at 3,000 tx/s, 10% at
        // 5,000), is dropped unhashed and unverified: neither can be
        // admitted. No charge: an honest relay races the commit. A client
        // still gets the precise answer below.
        if matches!(origin, Origin::Peer(_))
            && (self.mempool.holds_nonce(&tx)
                || recheck::nonce_already_used(self.engine.ledger(), &tx))
        {
            return;
        }
        let hash = match self.mempool.precheck(&tx) {
            Ok(hash) => hash,
            Err(e) => {
                if let Origin::Client(reply) = origin {
                    let _ = reply.send(Err(api_error(&e)));
                }
                return;
            }
        };
        match self.verifier.submit(tx, hash, origin) {
            Err(NotQueued::Busy(Origin::Client(reply))) => {
                let _ = reply.send(Err(ApiError::Unavailable(
                    crate::rpc::BUSY_CHECKING_TXS.into(),
                )));
            }
            // Peers are not told; a copy already being checked is no fault.
            Err(NotQueued::Busy(Origin::Peer(_))) => {
                self.metrics.budget_drop(BudgetKind::TxVerifier);
            }
            Ok(()) | Err(NotQueued::AlreadyChecking(_)) => {}
        }
    }

    /// Admits a transaction whose signature was checked, gossips it on, and
    /// answers the client that submitted it, if any.
    pub(super) fn on_checked(&mut self, c: Checked) {
        self.verifier.finished(&c.hash);
        let tx = c.tx;
        let result = match c.verdict {
            Err(reason) => {
                if let Origin::Peer(peer) = &c.origin {
                    self.transport
                        .charge(*peer, ChargeReason::BadTransaction, &reason.to_string());
                }
                Err(MempoolError::Rejected(reason))
            }
            Ok(decoded) => self.admit(tx.clone(), decoded),
        };
        if result.is_ok()
            && let Some(batch) = self.tx_outbox.push(tx, tokio::time::Instant::now())
        {
            self.transport.broadcast(&batch);
        }
        if let Origin::Client(reply) = c.origin {
            let _ = reply.send(result.map_err(|e| api_error(&e)));
        }
    }

    /// Adds a transaction whose signature is already verified.
    fn admit(&mut self, tx: pb::Transaction, decoded: DecodedTx) -> Result<Hash, MempoolError> {
        let hash = decoded.hash;
        let r = self
            .mempool
            .add_hashed(tx, hash, decoded, &verified_checker(self.engine.ledger()));
        let evicted = self.mempool.take_evicted();
        self.publish_next_nonces();
        for hash in &evicted {
            self.shared.remember_rejection(
                *hash,
                "evicted from the full mempool by a transaction paying more per byte".into(),
            );
        }
        if let Ok(hash) = &r {
            Metrics::set(&self.metrics.mempool_txs, self.mempool.len() as u64);
            Metrics::set(&self.metrics.mempool_bytes, self.mempool.bytes() as u64);
            // One insert and the evictions, not a rebuild: rebuilding the
            // set on every admission was quadratic in the mempool's size
            // (12% of a validator's CPU at 2,400 tx/s).
            if let Ok(mut p) = self.shared.pending.lock() {
                for e in &evicted {
                    p.remove(e);
                }
                p.insert(*hash);
                debug_assert_eq!(p.len(), self.mempool.len());
            }
        }
        r
    }

    /// Removes what a commit took out of the mempool (included, or dropped
    /// by its re-check) from GetTx's "pending" set: O(removed), where
    /// rebuilding the set cost O(mempool) at every height.
    pub(super) fn unpublish_pending<'a>(&self, removed: impl IntoIterator<Item = &'a Hash>) {
        if let Ok(mut p) = self.shared.pending.lock() {
            for h in removed {
                p.remove(h);
            }
            debug_assert_eq!(p.len(), self.mempool.len());
        }
    }

    /// Publishes the next nonce of every sender whose queue in the mempool
    /// changed (GetAccount's `pending_nonce`): O(senders changed), called
    /// after each admission and each commit's mempool update.
    pub(super) fn publish_next_nonces(&mut self) {
        let changed = self.mempool.take_next_nonces();
        if changed.is_empty() {
            return;
        }
        if let Ok(mut p) = self.shared.pending_nonces.lock() {
            for (sender, next) in changed {
                match next {
                    Some(n) => p.insert(sender, n),
                    None => p.remove(&sender),
                };
            }
        }
    }
}

/// The mempool's view of the ledger for transactions the verifier already
/// decoded and verified: the state checks alone
/// ([`Ledger::recheck_decoded`]), at admission and when re-checking after a
/// commit; nothing is decoded or verified again.
pub(super) fn verified_checker(
    ledger: &Ledger,
) -> impl Fn(&pb::Transaction, &DecodedTx, CheckMode) -> Result<Admission, TxError> + '_ {
    move |_tx, d, _mode: CheckMode| {
        ledger.recheck_decoded(d).map(|c| Admission {
            sender: c.signer,
            nonce: c.nonce,
            account_nonce: c.next_nonce,
            fee: c.fee,
            reads: recheck::accounts_read(d),
        })
    }
}
