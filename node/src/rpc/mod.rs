//! The public gRPC API (DESIGN §10): `agora.v1.Staking` and `agora.v1.Query`,
//! with server reflection and the standard health service.
//!
//! Requests are bounded (`limits`), validated before they reach the node, and
//! refused with INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION and a
//! message a person can act on.

pub mod answer_places;
pub mod api;
pub mod client_addr;
pub mod conn_limit;
pub mod ledger_views;
/// The refusal of a transaction the node had no room to check (its
/// signature checker's queue was full): the same transaction may be sent
/// again unchanged, which keeps the sender's nonces contiguous.
pub const BUSY_CHECKING_TXS: &str = "the node is busy checking transactions; retry shortly";

pub mod limits;
pub mod place_pool;
pub mod proofs;
pub mod pruned;
pub mod query;
pub mod staking;
pub mod stalls;

pub use api::{ApiError, NodeApi, TxInfo};
pub use limits::ServerLimits;

use crate::metrics::{GrpcRefusal, Metrics};
use conn_limit::{ConnLimiter, LimitedConn, Refusal};
use tonic::codegen::tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::tokio_stream::{Stream, StreamExt};
use tonic::transport::ServerTlsConfig;

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
    /// The TLS certificate or key could not be used.
    #[error("gRPC TLS on {addr}: {message}")]
    Tls {
        /// Address it was to serve on.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// The server failed (bind, accept).
    #[error("gRPC server on {addr}: {source}")]
    Serve {
        /// Address it served on.
        addr: SocketAddr,
        /// Cause.
        source: tonic::transport::Error,
    },
}

/// Serves the API on `listener` until `shutdown` resolves, within `limits`
/// (see [`ServerLimits`] for what each bound holds), over TLS when `tls` is
/// given.
pub async fn serve<A: NodeApi>(
    api: Arc<A>,
    listener: tokio::net::TcpListener,
    limits: ServerLimits,
    tls: Option<ServerTlsConfig>,
    metrics: Arc<Metrics>,
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
    let query = QueryServer::new(query::QueryService::new(
        api.clone(),
        &limits,
        metrics.clone(),
    ))
    .max_decoding_message_size(limits::MAX_REQUEST_BYTES)
    .max_encoding_message_size(limits::MAX_RESPONSE_BYTES);
    let staking = StakingServer::new(staking::StakingService::new(api))
        .max_decoding_message_size(limits::MAX_REQUEST_BYTES)
        .max_encoding_message_size(limits::MAX_RESPONSE_BYTES);
    // Each connection's answers waiting on its client (`stalls`).
    let stall_book = Arc::new(stalls::StallBook::default());
    let incoming = admitted(listener, &limits, stall_book.clone(), metrics.clone());
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls).map_err(|source| RpcError::Tls {
            addr,
            message: source.to_string(),
        })?;
    }
    server
        .timeout(limits::MAX_WAIT + std::time::Duration::from_secs(10))
        .max_concurrent_streams(limits.max_streams_per_connection)
        .concurrency_limit_per_connection(limits.max_requests_per_connection)
        // Over a limit, refuse at once (UNAVAILABLE) instead of queueing.
        .load_shed(true)
        // A client that stops reading is noticed and its connection closed;
        // a live one answers within `silent_client` (`conn_limit`).
        .http2_keepalive_interval(Some(limits.keepalive()))
        .http2_keepalive_timeout(Some(limits.keepalive()))
        // Places held until each answer is sent (`answer_places`).
        .layer(
            answer_places::AnswerPlacesLayer::new(
                limits.max_requests,
                limits.max_requests_per_ip,
                metrics.clone(),
            )
            .watching(stall_book),
        )
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(query)
        .add_service(staking)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|source| RpcError::Serve { addr, source })
}

/// The accepted connections that fit under the connection limits; the
/// others are closed at once and counted.
fn admitted(
    listener: tokio::net::TcpListener,
    limits: &ServerLimits,
    stall_book: Arc<stalls::StallBook>,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = std::io::Result<LimitedConn>> {
    let limiter = ConnLimiter::new(limits.max_connections, limits.max_connections_per_ip);
    let clocks = conn_limit::ClientClocks {
        silent: limits.silent_client,
        stalled_answer: limits.stalled_answer,
    };
    TcpListenerStream::new(listener).filter_map(move |conn| match conn {
        Ok(io) => match LimitedConn::admit(io, &limiter, clocks, &stall_book) {
            Ok(c) => Some(Ok(c)),
            Err(refusal) => {
                metrics.grpc_refused(match refusal {
                    Refusal::Full => GrpcRefusal::Connections,
                    Refusal::PerIp => GrpcRefusal::ConnectionsPerIp,
                });
                tracing::debug!(?refusal, "gRPC connection refused");
                None
            }
        },
        Err(e) => Some(Err(e)),
    })
}
