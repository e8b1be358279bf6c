//! The double-sign guard (DESIGN §6): the last (height, round, step) this key
//! signed and a hash of what it signed.
//!
//! The core asks the guard before every signature. Signing is allowed for a
//! strictly later (height, round, step), or again for the same one only if the
//! bytes are identical (BLS is deterministic, so re-signing yields the same
//! signature and is harmless). Every advance is emitted as
//! `Output::PersistSigningState`, which the host must make durable before it
//! sends the message signed after it. On restart the host passes the persisted
//! state back in, so a crash can never lead to two different signatures for one
//! (height, round, step).

use crate::crypto::{Hash, sha3_256};
use crate::types::{Height, Round};

/// The kind of message signed at a (height, round); ordered as the protocol
/// signs them within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SignStep {
    /// A proposal.
    Propose = 0,
    /// A prevote.
    Prevote = 1,
    /// A precommit.
    Precommit = 2,
}

/// Length of [`SigningState::to_bytes`].
pub const SIGNING_STATE_LEN: usize = 8 + 4 + 1 + 32 + 32 + 1 + 32 + 4;

/// Why persisted signing-state bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningStateError {
    /// Wrong length.
    #[error("signing state must be {SIGNING_STATE_LEN} bytes, got {0}")]
    Length(usize),
    /// Unknown step code.
    #[error("unknown signing step code {0}")]
    Step(u8),
    /// Lock flag other than 0 or 1.
    #[error("bad lock flag {0}")]
    LockFlag(u8),
}

/// The last thing signed; persisted by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningState {
    /// Height of the last signature.
    pub height: Height,
    /// Round of the last signature.
    pub round: Round,
    /// Step of the last signature.
    pub step: SignStep,
    /// SHA3-256 of the signing bytes of the last signature.
    pub signed_hash: Hash,
    /// The block hash that was signed (zero for nil), so that after a restart
    /// the same vote can be sent again instead of none.
    pub value: Hash,
    /// The lock held at `height` when signing (value, round). Persisting it
    /// keeps a restarted validator from forgetting its lock, which would make
    /// it behave like a faulty one.
    pub locked: Option<(Hash, Round)>,
}

/// The host's record of whether its last signature's WAL record is
/// durable: when the WAL must be synced before the next signing state.
///
/// [`SigningState::wal_first`] alone would let two prevotes of one height
/// go out unsynced (a prevote, a skip to a higher round before any
/// precommit, a prevote there). After a crash the file covers only the
/// second, the WAL holds neither, and a peer relaying the first one back
/// looks like another instance signing with our key: the signing gate's
/// alarm, which stops this validator for good. So at most one signature
/// is ever without a durable record, the one the file holds: a signature
/// at the height of an unsynced one syncs first. The block commit of a
/// height writes the WAL and closes the height (its own positions are
/// never checked again), so the next height starts clean. After a restart
/// the restored state's record may be missing, so its height starts
/// unsynced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalSync {
    /// The height of a signature whose WAL record is not durable.
    unsynced: Option<Height>,
}

impl WalSync {
    /// The tracker of a host restarted with `restored` in its file.
    pub fn restored(restored: Option<&SigningState>) -> Self {
        Self {
            unsynced: restored.map(|s| s.height),
        }
    }

    /// Whether the WAL must be made durable before `s` is persisted; the
    /// host must then do so (the answer is recorded).
    pub fn before(&mut self, s: &SigningState) -> bool {
        let sync = s.wal_first() || self.unsynced == Some(s.height);
        self.unsynced = (!sync).then_some(s.height);
        sync
    }
}

/// The guard's answer to a signing request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignDecision {
    /// Sign; the state advanced and must be persisted before sending.
    SignNew(SigningState),
    /// Sign; the exact same bytes were signed before (nothing new to persist).
    SignAgain,
    /// Refuse: signing would risk a double sign.
    Refuse,
}

