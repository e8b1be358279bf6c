//! The live view: per-node height, round, peers and commit interval (from
//! gRPC GetStatus), the validator set's power (GetValidatorSet) and slashes
//! (ListSlashingEvents), polled from the nodes listed in the manifest.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use tonic::transport::{Channel, Endpoint};

use crate::manifest::Manifest;

/// Per-request deadline: a stopped node must not stall the view.
const RPC_TIMEOUT: Duration = Duration::from_millis(800);
/// Slashing events shown at most.
const MAX_SLASHES_SHOWN: usize = 10;

/// One node's state as last seen.
#[derive(Debug, Clone, Default)]
pub struct NodeStatus {
    /// Latest committed height.
    pub height: u64,
    /// Current round.
    pub round: u32,
    /// Connected peers.
    pub peers: u32,
    /// Why the node could not be read, if it could not.
    pub error: Option<String>,
}

/// Everything one refresh shows.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Per node, in manifest order.
    pub nodes: Vec<NodeStatus>,
    /// (validator address hex, power) from the first reachable node.
    pub powers: Vec<(String, u64)>,
    /// Height of that validator set.
    pub set_height: u64,
    /// The slashing events.
    pub slashes: Vec<pb::SlashingEvent>,
}

/// gRPC clients to every node, connected lazily and reconnecting on their own.
pub struct Poller {
    clients: Vec<Option<QueryClient<Channel>>>,
}

impl Poller {
    /// Clients for the manifest's nodes (call inside a tokio runtime).
    pub fn new(m: &Manifest) -> Self {
        let clients = m
            .nodes
            .iter()
            .map(|n| {
                Endpoint::from_shared(format!("http://{}", n.grpc))
                    .ok()
                    .map(|e| {
                        QueryClient::new(
                            e.connect_timeout(RPC_TIMEOUT)
                                .timeout(RPC_TIMEOUT)
                                .connect_lazy(),
                        )
                        .max_decoding_message_size(4 * 1024 * 1024)
                    })
            })
            .collect();
        Self { clients }
    }

    /// Reads every node's status concurrently, then the validator set and
    /// slashes from the first node that answered.
    pub async fn snapshot(&self) -> Snapshot {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, c) in self.clients.iter().enumerate() {
            let c = c.clone();
            tasks.spawn(async move {
                let Some(mut c) = c else {
                    return (i, Err("bad gRPC endpoint".to_string()));
                };
                let r = c
                    .get_status(pb::GetStatusRequest {})
                    .await
                    .map(|r| r.into_inner())
                    .map_err(|s| short_error(&s));
                (i, r)
            });
        }
        let mut nodes = vec![NodeStatus::default(); self.clients.len()];
        while let Some(r) = tasks.join_next().await {
            let Ok((i, r)) = r else { continue };
            nodes[i] = match r {
                Ok(s) => NodeStatus {
                    height: s.latest_height,
                    round: s.round,
                    peers: s.peers,
                    error: None,
                },
                Err(e) => NodeStatus {
                    error: Some(e),
                    ..NodeStatus::default()
                },
            };
        }
        let mut snap = Snapshot {
            nodes,
            ..Snapshot::default()
        };
        let first = snap
            .nodes
            .iter()
            .position(|n| n.error.is_none())
            .and_then(|i| self.clients[i].clone());
        if let Some(mut c) = first {
            if let Ok(r) = c
                .get_validator_set(pb::GetValidatorSetRequest { height: 0 })
                .await
            {
                let r = r.into_inner();
                snap.set_height = r.height;
                snap.powers = r
                    .validator_set
                    .map(|s| {
                        s.validators
                            .iter()
                            .map(|v| (hex::encode(&v.address), v.power))
                            .collect()
                    })
                    .unwrap_or_default();
            }
            if let Ok(r) = c
                .list_slashing_events(pb::ListSlashingEventsRequest {
                    validator: Vec::new(),
                    page: Some(pb::PageRequest {
                        page_token: Vec::new(),
                        limit: MAX_SLASHES_SHOWN as u32,
                    }),
                })
                .await
            {
                snap.slashes = r.into_inner().events;
                snap.slashes.truncate(MAX_SLASHES_SHOWN);
            }
        }
        snap
    }
}

