//! Prometheus metrics: gauges and counters in atomics, rendered in the text
//! exposition format by a deliberately tiny HTTP/1.1 server on a tokio
//! `TcpListener` (one request per connection, request size and time bounded,
//! `GET /metrics` only).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::transport::ChargeReason;

/// Consensus steps whose durations are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Waiting for / validating the proposal.
    Propose = 0,
    /// Collecting prevotes.
    Prevote = 1,
    /// Collecting precommits.
    Precommit = 2,
    /// Storing and applying the decided block.
    Commit = 3,
}

const STEP_NAMES: [&str; 4] = ["propose", "prevote", "precommit", "commit"];

/// Why a peer was charged (the `reason` label of `agora_peer_penalties_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PenaltyReason {
    /// A proposal or vote the consensus core rejected (counted, not banned).
    Consensus = 0,
    /// A block breaking a content rule (relayed proposal body or sync).
    BadBlock = 1,
    /// A block response nobody asked for.
    Unsolicited = 2,
    /// A claimed height it did not serve.
    FalseHeight = 3,
    /// Evidence that does not verify.
    BadEvidence = 4,
    /// A structurally broken message.
    Malformed = 5,
}

const PENALTY_NAMES: [&str; 6] = [
    "consensus",
    "bad_block",
    "unsolicited",
    "false_height",
    "bad_evidence",
    "malformed",
];
/// Why the gRPC server refused a connection or a request (the `reason`
/// label of `agora_grpc_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcRefusal {
    /// The server held its maximum number of connections.
    Connections = 0,
    /// That client address held its maximum number of connections.
    ConnectionsPerIp = 1,
    /// The maximum number of certificate streams was open.
    CertificateStreams = 2,
    /// The maximum number of block-range reads was running.
    BlockRanges = 3,
    /// The maximum number of evidence checks was running.
    EvidenceChecks = 4,
}

const GRPC_REFUSAL_NAMES: [&str; 5] = [
    "connections",
    "connections_per_ip",
    "certificate_streams",
    "block_ranges",
    "evidence_checks",
];

/// What a dropped piece of work exceeded (the `kind` label of
/// `agora_budget_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetKind {
    /// A message over its peer's signature-check bucket.
    Checks = 0,
    /// A block request over its peer's serving bucket.
    Serve = 1,
    /// A frame over its peer's outbound queue (frames or bytes).
    Outbound = 2,
    /// An incoming connection beyond the handshakes in progress.
    Handshakes = 3,
    /// An incoming connection from a stranger with no stranger slot left.
    Slots = 4,
    /// An incoming connection from a banned address.
    Banned = 5,
}

const BUDGET_NAMES: [&str; 6] = [
    "checks",
    "serve",
    "outbound",
    "handshakes",
    "slots",
    "banned_address",
];

const CHARGE_COUNT: usize = ChargeReason::ALL.len();

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// The node's metrics. Share it in an `Arc`; every update is one atomic op.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Latest committed height.
    pub height: AtomicU64,
    /// Current consensus round.
    pub round: AtomicU64,
    /// Connected peers.
    pub peers: AtomicU64,
    /// Connected peers that proved a validator identity.
    pub validator_peers: AtomicU64,
    /// Transactions in the mempool.
    pub mempool_txs: AtomicU64,
    /// Bytes in the mempool.
    pub mempool_bytes: AtomicU64,
    /// Commit certificates verified.
    pub certificates_verified: AtomicU64,
    /// Distinct pieces of evidence seen.
    pub evidence_seen: AtomicU64,
    /// Peer messages received.
    pub messages_received: AtomicU64,
    /// 1 when this validator may sign, 0 while its signing gate waits or
    /// after a double-sign alarm.
    pub signing_enabled: AtomicU64,
    /// Quiet heights the signing gate still waits for (0 when not waiting).
    pub signing_wait_remaining: AtomicU64,
    /// Messages signed by our key that this instance did not sign, seen
    /// while signing: another instance runs the key.
    pub double_sign_alarms: AtomicU64,
    /// Peers charged, by [`PenaltyReason`].
    penalties: [AtomicU64; PENALTY_NAMES.len()],
    /// Charges to peers' scores, by [`ChargeReason`].
    charges: [AtomicU64; CHARGE_COUNT],
    /// Bans, by the [`ChargeReason`] that reached the threshold.
    bans: [AtomicU64; CHARGE_COUNT],
    /// Work dropped for a budget, by [`BudgetKind`].
    budget_drops: [AtomicU64; BUDGET_NAMES.len()],
    steps: [Histogram; 4],
    /// gRPC refusals, by [`GrpcRefusal`].
    grpc_refused: [AtomicU64; GRPC_REFUSAL_NAMES.len()],
}

