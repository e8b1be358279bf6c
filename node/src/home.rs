//! The node's home directory and `agora init`.
//!
//! ```text
//! HOME/
//!   config.toml          local settings (config.rs)
//!   genesis.json         the chain's genesis (genesis.rs)
//!   keys/                0700
//!     validator.key      BLS consensus key, 0600 (keys.rs)
//!     operator.key       Ed25519 account key of the validator's operator, 0600
//!     tls.crt            self-signed TLS certificate (PEM)
//!     tls.key            its private key (PEM, PKCS#8), 0600
//!     NAME.key           Ed25519 account keys made by `agora keys add`
//!   data/                0700
//!     node.redb          storage (storage/)
//!     signing_state.json the double-sign guard's last signature
//!                        (storage/signing_file.rs); never delete or roll back
//! ```

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use agora_validator::{Address, ChainId, SecretKey};

use crate::config::{Config, ConfigError};
use crate::genesis::{self, GenesisError, LoadedGenesis};
use crate::keys::{self, KeyError};
use crate::transport::tls::{TlsError, TlsIdentity};

/// Why the home directory could not be set up or read.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// `init` found an existing configuration.
    #[error(
        "{0} already exists; refusing to overwrite an initialised home (choose another --home)"
    )]
    AlreadyInitialised(String),
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The directory holds no `config.toml`: not a home at all (a mistyped
    /// `--home`, or one never made).
    #[error(
        "{0} is not an Agora home (it has no config.toml): make one with `agora init --home {0} --chain-id ID`, or give the --home of an existing node"
    )]
    NotAHome(String),
    /// Invalid chain id.
    #[error("invalid chain id {0:?}: 1 to 255 printable ASCII characters without spaces")]
    ChainId(String),
    /// Key error.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// TLS identity error.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Configuration error.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Genesis error.
    #[error(transparent)]
    Genesis(#[from] GenesisError),
}

/// Paths inside a home directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// `genesis.json`.
    pub fn genesis(&self) -> PathBuf {
        self.root.join("genesis.json")
    }
    /// `keys/`.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }
    /// `keys/validator.key`.
    pub fn validator_key(&self) -> PathBuf {
        self.keys_dir().join("validator.key")
    }
    /// `keys/operator.key`: the operator's Ed25519 account key.
    pub fn operator_key(&self) -> PathBuf {
        self.account_key("operator")
    }
    /// `keys/NAME.key`.
    pub fn account_key(&self, name: &str) -> PathBuf {
        self.keys_dir().join(format!("{name}.key"))
    }
    /// `keys/tls.crt`.
    pub fn tls_cert(&self) -> PathBuf {
        self.keys_dir().join("tls.crt")
    }
    /// `keys/tls.key`.
    pub fn tls_key(&self) -> PathBuf {
        self.keys_dir().join("tls.key")
    }
    /// `data/`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }
    /// `data/node.redb`.
    pub fn db(&self) -> PathBuf {
        self.data_dir().join("node.redb")
    }

    /// `data/signing_state.json`: the last signature of the validator key.
    pub fn signing_state(&self) -> PathBuf {
        self.data_dir().join("signing_state.json")
    }

    /// Reads the configuration.
    pub fn load_config(&self) -> Result<Config, HomeError> {
        if !self.config().exists() {
            return Err(HomeError::NotAHome(self.root.display().to_string()));
        }
        Ok(Config::load(&self.config())?)
    }

    /// Reads the genesis and its file hash.
    pub fn load_genesis(&self) -> Result<LoadedGenesis, HomeError> {
        Ok(genesis::load(&self.genesis())?)
    }

    /// Reads the validator key.
    pub fn load_validator_key(&self) -> Result<SecretKey, HomeError> {
        Ok(keys::load(&self.validator_key())?)
    }

    /// Reads the TLS identity.
    pub fn load_tls(&self) -> Result<TlsIdentity, HomeError> {
        let cert = std::fs::read_to_string(self.tls_cert()).map_err(|source| HomeError::Io {
            path: self.tls_cert().display().to_string(),
            source,
        })?;
        let key = keys::read_secret_file(&self.tls_key())?;
        let key = std::str::from_utf8(&key).map_err(|_| KeyError::Invalid {
            path: self.tls_key().display().to_string(),
            message: "not PEM text".into(),
        })?;
        Ok(TlsIdentity::from_pem(&cert, key)?)
    }

    /// Creates `data/` (0700) if it is missing: an operator may have wiped it
    /// to resync; the node then starts empty (and its signing gate waits).
    pub fn ensure_data_dir(&self) -> Result<(), HomeError> {
        self.mkdir_private(&self.data_dir())
    }

    fn mkdir_private(&self, dir: &Path) -> Result<(), HomeError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| HomeError::Io {
                path: dir.display().to_string(),
                source,
            })
    }

    fn write_public(&self, path: &Path, text: &str) -> Result<(), HomeError> {
        let io = |source| HomeError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::write(path, text).map_err(io)?;
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        crate::storage::sync_parent_dir(path).map_err(io)
    }
}

