//! The Agora node: everything around the pure core that touches the network,
//! the disk and the clock.
pub mod client;
pub mod rpc;
