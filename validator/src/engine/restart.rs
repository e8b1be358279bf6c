//! A restart: what the engine does with the WAL of the height it was
//! deciding, before it signs anything.
//!
//! The WAL holds the inputs that moved the core and our own messages, which
//! are appended in front of the signing state that allows them (see
//! `drive`). Before a proposal's or a precommit's state
//! (`SigningState::wal_first`) the host's fsync of the WAL comes first and
//! the signing state's file second, so a crash between the two leaves
//! signatures on disk that the restored signing state does not cover. They were never
//! sent (nothing is sent before its signing state is durable), but they
//! exist: the replay brings them back and the engine gossips them like
//! every own message. A guard that does not know them lets the core sign a
//! *different* message at the same position first: a double sign. (Found
//! by the real-process kill test: a proposer killed right there proposed a
//! new block at restart, then gossiped the old one with its prevote.)
//!
//! So [`Engine::resume`] first adopts them: the core's guard advances to
//! the highest of them, and only then is the height started and the WAL
//! replayed. A message the adopted state covers is either the one signed
//! there or one below it, and each position in the WAL holds at most one of
//! our signatures (the guard allowed each), so nothing signed after the
//! restart can conflict.
//!
//! The adopted state is persisted like any new signing state (an action
//! before every other), so the file covers every signature that leaves the
//! node (DESIGN §8). One exception: while the signing gate waits (the file
//! was missing, or older than the chain shows), it stays in memory. Written
//! then, the file would cover only what this WAL holds and let the next
//! start skip the gate's wait; and it need not be, since the WAL keeps those
//! records until their height commits, so every restart adopts them again.

use super::block_rules::{self, MempoolView};
use super::drive::Log;
use super::key_watch::Signed;
use super::{Action, Engine, EngineError};
use crate::consensus::{GateStatus, Input, SigningState, TestFault};

impl<P: Copy + Ord + std::fmt::Debug> Engine<P> {
    /// Resumes the height being decided after a restart: adopts the WAL's
    /// signatures of our key that the signing state misses (see the module
    /// docs), starts the height, and feeds `wal` (its records, in order)
    /// again. The records are not logged a second time.
    pub fn resume(
        &mut self,
        wal: Vec<Input>,
        now_ms: u64,
        mempool: &dyn MempoolView,
    ) -> Result<Vec<Action<P>>, EngineError> {
        let mut out = Vec::new();
        if let Some(s) = self.adopt_logged_signatures(&wal)
            && self.persists_adopted()
        {
            out.push(Action::PersistSigningState(s));
        }
        self.start_into(now_ms, mempool, &mut out)?;
        for input in wal {
            // A logged proposal's body is checked like a peer's: the core
            // must hold only bodies that match their headers (and
            // `BodyHashes` relies on it). A record that fails is not ours to
            // trust: the file was damaged or altered; it is skipped.
            if let Input::Proposal(p) = &input
                && let Some(block) = &p.block
                && block_rules::check_body(block).is_err()
            {
                continue;
            }
            // Our own messages come back: remember them as ours, so that
            // their relayed copies are not taken for another instance's.
            if let Some(m) = self.own_message(&input) {
                self.watch.record(&m);
            }
            self.drive(input, Log::Nothing, now_ms, mempool, &mut out)?;
        }
        Ok(out)
    }

    /// Whether an adopted signing state goes to the file: unless the gate
    /// waits (see the module docs).
    fn persists_adopted(&self) -> bool {
        matches!(
            self.watch.gate.status(),
            GateStatus::Open | GateStatus::Unknown
        )
    }

    /// Advances the core's guard past every valid signature of our key in
    /// `wal` (records of the current height) that it does not cover; the
    /// new state, if it moved.
    fn adopt_logged_signatures(&mut self, wal: &[Input]) -> Option<SigningState> {
        let key = self.watch.key().cloned()?;
        if forget_logged_signatures_fault(self.config.consensus.test_fault) {
            return None;
        }
        let h = self.height();
        let mut ours: Vec<Signed> = wal
            .iter()
            .filter_map(|i| self.own_message(i))
            .filter(|m| m.height() == h && m.verifies(&key))
            .collect();
        ours.sort_by_key(Signed::position);
        // The lock the core held when it signed the last of them: a
        // precommit for a block is signed in the step that locks on it.
        let restored = self.core.signing_state();
        let mut locked = restored.filter(|s| s.height == h).and_then(|s| s.locked);
        let mut adopted = None;
        for m in &ours {
            locked = m.locks().or(locked);
            adopted = self
                .core
                .adopt_signature(m.as_signing_state(locked))
                .or(adopted);
        }
        adopted
    }
}

#[cfg(feature = "test-faults")]
fn forget_logged_signatures_fault(f: TestFault) -> bool {
    f == TestFault::ForgetLoggedSignatures
}
#[cfg(not(feature = "test-faults"))]
fn forget_logged_signatures_fault(_: TestFault) -> bool {
    false
}
