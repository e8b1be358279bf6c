//! Whole-system tests for Agora; the test targets live in `tests/tests/`.
//!
//! * [`sim`]: the deterministic simulator of the consensus core used by the
//!   `simulation` test target;
//! * [`harness`]: real `agora` / `agora-testnet` processes for the
//!   multi-process targets, on ports from [`ports`];
//! * [`udp_relay`]: a UDP relay that cuts and heals links between nodes;
//! * [`byzantine`]: a Byzantine peer and gRPC client that attack a real
//!   node over the real wire protocol, for the `attacks` test target.

pub mod browser;
pub mod byzantine;
pub mod harness;
pub mod ports;
pub mod sim;
pub mod udp_relay;
