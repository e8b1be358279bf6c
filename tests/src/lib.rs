//! Whole-system tests for Agora; the test targets live in `tests/tests/`.
//!
//! * [`sim`]: the deterministic simulator of the consensus core used by the
//!   `simulation` test target;
//! * [`harness`]: real `agora` / `agora-testnet` processes for the
//!   multi-process targets, on ports from [`ports`];
//! * [`udp_relay`]: a UDP relay that cuts and heals links between nodes;
//! * [`byzantine`]: a Byzantine peer and gRPC client that attack a real
//!   node over the real wire protocol, for the `attacks` test target.

pub mod browser;
pub mod byzantine;
pub mod harness;
pub mod ports;
pub mod silent;
pub mod sim;
pub mod udp_relay;

/// Tests of [`ports`] here, not in its file: `node/tests` include that file
/// by path, and its test would run again in every binary that does.
#[cfg(test)]
mod ports_tests {
    use crate::ports::{LOWEST, ephemeral_low, unused_base, unused_port};

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_given_twice() {
        let low = ephemeral_low();
        let mut seen = std::collections::HashSet::new();
        for i in 0..50 {
            let p = unused_port(i % 2 == 0);
            assert!((LOWEST..low).contains(&p), "{p} outside {LOWEST}..{low}");
            assert!(seen.insert(p), "{p} handed out twice");
        }
        let base = unused_base(40);
        assert!(base + 40 <= low);
        assert!(!(base..base + 40).any(|p| seen.contains(&p)));
    }
}
