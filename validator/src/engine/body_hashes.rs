//! The transaction hashes (and the decoded carried certificate) of the
//! block bodies checked at this height, by header hash: a block's
//! transactions are encoded and hashed once per node,
//! when its proposal arrives (the body check in `Engine::on_proposal`), not
//! again when the core asks for the block's validation nor when the decided
//! block is applied. Under load this hashing was a third of the consensus
//! loop's time (600-transaction blocks, hashed three times).
//!
//! Why keying by header hash is sound: an entry is made only for a body
//! that passed the check, that is, whose transaction-hash list hashes to
//! the header's `txs_hash`. Every body that passes under one header has the
//! same list (SHA3-256 collision resistance), so an entry is the list of
//! any checked body of its header. The engine consults it only for bodies
//! that were checked: proposals from peers (checked before the core sees
//! them) and WAL records (checked on replay, `restart.rs`); our own block
//! misses the cache and is hashed.
//!
//! The certificate is decoded once too (its signature's subgroup check is
//! about 0.1 ms): the block rules take it from here instead of the bytes.
//!
//! Who gets an entry: the body is checked before the proposal's signature
//! (a relay that swapped a body is at fault, and must not make the genuine
//! block look invalid), so any peer can have a body checked and entered,
//! under a header nobody signed. When the cache is full, entries for
//! blocks the core does not hold (it holds only blocks of proposals whose
//! signature verified, and our own) make way for the new one. Before that
//! rule, eight unsigned proposals at a height (each charged, each a few
//! hundred bytes) filled the cache, and the genuine block's transactions
//! were hashed twice more, at validation and at commit (test
//! `engine/tests/body_cache.rs`).
//!
//! Bound: `MAX_BODIES` entries, each at most one hash per transaction of a
//! body that passed the decode estimate (`node/src/transport/decoded.rs`:
//! a 4 MiB proposal frame holds at most about 87,000 transactions, so
//! 2.8 MiB of hashes; an honest block under the default limits holds
//! 10,000, 320 KiB) plus one certificate (under 13 KiB with its bitmap);
//! emptied at each commit. When full of blocks the core holds, new entries
//! are not kept: a miss only costs hashing.

use std::collections::HashMap;

use super::block_rules::CheckedBody;
use crate::crypto::Hash;

/// Bodies remembered per height at most (one per round, proposals beyond
/// the eighth round are hashed again).
pub const MAX_BODIES: usize = 8;

/// What the body check computed for checked bodies, by header hash.
#[derive(Debug, Default)]
pub struct BodyHashes {
    by_header: HashMap<Hash, CheckedBody>,
}

impl BodyHashes {
    /// Remembers what the body check computed for a body that passed it
    /// under the header hashing to `header`; when full, first forgets the
    /// entries whose block `held` says the core does not hold.
    pub fn insert(&mut self, header: Hash, body: CheckedBody, held: impl Fn(&Hash) -> bool) {
        if self.by_header.len() >= MAX_BODIES {
            self.by_header.retain(|h, _| held(h));
        }
        if self.by_header.len() < MAX_BODIES {
            self.by_header.entry(header).or_insert(body);
        }
    }

    /// What the body check computed for the checked body of `header`, if
    /// remembered.
    pub fn get(&self, header: &Hash) -> Option<&CheckedBody> {
        self.by_header.get(header)
    }

    /// The transaction hashes of the checked body of `header`, if remembered.
    pub fn tx_hashes(&self, header: &Hash) -> Option<&[Hash]> {
        self.get(header).map(|b| b.tx_hashes.as_slice())
    }

    /// Forgets every body (a height was committed).
    pub fn clear(&mut self) {
        self.by_header.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries past the bound are not kept, the first body of a header
    /// stays, and a commit empties the cache.
    fn body(tx: Hash) -> CheckedBody {
        CheckedBody {
            tx_hashes: vec![tx],
            carried: None,
        }
    }

    #[test]
    fn bounded_first_kept_cleared() {
        let mut b = BodyHashes::default();
        for i in 0..=MAX_BODIES as u8 {
            b.insert([i; 32], body([i; 32]), |_| true);
        }
        assert_eq!(b.tx_hashes(&[0; 32]), Some(&[[0u8; 32]][..]));
        assert_eq!(b.tx_hashes(&[MAX_BODIES as u8; 32]), None, "past the bound");
        b.insert([0; 32], body([7; 32]), |_| true);
        assert_eq!(b.tx_hashes(&[0; 32]), Some(&[[0u8; 32]][..]), "first kept");
        b.clear();
        assert_eq!(b.tx_hashes(&[0; 32]), None);
    }

    /// When full, entries for blocks the core does not hold make way;
    /// those it holds stay, and a cache full of them keeps them.
    #[test]
    fn when_full_entries_the_core_does_not_hold_make_way() {
        let mut b = BodyHashes::default();
        let held = |h: &Hash| h[0].is_multiple_of(2);
        for i in 0..MAX_BODIES as u8 {
            b.insert([i; 32], body([i; 32]), held);
        }
        b.insert([100; 32], body([100; 32]), held);
        assert!(b.get(&[100; 32]).is_some(), "the new entry is kept");
        assert!(b.get(&[1; 32]).is_none(), "an unheld entry made way");
        assert!(b.get(&[2; 32]).is_some(), "a held entry stays");
        let all_held = |_: &Hash| true;
        for i in 0..MAX_BODIES as u8 {
            b.insert([200 + i; 32], body([i; 32]), all_held);
        }
        assert_eq!(b.by_header.len(), MAX_BODIES);
        b.insert([250; 32], body([250; 32]), all_held);
        assert!(b.get(&[250; 32]).is_none(), "full of held blocks: not kept");
    }
}
