//! Small value types shared across the core: chain id, addresses, heights and
//! rounds, vote types, and domain votes decoded from the wire.

use crate::crypto::{AccountPublicKey, Hash, PublicKey, sha3_256};
use std::fmt;

/// Block height; the first block is height 1.
pub type Height = u64;
/// Consensus round within a height, from 0.
pub type Round = u32;
/// Voting power of a validator.
pub type Power = u64;

/// Why a value from outside was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    /// The chain id is empty, longer than 255 bytes, or not printable ASCII.
    #[error("chain id must be 1 to 255 printable ASCII bytes")]
    BadChainId,
    /// An address is not 20 bytes.
    #[error("address must be 20 bytes, got {0}")]
    BadAddressLength(usize),
    /// An address string is not 40 hex digits.
    #[error("address must be 40 lowercase hex digits")]
    BadAddressHex,
}

/// A chain identifier; part of every signed message, so signatures cannot be
/// replayed across chains. Its encoding is one length byte then its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChainId(String);

impl ChainId {
    /// Validates a chain id (1..=255 printable ASCII bytes).
    pub fn new(s: impl Into<String>) -> Result<Self, TypeError> {
        let s = s.into();
        if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err(TypeError::BadChainId);
        }
        Ok(Self(s))
    }

    /// The chain id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Appends the length-prefixed encoding used in signing bytes.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Length fits: `new` bounds it to 255.
        out.push(self.0.len() as u8);
        out.extend_from_slice(self.0.as_bytes());
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 20-byte address: the first 20 bytes of SHA3-256 of a public key's
/// bytes (the 32-byte Ed25519 key of an account, the 48-byte compressed BLS
/// key of a consensus key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The address of a consensus (BLS) public key.
    pub fn of(key: &PublicKey) -> Self {
        Self::of_key_bytes(&key.to_bytes())
    }

    /// The address of an account (Ed25519) public key.
    pub fn of_account(key: &AccountPublicKey) -> Self {
        Self::of_key_bytes(key.as_bytes())
    }

    /// The first 20 bytes of SHA3-256 of a public key's bytes.
    pub fn of_key_bytes(key: &[u8]) -> Self {
        let h = sha3_256(key);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h[..20]);
        Self(a)
    }

    /// Reads an address from raw bytes from outside.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, TypeError> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| TypeError::BadAddressLength(bytes.len()))
    }

    /// Parses 40 hex digits (an optional `0x` prefix is accepted).
    pub fn from_hex(s: &str) -> Result<Self, TypeError> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        let v = hex::decode(s).map_err(|_| TypeError::BadAddressHex)?;
        Self::from_slice(&v).map_err(|_| TypeError::BadAddressHex)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", hex::encode(self.0))
    }
}

/// Keys that have an address (DESIGN §3): consensus (BLS) and account
/// (Ed25519) keys, public or secret.
pub trait HasAddress {
    /// The address of the (public half of the) key.
    fn address(&self) -> Address;
}

impl HasAddress for PublicKey {
    fn address(&self) -> Address {
        Address::of(self)
    }
}

impl HasAddress for crate::crypto::SecretKey {
    fn address(&self) -> Address {
        Address::of(&self.public_key())
    }
}

impl HasAddress for AccountPublicKey {
    fn address(&self) -> Address {
        Address::of_account(self)
    }
}

impl HasAddress for crate::crypto::AccountSecretKey {
    fn address(&self) -> Address {
        Address::of_account(&self.public_key())
    }
}

/// The two kinds of votes; the numbers are their signing-byte codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VoteType {
    /// First voting step.
    Prevote = 1,
    /// Second voting step; a quorum of precommits commits a block.
    Precommit = 2,
}

impl VoteType {
    /// Decodes the protobuf enum value.
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            1 => Some(Self::Prevote),
            2 => Some(Self::Precommit),
            _ => None,
        }
    }
}

/// Short hex of a hash for logs.
pub fn short(h: &Hash) -> String {
    hex::encode(&h[..4])
}
