//! Client-side commands of `agora`: talking to a node over gRPC, and
//! `signing-state` export/import on a stopped node's home.

pub mod audit;
pub mod cli;
pub mod query;
pub mod signing_state;
pub mod tx;

/// Connects a gRPC channel to `endpoint` (`http://host:port`, or `host:port`).
pub async fn connect(endpoint: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    tonic::transport::Endpoint::from_shared(url)?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
}
