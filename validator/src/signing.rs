//! Signing bytes of every signed object (DESIGN §4): a fixed ASCII domain
//! prefix, then fixed-width big-endian fields; the chain id as one length byte
//! then its bytes. All precommits for the same (height, round, block) sign the
//! same bytes, which is what lets them aggregate.

use crate::crypto::Hash;
use crate::types::{ChainId, Height, Round, VoteType};

/// Prefix of vote signing bytes.
pub const VOTE_PREFIX: &[u8] = b"agora/vote/v1";
/// Prefix of proposal signing bytes.
pub const PROPOSAL_PREFIX: &[u8] = b"agora/proposal/v1";
/// Prefix of the VRF input.
pub const VRF_PREFIX: &[u8] = b"agora/vrf/v1";
/// Prefix of transaction signing bytes.
pub const TX_PREFIX: &[u8] = b"agora/tx/v1";

/// `"agora/vote/v1" ‖ chain_id ‖ type ‖ height ‖ round ‖ block_hash` (zero hash for nil).
pub fn vote_bytes(
    chain: &ChainId,
    vote_type: VoteType,
    height: Height,
    round: Round,
    block_hash: &Hash,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(VOTE_PREFIX.len() + 1 + chain.as_str().len() + 1 + 8 + 4 + 32);
    out.extend_from_slice(VOTE_PREFIX);
    chain.encode_into(&mut out);
    out.push(vote_type as u8);
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&round.to_be_bytes());
    out.extend_from_slice(block_hash);
    out
}

/// `"agora/proposal/v1" ‖ chain_id ‖ height ‖ round ‖ pol_round (i32, −1 none) ‖ block_hash`.
pub fn proposal_bytes(
    chain: &ChainId,
    height: Height,
    round: Round,
    pol_round: i32,
    block_hash: &Hash,
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(PROPOSAL_PREFIX.len() + 1 + chain.as_str().len() + 8 + 4 + 4 + 32);
    out.extend_from_slice(PROPOSAL_PREFIX);
    chain.encode_into(&mut out);
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&round.to_be_bytes());
    out.extend_from_slice(&pol_round.to_be_bytes());
    out.extend_from_slice(block_hash);
    out
}

/// `"agora/vrf/v1" ‖ chain_id ‖ height ‖ seed_{height−1}`.
pub fn vrf_input(chain: &ChainId, height: Height, prev_seed: &Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(VRF_PREFIX.len() + 1 + chain.as_str().len() + 8 + 32);
    out.extend_from_slice(VRF_PREFIX);
    chain.encode_into(&mut out);
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(prev_seed);
    out
}

/// `"agora/tx/v1" ‖ chain_id ‖ SHA3-256(encoded unsigned body)`.
pub fn tx_bytes(chain: &ChainId, body_hash: &Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(TX_PREFIX.len() + 1 + chain.as_str().len() + 32);
    out.extend_from_slice(TX_PREFIX);
    chain.encode_into(&mut out);
    out.extend_from_slice(body_hash);
    out
}

/// SHA3-256 of a transaction body's protobuf encoding (what the signature commits to).
pub fn tx_body_hash(body: &agora_proto::v1::TxBody) -> Hash {
    crate::crypto::sha3_256(&prost::Message::encode_to_vec(body))
}

/// Signs a transaction body as its sender with its Ed25519 account key:
/// the signature covers [`tx_bytes`] of the body's hash, and the sender's
/// 32-byte public key is attached (the sender's address is derived from it).
pub fn sign_transaction(
    chain: &ChainId,
    sender: &crate::crypto::AccountSecretKey,
    body: agora_proto::v1::TxBody,
) -> agora_proto::v1::Transaction {
    let sig = sender.sign(&tx_bytes(chain, &tx_body_hash(&body)));
    agora_proto::v1::Transaction {
        body: Some(body),
        public_key: sender.public_key().to_bytes().to_vec(),
        signature: sig.to_bytes().to_vec(),
    }
}
