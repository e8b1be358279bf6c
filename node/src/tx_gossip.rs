//! Transactions are gossiped in batches: what a node admitted over a few
//! milliseconds travels to each peer as one `TransactionBatch` frame instead
//! of one frame per transaction, which under load cuts the frames (and the
//! per-frame work of QUIC, framing and de-duplication) by the batch size.
//!
//! Bounds (written down because every buffer has one): a batch is sent when
//! it holds [`MAX_BATCH_TXS`] transactions or [`MAX_BATCH_BYTES`] encoded
//! bytes, or [`FLUSH_AFTER`] after its first transaction, whichever comes
//! first. The receiver rejects a batch frame above
//! `wire::MAX_TX_BATCH_FRAME` (twice `MAX_BATCH_BYTES`).

use std::collections::HashMap;
use std::time::Duration;

use agora_proto::v1::{PeerMessage, Transaction, TransactionBatch, peer_message::Kind};
use agora_validator::Address;
use prost::Message;
use tokio::time::Instant;

/// Most transactions in one gossiped batch.
pub const MAX_BATCH_TXS: usize = 512;
/// Most encoded transaction bytes in one gossiped batch.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Longest a transaction waits in the outbox.
pub const FLUSH_AFTER: Duration = Duration::from_millis(5);
/// Most encoded bytes of pending transactions handed to a validator when
/// it connects (see [`handover`]): four full batches.
pub const HANDOVER_MAX_BYTES: usize = 4 * MAX_BATCH_BYTES;

/// The interval of [`HANDOVERS_PER_INTERVAL`]: a validator that reconnects
/// over and over is handed the pool at most that often per interval.
pub const HANDOVER_EVERY: Duration = Duration::from_secs(10);

/// Handovers to one validator per [`HANDOVER_EVERY`]. Two, not one: when
/// both ends dial at once, the duplicate rule closes one of the two
/// connections (`transport/peer_table.rs`), and the handover sent on it
/// when it connected is lost with it. The connection kept then connects
/// (or is reported again) a moment later and needs a handover of its own;
/// with one per interval, a restarted validator lost the pool for 10 s
/// whenever the two dials crossed.
pub const HANDOVERS_PER_INTERVAL: u8 = 2;

/// When each validator's interval began and how many handovers it had.
///
/// Bound: only validators of the current set are recorded, and an entry
/// older than [`HANDOVER_EVERY`] is dropped at the next call, so the map
/// holds at most the set's validators handed the pool in the last
/// interval.
#[derive(Debug, Default)]
pub struct Handovers {
    last: HashMap<Address, (Instant, u8)>,
}

impl Handovers {
    /// Whether `validator` may be handed the pool at `now`; a yes is
    /// recorded.
    pub fn allow(&mut self, validator: Address, now: Instant) -> bool {
        self.last
            .retain(|_, (t, _)| now.saturating_duration_since(*t) < HANDOVER_EVERY);
        let (_, given) = self.last.entry(validator).or_insert((now, 0));
        if *given >= HANDOVERS_PER_INTERVAL {
            return false;
        }
        *given += 1;
        true
    }
}

/// `txs` (what a connecting validator is handed, best-paying first) cut
/// into gossip batches of at most [`MAX_BATCH_TXS`] transactions and
/// [`MAX_BATCH_BYTES`] bytes, in order.
///
/// Why a handover: gossip carries a transaction to the peers connected
/// when it is admitted. A validator that restarts, or whose link was down,
/// would otherwise never hear of what was submitted meanwhile, and would
/// propose without it whenever the lottery picks it. Only validators of
/// the current set are handed anything (`runner/main_loop.rs`), so a peer
/// cannot reconnect over and over to be sent megabytes.
pub fn handover(txs: Vec<Transaction>) -> Vec<PeerMessage> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for tx in txs {
        let len = tx.encoded_len();
        if !batch.is_empty() && (batch.len() >= MAX_BATCH_TXS || bytes + len > MAX_BATCH_BYTES) {
            out.push(batch_message(std::mem::take(&mut batch)));
            bytes = 0;
        }
        bytes += len;
        batch.push(tx);
    }
    if !batch.is_empty() {
        out.push(batch_message(batch));
    }
    out
}

fn batch_message(txs: Vec<Transaction>) -> PeerMessage {
    PeerMessage {
        kind: Some(Kind::Transactions(TransactionBatch { txs })),
    }
}

/// Admitted transactions waiting to be gossiped together.
#[derive(Debug, Default)]
pub struct TxOutbox {
    txs: Vec<Transaction>,
    bytes: usize,
    deadline: Option<Instant>,
}

