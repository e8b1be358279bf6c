//! Bounded buffering of messages for future heights (DESIGN §6).
//!
//! Messages for a height the core has not started yet are kept, unverified,
//! until it starts; they are verified like any other message when replayed.
//! The buffer holds at most `max_messages` messages and only heights up to
//! `max_heights_ahead` above the current one; anything beyond is dropped and
//! counted, so a flood cannot grow memory. Messages for future *rounds* of the
//! current height are not buffered here: Algorithm 1 needs them counted at
//! once (round skip), so the vote sets keep them, within a round window.

use crate::types::Height;
use agora_proto::v1 as pb;
use std::collections::BTreeMap;

/// A consensus message waiting for its height.
#[derive(Debug, Clone, PartialEq)]
pub enum Buffered {
    /// A proposal.
    Proposal(Box<pb::Proposal>),
    /// A vote.
    Vote(pb::Vote),
}

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

/// The buffer itself: messages by height, in arrival order within a height.
#[derive(Debug, Clone, Default)]
pub struct FutureBuffer {
    config: BufferConfig,
    by_height: BTreeMap<Height, Vec<Buffered>>,
    len: usize,
    dropped: u64,
}

impl FutureBuffer {
    /// An empty buffer with these limits.
    pub fn new(config: BufferConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Keeps `msg` for `height` if it is within the window and there is room;
    /// returns whether it was kept.
    pub fn push(&mut self, current: Height, height: Height, msg: Buffered) -> bool {
        if height <= current
            || height - current > self.config.max_heights_ahead
            || self.len >= self.config.max_messages
        {
            self.dropped += 1;
            return false;
        }
        self.by_height.entry(height).or_default().push(msg);
        self.len += 1;
        true
    }

    /// Removes and returns the messages for `height`, and forgets every lower height.
    pub fn take(&mut self, height: Height) -> Vec<Buffered> {
        let keep = self.by_height.split_off(&height);
        let older = std::mem::replace(&mut self.by_height, keep);
        self.len -= older.values().map(Vec::len).sum::<usize>();
        let out = self.by_height.remove(&height).unwrap_or_default();
        self.len -= out.len();
        out
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Messages refused so far (outside the window or over capacity).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(h: u64) -> Buffered {
        Buffered::Vote(pb::Vote {
            height: h,
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
    }
}
