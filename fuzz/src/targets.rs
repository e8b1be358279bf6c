//! The fuzz targets: each takes arbitrary bytes, runs the real decoder on
//! them and then what production does right after decoding, and asserts
//! what must hold of whatever decodes. A target returns normally for every
//! input; a panic (or an abort, a hang, a huge allocation) is a finding.

use agora_node::storage::signing_slots::{self, FileContent};
use agora_node::transport::{hello, wire};
use agora_node::wal;
use agora_proto::v1::{self as pb, PeerMessage, peer_message::Kind};
use agora_validator::consensus::signed_points::SignedPoints;
use agora_validator::consensus::signing_state::{self, SignDecision, SignRequest};
use agora_validator::consensus::{Input, SignStep, SigningState};
use agora_validator::crypto::{AccountKeyCache, sha3_256};
use agora_validator::engine::block_rules::{self, Context, Provenance};
use agora_validator::engine::{Action, BlockLimits, Engine, EngineConfig, NoMempool, Restored};
use agora_validator::ledger::{BlockInfo, Ledger, tx};
use agora_validator::{Address, CommitCertificate};
use prost::Message;

use crate::fixtures::{self, GENESIS_HASH, NOW_MS, PEER_CERT_DER, world};
use crate::{light_target, state_targets};

/// A fuzz target: arbitrary bytes in, a panic for a finding.
pub type Target = fn(&[u8]);

/// Every target by name (the name of its binary is `fuzz_<name>`, its
/// corpus is `fuzz/corpus/<name>/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("wire", wire),
    ("hello", hello),
    ("wal", wal),
    ("snapshot", snapshot),
    ("signing_state", signing_state),
    ("signing_file", signing_file),
    ("certificate", certificate),
    ("tx", tx),
    ("block", block),
    ("state_proof", state_targets::state_proof),
    ("state_sync", state_targets::state_sync),
    ("light_block", light_target::light_block),
];

/// Builds everything the targets share (the world, the choice of
/// validators), so that a fuzzer's fork server starts with it made.
pub fn warm_up() {
    let _ = world();
    let _ = wal_validator();
    let _ = state_targets::state_world();
}

/// The peer id the fuzzed bytes come from.
const PEER: usize = 1;

/// What `wire::read_frame` reads from a stream holding `data`: the 4-byte
/// big-endian length, refused above `max` before anything is allocated,
/// then exactly that many body bytes (`None` when the stream ends first or
/// the prefix is too large), decoded and bounded by `wire::decode_body`.
fn read_frame(data: &[u8], max: usize) -> Option<PeerMessage> {
    let (prefix, rest) = data.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*prefix) as usize;
    if len > max {
        return None;
    }
    let body = rest.get(..len)?;
    let msg = wire::decode_body(body).ok()?;
    let kind = msg
        .kind
        .as_ref()
        .unwrap_or_else(|| panic!("decode_body accepted a message without a kind"));
    assert!(
        body.len() <= wire::limit_for(kind),
        "frame over its kind's limit accepted"
    );
    Some(msg)
}

/// An engine restored from `restored`, with validator `key`'s key (or
/// none), started at the next height as a node is after boot.
fn started_engine(
    restored: &Restored,
    key: Option<u8>,
    signing: Option<SigningState>,
) -> Engine<usize> {
    let mut e = Engine::new(
        EngineConfig::default(),
        key.map(fixtures::validator_key),
        signing,
        restored.clone(),
        [9; 32],
    );
    // Starting may fail only for a corrupt ledger; ours is not.
    let _ = e
        .start_height(NOW_MS, &NoMempool)
        .unwrap_or_else(|err| panic!("start_height at genesis: {err}"));
    e
}

