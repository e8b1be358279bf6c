//! The signing state in its own file, `HOME/data/signing_state.json`, and
//! its JSON interchange form (`agora signing-state export/import`).
//!
//! Why a file of its own and not a row of the database: it is the one
//! thing an operator must never lose or roll back, and the one thing that
//! must move with the key when a validator moves. A file that names its
//! chain and key can be inspected, backed up, exported and imported
//! without the database, and its absence is visible: `agora start` then
//! refuses to sign until the chain shows the key is quiet
//! ([`agora_validator::consensus::SigningGate`]).
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
//!
//! Writes are atomic and durable: the text goes to `signing_state.json.tmp`,
//! which is fsynced, renamed over the file, and the directory is fsynced so
//! that the rename itself survives a crash. A reader therefore sees the old
//! state or the new one, never a torn mix.

use std::io::Write;
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
        if doc.format != FORMAT {
            return Err(corrupt(format!("unknown format {:?}", doc.format)));
        }
        doc.state().map_err(corrupt)?;
        Ok(doc)
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

/// The signing-state file of one node: its path, chain and key.
#[derive(Debug, Clone)]
pub struct SigningFile {
    path: PathBuf,
    chain: ChainId,
    key: PublicKey,
}

impl SigningFile {
    /// The file at `path` for `chain` and `key`.
    pub fn new(path: impl Into<PathBuf>, chain: ChainId, key: PublicKey) -> Self {
        Self {
            path: path.into(),
            chain,
            key,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored state; None if the file does not exist. A file of
    /// another chain or key, or one that does not parse, is an error.
    pub fn load(&self) -> Result<Option<SigningState>, SigningFileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SigningFileError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let doc = SigningDoc::parse(&self.path, &text)?;
        doc.check_identity(&self.path, &self.chain, &self.key)?;
        doc.state()
            .map(Some)
            .map_err(|detail| SigningFileError::Corrupt {
                path: self.path.clone(),
                detail,
            })
    }

    /// Replaces the file with `state`, atomically and durably.
    ///
    /// FSYNC: the temporary file is fsynced before the rename and the
    /// directory after it. The node calls this before anything signed
    /// under `state` is sent (persist-before-send, DESIGN §6), so when it
    /// returns, a crash can no longer make the node forget the signature.
    pub fn save(&self, state: &SigningState) -> Result<(), SigningFileError> {
        let io = |source| SigningFileError::Io {
            path: self.path.clone(),
            source,
        };
        let text = SigningDoc::new(&self.chain, &self.key, state).to_json();
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        super::sync_parent_dir(&self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_validator::SecretKey;

    fn state(height: u64, step: SignStep) -> SigningState {
        SigningState {
            height,
            round: 2,
            step,
            signed_hash: [5; 32],
            value: [6; 32],
            locked: Some(([7; 32], 1)),
        }
    }

    fn file(dir: &Path, seed: u8, chain: &str) -> SigningFile {
        let key = SecretKey::from_seed(&[seed; 32]).unwrap().public_key();
        SigningFile::new(
            dir.join("signing_state.json"),
            ChainId::new(chain).unwrap(),
            key,
        )
    }

    #[test]
    fn save_load_round_trip_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path(), 1, "c1");
        assert_eq!(f.load().unwrap(), None);
        f.save(&state(9, SignStep::Prevote)).unwrap();
        f.save(&state(10, SignStep::Precommit)).unwrap();
        assert_eq!(f.load().unwrap(), Some(state(10, SignStep::Precommit)));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("signing_state.json")]);
        let unlocked = SigningState {
            locked: None,
            ..state(11, SignStep::Propose)
        };
        f.save(&unlocked).unwrap();
        assert_eq!(f.load().unwrap(), Some(unlocked));
    }

    #[test]
    fn foreign_and_corrupt_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        file(dir.path(), 1, "c1")
            .save(&state(3, SignStep::Prevote))
            .unwrap();
        assert!(matches!(
            file(dir.path(), 1, "c2").load(),
            Err(SigningFileError::ForeignChain { .. })
        ));
        assert!(matches!(
            file(dir.path(), 2, "c1").load(),
            Err(SigningFileError::ForeignKey { .. })
        ));
        std::fs::write(dir.path().join("signing_state.json"), "{\"format\":").unwrap();
        let e = file(dir.path(), 1, "c1").load().unwrap_err();
        assert!(matches!(e, SigningFileError::Corrupt { .. }));
        assert!(e.to_string().contains("do NOT delete"), "{e}");
    }

    #[test]
    fn newer_takes_the_maximum() {
        let a = state(5, SignStep::Precommit);
        let b = state(6, SignStep::Propose);
        assert_eq!(newer(Some(a), b), b);
        assert_eq!(newer(Some(b), a), b);
        assert_eq!(newer(None, a), a);
        assert_eq!(newer(Some(a), a), a);
    }
}