impl SigningState {
    /// Whether the host must make its WAL durable before this state (and
    /// so before the signature it allows leaves the node): for a precommit
    /// or a proposal, not for a prevote.
    ///
    /// A precommit is the signature that locks. A validator locked on v
    /// prevotes nothing else until a later polka, so if every locked
    /// validator lost v's block in a crash (a power cut of a whole site,
    /// after they precommitted and before the commit) no one could
    /// propose v again and no polka for another value could form: the
    /// chain would stop for good. Synced first, the WAL holds the proposal
    /// carrying v and the polka behind the lock, and the replay at restart
    /// rebuilds the lock, the valid value and the block.
    ///
    /// A proposal carries a block that exists nowhere else yet. Synced
    /// first (with the prevote the core appends beside it), a proposer
    /// that crashes right after sending it finds it in its WAL, adopts the
    /// signatures (`engine/restart.rs`) and gossips the same block again,
    /// instead of losing its round.
    ///
    /// A prevote needs neither: safety rests on this state alone (the
    /// guard refuses other bytes at a signed position, and `value` lets the
    /// same vote be signed again: BLS is deterministic), and the inputs
    /// behind a prevote lost in a crash cost at most that round's progress
    /// for this node, which peers' gossip restores. Own records the WAL
    /// keeps still come before the state that allowed them, so the
    /// adoption at restart sees a prefix of them. Skipping this sync is
    /// one redb commit and fsync fewer per validator-height. A host asks
    /// through [`WalSync`], which also syncs before a second signature at
    /// one height while the first one's record is not durable.
    fn wal_first(&self) -> bool {
        self.step != SignStep::Prevote
    }

    /// Fixed-width encoding for the host's durable store.
    pub fn to_bytes(&self) -> [u8; SIGNING_STATE_LEN] {
        let mut out = [0u8; SIGNING_STATE_LEN];
        out[..8].copy_from_slice(&self.height.to_be_bytes());
        out[8..12].copy_from_slice(&self.round.to_be_bytes());
        out[12] = self.step as u8;
        out[13..45].copy_from_slice(&self.signed_hash);
        out[45..77].copy_from_slice(&self.value);
        if let Some((v, r)) = self.locked {
            out[77] = 1;
            out[78..110].copy_from_slice(&v);
            out[110..114].copy_from_slice(&r.to_be_bytes());
        }
        out
    }

    /// Decodes [`Self::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Self, SigningStateError> {
        if b.len() != SIGNING_STATE_LEN {
            return Err(SigningStateError::Length(b.len()));
        }
        let mut h = [0u8; 8];
        h.copy_from_slice(&b[..8]);
        let mut r = [0u8; 4];
        r.copy_from_slice(&b[8..12]);
        let step = match b[12] {
            0 => SignStep::Propose,
            1 => SignStep::Prevote,
            2 => SignStep::Precommit,
            s => return Err(SigningStateError::Step(s)),
        };
        let hash_at = |i: usize| {
            let mut x = [0u8; 32];
            x.copy_from_slice(&b[i..i + 32]);
            x
        };
        let locked = match b[77] {
            0 => None,
            1 => {
                let mut lr = [0u8; 4];
                lr.copy_from_slice(&b[110..114]);
                Some((hash_at(78), u32::from_be_bytes(lr)))
            }
            f => return Err(SigningStateError::LockFlag(f)),
        };
        Ok(Self {
            height: u64::from_be_bytes(h),
            round: u32::from_be_bytes(r),
            step,
            signed_hash: hash_at(13),
            value: hash_at(45),
            locked,
        })
    }

    fn position(&self) -> (Height, Round, SignStep) {
        (self.height, self.round, self.step)
    }
}

/// What a signing request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignRequest<'a> {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// Step.
    pub step: SignStep,
    /// The exact bytes to sign.
    pub bytes: &'a [u8],
    /// The block hash they commit to (zero for nil).
    pub value: Hash,
    /// The lock held when signing.
    pub locked: Option<(Hash, Round)>,
}

