//! Targets for what a client takes from a node it does not trust about the
//! state: a state proof (`agora query … --prove`, `merkle::proof::verify`)
//! and a state-sync snapshot (`chunks::verify_manifest`, then
//! `chunks::verify_chunk` on each chunk a peer serves).
//!
//! Unlike the decoders' targets these assert soundness, not only that
//! nothing panics: whatever the checks accept must be what the state of
//! the reference chain after block 1 holds, known here independently of
//! the tree as its list of leaves. A forged proof or chunk that passes is
//! a finding as much as a crash.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use agora_proto::v1 as pb;
use agora_validator::Address;
use agora_validator::crypto::Hash;
use agora_validator::ledger::merkle::chunks::{
    self, MAX_PREFIX_BITS, SnapshotChunks, verify_chunk, verify_manifest,
};
use agora_validator::ledger::merkle::leaves::{self, LeafKey};
use agora_validator::ledger::merkle::proof::verify;
use prost::Message;

use crate::fixtures::{self, world};
use crate::parts::{join_parts, split_part};

/// The state the targets check against: the ledger after block 1.
#[derive(Debug)]
pub struct StateWorld {
    /// Its height (the version its proofs are made at).
    pub height: u64,
    /// Its app hash (the root a proof or manifest must reach).
    pub root: Hash,
    /// Every leaf, key → value: the truth the checks are measured by.
    pub leaves: BTreeMap<LeafKey, Vec<u8>>,
    /// The keys a proof is asked about: every leaf's, then keys the state
    /// does not hold (an absent account, slash event, unbonding entry, a
    /// kind no leaf has, the empty key).
    pub keys: Vec<LeafKey>,
    /// The state split as a serving node splits it, for each number of
    /// prefix bits a manifest may use.
    pub splits: Vec<SnapshotChunks>,
}

/// The state world, made on first use.
pub fn state_world() -> &'static StateWorld {
    static STATE: OnceLock<StateWorld> = OnceLock::new();
    STATE.get_or_init(|| {
        let ledger = &world().after_block_1.ledger;
        let leaves: BTreeMap<LeafKey, Vec<u8>> = ledger.leaves().into_iter().collect();
        let operator = Address::of_account(&fixtures::operator(0).public_key());
        let validator = Address::of(&fixtures::validator_key(0).public_key());
        let absent = [
            leaves::account_key(&Address([0x99; 20])),
            leaves::slash_event_key(0),
            leaves::unbonding_key(&operator, &validator, u64::MAX),
            vec![0xff, 1, 2, 3],
            Vec::new(),
        ];
        for k in &absent {
            assert!(!leaves.contains_key(k), "key {k:02x?} is not absent");
        }
        let keys = leaves.keys().cloned().chain(absent).collect();
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = leaves.clone().into_iter().collect();
        let splits = (0..=MAX_PREFIX_BITS)
            .map(|bits| chunks::split_with_bits(pairs.clone(), bits))
            .collect();
        StateWorld {
            height: ledger.height(),
            root: ledger.app_hash(),
            leaves,
            keys,
            splits,
        }
    })
}

/// State proofs: the first byte picks the key asked about (modulo
/// [`StateWorld::keys`]), the rest is the node's `pb::StateProof`. A proof
/// `verify` accepts against the state's root must show the key's true
/// value, or its absence only when the state does not hold it.
pub fn state_proof(data: &[u8]) {
    check_proof(data, |proof, key, root| verify(proof, key, root).is_ok());
}

/// [`state_proof`] with `accepts` in place of `verify` (tests give it a
/// weakened verifier to show the assertions catch what it lets through).
pub fn check_proof(data: &[u8], accepts: impl Fn(&pb::StateProof, &[u8], &Hash) -> bool) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(proof) = pb::StateProof::decode(rest) else {
        return;
    };
    let w = state_world();
    let key = &w.keys[usize::from(pick) % w.keys.len()];
    if !accepts(&proof, key, &w.root) {
        return;
    }
    match w.leaves.get(key) {
        Some(value) => assert!(
            proof.present && proof.value == *value,
            "a proof of key {key:02x?} showed another value than the state's"
        ),
        None => assert!(
            !proof.present,
            "a proof showed a value for key {key:02x?}, which the state does not hold"
        ),
    }
}

