//! The Prometheus text exposition (format 0.0.4) of [`Metrics`]: one
//! `# HELP` and `# TYPE` line per family, then its samples. Names follow
//! Prometheus conventions: the unit in the name (`_seconds`, `_bytes`),
//! `_total` on counters, labels for what varies within a family.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::histogram::{Buckets, Histogram};
use super::labels::{
    BUDGET_NAMES, CERTIFICATE_SOURCE_NAMES, GRPC_REFUSAL_NAMES, PEER_KIND_NAMES, PENALTY_NAMES,
    STEP_NAMES,
};
use super::registry::Metrics;
use crate::transport::ChargeReason;

/// HELP of `agora_step_duration_seconds`; ARCHITECTURE.md says the same.
pub const STEP_HELP: &str = "Time this node spent in each consensus step, per round: \
propose from entering the round (height start or a later round) until its step becomes prevote; \
prevote until the step becomes precommit; precommit until the height is decided; \
commit from the decision until the next height starts (block stored, timeout_commit waited). \
A step also ends when the node moves to a later round or decides; \
steps passed through while handling one input are recorded as 0 s.";

/// Writes one family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// An unlabelled gauge or counter.
fn single(out: &mut String, name: &str, kind: &str, help: &str, v: &AtomicU64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
}

/// A family with one label, one sample per label value.
fn labelled<'a>(
    out: &mut String,
    (name, kind, help): (&str, &str, &str),
    label: &str,
    rows: impl IntoIterator<Item = (&'a str, &'a AtomicU64)>,
) {
    family(out, name, kind, help);
    for (value, c) in rows {
        let _ = writeln!(
            out,
            "{name}{{{label}=\"{value}\"}} {}",
            c.load(Ordering::Relaxed)
        );
    }
}

