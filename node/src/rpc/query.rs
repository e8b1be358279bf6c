//! The `agora.v1.Query` service: reads of chain state for delegators and auditors.

use super::answer_places::HeldPlace;
use super::api::NodeApi;
use super::client_addr::ClientAddr;
use super::limits::{self, MAX_KEY_BYTES, MAX_RANGE_BLOCKS, MAX_RANGE_BYTES, ServerLimits};
use super::place_pool::{PlacePool, PoolPlace};
use super::proofs;
use super::pruned;
use crate::metrics::{GrpcRefusal, Metrics};
use agora_proto::v1 as pb;
use agora_proto::v1::query_server::Query;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Implements `agora.v1.Query` over a [`NodeApi`].
pub struct QueryService<A: NodeApi> {
    api: Arc<A>,
    /// Places for open certificate streams (`max_certificate_streams`).
    streams: PlacePool,
    /// Places for block-range answers being read or sent (`max_block_ranges`).
    ranges: PlacePool,
    /// Places for answers of one block or one validator set being read or
    /// sent (`max_large_answers`).
    large: PlacePool,
    metrics: Arc<Metrics>,
}

impl<A: NodeApi> QueryService<A> {
    /// A service answering from `api` within `limits`.
    pub fn new(api: Arc<A>, limits: &ServerLimits, metrics: Arc<Metrics>) -> Self {
        use GrpcRefusal as R;
        Self {
            api,
            streams: PlacePool::new(
                limits.max_certificate_streams,
                R::CertificateStreams,
                R::CertificateStreamsPerIp,
                "certificate streams",
            ),
            ranges: PlacePool::new(
                limits.max_block_ranges,
                R::BlockRanges,
                R::BlockRangesPerIp,
                "block-range reads",
            ),
            large: PlacePool::new(
                limits.max_large_answers,
                R::LargeAnswers,
                R::LargeAnswersPerIp,
                "large answers (blocks, validator sets)",
            ),
            metrics,
        }
    }

    /// A place of `pool` for the client of `request`, or RESOURCE_EXHAUSTED.
    fn place<T>(&self, pool: &PlacePool, request: &Request<T>) -> Result<PoolPlace, Status> {
        pool.take(ClientAddr::of_request(request.extensions()), &self.metrics)
    }
}

/// Checks a 20-byte address field from a client.
fn address(field: &str, bytes: &[u8]) -> Result<(), Status> {
    if bytes.len() != 20 {
        return Err(Status::invalid_argument(format!(
            "`{field}` must be a 20-byte address (40 hex digits), got {} bytes",
            bytes.len()
        )));
    }
    Ok(())
}

/// The page token and size of a request.
fn page(p: &Option<pb::PageRequest>, proven: bool) -> Result<(Vec<u8>, usize), Status> {
    let (token, limit) = p
        .as_ref()
        .map(|p| (p.page_token.clone(), p.limit))
        .unwrap_or_default();
    if token.len() > MAX_KEY_BYTES {
        return Err(Status::invalid_argument("page_token is too long"));
    }
    Ok((token, limits::page_size(limit, proven)))
}

fn page_response(next: Vec<u8>) -> Option<pb::PageResponse> {
    Some(pb::PageResponse {
        next_page_token: next,
    })
}

fn height_arg(h: u64) -> Result<u64, Status> {
    if h == 0 {
        return Err(Status::invalid_argument("height must be 1 or more"));
    }
    Ok(h)
}

/// Consecutive certified blocks `from..=last`, stopping at the first one not
/// stored or, past the first, once [`MAX_RANGE_BYTES`] would be exceeded.
fn certified_range<A: NodeApi>(api: &A, from: u64, last: u64) -> Vec<pb::CertifiedBlockEntry> {
    use prost::Message;
    let mut out = Vec::new();
    let mut used = 0usize;
    for h in from..=last {
        let Some(item) = api.certified_block(h) else {
            break;
        };
        let len = item.encoded_len();
        let cost = 1 + prost::length_delimiter_len(len) + len;
        if !out.is_empty() && used + cost > MAX_RANGE_BYTES {
            break;
        }
        used += cost;
        out.push(item);
    }
    out
}

/// Stream of certificates for StreamCommitCertificates.
pub type CertStream =
    Pin<Box<dyn Stream<Item = Result<pb::GetCommitCertificateResponse, Status>> + Send>>;

/// Items buffered per certificate stream before the sender waits for the client.
const STREAM_BUFFER: usize = 64;

