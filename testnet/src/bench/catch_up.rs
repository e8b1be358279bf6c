//! Catch-up: one validator is stopped, the others commit K more heights,
//! it is restarted and its height is sampled until it has caught up.

use std::time::Duration;

use agora_proto::v1::query_client::QueryClient;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::POLL;
use super::nodes::Nodes;
use super::rpc::{height, query_client};

/// The catch-up part of the bench's result.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUp {
    /// The stopped and restarted node.
    pub node: String,
    /// Its height when it was stopped.
    pub height_at_stop: u64,
    /// The leader's height when it was restarted.
    pub leader_height_at_restart: u64,
    /// Its height when it first answered after the restart.
    pub height_at_first_answer: u64,
    /// Its height once level with the others.
    pub caught_up_height: u64,
    /// Blocks gained from the stop to catching up (the node may sync some
    /// before its gRPC port first answers).
    pub blocks: u64,
    /// From the restart to the first answer (process start, storage open).
    pub startup_seconds: f64,
    /// From the restart to catching up, startup included.
    pub seconds: f64,
    /// blocks / seconds.
    pub blocks_per_s: f64,
}

/// Catch-up of `k` blocks measured on `nodes` (`clients` in the same
/// order), or a note on why there is no measurement: skipped, impossible
/// or failed.
pub async fn measure(
    nodes: &mut Nodes,
    clients: &[QueryClient<Channel>],
    k: u64,
) -> (Option<CatchUp>, Option<String>) {
    let n = nodes.m.nodes.len();
    if k == 0 {
        (None, Some("skipped (--catch-up-blocks 0)".to_string()))
    } else if n < 4 {
        (
            None,
            Some(format!(
                "skipped: with {n} equal validators one stopped leaves no quorum (needs at least 4)"
            )),
        )
    } else {
        match catch_up(nodes, clients, k).await {
            Ok(c) => (Some(c), None),
            Err(e) => {
                eprintln!("bench: catch-up failed: {e:#}");
                (None, Some(format!("failed: {e:#}")))
            }
        }
    }
}

/// The stopped node as it is restarted.
struct Restart {
    /// Its moniker.
    name: String,
    /// Its height when it was stopped.
    height_at_stop: u64,
    /// The leader's height when it was restarted.
    leader_height_at_restart: u64,
    /// When it was restarted.
    at: Instant,
}

impl Restart {
    /// The catch-up of a node that first answered at `first` (time, height)
    /// and was level with the others at `now`, at height `level`.
    fn caught_up(self, first: (Instant, u64), now: Instant, level: u64) -> CatchUp {
        let (t_first, h_first) = first;
        let seconds = now.duration_since(self.at).as_secs_f64();
        let blocks = level.saturating_sub(self.height_at_stop);
        CatchUp {
            node: self.name,
            height_at_stop: self.height_at_stop,
            leader_height_at_restart: self.leader_height_at_restart,
            height_at_first_answer: h_first,
            caught_up_height: level,
            blocks,
            startup_seconds: t_first.duration_since(self.at).as_secs_f64(),
            seconds,
            blocks_per_s: if seconds > 0.0 {
                blocks as f64 / seconds
            } else {
                0.0
            },
        }
    }
}

/// Stops the last node, lets the others commit `k` more heights, restarts it
/// and samples its height until it is level with the leader (node0).
async fn catch_up(nodes: &mut Nodes, clients: &[QueryClient<Channel>], k: u64) -> Result<CatchUp> {
    let v = nodes.m.nodes.len() - 1;
    let name = nodes.m.nodes[v].moniker.clone();
    let leader = &clients[0];
    let height_at_stop = height(&clients[v])
        .await
        .with_context(|| format!("{name} does not answer GetStatus"))?;
    eprintln!("bench: stopping {name} at height {height_at_stop}; the others commit {k} more");
    nodes.stop_one(v).await?;
    // Heights in flight at the signal may still have been stored: +2.
    let target = height_at_stop + k + 2;
    wait_for_others(nodes, leader, &name, target, k).await?;
    let leader_height_at_restart = height(leader).await.unwrap_or(target);
    nodes.spawn(v)?;
    let _ = nodes.m.save();
    let restart = Restart {
        name,
        height_at_stop,
        leader_height_at_restart,
        at: Instant::now(),
    };
    // A fresh channel: the old one may hold a dead connection.
    let victim = query_client(&nodes.m.nodes[v].grpc)?;
    until_level(nodes, &victim, leader, restart, k).await
}

/// Waits until the leader, with the node `name` stopped, reaches `target`
/// (the stop's height plus about `k`).
async fn wait_for_others(
    nodes: &mut Nodes,
    leader: &QueryClient<Channel>,
    name: &str,
    target: u64,
    k: u64,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60) + Duration::from_millis(500) * k as u32;
    loop {
        nodes.check_alive()?;
        let h = height(leader).await.unwrap_or(0);
        if h >= target {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("without {name} the others reached height {h}, not {target}, in time");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Samples the restarted node (`victim`) until it is level with the leader
/// after missing about `k` heights.
async fn until_level(
    nodes: &mut Nodes,
    victim: &QueryClient<Channel>,
    leader: &QueryClient<Channel>,
    r: Restart,
    k: u64,
) -> Result<CatchUp> {
    let mut first: Option<(Instant, u64)> = None;
    let deadline = r.at + Duration::from_secs(120) + Duration::from_millis(100) * k as u32;
    loop {
        nodes.check_alive()?;
        let vh = height(victim).await;
        let now = Instant::now();
        if let Some(vh) = vh {
            let first = *first.get_or_insert((now, vh));
            let lh = height(leader).await.unwrap_or(u64::MAX);
            if vh >= r.leader_height_at_restart && vh + 1 >= lh {
                return Ok(r.caught_up(first, now, vh));
            }
        }
        if now >= deadline {
            bail!(
                "{} did not catch up within {:?} (its height {vh:?}, leader at restart {})",
                r.name,
                deadline - r.at,
                r.leader_height_at_restart
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
