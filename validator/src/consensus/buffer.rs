//! Bounded buffering of messages for future heights (DESIGN §6).
//!
//! Messages for a height the core has not started yet are kept, unverified,
//! until it starts; they are verified like any other message when replayed.
//! The buffer holds only heights up to `max_heights_ahead` above the current
//! one, and is bounded three ways, so a flood cannot grow memory:
//!
//! - at most `max_messages` messages in all;
//! - at most [`ByteLimits::total`] bytes in all (the encoded size of each
//!   message, which is what it costs to keep);
//! - at most [`ByteLimits::per_sender`] bytes per *claimed* sender (the
//!   vote's validator address, the proposal's proposer address), so one
//!   validator, or someone forging its name, cannot fill the buffer for
//!   everyone else.
//!
//! Anything beyond is dropped and counted. Nothing is verified here, so a
//! forger can use up the quota of a name it forges; what it displaces is
//! not lost for good: every validator re-gossips its current height's
//! messages every tick, and those arrive again once the height started.
//!
//! Messages for future *rounds* of the current height are not buffered here:
//! Algorithm 1 needs them counted at once (round skip), so the vote sets keep
//! them, within a round window.
//!
//! Each message may carry a tag `T` (the engine keeps the peer that sent it,
//! so that a message found bad when its height starts is charged to that
//! peer); the core uses `T = ()`.

use crate::types::Height;
use agora_proto::v1 as pb;
use prost::Message;
use std::collections::{BTreeMap, HashMap};

/// A consensus message waiting for its height.
#[derive(Debug, Clone, PartialEq)]
pub enum Buffered {
    /// A proposal.
    Proposal(Box<pb::Proposal>),
    /// A vote.
    Vote(pb::Vote),
}

impl Buffered {
    /// Bytes it costs to keep: its encoded length plus a fixed overhead for
    /// the bookkeeping around it.
    pub fn cost(&self) -> usize {
        ENTRY_OVERHEAD
            + match self {
                Self::Proposal(p) => p.encoded_len(),
                Self::Vote(v) => v.encoded_len(),
            }
    }

    /// The validator the message claims to come from (unverified).
    pub fn claimed_sender(&self) -> &[u8] {
        let a = match self {
            Self::Proposal(p) => &p.proposer_address,
            Self::Vote(v) => &v.validator_address,
        };
        // An address is 20 bytes; a longer "address" is one sender anyway.
        &a[..a.len().min(20)]
    }
}

/// Bookkeeping bytes counted per buffered message besides its encoding.
pub const ENTRY_OVERHEAD: usize = 64;

/// Limits of the future-height buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    /// Most messages held in total.
    pub max_messages: usize,
    /// Highest distance above the current height that is kept.
    pub max_heights_ahead: u64,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            max_messages: 4096,
            max_heights_ahead: 2,
        }
    }
}

/// Byte bounds of the future-height buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteLimits {
    /// Bytes held in all, at most: [`MAX_BUFFER_BYTES`] by default.
    pub total: usize,
    /// Bytes held per claimed sender, at most: [`MAX_SENDER_BYTES`] by default.
    pub per_sender: usize,
}

/// Default bound of the whole buffer: 16 MiB.
pub const MAX_BUFFER_BYTES: usize = 16 * 1024 * 1024;
/// Default bound per claimed sender: 4.5 MiB, one maximal proposal (a
/// 4 MiB block) plus room for every vote an honest validator casts in two
/// heights of many rounds (a vote is ~200 bytes; 2,500 of them fit in the
/// remaining 0.5 MiB).
pub const MAX_SENDER_BYTES: usize = 4 * 1024 * 1024 + 512 * 1024;

impl Default for ByteLimits {
    fn default() -> Self {
        Self {
            total: MAX_BUFFER_BYTES,
            per_sender: MAX_SENDER_BYTES,
        }
    }
}

/// The buffer itself: messages by height, in arrival order within a height.
#[derive(Debug, Clone)]
pub struct FutureBuffer<T = ()> {
    config: BufferConfig,
    bytes_limits: ByteLimits,
    by_height: BTreeMap<Height, Vec<(T, Buffered)>>,
    len: usize,
    bytes: usize,
    by_sender: HashMap<Vec<u8>, usize>,
    dropped: u64,
}

impl<T> Default for FutureBuffer<T> {
    fn default() -> Self {
        Self::with_limits(BufferConfig::default(), ByteLimits::default())
    }
}

impl FutureBuffer<()> {
    /// An empty buffer with these limits (and the default byte limits).
    pub fn new(config: BufferConfig) -> Self {
        Self::with_limits(config, ByteLimits::default())
    }

    /// Keeps `msg` for `height` if it is within the window and there is room;
    /// returns whether it was kept.
    pub fn push(&mut self, current: Height, height: Height, msg: Buffered) -> bool {
        self.push_tagged(current, height, (), msg)
    }

    /// Removes and returns the messages for `height`, and forgets every lower height.
    pub fn take(&mut self, height: Height) -> Vec<Buffered> {
        self.take_tagged(height)
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    }
}

