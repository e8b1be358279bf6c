//! Checking transaction signatures in batches: one ZIP-215 batch for
//! many decoded transactions, and a block's unverified transactions
//! decoded and checked over the machine's cores.

use super::{DecodedTx, TxError, decode_hashed};
use crate::crypto::ed25519::{AccountBatchItem, verify_batch};
use crate::crypto::{Hash, sha3_256_parts};
use crate::types::ChainId;
use agora_proto::v1 as pb;

/// Verifies the signatures of many decoded transactions in one Ed25519
/// batch (ZIP-215). `seed` must be unpredictable to the senders: the
/// batch's random scalars are drawn from it (the core has no randomness of
/// its own). Returns one verdict per transaction; when the batch fails
/// every signature is checked on its own, and under ZIP-215 a batch passes
/// only if every single check does, so the verdicts never depend on the seed.
pub fn verify_signatures(txs: &[&DecodedTx], seed: &[u8; 32]) -> Vec<bool> {
    let items: Vec<AccountBatchItem<'_>> = txs
        .iter()
        .map(|t| AccountBatchItem {
            key: &t.public_key,
            msg: &t.sign_bytes,
            sig: &t.signature,
        })
        .collect();
    verify_batch(&items, seed)
}

/// Transactions per thread below which [`check_spread`] keeps a block's
/// unverified transactions on the calling thread: a thread and a batch of
/// its own cost about what a few signatures do, and most blocks a node
/// applies hold only transactions its mempool already verified.
const SPREAD_MIN: usize = 64;

/// Decodes and verifies, over the machine's cores, a block's transactions
/// that nobody verified yet (a synced block's, an auditor's replay), given
/// with their hashes: one chunk per core (each at least [`SPREAD_MIN`]),
/// each decoded and batch-verified on a scoped thread with a seed derived
/// from `seed` and its index. Per transaction, in order: the decoded
/// transaction and whether its signature holds, or why it does not
/// decode. The verdicts are single checks' under ZIP-215, whatever the
/// chunking or seeds.
pub fn check_spread(
    chain: &ChainId,
    txs: &[(&pb::Transaction, Hash)],
    seed: &[u8; 32],
) -> Vec<Result<(DecodedTx, bool), TxError>> {
    // Asked only when there is something to spread: on Linux the answer
    // reads the cgroup's CPU quota from files, a cost every empty block
    // paid (catch-up of empty blocks ~10% slower).
    if txs.len() < 2 * SPREAD_MIN {
        return check_chunk(chain, txs, seed);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks = threads.min(txs.len() / SPREAD_MIN).max(1);
    if chunks == 1 {
        return check_chunk(chain, txs, seed);
    }
    let size = txs.len().div_ceil(chunks);
    let chunk_seed =
        |i: usize| sha3_256_parts(&[b"agora/tx-batch-chunk/v1", seed, &(i as u64).to_be_bytes()]);
    let checked = std::thread::scope(|s| {
        let others: Vec<_> = txs
            .chunks(size)
            .enumerate()
            .skip(1)
            .map(|(i, chunk)| {
                let seed = chunk_seed(i);
                s.spawn(move || check_chunk(chain, chunk, &seed))
            })
            .collect();
        let mut checked = check_chunk(chain, &txs[..size], &chunk_seed(0));
        for t in others {
            checked.extend(t.join().expect("a transaction-checking thread panicked"));
        }
        checked
    });
    debug_assert_eq!(checked.len(), txs.len());
    checked
}

/// [`check_spread`]'s work on one chunk: decode each, then one batch over
/// those that decoded.
fn check_chunk(
    chain: &ChainId,
    txs: &[(&pb::Transaction, Hash)],
    seed: &[u8; 32],
) -> Vec<Result<(DecodedTx, bool), TxError>> {
    let decoded: Vec<Result<DecodedTx, TxError>> = txs
        .iter()
        .map(|(t, hash)| decode_hashed(chain, t, *hash))
        .collect();
    let verdicts = {
        let ok: Vec<&DecodedTx> = decoded.iter().filter_map(|d| d.as_ref().ok()).collect();
        verify_signatures(&ok, seed)
    };
    let mut verdicts = verdicts.into_iter();
    decoded
        .into_iter()
        .map(|d| d.map(|d| (d, verdicts.next().unwrap_or(false))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::tx_hash;
    use crate::ledger::tx::tests::{body, sk};
    use crate::ledger::tx::{decode, sign};

    #[test]
    fn batch_verdicts_match_single_verification() {
        let chain = ChainId::new("test").expect("chain");
        let good = decode(&chain, &sign(&sk(), &chain, body("test"))).expect("valid");
        let mut bad = good.clone();
        bad.sign_bytes.push(0);
        for seed in [[0u8; 32], [1; 32], [0xff; 32]] {
            assert_eq!(verify_signatures(&[&good, &good], &seed), vec![true, true]);
            assert_eq!(verify_signatures(&[&good, &bad], &seed), vec![true, false]);
            assert_eq!(verify_signatures(&[&bad], &seed), vec![false]);
        }
        assert!(verify_signatures(&[], &[0; 32]).is_empty());
    }

    /// Spread over threads, each result stays in its place: bad
    /// signatures and an undecodable transaction in different chunks (the
    /// first item, a middle one, the last), each as decoding and checking
    /// it alone says; below the spread bound it is one chunk.
    #[test]
    fn spread_checks_are_the_single_checks_in_order() {
        let chain = ChainId::new("test").expect("chain");
        let mut txs: Vec<pb::Transaction> = (0..4 * SPREAD_MIN as u64 + 3)
            .map(|nonce| {
                let mut b = body("test");
                b.nonce = nonce;
                sign(&sk(), &chain, b)
            })
            .collect();
        let n = txs.len();
        for i in [0, 2 * SPREAD_MIN + 1, n - 1] {
            txs[i].signature[0] ^= 1;
        }
        txs[SPREAD_MIN + 2].body = None;
        let alone = |t: &pb::Transaction| decode(&chain, t).map(|d| d.verify_signature().is_ok());
        let want: Vec<Result<bool, TxError>> = txs.iter().map(alone).collect();
        assert_eq!(want.iter().filter(|w| matches!(w, Ok(false))).count(), 3);
        assert_eq!(want.iter().filter(|w| w.is_err()).count(), 1);
        let given: Vec<(&pb::Transaction, Hash)> = txs.iter().map(|t| (t, tx_hash(t))).collect();
        let got = |list: &[(&pb::Transaction, Hash)]| -> Vec<Result<bool, TxError>> {
            check_spread(&chain, list, &[5; 32])
                .into_iter()
                .map(|r| r.map(|(_, ok)| ok))
                .collect()
        };
        assert_eq!(got(&given), want);
        assert_eq!(got(&given[..SPREAD_MIN + 3]), want[..SPREAD_MIN + 3]);
        assert!(got(&[]).is_empty());
    }
}
