//! What the gRPC services need from a node, in protobuf terms.
//!
//! The services in this module translate requests and enforce limits; the
//! node's state (storage, ledger, mempool) answers through [`NodeApi`]. Every
//! method is synchronous and cheap (reads under a lock); waiting is done by the
//! services with [`NodeApi::subscribe_commits`].

use agora_proto::v1 as pb;
use tokio::sync::broadcast;

/// A refusal that maps onto a gRPC status code, with a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request itself is malformed (bad bytes, wrong sizes, bad signature).
    #[error("{0}")]
    InvalidArgument(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is well formed but the state does not allow it (nonce,
    /// balance, unknown validator, too many unbonding entries, ...).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The node cannot take it now (mempool full, shutting down).
    #[error("{0}")]
    Unavailable(String),
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            ApiError::NotFound(m) => tonic::Status::not_found(m),
            ApiError::FailedPrecondition(m) => tonic::Status::failed_precondition(m),
            ApiError::Unavailable(m) => tonic::Status::unavailable(m),
        }
    }
}

/// Where a transaction stands, as the node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxInfo {
    /// Pending, committed, rejected (never included) or failed (included, but its execution failed).
    pub status: pb::TxStatus,
    /// The including height, for committed and failed transactions.
    pub height: u64,
    /// What happened, for a person.
    pub log: String,
    /// The transaction itself, when still known.
    pub tx: Option<pb::Transaction>,
}

/// One page of a list answer: items and the token of the next page (empty when done).
pub type Page<T> = (Vec<T>, Vec<u8>);

/// The node state behind the gRPC services.
pub trait NodeApi: Send + Sync + 'static {
    /// Chain id, latest committed height and block hash, current round, peers.
    fn status(&self) -> pb::GetStatusResponse;
    /// A committed block and its hash.
    fn block(&self, height: u64) -> Option<(pb::Block, Vec<u8>)>;
    /// The lowest height whose block this node stores: 1 unless it prunes
    /// (`storage.keep_blocks`); below it, blocks are gone, not missing.
    fn lowest_height(&self) -> u64 {
        1
    }
    /// The commit certificate of a height and the header it commits.
    fn certificate(&self, height: u64) -> Option<(pb::CommitCertificate, pb::Header)>;
    /// A committed block with its certificate and hash.
    fn certified_block(&self, height: u64) -> Option<pb::CertifiedBlockEntry> {
        let (block, block_hash) = self.block(height)?;
        let (certificate, _) = self.certificate(height)?;
        Some(pb::CertifiedBlockEntry {
            block: Some(block),
            certificate: Some(certificate),
            block_hash,
        })
    }
    /// The validator set of a height (0: the next height to be decided).
    fn validator_set(&self, height: u64) -> Option<(u64, pb::ValidatorSet)>;
    /// The highest height whose validator set is decided (two past the
    /// latest block).
    fn last_decided_set_height(&self) -> u64;
    /// Heights `c ≥ 2` whose validator set differs from that of `c − 1`,
    /// ascending: where a client walking the sets from genesis must cross.
    fn set_change_heights(&self) -> Vec<u64>;
    /// Notified with the height after every commit.
    fn subscribe_commits(&self) -> broadcast::Receiver<u64>;
    /// Admits a signed transaction to the mempool; returns its hash.
    fn submit_tx(
        &self,
        tx: pb::Transaction,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, ApiError>> + Send;
    /// Where a transaction stands.
    fn tx(&self, hash: &[u8]) -> Option<TxInfo>;
    /// Verifies and queues evidence for inclusion; returns its hash.
    fn submit_evidence(
        &self,
        evidence: pb::Evidence,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, ApiError>> + Send;
    /// A validator's staking record.
    fn validator(&self, address: &[u8]) -> Option<pb::ValidatorRecord>;
    /// Validators after `after` (an address), at most `limit`.
    fn validators(&self, after: &[u8], limit: usize) -> Page<pb::ValidatorRecord>;
    /// An account (a zero account for an unknown address).
    fn account(&self, address: &[u8]) -> pb::GetAccountResponse;
    /// One delegation.
    fn delegation(&self, delegator: &[u8], validator: &[u8]) -> Option<pb::Delegation>;
    /// A delegator's delegations after the validator address `after`.
    fn delegations(&self, delegator: &[u8], after: &[u8], limit: usize) -> Page<pb::Delegation>;
    /// A delegator's unbonding entries after the opaque token `after`.
    fn unbonding(&self, delegator: &[u8], after: &[u8], limit: usize) -> Page<pb::UnbondingEntry>;
    /// Slashing events (of one validator, or all when `validator` is empty).
    fn slashes(&self, validator: &[u8], after: &[u8], limit: usize) -> Page<pb::SlashingEvent>;
    /// Rewards a delegation has accrued (`None` if there is no such delegation).
    fn rewards(&self, delegator: &[u8], validator: &[u8]) -> Option<pb::GetRewardsResponse>;
    /// A delegator's redelegation entries after the opaque token `after`.
    fn redelegations(
        &self,
        delegator: &[u8],
        after: &[u8],
        limit: usize,
    ) -> Page<pb::RedelegationEntry>;
    /// Where every token is, after the latest committed block.
    fn supply(&self) -> pb::GetSupplyResponse;
    /// Proofs of these state keys (see `state.proto`) in the latest state,
    /// whose app hash the next committed header will carry.
    fn prove(&self, keys: &[Vec<u8>]) -> Result<Vec<pb::StateProof>, ApiError>;
}
