//! `agora audit`: verify a chain served by a node, trusting only the genesis file.
//!
//! Walks from height 1 (trust only flows forward from genesis), fetching
//! blocks with their certificates over gRPC in ranges of [`RANGE`] heights
//! (`Query.GetBlocks`; the next ranges are fetched while the current one is
//! verified), and checks each range with [`ChainVerifier::verify_batch`]:
//! header links, the validator set each header names and the next one it
//! commits to and the lottery winner per header, then every VRF proof and
//! certificate of the range in one randomised batch (bisected on failure, so
//! the failing height is still named). Validator sets are fetched only when a header commits to a
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
use agora_validator::chain_verifier::{ChainError, ChainVerifier};
use agora_validator::ledger::Ledger;
use agora_validator::{Address, ChainId, Hash, ValidatorSet};

use super::audit_range::{Prepared, Walk, verify_range};
use super::busy;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
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
    #[error("node request failed at height {height}: {}", super::status_text(.status))]
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
        /// Height of the block whose replay failed.
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

/// Heights asked per `GetBlocks` request, and verified per batch: the
/// server's most. Each range is a synchronisation point of the pipeline
/// (decode, verify and replay wait for each other there), so larger ranges
/// keep both cores busier: 64 gave 974–1,008 certificates/s here, 256
/// gave 999–1,140 (alternating runs on one 2,416-height chain). Memory:
/// at most [`PREFETCH`] + 1 responses of ≤ 8 MiB each.
pub const RANGE: u32 = crate::rpc::limits::MAX_RANGE_BLOCKS as u32;
/// Ranges fetched ahead of the one being verified.
const PREFETCH: usize = 2;

/// One fetched height: the block and the certificate that commits it.
type Fetched = (pb::Block, pb::CommitCertificate);

/// Fetches `from..=to` in ranges and sends them in order; a node without
/// `GetBlocks` is asked height by height. Stops at the first error (sent on).
async fn fetch_ranges(
    mut client: QueryClient<Channel>,
    from: u64,
    to: u64,
    tx: mpsc::Sender<Result<Vec<Fetched>, AuditError>>,
) {
    let mut next = from;
    let mut ranges = true;
    while next <= to {
        let got = if ranges {
            match fetch_range(&mut client, next, to).await {
                Err(AuditError::Rpc { status, .. })
                    if status.code() == tonic::Code::Unimplemented =>
                {
                    ranges = false;
                    continue;
                }
                r => r,
            }
        } else {
            fetch_one(&mut client, next).await.map(|f| vec![f])
        };
        let stop = got.is_err();
        if let Ok(blocks) = &got {
            next += blocks.len() as u64;
        }
        if tx.send(got).await.is_err() || stop {
            return;
        }
    }
}

/// One `GetBlocks` response, checked to be consecutive from `from`, cut at `to`.
async fn fetch_range(
    client: &mut QueryClient<Channel>,
    from: u64,
    to: u64,
) -> Result<Vec<Fetched>, AuditError> {
    let want = (to - from + 1).min(u64::from(RANGE)) as u32;
    let (resp, _) = busy::when_free(busy::BUSY_PATIENCE, || {
        let mut client = client.clone();
        async move {
            client
                .get_blocks(pb::GetBlocksRequest {
                    from_height: from,
                    max_blocks: want,
                })
                .await
        }
    })
    .await;
    let resp = resp.map_err(rpc(from))?.into_inner();
    let mut out = Vec::with_capacity(resp.blocks.len());
    for (i, entry) in resp.blocks.into_iter().take(want as usize).enumerate() {
        let h = from + i as u64;
        let malformed = |detail: &str| AuditError::Malformed {
            height: h,
            what: "GetBlocks response",
            detail: detail.into(),
        };
        let block = entry.block.ok_or_else(|| malformed("missing block"))?;
        let certificate = entry
            .certificate
            .ok_or_else(|| malformed("missing certificate"))?;
        if block.header.as_ref().map(|hd| hd.height) != Some(h) {
            return Err(malformed(
                "blocks are not consecutive from the height asked",
            ));
        }
        out.push((block, certificate));
    }
    if out.is_empty() {
        return Err(AuditError::Malformed {
            height: from,
            what: "GetBlocks response",
            detail: "no blocks".into(),
        });
    }
    Ok(out)
}

