//! The seed corpus: small valid inputs of every target made by the real
//! encoders from the reference chain of [`crate::fixtures`], plus a few
//! edge cases each. `gen_corpus` writes them under `fuzz/corpus/<target>/`.

use agora_node::storage::signing_doc::SigningDoc;
use agora_node::storage::signing_slots::{SLOT_BYTES, encode_slot};
use agora_node::transport::{hello, wire};
use agora_node::wal;
use agora_proto::v1::{self as pb, PeerMessage, peer_message::Kind};
use agora_validator::consensus::evidence::duplicate_vote;
use agora_validator::consensus::signing_state::SIGNING_STATE_LEN;
use agora_validator::signing::vote_bytes;
use agora_validator::{Address, VoteType};
use prost::Message;

use crate::fixtures::{self, Chain, PEER_CERT_DER};
use crate::{light_target, state_targets};

/// One seed: its file name and bytes.
pub type Seed = (String, Vec<u8>);

fn frame(kind: Kind) -> Vec<u8> {
    wire::encode_frame(&PeerMessage { kind: Some(kind) })
}

fn named(items: impl IntoIterator<Item = (impl Into<String>, Vec<u8>)>) -> Vec<Seed> {
    items.into_iter().map(|(n, b)| (n.into(), b)).collect()
}

/// An equivocation of the first prevote's signer: the same (height, round)
/// voted for another block, signed with its key.
fn evidence(chain: &Chain) -> pb::Evidence {
    let v = chain
        .votes
        .iter()
        .find(|v| v.vote_type == VoteType::Prevote as i32)
        .cloned()
        .unwrap_or_else(|| panic!("the reference chain has no prevote"));
    let i = (0..fixtures::VALIDATORS)
        .find(|i| {
            Address::of(&fixtures::validator_key(*i).public_key()).0[..] == v.validator_address[..]
        })
        .unwrap_or_else(|| panic!("prevote of an unknown validator"));
    let other = [0xab; 32];
    let mut w = v.clone();
    w.block_hash = other.to_vec();
    w.signature = fixtures::validator_key(i)
        .sign(&vote_bytes(
            &fixtures::chain_id(),
            VoteType::Prevote,
            v.height,
            v.round,
            &other,
        ))
        .to_bytes()
        .to_vec();
    duplicate_vote(v, w)
}

fn hello_frame(chain: &str, key: Option<u8>, cert: &[u8]) -> Vec<u8> {
    hello_frame_of(chain, &fixtures::GENESIS_HASH, key, cert)
}

fn hello_frame_of(chain: &str, genesis: &[u8; 32], key: Option<u8>, cert: &[u8]) -> Vec<u8> {
    let chain = agora_validator::ChainId::new(chain).unwrap_or_else(|_| unreachable!("chain"));
    let k = key.map(fixtures::validator_key);
    let mut h = hello::make_hello(&chain, genesis, k.as_ref(), cert, 3);
    h.incarnation = 77;
    frame(Kind::Hello(h))
}

/// One WAL value as the store keeps it (8-byte height, then the record),
/// behind the 2-byte length the `wal` target splits its input by.
fn wal_value(height: u64, record: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let len = u16::try_from(8 + record.len()).unwrap_or_else(|_| panic!("WAL record too long"));
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(record);
    v
}

/// Every target's seeds, by target name.
pub fn seeds() -> Vec<(&'static str, Vec<Seed>)> {
    let chain = fixtures::make_chain();
    let txs = fixtures::sample_txs();
    let ev = evidence(&chain);
    vec![
        ("wire", wire_seeds(&chain, &txs, &ev)),
        ("hello", hello_seeds()),
        ("wal", wal_seeds(&chain)),
        ("snapshot", snapshot_seeds(&chain)),
        ("signing_state", signing_seeds(&chain)),
        ("signing_file", signing_file_seeds(&chain)),
        ("certificate", certificate_seeds(&chain)),
        ("tx", tx_seeds(&txs)),
        ("block", block_seeds(&chain, ev)),
        ("state_proof", state_proof_seeds()),
        ("state_sync", state_sync_seeds()),
        ("light_block", light_block_seeds()),
    ]
}

/// Every block of the reference chain as a light client is served it, and
/// what a hostile node might serve: block 1's header with block 2's
/// certificate, block 2 naming block 1's set.
fn light_block_seeds() -> Vec<Seed> {
    let blocks = &fixtures::world().light_blocks;
    let mut seeds: Vec<Seed> = blocks
        .iter()
        .map(|b| {
            (
                format!("height_{}", b.header.height),
                light_target::light_input(b),
            )
        })
        .collect();
    let mut other_certificate = blocks[0].clone();
    other_certificate.certificate = blocks[1].certificate.clone();
    seeds.push((
        "other_certificate".into(),
        light_target::light_input(&other_certificate),
    ));
    let mut other_set = blocks[1].clone();
    other_set.header.height = 1;
    seeds.push(("lower_height".into(), light_target::light_input(&other_set)));
    seeds
}

