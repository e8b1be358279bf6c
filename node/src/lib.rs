//! The Agora node: everything around the pure core that touches the network,
//! the disk and the clock.

#![deny(missing_docs)]
// The command line's answers go through `client::stdout` (`outln!`): `println!`
// panics when the reader has left.
#![deny(clippy::print_stdout)]

pub mod api;
pub mod client;
pub mod config;
pub mod doc_commands;
pub mod error_text;
pub mod explorer;
pub mod genesis;
pub mod home;
pub mod host_network;
pub mod http;
pub mod keys;
pub mod logging;
pub mod memory;
pub mod mempool;
pub mod metrics;
pub mod node;
pub mod rpc;
pub mod runner;
pub mod state_sync;
pub mod storage;
pub mod sync;
pub mod threads;
pub mod transport;
pub mod tx_gossip;
pub mod tx_verifier;
pub mod wal;
