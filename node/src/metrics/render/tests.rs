//! The rendered text parsed back: names, labels, histogram shape, and the
//! Grafana dashboard's queries against what is rendered.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use agora_validator::engine::CertificatesVerified;

use super::*;
use crate::metrics::{BudgetKind, PeerKind, Step};

/// One sample line: name, labels in order, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses an exposition, checking its structure on the way: HELP then
/// TYPE once per family, before its samples, samples belonging to the
/// family declared last. Returns the families' types and the samples.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    let mut current: Option<(String, String)> = None;
    let mut help: Option<String> = None;
    let valid = |n: &str| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').expect("HELP has a text");
            assert!(valid(name), "{name}");
            assert!(text.ends_with('.') && !text.contains('\\'), "{line}");
            help = Some(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert_eq!(help.as_deref(), Some(name), "HELP right before TYPE");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{name} declared twice"
            );
            current = Some((name.to_string(), kind.to_string()));
        } else {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.strip_suffix('}').expect("closing brace")),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').expect("label=value");
                    let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                    (k.to_string(), v.expect("quoted value").to_string())
                })
                .collect();
            let (family, kind) = current.as_ref().expect("a sample before any TYPE");
            let own = match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(family.as_str())),
                _ => name == family,
            };
            assert!(own, "{name} under the family {family}");
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value: value.parse().expect("a number"),
            });
        }
    }
    (types, samples)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .unwrap_or_else(|| panic!("no {name}{labels:?}"))
        .value
}

/// The `(le, count)` rows of one histogram series, in order.
fn buckets(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    samples
        .iter()
        .filter(|s| s.name == format!("{name}_bucket"))
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|s| {
            let le = &s.labels.last().expect("le last").1;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le")
            };
            (le, s.value)
        })
        .collect()
}

