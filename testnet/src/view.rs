//! The live view: per-node height, round, peers and commit interval (from
//! gRPC GetStatus), the validator set's power (GetValidatorSet), slashes
//! (ListSlashingEvents) and the evidence behind the most recent ones (from
//! the blocks that included it, see [`crate::evidence`]), polled from the
//! nodes listed in the manifest.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use tonic::transport::{Channel, Endpoint};

use crate::evidence::{EvidenceFinder, EvidenceRow, all_slashes};
use crate::manifest::Manifest;

/// Per-request deadline: a stopped node must not stall the view.
const RPC_TIMEOUT: Duration = Duration::from_millis(800);
/// Slashing events shown at most (the most recent ones).
const MAX_SLASHES_SHOWN: usize = 10;
/// Pieces of committed evidence shown at most (the most recent ones).
pub const MAX_EVIDENCE_SHOWN: usize = 3;

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
    /// The most recent slashing events, oldest first.
    pub slashes: Vec<pb::SlashingEvent>,
    /// The most recent committed evidence, newest first.
    pub evidence: Vec<EvidenceRow>,
    /// Staking records (commission, missed blocks, jail, rewards) by address hex.
    pub records: HashMap<String, pb::ValidatorRecord>,
    /// Where the tokens are (minted, unclaimed rewards, burnt).
    pub supply: Option<pb::GetSupplyResponse>,
}

/// gRPC clients to every node, connected lazily and reconnecting on their own.
pub struct Poller {
    clients: Vec<Option<QueryClient<Channel>>>,
    evidence: EvidenceFinder,
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
        Self {
            clients,
            evidence: EvidenceFinder::default(),
        }
    }

    /// Reads every node's status concurrently, then the validator set,
    /// slashes and recent evidence from the first node that answered.
    pub async fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot {
            nodes: self.statuses().await,
            ..Snapshot::default()
        };
        let first = snap
            .nodes
            .iter()
            .position(|n| n.error.is_none())
            .and_then(|i| self.clients[i].clone());
        if let Some(mut c) = first {
            self.read_chain(&mut c, &mut snap).await;
        }
        snap
    }

    /// Every node's status, read concurrently, in manifest order.
    pub async fn statuses(&self) -> Vec<NodeStatus> {
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
        nodes
    }

    /// Fills in the validator set, staking records, supply, slashes and
    /// recent evidence as node `c` reports them (what it cannot answer
    /// stays empty).
    async fn read_chain(&self, c: &mut QueryClient<Channel>, snap: &mut Snapshot) {
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
            .list_validators(pb::ListValidatorsRequest { page: None })
            .await
        {
            snap.records = r
                .into_inner()
                .validators
                .into_iter()
                .map(|v| (hex::encode(&v.address), v))
                .collect();
        }
        if let Ok(r) = c.get_supply(pb::GetSupplyRequest { prove: false }).await {
            snap.supply = Some(r.into_inner());
        }
        if let Ok(events) = all_slashes(c, &[]).await {
            snap.evidence = self.evidence.recent(c, &events, MAX_EVIDENCE_SHOWN).await;
            let skip = events.len().saturating_sub(MAX_SLASHES_SHOWN);
            snap.slashes = events.into_iter().skip(skip).collect();
        }
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
    render_nodes(m, snap, tracker, exited, &mut out);
    render_set(m, snap, &mut out);
    render_jailed(m, snap, &mut out);
    if let Some(s) = &snap.supply {
        let _ = writeln!(
            out,
            "rewards: minted {} since genesis, {} unclaimed by delegators; burnt by slashing {}",
            s.minted, s.unclaimed_rewards, s.burned
        );
    }
    render_slashes(&snap.slashes, &mut out);
    render_evidence(m, &snap.evidence, &mut out);
    if let Some(note) = &m.byzantine.note {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

/// The table of nodes: height, round, peers and commit interval, or why a
/// node cannot be read.
fn render_nodes(
    m: &Manifest,
    snap: &Snapshot,
    tracker: &IntervalTracker,
    exited: &[Option<String>],
    out: &mut String,
) {
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
}

/// The validator set: one line per validator with its power and economics.
fn render_set(m: &Manifest, snap: &Snapshot, out: &mut String) {
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
            let econ = snap.records.get(a).map(economics).unwrap_or_default();
            let _ = writeln!(out, "  {a}  {:<7} power {p}{econ}{}", name.0, name.1);
        }
    }
}

