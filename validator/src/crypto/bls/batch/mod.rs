//! Many signatures over distinct messages verified at once (audit, block
//! sync): one randomised multi-pairing, and [`first_invalid`] to find the
//! culprit when it fails.
//!
//! The equation, for signatures σᵢ by keys pkᵢ over messages mᵢ and secret
//! non-zero 64-bit weights rᵢ:
//!
//! e(g1, Σ rᵢ·σᵢ) = Π e(rᵢ·pkᵢ, H(mᵢ))
//!
//! The left side is one multi-scalar multiplication over the signatures
//! (Pippenger, in blst) and one Miller loop, instead of blst's
//! `verify_multiple_aggregate_signatures`, which multiplies each signature
//! by its weight alone in G2 (a 64-bit G2 multiplication per item, 10–12% of
//! an audit's CPU). The right side is one hash-to-curve per item (for a
//! recurring key, all but its last step: one cofactor clearing per chunk,
//! [`uncleared`]) and, by bilinearity, one Miller loop per distinct key
//! (per 64 of its items) rather than per item ([`key_side`]): a chain's certificates are signed by the same few sets
//! of signers and its VRF proofs by the same few proposers. Every signature
//! is in G2 (checked when it was decoded: a [`Signature`] is always
//! checked), so their weighted sum is too and the equation means what it
//! does for the signatures one by one, up to the 2⁻⁶⁴ chance that weights
//! unknown to the signer cancel an invalid one.

use super::{BlsError, PublicKey, Signature, imp};
use blst::MultiPoint;

mod key_side;
mod uncleared;

/// One item of a batch verification: a key, a message and its signature.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The signer's key.
    pub key: &'a PublicKey,
    /// The signed message.
    pub msg: &'a [u8],
    /// The signature to check.
    pub sig: &'a Signature,
}

/// Verifies many signatures over distinct messages at once, weighting each by
/// a random scalar so that invalid signatures cannot cancel out.
///
/// The core has no randomness of its own: the caller supplies one non-zero
/// 64-bit scalar per item from a source the adversary cannot predict (the node
/// uses the OS generator; the simulator a seeded one). `Ok` means every
/// signature is valid; on `Err` the caller falls back to per-item checks to
/// find the bad ones.
pub fn batch_verify(items: &[BatchItem<'_>], randomness: &[u64]) -> Result<(), BlsError> {
    if items.is_empty() {
        return Err(BlsError::Empty);
    }
    if randomness.len() != items.len() || randomness.contains(&0) {
        return Err(BlsError::BadEncoding);
    }
    count!(
        multi_pairing_checks += 1,
        pairing_checks += 1,
        miller_loops += 1
    );
    let weights: Vec<[u8; 8]> = randomness.iter().map(|r| r.to_le_bytes()).collect();
    let keys_side = key_side::product(items, &weights)?;
    let sigs: Vec<imp::Signature> = items.iter().map(|i| i.sig.0).collect();
    let sum = sigs.mult(weights.as_flattened(), 64).to_signature();
    let mut gt_sig = blst::blst_fp12::default();
    blst::Pairing::aggregated(&mut gt_sig, <&blst::blst_p2_affine>::from(&sum));
    if keys_side.finalverify(Some(&gt_sig)) {
        Ok(())
    } else {
        Err(BlsError::VerifyFailed)
    }
}

/// The index of the first item whose signature does not verify, if any:
/// one randomised batch over all of them, then halves (the earlier half
/// first) when it fails, down to single checks, so the answer is the one
/// checking each item alone in order gives (up to the batch's 2^-64
/// soundness error). `randomness` as for [`batch_verify`]; with too few
/// scalars or a zero among them every item is checked alone.
pub fn first_invalid(items: &[BatchItem<'_>], randomness: &[u64]) -> Option<usize> {
    if randomness.len() < items.len() || randomness[..items.len()].contains(&0) {
        return items
            .iter()
            .position(|i| i.key.verify(i.msg, i.sig).is_err());
    }
    bisect(items, &randomness[..items.len()], 0)
}

fn bisect(items: &[BatchItem<'_>], randomness: &[u64], offset: usize) -> Option<usize> {
    match items {
        [] => None,
        [one] => one.key.verify(one.msg, one.sig).is_err().then_some(offset),
        _ if batch_verify(items, randomness).is_ok() => None,
        _ => {
            let mid = items.len() / 2;
            bisect(&items[..mid], &randomness[..mid], offset)
                .or_else(|| bisect(&items[mid..], &randomness[mid..], offset + mid))
        }
    }
}

#[cfg(test)]
mod tests;
