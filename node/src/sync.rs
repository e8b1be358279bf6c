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
use prost::Message;

use crate::storage::{Storage, StorageError};
use crate::transport::wire::MAX_BLOCK_FRAME;

/// Most blocks returned per request, whatever was asked (the frame budget
/// below bounds the bytes: an empty block with its certificate is well under
/// 1 KiB, so 512 of them fit in one 4 MiB frame many times over).
pub const MAX_BLOCKS_PER_RESPONSE: u32 = 512;
/// Bytes kept free in a response frame for the envelope.
const ENVELOPE_SLACK: usize = 1024;

/// Answers a block request: consecutive blocks with their certificates from
/// `from_height`, as many as fit in one frame (at least one if it exists and
/// fits at all), plus our latest height and the lowest height we store.
///
/// A node that prunes (`storage.keep_blocks`) has no blocks below its
/// floor: asked from there it serves none (never a later block in their
/// place: the asker needs consecutive heights) and its `lowest_height`,
/// read after the blocks so that a prune running meanwhile shows, tells
/// the asker to look elsewhere without charging us (`engine::sync`).
pub fn serve_request(storage: &Storage, req: &BlockRequest) -> Result<BlockResponse, StorageError> {
    let latest = storage.latest_height()?.unwrap_or(0);
    let mut resp = BlockResponse {
        blocks: Vec::new(),
        latest_height: latest,
        lowest_height: 0,
    };
    let budget = MAX_BLOCK_FRAME - ENVELOPE_SLACK;
    let count = req.count.min(MAX_BLOCKS_PER_RESPONSE);
    let mut used = resp.encoded_len();
    for h in req.from_height.max(1)..req.from_height.max(1).saturating_add(u64::from(count)) {
        if h > latest {
            break;
        }
        let (Some(block), Some(cert)) = (storage.block(h)?, storage.certificate(h)?) else {
            break;
        };
        let item = CertifiedBlock {
            block: Some(block),
            certificate: Some(cert),
        };
        let len = item.encoded_len();
        let cost = 1 + prost::length_delimiter_len(len) + len;
        if used + cost > budget {
            break;
        }
        used += cost;
        resp.blocks.push(item);
    }
    resp.lowest_height = storage.lowest_block_height()?.unwrap_or(0);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::CommittedBlock;
    use agora_proto::v1::{Block, CommitCertificate, Header, Transaction};
    use agora_validator::block::header_hash;

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