/// One line per jailed validator: why, and until when.
fn render_jailed(m: &Manifest, snap: &Snapshot, out: &mut String) {
    let mut jailed: Vec<_> = snap.records.values().filter(|v| v.jailed).collect();
    jailed.sort_by(|x, y| x.address.cmp(&y.address));
    for v in jailed {
        let a = hex::encode(&v.address);
        let why = agora_node::client::query::jail_reason_name(v.jail_reason);
        let until = if v.tombstoned {
            "for good".to_string()
        } else {
            format!("until {}", v.jailed_until)
        };
        let _ = writeln!(out, "  {a}  {:<7} jailed ({why}) {until}", moniker(m, &a));
    }
}

/// The "slashes" pane.
fn render_slashes(slashes: &[pb::SlashingEvent], out: &mut String) {
    if slashes.is_empty() {
        let _ = writeln!(out, "slashes: none");
    } else {
        let _ = writeln!(out, "slashes:");
        for s in slashes {
            let what = if s.reason == pb::SlashReason::Downtime as i32 {
                "was down until"
            } else {
                "double-signed at"
            };
            let _ = writeln!(
                out,
                "  {} {what} {}, slashed at {}: {} tokens ({} bps){}",
                hex::encode(&s.validator),
                s.infraction_height,
                s.slash_height,
                s.amount,
                s.fraction_bps,
                if s.tombstoned { ", tombstoned" } else { "" }
            );
        }
    }
}

/// Commission, missed precommits in the window and unclaimed delegator
/// rewards of one validator, for its line in the set.
fn economics(v: &pb::ValidatorRecord) -> String {
    format!(
        "  commission {}.{:02}%  missed {}/{}  unclaimed rewards {}",
        v.commission_rate_bps / 100,
        v.commission_rate_bps % 100,
        v.missed_blocks,
        v.window_counted,
        v.outstanding_rewards
    )
}

/// The moniker of a validator address, or `-`.
fn moniker<'a>(m: &'a Manifest, address: &str) -> &'a str {
    m.nodes
        .iter()
        .find(|n| n.validator_address == address)
        .map_or("-", |n| n.moniker.as_str())
}

