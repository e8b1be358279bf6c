//! Block sync, serving side: which blocks answer a peer's `BlockRequest`.
//!
//! The rule is the engine's so that the node (from its redb store) and the
//! simulator (from its in-memory one) answer alike; each only says where a
//! height's block and certificate are ([`BlockSource`]).
//!
//! What a hostile asker can do with it: ask for any range, any count. The
//! answer is at most [`MAX_BLOCKS_PER_RESPONSE`] blocks and at most the
//! caller's byte budget (one frame), so one request costs the server a
//! bounded read, and the node's per-peer serving budget bounds how many it
//! answers. What the asker needs from it: consecutive heights from the one
//! asked (a later block in place of a missing one would be charged to us
//! as out of order), and the lowest height we still hold, so that an empty
//! answer below a pruned or state-synced floor is not taken for a false
//! announcement (`engine::sync`).

use agora_proto::v1::{BlockRequest, BlockResponse, CertifiedBlock};
use prost::Message;

/// Most blocks returned per request, whatever was asked. The byte budget
/// bounds the bytes: an empty block with its certificate is well under
/// 1 KiB, so 512 of them fit in one 4 MiB frame many times over.
pub const MAX_BLOCKS_PER_RESPONSE: u32 = 512;

/// Most bytes the `lowest_height` field adds to a response (a one-byte
/// tag and a varint of up to ten).
const LOWEST_HEIGHT_FIELD_MAX: usize = 11;

/// Where served blocks come from.
pub trait BlockSource {
    /// A failure to read the source (the node's storage error).
    type Error;
    /// The highest committed height, 0 before the first block.
    fn latest_height(&self) -> Result<u64, Self::Error>;
    /// The block at `height` with its certificate, if both are held.
    fn certified_block(&self, height: u64) -> Result<Option<CertifiedBlock>, Self::Error>;
    /// The lowest height whose block is held, 0 when none is.
    fn lowest_height(&self) -> Result<u64, Self::Error>;
}

/// Answers `req` from `source`: consecutive certified blocks from
/// `req.from_height` (height 0 is read as 1), up to the first height not
/// held, at most [`MAX_BLOCKS_PER_RESPONSE`], and no more than fit with the
/// rest of the response in `budget` encoded bytes (so a block too big for
/// the budget on its own is never served: none is, the frame bounds a
/// block). The lowest height is read after the blocks, so a prune that
/// ran meanwhile shows in it.
pub fn serve_request<S: BlockSource>(
    source: &S,
    req: &BlockRequest,
    budget: usize,
) -> Result<BlockResponse, S::Error> {
    let latest = source.latest_height()?;
    let mut resp = BlockResponse {
        blocks: Vec::new(),
        latest_height: latest,
        lowest_height: 0,
    };
    let from = req.from_height.max(1);
    let count = req.count.min(MAX_BLOCKS_PER_RESPONSE);
    // The lowest height is set last: its field is reserved here.
    let mut used = resp.encoded_len() + LOWEST_HEIGHT_FIELD_MAX;
    for h in from..from.saturating_add(u64::from(count)) {
        if h > latest {
            break;
        }
        let Some(item) = source.certified_block(h)? else {
            break;
        };
        // The field's tag byte, its length prefix and the item: what
        // adding it to `blocks` adds to the encoded response.
        let len = item.encoded_len();
        let cost = 1 + prost::length_delimiter_len(len) + len;
        if used + cost > budget {
            break;
        }
        used += cost;
        resp.blocks.push(item);
    }
    resp.lowest_height = source.lowest_height()?;
    debug_assert!(resp.blocks.len() <= MAX_BLOCKS_PER_RESPONSE as usize);
    debug_assert!(resp.blocks.is_empty() || resp.encoded_len() <= budget);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::{Block, CommitCertificate, Header};
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    /// Blocks by height, each padded to a chosen size.
    struct Map(BTreeMap<u64, CertifiedBlock>);

    impl Map {
        fn new(heights: impl IntoIterator<Item = u64>, pad: usize) -> Self {
            let block = |h| CertifiedBlock {
                block: Some(Block {
                    header: Some(Header {
                        height: h,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                certificate: Some(CommitCertificate {
                    height: h,
                    aggregate_signature: vec![7; pad],
                    ..Default::default()
                }),
            };
            Map(heights.into_iter().map(|h| (h, block(h))).collect())
        }
    }

    impl BlockSource for Map {
        type Error = Infallible;
        fn latest_height(&self) -> Result<u64, Infallible> {
            Ok(self.0.keys().next_back().copied().unwrap_or(0))
        }
        fn certified_block(&self, height: u64) -> Result<Option<CertifiedBlock>, Infallible> {
            Ok(self.0.get(&height).cloned())
        }
        fn lowest_height(&self) -> Result<u64, Infallible> {
            Ok(self.0.keys().next().copied().unwrap_or(0))
        }
    }

    fn heights(r: &BlockResponse) -> Vec<u64> {
        r.blocks
            .iter()
            .map(|b| b.certificate.as_ref().unwrap().height)
            .collect()
    }

    fn ask(source: &Map, from_height: u64, count: u32, budget: usize) -> BlockResponse {
        let req = BlockRequest { from_height, count };
        serve_request(source, &req, budget).unwrap_or_else(|e| match e {})
    }

    #[test]
    fn serves_consecutive_heights_from_the_one_asked_and_says_what_it_holds() {
        let m = Map::new(1..=5, 10);
        let r = ask(&m, 2, 10, 1 << 20);
        assert_eq!(heights(&r), vec![2, 3, 4, 5]);
        assert_eq!((r.latest_height, r.lowest_height), (5, 1));
        assert_eq!(heights(&ask(&m, 0, 2, 1 << 20)), vec![1, 2], "0 is 1");
        assert!(ask(&m, 9, 3, 1 << 20).blocks.is_empty());
    }

    #[test]
    fn never_serves_a_later_block_in_place_of_a_missing_one() {
        // A state-synced node holds 6 and up; a hole at 8.
        let m = Map::new([6, 7, 9, 10], 10);
        let r = ask(&m, 2, 10, 1 << 20);
        assert!(
            r.blocks.is_empty(),
            "nothing below the floor, nothing after"
        );
        assert_eq!((r.lowest_height, r.latest_height), (6, 10));
        assert_eq!(heights(&ask(&m, 6, 10, 1 << 20)), vec![6, 7]);
    }

    #[test]
    fn the_answer_stays_within_the_count_cap_and_the_byte_budget() {
        let m = Map::new(1..=600, 10);
        let r = ask(&m, 1, u32::MAX, 1 << 22);
        assert_eq!(r.blocks.len(), MAX_BLOCKS_PER_RESPONSE as usize);
        let m = Map::new(1..=4, 1_000);
        let budget = 2_500;
        let r = ask(&m, 1, 4, budget);
        assert_eq!(heights(&r), vec![1, 2]);
        assert!(r.encoded_len() <= budget);
        let mut served = 0;
        for budget in (0..5_000).step_by(7) {
            let r = ask(&m, 1, 4, budget);
            assert!(r.blocks.is_empty() || r.encoded_len() <= budget);
            assert!(r.blocks.len() >= served, "more room never serves fewer");
            served = r.blocks.len();
        }
        assert_eq!(served, 4);
        // A block bigger than the whole budget is not served at all.
        assert!(ask(&m, 1, 4, 500).blocks.is_empty());
    }
}