/// State-sync snapshots: a 2-byte big-endian length, that many bytes of
/// the offered `pb::SnapshotManifest`, then a `pb::ChunkResponse`. Under
/// a manifest `verify_manifest` accepts, a chunk `verify_chunk` accepts
/// holds only leaves of the state, and exactly the state's chunk whenever
/// the manifest gives that chunk its true root. (A manifest's counts are
/// hints, and one may even move a lone leaf's root to an empty sibling
/// chunk, so a chunk it names with a false root may be accepted empty;
/// the chunk holding the leaf then can never be, see `chunks.rs`.)
pub fn state_sync(data: &[u8]) {
    check_sync(data, |m, index, leaves| {
        verify_chunk(m, index, leaves).is_ok()
    });
}

/// [`state_sync`] with `accepts` in place of `verify_chunk` (for tests, as
/// [`check_proof`]).
pub fn check_sync(
    data: &[u8],
    accepts: impl Fn(&pb::SnapshotManifest, u32, &[pb::StateLeaf]) -> bool,
) {
    let Some((manifest, chunk)) = split_part(data) else {
        return;
    };
    let (Ok(m), Ok(r)) = (
        pb::SnapshotManifest::decode(manifest),
        pb::ChunkResponse::decode(chunk),
    ) else {
        return;
    };
    let w = state_world();
    if verify_manifest(&m, &w.root).is_err() || !accepts(&m, r.index, &r.leaves) {
        return;
    }
    for l in &r.leaves {
        assert_eq!(
            w.leaves.get(&l.key),
            Some(&l.value),
            "an accepted chunk holds a leaf the state does not"
        );
    }
    let real = &w.splits[m.prefix_bits as usize];
    let index = r.index as usize;
    let Some(claimed) = m.chunks.get(index) else {
        panic!(
            "chunk {index} was accepted from a manifest of {} chunks",
            m.chunks.len()
        );
    };
    if claimed.root == real.manifest.chunks[index].root {
        assert_eq!(
            r.leaves, real.chunks[index],
            "a chunk with its true root was accepted with other leaves"
        );
    }
}

/// What the node serves, as the targets' inputs: one proof per key.
pub fn proof_inputs() -> Vec<(String, Vec<u8>)> {
    let w = state_world();
    let ledger = &world().after_block_1.ledger;
    w.keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let proof = ledger
                .prove(key, w.height)
                .unwrap_or_else(|e| panic!("prove {key:02x?}: {e}"));
            let pick = u8::try_from(i).unwrap_or_else(|_| panic!("more than 256 keys"));
            let mut input = vec![pick];
            input.extend(proof.encode_to_vec());
            (format!("key_{i:02}"), input)
        })
        .collect()
}

/// A [`state_sync`] input: the manifest, then the chunk answer.
pub fn sync_input(m: &pb::SnapshotManifest, r: &pb::ChunkResponse) -> Vec<u8> {
    join_parts(&[m.encode_to_vec()], r.encode_to_vec())
}

/// What a serving node offers: each chunk of the splits with 0, 1, 2 and
/// 3 prefix bits under its manifest.
pub fn sync_inputs() -> Vec<(String, Vec<u8>)> {
    let w = state_world();
    let mut out = Vec::new();
    for bits in 0..=3u32 {
        let s = &w.splits[bits as usize];
        for (i, leaves) in s.chunks.iter().enumerate() {
            let r = pb::ChunkResponse {
                height: w.height,
                index: u32::try_from(i).unwrap_or_else(|_| unreachable!("few chunks")),
                leaves: leaves.clone(),
                unavailable: false,
            };
            out.push((
                format!("bits_{bits}_chunk_{i}"),
                sync_input(&s.manifest, &r),
            ));
        }
    }
    out
}
