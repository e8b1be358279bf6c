//! A node's gRPC refusal as a person reads it, the same in every command
//! (`tx`, `query`, `query --prove`, `audit`): the kind of refusal, then the
//! node's reason. A reply that is not gRPC at all (`--node` names the
//! metrics or p2p port, or another service) says so and names the setting
//! to check, instead of tonic's "Unknown: transport error".

use std::error::Error as _;

use tonic::Code;

/// Whether `status` is this client's own deadline running out
/// (`connect_with_timeout`), not an answer of the node.
pub(super) fn deadline_ran_out(status: &tonic::Status) -> bool {
    // tonic's fixed message for its `TimeoutExpired`.
    status.code() == Code::Cancelled && status.message() == "Timeout expired"
}

/// Whether `status` carries a transport error under it (tonic made it from
/// a failed connection or exchange): the node's own refusals carry none.
pub(super) fn from_transport(status: &tonic::Status) -> bool {
    status.source().is_some()
}

/// What `status` means for the person who sent the request.
pub fn status_text(status: &tonic::Status) -> String {
    let kind = match status.code() {
        Code::InvalidArgument => "invalid argument",
        Code::FailedPrecondition => "rejected",
        Code::NotFound => "not found",
        Code::Unavailable => "node unavailable",
        Code::DeadlineExceeded => "timed out",
        Code::Cancelled if deadline_ran_out(status) => {
            return "timed out: the node did not answer in time".into();
        }
        Code::ResourceExhausted => "over the node's limits",
        Code::Unimplemented => "not served by this node",
        Code::Unknown | Code::Internal if from_transport(status) => {
            return format!(
                "no gRPC answer from the node ({}); is --node its gRPC address (config.toml [grpc] listen)?",
                with_causes(status)
            );
        }
        _ => "error",
    };
    format!("{kind}: {}", with_causes(status))
}

/// The status's message and the chain of errors under it, as "a: b: c"
/// (each cause once, though tonic's messages often repeat their source).
fn with_causes(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut cause = status.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_its_kind_once_and_the_nodes_reason() {
        let s = tonic::Status::failed_precondition("insufficient balance: need 2, have 1");
        assert_eq!(
            status_text(&s),
            "rejected: insufficient balance: need 2, have 1"
        );
        let s = tonic::Status::not_found("no block at height 9");
        assert_eq!(status_text(&s), "not found: no block at height 9");
    }

    #[test]
    fn an_answer_that_is_not_grpc_points_at_the_address() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stream closed");
        let s = tonic::Status::from_error(Box::new(io));
        let text = status_text(&s);
        assert!(text.starts_with("no gRPC answer from the node ("), "{text}");
        assert!(text.contains("stream closed"), "{text}");
        assert!(text.contains("[grpc] listen"), "{text}");
        let s = tonic::Status::cancelled("Timeout expired");
        assert_eq!(
            status_text(&s),
            "timed out: the node did not answer in time"
        );
        // Without a transport cause an Unknown is the node's own answer.
        let s = tonic::Status::unknown("something odd");
        assert_eq!(status_text(&s), "error: something odd");
    }
}
