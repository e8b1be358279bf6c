//! The deterministic heart of Agora.
//!
//! Everything a validator *decides* lives here, and nothing else: no I/O, no
//! tokio, no clock, no randomness of its own. Hosts (the node, the simulator)
//! feed events in and carry actions out. See ARCHITECTURE.md for the map.

#![deny(missing_docs)]

pub mod block;
pub mod certificate;
pub mod chain_verifier;
pub mod consensus;
pub mod crypto;
pub mod engine;
pub mod ledger;
pub mod light_client;
pub mod lottery;
pub mod signing;
pub mod state_sync;
pub mod types;
pub mod validator_set;

pub use certificate::{CertificateError, CommitCertificate};
pub use crypto::{
    AccountPublicKey, AccountSecretKey, AccountSignature, Hash, PublicKey, SecretKey, Signature,
};
pub use types::{Address, ChainId, HasAddress, Height, Power, Round, VoteType};
pub use validator_set::{Validator, ValidatorSet};
