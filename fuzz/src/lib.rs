//! Coverage-guided fuzz targets for every decoder of outside bytes: wire
//! frames, the Hello, WAL records, ledger snapshots, the signing state,
//! commit certificates, transactions and blocks, and the checks a client
//! runs on what an untrusted node says: light blocks, state proofs and
//! state-sync snapshots (see `fuzz/README.md`).
//!
//! Each target is a plain function in [`targets`]; each binary
//! `fuzz_<name>` wraps one of them, as an AFL++ persistent-mode fuzzer when
//! built with the `afl` feature (`cargo afl build`), and otherwise as a
//! replayer of the files named on its command line. The seed corpus under
//! `fuzz/corpus/<name>/` is made by `gen_corpus` from the real encoders.

#![deny(missing_docs)]

pub mod corpus;
pub mod fixtures;
pub mod light_target;
pub mod parts;
pub mod state_targets;
pub mod targets;

pub use targets::{TARGETS, Target};

/// Replays each file (or each file of each directory) named on the command
/// line through `target`, printing how many ran. A crash is a panic, as
/// under the fuzzer.
pub fn replay_main(target: Target) {
    let mut n = 0u64;
    for arg in std::env::args_os().skip(1) {
        let path = std::path::PathBuf::from(arg);
        let files = if path.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            v.sort();
            v
        } else {
            vec![path]
        };
        for f in files {
            let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            target(&data);
            n += 1;
        }
    }
    println!("replayed {n} inputs");
}

/// The `main` of a target binary: AFL++'s persistent loop with the `afl`
/// feature, the replayer without it.
#[macro_export]
macro_rules! fuzz_main {
    ($target:path) => {
        #[cfg(feature = "afl")]
        fn main() {
            // Build the fixed world before the fork server starts, so every
            // run begins with it made.
            $crate::targets::warm_up();
            afl::fuzz!(|data: &[u8]| $target(data));
        }

        #[cfg(not(feature = "afl"))]
        fn main() {
            $crate::replay_main($target);
        }
    };
}