/// One histogram's `_bucket`, `_sum` and `_count` samples; `labels` is
/// either empty or `key="value"` pairs joined by commas.
fn histogram<B: Buckets>(out: &mut String, name: &str, labels: &str, h: &Histogram<B>) {
    let s = h.snapshot();
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, c) in &s.buckets {
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {c}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", s.count);
    let braces = |l: &str| {
        if l.is_empty() {
            String::new()
        } else {
            format!("{{{l}}}")
        }
    };
    let _ = writeln!(out, "{name}_sum{} {}", braces(labels), s.sum);
    let _ = writeln!(out, "{name}_count{} {}", braces(labels), s.count);
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        self.render_chain(&mut out);
        self.render_evidence(&mut out);
        self.render_signing(&mut out);
        self.render_standing(&mut out);
        self.render_peers(&mut out);
        self.render_histograms(&mut out);
        out
    }

    /// Height, round, peers, mempool and certificates verified.
    fn render_chain(&self, o: &mut String) {
        single(
            o,
            "agora_height",
            "gauge",
            "Latest committed height.",
            &self.height,
        );
        single(
            o,
            "agora_round",
            "gauge",
            "Consensus round of the height being decided.",
            &self.round,
        );
        single(
            o,
            "agora_consensus_votes_stored",
            "gauge",
            "Votes held for the height being decided, every round and type; an equivocator's grow linearly with the rounds.",
            &self.votes_stored,
        );
        labelled(
            o,
            (
                "agora_peers",
                "gauge",
                "Connected peers by kind: validator (proved a key in the validator set of the height being decided) or full (any other peer).",
            ),
            "kind",
            PEER_KIND_NAMES.iter().copied().zip(&self.peers),
        );
        single(
            o,
            "agora_mempool_txs",
            "gauge",
            "Transactions in the mempool.",
            &self.mempool_txs,
        );
        single(
            o,
            "agora_mempool_bytes",
            "gauge",
            "Encoded size of the transactions in the mempool, in bytes.",
            &self.mempool_bytes,
        );
        labelled(
            o,
            (
                "agora_certificates_verified_total",
                "counter",
                "Commit certificates whose aggregate signature this node verified and found valid, by source (carried: in a proposed block, for its parent; synced: with a block fetched by sync). Certificates this node assembled or already held are not verified again.",
            ),
            "source",
            CERTIFICATE_SOURCE_NAMES
                .iter()
                .copied()
                .zip(&self.certificates_verified),
        );
    }

    /// Evidence found, included, and messages received.
    fn render_evidence(&self, o: &mut String) {
        single(
            o,
            "agora_evidence_seen_total",
            "counter",
            "Distinct pieces of evidence this node added to its pool.",
            &self.evidence_seen,
        );
        single(
            o,
            "agora_evidence_included_total",
            "counter",
            "Pieces of evidence in the blocks this node committed.",
            &self.evidence_included,
        );
        single(
            o,
            "agora_messages_received_total",
            "counter",
            "Peer messages received.",
            &self.messages_received,
        );
    }

    /// The signing gate and the double-sign alarm.
    fn render_signing(&self, o: &mut String) {
        single(
            o,
            "agora_signing_enabled",
            "gauge",
            "1 if this validator signs votes and proposals, 0 if its signing gate holds it back.",
            &self.signing_enabled,
        );
        single(
            o,
            "agora_signing_wait_remaining_heights",
            "gauge",
            "Heights without a foreign signature of our key still needed before signing.",
            &self.signing_wait_remaining,
        );
        single(
            o,
            "agora_double_sign_alarms_total",
            "counter",
            "Messages signed by this validator's key that this instance did not sign.",
            &self.double_sign_alarms,
        );
        single(
            o,
            "agora_connections_superseded_total",
            "counter",
            "Connections peers closed because another process presenting this node's TLS identity connected to them (a copy of this node's home running elsewhere?).",
            &self.connections_superseded,
        );
        single(
            o,
            "agora_address_validations_total",
            "counter",
            "Incoming peer connections answered with a QUIC Retry: each must prove it receives at its source address before it takes a handshake place.",
            &self.address_validations,
        );
        single(
            o,
            "agora_peer_identity_copies_total",
            "counter",
            "Connections from an incarnation of a peer that this node had superseded: two processes present that peer's TLS identity (a copy of its home is running).",
            &self.peer_copies_seen,
        );
    }

    /// This node's validator key in the ledger (`runner/standing.rs`).
    fn render_standing(&self, o: &mut String) {
        single(
            o,
            "agora_validator_active",
            "gauge",
            "1 if this node's validator key is in the most recently computed active set.",
            &self.validator_active,
        );
        single(
            o,
            "agora_validator_jailed",
            "gauge",
            "1 if this node's validator key is jailed (downtime, self-bond, or tombstoned for double signing): it earns nothing until unjailed.",
            &self.validator_jailed,
        );
        single(
            o,
            "agora_validator_missed_blocks",
            "gauge",
            "Precommits of this node's key missing from the current signing window; more than the window allows (half of it by default) jails it.",
            &self.validator_missed_blocks,
        );
        single(
            o,
            "agora_clock_behind_ms",
            "gauge",
            "How far the last committed block's time was ahead of this node's clock (0 if not); past consensus.max_clock_drift_ms this node refuses proposals as from the future: check NTP.",
            &self.clock_behind_ms,
        );
        single(
            o,
            "agora_block_lag_ms",
            "gauge",
            "Median, over the last 16 blocks other validators proposed and this node decided in the round that proposed them, of this node's clock at the commit minus the block's time (0 until 16 such blocks); a round's latency on a healthy chain, past consensus.max_clock_drift_ms when this node's clock runs ahead: check NTP.",
            &self.block_lag_ms,
        );
    }

    /// What peers and gRPC clients were charged, banned, refused or dropped.
    fn render_peers(&self, o: &mut String) {
        labelled(
            o,
            (
                "agora_peer_penalties_total",
                "counter",
                "Peers charged for misbehaviour, by reason.",
            ),
            "reason",
            PENALTY_NAMES.iter().copied().zip(&self.penalties),
        );
        labelled(
            o,
            (
                "agora_grpc_refused_total",
                "counter",
                "gRPC connections and requests refused by a limit, by reason.",
            ),
            "reason",
            GRPC_REFUSAL_NAMES.iter().copied().zip(&self.grpc_refused),
        );
        let charge_labels = || ChargeReason::ALL.iter().map(|r| r.label());
        labelled(
            o,
            (
                "agora_peer_charges_total",
                "counter",
                "Charges to peers' misbehaviour scores, by reason.",
            ),
            "reason",
            charge_labels().zip(&self.charges),
        );
        labelled(
            o,
            (
                "agora_peer_bans_total",
                "counter",
                "Peers banned, by the reason that reached the threshold.",
            ),
            "reason",
            charge_labels().zip(&self.bans),
        );
        labelled(
            o,
            (
                "agora_budget_dropped_total",
                "counter",
                "Work dropped unverified for a per-peer or node budget, by kind.",
            ),
            "kind",
            BUDGET_NAMES.iter().copied().zip(&self.budget_drops),
        );
    }

    /// Step durations and rounds per height.
    fn render_histograms(&self, o: &mut String) {
        let name = "agora_step_duration_seconds";
        family(o, name, "histogram", STEP_HELP);
        for (step, h) in STEP_NAMES.iter().zip(&self.steps) {
            histogram(o, name, &format!("step=\"{step}\""), h);
        }
        let name = "agora_height_rounds";
        family(
            o,
            name,
            "histogram",
            "Rounds each height this node committed took (its certificate's round + 1), synced heights included.",
        );
        histogram(o, name, "", &self.height_rounds);
    }
}

#[cfg(test)]
mod tests;
