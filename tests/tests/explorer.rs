//! The web explorer in a real headless Chromium against a real 4-validator
//! testnet (`agora-testnet up --byzantine 1`, processes on loopback):
//!
//! 1. the latest height shown advances by itself;
//! 2. the certificates on the front page are verified by the browser;
//! 3. a block page says "verified by your browser" and draws the signers;
//! 4. the double signer's slash is listed, and the block that slashed it
//!    shows the evidence;
//! 5. negative control: node0 restarted with
//!    `testing.tamper_explorer_certificates` serves forged certificates,
//!    and the same block page turns red with the browser's exact reason.
//!
//! A failed step saves a screenshot under `target/explorer-screenshots/`.
//! Without Chromium and ChromeDriver the test skips, unless
//! `AGORA_REQUIRE_BROWSER=1` (as in `.ci/run`).

use std::time::Duration;

use agora_tests::browser::{Browser, with_screenshot};
use agora_tests::harness::{Testnet, alive, signal};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn number(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .unwrap_or(0)
}

/// Waits until the shown latest height reaches `at_least`; returns it.
fn latest_height(b: &Browser, what: &str, at_least: u64) -> u64 {
    let v = b
        .wait_for(
            what,
            "return document.querySelector('#latest-height')?.textContent ?? ''",
            WAIT,
            |v| number(v) >= at_least,
        )
        .unwrap();
    number(&v)
}

