//! The public gRPC API (DESIGN §10): `agora.v1.Staking` and `agora.v1.Query`,
//! with server reflection and the standard health service.
//!
//! Requests are bounded (`limits`), validated before they reach the node, and
//! refused with INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION and a
//! message a person can act on.

pub mod api;
pub mod ledger_views;
pub mod limits;
pub mod query;
pub mod staking;

pub use api::{ApiError, NodeApi, TxInfo};

use agora_proto::v1::query_server::QueryServer;
use agora_proto::v1::staking_server::StakingServer;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why the gRPC server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Reflection could not load the descriptor set (a build problem).
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    /// The server failed (bind, accept).
    #[error("gRPC server on {addr}: {source}")]
    Serve {
        /// Address it served on.
        addr: SocketAddr,
        /// Cause.
        source: tonic::transport::Error,
    },
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve<A: NodeApi>(
    api: Arc<A>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RpcError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    // Both reflection versions: grpcurl and older tools still ask v1alpha.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(agora_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| RpcError::Reflection(e.to_string()))?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(agora_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| RpcError::Reflection(e.to_string()))?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<QueryServer<query::QueryService<A>>>()
        .await;
    health
        .set_serving::<StakingServer<staking::StakingService<A>>>()
        .await;
    let query = QueryServer::new(query::QueryService::new(api.clone()))
        .max_decoding_message_size(limits::MAX_REQUEST_BYTES)
        .max_encoding_message_size(limits::MAX_RESPONSE_BYTES);
    let staking = StakingServer::new(staking::StakingService::new(api))
        .max_decoding_message_size(limits::MAX_REQUEST_BYTES)
        .max_encoding_message_size(limits::MAX_RESPONSE_BYTES);
    // Small responses must not wait for the client's delayed ACK (Nagle):
    // without TCP_NODELAY every store-backed query took about 40 ms.
    let incoming = tonic::codegen::tokio_stream::StreamExt::map(
        tonic::codegen::tokio_stream::wrappers::TcpListenerStream::new(listener),
        |conn| {
            if let Ok(stream) = &conn {
                let _ = stream.set_nodelay(true);
            }
            conn
        },
    );
    tonic::transport::Server::builder()
        .timeout(limits::MAX_WAIT + std::time::Duration::from_secs(10))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(query)
        .add_service(staking)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|source| RpcError::Serve { addr, source })
}
