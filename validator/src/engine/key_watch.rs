//! Watching our own key: what this instance signed at the heights being
//! decided, and whether a message of our key from the network is one of
//! them. Feeds the [`SigningGate`].
//!
//! Our own messages come back to us through gossip relays; they must not
//! look foreign. Every signature this instance makes is recorded here by
//! the SHA3-256 of its signing bytes (the same hash the signing state
//! keeps), and so is every own message a WAL replay brings back after a
//! restart. A message of our key that matches no record, and whose
//! signature verifies under our key, was made by someone else holding the
//! key (or by this validator before it lost its state): the gate decides
//! what that means.
//!
//! Bound: one entry per signed (height, round, step) of the heights at or
//! above the one being decided (pruned at every height start), i.e. at most
//! three per round of the current height, 48 bytes each.

use std::collections::BTreeMap;

use crate::certificate::CommitCertificate;
use crate::consensus::{SignStep, SigningGate, SigningState};
use crate::crypto::{Hash, PublicKey, Signature, ZERO_HASH, sha3_256};
use crate::signing::{proposal_bytes, vote_bytes};
use crate::types::{Address, ChainId, Height, Round, VoteType};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;

/// A consensus message reduced to what identifies its signature.
#[derive(Debug, Clone)]
pub(super) struct Signed {
    height: Height,
    round: Round,
    step: SignStep,
    /// The block hash signed (zero for a nil vote).
    value: Hash,
    bytes: Vec<u8>,
    signature: Vec<u8>,
}

impl Signed {
    /// A vote's signing position and bytes (None if malformed).
    pub(super) fn of_vote(chain: &ChainId, v: &pb::Vote) -> Option<Self> {
        let vote_type = VoteType::from_i32(v.vote_type)?;
        let value: Hash = match v.block_hash.len() {
            0 => ZERO_HASH,
            _ => Hash::try_from(v.block_hash.as_slice()).ok()?,
        };
        Some(Self {
            height: v.height,
            round: v.round,
            step: match vote_type {
                VoteType::Prevote => SignStep::Prevote,
                VoteType::Precommit => SignStep::Precommit,
            },
            value,
            bytes: vote_bytes(chain, vote_type, v.height, v.round, &value),
            signature: v.signature.clone(),
        })
    }

    /// A proposal's signing position and bytes (None if malformed).
    pub(super) fn of_proposal(chain: &ChainId, p: &pb::Proposal) -> Option<Self> {
        let header = p.block.as_ref()?.header.as_ref()?;
        let hash = crate::block::header_hash(header);
        Some(Self {
            height: p.height,
            round: p.round,
            step: SignStep::Propose,
            value: hash,
            bytes: proposal_bytes(chain, p.height, p.round, p.pol_round, &hash),
            signature: p.signature.clone(),
        })
    }
}

impl Signed {
    /// Its height.
    pub(super) fn height(&self) -> Height {
        self.height
    }

    /// Its signing position.
    pub(super) fn position(&self) -> (Height, Round, SignStep) {
        (self.height, self.round, self.step)
    }

    /// The signing state that covers this signature, holding `locked`.
    pub(super) fn as_signing_state(&self, locked: Option<(Hash, Round)>) -> SigningState {
        SigningState {
            height: self.height,
            round: self.round,
            step: self.step,
            signed_hash: sha3_256(&self.bytes),
            value: self.value,
            locked,
        }
    }

    /// Whether it is a precommit for a block (the core locks on that block
    /// in the same step, Tendermint's line 36).
    pub(super) fn locks(&self) -> Option<(Hash, Round)> {
        (self.step == SignStep::Precommit && self.value != ZERO_HASH)
            .then_some((self.value, self.round))
    }

    /// Whether the signature verifies under `key`.
    pub(super) fn verifies(&self, key: &PublicKey) -> bool {
        Signature::from_bytes(&self.signature)
            .is_ok_and(|sig| key.verify(&self.bytes, &sig).is_ok())
    }
}

/// Our key, what it signed, and the gate.
#[derive(Debug, Clone)]
pub(super) struct KeyWatch {
    /// Our key (None for an observer: nothing to watch).
    key: Option<(Address, PublicKey)>,
    /// SHA3-256 of the signing bytes of what this instance signed, by position.
    own: BTreeMap<(Height, Round, SignStep), Hash>,
    pub(super) gate: SigningGate,
    /// The host signs conflicting votes on purpose (testnets' fault
    /// injection, [`super::Engine::record_own_vote`]): evidence against our
    /// key is then this instance's own doing, not a second instance's.
    pub(super) equivocates_on_purpose: bool,
}

impl KeyWatch {
    pub(super) fn new(key: Option<PublicKey>, restored: Option<&SigningState>) -> Self {
        let mut own = BTreeMap::new();
        if let Some(s) = restored {
            own.insert((s.height, s.round, s.step), s.signed_hash);
        }
        Self {
            key: key.map(|k| (Address::of(&k), k)),
            own,
            gate: SigningGate::default(),
            equivocates_on_purpose: false,
        }
    }

