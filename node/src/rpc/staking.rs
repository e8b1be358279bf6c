//! The `agora.v1.Staking` service: signed transactions in, outcomes out.

use super::api::{ApiError, NodeApi};
use super::limits;
use agora_proto::v1 as pb;
use agora_proto::v1::staking_server::Staking;
use agora_proto::v1::tx_body::Kind;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Implements `agora.v1.Staking` over a [`NodeApi`].
pub struct StakingService<A: NodeApi> {
    api: Arc<A>,
}

impl<A: NodeApi> StakingService<A> {
    /// A service answering from `api`.
    pub fn new(api: Arc<A>) -> Self {
        Self { api }
    }

    async fn submit(
        &self,
        req: pb::SubmitTxRequest,
        method: &'static str,
        accepts: fn(&Kind) -> bool,
    ) -> Result<Response<pb::SubmitTxResponse>, Status> {
        let tx = req.tx.ok_or_else(|| {
            Status::invalid_argument("missing field `tx`: send a signed transaction")
        })?;
        let kind = tx
            .body
            .as_ref()
            .and_then(|b| b.kind.as_ref())
            .ok_or_else(|| Status::invalid_argument("transaction has no body or no kind"))?;
        if !accepts(kind) {
            return Err(Status::invalid_argument(format!(
                "{method} takes a {method} transaction; this one is a {}",
                kind_name(kind)
            )));
        }
        let hash = self.api.submit_tx(tx).await?;
        if !req.wait_for_commit {
            return Ok(Response::new(pb::SubmitTxResponse {
                tx_hash: hash,
                status: pb::TxStatus::Pending as i32,
                height: 0,
                log: "accepted into the mempool".into(),
            }));
        }
        let timeout = limits::wait_timeout(req.timeout_ms);
        let out = wait_for_outcome(self.api.as_ref(), &hash, timeout).await;
        Ok(Response::new(out))
    }
}

/// Most transactions in one `SubmitTxs` call (whose encoded size is also
/// bounded, by `limits::MAX_REQUEST_BYTES`).
pub const MAX_SUBMIT_BATCH: usize = 1_000;

/// Longest log of one transaction in a `SubmitTxs` answer, so that the
/// answer to the largest batch stays within `limits::MAX_SMALL_ANSWER`.
pub const MAX_BATCH_LOG_BYTES: usize = 300;

/// `log` cut to [`MAX_BATCH_LOG_BYTES`] at a character boundary, marked
/// with an ellipsis when cut.
fn batch_log(mut log: String) -> String {
    if log.len() <= MAX_BATCH_LOG_BYTES {
        return log;
    }
    let mut end = MAX_BATCH_LOG_BYTES - '…'.len_utf8();
    while !log.is_char_boundary(end) {
        end -= 1;
    }
    log.truncate(end);
    log.push('…');
    debug_assert!(log.len() <= MAX_BATCH_LOG_BYTES);
    log
}

/// Runs `futs` concurrently and returns their outputs in order. Each is
/// polled first in order, so requests they enqueue on first poll (the
/// runner's channel is FIFO) arrive in order: one sender's nonces stay in
/// sequence while the signature checker sees the whole batch at once.
async fn join_in_order<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futs.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Human name of a transaction kind, for error messages.
pub fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Transfer(_) => "Transfer",
        Kind::CreateValidator(_) => "CreateValidator",
        Kind::Bond(_) => "Bond",
        Kind::Unbond(_) => "Unbond",
        Kind::Unjail(_) => "Unjail",
        Kind::Redelegate(_) => "Redelegate",
        Kind::WithdrawRewards(_) => "WithdrawRewards",
        Kind::EditValidator(_) => "EditValidator",
    }
}

/// Waits until the transaction leaves the pending state or `timeout` passes.
/// Reads the status after subscribing, so a commit between the two is not missed.
pub async fn wait_for_outcome<A: NodeApi + ?Sized>(
    api: &A,
    hash: &[u8],
    timeout: Duration,
) -> pb::SubmitTxResponse {
    let mut commits = api.subscribe_commits();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(info) = api.tx(hash)
            && info.status != pb::TxStatus::Pending
        {
            return pb::SubmitTxResponse {
                tx_hash: hash.to_vec(),
                status: info.status as i32,
                height: info.height,
                log: info.log,
            };
        }
        match tokio::time::timeout_at(deadline, commits.recv()).await {
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) | Err(_) => {
                return pb::SubmitTxResponse {
                    tx_hash: hash.to_vec(),
                    status: pb::TxStatus::Pending as i32,
                    height: 0,
                    log: format!(
                        "still pending after {} ms; query it with GetTx",
                        timeout.as_millis()
                    ),
                };
            }
        }
    }
}

