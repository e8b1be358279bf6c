//! `agora signing-state export` and `import`: the validator's signing state
//! in its JSON interchange form (see `storage::signing_file`), for moving a
//! validator between machines or restoring one.
//!
//! Import refuses a document of another chain or key, and never lowers the
//! local state: the later of the two (by height, round, step) is kept.
//! Both refuse to run beside a node that holds the home's database open:
//! the running node owns the file and would overwrite an import.

use std::path::{Path, PathBuf};

use agora_validator::consensus::SigningState;
use agora_validator::{ChainId, PublicKey};

use crate::home::{Home, HomeError};
use crate::storage::signing_file::{SigningDoc, SigningFile, SigningFileError, newer};
use crate::storage::{Storage, StorageError};

/// Why an export or import failed.
#[derive(Debug, thiserror::Error)]
pub enum SigningCliError {
    /// The home is incomplete.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The signing-state file or the document is unusable.
    #[error(transparent)]
    File(#[from] SigningFileError),
    /// The home has no signing state to export.
    #[error("{0}: no signing state (this validator never signed, or the file was lost)")]
    Nothing(PathBuf),
    /// A node is running on this home.
    #[error(
        "the database {path} is in use ({source}); stop the node before exporting or importing its signing state"
    )]
    NodeRunning {
        /// The database.
        path: PathBuf,
        /// The cause.
        source: StorageError,
    },
    /// The file given to import is not a usable export. (The node's own
    /// file being corrupt is [`SigningFileError::Corrupt`], whose advice,
    /// to keep it and import an export, would be wrong here.)
    #[error(
        "{path} is not a usable signing-state export: {detail}; nothing was imported (the home's signing state is unchanged)"
    )]
    NotAnExport {
        /// The file given.
        path: PathBuf,
        /// Why the document does not parse or holds a bad value.
        detail: String,
    },
    /// The genesis chain id is invalid.
    #[error("genesis chain id: {0}")]
    ChainId(String),
    /// The document could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// The imported state is now the local one.
    Replaced(SigningState),
    /// The local state was as new or newer and was kept.
    KeptLocal(SigningState),
}

/// The home's chain and validator key.
fn identity(home: &Home) -> Result<(ChainId, PublicKey), SigningCliError> {
    let genesis = home.load_genesis()?;
    let chain = ChainId::new(genesis.genesis.chain_id.clone())
        .map_err(|e| SigningCliError::ChainId(e.to_string()))?;
    Ok((chain, home.load_validator_key()?.public_key()))
}

/// Fails if a node holds the home's database open (redb locks the file).
fn ensure_stopped(home: &Home) -> Result<(), SigningCliError> {
    let db = home.db();
    if db.exists() {
        Storage::open(&db).map_err(|source| SigningCliError::NodeRunning { path: db, source })?;
    }
    Ok(())
}

/// The home's signing state as an interchange document (JSON text).
pub fn export(home: &Home) -> Result<String, SigningCliError> {
    ensure_stopped(home)?;
    let (chain, key) = identity(home)?;
    let file = SigningFile::new(home.signing_state(), chain.clone(), key);
    let state = file
        .load()?
        .ok_or_else(|| SigningCliError::Nothing(file.path().to_path_buf()))?;
    Ok(SigningDoc::new(&chain, &key, &state).to_json())
}

/// Imports the document at `from` into the home, keeping the later state.
pub fn import(home: &Home, from: &Path) -> Result<Imported, SigningCliError> {
    ensure_stopped(home)?;
    let (chain, key) = identity(home)?;
    let file = SigningFile::new(home.signing_state(), chain.clone(), key);
    let text = std::fs::read_to_string(from).map_err(|source| SigningCliError::Io {
        path: from.to_path_buf(),
        source,
    })?;
    let not_an_export = |detail| SigningCliError::NotAnExport {
        path: from.to_path_buf(),
        detail,
    };
    let doc = SigningDoc::parse(from, &text).map_err(|e| match e {
        SigningFileError::Corrupt { detail, .. } => not_an_export(detail),
        other => other.into(),
    })?;
    doc.check_identity(from, &chain, &key)?;
    let incoming = doc.state().map_err(not_an_export)?;
    let local = file.load()?;
    let kept = newer(local, incoming);
    if Some(kept) == local {
        return Ok(Imported::KeptLocal(kept));
    }
    file.save(&kept)?;
    Ok(Imported::Replaced(kept))
}
