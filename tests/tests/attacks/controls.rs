//! The negative controls: each shows that a case's assertion fails when
//! the property it checks is broken on purpose.

use super::*;

/// Freezes validators 2 and 3 (SIGSTOP) during a window: two of four
/// cannot commit, and the rate assertion must say so.
pub(crate) fn controls_rate_catches_a_stall(tn: &mut Testnet) {
    let undisturbed = tn.rate_over(BASELINE);
    let frozen: Vec<String> = [2, 3]
        .iter()
        .map(|i| tn.nodes[*i].id().to_string())
        .collect();
    for p in &frozen {
        signal(p, "STOP");
    }
    let stalled = tn.rate_over(WINDOW);
    for p in &frozen {
        signal(p, "CONT");
    }
    let caught = std::panic::catch_unwind(|| assert_rate("control", undisturbed, stalled));
    eprintln!(
        "[controls] undisturbed {undisturbed:.1} h/s, two validators frozen {stalled:.1} h/s"
    );
    assert!(caught.is_err(), "the rate assertion did not catch a stall");
    let h = tn.tip() + 2;
    wait_heights(&tn.net.metrics, &[0, 1, 2, 3], h, 60, tn.logs());
}

fn signal(pid: &str, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([&format!("-{sig}"), pid])
        .status()
        .expect("kill");
    assert!(st.success(), "kill -{sig} {pid}");
}

/// With bans switched off on node 0 (`testing.disable_bans`), the forged
/// vote flood is charged but never stopped: the case's assertion fails.
pub(crate) fn controls_stopped_catches_no_bans() -> bool {
    let tn = Testnet::start(|i, cfg| {
        if i == 0 {
            net::set_testing(cfg, "disable_bans");
        }
    });
    let caught = std::panic::catch_unwind(AssertUnwindSafe(|| super::cases::consensus_flood(&tn)));
    let charged = tn.m(&charges("consensus"));
    eprintln!(
        "[controls] bans off: {charged} consensus charges, case failed: {}",
        caught.is_err()
    );
    finish(tn, &mut Vec::new());
    caught.is_err() && charged >= 4
}
