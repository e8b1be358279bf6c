//! The VRF and the chain seed (DESIGN §5).
//!
//! The proof is the BLS signature of the VRF input; BLS signatures are unique
//! and deterministic, so the output SHA3-256(proof) is a verifiable random
//! function of the input. Known bias: a proposer that dislikes its output can
//! only withhold its block; the round is then lost and the next round's
//! proposer supplies the VRF, so it cannot choose an output, only veto one.

use crate::crypto::bls::{BlsError, PublicKey, SecretKey, Signature};
use crate::crypto::hash::{Hash, sha3_256, sha3_256_parts};
use crate::signing::vrf_input;
use crate::types::{ChainId, Height};

/// Domain prefix of seed chaining.
pub const SEED_PREFIX: &[u8] = b"agora/seed/v1";
/// Domain prefix of the genesis seed.
pub const GENESIS_SEED_PREFIX: &[u8] = b"agora/seed/genesis/v1";

/// The VRF proof of `height` over the previous seed.
pub fn prove(sk: &SecretKey, chain: &ChainId, height: Height, prev_seed: &Hash) -> Signature {
    sk.sign(&vrf_input(chain, height, prev_seed))
}

/// Verifies a VRF proof and returns its output.
pub fn verify(
    pk: &PublicKey,
    chain: &ChainId,
    height: Height,
    prev_seed: &Hash,
    proof: &Signature,
) -> Result<Hash, BlsError> {
    pk.verify(&vrf_input(chain, height, prev_seed), proof)?;
    Ok(output(proof))
}

/// The VRF output of a proof: SHA3-256 of the compressed signature.
pub fn output(proof: &Signature) -> Hash {
    sha3_256(&proof.to_bytes())
}

/// [`output`] from the proof's 96 compressed bytes, without decoding them
/// (for a proof in a certified header, which the node does not verify:
/// the same value `output` gives for every proof that decodes).
pub fn output_of_bytes(proof: &[u8; crate::crypto::bls::SIGNATURE_LEN]) -> Hash {
    sha3_256(proof)
}

/// `seed_h = SHA3-256("agora/seed/v1" ‖ seed_{h−1} ‖ vrf_output_h)`.
pub fn next_seed(prev_seed: &Hash, vrf_output: &Hash) -> Hash {
    sha3_256_parts(&[SEED_PREFIX, prev_seed, vrf_output])
}

/// `seed_0 = SHA3-256("agora/seed/genesis/v1" ‖ SHA3-256(genesis file))`.
pub fn genesis_seed(genesis_file_hash: &Hash) -> Hash {
    sha3_256_parts(&[GENESIS_SEED_PREFIX, genesis_file_hash])
}
