//! Prometheus metrics: gauges, counters and histograms in atomics
//! (`registry.rs`, `histogram.rs`, their label values in `labels.rs`),
//! rendered in the text exposition format (`render/`), the consensus
//! step clock the runner feeds (`steps.rs`), served as `GET /metrics` by the
//! node's tiny HTTP server (`crate::http`).

mod histogram;
mod labels;
mod registry;
mod render;
mod steps;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::{Handler, Response};

pub use histogram::{Buckets, Histogram, Rounds, Snapshot, StepSeconds};
pub use labels::{BudgetKind, CertificateSource, GrpcRefusal, PeerKind, PenaltyReason, Step};
pub use registry::Metrics;
pub use render::STEP_HELP;
pub use steps::{Phase, StepClock};

/// Concurrent scrapes at most; further connections wait.
const MAX_CONNECTIONS: usize = 16;

/// Serves `/metrics` on `listener` until `shutdown` becomes true, with the
/// node's tiny HTTP server ([`crate::http`]: GET only, 8 KiB heads, 10 s per
/// exchange).
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: watch::Receiver<bool>) {
    let handler: Handler = Arc::new(move |target: String| {
        let m = metrics.clone();
        Box::pin(async move {
            match target.split_once('?').map_or(target.as_str(), |(p, _)| p) {
                "/metrics" => Response::ok("text/plain; version=0.0.4", m.render()),
                _ => Response::text("404 Not Found", "try /metrics\n"),
            }
        })
    });
    crate::http::serve(listener, handler, MAX_CONNECTIONS, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::ChargeReason;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

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
        let huge = vec![b'a'; crate::http::MAX_REQUEST_BYTES + 1024];
        assert!(get(addr, &huge).await.starts_with("HTTP/1.1 431"));

        tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap();
    }
}