/// The "recent evidence" pane.
fn render_evidence(m: &Manifest, evidence: &[EvidenceRow], out: &mut String) {
    if evidence.is_empty() {
        let _ = writeln!(out, "recent evidence: none");
        return;
    }
    let _ = writeln!(out, "recent evidence (newest first):");
    for e in evidence {
        let who = e
            .validators
            .iter()
            .map(|v| format!("{} ({})", v, moniker(m, v)))
            .collect::<Vec<_>>()
            .join(", ");
        let round = e.round.map(|r| r.to_string()).unwrap_or_else(|| "?".into());
        let _ = writeln!(
            out,
            "  {} at height {} round {round} by {who}; committed at height {}",
            e.kind, e.height, e.committed_at
        );
        if let Some((a, b)) = &e.conflicting {
            let short = |h: &str| -> String {
                if h.chars().all(|c| c == '0') {
                    "nil".into()
                } else {
                    format!("{}…", &h[..h.len().min(12)])
                }
            };
            let _ = writeln!(out, "    signed both {} and {}", short(a), short(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ByzantineNote, NodeEntry};
    use std::path::PathBuf;

    fn manifest() -> Manifest {
        let nodes = (0..2)
            .map(|i| NodeEntry {
                index: i,
                moniker: format!("node{i}"),
                home: PathBuf::from(format!("/t/node{i}")),
                grpc: format!("127.0.0.1:{}", 27001 + 10 * i),
                p2p: format!("127.0.0.1:{}", 27000 + 10 * i),
                metrics: format!("127.0.0.1:{}", 27002 + 10 * i),
                explorer: None,
                validator_address: format!("{i}").repeat(40),
                log: PathBuf::from("node.log"),
                pid: None,
                byzantine: i == 1,
            })
            .collect();
        Manifest {
            chain_id: "view-test".into(),
            dir: PathBuf::from("/t"),
            agora_bin: PathBuf::from("agora"),
            genesis: PathBuf::from("/t/genesis.json"),
            nodes,
            delegators: Vec::new(),
            byzantine: ByzantineNote::default(),
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            nodes: vec![
                NodeStatus {
                    height: 40,
                    round: 0,
                    peers: 1,
                    error: None,
                };
                2
            ],
            powers: vec![("0".repeat(40), 100)],
            set_height: 41,
            slashes: Vec::new(),
            evidence: Vec::new(),
            records: HashMap::new(),
            supply: None,
        }
    }

    #[test]
    fn set_lines_show_commission_missed_blocks_and_rewards() {
        let mut snap = snapshot();
        let a = "0".repeat(40);
        snap.records.insert(
            a.clone(),
            pb::ValidatorRecord {
                address: vec![0; 20],
                commission_rate_bps: 1_050,
                missed_blocks: 3,
                window_counted: 100,
                outstanding_rewards: "4567".into(),
                ..Default::default()
            },
        );
        snap.supply = Some(pb::GetSupplyResponse {
            minted: "99".into(),
            unclaimed_rewards: "4567".into(),
            burned: "5".into(),
            ..Default::default()
        });
        let text = render(
            &manifest(),
            &snap,
            &IntervalTracker::default(),
            &[None, None],
        );
        let line = text
            .lines()
            .find(|l| l.contains(&a))
            .expect("the validator's line");
        assert!(
            line.contains("commission 10.50%  missed 3/100  unclaimed rewards 4567"),
            "{line}"
        );
        assert!(
            text.contains("rewards: minted 99 since genesis, 4567 unclaimed"),
            "{text}"
        );
    }

    fn pane(text: &str) -> Vec<&str> {
        let start = text
            .lines()
            .position(|l| l.starts_with("recent evidence"))
            .expect("the pane is always shown");
        text.lines()
            .skip(start)
            .take_while(|l| l.starts_with("recent evidence") || l.starts_with("  "))
            .collect()
    }

    #[test]
    fn evidence_pane_says_none_without_evidence() {
        let text = render(
            &manifest(),
            &snapshot(),
            &IntervalTracker::default(),
            &[None, None],
        );
        assert_eq!(pane(&text), ["recent evidence: none"], "{text}");
    }

    #[test]
    fn evidence_pane_names_validator_kind_heights_and_round() {
        let m = manifest();
        let offender = "1".repeat(40);
        let mut snap = snapshot();
        snap.evidence = vec![
            EvidenceRow {
                validators: vec![offender.clone()],
                kind: "duplicate vote (prevote)".into(),
                height: 31,
                round: Some(2),
                committed_at: 33,
                hash: "ab".repeat(32),
                conflicting: Some(("0".repeat(64), "cd".repeat(32))),
            },
            EvidenceRow {
                validators: vec!["f".repeat(40)],
                kind: "conflicting proposals".into(),
                height: 12,
                round: None,
                committed_at: 14,
                hash: "ef".repeat(32),
                conflicting: None,
            },
        ];
        let text = render(&m, &snap, &IntervalTracker::default(), &[None, None]);
        let lines = pane(&text);
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines[0], "recent evidence (newest first):");
        assert_eq!(
            lines[1],
            format!(
                "  duplicate vote (prevote) at height 31 round 2 by {offender} (node1); committed at height 33"
            )
        );
        assert_eq!(lines[2], "    signed both nil and cdcdcdcdcdcd…");
        // An unknown address and an unread round are shown as such.
        assert_eq!(
            lines[3],
            format!(
                "  conflicting proposals at height 12 round ? by {} (-); committed at height 14",
                "f".repeat(40)
            )
        );
    }
}