/// Wire frames: one frame as a stream delivers it (length prefix and
/// `PeerMessage`), then what the transport and the runner do with a decoded
/// message: the gossip de-duplication hash of its re-encoding, and the
/// engine's entry point for its kind (an observer engine at height 1), or
/// the transaction decoder.
pub fn wire(data: &[u8]) {
    let Some(msg) = read_frame(data, wire::MAX_FRAME) else {
        return;
    };
    let re = msg.encode_to_vec();
    let _ = sha3_256(&re);
    let again = PeerMessage::decode(re.as_slice())
        .unwrap_or_else(|e| panic!("re-encoding does not decode: {e}"));
    assert_eq!(again, msg, "re-encoding decodes to another message");
    let Some(kind) = msg.kind else { return };
    let w = world();
    match kind {
        Kind::Hello(h) => {
            let _ = hello::verify_hello(&h, &w.chain, &GENESIS_HASH, PEER_CERT_DER);
        }
        Kind::Transaction(t) => {
            let _ = tx::decode(&w.chain, &t);
        }
        Kind::Transactions(batch) => {
            let mut keys = AccountKeyCache::new(64);
            for t in batch.txs.iter().take(64) {
                let _ =
                    tx::decode_cached(&w.chain, t, agora_validator::block::tx_hash(t), &mut keys);
            }
        }
        Kind::Proposal(p) => {
            let mut e = started_engine(&w.genesis, None, None);
            let _ = e.on_proposal(PEER, p, NOW_MS, &NoMempool);
        }
        Kind::Vote(v) => {
            let mut e = started_engine(&w.genesis, None, None);
            let _ = e.on_vote(PEER, v, NOW_MS, &NoMempool);
        }
        Kind::Evidence(ev) => {
            let mut e = started_engine(&w.genesis, None, None);
            let _ = e.on_evidence(PEER, ev);
        }
        Kind::Status(s) => {
            let mut e = started_engine(&w.genesis, None, None);
            let _ = e.on_status(PEER, s.latest_height, NOW_MS, &NoMempool);
            let _ = e.on_tick(NOW_MS + 10_000);
        }
        Kind::BlockRequest(_) | Kind::SnapshotRequest(_) | Kind::ChunkRequest(_) => {}
        Kind::SnapshotOffer(o) => {
            // A joiner checks the manifest against a certified app hash.
            let m = o.manifest.unwrap_or_default();
            let _ = agora_validator::ledger::merkle::chunks::verify_manifest(&m, &[0; 32]);
        }
        Kind::ChunkResponse(r) => {
            // Checked against the genesis state's own manifest.
            let leaves = w.genesis.ledger.leaves();
            let split = agora_validator::ledger::merkle::chunks::split(leaves);
            let _ = agora_validator::ledger::merkle::chunks::verify_chunk(
                &split.manifest,
                r.index,
                &r.leaves,
            );
        }
        Kind::BlockResponse(resp) => {
            // A response counts only if it answers our request: claim the
            // chain's height first so the engine asks this peer.
            let mut e = started_engine(&w.genesis, None, None);
            let _ = e.on_status(PEER, fixtures::HEIGHTS, NOW_MS, &NoMempool);
            let _ = e.on_tick(NOW_MS + 10_000);
            let _ = e.on_block_response(PEER, resp, NOW_MS);
            for _ in 0..fixtures::HEIGHTS + 1 {
                match e.next_synced_block(NOW_MS + 10_000, &NoMempool) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}

/// The Hello exchange: one frame of at most `MAX_SMALL_FRAME` that must be a
/// Hello, checked against the certificate of the connection.
pub fn hello(data: &[u8]) {
    let Some(msg) = read_frame(data, wire::MAX_SMALL_FRAME) else {
        return;
    };
    let Some(Kind::Hello(h)) = msg.kind else {
        return;
    };
    let w = world();
    match hello::verify_hello(&h, &w.chain, &GENESIS_HASH, PEER_CERT_DER) {
        Ok(hello::PeerIdentity::Validator {
            public_key,
            address,
        }) => {
            assert_eq!(address, Address::of(&public_key));
            assert_eq!(h.bls_public_key, public_key.to_bytes().to_vec());
            assert_eq!(h.chain_id, w.chain.as_str());
            assert!(h.genesis_hash.is_empty() || h.genesis_hash == GENESIS_HASH);
        }
        Ok(hello::PeerIdentity::FullNode) => {
            assert!(h.bls_public_key.is_empty() && h.signature.is_empty());
            assert!(h.genesis_hash.is_empty() || h.genesis_hash == GENESIS_HASH);
        }
        Err(_) => {}
    }
}

/// Splits fuzz bytes into stored WAL values: each a 2-byte big-endian
/// length, then that many bytes (the last one takes what is left).
fn wal_values(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((len, rest)) = data.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
        let (v, tail) = rest.split_at(len);
        out.push(v);
        data = tail;
    }
    out
}

/// The encoding of a decoded WAL input, which must decode again to the
/// same encoding.
fn wal_reencode(input: &Input) {
    let Some((_, bytes)) = wal::encode_input(input) else {
        panic!("a decoded WAL input has no encoding");
    };
    let again = wal::decode_input(&bytes)
        .unwrap_or_else(|e| panic!("re-encoded WAL input does not decode: {e}"));
    assert_eq!(
        wal::encode_input(&again).map(|(_, b)| b),
        Some(bytes),
        "WAL encoding is not stable"
    );
}

/// The validator whose WAL is replayed: one that does not propose
/// (1, 0), so that starting the height signs nothing.
fn wal_validator() -> u8 {
    use std::sync::OnceLock;
    static V: OnceLock<u8> = OnceLock::new();
    *V.get_or_init(|| {
        (0..fixtures::VALIDATORS)
            .find(|i| {
                let mut e = Engine::<usize>::new(
                    EngineConfig::default(),
                    Some(fixtures::validator_key(*i)),
                    None,
                    world().genesis.clone(),
                    [9; 32],
                );
                e.start_height(NOW_MS, &NoMempool)
                    .map(|a| !a.iter().any(|a| matches!(a, Action::BroadcastProposal(_))))
                    .unwrap_or(false)
            })
            .unwrap_or(1)
    })
}

/// WAL records: the values of the WAL table as `Storage::wal_records`
/// reads them (8-byte big-endian height, then the record), the replay of
/// height 1 (`wal::replay`), and the restart that follows: a validator's
/// engine resumed at height 1 from the replayed inputs (`Engine::resume`).
pub fn wal(data: &[u8]) {
    let mut records = Vec::new();
    for v in wal_values(data) {
        // Storage refuses a value shorter than the height (corrupt store).
        let Some((h, rec)) = v.split_first_chunk::<8>() else {
            return;
        };
        records.push((u64::from_be_bytes(*h), rec.to_vec()));
    }
    for (_, rec) in &records {
        if let Ok(input) = wal::decode_input(rec) {
            wal_reencode(&input);
        }
    }
    let Ok(replay) = wal::replay(&records, 1) else {
        return;
    };
    let w = world();
    let mut e: Engine<usize> = Engine::new(
        EngineConfig::default(),
        Some(fixtures::validator_key(wal_validator())),
        None,
        w.genesis.clone(),
        [9; 32],
    );
    let _ = e.resume(replay.into_iter().take(64).collect(), NOW_MS, &NoMempool);
}

/// Ledger state snapshots: `Ledger::decode` (what a node restores its
/// ledger from), then: the encoding is canonical (re-encoding gives the
/// same bytes), and the restored ledger can execute an empty block whose
/// resulting state is again a valid snapshot.
pub fn snapshot(data: &[u8]) {
    let Ok(ledger) = Ledger::decode(data) else {
        return;
    };
    assert_eq!(ledger.encode(), data, "snapshot decoding is not canonical");
    let _ = ledger.app_hash();
    let _ = ledger.validators(None, 10);
    let _ = ledger.slash_events(None, None, 10);
    let mut next = ledger.clone();
    let h = ledger.height().saturating_add(1);
    if next.begin_block(h, &BlockInfo::default()).is_ok() && next.end_block().is_ok() {
        Ledger::decode(&next.encode()).unwrap_or_else(|e| {
            panic!("a valid snapshot executed an empty block into an invalid state: {e}")
        });
    }
}

/// Signing-state file: `signing_slots::parse_file` (what `agora start`
/// and `signing-state export` read from `HOME/data/signing_state.json`).
/// Whatever it accepts holds a valid state, and a slot it accepts encodes
/// back to a slot that parses to the same content.
pub fn signing_file(data: &[u8]) {
    let Ok(content) = signing_slots::parse_file(data) else {
        return;
    };
    let doc = match content {
        FileContent::Single(doc) => doc,
        FileContent::Slots(slot) => {
            let line = signing_slots::encode_slot(slot.sequence, &slot.document)
                .expect("an accepted slot fits a slot again");
            assert_eq!(
                signing_slots::parse_slot(&line).as_ref(),
                Ok(&slot),
                "a slot round-trips"
            );
            slot.document
        }
    };
    assert!(doc.state().is_ok(), "an accepted document holds a state");
}

/// Signing state: `SigningState::from_bytes` (what a restarted validator
/// reads before it signs anything), its round trip, the guard's answers
/// around the restored position, and a validator engine restored with it
/// that starts height 1 (one that does not propose (1, 0): a proposal
/// costs a BLS signature and a VRF proof per run, which would slow the
/// target a hundredfold; the guard's answers are checked directly).
pub fn signing_state(data: &[u8]) {
    let Ok(s) = SigningState::from_bytes(data) else {
        return;
    };
    assert_eq!(SigningState::from_bytes(&s.to_bytes()), Ok(s));
    let bytes = b"fuzz";
    let same = SignRequest {
        height: s.height,
        round: s.round,
        step: s.step,
        bytes,
        value: s.value,
        locked: s.locked,
    };
    assert!(
        !matches!(
            signing_state::check(Some(&s), &same),
            SignDecision::SignNew(_)
        ),
        "the guard signs anew at the position it last signed"
    );
    let later = [
        (s.height, s.round, SignStep::Precommit),
        (s.height, s.round.saturating_add(1), SignStep::Propose),
        (s.height.saturating_add(1), 0, SignStep::Propose),
    ];
    for (height, round, step) in later {
        let req = SignRequest {
            height,
            round,
            step,
            ..same
        };
        let d = signing_state::check(Some(&s), &req);
        let advances = (height, round, step) > (s.height, s.round, s.step);
        assert_eq!(matches!(d, SignDecision::SignNew(_)), advances);
    }
    let w = world();
    let _ = started_engine(&w.genesis, Some(wal_validator()), Some(s));
}

/// Commit certificates: the protobuf, `CommitCertificate::from_proto`
/// (strict signature decoding), its round trip and hash, then the checks
/// against the validator set of height 1: signer indices, signed power,
/// `verify` and `verify_for` block 1.
pub fn certificate(data: &[u8]) {
    let Ok(p) = pb::CommitCertificate::decode(data) else {
        return;
    };
    let Ok(c) = CommitCertificate::from_proto(&p) else {
        return;
    };
    assert_eq!(
        CommitCertificate::from_proto(&c.to_proto()).as_ref(),
        Ok(&c)
    );
    let _ = c.hash();
    let w = world();
    let _ = c.signer_indices(w.set.len());
    let _ = c.signed_power(&w.set);
    let verified = c.verify(&w.chain, &w.set);
    let block_1 = &w.after_block_1.tip.block_hash;
    let verified_for = c.verify_for(&w.chain, &w.set, 1, block_1);
    if verified_for.is_ok() {
        assert!(verified.is_ok());
    }
}

/// Transactions: the protobuf, `tx::decode` (and the cached-key variant,
/// which must agree), the signature alone and in a batch (same verdict),
/// mempool admission against the genesis ledger, then execution in block
/// 1 as if the signature were valid (any sender can sign any body), after
/// which the state must still be a valid snapshot (supply conserved).
pub fn tx(data: &[u8]) {
    let Ok(t) = pb::Transaction::decode(data) else {
        return;
    };
    let w = world();
    let ledger = &w.genesis.ledger;
    let decoded = tx::decode(&w.chain, &t);
    let mut keys = AccountKeyCache::new(4);
    let cached = tx::decode_cached(&w.chain, &t, agora_validator::block::tx_hash(&t), &mut keys);
    assert_eq!(decoded.is_ok(), cached.is_ok(), "cached decoding disagrees");
    let check = ledger.check_tx(&t);
    let Ok(d) = decoded else {
        assert!(check.is_err());
        return;
    };
    let single = d.verify_signature().is_ok();
    let batch = tx::verify_signatures(&[&d], &[3; 32]);
    assert_eq!(
        batch,
        vec![single],
        "batch and single verification disagree"
    );
    let recheck = ledger.recheck_decoded(&d);
    if single {
        assert_eq!(check.is_ok(), recheck.is_ok());
    }
    let mut next = ledger.clone();
    if next.begin_block(1, &BlockInfo::default()).is_err() {
        return;
    }
    let _ = next.deliver_decoded(&d, true);
    if next.end_block().is_ok() {
        Ledger::decode(&next.encode())
            .unwrap_or_else(|e| panic!("executing a transaction made an invalid state: {e}"));
    }
}

/// Blocks: the protobuf, `block_rules::check_body` (body against header
/// hashes, the carried certificate decoded), `BlockInfo::of_block`, then
/// every content rule (`check_block`) as block 1 on the genesis state and
/// as block 2 on the state after block 1, synced and as a live proposal.
/// A block that passes as synced block 1 is executed on the genesis ledger
/// (what sync does once the core verified its certificate).
pub fn block(data: &[u8]) {
    let Ok(b) = pb::Block::decode(data) else {
        return;
    };
    let _ = block_rules::check_body(&b);
    let _ = BlockInfo::of_block(&b);
    let _ = block_rules::block_hash(&b);
    let w = world();
    let limits = BlockLimits::default();
    let round = b.header.as_ref().map_or(0, |h| h.proposal_round);
    let mut certified_1 = false;
    // Nothing signed here: every certificate is hashed and checked plainly.
    let signed = SignedPoints::default();
    for (restored, height) in [(&w.genesis, 1), (&w.after_block_1, 2)] {
        let ctx = Context {
            chain: &w.chain,
            ledger: &restored.ledger,
            tip: &restored.tip,
            height,
            limits: &limits,
            signed: &signed,
        };
        let synced = block_rules::check_block(&ctx, &b, Provenance::Certified);
        if height == 1 {
            certified_1 = synced.is_ok();
        }
        if synced.is_ok() {
            assert!(block_rules::check_body(&b).is_ok());
        }
        let live = Provenance::Proposal {
            round,
            now_ms: NOW_MS,
            carried_verified: None,
        };
        let _ = block_rules::check_block(&ctx, &b, live);
    }
    if certified_1 {
        let mut ledger = w.genesis.ledger.clone();
        let info = BlockInfo::of_block(&b);
        if ledger
            .apply_block(1, &info, &b.txs, &b.evidence, &[5; 32])
            .is_ok()
        {
            Ledger::decode(&ledger.encode())
                .unwrap_or_else(|e| panic!("block 1 made an invalid state: {e}"));
        }
    }
}
