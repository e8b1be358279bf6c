//! The bench's result for people: the summary printed at the end and the
//! SVG plot written next to the JSON.

use super::measure::SecondBucket;
use super::plot;
use super::result::BenchResult;

/// The plot of `r`: per-height and per-second commit latency, heights and
/// transactions per second over the window.
pub fn render_svg(r: &BenchResult) -> String {
    let mid = |b: &SecondBucket| b.second as f64 + 0.5;
    let p50: Vec<(f64, f64)> = r
        .series
        .iter()
        .filter_map(|b| b.p50_latency_ms.map(|v| (mid(b), v)))
        .collect();
    let panels = vec![
        plot::Panel {
            title: "Commit latency per height (node0)".into(),
            y_label: "latency (ms)".into(),
            series: vec![
                plot::Series {
                    name: "each height".into(),
                    color: "#9ecae1",
                    points: r.latency_points.clone(),
                },
                plot::Series {
                    name: "p50 per second".into(),
                    color: "#08519c",
                    points: p50,
                },
            ],
        },
        plot::Panel {
            title: "Heights committed per second".into(),
            y_label: "heights/s".into(),
            series: vec![plot::Series {
                name: "heights/s".into(),
                color: "#31a354",
                points: r
                    .series
                    .iter()
                    .map(|b| (mid(b), b.heights as f64))
                    .collect(),
            }],
        },
        plot::Panel {
            title: "Transactions committed per second".into(),
            y_label: "tx/s".into(),
            series: vec![plot::Series {
                name: "tx/s".into(),
                color: "#de2d26",
                points: r.series.iter().map(|b| (mid(b), b.txs as f64)).collect(),
            }],
        },
    ];
    let t = &r.config.timeouts;
    plot::render(
        &format!(
            "agora-testnet bench: {} validators, {} tx/s offered, timeout_propose {} ms, timeout_commit {} ms",
            r.config.validators, r.config.tx_rate, t.propose_ms, t.commit_ms
        ),
        "seconds into the measurement",
        r.config.duration_s,
        &panels,
    )
}

/// The summary of `r` printed at the end of a bench: one line per figure.
pub fn summary(r: &BenchResult) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "bench: {} validators, {:.1} s, {} tx/s offered\n",
        r.config.validators, r.config.duration_s, r.config.tx_rate
    ));
    commit_rows(&mut s, r);
    load_rows(&mut s, r);
    cpu_rows(&mut s, r);
    catch_up_row(&mut s, r);
    s
}

/// One figure `v` named `k`, the names aligned.
fn row(s: &mut String, k: &str, v: String) {
    s.push_str(&format!("  {k:<28} {v}\n"))
}

/// Heights, their latency, query latency and late rounds.
fn commit_rows(s: &mut String, r: &BenchResult) {
    row(s, "heights committed", r.heights.to_string());
    row(s, "heights/s", format!("{:.1}", r.heights_per_s));
    match &r.latency_ms {
        Some(l) => row(
            s,
            "latency ms p50/p99/max/mean",
            format!("{:.1} / {:.1} / {:.1} / {:.1}", l.p50, l.p99, l.max, l.mean),
        ),
        None => row(s, "latency", "no commits".into()),
    }
    if let Some(q) = &r.query_latency {
        for (name, l) in [
            ("GetStatus ms p50/p99", &q.get_status_ms),
            (
                "GetCommitCertificate ms p50/p99",
                &q.get_commit_certificate_ms,
            ),
        ] {
            if let Some(l) = l {
                row(s, name, format!("{:.3} / {:.3}", l.p50, l.p99));
            }
        }
    }
    row(
        s,
        "heights decided in round > 0",
        r.heights_after_round_0.to_string(),
    );
}

/// Transactions: committed, offered and what became of them.
fn load_rows(s: &mut String, r: &BenchResult) {
    row(
        s,
        "txs committed (tx/s)",
        format!("{} ({:.1})", r.txs_committed, r.tx_per_s),
    );
    row(
        s,
        "offered/accepted/rejected",
        format!(
            "{} / {} / {} (failed {}, backlog {}, signer behind {}, retried busy {})",
            r.load.offered,
            r.load.accepted,
            r.load.rejected,
            r.load.failed,
            r.load.backlog,
            r.load.signer_behind,
            r.load.retried_busy
        ),
    );
    row(
        s,
        "accepted then committed",
        format!(
            "{} of {} (submit-to-accept p50/p99 ms: {} / {}; submit-to-commit: {} / {})",
            r.load.committed,
            r.load.accepted,
            ms(r.load.accept_latency_ms_p50),
            ms(r.load.accept_latency_ms_p99),
            ms(r.load.tx_latency_ms_p50),
            ms(r.load.tx_latency_ms_p99),
        ),
    );
    let u = &r.load.unseen;
    if u.count > 0 {
        row(
            s,
            "accepted, not seen committed",
            format!(
                "{} (asked {}: committed {}, pending {}, refused {}, unknown to every node {})",
                u.count, u.asked, u.committed, u.pending, u.refused, u.unknown
            ),
        );
    }
    for (why, n) in &r.load.rejection_reasons {
        row(s, "  refused", format!("{n} × {why}"));
    }
}

/// A latency in whole milliseconds, or "-" when nothing was measured.
fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

/// CPU use of the nodes, the bench and the machine.
fn cpu_rows(s: &mut String, r: &BenchResult) {
    row(
        s,
        "CPU % per node",
        r.cpu
            .per_node_percent
            .iter()
            .map(|p| format!("{p:.0}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    row(
        s,
        "CPU ms per validator-height",
        r.cpu
            .ms_per_validator_height
            .map_or("-".into(), |v| format!("{v:.2}")),
    );
    row(
        s,
        "bench process CPU %",
        format!("{:.0}", r.cpu.bench_process_percent),
    );
    if let Some(l) = r.cpu.loadavg {
        row(
            s,
            "machine load (1/5/15 min)",
            format!(
                "{:.1} {:.1} {:.1} on {} cores",
                l[0], l[1], l[2], r.cpu.cores
            ),
        );
    }
}

/// The catch-up measured, or why it was not.
fn catch_up_row(s: &mut String, r: &BenchResult) {
    match (&r.catch_up, &r.catch_up_note) {
        (Some(c), _) => row(
            s,
            "catch-up",
            format!(
                "{}: {} blocks in {:.2} s = {:.0} blocks/s (restart to level, {:.2} s of it startup)",
                c.node, c.blocks, c.seconds, c.blocks_per_s, c.startup_seconds
            ),
        ),
        (None, Some(n)) => row(s, "catch-up", n.clone()),
        (None, None) => {}
    }
}
