//! The header a snapshot is checked against, verified by the light client
//! from the operator's checkpoint over the configured gRPC servers
//! (`state_sync.rpc_servers`), with the blocks of the snapshot's height and
//! the next (see `agora_validator::state_sync` for what binds them).
//!
//! A server is not trusted: what it serves either verifies from the
//! checkpoint or is refused; a server that fails or serves something that
//! does not verify is left for the next one.

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::Hash;
use agora_validator::light_client::{LightBlock, LightError, Trusted, verify_skipping};
use agora_validator::state_sync::{Anchor, AnchorError, verify_anchor};
use agora_validator::types::ChainId;
use tonic::transport::Channel;
use tracing::warn;

use crate::client::light_audit::fetch as fetch_light;

/// Why no anchor could be verified.
#[derive(Debug, thiserror::Error)]
pub enum AnchorFetchError {
    /// The checkpoint itself does not hold: the trusted hash is not the
    /// chain's block at that height, or it is another chain's. Fatal: the
    /// configuration is wrong.
    #[error("the trusted checkpoint does not hold: {0}")]
    Checkpoint(String),
    /// No server could serve a verifiable header and blocks (retried).
    #[error("no gRPC server served a verifiable header for height {height}: {last}")]
    Unavailable {
        /// The header wanted (S + 1).
        height: u64,
        /// The last server's error.
        last: String,
    },
    /// The offered seed does not verify: the offering peer is at fault.
    #[error(transparent)]
    Seed(AnchorError),
}

/// Longest wait for one answer from a configured gRPC server. One that
/// accepts connections and never answers (stuck, overloaded, or hostile:
/// nothing it serves is believed, but its silence was) is left for the next
/// server after this, instead of holding the join for good.
pub const SERVER_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Verifies header `snapshot + 1` from `checkpoint` and the anchor of
/// `snapshot` with the offered `seed`, trying each server in turn; those
/// that failed are moved behind the others (in their order), so the next
/// call starts with one that answered.
pub async fn verify(
    servers: &mut Vec<String>,
    chain: &ChainId,
    checkpoint: (u64, Hash),
    snapshot: u64,
    seed: &Hash,
) -> Result<Anchor, AnchorFetchError> {
    let target = snapshot + 1;
    let mut last = String::from("no server configured");
    let mut failed = Vec::new();
    let mut result = None;
    for (i, server) in servers.iter().enumerate() {
        match from_server(server, chain, checkpoint, target, seed).await {
            Ok(a) => {
                result = Some(Ok(a));
                break;
            }
            Err(e @ (AnchorFetchError::Checkpoint(_) | AnchorFetchError::Seed(_))) => {
                result = Some(Err(e));
                break;
            }
            Err(e) => {
                warn!(server, error = %e, "state sync: gRPC server did not serve a verifiable anchor");
                last = e.to_string();
                failed.push(i);
            }
        }
    }
    to_the_back(servers, &failed);
    if let Some(r) = result {
        return r;
    }
    Err(AnchorFetchError::Unavailable {
        height: target,
        last,
    })
}

/// Moves the servers at `indices` (ascending) behind the others, keeping
/// the order within each group.
fn to_the_back(servers: &mut Vec<String>, indices: &[usize]) {
    if indices.is_empty() {
        return;
    }
    let (mut back, mut front) = (Vec::new(), Vec::new());
    for (i, s) in servers.drain(..).enumerate() {
        if indices.binary_search(&i).is_ok() {
            back.push(s);
        } else {
            front.push(s);
        }
    }
    front.append(&mut back);
    *servers = front;
}

async fn from_server(
    server: &str,
    chain: &ChainId,
    (from, hash): (u64, Hash),
    target: u64,
    seed: &Hash,
) -> Result<Anchor, AnchorFetchError> {
    let unavailable = |last: String| AnchorFetchError::Unavailable {
        height: target,
        last: format!("{server}: {last}"),
    };
    let channel = crate::client::connect_with_timeout(server, SERVER_REQUEST_TIMEOUT)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let mut client = QueryClient::new(channel);
    let first = fetch_light(&mut client, from).await.map_err(unavailable)?;
    if first.header.chain_id != chain.as_str() {
        return Err(AnchorFetchError::Checkpoint(format!(
            "height {from} is on chain {:?}, this node's genesis is {:?}",
            first.header.chain_id,
            chain.as_str()
        )));
    }
    let trusted = Trusted::from_checkpoint(&first, &hash)
        .map_err(|e| AnchorFetchError::Checkpoint(e.to_string()))?;
    let next = if target == from {
        first
    } else {
        light_to(client.clone(), chain, trusted, target)
            .await
            .map_err(|e| unavailable(e.to_string()))?
    };
    let next_block = block(&mut client, target).await.map_err(unavailable)?;
    let block = block(&mut client, target - 1).await.map_err(unavailable)?;
    verify_anchor(chain, &next, &next_block, &block, seed).map_err(|e| match e {
        AnchorError::Seed { .. } => AnchorFetchError::Seed(e),
        other => unavailable(other.to_string()),
    })
}

/// The light block of `target`, verified from `trusted` by skipping (and
/// bisecting where the trusted set's overlap is too small).
async fn light_to(
    mut client: QueryClient<Channel>,
    chain: &ChainId,
    trusted: Trusted,
    target: u64,
) -> Result<LightBlock, LightError> {
    let handle = tokio::runtime::Handle::current();
    let chain = chain.clone();
    let verified = tokio::task::spawn_blocking(move || {
        let mut last = None;
        let r = verify_skipping(&chain, trusted, target, |h| {
            let b = handle.block_on(fetch_light(&mut client, h));
            if h == target
                && let Ok(b) = &b
            {
                last = Some(b.clone());
            }
            b
        });
        r.map(|(t, _)| (t, last))
    })
    .await
    .map_err(|e| LightError::Fetch {
        height: target,
        message: format!("the verifier thread failed: {e}"),
    })??;
    let (t, last) = verified;
    match last {
        Some(b) if agora_validator::block::header_hash(&b.header) == t.block_hash => Ok(b),
        _ => Err(LightError::Fetch {
            height: target,
            message: "the verified header was not kept".into(),
        }),
    }
}

async fn block(client: &mut QueryClient<Channel>, h: u64) -> Result<pb::Block, String> {
    client
        .get_block(pb::GetBlockRequest { height: h })
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner()
        .block
        .ok_or_else(|| format!("no block {h} in the answer"))
}

#[cfg(test)]
mod tests {
    use super::to_the_back;

    #[test]
    fn servers_that_failed_go_behind_the_others_in_order() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut s = names(&["a", "b", "c", "d"]);
        to_the_back(&mut s, &[0, 2]);
        assert_eq!(s, names(&["b", "d", "a", "c"]));
        to_the_back(&mut s, &[]);
        assert_eq!(s, names(&["b", "d", "a", "c"]));
        // All failed: the order stays.
        to_the_back(&mut s, &[0, 1, 2, 3]);
        assert_eq!(s, names(&["b", "d", "a", "c"]));
    }
}