/// A proof of every key of the state after block 1 (present and absent),
/// and proofs a hostile node might try: a changed value, a present key
/// claimed absent.
fn state_proof_seeds() -> Vec<Seed> {
    let mut seeds = state_targets::proof_inputs();
    let honest = seeds.clone();
    for (name, input) in honest.iter().take(3) {
        let Ok(mut p) = pb::StateProof::decode(&input[1..]) else {
            unreachable!("a proof the ledger made decodes")
        };
        let mut lie = |what: &str, p: &pb::StateProof| {
            let mut v = vec![input[0]];
            v.extend(p.encode_to_vec());
            seeds.push((format!("{name}_{what}"), v));
        };
        p.value.push(1);
        lie("longer_value", &p);
        p.present = false;
        p.value.clear();
        lie("claimed_absent", &p);
    }
    seeds
}

/// Every chunk of small splits under its manifest, and chunks a hostile
/// peer might serve: a changed value, a leaf left out.
fn state_sync_seeds() -> Vec<Seed> {
    let mut seeds = state_targets::sync_inputs();
    let w = state_targets::state_world();
    let s = &w.splits[1];
    let mut r = pb::ChunkResponse {
        height: w.height,
        index: 0,
        leaves: s.chunks[0].clone(),
        unavailable: false,
    };
    r.leaves[0].value.push(1);
    seeds.push((
        "changed_value".into(),
        state_targets::sync_input(&s.manifest, &r),
    ));
    r.leaves.remove(0);
    seeds.push((
        "leaf_left_out".into(),
        state_targets::sync_input(&s.manifest, &r),
    ));
    seeds
}

/// Framed peer messages of every kind, and broken frames.
fn wire_seeds(chain: &Chain, txs: &[pb::Transaction], ev: &pb::Evidence) -> Vec<Seed> {
    let mut wire_seeds = named([
        (
            "hello",
            hello_frame(fixtures::CHAIN, Some(0), PEER_CERT_DER),
        ),
        (
            "status",
            frame(Kind::Status(pb::StatusUpdate { latest_height: 3 })),
        ),
        (
            "block_request",
            frame(Kind::BlockRequest(pb::BlockRequest {
                from_height: 1,
                count: 3,
            })),
        ),
        ("transaction", frame(Kind::Transaction(txs[0].clone()))),
        (
            "transactions",
            frame(Kind::Transactions(pb::TransactionBatch {
                txs: txs[..3].to_vec(),
            })),
        ),
        ("evidence", frame(Kind::Evidence(ev.clone()))),
        (
            "proposal_1",
            frame(Kind::Proposal(chain.proposals[0].clone())),
        ),
        (
            "block_response",
            frame(Kind::BlockResponse(pb::BlockResponse {
                blocks: chain
                    .records
                    .iter()
                    .take(2)
                    .map(|r| pb::CertifiedBlock {
                        block: Some(r.block.clone()),
                        certificate: Some(r.certificate.to_proto()),
                    })
                    .collect(),
                latest_height: 3,
                lowest_height: 0,
            })),
        ),
        ("empty_body", 0u32.to_be_bytes().to_vec()),
        ("oversized_prefix", vec![0xff, 0xff, 0xff, 0xff, 0x0a]),
        ("truncated", {
            let mut f = frame(Kind::Status(pb::StatusUpdate { latest_height: 9 }));
            f.pop();
            f
        }),
    ]);
    for (i, v) in chain.votes.iter().take(3).enumerate() {
        wire_seeds.push((format!("vote_{i}"), frame(Kind::Vote(v.clone()))));
    }
    wire_seeds
}

/// Hellos of a validator, a full node, another chain, another certificate,
/// and a message that is not a hello.
fn hello_seeds() -> Vec<Seed> {
    named([
        (
            "validator",
            hello_frame(fixtures::CHAIN, Some(1), PEER_CERT_DER),
        ),
        (
            "full_node",
            hello_frame(fixtures::CHAIN, None, PEER_CERT_DER),
        ),
        (
            "other_chain",
            hello_frame("another-chain", Some(1), PEER_CERT_DER),
        ),
        (
            "other_certificate",
            hello_frame(fixtures::CHAIN, Some(2), b"another certificate"),
        ),
        (
            "other_genesis",
            hello_frame_of(fixtures::CHAIN, &[0x48; 32], Some(1), PEER_CERT_DER),
        ),
        (
            "not_a_hello",
            frame(Kind::Status(pb::StatusUpdate { latest_height: 1 })),
        ),
    ])
}

