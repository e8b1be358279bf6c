//! Block sync, serving side: answering a peer's `BlockRequest` from storage
//! within the frame budget.
//!
//! The fetching side is the engine's (`agora_validator::engine::sync`): it
//! tracks the heights peers announce, makes one request at a time, accepts
//! only answers to it, checks each block's body against its certified
//! header and has the core verify the certificate against the validator
//! set this node derived itself, so nothing a peer sends is trusted. The
//! runner only carries messages (`runner/sync.rs`).

use agora_proto::v1::{BlockRequest, BlockResponse, CertifiedBlock};
use agora_validator::engine::sync::serve::{self, BlockSource};

use crate::storage::{Storage, StorageError};
use crate::transport::wire::MAX_BLOCK_FRAME;

/// Bytes kept free in a response frame for the envelope.
const ENVELOPE_SLACK: usize = 1024;
/// Most encoded bytes of one block response (the simulator serves within
/// the same bound).
pub const RESPONSE_BUDGET: usize = MAX_BLOCK_FRAME - ENVELOPE_SLACK;

impl BlockSource for Storage {
    type Error = StorageError;

    fn latest_height(&self) -> Result<u64, StorageError> {
        Ok(Storage::latest_height(self)?.unwrap_or(0))
    }

    fn certified_block(&self, height: u64) -> Result<Option<CertifiedBlock>, StorageError> {
        // Two reads, not one transaction: a prune between them leaves a
        // block without its certificate, which is served as not held.
        Ok(match (self.block(height)?, self.certificate(height)?) {
            (Some(block), Some(cert)) => Some(CertifiedBlock {
                block: Some(block),
                certificate: Some(cert),
            }),
            _ => None,
        })
    }

    fn lowest_height(&self) -> Result<u64, StorageError> {
        Ok(self.lowest_block_height()?.unwrap_or(0))
    }
}

/// Answers a block request from storage by the engine's rule
/// (`engine::sync::serve`): consecutive blocks with their certificates
/// from `from_height`, as many as fit in one block frame, plus our latest
/// height and the lowest height we store (a node that prunes,
/// `storage.keep_blocks`, has none below its floor and serves none there).
pub fn serve_request(storage: &Storage, req: &BlockRequest) -> Result<BlockResponse, StorageError> {
    serve::serve_request(storage, req, RESPONSE_BUDGET)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::CommittedBlock;
    use agora_proto::v1::{Block, CommitCertificate, Header, Transaction};
    use agora_validator::block::header_hash;
    use prost::Message;

    fn store(s: &Storage, h: u64, pad: usize) {
        let header = Header {
            height: h,
            ..Default::default()
        };
        let cert = CommitCertificate {
            height: h,
            block_hash: header_hash(&header).to_vec(),
            ..Default::default()
        };
        let block = Block {
            header: Some(header),
            txs: vec![Transaction {
                signature: vec![0; pad],
                ..Default::default()
            }],
            ..Default::default()
        };
        s.commit_block(CommittedBlock {
            block: &block,
            certificate: &cert,
            state_changes: &[],
            seed: &[0; 32],
            txs: &[],
            validator_set: None,
            evidence_removed: &[],
        })
        .unwrap();
    }

    #[test]
    fn serves_consecutive_blocks_within_the_frame_budget() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path().join("db")).unwrap();
        for h in 1..=5 {
            store(&s, h, 10);
        }
        let r = serve_request(
            &s,
            &BlockRequest {
                from_height: 2,
                count: 10,
            },
        )
        .unwrap();
        let hs: Vec<u64> = r
            .blocks
            .iter()
            .map(|b| b.block.as_ref().unwrap().header.as_ref().unwrap().height)
            .collect();
        assert_eq!(hs, vec![2, 3, 4, 5]);
        assert_eq!(r.latest_height, 5);
        assert!(
            serve_request(
                &s,
                &BlockRequest {
                    from_height: 9,
                    count: 3
                }
            )
            .unwrap()
            .blocks
            .is_empty()
        );

        // Big blocks: the response stays within one frame.
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path().join("db")).unwrap();
        for h in 1..=4 {
            store(&s, h, 1_500_000);
        }
        let r = serve_request(
            &s,
            &BlockRequest {
                from_height: 1,
                count: 4,
            },
        )
        .unwrap();
        assert_eq!(r.blocks.len(), 2);
        assert!(r.encoded_len() <= MAX_BLOCK_FRAME);
    }

    #[test]
    fn a_pruned_store_serves_nothing_below_its_floor_and_says_where_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path().join("db")).unwrap();
        for h in 1..=10 {
            store(&s, h, 10);
        }
        let ask = |from| BlockRequest {
            from_height: from,
            count: 4,
        };
        // Unpruned: served from 1, the floor is 1.
        let r = serve_request(&s, &ask(2)).unwrap();
        assert_eq!((r.blocks.len(), r.lowest_height), (4, 1));
        assert_eq!(s.prune_blocks_below(6).unwrap(), 5);
        let r = serve_request(&s, &ask(2)).unwrap();
        assert!(
            r.blocks.is_empty(),
            "no later block in place of a pruned one"
        );
        assert_eq!((r.lowest_height, r.latest_height), (6, 10));
        let r = serve_request(&s, &ask(6)).unwrap();
        assert_eq!((r.blocks.len(), r.lowest_height), (4, 6));
    }
}
