//! Key files: generation from OS randomness, and storage as small JSON
//! files readable by the owner only (0600).
//!
//! Two kinds (DESIGN §4):
//! - `"kind": "ed25519"`: an account key (transaction sender, validator
//!   operator, delegator); the secret is the 32-byte RFC 8032 seed, the
//!   public key 32 bytes. Made by `agora keys add` and `agora init`
//!   (`operator.key`).
//! - `"kind": "bls12-381"`: the validator's consensus key
//!   (`validator.key`); the secret is the 32-byte scalar, the public key
//!   48 bytes. Files without a `kind` (written before accounts were
//!   Ed25519) are BLS.
//!
//! Format: `{"kind": ..., "address": hex, "public_key": hex, "secret_key":
//! hex}`. The public fields are there so that people can see which key a
//! file holds without tools; loading checks them against the secret.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use agora_validator::{AccountSecretKey, Address, SecretKey};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// Why a key could not be generated, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The OS random source failed.
    #[error("OS randomness unavailable: {0}")]
    Random(String),
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file exists already (keys are never overwritten).
    #[error("{0}: already exists; refusing to overwrite a key")]
    Exists(String),
    /// Group or others may read the file.
    #[error("{path}: permissions {mode:o} are too open; run `chmod 600 {path}`")]
    Permissions {
        /// The file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// The file's content is not a valid key.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Why its content is not a usable key.
        message: String,
    },
}

/// A generated BLS key from 32 bytes of OS randomness (IETF KeyGen).
pub fn generate() -> Result<SecretKey, KeyError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng
        .try_fill_bytes(seed.as_mut())
        .map_err(|e| KeyError::Random(e.to_string()))?;
    SecretKey::from_seed(seed.as_ref()).map_err(|e| KeyError::Random(e.to_string()))
}

/// A generated Ed25519 account key from 32 bytes of OS randomness.
pub fn generate_account() -> Result<AccountSecretKey, KeyError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng
        .try_fill_bytes(seed.as_mut())
        .map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(AccountSecretKey::from_seed(&seed))
}

/// What a key file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum KeyKind {
    /// A BLS12-381 consensus key (the validator key).
    #[serde(rename = "bls12-381")]
    #[default]
    Bls,
    /// An Ed25519 account key.
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyKind::Bls => "bls12-381",
            KeyKind::Ed25519 => "ed25519",
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default)]
    kind: KeyKind,
    address: String,
    public_key: String,
    secret_key: String,
}

/// The public half of a key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Which kind of key.
    pub kind: KeyKind,
    /// Address of the key.
    pub address: Address,
    /// The public key's bytes (32 for Ed25519, 48 for BLS).
    pub public_key: Vec<u8>,
}

/// Writes a file that only its owner can read, durably (file and directory
/// fsynced). Fails if the file exists.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let p = path.display().to_string();
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(p.clone())
            } else {
                KeyError::Io {
                    path: p.clone(),
                    source,
                }
            }
        })?;
    let io = |source| KeyError::Io {
        path: p.clone(),
        source,
    };
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)?;
    crate::storage::sync_parent_dir(path).map_err(io)
}

/// Reads a secret file, refusing it if group or others can read it.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let p = path.display().to_string();
    let io = |source| KeyError::Io {
        path: p.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions { path: p, mode });
    }
    if meta.len() > 64 * 1024 {
        return Err(KeyError::Invalid {
            path: p,
            message: "file too large for a key".into(),
        });
    }
    Ok(Zeroizing::new(std::fs::read(path).map_err(io)?))
}

fn write_key_file(
    path: &Path,
    kind: KeyKind,
    public: &[u8],
    secret: &[u8],
) -> Result<KeyInfo, KeyError> {
    let info = KeyInfo {
        kind,
        address: Address::of_key_bytes(public),
        public_key: public.to_vec(),
    };
    let mut file = KeyFile {
        kind,
        address: info.address.to_string(),
        public_key: hex::encode(public),
        secret_key: hex::encode(secret),
    };
    let text = Zeroizing::new(serde_json::to_string_pretty(&file).unwrap_or_default() + "\n");
    file.secret_key.zeroize();
    write_secret_file(path, text.as_bytes())?;
    Ok(info)
}

/// Saves a BLS consensus key to a new 0600 file.
pub fn save(path: &Path, key: &SecretKey) -> Result<KeyInfo, KeyError> {
    write_key_file(
        path,
        KeyKind::Bls,
        &key.public_key().to_bytes(),
        key.to_bytes().as_ref(),
    )
}

/// Saves an Ed25519 account key to a new 0600 file.
pub fn save_account(path: &Path, key: &AccountSecretKey) -> Result<KeyInfo, KeyError> {
    write_key_file(
        path,
        KeyKind::Ed25519,
        &key.public_key().to_bytes(),
        key.to_bytes().as_ref(),
    )
}

