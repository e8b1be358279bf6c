//! The explorer's JSON gateway: each route calls the node's own
//! `agora.v1.Query` service in process (the same code, limits and error
//! messages a gRPC client gets) and writes the answer as JSON.
//!
//! Why a JSON gateway rather than gRPC-Web: the page then needs no protobuf
//! runtime, no generated JavaScript and no extra server layer; the one thing
//! the browser must see as raw bytes — the header it hashes to check a
//! certificate — is served as the exact protobuf encoding, in hex.

use std::sync::Arc;

use agora_proto::v1 as pb;
use agora_proto::v1::query_server::Query;
use serde_json::{Value, json};
use tonic::{Code, Request, Status};

use super::json;
use crate::rpc::NodeApi;
use crate::rpc::query::QueryService;

/// Blocks listed by `/api/blocks` at most, and by default.
const MAX_LISTED_BLOCKS: u64 = 50;
const DEFAULT_LISTED_BLOCKS: u64 = 10;
/// Transactions of one block shown with their outcome at most (a block may
/// hold 10,000; each outcome is one lookup). `txs_total` gives the count.
const MAX_SHOWN_TXS: usize = 1_000;
/// Pages of a list read for one answer at most (each page is at most
/// `limits::MAX_PAGE` items), so one request's work is bounded.
const MAX_PAGES: usize = 10;

/// Why a request got no JSON answer: an HTTP status and a message a person
/// can act on (the gRPC service's own message where it refused).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// HTTP status line after the version.
    pub status: &'static str,
    /// What went wrong.
    pub message: String,
}

impl Failure {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: "400 Bad Request",
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: "404 Not Found",
            message: message.into(),
        }
    }
}

impl From<Status> for Failure {
    fn from(s: Status) -> Self {
        let status = match s.code() {
            Code::InvalidArgument | Code::OutOfRange => "400 Bad Request",
            Code::NotFound => "404 Not Found",
            Code::FailedPrecondition => "409 Conflict",
            Code::ResourceExhausted | Code::Unavailable => "503 Service Unavailable",
            _ => "500 Internal Server Error",
        };
        Self {
            status,
            message: s.message().to_string(),
        }
    }
}

/// Answers the `/api/…` routes.
pub struct Gateway<A: NodeApi> {
    query: QueryService<A>,
    api: Arc<A>,
    /// The genesis file's exact bytes: the browser's root of trust, hashed
    /// by the page itself.
    genesis: Arc<[u8]>,
    /// `testing.tamper_explorer_certificates`.
    tamper: bool,
}

impl<A: NodeApi> Gateway<A> {
    /// A gateway over `query` (the node's Query service) and `api`.
    pub fn new(query: QueryService<A>, api: Arc<A>, genesis: Arc<[u8]>, tamper: bool) -> Self {
        Self {
            query,
            api,
            genesis,
            tamper,
        }
    }

    /// The genesis file, exact bytes.
    pub fn genesis(&self) -> &[u8] {
        &self.genesis
    }

    /// Answers `route` (the path after `/api/`, without the query string)
    /// with `params` (the query string).
    pub async fn answer(&self, route: &str, params: &str) -> Result<Value, Failure> {
        let parts: Vec<&str> = route.split('/').collect();
        match parts.as_slice() {
            ["status"] => self.status().await,
            ["set_changes"] => {
                // The latest height first: the list is complete up to it
                // (a change recorded after the read is past it).
                let latest = self.api.status().latest_height;
                Ok(json!({
                    "latest_height": latest,
                    "heights": self.api.set_change_heights(),
                }))
            }
            ["validator_set", h] => self.validator_set(height(h)?).await,
            ["blocks"] => self.blocks(params).await,
            ["certificate", h] => self.certificate(height(h)?).await,
            ["block", h] => self.block(height(h)?).await,
            ["validators"] => self.validators().await,
            ["validator", a] => self.validator(address(a)?).await,
            ["delegator", a] => self.delegator(address(a)?).await,
            ["slashing"] => self.slashing().await,
            _ => Err(Failure::not_found(format!("no route /api/{route}"))),
        }
    }

    async fn status(&self) -> Result<Value, Failure> {
        let s = self
            .query
            .get_status(Request::new(pb::GetStatusRequest {}))
            .await?
            .into_inner();
        Ok(json!({
            "chain_id": s.chain_id,
            "latest_height": s.latest_height,
            "latest_block_hash": hex::encode(&s.latest_block_hash),
            "round": s.round,
            "peers": s.peers,
        }))
    }

    async fn validator_set(&self, h: u64) -> Result<Value, Failure> {
        let r = self
            .query
            .get_validator_set(Request::new(pb::GetValidatorSetRequest { height: h }))
            .await?
            .into_inner();
        let set = r.validator_set.unwrap_or_default();
        Ok(json!({
            "height": r.height,
            "validators": set.validators.iter().map(json::set_member).collect::<Vec<_>>(),
            "hash": hex::encode(&set.hash),
        }))
    }

