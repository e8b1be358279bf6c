//! Block and header helpers: the block hash and body commitments.

use crate::crypto::sha3_batch::sha3_256_batch;
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

/// The hash of each transaction of a block, in order ([`tx_hash`] of
/// each, computed in batches: `sha3_batch`).
pub fn tx_hashes(txs: &[pb::Transaction]) -> Vec<Hash> {
    let encoded: Vec<Vec<u8>> = txs.iter().map(Message::encode_to_vec).collect();
    let messages: Vec<[&[u8]; 1]> = encoded.iter().map(|e| [&e[..]]).collect();
    sha3_256_batch(&messages)
}

/// [`list_hash`] of items whose hashes are already known.
pub fn hash_list(hashes: &[Hash]) -> Hash {
    sha3_256(hashes.as_flattened())
}

/// Hash of a transaction (its full signed encoding): its id in the mempool and in queries.
pub fn tx_hash(tx: &pb::Transaction) -> Hash {
    sha3_256(&tx.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block's hashes in one batch are each transaction's own hash, in
    /// order, for bodies of several sizes and transactions of several
    /// lengths (some over one Keccak block).
    #[test]
    fn a_blocks_hashes_are_its_transactions_hashes_in_order() {
        for n in [0usize, 1, 2, 3, 8, 9, 17] {
            let txs: Vec<pb::Transaction> = (0..n)
                .map(|i| pb::Transaction {
                    body: None,
                    public_key: vec![i as u8; 32],
                    signature: vec![7; 64 + i * 29],
                })
                .collect();
            let want: Vec<Hash> = txs.iter().map(tx_hash).collect();
            assert_eq!(tx_hashes(&txs), want, "{n} transactions");
        }
    }
}