/// What `init` created.
#[derive(Debug, Clone)]
pub struct InitSummary {
    /// The validator's address (of its BLS consensus key).
    pub address: Address,
    /// Hex of the validator's BLS public key.
    pub public_key_hex: String,
    /// The operator's account address (of its Ed25519 key, `operator.key`).
    pub operator: Address,
    /// SHA3-256 of genesis.json, hex.
    pub genesis_hash_hex: String,
}

/// Creates a home directory: keys, TLS certificate, default config and a
/// single-validator genesis. Refuses to touch an initialised home.
pub fn init(
    home: &Home,
    chain_id: &str,
    moniker: Option<&str>,
    genesis_time_ms: u64,
) -> Result<InitSummary, HomeError> {
    let chain = ChainId::new(chain_id).map_err(|_| HomeError::ChainId(chain_id.to_string()))?;
    if home.config().exists() {
        return Err(HomeError::AlreadyInitialised(
            home.config().display().to_string(),
        ));
    }
    home.mkdir_private(home.root())?;
    home.mkdir_private(&home.keys_dir())?;
    home.mkdir_private(&home.data_dir())?;

    let key = keys::generate()?;
    let info = keys::save(&home.validator_key(), &key)?;
    let operator = keys::save_account(&home.operator_key(), &keys::generate_account()?)?;
    let tls = TlsIdentity::generate()?;
    home.write_public(&home.tls_cert(), &tls.cert_pem())?;
    keys::write_secret_file(&home.tls_key(), tls.key_pem().as_bytes())?;

    let mut cfg = Config::default();
    if let Some(m) = moniker {
        cfg.moniker = m.to_string();
    }
    let g = genesis::single_validator(&chain, &key, operator.address, genesis_time_ms);
    g.validate()?;
    let gtext = g.to_json();
    home.write_public(&home.genesis(), &gtext)?;
    // config.toml last: its presence marks a completely initialised home.
    home.write_public(&home.config(), &cfg.to_toml())?;
    Ok(InitSummary {
        address: info.address,
        public_key_hex: hex::encode(&info.public_key),
        operator: operator.address,
        genesis_hash_hex: hex::encode(agora_validator::crypto::sha3_256(gtext.as_bytes())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_creates_a_loadable_home_once() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("n0"));
        let s = init(&home, "agora-local", Some("alice"), 7).unwrap();
        let cfg = home.load_config().unwrap();
        assert_eq!(cfg.moniker, "alice");
        let g = home.load_genesis().unwrap();
        assert_eq!(g.genesis.chain_id, "agora-local");
        assert_eq!(hex::encode(g.file_hash), s.genesis_hash_hex);
        assert_eq!(
            g.genesis.validators[0].consensus_public_key,
            home.load_validator_key()
                .unwrap()
                .public_key()
                .to_bytes()
                .to_vec()
        );
        assert!(home.load_tls().is_ok());
        let op = keys::load_account(&home.operator_key()).unwrap();
        assert_eq!(Address::of_account(&op.public_key()), s.operator);
        assert_eq!(g.genesis.validators[0].operator, s.operator.0.to_vec());
        assert_ne!(s.operator, s.address);
        for p in [home.validator_key(), home.operator_key(), home.tls_key()] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        assert!(matches!(
            init(&home, "agora-local", None, 7),
            Err(HomeError::AlreadyInitialised(_))
        ));
        assert!(matches!(
            init(&Home::new(dir.path().join("n1")), "bad chain", None, 7),
            Err(HomeError::ChainId(_))
        ));
    }
}