/// Reads a key file: its kind and its secret bytes (checked to be hex).
fn read_key_file(path: &Path) -> Result<(KeyFile, Zeroizing<Vec<u8>>), KeyError> {
    let p = path.display().to_string();
    let invalid = |message: String| KeyError::Invalid {
        path: p.clone(),
        message,
    };
    let bytes = read_secret_file(path)?;
    let mut file: KeyFile =
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("not a key file: {e}")))?;
    let secret = Zeroizing::new(
        hex::decode(&file.secret_key).map_err(|_| invalid("secret_key is not hex".into()))?,
    );
    file.secret_key.zeroize();
    Ok((file, secret))
}

fn check_public(path: &Path, file: &KeyFile, public: &[u8]) -> Result<(), KeyError> {
    if file.public_key != hex::encode(public)
        || file.address != Address::of_key_bytes(public).to_string()
    {
        return Err(KeyError::Invalid {
            path: path.display().to_string(),
            message: "public_key or address does not match the secret key".into(),
        });
    }
    Ok(())
}

/// Loads a BLS consensus key, checking that its public fields match the secret.
pub fn load(path: &Path) -> Result<SecretKey, KeyError> {
    let invalid = |message: String| KeyError::Invalid {
        path: path.display().to_string(),
        message,
    };
    let (file, secret) = read_key_file(path)?;
    if file.kind != KeyKind::Bls {
        return Err(invalid(format!(
            "holds an {} account key, not a BLS consensus key",
            file.kind
        )));
    }
    let key = SecretKey::from_bytes(&secret).map_err(|e| invalid(format!("secret_key: {e}")))?;
    check_public(path, &file, &key.public_key().to_bytes())?;
    Ok(key)
}

/// Loads an Ed25519 account key, checking that its public fields match the secret.
pub fn load_account(path: &Path) -> Result<AccountSecretKey, KeyError> {
    let invalid = |message: String| KeyError::Invalid {
        path: path.display().to_string(),
        message,
    };
    let (file, secret) = read_key_file(path)?;
    if file.kind != KeyKind::Ed25519 {
        return Err(invalid(format!(
            "holds a {} consensus key, not an Ed25519 account key; \
             accounts sign with Ed25519 keys made by `agora keys add`",
            file.kind
        )));
    }
    let key =
        AccountSecretKey::from_bytes(&secret).map_err(|e| invalid(format!("secret_key: {e}")))?;
    check_public(path, &file, &key.public_key().to_bytes())?;
    Ok(key)
}

/// Reads the public half of a key file of either kind (checked against
/// the secret).
pub fn info(path: &Path) -> Result<KeyInfo, KeyError> {
    let (file, _) = read_key_file(path)?;
    let public_key = match file.kind {
        KeyKind::Bls => load(path)?.public_key().to_bytes().to_vec(),
        KeyKind::Ed25519 => load_account(path)?.public_key().to_bytes().to_vec(),
    };
    Ok(KeyInfo {
        kind: file.kind,
        address: Address::of_key_bytes(&public_key),
        public_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_permissions_and_no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        let k = generate().unwrap();
        let info = save(&p, &k).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&p).unwrap().public_key(), k.public_key());
        assert_eq!(super::info(&p).unwrap(), info);
        assert!(matches!(save(&p, &k), Err(KeyError::Exists(_))));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load(&p), Err(KeyError::Permissions { .. })));
    }

    #[test]
    fn account_keys_round_trip_and_kinds_are_not_mixed_up() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("alice.key");
        let v = dir.path().join("validator.key");
        let k = generate_account().unwrap();
        let info = save_account(&a, &k).unwrap();
        assert_eq!(info.kind, KeyKind::Ed25519);
        assert_eq!(info.public_key.len(), 32);
        assert_eq!(info.address, Address::of_account(&k.public_key()));
        assert_eq!(load_account(&a).unwrap().public_key(), k.public_key());
        assert_eq!(super::info(&a).unwrap(), info);
        let text = std::fs::read_to_string(&a).unwrap();
        assert!(text.contains("\"kind\": \"ed25519\""), "{text}");
        save(&v, &generate().unwrap()).unwrap();
        assert_eq!(super::info(&v).unwrap().kind, KeyKind::Bls);
        assert!(matches!(load(&a), Err(KeyError::Invalid { .. })));
        let e = load_account(&v).unwrap_err().to_string();
        assert!(e.contains("not an Ed25519 account key"), "{e}");
        // A BLS key file written before `kind` existed still loads as BLS.
        let old = dir.path().join("old.key");
        let t = std::fs::read_to_string(&v)
            .unwrap()
            .replace("\"kind\": \"bls12-381\",", "");
        assert!(!t.contains("kind"));
        write_secret_file(&old, t.as_bytes()).unwrap();
        assert!(load(&old).is_ok());
        assert_ne!(
            generate_account().unwrap().public_key(),
            generate_account().unwrap().public_key()
        );
    }

    #[test]
    fn generated_keys_differ_and_tampered_files_fail() {
        assert_ne!(
            generate().unwrap().public_key(),
            generate().unwrap().public_key()
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        let k = generate().unwrap();
        save(&p, &k).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let other = generate().unwrap();
        let tampered = text.replace(
            &hex::encode(k.public_key().to_bytes()),
            &hex::encode(other.public_key().to_bytes()),
        );
        std::fs::write(&p, tampered).unwrap();
        assert!(matches!(load(&p), Err(KeyError::Invalid { .. })));
    }
}
