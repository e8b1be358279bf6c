//! The headers that certify proven heights, verified by the light client
//! at rising heights, each step starting from the last header it verified
//! (so a list proven at several heights verifies the chain once, forward).

use std::time::{Duration, Instant};

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::block::header_hash;
use agora_validator::light_client::{LightError, Trusted, verify_skipping};
use agora_validator::types::ChainId;
use agora_validator::validator_set::ValidatorSet;
use tonic::transport::Channel;

use super::{ProveQueryError, Trust};
use crate::client::light_audit;

/// Longest wait for the header that certifies a proven height (the node
/// proves its latest state, so this is the next block).
pub(super) const HEADER_DEADLINE: Duration = Duration::from_secs(30);
/// How often the node's height is polled meanwhile.
const POLL: Duration = Duration::from_millis(100);

/// Verifies headers at rising heights from what the user trusts.
pub(super) struct Certifier {
    client: QueryClient<Channel>,
    /// What the first step starts from (taken by it).
    trust: Option<Trust>,
    /// The last header verified, with its chain and the light client's
    /// state there.
    last: Option<(ChainId, Trusted, pb::Header)>,
    /// What the user trusts, said for people.
    trusted: String,
}

impl Certifier {
    pub(super) fn new(client: QueryClient<Channel>, trust: Trust) -> Self {
        let trusted = match &trust {
            Trust::Genesis(..) => "the genesis file".to_string(),
            Trust::Checkpoint(h, hash) => format!("checkpoint {h}:{}", hex::encode(hash)),
        };
        Self {
            client,
            trust: Some(trust),
            last: None,
            trusted,
        }
    }

    /// What the user trusts, said for people.
    pub(super) fn trusted(&self) -> &str {
        &self.trusted
    }

    /// The chain and the validator set that certified the last header
    /// verified (the set of that header's height).
    pub(super) fn last_set(&self) -> Option<(&ChainId, &ValidatorSet)> {
        self.last
            .as_ref()
            .map(|(chain, t, _)| (chain, &t.validators))
    }

    /// Waits until the node has committed `height`.
    pub(super) async fn wait_for(&mut self, height: u64) -> Result<(), ProveQueryError> {
        let deadline = Instant::now() + HEADER_DEADLINE;
        loop {
            let latest = self
                .client
                .get_status(pb::GetStatusRequest {})
                .await?
                .into_inner()
                .latest_height;
            if latest >= height {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProveQueryError::NoHeader(height));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The verified header of `target` and the heights the light client
    /// verified on the way. Targets must rise from call to call.
    pub(super) async fn header(
        &mut self,
        target: u64,
    ) -> Result<(pb::Header, Vec<u64>), ProveQueryError> {
        let (chain, trusted) = match self.last.take() {
            Some((chain, t, header)) if t.height == target => {
                self.last = Some((chain, t, header.clone()));
                return Ok((header, Vec::new()));
            }
            Some((chain, t, _)) if t.height < target => (chain, t),
            Some((_, t, _)) => {
                return Err(ProveQueryError::Answer(format!(
                    "height {target} was asked after height {}: heights must rise",
                    t.height
                )));
            }
            None => match self.start(target).await? {
                Start::From(chain, t) => (chain, t),
                Start::At(header) => return Ok((header, Vec::new())),
            },
        };
        let mut c = self.client.clone();
        let handle = tokio::runtime::Handle::current();
        // The pure bisection asks for blocks one at a time: it runs on a
        // blocking thread and keeps the target's header, which it verified.
        let (verified, header, path) = tokio::task::spawn_blocking(move || {
            let mut target_header = None;
            let (t, path) = verify_skipping(&chain, trusted, target, |h| {
                let b = handle.block_on(light_audit::fetch(&mut c, h))?;
                if h == target {
                    target_header = Some(b.header.clone());
                }
                Ok::<_, String>(b)
            })?;
            let header = target_header.filter(|hd| header_hash(hd) == t.block_hash);
            Ok::<_, LightError>(((chain, t), header, path))
        })
        .await
        .map_err(|e| ProveQueryError::Answer(format!("the verifier thread failed: {e}")))??;
        let header = header
            .ok_or_else(|| ProveQueryError::Answer("the target header was not kept".into()))?;
        self.last = Some((verified.0, verified.1, header.clone()));
        Ok((header, path))
    }

    /// The light client's first state, from what the user trusts: the
    /// genesis set, or the checkpoint block (which may be the target).
    async fn start(&mut self, target: u64) -> Result<Start, ProveQueryError> {
        let trust = self
            .trust
            .take()
            .ok_or_else(|| ProveQueryError::Answer("the trusted start was used".into()))?;
        let (h, hash) = match trust {
            Trust::Genesis(chain, set) => {
                return Ok(Start::From(chain, Trusted::from_genesis(set)));
            }
            Trust::Checkpoint(h, hash) => (h, hash),
        };
        if h > target {
            return Err(ProveQueryError::Answer(format!(
                "the checkpoint (height {h}) is above the certifying header ({target}): use an older one"
            )));
        }
        let b = light_audit::fetch(&mut self.client, h)
            .await
            .map_err(|message| LightError::Fetch { height: h, message })?;
        let chain = ChainId::new(b.header.chain_id.clone()).map_err(|e| LightError::Header {
            height: h,
            what: format!("chain_id: {e}"),
        })?;
        let t = Trusted::from_checkpoint(&b, &hash)?;
        if h == target {
            self.last = Some((chain, t, b.header.clone()));
            return Ok(Start::At(b.header));
        }
        Ok(Start::From(chain, t))
    }
}

/// Where the first step starts.
enum Start {
    /// Verify the target from this trusted state.
    From(ChainId, Trusted),
    /// The target is the trusted checkpoint itself.
    At(pb::Header),
}
