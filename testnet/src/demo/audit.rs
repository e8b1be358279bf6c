//! Step 10: `agora audit` from genesis against node1 — every certificate and
//! validator-set change verified — and the audit saw node3's evidence and
//! slash.

use agora_node::client::audit::{self, AuditConfig, AuditReport};
use agora_validator::ledger::Ledger;
use anyhow::{Context, Result, ensure};

use super::double_sign::Seen;
use super::rpc::endpoint;
use super::{AUDIT_DEADLINE, Demo, RPC_TIMEOUT};

impl Demo<'_> {
    /// Step 10: audits the chain from genesis through node1.
    pub(super) async fn audit(&mut self, s: &Seen) -> Result<((), String)> {
        let cfg = self.audit_config()?;
        let node = self.net.m()?.nodes[1].grpc.clone();
        detail!(
            "same as: agora audit --node {node} --genesis {}",
            self.genesis.display()
        );
        let ch = endpoint(&node)?
            .connect_timeout(RPC_TIMEOUT)
            .timeout(RPC_TIMEOUT)
            .connect()
            .await
            .with_context(|| format!("connecting to {node}"))?;
        let r = tokio::time::timeout(AUDIT_DEADLINE, audit::audit(ch, cfg))
            .await
            .map_err(|_| anyhow::anyhow!("the audit took longer than {AUDIT_DEADLINE:?}"))?
            .context("AUDIT FAILED")?;
        let secs = r.elapsed.as_secs_f64();
        show_report(&r, secs);
        check_report(&r, s)?;
        Ok((
            (),
            format!(
                "{} certificates verified from genesis in {secs:.2} s, {} set changes, {} evidence",
                r.verified_total,
                r.set_changes,
                r.evidence.len()
            ),
        ))
    }

    /// What `agora audit --genesis` would audit: the whole chain, from the
    /// demo's genesis file.
    fn audit_config(&self) -> Result<AuditConfig> {
        let g = agora_node::genesis::load(&self.genesis)
            .with_context(|| format!("loading {}", self.genesis.display()))?;
        let ledger = Ledger::from_genesis(&g.genesis).context("the genesis file")?;
        Ok(AuditConfig {
            chain: ledger.chain_id().clone(),
            seed0: agora_validator::crypto::vrf::genesis_seed(&g.file_hash),
            genesis_set: ledger
                .validator_set(1)
                .cloned()
                .context("the genesis has no validator set")?,
            from: 1,
            to: None,
        })
    }
}

/// Prints what the audit verified and the evidence it found.
fn show_report(r: &AuditReport, secs: f64) {
    detail!(
        "OK: verified {} certificates (heights 1..={}) in {secs:.2} s; {} validator-set changes; {} evidence included",
        r.verified_total,
        r.to,
        r.set_changes,
        r.evidence.len()
    );
    for e in &r.evidence {
        let d = crate::evidence::describe(&e.evidence);
        let kind = d.kind;
        let at = d.at.map_or_else(
            || "an unreadable height".to_string(),
            |(h, r)| format!("height {h} round {r}"),
        );
        detail!("evidence in block {}: {kind} at {at}", e.height);
    }
}

/// Checks the audit verified every height and every set change the demo
/// made, and saw node3's evidence and slash.
fn check_report(r: &AuditReport, s: &Seen) -> Result<()> {
    ensure!(
        r.verified_total == r.to,
        "verified {} of {} heights",
        r.verified_total,
        r.to
    );
    // Bond, unbond, bond and slash each change the set.
    ensure!(
        r.set_changes >= 4,
        "only {} validator-set changes verified, the demo made at least 4",
        r.set_changes
    );
    ensure!(
        r.evidence.iter().any(|e| {
            e.height == s.event.slash_height
                && crate::evidence::evidence_hash(&e.evidence).as_slice()
                    == s.event.evidence_hash.as_slice()
        }),
        "the audit did not see node3's evidence in block {}",
        s.event.slash_height
    );
    ensure!(
        r.slashes.iter().any(|x| x.validator == s.event.validator),
        "the audit's slashing events miss node3"
    );
    Ok(())
}