/// Decides whether a request may be signed given the last signing state
/// (None: never signed).
pub fn check(last: Option<&SigningState>, req: &SignRequest<'_>) -> SignDecision {
    let next = SigningState {
        height: req.height,
        round: req.round,
        step: req.step,
        signed_hash: sha3_256(req.bytes),
        value: req.value,
        locked: req.locked,
    };
    match last {
        None => SignDecision::SignNew(next),
        Some(l) if next.position() > l.position() => SignDecision::SignNew(next),
        Some(l) if next.position() == l.position() && next.signed_hash == l.signed_hash => {
            SignDecision::SignAgain
        }
        Some(_) => SignDecision::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(height: Height, round: Round, step: SignStep) -> SigningState {
        SigningState {
            height,
            round,
            step,
            signed_hash: [round as u8; 32],
            value: [1; 32],
            locked: None,
        }
    }

    #[test]
    fn at_most_one_signature_waits_for_its_wal_record() {
        use SignStep::*;
        let mut w = WalSync::default();
        // A height as usual: only the precommit (and a proposal) sync.
        assert!(!w.before(&signed(5, 0, Prevote)));
        assert!(w.before(&signed(5, 0, Precommit)));
        assert!(w.before(&signed(6, 0, Propose)));
        assert!(!w.before(&signed(6, 0, Prevote)));
        // A skip to a later round before precommitting: the second
        // prevote of the height syncs the first one's record first.
        assert!(!w.before(&signed(7, 0, Prevote)));
        assert!(w.before(&signed(7, 2, Prevote)));
        // The next height starts clean (its block commit wrote the WAL).
        assert!(!w.before(&signed(8, 0, Prevote)));
        // Negative control: the rule alone would leave both unsynced.
        assert!(!signed(7, 0, Prevote).wal_first() && !signed(7, 2, Prevote).wal_first());
    }

    #[test]
    fn a_restart_syncs_before_the_first_signature_at_the_restored_height() {
        let restored = signed(9, 1, SignStep::Prevote);
        let mut w = WalSync::restored(Some(&restored));
        assert!(w.before(&signed(9, 2, SignStep::Prevote)));
        assert!(!w.before(&signed(10, 0, SignStep::Prevote)));
        // Nothing restored: nothing waits.
        assert!(!WalSync::restored(None).before(&signed(1, 0, SignStep::Prevote)));
    }

    fn req(height: Height, round: Round, step: SignStep, bytes: &[u8]) -> SignRequest<'_> {
        SignRequest {
            height,
            round,
            step,
            bytes,
            value: [0; 32],
            locked: None,
        }
    }

    #[test]
    fn guard_orders_and_refuses() {
        let s = match check(None, &req(5, 1, SignStep::Prevote, b"a")) {
            SignDecision::SignNew(s) => s,
            other => panic!("expected SignNew, got {other:?}"),
        };
        let c = |r: SignRequest<'_>| check(Some(&s), &r);
        assert_eq!(
            c(req(5, 1, SignStep::Prevote, b"a")),
            SignDecision::SignAgain
        );
        assert_eq!(c(req(5, 1, SignStep::Prevote, b"b")), SignDecision::Refuse);
        assert_eq!(
            c(req(5, 0, SignStep::Precommit, b"a")),
            SignDecision::Refuse
        );
        assert_eq!(
            c(req(4, 9, SignStep::Precommit, b"a")),
            SignDecision::Refuse
        );
        assert!(matches!(
            c(req(5, 1, SignStep::Precommit, b"b")),
            SignDecision::SignNew(_)
        ));
        assert!(matches!(
            c(req(6, 0, SignStep::Propose, b"b")),
            SignDecision::SignNew(_)
        ));
    }

    #[test]
    fn bytes_roundtrip() {
        let s = SigningState {
            height: 7,
            round: 3,
            step: SignStep::Precommit,
            signed_hash: [9; 32],
            value: [3; 32],
            locked: Some(([4; 32], 2)),
        };
        assert_eq!(SigningState::from_bytes(&s.to_bytes()), Ok(s));
        assert_eq!(
            SigningState::from_bytes(&[0; 3]),
            Err(SigningStateError::Length(3))
        );
        let unlocked = SigningState { locked: None, ..s };
        assert_eq!(SigningState::from_bytes(&unlocked.to_bytes()), Ok(unlocked));
        let mut b = s.to_bytes();
        b[12] = 7;
        assert_eq!(
            SigningState::from_bytes(&b),
            Err(SigningStateError::Step(7))
        );
    }
}