#[test]
fn every_family_follows_the_naming_conventions() {
    let (types, samples) = parse(&Metrics::new().render());
    for (name, kind) in &types {
        assert!(name.starts_with("agora_"), "{name}");
        match kind.as_str() {
            "counter" => assert!(name.ends_with("_total"), "{name}"),
            "gauge" | "histogram" => assert!(!name.ends_with("_total"), "{name}"),
            k => panic!("{name}: unexpected type {k}"),
        }
    }
    for (name, kind) in [
        ("agora_height", "gauge"),
        ("agora_peers", "gauge"),
        ("agora_mempool_bytes", "gauge"),
        ("agora_certificates_verified_total", "counter"),
        ("agora_evidence_included_total", "counter"),
        ("agora_peer_bans_total", "counter"),
        ("agora_budget_dropped_total", "counter"),
        ("agora_connections_superseded_total", "counter"),
        ("agora_peer_identity_copies_total", "counter"),
        ("agora_step_duration_seconds", "histogram"),
        ("agora_height_rounds", "histogram"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
    }
    // Each step and each peer kind is a series of its own, zero included.
    for step in Step::ALL {
        let l = [("step", step.label())];
        assert_eq!(
            value(&samples, "agora_step_duration_seconds_count", &l),
            0.0
        );
    }
    for kind in ["validator", "full"] {
        assert_eq!(value(&samples, "agora_peers", &[("kind", kind)]), 0.0);
    }
}

#[test]
fn labelled_values_land_in_their_series() {
    let m = Metrics::new();
    m.set_peers(3, 2);
    m.set_certificates_verified(CertificatesVerified {
        carried: 5,
        synced: 7,
    });
    m.committed(1, 2);
    m.committed(1, 0);
    m.budget_drop(BudgetKind::Outbound);
    m.budget_drop(BudgetKind::TxVerifier);
    m.budget_drop(BudgetKind::TxVerifier);
    m.ban(ChargeReason::Consensus);
    Metrics::set(&m.mempool_bytes, 1234);
    let (_, s) = parse(&m.render());
    assert_eq!(value(&s, "agora_peers", &[("kind", "validator")]), 3.0);
    assert_eq!(value(&s, "agora_peers", &[("kind", "full")]), 2.0);
    assert_eq!(m.peers(PeerKind::Full) + m.peers(PeerKind::Validator), 5);
    let cert = "agora_certificates_verified_total";
    assert_eq!(value(&s, cert, &[("source", "carried")]), 5.0);
    assert_eq!(value(&s, cert, &[("source", "synced")]), 7.0);
    assert_eq!(value(&s, "agora_evidence_included_total", &[]), 2.0);
    assert_eq!(value(&s, "agora_mempool_bytes", &[]), 1234.0);
    let budget = "agora_budget_dropped_total";
    assert_eq!(value(&s, budget, &[("kind", "outbound")]), 1.0);
    assert_eq!(value(&s, budget, &[("kind", "checks")]), 0.0);
    assert_eq!(value(&s, budget, &[("kind", "tx_verifier")]), 2.0);
    let bans = "agora_peer_bans_total";
    assert_eq!(value(&s, bans, &[("reason", "consensus")]), 1.0);
}

#[test]
fn histogram_buckets_are_cumulative_and_end_at_the_count() {
    let m = Metrics::new();
    for ms in [0, 3, 3, 40, 700, 60_000] {
        m.observe_step(Step::Prevote, Duration::from_millis(ms));
    }
    m.observe_step(Step::Commit, Duration::from_millis(30));
    for rounds in [1, 1, 2, 4, 11] {
        m.committed(rounds, 0);
    }
    let (_, s) = parse(&m.render());
    let name = "agora_step_duration_seconds";
    let prevote = buckets(&s, name, &[("step", "prevote")]);
    let want = [
        (0.001, 1.0),
        (0.0025, 1.0),
        (0.005, 3.0),
        (0.01, 3.0),
        (0.025, 3.0),
        (0.05, 4.0),
        (0.1, 4.0),
        (0.25, 4.0),
        (0.5, 4.0),
        (1.0, 5.0),
        (2.5, 5.0),
        (5.0, 5.0),
        (10.0, 5.0),
        (f64::INFINITY, 6.0),
    ];
    assert_eq!(prevote, want);
    let l = [("step", "prevote")];
    assert_eq!(value(&s, &format!("{name}_count"), &l), 6.0);
    assert!((value(&s, &format!("{name}_sum"), &l) - 60.746).abs() < 1e-9);
    let commit = buckets(&s, name, &[("step", "commit")]);
    assert_eq!(commit[3], (0.01, 0.0));
    assert_eq!(commit[4], (0.025, 0.0));
    assert_eq!(commit[5], (0.05, 1.0));
    assert!(
        buckets(&s, name, &[("step", "propose")])
            .iter()
            .all(|(_, c)| *c == 0.0)
    );
    for step in Step::ALL {
        let rows = buckets(&s, name, &[("step", step.label())]);
        assert!(rows.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }
    let rounds = buckets(&s, "agora_height_rounds", &[]);
    assert_eq!(
        rounds,
        [
            (1.0, 2.0),
            (2.0, 3.0),
            (3.0, 3.0),
            (5.0, 4.0),
            (10.0, 4.0),
            (f64::INFINITY, 5.0)
        ]
    );
    assert_eq!(value(&s, "agora_height_rounds_sum", &[]), 19.0);
    assert_eq!(value(&s, "agora_height_rounds_count", &[]), 5.0);
}

/// Every `agora_*` name in `expr` that is not a series the node renders.
fn unknown_names(expr: &str, rendered: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("agora_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let starts_word = !rest[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        if starts_word && !rendered.contains(name) {
            out.push(name.to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// Every string under an `expr` key, anywhere in the JSON.
fn exprs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v.as_str()) {
                    ("expr", Some(e)) => out.push(e),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn the_grafana_dashboard_only_queries_metrics_the_node_renders() {
    let (_, samples) = parse(&Metrics::new().render());
    let rendered: BTreeSet<String> = samples.into_iter().map(|s| s.name).collect();
    // The check can fail: a renamed or invented metric is caught.
    assert_eq!(
        unknown_names(
            "rate(agora_step_seconds_count[1m]) + agora_height",
            &rendered
        ),
        ["agora_step_seconds_count"]
    );
    let text = include_str!("../../../grafana/agora-dashboard.json");
    let dash: serde_json::Value = serde_json::from_str(text).expect("dashboard JSON");
    assert!(dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let vars = dash["templating"]["list"].as_array().expect("variables");
    assert!(
        vars.iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "a Prometheus datasource variable"
    );
    let mut all = Vec::new();
    exprs(&dash, &mut all);
    let mut used = BTreeSet::new();
    for e in &all {
        assert_eq!(unknown_names(e, &rendered), Vec::<String>::new(), "in {e}");
        used.extend(unknown_names(e, &BTreeSet::new()));
    }
    // And it shows what operators need.
    for name in [
        "agora_height",
        "agora_step_duration_seconds_bucket",
        "agora_height_rounds_bucket",
        "agora_certificates_verified_total",
        "agora_evidence_included_total",
        "agora_peers",
        "agora_peer_bans_total",
        "agora_budget_dropped_total",
        "agora_mempool_bytes",
        "agora_validator_jailed",
        "agora_clock_behind_ms",
        "agora_block_lag_ms",
    ] {
        assert!(used.contains(name), "the dashboard shows no {name}");
    }
    // Every panel queries the datasource variable.
    for p in dash["panels"].as_array().expect("panels") {
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }
}
