//! `agora audit`: verify a chain served by a node, trusting only the genesis file.
//!
//! Walks from height 1 (trust only flows forward from genesis), fetching each
//! block and its certificate over gRPC, and checks with
//! [`ChainVerifier`]: header links, the validator set each header names and
//! the next one it commits to, the lottery winner and its VRF proof, and the
//! certificate. Validator sets are fetched only when a header commits to a
//! set different from the current one, and are trusted only because their
//! hash matches what a certified header committed to.
//!
//! With [`audit_with_replay`] the auditor also executes every verified block
//! on its own ledger built from the genesis file and checks that the state
//! after block h−1 hashes to the app hash header h commits to: balances,
//! stake, slashes and rewards are then established from the blocks alone,
//! and the rewards each validator was paid are reported.

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::chain_verifier::{ChainError, ChainVerifier, verify_body};
use agora_validator::ledger::{BlockInfo, Ledger};
use agora_validator::{Address, ChainId, CommitCertificate, Hash, ValidatorSet};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// What to audit.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The chain id from the genesis file.
    pub chain: ChainId,
    /// `seed_0` from the genesis file's hash.
    pub seed0: Hash,
    /// The validator set of height 1, derived from the genesis file.
    pub genesis_set: ValidatorSet,
    /// First height to report on (verification always starts at 1).
    pub from: u64,
    /// Last height to verify (default: the node's latest).
    pub to: Option<u64>,
}

/// Evidence found in a verified block.
#[derive(Debug, Clone)]
pub struct EvidenceSeen {
    /// Height of the block that included it.
    pub height: u64,
    /// The evidence.
    pub evidence: pb::Evidence,
}

/// What a successful audit established.
#[derive(Debug, Clone)]
pub struct AuditReport {
    /// Certificates verified in the reported range.
    pub verified: u64,
    /// Certificates verified in all (from height 1).
    pub verified_total: u64,
    /// Reported range.
    pub from: u64,
    /// Last verified height.
    pub to: u64,
    /// Wall time of the verification.
    pub elapsed: Duration,
    /// Validator-set changes verified (heights whose next set differed).
    pub set_changes: u64,
    /// Evidence included in verified blocks.
    pub evidence: Vec<EvidenceSeen>,
    /// Slashing events the node reports.
    pub slashes: Vec<pb::SlashingEvent>,
    /// Whether the blocks were executed and every app hash checked.
    pub replayed: bool,
    /// Block rewards and fees credited to each validator in the reported
    /// range (commission included), established by the replay.
    pub rewards: BTreeMap<Address, u128>,
}

/// Why the audit failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The node could not be reached or refused a request.
    #[error("node request failed at height {height}: {status}")]
    Rpc {
        /// Height being fetched (0 when not height-specific).
        height: u64,
        /// The gRPC status.
        status: Box<tonic::Status>,
    },
    /// The node sent something that does not decode.
    #[error("height {height}: malformed {what}: {detail}")]
    Malformed {
        /// Height being verified.
        height: u64,
        /// What was malformed.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// Verification failed: the chain is not what genesis allows.
    #[error("verification failed: {0}")]
    Chain(#[from] ChainError),
    /// The requested range is empty or past the node's head.
    #[error("nothing to audit: {0}")]
    Range(String),
    /// Executing the certified blocks from genesis gives another state than
    /// the one the chain's headers commit to.
    #[error(
        "height {height}: the state after executing blocks 1..{height} from genesis hashes to {computed}, but header {height} commits to {committed}"
    )]
    StateMismatch {
        /// Header whose app hash disagrees.
        height: u64,
        /// What replaying computed.
        computed: String,
        /// What the header says.
        committed: String,
    },
    /// A certified block could not be executed in order (never for a valid chain).
    #[error("height {height}: replaying the block failed: {reason}")]
    Replay {
        /// Height.
        height: u64,
        /// Why.
        reason: String,
    },
}

fn rpc(height: u64) -> impl FnOnce(tonic::Status) -> AuditError {
    move |status| AuditError::Rpc {
        height,
        status: Box::new(status),
    }
}

/// Runs the audit against a connected node (certificates and headers only).
pub async fn audit(channel: Channel, cfg: AuditConfig) -> Result<AuditReport, AuditError> {
    run(channel, cfg, None).await
}

/// Runs the audit and also replays every block on `genesis_ledger` (the
/// ledger built from the genesis file), checking each header's app hash.
pub async fn audit_with_replay(
    channel: Channel,
    cfg: AuditConfig,
    genesis_ledger: Ledger,
) -> Result<AuditReport, AuditError> {
    run(channel, cfg, Some(genesis_ledger)).await
}

