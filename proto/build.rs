//! Compiles `agora/v1/*.proto` with protox (pure Rust), so no system `protoc`
//! is needed, then generates prost messages and tonic services from the
//! resulting descriptor set. The service modules are gated behind the `grpc`
//! feature so the pure core can use the messages without tonic.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "agora/v1/types.proto",
        "agora/v1/genesis.proto",
        "agora/v1/services.proto",
        "agora/v1/p2p.proto",
        "agora/v1/state.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("agora_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .client_mod_attribute(".", "#[cfg(feature = \"grpc\")]")
        .server_mod_attribute(".", "#[cfg(feature = \"grpc\")]")
        .compile_fds(fds)?;
    Ok(())
}
