//! BLS key files: generation from OS randomness, and storage as small JSON
//! files readable by the owner only (0600).
//!
//! Format: `{"address": hex, "public_key": hex, "secret_key": hex}`. The
//! secret is the 32-byte scalar; the public fields are there so that people
//! can see which key a file holds without tools.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use agora_validator::{Address, PublicKey, SecretKey};
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
        /// What is wrong.
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

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    address: String,
    public_key: String,
    secret_key: String,
}

/// The public half of a key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Address of the key.
    pub address: Address,
    /// The public key.
    pub public_key: PublicKey,
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

/// Saves a key to a new 0600 file.
pub fn save(path: &Path, key: &SecretKey) -> Result<KeyInfo, KeyError> {
    let pk = key.public_key();
    let info = KeyInfo {
        address: Address::of(&pk),
        public_key: pk,
    };
    let file = KeyFile {
        address: info.address.to_string(),
        public_key: hex::encode(pk.to_bytes()),
        secret_key: hex::encode(key.to_bytes().as_ref()),
    };
    let text = Zeroizing::new(serde_json::to_string_pretty(&file).unwrap_or_default() + "\n");
    let mut file = file;
    file.secret_key.zeroize();
    write_secret_file(path, text.as_bytes())?;
    Ok(info)
}

/// Loads a key, checking that its public fields match the secret.
pub fn load(path: &Path) -> Result<SecretKey, KeyError> {
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
    let key = SecretKey::from_bytes(&secret).map_err(|e| invalid(format!("secret_key: {e}")))?;
    let pk = key.public_key();
    if file.public_key != hex::encode(pk.to_bytes()) || file.address != Address::of(&pk).to_string()
    {
        return Err(invalid(
            "public_key or address does not match the secret key".into(),
        ));
    }
    Ok(key)
}

/// Reads the public half of a key file.
pub fn info(path: &Path) -> Result<KeyInfo, KeyError> {
    let key = load(path)?;
    let public_key = key.public_key();
    Ok(KeyInfo {
        address: Address::of(&public_key),
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
