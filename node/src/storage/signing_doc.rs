//! The signing state's JSON document: the interchange form of `agora
//! signing-state export/import`, and what each slot of the signing-state
//! file holds ([`super::signing_file`]).
//!
//! The form follows the spirit of Ethereum's EIP-3076 slashing-protection
//! interchange: the chain, the validator's public key and the last signed
//! position with the hash of what was signed:
//!
//! ```json
//! {
//!   "format": "agora-signing-state/1",
//!   "chain_id": "agora-local",
//!   "validator_public_key": "<96 hex chars, BLS12-381 G1>",
//!   "last_signed": {
//!     "height": 42, "round": 0, "step": "precommit",
//!     "signing_root": "<SHA3-256 of the signing bytes, hex>",
//!     "block_hash": "<the block signed, hex; zeros for nil>",
//!     "locked": { "block_hash": "<hex>", "round": 0 }
//!   }
//! }
//! ```

use std::path::{Path, PathBuf};

use agora_validator::consensus::{SignStep, SigningState};
use agora_validator::{ChainId, Hash, PublicKey};
use serde::{Deserialize, Serialize};

/// The `format` of the current form.
pub const FORMAT: &str = "agora-signing-state/1";

/// Why the signing-state file could not be read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum SigningFileError {
    /// File system error.
    #[error("signing state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a valid document.
    #[error(
        "signing state {path} is corrupt: {detail}; do NOT delete it: restore it from a backup or `agora signing-state import` an export (without it the node refuses to sign until the chain shows this key is quiet)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why the document does not parse or holds a bad value.
        detail: String,
    },
    /// The document is for another chain.
    #[error("signing state {path} is for chain {found:?}, this node runs {expected:?}")]
    ForeignChain {
        /// The file.
        path: PathBuf,
        /// Its chain.
        found: String,
        /// Ours.
        expected: String,
    },
    /// The document is for another validator key.
    #[error("signing state {path} is for validator key {found}, this node's key is {expected}")]
    ForeignKey {
        /// The file.
        path: PathBuf,
        /// Its key (hex).
        found: String,
        /// Ours (hex).
        expected: String,
    },
    /// The document does not fit a slot of the file (a chain id far
    /// longer than any real one).
    #[error("signing state {path}: the document takes {len} bytes, more than a slot holds")]
    SlotOverflow {
        /// The file.
        path: PathBuf,
        /// The slot's line as it would be written.
        len: usize,
    },
}

/// The locked block at the last signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedDoc {
    /// The block hash, hex.
    pub block_hash: String,
    /// The round of the lock.
    pub round: u32,
}

/// The last signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastSignedDoc {
    /// Height of the last message this key signed.
    pub height: u64,
    /// Round of the last message this key signed.
    pub round: u32,
    /// "propose", "prevote" or "precommit".
    pub step: String,
    /// SHA3-256 of the signing bytes, hex.
    pub signing_root: String,
    /// The block hash signed (zeros for nil), hex.
    pub block_hash: String,
    /// The lock held when signing.
    pub locked: Option<LockedDoc>,
}

/// The whole document (file and interchange form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningDoc {
    /// [`FORMAT`].
    pub format: String,
    /// Chain the state belongs to; loading refuses a document for another chain.
    pub chain_id: String,
    /// The validator's BLS public key, hex.
    pub validator_public_key: String,
    /// The last signature.
    pub last_signed: LastSignedDoc,
}

fn step_name(s: SignStep) -> &'static str {
    match s {
        SignStep::Propose => "propose",
        SignStep::Prevote => "prevote",
        SignStep::Precommit => "precommit",
    }
}

fn hash_of(hex_text: &str, what: &str) -> Result<Hash, String> {
    hex::decode(hex_text)
        .ok()
        .and_then(|b| Hash::try_from(b.as_slice()).ok())
        .ok_or_else(|| format!("{what} is not 32 bytes of hex"))
}

impl SigningDoc {
    /// The document of `state` for `chain` and `key`.
    pub fn new(chain: &ChainId, key: &PublicKey, state: &SigningState) -> Self {
        Self {
            format: FORMAT.into(),
            chain_id: chain.as_str().into(),
            validator_public_key: hex::encode(key.to_bytes()),
            last_signed: LastSignedDoc {
                height: state.height,
                round: state.round,
                step: step_name(state.step).into(),
                signing_root: hex::encode(state.signed_hash),
                block_hash: hex::encode(state.value),
                locked: state.locked.map(|(h, r)| LockedDoc {
                    block_hash: hex::encode(h),
                    round: r,
                }),
            },
        }
    }

    /// Parses a document (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, SigningFileError> {
        let corrupt = |detail: String| SigningFileError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let doc: Self = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        doc.check_form().map_err(corrupt)?;
        Ok(doc)
    }

    /// Refuses another format or a field that does not decode.
    pub fn check_form(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("unknown format {:?}", self.format));
        }
        self.state().map(|_| ())
    }

    /// The signing state it holds.
    pub fn state(&self) -> Result<SigningState, String> {
        let l = &self.last_signed;
        let step = match l.step.as_str() {
            "propose" => SignStep::Propose,
            "prevote" => SignStep::Prevote,
            "precommit" => SignStep::Precommit,
            s => return Err(format!("unknown step {s:?}")),
        };
        Ok(SigningState {
            height: l.height,
            round: l.round,
            step,
            signed_hash: hash_of(&l.signing_root, "signing_root")?,
            value: hash_of(&l.block_hash, "block_hash")?,
            locked: match &l.locked {
                Some(k) => Some((hash_of(&k.block_hash, "locked.block_hash")?, k.round)),
                None => None,
            },
        })
    }

    /// Refuses a document of another chain or key.
    pub fn check_identity(
        &self,
        path: &Path,
        chain: &ChainId,
        key: &PublicKey,
    ) -> Result<(), SigningFileError> {
        if self.chain_id != chain.as_str() {
            return Err(SigningFileError::ForeignChain {
                path: path.to_path_buf(),
                found: self.chain_id.clone(),
                expected: chain.as_str().into(),
            });
        }
        let ours = hex::encode(key.to_bytes());
        if !self.validator_public_key.eq_ignore_ascii_case(&ours) {
            return Err(SigningFileError::ForeignKey {
                path: path.to_path_buf(),
                found: self.validator_public_key.clone(),
                expected: ours,
            });
        }
        Ok(())
    }

    /// The document as pretty JSON text (with a final newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// The later of two signing states: import never lowers a newer local state.
pub fn newer(local: Option<SigningState>, incoming: SigningState) -> SigningState {
    match local {
        Some(l)
            if (l.height, l.round, l.step) >= (incoming.height, incoming.round, incoming.step) =>
        {
            l
        }
        _ => incoming,
    }
}