fn short_error(s: &tonic::Status) -> String {
    let m = match s.code() {
        tonic::Code::Unavailable => "unreachable".to_string(),
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => "timed out".to_string(),
        c => format!("{c:?}: {}", s.message()),
    };
    m.chars().take(60).collect()
}

/// Commit interval per node, measured by watching heights change between
/// refreshes (a node's height moving by d over t gives t/d per block).
#[derive(Default)]
pub struct IntervalTracker {
    last: HashMap<usize, (u64, Instant)>,
    interval: HashMap<usize, Duration>,
}

impl IntervalTracker {
    /// Records the heights seen now.
    pub fn observe(&mut self, snap: &Snapshot, now: Instant) {
        for (i, n) in snap.nodes.iter().enumerate() {
            if n.error.is_some() {
                continue;
            }
            match self.last.get(&i) {
                Some(&(h, t)) if n.height > h => {
                    let d = (n.height - h).min(u64::from(u32::MAX)) as u32;
                    self.interval.insert(i, (now - t) / d);
                    self.last.insert(i, (n.height, now));
                }
                Some(_) => {}
                None => {
                    self.last.insert(i, (n.height, now));
                }
            }
        }
    }

    /// The last interval measured for node `i`.
    pub fn interval(&self, i: usize) -> Option<Duration> {
        self.interval.get(&i).copied()
    }
}

/// The snapshot as text. `exited[i]` says why node i's process is gone (only
/// known for processes this run started).
pub fn render(
    m: &Manifest,
    snap: &Snapshot,
    tracker: &IntervalTracker,
    exited: &[Option<String>],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "agora testnet {:?} in {} ({} validators)",
        m.chain_id,
        m.dir.display(),
        m.nodes.len()
    );
    let _ = writeln!(
        out,
        "{:<7} {:<22} {:>8} {:>6} {:>6} {:>11}  validator",
        "node", "grpc", "height", "round", "peers", "commit"
    );
    for (i, n) in m.nodes.iter().enumerate() {
        let s = snap.nodes.get(i).cloned().unwrap_or_default();
        let addr: String = n.validator_address.chars().take(12).collect();
        if let Some(Some(why)) = exited.get(i) {
            let _ = writeln!(out, "{:<7} {:<22} process exited: {why}", n.moniker, n.grpc);
        } else if let Some(e) = &s.error {
            let _ = writeln!(out, "{:<7} {:<22} {e}", n.moniker, n.grpc);
        } else {
            let interval = tracker
                .interval(i)
                .map(|d| format!("{} ms", d.as_millis()))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "{:<7} {:<22} {:>8} {:>6} {:>6} {:>11}  {addr}…",
                n.moniker, n.grpc, s.height, s.round, s.peers, interval
            );
        }
    }
    if snap.powers.is_empty() {
        let _ = writeln!(out, "\nvalidator set: (no node reachable)");
    } else {
        let total: u64 = snap.powers.iter().map(|(_, p)| *p).sum();
        let _ = writeln!(
            out,
            "\nvalidator set at height {} (total power {total}):",
            snap.set_height
        );
        for (a, p) in &snap.powers {
            let name = m
                .nodes
                .iter()
                .find(|n| n.validator_address == *a)
                .map(|n| {
                    (
                        n.moniker.as_str(),
                        if n.byzantine { "  (double-signs)" } else { "" },
                    )
                })
                .unwrap_or(("-", ""));
            let _ = writeln!(out, "  {a}  {:<7} power {p}{}", name.0, name.1);
        }
    }
    if snap.slashes.is_empty() {
        let _ = writeln!(out, "slashes: none");
    } else {
        let _ = writeln!(out, "slashes:");
        for s in &snap.slashes {
            let _ = writeln!(
                out,
                "  {} double-signed at {}, slashed at {}: {} tokens ({} bps){}",
                hex::encode(&s.validator),
                s.infraction_height,
                s.slash_height,
                s.amount,
                s.fraction_bps,
                if s.tombstoned { ", tombstoned" } else { "" }
            );
        }
    }
    if let Some(note) = &m.byzantine.note {
        let _ = writeln!(out, "note: {note}");
    }
    out
}