impl TxOutbox {
    /// Adds an admitted transaction; returns a batch to send when this one filled it.
    pub fn push(&mut self, tx: Transaction, now: Instant) -> Option<PeerMessage> {
        self.bytes += tx.encoded_len();
        self.txs.push(tx);
        self.deadline.get_or_insert(now + FLUSH_AFTER);
        if self.txs.len() >= MAX_BATCH_TXS || self.bytes >= MAX_BATCH_BYTES {
            return self.take();
        }
        None
    }

    /// When the pending batch must go out (`None` when empty).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The pending batch, emptying the outbox.
    pub fn take(&mut self) -> Option<PeerMessage> {
        self.deadline = None;
        self.bytes = 0;
        if self.txs.is_empty() {
            return None;
        }
        Some(batch_message(std::mem::take(&mut self.txs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validator_is_handed_the_pool_once_per_interval() {
        let mut h = Handovers::default();
        let (a, b) = (Address([1; 20]), Address([2; 20]));
        let t0 = Instant::now();
        assert!(h.allow(a, t0));
        // The one that replaces a twin closed by the duplicate rule.
        assert!(h.allow(a, t0 + Duration::from_millis(2)), "the second");
        assert!(
            !h.allow(a, t0 + HANDOVER_EVERY / 2),
            "reconnected too often"
        );
        assert!(h.allow(b, t0 + HANDOVER_EVERY / 2), "another validator");
        assert!(h.allow(a, t0 + HANDOVER_EVERY), "a new interval");
        assert_eq!(h.last.len(), 2, "b's entry is still in its interval");
        assert!(h.allow(a, t0 + HANDOVER_EVERY * 3));
        assert_eq!(h.last.len(), 1, "old entries are dropped");
    }

    #[test]
    fn a_handover_is_cut_into_bounded_batches_in_order() {
        let txs: Vec<Transaction> = (0..MAX_BATCH_TXS + 3).map(|i| tx(i % 7)).collect();
        let big: Vec<Transaction> = (0..6).map(|_| tx(MAX_BATCH_BYTES / 3)).collect();
        for input in [txs, big] {
            let batches = handover(input.clone());
            let mut back = Vec::new();
            for b in &batches {
                let Some(Kind::Transactions(batch)) = &b.kind else {
                    panic!("not a batch");
                };
                let bytes: usize = batch.txs.iter().map(|t| t.encoded_len()).sum();
                assert!(batch.txs.len() <= MAX_BATCH_TXS);
                assert!(bytes <= MAX_BATCH_BYTES || batch.txs.len() == 1, "{bytes}");
                back.extend(batch.txs.iter().cloned());
            }
            assert_eq!(back, input, "every transaction, in order");
            assert!(batches.len() >= 2, "cut");
        }
        assert!(handover(Vec::new()).is_empty());
    }
    use crate::transport::wire;

    fn tx(pad: usize) -> Transaction {
        Transaction {
            body: None,
            public_key: vec![1; pad],
            signature: vec![2; 64],
        }
    }

    fn count(m: &PeerMessage) -> usize {
        match &m.kind {
            Some(Kind::Transactions(b)) => b.txs.len(),
            _ => 0,
        }
    }

    #[test]
    fn batches_by_count_bytes_and_deadline() {
        let now = Instant::now();
        let mut o = TxOutbox::default();
        assert!(o.take().is_none() && o.deadline().is_none());
        for _ in 0..MAX_BATCH_TXS - 1 {
            assert!(o.push(tx(10), now).is_none());
        }
        assert_eq!(o.deadline(), Some(now + FLUSH_AFTER));
        let full = o.push(tx(10), now).expect("the 512th fills the batch");
        assert_eq!(count(&full), MAX_BATCH_TXS);
        assert!(o.deadline().is_none());
        // Large transactions: the byte bound closes the batch first.
        let mut sent = None;
        for i in 0..100 {
            if let Some(b) = o.push(tx(30_000), now) {
                sent = Some((i, b));
                break;
            }
        }
        let (i, b) = sent.expect("byte bound");
        assert_eq!(i + 1, count(&b));
        assert!(count(&b) < MAX_BATCH_TXS);
        // A full batch always fits the receiver's frame bound.
        assert!(wire::encode_frame(&b).len() <= wire::MAX_TX_BATCH_FRAME);
        assert_eq!(count(&full), MAX_BATCH_TXS);
        assert!(wire::encode_frame(&full).len() <= wire::MAX_TX_BATCH_FRAME);
    }
}
