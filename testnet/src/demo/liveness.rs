//! Step 9: the three honest validators keep committing without node3, and
//! the set holds only them.

use std::time::Instant;

use agora_proto::v1::query_client::QueryClient;
use anyhow::{Result, ensure};
use tonic::transport::Channel;

use super::rpc::{latest, query_client, wait_all_heights};
use super::{Demo, HEIGHTS_DEADLINE, LIVENESS_HEIGHTS, VALIDATORS};

impl Demo<'_> {
    /// Step 9: node0..node2 commit [`LIVENESS_HEIGHTS`] more heights from
    /// `out` (the first height without node3) or the latest, whichever is
    /// later.
    pub(super) async fn liveness(&mut self, out: u64) -> Result<((), String)> {
        let m = self.net.m()?;
        let honest: Vec<QueryClient<Channel>> = m.nodes[..VALIDATORS - 1]
            .iter()
            .map(|n| query_client(&n.grpc))
            .collect::<Result<_>>()?;
        let from = latest(&mut self.q).await?.max(out);
        let t0 = Instant::now();
        let hs =
            wait_all_heights(self.net, &honest, from + LIVENESS_HEIGHTS, HEIGHTS_DEADLINE).await?;
        let set = self.set_at(0).await?;
        let total: u64 = set.validators.iter().map(|v| v.power).sum();
        detail!(
            "validator set now: {} validators, total power {total}",
            set.validators.len()
        );
        ensure!(
            set.validators.len() == VALIDATORS - 1,
            "{} validators in the set, expected {}",
            set.validators.len(),
            VALIDATORS - 1
        );
        Ok((
            (),
            format!(
                "node0..node2 went from height {from} to {hs:?} in {:.1} s",
                t0.elapsed().as_secs_f64()
            ),
        ))
    }
}
