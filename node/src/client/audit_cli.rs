//! `agora audit`: its options, the full audit from genesis or the light
//! client from a checkpoint ([`super::audit`], [`super::light_audit`]), and
//! how their reports are printed.

use super::audit::{self, AuditConfig};
use super::cli::{Output, channel_within};
use super::query;
use crate::outln;
use agora_validator::ledger::Ledger;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `agora audit`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// gRPC endpoint of the node to audit.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub node: String,
    /// Longest wait for each answer from the node, in seconds.
    #[arg(long, default_value_t = super::REQUEST_TIMEOUT.as_secs(), value_name = "SECONDS")]
    pub timeout: u64,
    /// The genesis file: the only thing trusted (not needed with --trust).
    #[arg(long, required_unless_present = "trust")]
    pub genesis: Option<PathBuf>,
    /// Light-client mode: start from a trusted checkpoint HEIGHT:HASH (the
    /// block hash, 64 hex digits) instead of genesis, checking headers,
    /// certificates and validator-set transitions but not the proposer
    /// lottery or the state (those need the chain from genesis). Trust
    /// assumption: the checkpoint is genuine, and no validator set walked
    /// through held more than 1/3 faulty power; with --skip, also that the
    /// checkpoint's set still does. Use a recent checkpoint, within the
    /// unbonding period: keys of a set that has unbonded could sign another
    /// history.
    #[arg(long, value_name = "HEIGHT:HASH", value_parser = super::light_audit::parse_checkpoint)]
    pub trust: Option<(u64, agora_validator::crypto::Hash)>,
    /// With --trust: jump to the target height when validators holding
    /// more than 1/3 of the trusted set's power signed it, bisecting where
    /// fewer did (as CometBFT's light client), instead of every height.
    #[arg(long, requires = "trust")]
    pub skip: bool,
    /// First height to report on (verification always starts at genesis).
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Last height to verify (default: the node's latest).
    #[arg(long)]
    pub to: Option<u64>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
}

/// `agora audit ...`: exits non-zero on the first failure.
pub async fn run_audit(a: AuditArgs) -> Result<ExitCode> {
    if let Some(checkpoint) = a.trust {
        return run_light_audit(&a, checkpoint).await;
    }
    let genesis = a
        .genesis
        .as_ref()
        .context("--genesis is required without --trust")?;
    let g =
        crate::genesis::load(genesis).with_context(|| format!("loading {}", genesis.display()))?;
    let ledger = Ledger::from_genesis(&g.genesis).context("the genesis file is not valid")?;
    let set = ledger
        .validator_set(1)
        .cloned()
        .context("the genesis file has no validator set")?;
    let cfg = AuditConfig {
        chain: ledger.chain_id().clone(),
        seed0: agora_validator::crypto::vrf::genesis_seed(&g.file_hash),
        genesis_set: set,
        from: a.from,
        to: a.to,
    };
    match audit::audit_with_replay(channel_within(&a.node, a.timeout).await?, cfg, ledger).await {
        Ok(r) => {
            let secs = r.elapsed.as_secs_f64().max(1e-9);
            let rate = r.verified_total as f64 / secs;
            let v = serde_json::json!({
                "ok": true,
                "verified": r.verified,
                "verified_from_genesis": r.verified_total,
                "from": r.from,
                "to": r.to,
                "seconds": secs,
                "certificates_per_second": rate,
                "validator_set_changes": r.set_changes,
                "evidence_included": r.evidence.len(),
                "slashes": r.slashes.iter().map(query::slash_json).collect::<Vec<_>>(),
                "state_replayed": r.replayed,
                "rewards_paid": r.rewards.iter().map(|(v, amount)| (v.to_string(), serde_json::json!(amount.to_string()))).collect::<serde_json::Map<_, _>>(),
            });
            match a.output {
                Output::Json => outln!("{v}"),
                Output::Text => print_audit_text(&r, secs, rate),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            match a.output {
                Output::Json => outln!(
                    "{}",
                    serde_json::json!({"ok": false, "error": e.to_string()})
                ),
                Output::Text => outln!("AUDIT FAILED: {e}"),
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `agora audit --trust`: the light client from a checkpoint.
async fn run_light_audit(
    a: &AuditArgs,
    checkpoint: (u64, agora_validator::crypto::Hash),
) -> Result<ExitCode> {
    let r = super::light_audit::run(
        channel_within(&a.node, a.timeout).await?,
        checkpoint,
        a.to,
        a.skip,
    )
    .await;
    let mode = if a.skip { "skipping" } else { "sequential" };
    match r {
        Ok(r) => {
            let v = serde_json::json!({
                "ok": true,
                "mode": mode,
                "from": r.from,
                "to": r.to,
                "verified_heights": r.path,
                "seconds": r.seconds,
            });
            match a.output {
                Output::Json => outln!("{v}"),
                Output::Text => outln!(
                    "OK: light client ({mode}) from trusted height {} to {}: {} headers verified ({:?}) in {:.2}s",
                    r.from,
                    r.to,
                    r.path.len(),
                    if r.path.len() > 8 {
                        &r.path[r.path.len() - 8..]
                    } else {
                        &r.path[..]
                    },
                    r.seconds
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            match a.output {
                Output::Json => outln!(
                    "{}",
                    serde_json::json!({"ok": false, "mode": mode, "error": e.to_string()})
                ),
                Output::Text => outln!("AUDIT FAILED: {e}"),
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The text form of a successful audit.
fn print_audit_text(r: &audit::AuditReport, secs: f64, rate: f64) {
    outln!(
        "OK: verified {} certificates (heights {}..={}; {} from genesis) in {secs:.2}s ({rate:.0} certificates/s); {} validator-set changes; {} evidence included",
        r.verified,
        r.from,
        r.to,
        r.verified_total,
        r.set_changes,
        r.evidence.len()
    );
    if r.replayed {
        outln!("state: every block re-executed from genesis; each header's app hash matches");
    }
    for (v, amount) in &r.rewards {
        outln!("rewards paid to validator {v}: {amount}");
    }
    for s in &r.slashes {
        let why = match query::slash_reason_name(s.reason) {
            "downtime" => "downtime",
            _ => "double signing",
        };
        outln!(
            "slash: validator {} for {why} at height {} (slashed at {}): {} tokens, {} bps{}",
            hex::encode(&s.validator),
            s.infraction_height,
            s.slash_height,
            s.amount,
            s.fraction_bps,
            if s.tombstoned { ", tombstoned" } else { "" }
        );
    }
}
