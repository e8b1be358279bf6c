//! Validator sets in canonical order (ascending address), their total power,
//! quorum thresholds and hash.

use crate::crypto::{Hash, PublicKey, sha3_256};
use crate::types::{Address, Power};
use agora_proto::v1 as pb;

/// One validator of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    /// Address of the consensus key.
    pub address: Address,
    /// Consensus public key (with a verified proof of possession).
    pub public_key: PublicKey,
    /// Voting power, at least 1.
    pub power: Power,
}

impl Validator {
    /// A validator whose address is derived from its key.
    pub fn new(public_key: PublicKey, power: Power) -> Self {
        Self {
            address: Address::of(&public_key),
            public_key,
            power,
        }
    }
}

/// Why a validator set is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorSetError {
    /// A set must have at least one validator.
    #[error("validator set is empty")]
    Empty,
    /// Two entries share an address.
    #[error("duplicate validator {0}")]
    Duplicate(Address),
    /// A validator has no power.
    #[error("validator {0} has zero power")]
    ZeroPower(Address),
    /// The total power does not fit the arithmetic headroom (2^60).
    #[error("total voting power too large")]
    PowerOverflow,
    /// An entry from the wire is malformed.
    #[error("bad validator entry: {0}")]
    BadEntry(String),
}

/// Largest total power accepted; leaves headroom for `3 * power` in u128 math
/// and for summing without overflow.
pub const MAX_TOTAL_POWER: Power = 1 << 60;

/// A validator set sorted in canonical order (ascending address). Indices into
/// it are the bit positions of certificate bitmaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total_power: Power,
    hash: Hash,
}

impl ValidatorSet {
    /// Builds a set from validators in any order; sorts them canonically.
    pub fn new(mut validators: Vec<Validator>) -> Result<Self, ValidatorSetError> {
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        validators.sort_by_key(|v| v.address);
        let mut total: Power = 0;
        for (i, v) in validators.iter().enumerate() {
            if i > 0 && validators[i - 1].address == v.address {
                return Err(ValidatorSetError::Duplicate(v.address));
            }
            if v.power == 0 {
                return Err(ValidatorSetError::ZeroPower(v.address));
            }
            total = total
                .checked_add(v.power)
                .filter(|t| *t <= MAX_TOTAL_POWER)
                .ok_or(ValidatorSetError::PowerOverflow)?;
        }
        let hash = Self::compute_hash(&validators);
        Ok(Self {
            validators,
            total_power: total,
            hash,
        })
    }

    /// `SHA3-256("agora/valset/v1" ‖ n (u32) ‖ for each: address ‖ public key ‖ power (u64))`.
    fn compute_hash(validators: &[Validator]) -> Hash {
        let mut buf = Vec::with_capacity(16 + 4 + validators.len() * (20 + 48 + 8));
        buf.extend_from_slice(b"agora/valset/v1");
        buf.extend_from_slice(&(validators.len() as u32).to_be_bytes());
        for v in validators {
            buf.extend_from_slice(&v.address.0);
            buf.extend_from_slice(&v.public_key.to_bytes());
            buf.extend_from_slice(&v.power.to_be_bytes());
        }
        sha3_256(&buf)
    }

    /// The validators in canonical order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Never true for a constructed set; here for API completeness.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// Sum of all voting power.
    pub fn total_power(&self) -> Power {
        self.total_power
    }

    /// The set's hash, carried in headers as `validators_hash`.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Canonical index of an address.
    pub fn index_of(&self, address: &Address) -> Option<usize> {
        self.validators
            .binary_search_by_key(address, |v| v.address)
            .ok()
    }

    /// The validator with an address.
    pub fn get(&self, address: &Address) -> Option<&Validator> {
        self.index_of(address).map(|i| &self.validators[i])
    }

    /// True when `power` is strictly more than 2/3 of the total.
    pub fn is_quorum(&self, power: Power) -> bool {
        (power as u128) * 3 > (self.total_power as u128) * 2
    }

    /// True when `power` is strictly more than 1/3 of the total (some honest
    /// validator is among them).
    pub fn is_one_third(&self, power: Power) -> bool {
        (power as u128) * 3 > self.total_power as u128
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> pb::ValidatorSet {
        pb::ValidatorSet {
            validators: self
                .validators
                .iter()
                .map(|v| pb::ValidatorInfo {
                    address: v.address.0.to_vec(),
                    public_key: v.public_key.to_bytes().to_vec(),
                    power: v.power,
                })
                .collect(),
            hash: self.hash.to_vec(),
        }
    }

    /// Reads a set from the wire, checking that each address matches its key
    /// (the carried hash is recomputed, not trusted).
    pub fn from_proto(p: &pb::ValidatorSet) -> Result<Self, ValidatorSetError> {
        let mut vs = Vec::with_capacity(p.validators.len());
        for v in &p.validators {
            let pk = PublicKey::from_bytes(&v.public_key)
                .map_err(|e| ValidatorSetError::BadEntry(e.to_string()))?;
            let val = Validator::new(pk, v.power);
            if val.address.0.as_slice() != v.address.as_slice() {
                return Err(ValidatorSetError::BadEntry(format!(
                    "address {} does not match its key",
                    hex::encode(&v.address)
                )));
            }
            vs.push(val);
        }
        Self::new(vs)
    }
}