/// Waits until `addr` accepts TCP connections.
fn wait_listening(addr: &str) {
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            t0.elapsed() < WAIT,
            "the explorer at {addr} does not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One raw HTTP/1.1 exchange with the explorer: status code and body.
fn http(addr: &str, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (code, body.unwrap_or_default())
}

/// What a hostile or careless client gets from the gateway: a status and
/// a message, never a hang or a huge answer.
fn gateway_refuses_bad_requests(addr: &str) {
    let get = |path: &str| http(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    let (code, body) = get("/api/status");
    assert_eq!(code, 200, "{body}");
    let (code, body) = get("/api/block/999999999");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (code, body) = get("/api/block/0");
    assert_eq!(code, 400, "{body}");
    let (code, body) = get("/api/validator/zz");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("40 hex digits"), "{body}");
    let (code, _) = get("/api/nothing");
    assert_eq!(code, 404);
    let (code, body) = get("/api/blocks?limit=100000");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["blocks"].as_array().unwrap().len() <= 50,
        "the list is capped"
    );
    let (code, _) = http(
        addr,
        "POST /api/status HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(code, 405);
    // A head past 8 KiB that never ends (sent whole, so that the server has
    // read everything when it answers and closes without a reset).
    let big = format!("GET /{}", "a".repeat(8_300));
    assert_eq!(http(addr, &big).0, 431);
}

/// Waits until the block page has checked its header, transactions and
/// evidence against the certified block, and requires that they match.
fn content_verified(b: &Browser) {
    let v = b
        .wait_for(
            "the block's lists are checked",
            "const e = document.querySelector('#content-status'); \
             return e ? [e.dataset.state, e.textContent.trim()] : null",
            WAIT,
            |v| v[0].as_str().is_some_and(|s| s != "pending"),
        )
        .unwrap();
    assert_eq!(v[0], "verified", "{}", v[1]);
}

/// Opens `#/block/{h}` afresh and waits until the certificate's check ends;
/// returns its state and text.
fn block_verdict(b: &Browser, url: &str, h: u64) -> (String, String) {
    b.goto("about:blank").unwrap();
    b.goto(&format!("{url}#/block/{h}")).unwrap();
    let v = b
        .wait_for(
            "the certificate check ends",
            "const e = document.querySelector('#cert-status'); \
             return e ? [e.dataset.state, e.textContent.trim()] : null",
            WAIT,
            |v| {
                v[0].as_str()
                    .is_some_and(|s| s == "verified" || s == "failed")
            },
        )
        .unwrap();
    (
        v[0].as_str().unwrap_or_default().to_string(),
        v[1].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn the_explorer_verifies_certificates_in_a_real_browser() {
    let Some(browser) = Browser::launch_or_skip("the_explorer_verifies_certificates") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut net = Testnet::up(&tmp.path().join("net"), 4, &["--byzantine", "1"]);
    let url = net.manifest["nodes"][0]["explorer"]
        .as_str()
        .expect("up serves the explorer on node0")
        .to_string();
    let byzantine: String = net.manifest["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["byzantine"].as_bool() == Some(true))
        .and_then(|n| n["validator_address"].as_str())
        .expect("one double signer")
        .to_string();

    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    wait_listening(&addr);
    gateway_refuses_bad_requests(&addr);

    // 1. Heights advance on the page without a reload.
    let first = with_screenshot(&browser, "1-latest-height", || {
        browser.goto(&url).unwrap();
        let h = latest_height(&browser, "a latest height is shown", 1);
        latest_height(&browser, "the shown height advances", h + 3);
        h
    });

    // 2. The front page's certificates are checked in the browser.
    with_screenshot(&browser, "2-front-page", || {
        let v = browser
            .wait_for(
                "front-page certificates verified",
                "const s = [...document.querySelectorAll('#blocks .cert-badge')] \
                   .map(e => e.dataset.state); return s",
                WAIT,
                |v| {
                    let s: Vec<&str> = v
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    s.len() >= 3 && s.iter().all(|x| *x == "verified")
                },
            )
            .unwrap();
        eprintln!(
            "front page: {} certificates verified",
            v.as_array().unwrap().len()
        );
    });

    // 3. A block page: verified, with the signer bitmap drawn.
    let h = first.max(5);
    let status_color = "return getComputedStyle(document.querySelector('#cert-status')).color";
    let verified_color = with_screenshot(&browser, "3-block-page", || {
        let (state, text) = block_verdict(&browser, &url, h);
        assert_eq!(
            (state.as_str(), text.as_str()),
            ("verified", "verified by your browser")
        );
        let signed = browser
            .eval("return document.querySelectorAll('#signers .signer.signed').length")
            .unwrap();
        assert!(number(&signed) >= 3, "signers drawn: {signed}");
        content_verified(&browser);
        browser.eval(status_color).unwrap()
    });

    // 4. The double signer's slash and the evidence that caused it.
    with_screenshot(&browser, "4-slashing", || {
        browser.goto(&format!("{url}#/slashing")).unwrap();
        let script = format!(
            "const r = document.querySelector('tr.slash-event[data-validator=\"{byzantine}\"]'); \
             if (!r) {{ location.hash = '#/slashing?' + Date.now(); return null; }} \
             const hs = [...r.querySelectorAll('a[href*=\"#/block/\"]')] \
               .map(a => Number(a.getAttribute('href').split('/').pop())); \
             return hs.length ? '#/block/' + Math.max(...hs) : ''"
        );
        // The row links the infraction and the slash heights; the slash
        // height (the larger) is the block that carried the evidence.
        let href = browser
            .wait_for("the double signer's slash is listed", &script, WAIT, |v| {
                v.as_str().is_some_and(|s| s.contains("#/block/"))
            })
            .unwrap();
        let slash_height: u64 = href
            .as_str()
            .and_then(|s| s.rsplit('/').next())
            .and_then(|s| s.parse().ok())
            .expect("a block link");
        browser
            .goto(&format!("{url}#/block/{slash_height}"))
            .unwrap();
        browser
            .wait_for(
                "the slashing block shows evidence",
                "return document.querySelectorAll('.evidence-item').length",
                WAIT,
                |v| number(v) >= 1,
            )
            .unwrap();
        // The evidence shown is the evidence the certified header commits to.
        content_verified(&browser);
    });

    // 5. Negative control: forged certificates turn the page red.
    with_screenshot(&browser, "5-tampered", || {
        let pid = net.pid(0);
        signal(pid, "KILL");
        let t0 = std::time::Instant::now();
        while alive(pid) {
            assert!(t0.elapsed() < WAIT, "node0 survived SIGKILL");
            std::thread::sleep(Duration::from_millis(50));
        }
        let cfg_path = net.home(0).join("config.toml");
        let cfg = std::fs::read_to_string(&cfg_path).unwrap();
        let switched = cfg.replace(
            "tamper_explorer_certificates = false",
            "tamper_explorer_certificates = true",
        );
        assert_ne!(cfg, switched, "the switch is in node0's config");
        std::fs::write(&cfg_path, switched).unwrap();
        net.restart(0);
        wait_listening(&addr);
        let (state, text) = block_verdict(&browser, &url, h);
        assert_eq!(state, "failed", "{text}");
        assert!(text.starts_with("verification failed: "), "{text}");
        let color = browser.eval(status_color).unwrap();
        assert_ne!(color, verified_color, "a failure is drawn unlike a success");
        eprintln!("tampered: {text} ({color}; verified was {verified_color})");
    });
    net.down();
}
