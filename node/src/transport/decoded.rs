//! How much memory a `PeerMessage` body takes once decoded, estimated from
//! its bytes *before* decoding it.
//!
//! Decoding can allocate far more than the frame's length: an empty
//! element of a repeated message field is 2 bytes on the wire (key, zero
//! length) but a whole struct in memory (a `CertifiedBlock` is 488 bytes),
//! so a 4 MiB block response of empty entries decoded into about 1 GB (the
//! attack tests' `amplifying_frames` measured it). The repeated message
//! fields are the only way to grow a message beyond its bytes (a `bytes`
//! or `string` field holds at most its own length; a singular message
//! field is inline in its parent), and the ones a peer can send are few:
//! `BlockResponse.blocks`, `Block.txs`, `Block.evidence` (in proposals and
//! block responses) and `TransactionBatch.txs`. [`estimate`] counts their
//! elements with a walk over the wire format and prices each at twice its
//! in-memory size (a `Vec` grown by pushing holds up to twice its length).
//!
//! An honest message never decodes into more than about four times its
//! length (a batch of the smallest transactions: 142 bytes each on the
//! wire, 142 + 2 × 192 in memory); a body whose estimate exceeds
//! [`MAX_DECODE_RATIO`] times its length is refused undecoded.

use std::mem::size_of;

use agora_proto::v1 as pb;

use super::wire::WireError;

/// Largest accepted ratio of a body's decoded estimate to its length.
pub const MAX_DECODE_RATIO: usize = 8;

/// An upper estimate of the bytes `body` decodes into: its own length (the
/// `bytes` and `string` fields' contents), the top-level message, and
/// twice the size of every element of a repeated message field.
/// `Undecodable` if the wire format is broken on the way.
pub fn estimate(body: &[u8]) -> Result<usize, WireError> {
    walk(body, usize::MAX)
}