    /// Our public key (None for an observer).
    pub(super) fn key(&self) -> Option<&PublicKey> {
        self.key.as_ref().map(|(_, k)| k)
    }

    /// Whether `address` is our key's.
    pub(super) fn is_ours(&self, address: &[u8]) -> bool {
        self.key.as_ref().is_some_and(|(a, _)| a.0 == address)
    }

    /// Records a message this instance signed (or replayed from its WAL).
    pub(super) fn record(&mut self, m: &Signed) {
        self.own
            .insert((m.height, m.round, m.step), sha3_256(&m.bytes));
    }

    /// Forgets positions below `height` (the height being started).
    pub(super) fn prune_below(&mut self, height: Height) {
        self.own = self.own.split_off(&(height, 0, SignStep::Propose));
    }

    /// A message of our key arrived from the network at a height not yet
    /// decided: true if it is a valid signature this instance did not make
    /// (the gate has been told). A forgery (bad signature) is not ours and
    /// not foreign: the core rejects it and charges the sender.
    pub(super) fn check_incoming(&mut self, m: &Signed) -> bool {
        let Some((_, pk)) = &self.key else {
            return false;
        };
        if self.own.get(&(m.height, m.round, m.step)) == Some(&sha3_256(&m.bytes)) {
            return false; // our own message, relayed back
        }
        let valid = m.verifies(pk);
        if valid {
            self.gate.on_foreign_signature(m.height);
        }
        valid
    }

    /// Whether `cert` (of a height whose set is `set`) holds our signature.
    pub(super) fn signed_certificate(
        &self,
        cert: &CommitCertificate,
        set: Option<&ValidatorSet>,
    ) -> bool {
        let (Some((addr, _)), Some(set)) = (&self.key, set) else {
            return false;
        };
        set.index_of(addr)
            .is_some_and(|i| crate::certificate::bit(&cert.signers, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::GateStatus;
    use crate::crypto::SecretKey;

    fn chain() -> ChainId {
        ChainId::new("watch-test").unwrap()
    }

    fn vote(key: &SecretKey, round: Round, value: Hash) -> pb::Vote {
        let bytes = vote_bytes(&chain(), VoteType::Prevote, 5, round, &value);
        pb::Vote {
            vote_type: VoteType::Prevote as i32,
            height: 5,
            round,
            block_hash: value.to_vec(),
            validator_address: Address::of(&key.public_key()).0.to_vec(),
            signature: key.sign(&bytes).to_bytes().to_vec(),
        }
    }

    #[test]
    fn own_relays_are_quiet_foreign_and_forged_are_told_apart() {
        let key = SecretKey::from_seed(&[7; 32]).unwrap();
        let mut w = KeyWatch::new(Some(key.public_key()), None);
        w.gate = SigningGate::open(3);
        let mine = vote(&key, 0, [1; 32]);
        w.record(&Signed::of_vote(&chain(), &mine).unwrap());
        assert!(w.is_ours(&mine.validator_address));
        // Relayed back: not foreign.
        assert!(!w.check_incoming(&Signed::of_vote(&chain(), &mine).unwrap()));
        // A forgery with our address: not foreign, gate untouched.
        let mut forged = vote(&key, 0, [2; 32]);
        forged.signature = mine.signature.clone();
        assert!(!w.check_incoming(&Signed::of_vote(&chain(), &forged).unwrap()));
        assert!(w.gate.may_sign());
        // Another value at our position, validly signed: the alarm.
        let other = vote(&key, 0, [2; 32]);
        assert!(w.check_incoming(&Signed::of_vote(&chain(), &other).unwrap()));
        assert_eq!(w.gate.status(), GateStatus::Alarmed { height: 5 });
    }

    #[test]
    fn a_position_we_never_signed_is_foreign_and_pruning_forgets() {
        let key = SecretKey::from_seed(&[8; 32]).unwrap();
        let restored = SigningState {
            height: 5,
            round: 0,
            step: SignStep::Prevote,
            signed_hash: sha3_256(&vote_bytes(&chain(), VoteType::Prevote, 5, 0, &[1; 32])),
            value: [1; 32],
            locked: None,
        };
        let mut w = KeyWatch::new(Some(key.public_key()), Some(&restored));
        // The restored state's own message is known.
        assert!(!w.check_incoming(&Signed::of_vote(&chain(), &vote(&key, 0, [1; 32])).unwrap()));
        // Round 1 was never signed by us.
        assert!(w.check_incoming(&Signed::of_vote(&chain(), &vote(&key, 1, [1; 32])).unwrap()));
        w.prune_below(6);
        assert!(w.own.is_empty());
    }
}
