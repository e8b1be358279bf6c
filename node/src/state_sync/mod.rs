//! State sync: a new node starts from a recent certified state instead of
//! replaying the chain from genesis (issue 13; ARCHITECTURE.md, "State
//! sync"). [`serve`] is what every node does for its peers; [`join`] is
//! what a node with an empty store and `state_sync.enable` does before it
//! starts; [`anchor`] verifies the header a snapshot is checked against.
//! What a snapshot must prove, and every choice the join makes, is the
//! engine's: `agora_validator::state_sync` (the anchor; the join's course,
//! `state_sync::join`; which offer to take, `state_sync::offers`; which
//! chunk to ask of whom and what to make of the answer,
//! `state_sync::fetcher`) and
//! `agora_validator::ledger::merkle::chunks` (manifest and chunks).

pub mod anchor;
pub mod join;
pub mod serve;

pub use join::{Joiner, StateSyncError};
pub use serve::Snapshots;