/// WAL values of the chain's first records, all of height 1 in one
/// input, and broken ones.
fn wal_seeds(chain: &Chain) -> Vec<Seed> {
    let mut wal_all = Vec::new();
    let mut wal_seeds = Vec::new();
    for (i, input) in chain.wal.iter().enumerate() {
        let Some((h, rec)) = wal::encode_input(input) else {
            continue;
        };
        let v = wal_value(h, &rec);
        if h == 1 {
            wal_all.extend_from_slice(&v);
        }
        if i < 6 {
            wal_seeds.push((format!("record_{i}"), v));
        }
    }
    wal_seeds.push(("height_1".into(), wal_all));
    let timeout = |step: u32| {
        wal::WalRecord {
            input: Some(wal::WalInput::Timeout(wal::WalTimeout {
                height: 1,
                round: 0,
                step,
            })),
        }
        .encode_to_vec()
    };
    wal_seeds.push(("timeout".into(), wal_value(1, &timeout(2))));
    wal_seeds.push(("bad_step".into(), wal_value(1, &timeout(7))));
    wal_seeds.push(("short_value".into(), vec![0, 3, 0, 0, 1]));
    wal_seeds
}

/// Ledger snapshots at genesis and after each height, and a truncated one.
fn snapshot_seeds(chain: &Chain) -> Vec<Seed> {
    let mut snapshot_seeds = vec![("genesis".to_string(), {
        fixtures::at_genesis().ledger.encode()
    })];
    for (height, ledger) in fixtures::ledgers_after(chain) {
        snapshot_seeds.push((format!("after_{height}"), ledger.encode()));
    }
    let mut truncated = fixtures::ledgers_after(chain)[0].1.encode();
    truncated.truncate(truncated.len() / 2);
    snapshot_seeds.push(("truncated".into(), truncated));
    snapshot_seeds
}

/// One signing state of each (step, locked) kind, and broken ones.
fn signing_seeds(chain: &Chain) -> Vec<Seed> {
    let mut signing_seeds = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in &chain.signing_states {
        let b = s.to_bytes().to_vec();
        if seen.insert((s.step as u8, s.locked.is_some())) {
            signing_seeds.push((format!("state_{}", signing_seeds.len()), b));
        }
    }
    let mut bad_flag = chain.signing_states[0].to_bytes().to_vec();
    bad_flag[77] = 2;
    signing_seeds.push(("bad_lock_flag".into(), bad_flag));
    signing_seeds.push(("short".into(), vec![0; SIGNING_STATE_LEN - 1]));
    signing_seeds
}

/// Signing-state files: two slots, one torn slot, the older one-document
/// form, and a file cut short.
fn signing_file_seeds(chain: &Chain) -> Vec<Seed> {
    let key = fixtures::validator_key(0).public_key();
    let id = agora_validator::ChainId::new(fixtures::CHAIN).expect("fixture chain id");
    let doc = |i: usize| SigningDoc::new(&id, &key, &chain.signing_states[i]);
    let slot = |seq: u64, i: usize| encode_slot(seq, &doc(i)).expect("fits a slot");
    let mut two = slot(4, 0);
    two.extend(slot(5, 1));
    let mut torn = two.clone();
    torn[SLOT_BYTES + 200] ^= 0x20;
    let short = two[..SLOT_BYTES + 10].to_vec();
    named([
        ("two_slots", two),
        ("torn_slot", torn),
        ("one_document", doc(2).to_json().into_bytes()),
        ("short", short),
    ])
}

/// The chain's certificates, and one with a signer bitmap too long.
fn certificate_seeds(chain: &Chain) -> Vec<Seed> {
    let certs: Vec<pb::CommitCertificate> = chain
        .records
        .iter()
        .map(|r| r.certificate.to_proto())
        .collect();
    let mut cert_seeds: Vec<Seed> = certs
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("height_{}", i + 1), c.encode_to_vec()))
        .collect();
    let mut wide = certs[0].clone();
    wide.signers = vec![0xff; 2];
    cert_seeds.push(("bitmap_too_long".into(), wide.encode_to_vec()));
    cert_seeds
}

/// Sample transactions, and one without a body.
fn tx_seeds(txs: &[pb::Transaction]) -> Vec<Seed> {
    let mut tx_seeds: Vec<Seed> = txs
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("tx_{i}"), t.encode_to_vec()))
        .collect();
    let mut no_body = txs[0].clone();
    no_body.body = None;
    tx_seeds.push(("no_body".into(), no_body.encode_to_vec()));
    tx_seeds
}

/// The chain's blocks, one without a header, and one carrying evidence
/// from elsewhere.
fn block_seeds(chain: &Chain, ev: pb::Evidence) -> Vec<Seed> {
    let blocks: Vec<pb::Block> = chain.records.iter().map(|r| r.block.clone()).collect();
    let mut block_seeds: Vec<Seed> = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("block_{}", i + 1), b.encode_to_vec()))
        .collect();
    let mut no_header = blocks[0].clone();
    no_header.header = None;
    block_seeds.push(("no_header".into(), no_header.encode_to_vec()));
    let mut with_evidence = blocks[1].clone();
    with_evidence.evidence.push(ev);
    block_seeds.push((
        "block_2_foreign_evidence".into(),
        with_evidence.encode_to_vec(),
    ));
    block_seeds
}
