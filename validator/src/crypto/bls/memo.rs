//! Per-thread memoisation of signature decoding and verification, for the
//! deterministic simulator only: there, every in-process validator checks
//! the same signatures, and a seed would otherwise spend most of its time
//! re-verifying what another simulated validator already verified.
//! Verification is a pure function of its inputs, so a remembered verdict is
//! exactly the verdict a fresh check would give; nothing else changes.
//! Compiled only with the `verify-memo` feature, and off until
//! [`super::enable_verify_memo`] is called on a thread.

use super::{BlsError, SIGNATURE_LEN, Signature};
use crate::crypto::hash::{Hash, sha3_256_parts};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// Entries kept per table before it is cleared (bounds the memory).
const MAX_ENTRIES: usize = 200_000;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static VERDICTS: RefCell<HashMap<Hash, Result<(), BlsError>>> = RefCell::new(HashMap::new());
    static DECODED: RefCell<HashMap<[u8; SIGNATURE_LEN], Result<Signature, BlsError>>> =
        RefCell::new(HashMap::new());
}

pub fn enable() {
    ON.with(|on| on.set(true));
}

pub fn is_on() -> bool {
    ON.with(Cell::get)
}

fn remember<K: std::hash::Hash + Eq, V: Clone>(
    table: &RefCell<HashMap<K, V>>,
    key: K,
    compute: impl FnOnce() -> V,
) -> V {
    if let Some(v) = table.borrow().get(&key) {
        return v.clone();
    }
    let v = compute();
    let mut t = table.borrow_mut();
    if t.len() >= MAX_ENTRIES {
        t.clear();
    }
    t.insert(key, v.clone());
    v
}

/// The verdict for the check identified by `parts`, computed at most
/// once per thread.
pub fn verdict(
    parts: &[&[u8]],
    check: impl FnOnce() -> Result<(), BlsError>,
) -> Result<(), BlsError> {
    let key = sha3_256_parts(parts);
    VERDICTS.with(|t| remember(t, key, check))
}

/// The decoding of a signature, computed at most once per thread.
pub fn decoded(
    bytes: &[u8],
    decode: impl FnOnce() -> Result<Signature, BlsError>,
) -> Result<Signature, BlsError> {
    match <[u8; SIGNATURE_LEN]>::try_from(bytes) {
        Ok(key) => DECODED.with(|t| remember(t, key, decode)),
        Err(_) => decode(),
    }
}
