//! Whole-system tests for Agora; the test targets live in `tests/tests/`.
//!
//! [`sim`] is the deterministic simulator of the consensus core used by the
//! `simulation` test target.

pub mod sim;
