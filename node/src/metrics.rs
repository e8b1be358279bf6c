//! Prometheus metrics: gauges, counters and histograms in atomics
//! (`registry.rs`, `histogram.rs`, their label values in `labels.rs`),
//! rendered in the text exposition format (`render.rs`), the consensus
//! step clock the runner feeds (`steps.rs`), and a deliberately tiny
//! HTTP/1.1 server on a tokio `TcpListener` (one request per connection,
//! request size and time bounded, `GET /metrics` only).

mod histogram;
mod labels;
mod registry;
mod render;
mod steps;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

pub use histogram::{Buckets, Histogram, Rounds, Snapshot, StepSeconds};
pub use labels::{BudgetKind, CertificateSource, GrpcRefusal, PeerKind, PenaltyReason, Step};
pub use registry::Metrics;
pub use render::STEP_HELP;
pub use steps::{Phase, StepClock};

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
    use crate::transport::ChargeReason;

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
        m.set_certificates_verified(agora_validator::engine::CertificatesVerified {
            carried: 2,
            synced: 0,
        });
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
        assert!(
            r.contains("\nagora_certificates_verified_total{source=\"carried\"} 2\n"),
            "{r}"
        );
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
