//! Block and header helpers: the block hash and body commitments.

use crate::crypto::{Hash, sha3_256};
use agora_proto::v1 as pb;
use prost::Message;

/// The block hash: SHA3-256 of the protobuf encoding of the header (DESIGN §3).
pub fn header_hash(header: &pb::Header) -> Hash {
    sha3_256(&header.encode_to_vec())
}

/// Commitment to a list of protobuf messages: SHA3-256 of the concatenated
/// SHA3-256 hashes of their encodings (the empty list hashes the empty string).
pub fn list_hash<M: Message>(items: &[M]) -> Hash {
    let mut buf = Vec::with_capacity(items.len() * 32);
    for m in items {
        buf.extend_from_slice(&sha3_256(&m.encode_to_vec()));
    }
    sha3_256(&buf)
}

/// The hash of each transaction of a block, in order.
pub fn tx_hashes(txs: &[pb::Transaction]) -> Vec<Hash> {
    txs.iter().map(tx_hash).collect()
}

/// [`list_hash`] of items whose hashes are already known.
pub fn hash_list(hashes: &[Hash]) -> Hash {
    sha3_256(hashes.as_flattened())
}

/// Hash of a transaction (its full signed encoding): its id in the mempool and in queries.
pub fn tx_hash(tx: &pb::Transaction) -> Hash {
    sha3_256(&tx.encode_to_vec())
}