#[tonic::async_trait]
impl<A: NodeApi> Staking for StakingService<A> {
    async fn bond(
        &self,
        r: Request<pb::SubmitTxRequest>,
    ) -> Result<Response<pb::SubmitTxResponse>, Status> {
        self.submit(r.into_inner(), "Bond", |k| matches!(k, Kind::Bond(_)))
            .await
    }

    async fn redelegate(
        &self,
        r: Request<pb::SubmitTxRequest>,
    ) -> Result<Response<pb::SubmitTxResponse>, Status> {
        self.submit(r.into_inner(), "Redelegate", |k| {
            matches!(k, Kind::Redelegate(_))
        })
        .await
    }

    async fn withdraw_rewards(
        &self,
        r: Request<pb::SubmitTxRequest>,
    ) -> Result<Response<pb::SubmitTxResponse>, Status> {
        self.submit(r.into_inner(), "WithdrawRewards", |k| {
            matches!(k, Kind::WithdrawRewards(_))
        })
        .await
    }

    async fn edit_validator(
        &self,
        r: Request<pb::SubmitTxRequest>,
    ) -> Result<Response<pb::SubmitTxResponse>, Status> {
        self.submit(r.into_inner(), "EditValidator", |k| {
            matches!(k, Kind::EditValidator(_))
        })
        .await
    }

    async fn unbond(
        &self,
        r: Request<pb::SubmitTxRequest>,
    ) -> Result<Response<pb::SubmitTxResponse>, Status> {
        self.submit(r.into_inner(), "Unbond", |k| matches!(k, Kind::Unbond(_)))
            .await
    }

    async fn create_validator(
        &self,
        r: Request<pb::SubmitTxRequest>,
    ) -> Result<Response<pb::SubmitTxResponse>, Status> {
        self.submit(r.into_inner(), "CreateValidator", |k| {
            matches!(k, Kind::CreateValidator(_))
        })
        .await
    }

    async fn unjail(
        &self,
        r: Request<pb::SubmitTxRequest>,
    ) -> Result<Response<pb::SubmitTxResponse>, Status> {
        self.submit(r.into_inner(), "Unjail", |k| matches!(k, Kind::Unjail(_)))
            .await
    }

    async fn transfer(
        &self,
        r: Request<pb::SubmitTxRequest>,
    ) -> Result<Response<pb::SubmitTxResponse>, Status> {
        self.submit(r.into_inner(), "Transfer", |k| {
            matches!(k, Kind::Transfer(_))
        })
        .await
    }

    async fn submit_txs(
        &self,
        r: Request<pb::SubmitTxsRequest>,
    ) -> Result<Response<pb::SubmitTxsResponse>, Status> {
        let txs = r.into_inner().txs;
        if txs.len() > MAX_SUBMIT_BATCH {
            return Err(Status::invalid_argument(format!(
                "{} transactions in one call; send at most {MAX_SUBMIT_BATCH}",
                txs.len()
            )));
        }
        let hashes: Vec<Vec<u8>> = txs
            .iter()
            .map(|t| agora_validator::block::tx_hash(t).to_vec())
            .collect();
        let verdicts =
            join_in_order(txs.into_iter().map(|t| self.api.submit_tx(t)).collect()).await;
        let results = verdicts
            .into_iter()
            .zip(hashes)
            .map(|(v, hash)| match v {
                Ok(h) => pb::SubmitTxResponse {
                    tx_hash: h,
                    status: pb::TxStatus::Pending as i32,
                    height: 0,
                    log: "accepted into the mempool".into(),
                },
                Err(e) => pb::SubmitTxResponse {
                    tx_hash: hash,
                    status: pb::TxStatus::Rejected as i32,
                    height: 0,
                    log: batch_log(e.to_string()),
                },
            })
            .collect();
        Ok(Response::new(pb::SubmitTxsResponse { results }))
    }

    async fn submit_evidence(
        &self,
        r: Request<pb::SubmitEvidenceRequest>,
    ) -> Result<Response<pb::SubmitEvidenceResponse>, Status> {
        let ev = r
            .into_inner()
            .evidence
            .ok_or_else(|| Status::invalid_argument("missing field `evidence`"))?;
        if ev.kind.is_none() {
            return Err(ApiError::InvalidArgument("evidence has no kind".into()).into());
        }
        let evidence_hash = self.api.submit_evidence(ev).await?;
        Ok(Response::new(pb::SubmitEvidenceResponse { evidence_hash }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_log_is_cut_at_a_character_boundary() {
        assert_eq!(batch_log("short".into()), "short");
        let long = "é".repeat(MAX_BATCH_LOG_BYTES);
        let cut = batch_log(long.clone());
        assert!(cut.len() <= MAX_BATCH_LOG_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(long.starts_with(cut.trim_end_matches('…')));
    }
}
