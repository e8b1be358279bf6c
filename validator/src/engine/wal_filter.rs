//! Which consensus inputs go to the WAL: only those the core took.
//!
//! The WAL exists so that a restarted core rebuilds the height it was
//! deciding (vote sets, proposals, its lock and the polka that proves it,
//! its own messages). Inputs the core rejected (bad signature, wrong
//! proposer, malformed) or had already taken (a duplicate delivery: peers
//! re-gossip the height's messages every tick) change nothing in it, so
//! logging them only made the WAL grow with time and with what peers sent.
//! Keeping them out bounds a height's WAL by what the core holds: per round
//! at most two proposals (the second one only as evidence), per voter and
//! (round, type) one unverified vote plus verified conflicting ones (see
//! `consensus::vote_set`), and rounds only up to `max_rounds_ahead` past the
//! current one. Restart time therefore grows with the rounds the height
//! took, not with its wall-clock time or the peers' traffic. The record is
//! still appended before anything the input caused is sent (the engine
//! places it in front of the input's actions), so the crash-recovery
//! guarantees are unchanged: every input that moved the core is replayed.
//!
//! Bound: one 32-byte hash per proposal or vote logged at the current
//! height (cleared when the height changes), so no more than the WAL
//! itself holds records.

use std::collections::BTreeSet;

use crate::consensus::{Input, Output};
use crate::crypto::{Hash, sha3_256, sha3_256_parts};
use crate::types::Height;
use prost::Message;

/// The hashes of the proposals and votes logged at one height.
#[derive(Debug, Clone, Default)]
pub(super) struct WalFilter {
    height: Height,
    logged: BTreeSet<Hash>,
}

impl WalFilter {
    /// Whether `input` of `height`, which produced `outputs`, must be logged.
    pub(super) fn admit(&mut self, height: Height, input: &Input, outputs: &[Output]) -> bool {
        if height != self.height {
            self.height = height;
            self.logged.clear();
        }
        let key = match input {
            Input::Proposal(p) => {
                let header = p
                    .block
                    .as_ref()
                    .and_then(|b| b.header.as_ref())
                    .map(|h| h.encode_to_vec())
                    .unwrap_or_default();
                sha3_256_parts(&[&p.round.to_be_bytes(), &p.signature, &header])
            }
            Input::Vote(v) => sha3_256(&v.encode_to_vec()),
            // Timeouts fire once each; verdicts and our template come once
            // per block and round from the engine itself.
            _ => return true,
        };
        if outputs.iter().any(|o| matches!(o, Output::Rejected(_))) {
            return false;
        }
        self.logged.insert(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::RejectReason;
    use agora_proto::v1 as pb;

    #[test]
    fn duplicates_and_rejections_stay_out() {
        let mut f = WalFilter::default();
        let v = Input::Vote(pb::Vote {
            height: 3,
            round: 1,
            ..Default::default()
        });
        assert!(f.admit(3, &v, &[]));
        assert!(!f.admit(3, &v, &[]), "a duplicate delivery is not logged");
        let other = Input::Vote(pb::Vote {
            height: 3,
            round: 2,
            ..Default::default()
        });
        let rejected = [Output::Rejected(RejectReason::Malformed("x"))];
        assert!(!f.admit(3, &other, &rejected));
        assert!(
            f.admit(3, &other, &[]),
            "rejection is not remembered as logged"
        );
        // A new height starts afresh.
        assert!(f.admit(4, &v, &[]));
        let t = Input::TimeoutFired(crate::consensus::Timeout {
            height: 4,
            round: 0,
            step: crate::consensus::TimeoutStep::Propose,
        });
        assert!(f.admit(4, &t, &[]));
    }
}
