//! Agora's protobuf types (package `agora.v1`), generated at build time from
//! `proto/agora/v1/*.proto` by a pure-Rust compiler.
//!
//! The gRPC client and server modules exist only with the `grpc` feature, so
//! that the pure core can depend on this crate without tonic.

/// Package `agora.v1`: every message, and with `grpc` the services.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/agora.v1.rs"));
}

/// The encoded file descriptor set of every `.proto` file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/agora_descriptor.bin"));

pub use prost;
pub use prost::Message;
