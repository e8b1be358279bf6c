//! Waiting out a node that sheds load. A node refuses a request at once
//! when a place it bounds is taken (`rpc::limits::ServerLimits`: block
//! ranges, requests being answered, a client address's share of them),
//! and those places are held until each answer is sent, so a burst of
//! other clients, or one that reads slowly, can make a long `agora audit`
//! meet such a refusal halfway. The refusal means "not now": the command
//! asks again after a pause instead of failing the whole audit, and gives
//! up with the node's last refusal after [`BUSY_PATIENCE`].

use std::future::Future;
use std::time::Duration;

use tonic::{Code, Status};

use super::refusal::from_transport;

/// Longest a command waits out a busy node for one answer, in all.
pub const BUSY_PATIENCE: Duration = Duration::from_secs(30);
/// First pause before asking again; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(20);
/// Longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Whether `status` is the node saying "not now": RESOURCE_EXHAUSTED, or
/// UNAVAILABLE from the node itself (not a failed connection, which
/// tonic also reports as UNAVAILABLE, with a transport error under it).
pub(super) fn node_busy(status: &Status) -> bool {
    match status.code() {
        Code::ResourceExhausted => true,
        Code::Unavailable => !from_transport(status),
        _ => false,
    }
}

/// Runs `call` until it is answered by something other than a busy
/// refusal, pausing between tries, for at most `patience` in all; then the
/// last refusal. Returns how many busy refusals it waited out, too.
pub(super) async fn when_free<T, F, Fut>(
    patience: Duration,
    mut call: F,
) -> (Result<T, Status>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let give_up = tokio::time::Instant::now() + patience;
    let mut pause = FIRST_PAUSE;
    let mut refused = 0;
    loop {
        match call().await {
            Err(status) if node_busy(&status) && tokio::time::Instant::now() + pause < give_up => {
                refused += 1;
                tracing::debug!(refused, ?pause, "node busy; asking again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            other => return (other, refused),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn busy_refusals_are_waited_out_and_others_returned_at_once() {
        // Two busy refusals, then the answer.
        let tries = Cell::new(0);
        let (r, refused) = when_free(BUSY_PATIENCE, || {
            tries.set(tries.get() + 1);
            let n = tries.get();
            async move {
                match n {
                    1 => Err(Status::resource_exhausted("too many block-range reads")),
                    2 => Err(Status::unavailable("too many requests")),
                    _ => Ok(n),
                }
            }
        })
        .await;
        assert_eq!((r.expect("answered"), refused), (3, 2));

        // Any other refusal is the answer.
        let tries = Cell::new(0);
        let (r, refused) = when_free(BUSY_PATIENCE, || {
            tries.set(tries.get() + 1);
            async { Err::<(), _>(Status::not_found("no block at height 9")) }
        })
        .await;
        assert_eq!(
            (r.expect_err("refused").code(), refused),
            (Code::NotFound, 0)
        );
        assert_eq!(tries.get(), 1);

        // A node busy for good: the last refusal once patience runs out
        // (pauses of 20, 40, 80, 160 ms; the next would pass 400 ms).
        let (r, refused) = when_free(Duration::from_millis(400), || async {
            Err::<(), _>(Status::resource_exhausted("too many block-range reads"))
        })
        .await;
        assert_eq!(r.expect_err("gave up").code(), Code::ResourceExhausted);
        assert!((1..=4).contains(&refused), "{refused} refusals waited out");
    }

    #[test]
    fn a_failed_connection_is_not_a_busy_node() {
        let mut unavailable = Status::unavailable("too many requests");
        assert!(node_busy(&unavailable));
        unavailable.set_source(std::sync::Arc::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        )));
        assert!(!node_busy(&unavailable));
        assert!(node_busy(&Status::resource_exhausted("x")));
        assert!(!node_busy(&Status::internal("x")));
    }
}