impl Metrics {
    /// New metrics, all zero.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Sets a gauge.
    pub fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Ordering::Relaxed);
    }

    /// Increments a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a peer charged for `reason`.
    pub fn penalty(&self, reason: PenaltyReason) {
        Self::inc(&self.penalties[reason as usize]);
    }

    /// How many peers were charged for `reason`.
    pub fn penalties(&self, reason: PenaltyReason) -> u64 {
        self.penalties[reason as usize].load(Ordering::Relaxed)
    }

    /// Counts a gRPC connection or request refused for `reason`.
    pub fn grpc_refused(&self, reason: GrpcRefusal) {
        Self::inc(&self.grpc_refused[reason as usize]);
    }

    /// How many gRPC connections or requests were refused for `reason`.
    pub fn grpc_refusals(&self, reason: GrpcRefusal) -> u64 {
        self.grpc_refused[reason as usize].load(Ordering::Relaxed)
    }

    /// Counts a charge to a peer's score.
    pub fn charge(&self, reason: ChargeReason) {
        Self::inc(&self.charges[reason as usize]);
    }

    /// Charges so far for `reason`.
    pub fn charges(&self, reason: ChargeReason) -> u64 {
        self.charges[reason as usize].load(Ordering::Relaxed)
    }

    /// Counts a ban.
    pub fn ban(&self, reason: ChargeReason) {
        Self::inc(&self.bans[reason as usize]);
    }

    /// Bans so far for `reason`.
    pub fn bans(&self, reason: ChargeReason) -> u64 {
        self.bans[reason as usize].load(Ordering::Relaxed)
    }

    /// Counts work dropped for a budget.
    pub fn budget_drop(&self, kind: BudgetKind) {
        Self::inc(&self.budget_drops[kind as usize]);
    }

    /// Work dropped so far for `kind`.
    pub fn budget_drops(&self, kind: BudgetKind) -> u64 {
        self.budget_drops[kind as usize].load(Ordering::Relaxed)
    }

    /// Records how long a consensus step took.
    pub fn observe_step(&self, step: Step, d: Duration) {
        let h = &self.steps[step as usize];
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let g = |out: &mut String, name: &str, kind: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        };
        g(
            &mut out,
            "agora_height",
            "gauge",
            "Latest committed height.",
            &self.height,
        );
        g(
            &mut out,
            "agora_round",
            "gauge",
            "Current consensus round.",
            &self.round,
        );
        g(
            &mut out,
            "agora_peers",
            "gauge",
            "Connected peers.",
            &self.peers,
        );
        g(
            &mut out,
            "agora_validator_peers",
            "gauge",
            "Connected peers with a proven validator identity.",
            &self.validator_peers,
        );
        g(
            &mut out,
            "agora_mempool_txs",
            "gauge",
            "Transactions in the mempool.",
            &self.mempool_txs,
        );
        g(
            &mut out,
            "agora_mempool_bytes",
            "gauge",
            "Bytes in the mempool.",
            &self.mempool_bytes,
        );
        g(
            &mut out,
            "agora_certificates_verified_total",
            "counter",
            "Commit certificates verified.",
            &self.certificates_verified,
        );
        g(
            &mut out,
            "agora_evidence_seen_total",
            "counter",
            "Distinct evidence seen.",
            &self.evidence_seen,
        );
        g(
            &mut out,
            "agora_messages_received_total",
            "counter",
            "Peer messages received.",
            &self.messages_received,
        );
        g(
            &mut out,
            "agora_signing_enabled",
            "gauge",
            "1 if this validator signs votes and proposals, 0 if its signing gate holds it back.",
            &self.signing_enabled,
        );
        g(
            &mut out,
            "agora_signing_wait_remaining_heights",
            "gauge",
            "Heights without a foreign signature of our key still needed before signing.",
            &self.signing_wait_remaining,
        );
        g(
            &mut out,
            "agora_double_sign_alarms_total",
            "counter",
            "Messages signed by this validator's key that this instance did not sign.",
            &self.double_sign_alarms,
        );
        let name = "agora_peer_penalties_total";
        let _ = writeln!(
            out,
            "# HELP {name} Peers charged for misbehaviour, by reason.\n# TYPE {name} counter"
        );
        for (r, c) in PENALTY_NAMES.iter().zip(&self.penalties) {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{r}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let name = "agora_grpc_refused_total";
        let _ = writeln!(
            out,
            "# HELP {name} gRPC connections and requests refused by a limit, by reason.\n# TYPE {name} counter"
        );
        for (r, c) in GRPC_REFUSAL_NAMES.iter().zip(&self.grpc_refused) {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{r}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let labelled = |out: &mut String,
                        name: &str,
                        help: &str,
                        label: &str,
                        rows: &mut dyn Iterator<Item = (&str, &AtomicU64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (l, c) in rows {
                let _ = writeln!(
                    out,
                    "{name}{{{label}=\"{l}\"}} {}",
                    c.load(Ordering::Relaxed)
                );
            }
        };
        labelled(
            &mut out,
            "agora_peer_charges_total",
            "Charges to peers' misbehaviour scores, by reason.",
            "reason",
            &mut ChargeReason::ALL
                .iter()
                .map(|r| r.label())
                .zip(&self.charges),
        );
        labelled(
            &mut out,
            "agora_peer_bans_total",
            "Peers banned, by the reason that reached the threshold.",
            "reason",
            &mut ChargeReason::ALL.iter().map(|r| r.label()).zip(&self.bans),
        );
        labelled(
            &mut out,
            "agora_budget_dropped_total",
            "Work dropped unverified for a per-peer or node budget, by kind.",
            "kind",
            &mut BUDGET_NAMES.iter().copied().zip(&self.budget_drops),
        );
        let name = "agora_step_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Duration of consensus steps.\n# TYPE {name} histogram"
        );
        for (s, h) in STEP_NAMES.iter().zip(&self.steps) {
            for (b, c) in BUCKETS.iter().zip(&h.buckets) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{step=\"{s}\",le=\"{b}\"}} {}",
                    c.load(Ordering::Relaxed)
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{step=\"{s}\",le=\"+Inf\"}} {count}");
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{name}_sum{{step=\"{s}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{step=\"{s}\"}} {count}");
        }
        out
    }
}

/// Largest request accepted (request line and headers).
const MAX_REQUEST: usize = 8 * 1024;
/// A client must send its request and read the answer within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Concurrent scrapes at most; further connections wait.
const MAX_CONNECTIONS: usize = 16;

/// Serves `/metrics` on `listener` until `shutdown` becomes true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, handle(stream, &m)).await;
            drop(permit);
        });
    }
}