/// One height with `GetBlock` and `GetCommitCertificate` (older nodes).
async fn fetch_one(client: &mut QueryClient<Channel>, h: u64) -> Result<Fetched, AuditError> {
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
    if certified.header.is_none() || certified.header != block.header {
        return Err(AuditError::Malformed {
            height: h,
            what: "certificate response",
            detail: "its header differs from the block's header".into(),
        });
    }
    let cert = certified.certificate.ok_or(AuditError::Malformed {
        height: h,
        what: "certificate",
        detail: "missing".into(),
    })?;
    Ok((block, cert))
}

/// Finds each fetched height's next validator set (fetched only when a
/// header commits to a different one; trusted only once the verifier has
/// checked it against that header). Decoding is left to the blocking side
/// (`audit_range`). Stops at the first height that cannot be prepared and
/// returns its error with the heights before it, which must still be
/// verified first.
async fn prepare(
    client: &mut QueryClient<Channel>,
    current: &mut Arc<ValidatorSet>,
    set_changes: &mut u64,
    fetched: Vec<Fetched>,
) -> (Vec<Prepared>, Option<AuditError>) {
    let mut out = Vec::with_capacity(fetched.len());
    for (block, cert_pb) in fetched {
        match prepare_one(client, current, set_changes, block, cert_pb).await {
            Ok(p) => out.push(p),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

async fn prepare_one(
    client: &mut QueryClient<Channel>,
    current: &mut Arc<ValidatorSet>,
    set_changes: &mut u64,
    block: pb::Block,
    cert_pb: pb::CommitCertificate,
) -> Result<Prepared, AuditError> {
    let header = block.header.clone().ok_or(AuditError::Malformed {
        height: 0,
        what: "block",
        detail: "missing header".into(),
    })?;
    let h = header.height;
    if header.next_validators_hash.as_slice() != current.hash().as_slice() {
        *set_changes += 1;
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
        let set = ValidatorSet::from_proto(&set_pb).map_err(|e| AuditError::Malformed {
            height: h + 1,
            what: "validator set",
            detail: e.to_string(),
        })?;
        *current = Arc::new(set);
    }
    Ok(Prepared {
        block,
        header,
        cert: cert_pb,
        next_set: current.clone(),
    })
}

/// The audit: checks the node serves the genesis file's chain, walks and
/// verifies `1..=to` while the next ranges are fetched, finishes the
/// replay, then collects the node's slashing events.
async fn run(
    channel: Channel,
    cfg: AuditConfig,
    replay: Option<Ledger>,
) -> Result<AuditReport, AuditError> {
    let mut client = QueryClient::new(channel).max_decoding_message_size(32 * 1024 * 1024);
    let (from, to) = audited_range(&mut client, &cfg).await?;
    let started = Instant::now();
    let mut current = Arc::new(cfg.genesis_set.clone());
    let mut walk = Some(start_walk(cfg, replay, from, to));
    // The next range is fetched while the current one is verified.
    let (tx, mut rx) = mpsc::channel(PREFETCH);
    let fetcher = tokio::spawn(fetch_ranges(client.clone(), 1, to, tx));
    let mut set_changes = 0;
    let walked = walk_ranges(
        &mut client,
        &mut rx,
        &mut walk,
        &mut current,
        &mut set_changes,
    )
    .await;
    fetcher.abort();
    // The verified blocks still waiting are replayed first, whatever
    // happened: a replay failure among them is the earlier height.
    let w = finish_walk(walk).await?;
    walked?;
    let mut report = w.report;
    report.rewards = w.rewards;
    if report.verified_total < to {
        return Err(AuditError::Rpc {
            height: report.verified_total + 1,
            status: Box::new(tonic::Status::unavailable(
                "the node stopped sending blocks",
            )),
        });
    }
    report.set_changes = set_changes;
    report.elapsed = started.elapsed();
    collect_slashes(&mut client, to, &mut report.slashes).await?;
    Ok(report)
}

/// The heights to report on, `from..=to`, once the node is known to serve
/// the genesis file's chain: `to` defaults to the node's latest height and
/// may not pass it.
async fn audited_range(
    client: &mut QueryClient<Channel>,
    cfg: &AuditConfig,
) -> Result<(u64, u64), AuditError> {
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
    let to = super::audit_target(cfg.to, status.latest_height).map_err(AuditError::Range)?;
    let from = cfg.from.max(1);
    if to == 0 || from > to {
        return Err(AuditError::Range(format!(
            "range {from}..={to} is empty; the node's latest height is {}",
            status.latest_height
        )));
    }
    Ok((from, to))
}

/// A walk from genesis with nothing verified yet, reporting on `from..=to`.
fn start_walk(cfg: AuditConfig, replay: Option<Ledger>, from: u64, to: u64) -> Walk {
    let mut w = Walk {
        verifier: ChainVerifier::from_genesis(cfg.chain.clone(), cfg.seed0, cfg.genesis_set),
        replay,
        rewards: BTreeMap::new(),
        pending: Vec::new(),
        report: AuditReport {
            verified: 0,
            verified_total: 0,
            from,
            to,
            elapsed: Duration::ZERO,
            set_changes: 0,
            evidence: Vec::new(),
            slashes: Vec::new(),
            replayed: false,
            rewards: BTreeMap::new(),
        },
    };
    w.report.replayed = w.replay.is_some();
    w
}

/// Prepares and verifies each fetched range in order until the fetcher
/// stops or a range fails. The walk is lent to a blocking task per range;
/// `walk` is left empty only if that task was lost.
async fn walk_ranges(
    client: &mut QueryClient<Channel>,
    rx: &mut mpsc::Receiver<Result<Vec<Fetched>, AuditError>>,
    walk: &mut Option<Walk>,
    current: &mut Arc<ValidatorSet>,
    set_changes: &mut u64,
) -> Result<(), AuditError> {
    while let Some(fetched) = rx.recv().await {
        let (range, stopped) = prepare(client, current, set_changes, fetched?).await;
        let mut w = walk.take().ok_or_else(|| AuditError::Replay {
            height: 0,
            reason: "the verifier was lost".into(),
        })?;
        // Pairings are CPU work: off the (possibly single) async thread,
        // so the fetcher keeps going meanwhile.
        let (w, verdict) = tokio::task::spawn_blocking(move || {
            let verdict = verify_range(&mut w, range);
            (w, verdict)
        })
        .await
        .map_err(|e| AuditError::Replay {
            height: 0,
            reason: format!("the verification task failed: {e}"),
        })?;
        *walk = Some(w);
        verdict?;
        if let Some(e) = stopped {
            return Err(e);
        }
    }
    Ok(())
}

/// Replays the verified blocks the walk still holds (off the async
/// thread) and gives the walk back.
async fn finish_walk(walk: Option<Walk>) -> Result<Walk, AuditError> {
    let mut w = walk.ok_or_else(|| AuditError::Replay {
        height: 0,
        reason: "the verifier was lost".into(),
    })?;
    tokio::task::spawn_blocking(move || w.finish().map(|()| w))
        .await
        .map_err(|e| AuditError::Replay {
            height: 0,
            reason: format!("the replay task failed: {e}"),
        })?
}

/// Adds the slashing events the node reports up to height `to`, following
/// its pages.
async fn collect_slashes(
    client: &mut QueryClient<Channel>,
    to: u64,
    slashes: &mut Vec<pb::SlashingEvent>,
) -> Result<(), AuditError> {
    let mut token = Vec::new();
    // A node that never ends its pages must not keep the auditor forever.
    for _ in 0..10_000 {
        let page = client
            .list_slashing_events(pb::ListSlashingEventsRequest {
                prove: false,
                validator: Vec::new(),
                page: Some(pb::PageRequest {
                    page_token: token,
                    limit: 200,
                }),
            })
            .await
            .map_err(rpc(0))?
            .into_inner();
        slashes.extend(page.events.into_iter().filter(|e| e.slash_height <= to));
        token = page.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    Ok(())
}
