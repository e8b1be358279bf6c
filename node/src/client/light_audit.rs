//! `agora audit --trust HEIGHT:HASH [--skip]`: the light client of
//! `agora_validator::light_client` against a node. The node serves headers,
//! certificates and validator sets over gRPC; nothing it serves is trusted
//! beyond the checkpoint the user gives.

use std::time::Instant;

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::certificate::CommitCertificate;
use agora_validator::crypto::Hash;
use agora_validator::light_client::{
    LightBlock, LightError, Trusted, verify_skipping, verify_step,
};
use agora_validator::types::ChainId;
use agora_validator::validator_set::ValidatorSet;
use tonic::transport::Channel;

/// What the light audit verified.
#[derive(Debug)]
pub struct LightReport {
    /// The checkpoint height.
    pub from: u64,
    /// The last height verified.
    pub to: u64,
    /// Heights verified on the way, in order (every height when sequential;
    /// the bisection's pivots and the target when skipping).
    pub path: Vec<u64>,
    /// Wall time.
    pub seconds: f64,
}

/// Reads `HEIGHT:HASH` (hash as 64 hex digits).
pub fn parse_checkpoint(s: &str) -> Result<(u64, Hash), String> {
    let (h, hash) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not HEIGHT:HASH"))?;
    let height: u64 = h
        .parse()
        .ok()
        .filter(|h| *h >= 1)
        .ok_or_else(|| format!("{h:?} is not a height (a number from 1)"))?;
    let bytes = hex::decode(hash).map_err(|_| format!("{hash:?} is not hex"))?;
    let hash: Hash = bytes
        .try_into()
        .map_err(|_| "the hash must be 32 bytes (64 hex digits)".to_string())?;
    Ok((height, hash))
}

/// One height's header, certificate and set from the node.
pub(crate) async fn fetch(client: &mut QueryClient<Channel>, h: u64) -> Result<LightBlock, String> {
    let c = client
        .get_commit_certificate(pb::GetCommitCertificateRequest { height: h })
        .await
        .map_err(|s| super::status_text(&s))?
        .into_inner();
    let header = c.header.ok_or("no header in the answer")?;
    let certificate = CommitCertificate::from_proto(&c.certificate.ok_or("no certificate")?)
        .map_err(|e| format!("certificate: {e}"))?;
    let s = client
        .get_validator_set(pb::GetValidatorSetRequest { height: h })
        .await
        .map_err(|s| super::status_text(&s))?
        .into_inner();
    let validators = ValidatorSet::from_proto(&s.validator_set.unwrap_or_default())
        .map_err(|e| format!("validator set: {e}"))?;
    Ok(LightBlock {
        header,
        certificate,
        validators,
    })
}

/// Verifies from `checkpoint` up to `to` (default: the node's latest),
/// every height in turn or, with `skip`, by skipping and bisecting.
pub async fn run(
    channel: Channel,
    checkpoint: (u64, Hash),
    to: Option<u64>,
    skip: bool,
) -> Result<LightReport, LightError> {
    let t0 = Instant::now();
    let mut client = QueryClient::new(channel);
    let (from, hash) = checkpoint;
    let fetch_err = |height, message| LightError::Fetch { height, message };
    let first = fetch(&mut client, from)
        .await
        .map_err(|m| fetch_err(from, m))?;
    let chain = ChainId::new(first.header.chain_id.clone()).map_err(|e| LightError::Header {
        height: from,
        what: format!("chain_id: {e}"),
    })?;
    let trusted = Trusted::from_checkpoint(&first, &hash)?;
    let tip = client
        .get_status(pb::GetStatusRequest {})
        .await
        .map_err(|s| fetch_err(from, super::status_text(&s)))?
        .into_inner()
        .latest_height;
    let latest = super::audit_target(to, tip).map_err(|m| fetch_err(to.unwrap_or(tip), m))?;
    if latest <= from {
        return Ok(LightReport {
            from,
            to: from,
            path: Vec::new(),
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    let path = if skip {
        // The pure bisection asks for blocks one at a time; it runs on a
        // blocking thread that waits for each gRPC answer.
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            verify_skipping(&chain, trusted, latest, |h| {
                handle.block_on(fetch(&mut client, h))
            })
            .map(|(_, path)| path)
        })
        .await
        .map_err(|e| fetch_err(latest, format!("the verifier thread failed: {e}")))??
    } else {
        let mut t = trusted;
        let mut path = Vec::new();
        for h in from + 1..=latest {
            let block = fetch(&mut client, h).await.map_err(|m| fetch_err(h, m))?;
            t = verify_step(&chain, &t, &block)?;
            path.push(h);
        }
        path
    };
    Ok(LightReport {
        from,
        to: latest,
        path,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_parse_with_clear_errors() {
        let (h, hash) = parse_checkpoint(&format!("12:{}", "ab".repeat(32))).unwrap();
        assert_eq!((h, hash), (12, [0xab; 32]));
        assert!(parse_checkpoint("12").unwrap_err().contains("HEIGHT:HASH"));
        assert!(parse_checkpoint("0:00").unwrap_err().contains("from 1"));
        assert!(parse_checkpoint("3:zz").unwrap_err().contains("not hex"));
        assert!(parse_checkpoint("3:abcd").unwrap_err().contains("32 bytes"));
    }
}
