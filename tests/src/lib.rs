//! Whole-system tests for Agora; the test targets live in `tests/tests/`.
