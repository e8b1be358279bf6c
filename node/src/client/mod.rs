//! Client-side commands of `agora`: talking to a node over gRPC, and
//! `signing-state` export/import on a stopped node's home.

pub mod audit;
mod audit_range;
pub mod cli;
pub mod light_audit;
pub mod prove;
pub mod query;
mod refusal;
pub mod signing_state;
pub mod stdout;
pub mod tx;

pub use refusal::status_text;

/// Connects a gRPC channel to `endpoint` (`http://host:port`, or `host:port`).
pub async fn connect(endpoint: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    let mut e = tonic::transport::Endpoint::from_shared(url.clone())?
        .connect_timeout(std::time::Duration::from_secs(5));
    if url.starts_with("https://") {
        e = e.tls_config(client_tls())?;
    }
    e.connect().await
}

/// TLS settings for an `https://` endpoint: the node's certificate (or the
/// CA that issued it) is read from the PEM file named by [`GRPC_CA_ENV`].
fn client_tls() -> tonic::transport::ClientTlsConfig {
    let tls = tonic::transport::ClientTlsConfig::new();
    match std::env::var_os(GRPC_CA_ENV).map(std::fs::read) {
        Some(Ok(pem)) => tls.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
        _ => tls,
    }
}

/// Environment variable naming the PEM file a client trusts for a node's
/// gRPC TLS certificate (`grpc.tls_cert_file` on the node).
pub const GRPC_CA_ENV: &str = "AGORA_GRPC_CA";
