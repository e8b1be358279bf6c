//! Counts of the BLS operations a process performed (feature
//! `crypto-counters`), for the table of the consensus path's crypto per
//! validator-height.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! ops {
    ($($op:ident: $doc:literal),* $(,)?) => {
        /// One kind of counted operation.
        #[derive(Debug, Clone, Copy)]
        #[allow(non_camel_case_types)]
        pub enum Op { $(#[doc = $doc] $op),* }

        /// A snapshot of every counter.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[allow(non_snake_case)]
        pub struct Counts { $(#[doc = $doc] pub $op: u64),* }

        const N_OPS: usize = [$(Op::$op),*].len();
        static COUNTERS: [AtomicU64; N_OPS] = [const { AtomicU64::new(0) }; N_OPS];

        /// The current totals.
        pub fn snapshot() -> Counts {
            Counts { $($op: COUNTERS[Op::$op as usize].load(Ordering::Relaxed)),* }
        }

        impl Counts {
            /// Field names and getters, in table order.
            pub const FIELDS: &'static [(&'static str, fn(&Counts) -> u64)] =
                &[$((stringify!($op), |c: &Counts| c.$op)),*];

            /// Field-wise difference (`self` taken after `earlier`).
            pub fn minus(&self, earlier: &Counts) -> Counts {
                Counts { $($op: self.$op - earlier.$op),* }
            }

            /// Field-wise sum.
            pub fn plus(&self, other: &Counts) -> Counts {
                Counts { $($op: self.$op + other.$op),* }
            }
        }
    };
}

ops! {
    signings: "Signatures made (proposal, votes, VRF proofs, PoPs).",
    hash_to_curve: "Messages hashed to G2 (one per sign and per message verified).",
    pairing_checks: "Pairing equations checked (final exponentiations).",
    miller_loops: "Miller loops (pairs in all pairing equations).",
    single_verifies: "Single-signature verifications.",
    fast_aggregate_verifies: "FastAggregateVerify calls.",
    multi_pairing_checks: "Randomised multi-pair checks (proposal + VRF, batches).",
    one_message_weighted_checks: "Signatures of one message checked with random weights (vote quorums).",
    weighted_points: "Points multiplied by a weight in those checks' sums (keys and signatures).",
    sig_decompressions: "Signatures decompressed from 96 bytes.",
    sig_subgroup_checks: "G2 subgroup checks (single signatures or aggregates).",
    pk_decodes: "Public keys decoded (decompression + G1 subgroup check).",
    sig_aggregations: "Signature aggregations (calls).",
    sig_points_added: "Signatures summed in aggregations.",
    pk_points_added: "Public keys summed (FastAggregateVerify, key aggregation).",
}

/// Adds `n` to one counter.
pub fn add(op: Op, n: u64) {
    COUNTERS[op as usize].fetch_add(n, Ordering::Relaxed);
}
