//! The attacks, one function per case, each against node 0 of the shared
//! testnet, and the table `main` runs them from.

use super::*;

fn false_height(tn: &Testnet) {
    let tip = tn.tip();
    // The node asks within a tick and gives up on the request after 5 s.
    let (m, charged) = delta(tn, &[&charges("false_height")], || {
        under_attack(
            tn,
            "false_height",
            Duration::from_secs(8),
            |t, d| async move { byzantine::false_height::run(&t, tip, d).await },
        )
    });
    assert!(
        m.report.received > 0,
        "the node never spoke to the attacker"
    );
    assert!(
        charged >= 1,
        "the false claim was never charged: {:?}",
        m.report
    );
}

fn unsolicited_sync_responses(tn: &Testnet) {
    let tip = tn.tip();
    let (m, banned) = delta(tn, &[&bans("unsolicited")], || {
        under_attack(
            tn,
            "unsolicited_sync_responses",
            WINDOW,
            |t, d| async move { byzantine::sync_responses::unsolicited(&t, tip, d, 20).await },
        )
    });
    assert!(
        banned >= 1,
        "never banned: {:?}\n{}",
        m.report,
        tn.charge_lines()
    );
    assert!(m.report.closed_with(close_code::MISBEHAVED) >= 1);
}

fn tampered_sync_responses(tn: &Testnet) {
    let tip = tn.tip();
    let reasons = [
        charges("bad_block"),
        charges("consensus"),
        charges("malformed"),
    ];
    let names: Vec<&str> = reasons.iter().map(String::as_str).collect();
    let (m, charged) = delta(tn, &names, || {
        under_attack(
            tn,
            "tampered_sync_responses",
            Duration::from_secs(6),
            |t, d| async move { byzantine::sync_responses::tampered(&t, tip, d).await },
        )
    });
    assert!(
        m.report.accepted >= 1,
        "the node never asked: {:?}",
        m.report
    );
    assert!(charged >= 1, "tampered answers not charged: {:?}", m.report);
}

fn fake_certificate_flood(tn: &Testnet) {
    let tip = tn.tip();
    let (m, stopped) = delta(tn, &[&bans("unsolicited"), &dropped("checks")], || {
        under_attack(tn, "fake_certificate_flood", WINDOW, |t, d| async move {
            byzantine::fake_certificates::run(&t, tip, 5_000, d, 10).await
        })
    });
    assert!(
        stopped >= 1,
        "neither banned nor over budget: {:?}",
        m.report
    );
}

fn block_request_flood(tn: &Testnet) {
    let (m, held_back) = delta(tn, &[&dropped("serve"), &dropped("outbound")], || {
        under_attack(tn, "block_request_flood", WINDOW, |t, d| async move {
            byzantine::request_flood::run(&t, d, 1_000).await
        })
    });
    assert!(held_back >= 1, "nothing was held back: {:?}", m.report);
}

fn bad_frames(tn: &Testnet, name: &str, frame: byzantine::frames::BadFrame) {
    let (m, banned) = delta(tn, &[&bans("frame")], || {
        under_attack(tn, name, Duration::from_secs(3), |t, d| async move {
            byzantine::frames::bad_frames(&t, frame, d, 10).await
        })
    });
    assert!(m.report.sent >= 1);
    assert_eq!(
        m.report.closed_with(close_code::MISBEHAVED) as u64,
        m.report.sent,
        "every bad frame closes its connection: {:?}",
        m.report
    );
    assert!(
        banned >= m.report.sent,
        "{banned} bans for {} bad frames",
        m.report.sent
    );
}

fn garbage_frames(tn: &Testnet) {
    bad_frames(tn, "garbage_frames", byzantine::frames::BadFrame::Garbage);
}

fn oversized_frames(tn: &Testnet) {
    bad_frames(
        tn,
        "oversized_frames",
        byzantine::frames::BadFrame::Oversized,
    );
}

fn truncated_frames(tn: &Testnet) {
    bad_frames(
        tn,
        "truncated_frames",
        byzantine::frames::BadFrame::Truncated,
    );
}

fn amplifying_frames(tn: &Testnet) {
    let (m, banned) = delta(tn, &[&bans("frame")], || {
        under_attack(tn, "amplifying_frames", WINDOW, |t, d| async move {
            byzantine::frames::amplifying_frames(&t, 4 << 20, d, 10).await
        })
    });
    assert!(banned >= 1, "never banned: {:?}", m.report);
    assert!(m.report.closed_with(close_code::MISBEHAVED) >= 1);
}

fn stream_flood(tn: &Testnet) {
    use agora_node::transport::{MAX_INBOUND_BYTES, MAX_UNI_STREAMS, RECEIVE_WINDOW};
    let m = under_attack(tn, "stream_flood", WINDOW, |t, d| async move {
        byzantine::frames::stream_flood(&t, 2 * MAX_UNI_STREAMS, d).await
    });
    // Flow control: what the node let through is what it reads at once
    // plus its connection window, not 4 MiB per stream.
    let allowed = MAX_INBOUND_BYTES as u64 + u64::from(RECEIVE_WINDOW);
    assert!(m.report.sent >= 1);
    assert!(
        m.report.bytes_written <= allowed,
        "{} bytes let through, flow control allows {allowed}",
        m.report.bytes_written
    );
    assert!(
        m.report.sent <= u64::from(MAX_UNI_STREAMS),
        "{} streams open at once",
        m.report.sent
    );
}