impl<T> FutureBuffer<T> {
    /// An empty buffer with these limits.
    pub fn with_limits(config: BufferConfig, bytes_limits: ByteLimits) -> Self {
        Self {
            config,
            bytes_limits,
            by_height: BTreeMap::new(),
            len: 0,
            bytes: 0,
            by_sender: HashMap::new(),
            dropped: 0,
        }
    }

    /// Keeps `msg`, tagged, for `height` if it is within the window and
    /// there is room (in count, in bytes, and in its claimed sender's
    /// quota); returns whether it was kept.
    pub fn push_tagged(&mut self, current: Height, height: Height, tag: T, msg: Buffered) -> bool {
        let cost = msg.cost();
        let sender_used = self
            .by_sender
            .get(msg.claimed_sender())
            .copied()
            .unwrap_or(0);
        if height <= current
            || height - current > self.config.max_heights_ahead
            || self.len >= self.config.max_messages
            || self.bytes + cost > self.bytes_limits.total
            || sender_used + cost > self.bytes_limits.per_sender
        {
            self.dropped += 1;
            return false;
        }
        *self
            .by_sender
            .entry(msg.claimed_sender().to_vec())
            .or_default() += cost;
        self.bytes += cost;
        self.len += 1;
        self.by_height.entry(height).or_default().push((tag, msg));
        true
    }

    /// Removes and returns the tagged messages for `height`, and forgets
    /// every lower height.
    pub fn take_tagged(&mut self, height: Height) -> Vec<(T, Buffered)> {
        let keep = self.by_height.split_off(&height);
        let older = std::mem::replace(&mut self.by_height, keep);
        for (_, m) in older.values().flatten() {
            self.release(m);
        }
        let out = self.by_height.remove(&height).unwrap_or_default();
        for (_, m) in &out {
            self.release(m);
        }
        debug_assert_eq!(
            self.len,
            self.by_height.values().map(Vec::len).sum::<usize>()
        );
        out
    }

    fn release(&mut self, m: &Buffered) {
        let cost = m.cost();
        self.len -= 1;
        self.bytes -= cost;
        if let Some(used) = self.by_sender.get_mut(m.claimed_sender()) {
            *used -= cost;
            if *used == 0 {
                self.by_sender.remove(m.claimed_sender());
            }
        }
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes held (as counted by [`Buffered::cost`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Messages refused so far (outside the window or over a bound).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(h: u64) -> Buffered {
        vote_from(h, 1)
    }

    fn vote_from(h: u64, sender: u8) -> Buffered {
        Buffered::Vote(pb::Vote {
            height: h,
            validator_address: vec![sender; 20],
            signature: vec![7; 96],
            ..Default::default()
        })
    }

    #[test]
    fn buffer_is_bounded_and_windowed() {
        let mut b = FutureBuffer::new(BufferConfig {
            max_messages: 3,
            max_heights_ahead: 2,
        });
        assert!(!b.push(5, 5, vote(5)), "current height is not future");
        assert!(!b.push(5, 8, vote(8)), "beyond the window");
        assert!(b.push(5, 6, vote(6)));
        assert!(b.push(5, 7, vote(7)));
        assert!(b.push(5, 6, vote(6)));
        assert!(!b.push(5, 6, vote(6)), "full");
        assert_eq!(b.len(), 3);
        assert_eq!(b.dropped(), 3);
        assert_eq!(b.take(6).len(), 2);
        assert_eq!(b.len(), 1);
        assert_eq!(b.take(8).len(), 0, "height 7 is forgotten once 8 starts");
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0, "bytes are released with the messages");
    }

    #[test]
    fn one_sender_cannot_fill_the_buffer() {
        let cost = vote_from(6, 1).cost();
        let mut b: FutureBuffer<u8> = FutureBuffer::with_limits(
            BufferConfig::default(),
            ByteLimits {
                total: 10 * cost,
                per_sender: 3 * cost,
            },
        );
        // A flood in one validator's name stops at its quota...
        let kept = (0..100)
            .filter(|_| b.push_tagged(5, 6, 9, vote_from(6, 1)))
            .count();
        assert_eq!(kept, 3);
        assert_eq!(b.bytes(), 3 * cost);
        // ...and every other validator still has room.
        for s in 2..=4 {
            assert!(b.push_tagged(5, 6, s, vote_from(6, s)), "sender {s}");
        }
        // The total bound holds over all senders.
        let more = (5..20)
            .filter(|s| b.push_tagged(5, 7, *s, vote_from(7, *s)))
            .count();
        assert_eq!(more, 4, "10 messages of room in all");
        assert_eq!(b.bytes(), 10 * cost);
        // Taking a height frees its senders' quotas, tags preserved.
        let six = b.take_tagged(6);
        assert_eq!(
            six.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            [9, 9, 9, 2, 3, 4]
        );
        assert!(b.push_tagged(6, 7, 9, vote_from(7, 1)));
    }

    #[test]
    fn a_large_proposal_counts_its_bytes() {
        let mut b = FutureBuffer::new(BufferConfig::default());
        let big = Buffered::Proposal(Box::new(pb::Proposal {
            height: 6,
            proposer_address: vec![1; 20],
            signature: vec![0; MAX_SENDER_BYTES],
            ..Default::default()
        }));
        assert!(!b.push(5, 6, big), "over one sender's quota");
        assert!(b.push(5, 6, vote(6)));
    }
}
