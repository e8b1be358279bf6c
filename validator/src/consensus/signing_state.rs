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
pub const SIGNING_STATE_LEN: usize = 8 + 4 + 1 + 32;

/// Why persisted signing-state bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningStateError {
    /// Wrong length.
    #[error("signing state must be {SIGNING_STATE_LEN} bytes, got {0}")]
    Length(usize),
    /// Unknown step code.
    #[error("unknown signing step code {0}")]
    Step(u8),
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
    /// Fixed-width encoding for the host's durable store.
    pub fn to_bytes(&self) -> [u8; SIGNING_STATE_LEN] {
        let mut out = [0u8; SIGNING_STATE_LEN];
        out[..8].copy_from_slice(&self.height.to_be_bytes());
        out[8..12].copy_from_slice(&self.round.to_be_bytes());
        out[12] = self.step as u8;
        out[13..].copy_from_slice(&self.signed_hash);
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
        let mut signed_hash = [0u8; 32];
        signed_hash.copy_from_slice(&b[13..]);
        Ok(Self {
            height: u64::from_be_bytes(h),
            round: u32::from_be_bytes(r),
            step,
            signed_hash,
        })
    }

    fn position(&self) -> (Height, Round, SignStep) {
        (self.height, self.round, self.step)
    }
}

/// Decides whether `bytes` may be signed at (height, round, step) given the
/// last signing state (None: never signed).
pub fn check(
    last: Option<&SigningState>,
    height: Height,
    round: Round,
    step: SignStep,
    bytes: &[u8],
) -> SignDecision {
    let next = SigningState {
        height,
        round,
        step,
        signed_hash: sha3_256(bytes),
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

    #[test]
    fn guard_orders_and_refuses() {
        let s = match check(None, 5, 1, SignStep::Prevote, b"a") {
            SignDecision::SignNew(s) => s,
            other => panic!("expected SignNew, got {other:?}"),
        };
        assert_eq!(
            check(Some(&s), 5, 1, SignStep::Prevote, b"a"),
            SignDecision::SignAgain
        );
        assert_eq!(
            check(Some(&s), 5, 1, SignStep::Prevote, b"b"),
            SignDecision::Refuse
        );
        assert_eq!(
            check(Some(&s), 5, 0, SignStep::Precommit, b"a"),
            SignDecision::Refuse
        );
        assert_eq!(
            check(Some(&s), 4, 9, SignStep::Precommit, b"a"),
            SignDecision::Refuse
        );
        assert!(matches!(
            check(Some(&s), 5, 1, SignStep::Precommit, b"b"),
            SignDecision::SignNew(_)
        ));
        assert!(matches!(
            check(Some(&s), 6, 0, SignStep::Propose, b"b"),
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
        };
        assert_eq!(SigningState::from_bytes(&s.to_bytes()), Ok(s));
        assert_eq!(
            SigningState::from_bytes(&[0; 3]),
            Err(SigningStateError::Length(3))
        );
        let mut b = s.to_bytes();
        b[12] = 7;
        assert_eq!(
            SigningState::from_bytes(&b),
            Err(SigningStateError::Step(7))
        );
    }
}
