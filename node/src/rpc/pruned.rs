//! The answers for heights a node does not hold: a node that prunes
//! (`storage.keep_blocks`) says so, with the lowest height it still holds,
//! so that a client knows to ask another node rather than wait.

use super::api::NodeApi;
use tonic::Status;

/// NOT_FOUND for `what` at height `h`: "pruned here" below the node's
/// lowest height, "not stored" otherwise.
pub fn missing<A: NodeApi + ?Sized>(api: &A, what: &str, h: u64) -> Status {
    let lowest = api.lowest_height();
    if h < lowest {
        Status::not_found(message(what, h, lowest))
    } else {
        Status::not_found(format!("no {what} at height {h}"))
    }
}

/// The text of a pruned-height answer.
pub fn message(what: &str, h: u64, lowest: u64) -> String {
    format!(
        "{what} {h} is pruned on this node (storage.keep_blocks); the lowest height it still holds is {lowest}: ask a node that keeps every block"
    )
}

/// NOT_FOUND for an unknown transaction, naming the pruned heights if any
/// (its block may be one of them: their index entries are gone too).
pub fn unknown_tx<A: NodeApi + ?Sized>(api: &A, hash: &[u8]) -> Status {
    let lowest = api.lowest_height();
    let hash = hex::encode(hash);
    if lowest > 1 {
        Status::not_found(format!(
            "transaction {hash} is unknown to this node; it prunes old blocks (storage.keep_blocks) and holds heights from {lowest} only, so a transaction included below that is no longer indexed here: ask a node that keeps every block"
        ))
    } else {
        Status::not_found(format!("transaction {hash} is unknown"))
    }
}
