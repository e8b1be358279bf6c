//! Client-side commands of `agora`: talking to a node over gRPC.

pub mod audit;
pub mod query;
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
