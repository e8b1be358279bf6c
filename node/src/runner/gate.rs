//! The signing gate in the log and the metrics: the runner reports every
//! change of the engine's gate (one warn line while it waits, with the
//! reason and the heights that remain; an error line on a double-sign
//! alarm) and keeps `agora_signing_enabled`,
//! `agora_signing_wait_remaining_heights` and
//! `agora_double_sign_alarms_total` current.

use agora_validator::consensus::{GateStatus, SigningGate};
use tracing::{debug, error, info, warn};

use crate::metrics::Metrics;

/// What was last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reported {
    status: GateStatus,
    alarms: u64,
}

impl Reported {
    /// The gate as restored (its start was logged by `restore::announce_gate`).
    pub(super) fn new(gate: &SigningGate, metrics: &Metrics) -> Self {
        let r = Self {
            status: gate.status(),
            alarms: 0,
        };
        r.set_gauges(gate, metrics);
        r
    }

    fn set_gauges(&self, gate: &SigningGate, metrics: &Metrics) {
        Metrics::set(&metrics.signing_enabled, u64::from(gate.may_sign()));
        let remaining = match gate.status() {
            GateStatus::Waiting { remaining, .. } => remaining,
            GateStatus::Unknown => gate.required(),
            _ => 0,
        };
        Metrics::set(&metrics.signing_wait_remaining, remaining);
    }

    /// Reports what changed since the last call.
    pub(super) fn update(&mut self, gate: &SigningGate, metrics: &Metrics) {
        for _ in self.alarms..gate.alarms() {
            Metrics::inc(&metrics.double_sign_alarms);
        }
        self.alarms = gate.alarms();
        let status = gate.status();
        if status == self.status {
            return;
        }
        let (before, counted) = match self.status {
            GateStatus::Waiting { reason, remaining } => {
                (Some(std::mem::discriminant(&reason)), Some(remaining))
            }
            _ => (None, None),
        };
        self.status = status;
        self.set_gauges(gate, metrics);
        match status {
            GateStatus::Open => info!("signing enabled: no foreign signature of this key was seen"),
            GateStatus::Unknown => {}
            GateStatus::Waiting { reason, remaining } => {
                // A new reason is worth the warn line; the count going down
                // is routine; the count starting again for the same reason
                // happens at every synced block our key signed before a
                // wipe (thousands in a catch-up), so it is a debug line.
                if before != Some(std::mem::discriminant(&reason)) {
                    warn!(
                        remaining_heights = remaining,
                        "signing paused: {reason}; following the chain without signing until {remaining} heights pass without any message of this key"
                    );
                } else if counted.is_some_and(|c| remaining < c) {
                    info!(remaining_heights = remaining, %reason, "signing still paused");
                } else {
                    debug!(remaining_heights = remaining, %reason, "signing still paused");
                }
            }
            GateStatus::Alarmed { height } => error!(
                height,
                "DOUBLE-SIGN ALARM: a message signed by this validator's key that this node did not sign arrived at height {height}; another instance is running this key. Signing stopped until restart: stop the other instance before restarting this one"
            ),
        }
    }
}