fn connection_exhaustion(tn: &Testnet) {
    let max_peers = tn.config.p2p.max_peers as u64;
    let (m, refused_slots) = delta(tn, &[&dropped("slots"), &dropped("handshakes")], || {
        under_attack(
            tn,
            "connection_exhaustion",
            Duration::from_secs(6),
            |t, d| async move { byzantine::connections::run(&t, max_peers + 40, 20, d).await },
        )
    });
    assert!(
        m.report.refused >= 1,
        "every connection taken: {:?}",
        m.report
    );
    assert!(refused_slots >= 1, "no refusal counted");
    assert!(
        m.report.connected < max_peers,
        "{} strangers in a table of {max_peers}",
        m.report.connected
    );
    // The configured validators kept their reserved slots throughout.
    assert_eq!(
        tn.m("agora_peers{kind=\"validator\"}"),
        3,
        "a validator lost its slot"
    );
    eprintln!("  peak peers {}", m.peak_peers);
}

pub(crate) fn consensus_flood(tn: &Testnet) {
    let (m, banned) = delta(tn, &[&bans("consensus")], || {
        under_attack(tn, "consensus_flood", WINDOW, |t, d| async move {
            byzantine::consensus_flood::run(&t, d, 200).await
        })
    });
    assert!(
        banned >= 1,
        "never banned: {:?}\n{}",
        m.report,
        tn.charge_lines()
    );
    assert!(m.report.closed_with(close_code::MISBEHAVED) >= 1);
}

fn evidence_flood(tn: &Testnet) {
    let victim = tn.validator_address(1);
    let (m, banned) = delta(tn, &[&bans("bad_evidence")], || {
        under_attack(tn, "evidence_flood", WINDOW, |t, d| async move {
            byzantine::evidence_flood::run(&t, &victim, d, 100).await
        })
    });
    assert!(
        banned >= 1,
        "never banned: {:?}\n{}",
        m.report,
        tn.charge_lines()
    );
    assert!(m.report.closed_with(close_code::MISBEHAVED) >= 1);
}

fn grpc_certificate_streams(tn: &Testnet) {
    // The attacker is one address: it gets a quarter of the streams at most
    // (`place_pool`).
    let limit = (tn.config.grpc.max_certificate_streams as u64).div_ceil(4);
    let (m, refusals) = delta(
        tn,
        &[
            &refused("certificate_streams"),
            &refused("certificate_streams_per_ip"),
            &refused("connections_per_ip"),
            &refused("requests_per_ip"),
        ],
        || {
            under_attack(tn, "grpc_certificate_streams", WINDOW, |t, d| async move {
                byzantine::grpc_flood::certificate_streams(&t, 40, 64, d).await
            })
        },
    );
    assert!(m.report.sent >= 2_000, "{:?}", m.report);
    assert!(
        m.report.accepted <= limit,
        "{} streams admitted, the limit is {limit}",
        m.report.accepted
    );
    assert!(refusals >= 1 && m.report.rejected >= 1, "{:?}", m.report);
}

/// Block ranges the attacker never reads: each one the node takes on waits
/// in its buffers, so a range's place must be held until its answer is
/// sent, not only while it is read.
fn grpc_unread_answers(tn: &Testnet) {
    // One address: a quarter of the range places at most (`place_pool`).
    let limit = (tn.config.grpc.max_block_ranges as u64).div_ceil(4);
    let reasons = [refused("block_ranges"), refused("block_ranges_per_ip")];
    let (m, refusals) = delta(tn, &[&reasons[0], &reasons[1]], || {
        under_attack(tn, "grpc_unread_answers", WINDOW, |t, d| async move {
            byzantine::grpc_flood::unread_block_ranges(&t, 32, 64, d).await
        })
    });
    assert!(m.report.sent >= 2_000, "{:?}", m.report);
    assert!(
        m.report.accepted <= limit,
        "{} block ranges held unread, the limit is {limit}",
        m.report.accepted
    );
    assert!(refusals >= 1 && m.report.rejected >= 1, "{:?}", m.report);
}

fn grpc_submissions(tn: &Testnet) {
    let h = tn.tip();
    let victim = tn.validator_address(1);
    let m = under_attack(tn, "grpc_submissions", WINDOW, |t, d| {
        let victim = victim.clone();
        async move { byzantine::grpc_flood::submissions(&t, &victim, h, 64, d, 50).await }
    });
    assert!(m.report.sent >= 100, "{:?}", m.report);
    assert_eq!(m.report.accepted, 0, "a forged submission was taken");
    assert_eq!(m.report.rejected, m.report.sent, "{:?}", m.report);
}

pub(crate) type Case = (&'static str, fn(&Testnet));

pub(crate) const CASES: [Case; 16] = [
    ("false_height", false_height),
    ("unsolicited_sync_responses", unsolicited_sync_responses),
    ("tampered_sync_responses", tampered_sync_responses),
    ("fake_certificate_flood", fake_certificate_flood),
    ("block_request_flood", block_request_flood),
    ("garbage_frames", garbage_frames),
    ("oversized_frames", oversized_frames),
    ("truncated_frames", truncated_frames),
    ("amplifying_frames", amplifying_frames),
    ("stream_flood", stream_flood),
    ("connection_exhaustion", connection_exhaustion),
    ("consensus_flood", consensus_flood),
    ("evidence_flood", evidence_flood),
    ("grpc_certificate_streams", grpc_certificate_streams),
    ("grpc_submissions", grpc_submissions),
    ("grpc_unread_answers", grpc_unread_answers),
];
