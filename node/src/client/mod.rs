//! Client-side commands of `agora`: talking to a node over gRPC, and
//! `signing-state` export/import on a stopped node's home.

pub mod audit;
pub mod audit_cli;
mod audit_range;
mod busy;
pub mod cli;
pub mod light_audit;
pub mod pages;
pub mod prove;
pub mod query;
mod refusal;
pub mod signing_state;
pub mod stdout;
pub mod tx;

use std::time::Duration;

pub use refusal::status_text;

/// Longest wait for one answer from a node when the caller names none: the
/// server's default wait for a transaction's commit
/// ([`crate::rpc::limits::DEFAULT_WAIT`], 30 s) and a margin. Without a
/// bound, anything that accepts the connection and never answers (a node
/// stuck or overloaded, a port forwarded to nowhere) held a command, or a
/// state sync's header fetch, for good.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);

/// The last height an audit verifies: `to` when the node has it, else the
/// node's `latest` height. A `--to` past the tip is refused, not quietly
/// lowered: "verified up to 1,000" must not print OK for a node that holds
/// 84 heights (a script reading the exit status would believe it).
pub(crate) fn audit_target(to: Option<u64>, latest: u64) -> Result<u64, String> {
    match to {
        Some(t) if t > latest => Err(format!(
            "--to {t} is past the node's latest height {latest}: a height not yet committed cannot be verified (omit --to to stop at the latest)"
        )),
        Some(t) => Ok(t),
        None => Ok(latest),
    }
}

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects a gRPC channel to `endpoint` (`http://host:port`, or
/// `host:port`), each request bounded by [`REQUEST_TIMEOUT`].
pub async fn connect(endpoint: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    connect_with_timeout(endpoint, REQUEST_TIMEOUT).await
}

/// [`connect`] with each request (until its answer's headers) bounded by
/// `request_timeout`; one that runs out fails with CANCELLED, "Timeout
/// expired" (rendered by [`status_text`]).
pub async fn connect_with_timeout(
    endpoint: &str,
    request_timeout: Duration,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    let mut e = tonic::transport::Endpoint::from_shared(url.clone())?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(request_timeout);
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

#[cfg(test)]
mod tests {
    use super::audit_target;

    #[test]
    fn an_audit_stops_at_the_tip_and_refuses_to_pass_it() {
        assert_eq!(audit_target(None, 84), Ok(84));
        assert_eq!(audit_target(Some(84), 84), Ok(84));
        assert_eq!(audit_target(Some(10), 84), Ok(10));
        let e = audit_target(Some(85), 84).unwrap_err();
        assert!(
            e.contains("--to 85 is past the node's latest height 84"),
            "{e}"
        );
    }
}