    async fn blocks(&self, params: &str) -> Result<Value, Failure> {
        let latest = self.api.status().latest_height;
        let before = match param(params, "before") {
            Some(v) => height(v)?.min(latest),
            None => latest,
        };
        let limit = match param(params, "limit") {
            Some(v) => count(v)?.clamp(1, MAX_LISTED_BLOCKS),
            None => DEFAULT_LISTED_BLOCKS,
        };
        if before == 0 {
            return Ok(json!({ "latest_height": latest, "blocks": [] }));
        }
        // A pruning node lists only what it holds; a page entirely below
        // its floor gets the pruned-height answer from get_blocks.
        let lowest = self.api.lowest_height().min(before);
        let from = before.saturating_sub(limit - 1).max(lowest).max(1);
        let r = self
            .query
            .get_blocks(Request::new(pb::GetBlocksRequest {
                from_height: from,
                max_blocks: u32::try_from(before - from + 1).unwrap_or(u32::MAX),
            }))
            .await?
            .into_inner();
        let blocks: Vec<Value> = r
            .blocks
            .iter()
            .rev()
            .filter_map(|e| {
                let b = e.block.as_ref()?;
                let hd = b.header.as_ref()?;
                Some(json!({
                    "height": hd.height,
                    "block_hash": hex::encode(&e.block_hash),
                    "proposer_address": hex::encode(&hd.proposer_address),
                    "time_ms": hd.time_ms,
                    "txs": b.txs.len(),
                    "evidence": b.evidence.len(),
                }))
            })
            .collect();
        Ok(json!({ "latest_height": latest, "blocks": blocks }))
    }

    /// The certificate that commits block `h` and the header it signs.
    async fn certified_header(
        &self,
        h: u64,
    ) -> Result<(pb::CommitCertificate, pb::Header), Status> {
        let r = self
            .query
            .get_commit_certificate(Request::new(pb::GetCommitCertificateRequest { height: h }))
            .await?
            .into_inner();
        let mut cert = r.certificate.unwrap_or_default();
        if self.tamper {
            tamper(&mut cert);
        }
        Ok((cert, r.header.unwrap_or_default()))
    }

    async fn certificate(&self, h: u64) -> Result<Value, Failure> {
        let (cert, header) = self.certified_header(h).await?;
        Ok(json!({
            "height": h,
            "header_bytes": json::header_bytes(&header),
            "certificate": json::certificate(&cert),
        }))
    }

    async fn block(&self, h: u64) -> Result<Value, Failure> {
        let r = self
            .query
            .get_block(Request::new(pb::GetBlockRequest { height: h }))
            .await?
            .into_inner();
        let block = r.block.unwrap_or_default();
        let header = block.header.clone().unwrap_or_default();
        let certificate = match self.certified_header(h).await {
            Ok((c, _)) => json::certificate(&c),
            Err(s) if s.code() == Code::NotFound => Value::Null,
            Err(s) => return Err(s.into()),
        };
        let mut txs = Vec::with_capacity(block.txs.len().min(MAX_SHOWN_TXS));
        for t in block.txs.iter().take(MAX_SHOWN_TXS) {
            let hash = agora_validator::block::tx_hash(t).to_vec();
            let outcome = self
                .query
                .get_tx(Request::new(pb::GetTxRequest { hash }))
                .await
                .ok()
                .map(|r| r.into_inner());
            txs.push(json::tx(t, outcome.as_ref()));
        }
        Ok(json!({
            "height": header.height,
            "block_hash": hex::encode(&r.block_hash),
            "header": json::header(&header),
            "header_bytes": json::header_bytes(&header),
            "certificate": certificate,
            "txs_total": block.txs.len(),
            "txs": txs,
            "txs_encoded": block.txs.iter().map(json::encoded).collect::<Vec<_>>(),
            "evidence": block.evidence.iter().map(json::evidence).collect::<Vec<_>>(),
            "evidence_encoded": block.evidence.iter().map(json::encoded).collect::<Vec<_>>(),
        }))
    }

    async fn validators(&self) -> Result<Value, Failure> {
        let mut out = Vec::new();
        let mut token = Vec::new();
        for _ in 0..MAX_PAGES {
            let r = self
                .query
                .list_validators(Request::new(pb::ListValidatorsRequest {
                    page: Some(page(token)),
                }))
                .await?
                .into_inner();
            out.extend(r.validators.iter().map(json::validator));
            token = r.page.map(|p| p.next_page_token).unwrap_or_default();
            if token.is_empty() {
                break;
            }
        }
        Ok(json!({ "validators": out }))
    }