/// [`estimate`], stopping with `Amplified` as soon as it passes `allowed`:
/// a flood of empty entries is refused after the first few thousand of
/// them, not after a walk over the whole frame (a 4 MiB frame holds two
/// million; the walk cost the node more than the frame cost the sender).
fn walk(body: &[u8], allowed: usize) -> Result<usize, WireError> {
    let fixed = size_of::<pb::PeerMessage>() + body.len();
    let mut counts = Counts {
        budget: allowed.saturating_sub(fixed),
        len: body.len(),
        ..Counts::default()
    };
    for field in Fields(body) {
        let (number, payload) = field?;
        match (number, payload) {
            // Proposal.block
            (2, Some(p)) => {
                for f in Fields(p) {
                    if let (4, Some(block)) = f? {
                        counts.block(block)?;
                    }
                }
            }
            // BlockResponse.blocks, each a CertifiedBlock whose field 1 is its block.
            (7, Some(p)) => {
                for f in Fields(p) {
                    if let (1, Some(certified)) = f? {
                        counts.add(|c| c.certified_blocks += 1)?;
                        for g in Fields(certified) {
                            if let (1, Some(block)) = g? {
                                counts.block(block)?;
                            }
                        }
                    }
                }
            }
            // TransactionBatch.txs
            (9, Some(p)) => {
                for f in Fields(p) {
                    if let (1, Some(_)) = f? {
                        counts.add(|c| c.txs += 1)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(fixed + counts.element_bytes())
}

/// [`estimate`], refused (`Amplified`) past [`MAX_DECODE_RATIO`] times the
/// body's length, as soon as the walk passes it.
pub fn checked_estimate(body: &[u8]) -> Result<usize, WireError> {
    let allowed = size_of::<pb::PeerMessage>() + MAX_DECODE_RATIO * body.len();
    let estimate = walk(body, allowed)?;
    debug_assert!(estimate <= allowed, "the walk stops past the bound");
    Ok(estimate)
}

#[derive(Default)]
struct Counts {
    certified_blocks: usize,
    txs: usize,
    evidence: usize,
    /// Element bytes (twice their size) allowed before the walk stops.
    budget: usize,
    /// The body's length, for the error.
    len: usize,
}

impl Counts {
    /// Twice the in-memory size of the elements counted so far.
    fn element_bytes(&self) -> usize {
        2 * (self.certified_blocks * size_of::<pb::CertifiedBlock>()
            + self.txs * size_of::<pb::Transaction>()
            + self.evidence * size_of::<pb::Evidence>())
    }

    /// Counts one element; `Amplified` once past the budget.
    fn add(&mut self, count: impl FnOnce(&mut Self)) -> Result<(), WireError> {
        count(self);
        let bytes = self.element_bytes();
        if bytes > self.budget {
            return Err(WireError::Amplified {
                len: self.len,
                estimate: size_of::<pb::PeerMessage>() + self.len + bytes,
            });
        }
        Ok(())
    }

    /// Block.txs (2) and Block.evidence (3).
    fn block(&mut self, block: &[u8]) -> Result<(), WireError> {
        for f in Fields(block) {
            match f? {
                (2, Some(_)) => self.add(|c| c.txs += 1)?,
                (3, Some(_)) => self.add(|c| c.evidence += 1)?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// The fields of one protobuf message: (field number, the payload of a
/// length-delimited field or None for the other wire types).
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Option<&'a [u8]>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        Some(self.field())
    }
}

impl<'a> Fields<'a> {
    fn field(&mut self) -> Result<(u64, Option<&'a [u8]>), WireError> {
        let key = self.varint()?;
        let (number, wire_type) = (key >> 3, key & 7);
        let payload = match wire_type {
            0 => {
                self.varint()?;
                None
            }
            1 => {
                self.skip(8)?;
                None
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| broken())?;
                Some(self.skip(len)?)
            }
            5 => {
                self.skip(4)?;
                None
            }
            _ => return Err(broken()),
        };
        Ok((number, payload))
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.0.split_first().ok_or_else(broken)?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(broken())
    }

    fn skip(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.0.len() {
            return Err(broken());
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }
}

fn broken() -> WireError {
    WireError::Undecodable("broken wire format".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::{PeerMessage, peer_message::Kind};
    use prost::Message;

    fn body(kind: Kind) -> Vec<u8> {
        PeerMessage { kind: Some(kind) }.encode_to_vec()
    }

    fn smallest_tx(i: u64) -> pb::Transaction {
        let chain = agora_validator::ChainId::new("net-test").unwrap();
        let k = agora_validator::AccountSecretKey::from_seed(&[1; 32]);
        let body = pb::TxBody {
            chain_id: chain.as_str().into(),
            nonce: i,
            kind: Some(pb::tx_body::Kind::Transfer(pb::Transfer {
                to: vec![1; 20],
                amount: "1".into(),
            })),
            fee: "1".into(),
        };
        agora_validator::signing::sign_transaction(&chain, &k, body)
    }

    #[test]
    fn honest_messages_pass_and_count_their_elements() {
        let txs: Vec<_> = (0..1000).map(smallest_tx).collect();
        let batch = body(Kind::Transactions(pb::TransactionBatch {
            txs: txs.clone(),
        }));
        let e = checked_estimate(&batch).unwrap();
        assert!(e >= batch.len() + 2 * 1000 * size_of::<pb::Transaction>());
        assert!(e < 4 * batch.len(), "{e} for {} bytes", batch.len());

        let block = pb::Block {
            header: Some(pb::Header {
                height: 5,
                parent_hash: vec![1; 32],
                ..Default::default()
            }),
            txs,
            ..Default::default()
        };
        let proposal = body(Kind::Proposal(pb::Proposal {
            block: Some(block.clone()),
            ..Default::default()
        }));
        assert!(checked_estimate(&proposal).unwrap() >= 2 * 1000 * size_of::<pb::Transaction>());
        let response = body(Kind::BlockResponse(pb::BlockResponse {
            blocks: vec![
                pb::CertifiedBlock {
                    block: Some(block),
                    certificate: None,
                };
                3
            ],
            latest_height: 9,
            lowest_height: 0,
        }));
        assert!(
            checked_estimate(&response).unwrap()
                >= 2 * (3 * size_of::<pb::CertifiedBlock>() + 3000 * size_of::<pb::Transaction>())
        );
        let vote = body(Kind::Vote(pb::Vote::default()));
        assert_eq!(
            checked_estimate(&vote).unwrap(),
            size_of::<PeerMessage>() + vote.len()
        );
    }

    #[test]
    fn empty_entries_are_refused_before_decoding() {
        let response = body(Kind::BlockResponse(pb::BlockResponse {
            blocks: vec![pb::CertifiedBlock::default(); 10_000],
            latest_height: 0,
            lowest_height: 0,
        }));
        assert!(matches!(
            checked_estimate(&response),
            Err(WireError::Amplified { .. })
        ));
        let batch = body(Kind::Transactions(pb::TransactionBatch {
            txs: vec![pb::Transaction::default(); 10_000],
        }));
        assert!(matches!(
            checked_estimate(&batch),
            Err(WireError::Amplified { .. })
        ));
    }

    /// A block response of `entries` empty blocks whose last entry claims
    /// bytes it does not have.
    fn empty_entries_then_broken(entries: usize) -> Vec<u8> {
        let mut inner: Vec<u8> = [0x0a, 0x00].repeat(entries);
        inner.extend_from_slice(&[0x0a, 0x05]);
        let mut body = vec![0x3a];
        let mut n = inner.len() as u64;
        while n >= 0x80 {
            body.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        body.push(n as u8);
        body.extend(inner);
        body
    }

    /// The checked walk stops at the bound: a frame of empty entries is
    /// refused before its end is read (the broken tail is never reached),
    /// while the unbounded estimate walks on to it (negative control).
    #[test]
    fn an_amplifying_body_is_refused_before_its_end() {
        let body = empty_entries_then_broken(100_000);
        assert!(matches!(
            checked_estimate(&body),
            Err(WireError::Amplified { .. })
        ));
        assert!(matches!(estimate(&body), Err(WireError::Undecodable(_))));
    }

    #[test]
    fn a_broken_wire_format_is_undecodable() {
        assert!(matches!(
            estimate(&[0x3a, 0xff]),
            Err(WireError::Undecodable(_))
        ));
        assert!(matches!(
            estimate(&[0x3a, 0x05, 0x0a]),
            Err(WireError::Undecodable(_))
        ));
    }
}
