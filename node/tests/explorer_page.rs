//! The explorer page's own tests (`node/explorer/test/`, run by Node.js from
//! the committed bundles, so no `npm install` is needed): the conformance
//! vectors through the browser's BLS code, header decoding, the genesis
//! set, the chain walker with its negative controls, and that the committed
//! bundle matches its sources.
//!
//! Without `node` the test skips, unless `AGORA_REQUIRE_BROWSER=1` (as in
//! `.ci/run`) makes its absence a failure.

use std::path::Path;
use std::process::Command;

#[test]
fn the_explorer_page_tests_pass_under_node() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("explorer");
    let out = match Command::new("node")
        .args(["--test", "test/"])
        .current_dir(&dir)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            let required = std::env::var("AGORA_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "AGORA_REQUIRE_BROWSER=1 but `node` cannot run: {e}"
            );
            eprintln!("SKIPPED the explorer page tests: `node` cannot run ({e})");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "node --test failed in {}:\n{stdout}\n{stderr}",
        dir.display()
    );
    // node's TAP summary: at least one test ran and none failed.
    let count = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim_start_matches('#').trim().strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    assert!(count("pass").unwrap_or(0) > 0, "no test ran:\n{stdout}");
    assert_eq!(count("fail"), Some(0), "{stdout}");
    eprintln!("explorer page tests: {} passed", count("pass").unwrap_or(0));
}