/// Sends stored certificates from `next` on, then live ones as they commit,
/// in order and without gaps: every notification only says "something new",
/// and the certificates themselves are read from storage by height, so a
/// lagging subscriber re-reads instead of skipping.
async fn pump_certificates<A: NodeApi>(
    api: Arc<A>,
    mut next: u64,
    tx: mpsc::Sender<Result<pb::GetCommitCertificateResponse, Status>>,
) {
    let mut commits = api.subscribe_commits();
    loop {
        let latest = api.status().latest_height;
        while next <= latest {
            let Some((certificate, header)) = api.certificate(next) else {
                // Not stored (pruned or not yet written): stop rather than skip.
                let _ = tx
                    .send(Err(pruned::missing(&*api, "certificate", next)))
                    .await;
                return;
            };
            let item = pb::GetCommitCertificateResponse {
                certificate: Some(certificate),
                header: Some(header),
            };
            if tx.send(Ok(item)).await.is_err() {
                return; // client went away
            }
            next += 1;
        }
        // Wait for the next commit, or for the client to go away, so a
        // closed stream frees its place even while the chain is stalled.
        tokio::select! {
            r = commits.recv() => match r {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            () = tx.closed() => return,
        }
    }
}

#[tonic::async_trait]
impl<A: NodeApi> Query for QueryService<A> {
    async fn get_status(
        &self,
        _r: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        Ok(Response::new(self.api.status()))
    }

    async fn get_block(
        &self,
        r: Request<pb::GetBlockRequest>,
    ) -> Result<Response<pb::GetBlockResponse>, Status> {
        // Held until the answer is sent, as a range's: a block may be a
        // few MiB, and a client that never reads would otherwise keep one
        // per request place.
        let client = ClientAddr::of_request(r.extensions());
        let h = height_arg(r.into_inner().height)?;
        let place = self.large.take(client, &self.metrics)?;
        let api = self.api.clone();
        // Store reads off the async workers.
        let (block, block_hash) = tokio::task::spawn_blocking(move || api.block(h))
            .await
            .map_err(|_| Status::internal("reading the block failed"))?
            .ok_or_else(|| pruned::missing(&*self.api, "block", h))?;
        let mut answer = Response::new(pb::GetBlockResponse {
            block: Some(block),
            block_hash,
        });
        HeldPlace::attach(&mut answer, place);
        Ok(answer)
    }

    async fn get_commit_certificate(
        &self,
        r: Request<pb::GetCommitCertificateRequest>,
    ) -> Result<Response<pb::GetCommitCertificateResponse>, Status> {
        let h = height_arg(r.into_inner().height)?;
        let (certificate, header) = self
            .api
            .certificate(h)
            .ok_or_else(|| pruned::missing(&*self.api, "certificate", h))?;
        Ok(Response::new(pb::GetCommitCertificateResponse {
            certificate: Some(certificate),
            header: Some(header),
        }))
    }

    async fn get_blocks(
        &self,
        r: Request<pb::GetBlocksRequest>,
    ) -> Result<Response<pb::GetBlocksResponse>, Status> {
        let client = ClientAddr::of_request(r.extensions());
        let r = r.into_inner();
        if r.from_height == 0 {
            return Err(Status::invalid_argument("from_height must be 1 or more"));
        }
        if r.max_blocks == 0 {
            return Err(Status::invalid_argument(format!(
                "max_blocks must be 1 or more (at most {MAX_RANGE_BLOCKS} are returned)"
            )));
        }
        let from = r.from_height;
        let latest = self.api.status().latest_height;
        if from > latest {
            return Err(Status::not_found(format!(
                "no block at height {from}; the latest height is {latest}"
            )));
        }
        let max = (r.max_blocks as usize).min(MAX_RANGE_BLOCKS) as u64;
        let last = latest.min(from.saturating_add(max - 1));
        let api = self.api.clone();
        // The place is held until the answer is sent (`answer_places`), not
        // only while it is read: an unread answer is as large as a read one.
        let place = self.ranges.take(client, &self.metrics)?;
        // Store reads off the async workers.
        let blocks = tokio::task::spawn_blocking(move || certified_range(&*api, from, last))
            .await
            .map_err(|_| Status::internal("reading the blocks failed"))?;
        if blocks.is_empty() {
            return Err(pruned::missing(&*self.api, "block", from));
        }
        let mut answer = Response::new(pb::GetBlocksResponse {
            blocks,
            latest_height: latest,
        });
        HeldPlace::attach(&mut answer, place);
        Ok(answer)
    }

    type StreamCommitCertificatesStream = CertStream;

    async fn stream_commit_certificates(
        &self,
        r: Request<pb::StreamCommitCertificatesRequest>,
    ) -> Result<Response<Self::StreamCommitCertificatesStream>, Status> {
        let place = self.place(&self.streams, &r)?;
        let from = r.into_inner().from_height.max(1);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let api = self.api.clone();
        tokio::spawn(async move {
            let _place = place; // freed when the stream ends
            pump_certificates(api, from, tx).await
        });
        let stream = tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_validator_set(
        &self,
        r: Request<pb::GetValidatorSetRequest>,
    ) -> Result<Response<pb::GetValidatorSetResponse>, Status> {
        // A set may hold up to `max_validators` (10,000) entries: over a
        // MiB, so it is held as a block is.
        let place = self.place(&self.large, &r)?;
        let h = r.into_inner().height;
        let (height, set) = self.api.validator_set(h).ok_or_else(|| {
            let decided = self.api.last_decided_set_height();
            if h > decided {
                Status::not_found(format!(
                    "no validator set is decided for height {h} yet: a height's set is fixed two heights ahead, so the latest known is {decided}"
                ))
            } else {
                Status::not_found(format!("no validator set known for height {h}"))
            }
        })?;
        let mut answer = Response::new(pb::GetValidatorSetResponse {
            height,
            validator_set: Some(set),
        });
        HeldPlace::attach(&mut answer, place);
        Ok(answer)
    }

    async fn get_validator(
        &self,
        r: Request<pb::GetValidatorRequest>,
    ) -> Result<Response<pb::GetValidatorResponse>, Status> {
        let r = r.into_inner();
        address("address", &r.address)?;
        let mut both = proofs::of_keys(&*self.api, r.prove, || {
            Ok(vec![
                proofs::validator(&r.address)?,
                proofs::signing_info(&r.address)?,
            ])
        })?
        .into_iter();
        let (proof, signing_info_proof) = (both.next(), both.next());
        let v = self.api.validator(&r.address);
        if v.is_none() && proof.is_none() {
            let a = hex::encode(&r.address);
            return Err(Status::not_found(format!("no validator {a}")));
        }
        Ok(Response::new(pb::GetValidatorResponse {
            validator: v,
            proof,
            signing_info_proof,
        }))
    }

    async fn list_validators(
        &self,
        r: Request<pb::ListValidatorsRequest>,
    ) -> Result<Response<pb::ListValidatorsResponse>, Status> {
        let (after, limit) = page(&r.into_inner().page, false)?;
        let (validators, next) = self.api.validators(&after, limit);
        Ok(Response::new(pb::ListValidatorsResponse {
            validators,
            page: page_response(next),
        }))
    }

    async fn get_account(
        &self,
        r: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let r = r.into_inner();
        address("address", &r.address)?;
        let proof = proofs::of_key(&*self.api, r.prove, || proofs::account(&r.address))?;
        Ok(Response::new(pb::GetAccountResponse {
            proof,
            ..self.api.account(&r.address)
        }))
    }

    async fn get_delegation(
        &self,
        r: Request<pb::GetDelegationRequest>,
    ) -> Result<Response<pb::GetDelegationResponse>, Status> {
        let r = r.into_inner();
        address("delegator", &r.delegator)?;
        address("validator", &r.validator)?;
        let proof = proofs::of_key(&*self.api, r.prove, || {
            proofs::delegation(&r.delegator, &r.validator)
        })?;
        let d = self.api.delegation(&r.delegator, &r.validator);
        if d.is_none() && proof.is_none() {
            return Err(Status::not_found(format!(
                "{} has no delegation to {}",
                hex::encode(&r.delegator),
                hex::encode(&r.validator)
            )));
        }
        Ok(Response::new(pb::GetDelegationResponse {
            delegation: d,
            proof,
        }))
    }

    async fn list_delegations(
        &self,
        r: Request<pb::ListDelegationsRequest>,
    ) -> Result<Response<pb::ListDelegationsResponse>, Status> {
        let r = r.into_inner();
        address("delegator", &r.delegator)?;
        let (after, limit) = page(&r.page, r.prove)?;
        let (delegations, next) = self.api.delegations(&r.delegator, &after, limit);
        let key = |d: &pb::Delegation| proofs::delegation(&d.delegator, &d.validator);
        let count_key = proofs::account(&r.delegator)?;
        let proven = proofs::of_page(&*self.api, r.prove, &delegations, key, count_key)?;
        Ok(Response::new(pb::ListDelegationsResponse {
            proofs: proven.items,
            count_proof: proven.count,
            delegations,
            page: page_response(next),
        }))
    }

    async fn list_unbonding(
        &self,
        r: Request<pb::ListUnbondingRequest>,
    ) -> Result<Response<pb::ListUnbondingResponse>, Status> {
        let r = r.into_inner();
        address("delegator", &r.delegator)?;
        let (after, limit) = page(&r.page, r.prove)?;
        let (entries, next) = self.api.unbonding(&r.delegator, &after, limit);
        let count_key = proofs::account(&r.delegator)?;
        let proven = proofs::of_page(&*self.api, r.prove, &entries, proofs::unbonding, count_key)?;
        Ok(Response::new(pb::ListUnbondingResponse {
            proofs: proven.items,
            count_proof: proven.count,
            entries,
            page: page_response(next),
        }))
    }

    async fn list_slashing_events(
        &self,
        r: Request<pb::ListSlashingEventsRequest>,
    ) -> Result<Response<pb::ListSlashingEventsResponse>, Status> {
        let r = r.into_inner();
        if !r.validator.is_empty() {
            address("validator", &r.validator)?;
        }
        let (after, limit) = page(&r.page, r.prove)?;
        let (events, next) = self.api.slashes(&r.validator, &after, limit);
        let count_key = proofs::globals();
        let proven = proofs::of_page(&*self.api, r.prove, &events, proofs::slash_event, count_key)?;
        Ok(Response::new(pb::ListSlashingEventsResponse {
            proofs: proven.items,
            count_proof: proven.count,
            events,
            page: page_response(next),
        }))
    }

    async fn get_rewards(
        &self,
        r: Request<pb::GetRewardsRequest>,
    ) -> Result<Response<pb::GetRewardsResponse>, Status> {
        let r = r.into_inner();
        address("delegator", &r.delegator)?;
        address("validator", &r.validator)?;
        let proofs = proofs::of_keys(&*self.api, r.prove, || {
            Ok(vec![
                proofs::validator(&r.validator)?,
                proofs::delegation(&r.delegator, &r.validator)?,
            ])
        })?;
        let out = match self.api.rewards(&r.delegator, &r.validator) {
            Some(out) => out,
            None if r.prove => pb::GetRewardsResponse {
                delegator: r.delegator,
                validator: r.validator,
                rewards: "0".into(),
                height: proofs.first().map_or(0, |p| p.height),
                proofs: Vec::new(),
            },
            None => {
                return Err(Status::not_found(format!(
                    "{} has no delegation to {}, so it has no rewards there",
                    hex::encode(&r.delegator),
                    hex::encode(&r.validator)
                )));
            }
        };
        Ok(Response::new(pb::GetRewardsResponse { proofs, ..out }))
    }

    async fn list_redelegations(
        &self,
        r: Request<pb::ListRedelegationsRequest>,
    ) -> Result<Response<pb::ListRedelegationsResponse>, Status> {
        let r = r.into_inner();
        address("delegator", &r.delegator)?;
        let (after, limit) = page(&r.page, r.prove)?;
        let (entries, next) = self.api.redelegations(&r.delegator, &after, limit);
        let count_key = proofs::account(&r.delegator)?;
        let proven = proofs::of_page(
            &*self.api,
            r.prove,
            &entries,
            proofs::redelegation,
            count_key,
        )?;
        Ok(Response::new(pb::ListRedelegationsResponse {
            proofs: proven.items,
            count_proof: proven.count,
            entries,
            page: page_response(next),
        }))
    }

    async fn get_supply(
        &self,
        r: Request<pb::GetSupplyRequest>,
    ) -> Result<Response<pb::GetSupplyResponse>, Status> {
        let proof = proofs::of_key(&*self.api, r.into_inner().prove, || Ok(proofs::globals()))?;
        Ok(Response::new(pb::GetSupplyResponse {
            proof,
            ..self.api.supply()
        }))
    }

    async fn get_tx(
        &self,
        r: Request<pb::GetTxRequest>,
    ) -> Result<Response<pb::GetTxResponse>, Status> {
        let h = r.into_inner().hash;
        if h.len() != 32 {
            return Err(Status::invalid_argument(format!(
                "`hash` must be a 32-byte transaction hash, got {} bytes",
                h.len()
            )));
        }
        let info = self
            .api
            .tx(&h)
            .ok_or_else(|| pruned::unknown_tx(&*self.api, &h))?;
        Ok(Response::new(pb::GetTxResponse {
            tx_hash: h,
            status: info.status as i32,
            height: info.height,
            log: info.log,
            tx: info.tx,
        }))
    }
}