async fn handle(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "too large\n",
            )
            .await;
        }
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    match (method, path) {
        ("GET", "/metrics") => {
            let body = metrics.render();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            stream.shutdown().await
        }
        ("GET", _) => respond(&mut stream, "404 Not Found", "try /metrics\n").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "GET only\n").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(msg.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        out
    }

    #[tokio::test]
    async fn scrape_over_tcp() {
        let m = Metrics::new();
        Metrics::set(&m.height, 42);
        Metrics::inc(&m.certificates_verified);
        Metrics::inc(&m.certificates_verified);
        m.penalty(PenaltyReason::BadBlock);
        m.charge(ChargeReason::Consensus);
        m.charge(ChargeReason::Consensus);
        m.ban(ChargeReason::Consensus);
        m.budget_drop(BudgetKind::Checks);
        m.observe_step(Step::Prevote, Duration::from_millis(3));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = watch::channel(false);
        let server = tokio::spawn(serve(l, m.clone(), rx));

        let r = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        assert!(r.contains("\nagora_height 42\n"), "{r}");
        assert!(r.contains("\nagora_certificates_verified_total 2\n"), "{r}");
        assert!(
            r.contains("\nagora_peer_penalties_total{reason=\"bad_block\"} 1\n"),
            "{r}"
        );
        assert!(
            r.contains("\nagora_peer_penalties_total{reason=\"consensus\"} 0\n"),
            "{r}"
        );
        for line in [
            "agora_peer_charges_total{reason=\"consensus\"} 2",
            "agora_peer_charges_total{reason=\"frame\"} 0",
            "agora_peer_bans_total{reason=\"consensus\"} 1",
            "agora_budget_dropped_total{kind=\"checks\"} 1",
            "agora_budget_dropped_total{kind=\"serve\"} 0",
        ] {
            assert!(r.contains(&format!("\n{line}\n")), "{line} in {r}");
        }
        assert!(
            r.contains("agora_step_duration_seconds_bucket{step=\"prevote\",le=\"0.005\"} 1"),
            "{r}"
        );
        assert!(
            r.contains("agora_step_duration_seconds_bucket{step=\"prevote\",le=\"0.0025\"} 0"),
            "{r}"
        );
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        let len: usize = r
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), len);

        // Later updates show up in the next scrape.
        Metrics::set(&m.height, 43);
        assert!(
            get(addr, b"GET /metrics HTTP/1.1\r\n\r\n")
                .await
                .contains("\nagora_height 43\n")
        );
        assert!(
            get(addr, b"GET / HTTP/1.1\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 404")
        );
        assert!(
            get(addr, b"POST /metrics HTTP/1.1\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 405")
        );
        // Exactly what the server reads before refusing, so no unread bytes turn its close into a reset.
        let huge = vec![b'a'; MAX_REQUEST + 1024];
        assert!(get(addr, &huge).await.starts_with("HTTP/1.1 431"));

        tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap();
    }
}
