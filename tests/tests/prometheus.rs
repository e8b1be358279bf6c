//! A real Prometheus (Debian's `prometheus` package) scrapes a real
//! 4-validator testnet (`agora-testnet up`, real processes) every second,
//! and PromQL over its HTTP API (`/api/v1/query`) sees, within deadlines:
//! the height advancing on every node, samples in all four consensus step
//! histograms, the rounds-per-height histogram, and step quantiles the
//! Grafana dashboard's `histogram_quantile` panels can draw.
//!
//! Negative control: one validator is frozen (SIGSTOP); the height query
//! must then stop listing it while still listing the three others (which
//! keep committing with 3/4 of the power), so the query can fail.
//!
//! Without a `prometheus` binary the test prints a skip line and passes,
//! unless `AGORA_REQUIRE_PROMETHEUS=1` (set by `.ci/run`, which installs
//! the package), where it fails. Prometheus and the nodes are stopped on
//! every exit path (their guards' `Drop`).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_tests::harness::{Testnet, signal};

const VALIDATORS: usize = 4;
const STEPS: [&str; 4] = ["propose", "prevote", "precommit", "commit"];
/// Nodes advancing: the height grew within the last 5 s (five scrapes).
const ADVANCING: &str = "delta(agora_height[5s]) > 0";

/// The `prometheus` binary on PATH, if any.
fn prometheus_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
}

/// A running Prometheus, killed (and reaped) when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts `bin` with `config`, its own tsdb under `dir`, on a free
    /// loopback port, and waits until it reports ready.
    fn start(bin: &Path, config: &Path, dir: &Path) -> Prometheus {
        let log = dir.join("prometheus.log");
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let out = std::fs::File::create(&log).expect("prometheus log");
            let child = Command::new(bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("tsdb").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log"))
                .stderr(out)
                .spawn()
                .expect("starting prometheus");
            let mut p = Prometheus {
                child,
                addr,
                log: log.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if p.child.try_wait().expect("wait").is_some() {
                    break; // the port was taken meanwhile: try another
                }
                if matches!(get(addr, "/-/ready"), Ok((200, _))) {
                    return p;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
            eprintln!("prometheus did not start:\n{}", p.log_tail());
        }
        panic!("prometheus did not become ready:\n{}", tail(&log));
    }

    fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// The `result` of an instant PromQL query.
    fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>, String> {
        let (status, body) = get(
            self.addr,
            &format!("/api/v1/query?query={}", encode(promql)),
        )?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("HTTP {status}: {body}"));
        }
        v["data"]["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no result array: {body}"))
    }

    /// The values of `label` over the series `promql` returns.
    fn label_values(&self, promql: &str, label: &str) -> BTreeSet<String> {
        self.query(promql)
            .unwrap_or_else(|e| panic!("{promql}: {e}"))
            .iter()
            .filter_map(|s| s["metric"][label].as_str().map(str::to_string))
            .collect()
    }

    /// Polls until `promql`'s series carry exactly `want` as `label`
    /// values, or panics after `within` with what it last saw.
    fn wait_for(&self, promql: &str, label: &str, want: &BTreeSet<String>, within: Duration) {
        let t0 = Instant::now();
        loop {
            let got = self.label_values(promql, label);
            if &got == want {
                eprintln!("{promql}: {got:?} after {:.1?}", t0.elapsed());
                return;
            }
            assert!(
                t0.elapsed() < within,
                "{promql}: {label} values {got:?} after {within:?}, wanted {want:?}\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn tail(log: &Path) -> String {
    let t = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A plain HTTP/1.0 GET (so the answer is never chunked and ends with
/// the connection): status code and body.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let (head, body) = out.split_once("\r\n\r\n").ok_or("no header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    Ok((status, body.to_string()))
}

/// Percent-encodes a query-string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn set(items: impl IntoIterator<Item = impl Into<String>>) -> BTreeSet<String> {
    items.into_iter().map(Into::into).collect()
}

#[test]
fn prometheus_sees_heights_advance_and_every_step_histogram_move() {
    let Some(bin) = prometheus_bin() else {
        let required = std::env::var("AGORA_REQUIRE_PROMETHEUS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "AGORA_REQUIRE_PROMETHEUS=1 but no `prometheus` on PATH (apt-get install prometheus)"
        );
        eprintln!(
            "SKIPPED: no `prometheus` binary on PATH (apt-get install prometheus to run this test)"
        );
        return;
    };
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = Testnet::up(&tmp.path().join("net"), VALIDATORS, &[]);
    let targets: Vec<String> = (0..VALIDATORS).map(|i| net.metrics(i)).collect();
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: agora\n    static_configs:\n      - targets: {}\n",
            serde_json::to_string(&targets).expect("json")
        ),
    )
    .expect("writing prometheus.yml");
    let prom = Prometheus::start(&bin, &config, tmp.path());
    eprintln!("testnet and prometheus up after {:.1?}", t0.elapsed());
    let all = set(targets.clone());
    let within = Duration::from_secs(20);

    // Every node's height advances.
    prom.wait_for(ADVANCING, "instance", &all, within);
    // Every step histogram has samples, on every node.
    let per_step = "sum by (step) (agora_step_duration_seconds_count) > 0";
    prom.wait_for(per_step, "step", &set(STEPS), within);
    for step in STEPS {
        let q = format!("agora_step_duration_seconds_count{{step=\"{step}\"}} > 0");
        prom.wait_for(&q, "instance", &all, within);
    }
    // The dashboard's quantile panels have something to draw for each step.
    let p99 = "histogram_quantile(0.99, sum by (step, le) (rate(agora_step_duration_seconds_bucket[10s]))) >= 0";
    prom.wait_for(p99, "step", &set(STEPS), within);
    // Rounds per height: every node counts its committed heights.
    prom.wait_for("agora_height_rounds_count > 0", "instance", &all, within);

    // Negative control: a frozen node stops advancing, and the query says
    // so while the other three still pass it.
    signal(net.pid(VALIDATORS - 1), "STOP");
    let others = set(targets[..VALIDATORS - 1].iter().cloned());
    prom.wait_for(ADVANCING, "instance", &others, within);
    signal(net.pid(VALIDATORS - 1), "CONT");
    eprintln!("done after {:.1?}", t0.elapsed());
    drop(prom);
    drop(net);
}