    async fn validator(&self, a: Vec<u8>) -> Result<Value, Failure> {
        let v = self
            .query
            .get_validator(Request::new(pb::GetValidatorRequest {
                prove: false,
                address: a.clone(),
            }))
            .await?
            .into_inner()
            .validator
            .unwrap_or_default();
        Ok(json!({
            "validator": json::validator(&v),
            "slashing_events": self.slashes(a).await?,
        }))
    }

    async fn slashes(&self, validator: Vec<u8>) -> Result<Vec<Value>, Failure> {
        let mut out = Vec::new();
        let mut token = Vec::new();
        for _ in 0..MAX_PAGES {
            let r = self
                .query
                .list_slashing_events(Request::new(pb::ListSlashingEventsRequest {
                    prove: false,
                    validator: validator.clone(),
                    page: Some(page(token)),
                }))
                .await?
                .into_inner();
            out.extend(r.events.iter().map(json::slashing_event));
            token = r.page.map(|p| p.next_page_token).unwrap_or_default();
            if token.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    async fn slashing(&self) -> Result<Value, Failure> {
        Ok(json!({ "events": self.slashes(Vec::new()).await? }))
    }

    async fn delegator(&self, a: Vec<u8>) -> Result<Value, Failure> {
        let acct = self
            .query
            .get_account(Request::new(pb::GetAccountRequest {
                prove: false,
                address: a.clone(),
            }))
            .await?
            .into_inner();
        let delegations = self
            .query
            .list_delegations(Request::new(pb::ListDelegationsRequest {
                prove: false,
                delegator: a.clone(),
                page: Some(page(Vec::new())),
            }))
            .await?
            .into_inner();
        let unbonding = self
            .query
            .list_unbonding(Request::new(pb::ListUnbondingRequest {
                prove: false,
                delegator: a.clone(),
                page: Some(page(Vec::new())),
            }))
            .await?
            .into_inner();
        let redelegations = self
            .query
            .list_redelegations(Request::new(pb::ListRedelegationsRequest {
                prove: false,
                delegator: a,
                page: Some(page(Vec::new())),
            }))
            .await?
            .into_inner();
        Ok(json!({
            "account": {
                "address": hex::encode(&acct.address),
                "balance": acct.balance,
                "nonce": acct.nonce,
            },
            "delegations": delegations.delegations.iter().map(json::delegation).collect::<Vec<_>>(),
            "unbonding": unbonding.entries.iter().map(json::unbonding).collect::<Vec<_>>(),
            "redelegations": redelegations.entries.iter().map(json::redelegation).collect::<Vec<_>>(),
        }))
    }
}

/// The largest page the service serves.
fn page(token: Vec<u8>) -> pb::PageRequest {
    pb::PageRequest {
        page_token: token,
        limit: crate::rpc::limits::MAX_PAGE as u32,
    }
}

/// Flips one bit of the aggregate signature (the test switch).
fn tamper(c: &mut pb::CommitCertificate) {
    if let Some(b) = c.aggregate_signature.get_mut(40) {
        *b ^= 0x01;
    }
}

fn height(s: &str) -> Result<u64, Failure> {
    match s.parse::<u64>() {
        Ok(h) if h >= 1 => Ok(h),
        _ => Err(Failure::bad_request(format!(
            "`{s}` is not a height (a number from 1)"
        ))),
    }
}

fn count(s: &str) -> Result<u64, Failure> {
    s.parse::<u64>()
        .map_err(|_| Failure::bad_request(format!("`{s}` is not a count")))
}

fn address(s: &str) -> Result<Vec<u8>, Failure> {
    match hex::decode(s) {
        Ok(b) if b.len() == 20 => Ok(b),
        _ => Err(Failure::bad_request(format!(
            "`{s}` is not an address (40 hex digits)"
        ))),
    }
}

/// The value of `key` in a query string like `a=1&b=2`.
fn param<'a>(params: &'a str, key: &str) -> Option<&'a str> {
    params
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked_with_messages() {
        assert_eq!(height("7").unwrap(), 7);
        assert!(height("0").unwrap_err().message.contains("from 1"));
        assert!(height("x").is_err());
        assert_eq!(address(&"ab".repeat(20)).unwrap(), vec![0xab; 20]);
        assert!(address("abcd").unwrap_err().message.contains("40 hex"));
        assert_eq!(param("before=9&limit=3", "limit"), Some("3"));
        assert_eq!(param("before=9", "limit"), None);
    }

    #[test]
    fn tamper_changes_the_signature() {
        let mut c = pb::CommitCertificate {
            aggregate_signature: vec![0; 96],
            ..Default::default()
        };
        tamper(&mut c);
        assert_ne!(c.aggregate_signature, vec![0; 96]);
    }
}