/// Checks that `ledger` (after block h−1) hashes to header h's app hash,
/// executes block h, and adds the rewards it paid to `rewards` when `count`.
fn replay_block(
    ledger: &mut Ledger,
    block: &pb::Block,
    h: u64,
    count: bool,
    rewards: &mut BTreeMap<Address, u128>,
) -> Result<(), AuditError> {
    let header = block.header.as_ref().ok_or(AuditError::Malformed {
        height: h,
        what: "block",
        detail: "missing header".into(),
    })?;
    let computed = ledger.app_hash();
    if computed.as_slice() != header.app_hash.as_slice() {
        return Err(AuditError::StateMismatch {
            height: h,
            computed: hex::encode(computed),
            committed: hex::encode(&header.app_hash),
        });
    }
    let batch_seed: [u8; 32] = rand::random();
    let result = ledger
        .apply_block(
            h,
            &BlockInfo::of_block(block),
            &block.txs,
            &block.evidence,
            &batch_seed,
        )
        .map_err(|e| AuditError::Replay {
            height: h,
            reason: e.to_string(),
        })?;
    if count {
        for (v, amount) in result.end.rewards {
            let total = rewards.entry(v).or_default();
            *total = total.saturating_add(amount);
        }
    }
    Ok(())
}

async fn run(
    channel: Channel,
    cfg: AuditConfig,
    mut replay: Option<Ledger>,
) -> Result<AuditReport, AuditError> {
    let mut client = QueryClient::new(channel).max_decoding_message_size(32 * 1024 * 1024);
    let status = client
        .get_status(pb::GetStatusRequest {})
        .await
        .map_err(rpc(0))?
        .into_inner();
    if status.chain_id != cfg.chain.as_str() {
        return Err(AuditError::Range(format!(
            "the node serves chain {:?}, the genesis file is for {:?}",
            status.chain_id,
            cfg.chain.as_str()
        )));
    }
    let to = cfg
        .to
        .unwrap_or(status.latest_height)
        .min(status.latest_height);
    let from = cfg.from.max(1);
    if to == 0 || from > to {
        return Err(AuditError::Range(format!(
            "range {from}..={to} is empty; the node's latest height is {}",
            status.latest_height
        )));
    }
    let started = Instant::now();
    let mut verifier = ChainVerifier::from_genesis(cfg.chain.clone(), cfg.seed0, cfg.genesis_set);
    let mut report = AuditReport {
        verified: 0,
        verified_total: 0,
        from,
        to,
        elapsed: Duration::ZERO,
        set_changes: 0,
        evidence: Vec::new(),
        slashes: Vec::new(),
        replayed: replay.is_some(),
        rewards: BTreeMap::new(),
    };
    for h in 1..=to {
        let block = client
            .get_block(pb::GetBlockRequest { height: h })
            .await
            .map_err(rpc(h))?
            .into_inner()
            .block
            .ok_or(AuditError::Malformed {
                height: h,
                what: "block",
                detail: "missing".into(),
            })?;
        let certified = client
            .get_commit_certificate(pb::GetCommitCertificateRequest { height: h })
            .await
            .map_err(rpc(h))?
            .into_inner();
        let header = block.header.clone().ok_or(AuditError::Malformed {
            height: h,
            what: "block",
            detail: "missing header".into(),
        })?;
        if certified.header.as_ref() != Some(&header) {
            return Err(AuditError::Malformed {
                height: h,
                what: "certificate response",
                detail: "its header differs from the block's header".into(),
            });
        }
        let cert_pb = certified.certificate.ok_or(AuditError::Malformed {
            height: h,
            what: "certificate",
            detail: "missing".into(),
        })?;
        let cert = CommitCertificate::from_proto(&cert_pb).map_err(|e| AuditError::Malformed {
            height: h,
            what: "certificate",
            detail: e.to_string(),
        })?;
        verify_body(&block)?;
        let next_set = if header.next_validators_hash.as_slice()
            == verifier.validator_set().hash().as_slice()
        {
            verifier.validator_set().clone()
        } else {
            report.set_changes += 1;
            let resp = client
                .get_validator_set(pb::GetValidatorSetRequest { height: h + 1 })
                .await
                .map_err(rpc(h + 1))?
                .into_inner();
            let set_pb = resp.validator_set.ok_or(AuditError::Malformed {
                height: h + 1,
                what: "validator set",
                detail: "missing".into(),
            })?;
            ValidatorSet::from_proto(&set_pb).map_err(|e| AuditError::Malformed {
                height: h + 1,
                what: "validator set",
                detail: e.to_string(),
            })?
        };
        verifier.verify_next(&header, &cert, &next_set)?;
        if let Some(ledger) = replay.as_mut() {
            replay_block(ledger, &block, h, h >= from, &mut report.rewards)?;
        }
        report.verified_total += 1;
        if h >= from {
            report.verified += 1;
            report
                .evidence
                .extend(block.evidence.into_iter().map(|evidence| EvidenceSeen {
                    height: h,
                    evidence,
                }));
        }
    }
    report.elapsed = started.elapsed();
    let mut token = Vec::new();
    // A node that never ends its pages must not keep the auditor forever.
    for _ in 0..10_000 {
        let page = client
            .list_slashing_events(pb::ListSlashingEventsRequest {
                validator: Vec::new(),
                page: Some(pb::PageRequest {
                    page_token: token,
                    limit: 200,
                }),
            })
            .await
            .map_err(rpc(0))?
            .into_inner();
        report
            .slashes
            .extend(page.events.into_iter().filter(|e| e.slash_height <= to));
        token = page.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    Ok(report)
}
